"""The `rules` post-training step: the training rules' findings of every fit as diagnostics.json + a report section.

The skorch callback (mlexp.neural.rules) records each fit of a PyTorch model while it trains; this
step gathers the fits of the run, writes diagnostics.json (format in docs/rules.md), a plot of the
per-layer gradients and update ratios, and, with tracking=tensorboard, weight and gradient
histograms per epoch. Runs of scikit-learn models have nothing to record: no file, no section.
"""

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError
from mlexp.posttrain import PostTrainStep, Section, TrainedRun

__all__ = ["DiagnosticsStep", "DIAGNOSTICS_FILE", "DIAGNOSTICS_PLOT"]

log = logging.getLogger("mlexp")

DIAGNOSTICS_FILE = "diagnostics.json"
DIAGNOSTICS_PLOT = "diagnostics.png"


class DiagnosticsStep(PostTrainStep):
    """rules=[...]: Debugger-style training rules for PyTorch models; rules=[] turns them off."""

    name = "rules"

    def enabled(self, cfg: DictConfig) -> bool:
        return bool(cfg.get("rules"))

    def check(self, cfg: DictConfig, dataset: Any) -> None:
        from mlexp.neural._checks import validate_rules

        problems = validate_rules(OmegaConf.to_container(cfg.rules, resolve=True))
        if problems:
            raise MlexpError("; ".join(problems) + ". See docs/rules.md.")

    def run(self, trained: TrainedRun) -> Optional[Section]:
        from mlexp.neural import holds_torch_estimator

        if not holds_torch_estimator(trained.model):
            return None
        from mlexp.neural._checks import ADVICE, RULES
        from mlexp.neural.rules import fits_for

        fits = fits_for(trained.reporter) + _final_fits(trained.model)
        if not fits:
            return None
        rules = OmegaConf.to_container(trained.cfg.rules, resolve=True)
        settings = {name: {**RULES[name], "action": "warn", **(rules[name] or {})} for name in rules}
        triggered: Dict[str, List[Dict[str, Any]]] = {}
        for fit in fits:
            for finding in fit["findings"]:
                triggered.setdefault(finding["rule"], []).append(
                    {k: finding[k] for k in ("fit", "epoch", "action", "message")})
        histograms = [{"fit": f["fit"], "epochs": f.pop("histograms")} for f in fits if f.get("histograms")]
        report = {"version": 1, "rules": settings, "triggered": triggered,
                  "stopped": [{"fit": f["fit"], **f["stopped"]} for f in fits if f["stopped"]], "fits": fits}
        (trained.run_dir / DIAGNOSTICS_FILE).write_text(json.dumps(report, indent=2, default=str))
        if histograms:
            _write_histograms(trained, histograms)
        warnings = []
        for name, hits in triggered.items():
            first = hits[0]
            where = ", ".join(f"{h['fit']} (epoch {h['epoch']})" for h in hits[:6]) + (" ..." if len(hits) > 6 else "")
            stopped = " Training stopped (action: stop)." if any(h["action"] == "stop" for h in hits) else ""
            warnings.append(f"Training rule {name}: {first['message']}; in {where}.{stopped} Fix: {ADVICE[name]} "
                            f"(docs/rules.md).")
        lines = [f"{len(settings)} rules over {len(fits)} fits (each CV fold and the final fit); "
                 f"per-epoch records in {DIAGNOSTICS_FILE}.", "", "| rule | action | triggered in |", "|---|---|---|"]
        for name in settings:
            hits = triggered.get(name, [])
            cell = ", ".join(f"{h['fit']} @ epoch {h['epoch']}" for h in hits[:4]) + (" ..." if len(hits) > 4 else "")
            lines.append(f"| {name} | {settings[name]['action']} | {cell or '-'} |")
        lines.append("")
        plot = _plot(fits[-1], trained.run_dir / DIAGNOSTICS_PLOT)
        if plot is not None:
            lines += [f"![training diagnostics]({plot.name})", ""]
        return Section("Training rules", lines, warnings)


def _final_fits(model: Any) -> List[Dict[str, Any]]:
    """The final fit's records, kept by the rules callback of each torch net in the fitted model."""
    from mlexp.neural import is_torch_estimator
    from mlexp.neural.rules import TrainingRules

    estimator = model.steps[-1][1]
    # An ensemble keeps its fitted members in estimators_ (bagging, voting, stacking).
    nets = [estimator] if is_torch_estimator(estimator) else [
        e for e in (getattr(estimator, "estimators_", None) or []) if is_torch_estimator(e)]
    return [cb.fit_ for net in nets for _, cb in getattr(net, "callbacks_", [])
            if isinstance(cb, TrainingRules) and getattr(cb, "fit_", None) is not None]


def _plot(fit: Dict[str, Any], path: Path) -> Optional[Path]:
    """Per-layer mean |gradient| and weight-update ratio per epoch (log scale) of one fit."""
    import numpy as np
    from matplotlib.figure import Figure

    epochs = fit["epochs"]
    if not epochs:
        return None
    figure = Figure(figsize=(9.2, 3.4), dpi=90)
    axes = figure.subplots(1, 2)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.88, wspace=0.25)
    for ax, key, title in ((axes[0], "grad_mean_abs", "mean |gradient| per layer"),
                           (axes[1], "update_ratio", "weight update / weight norm per epoch")):
        layers = sorted({layer for e in epochs for layer in e.get(key, {})})
        for layer in layers:
            values = [e.get(key, {}).get(layer) for e in epochs]
            values = [v if v is not None and v > 0 and np.isfinite(v) else np.nan for v in values]
            ax.plot([e["epoch"] for e in epochs], values, label=layer)
        ax.set_yscale("log")
        ax.set_title(f"{title} ({fit['fit']})", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        if layers:
            ax.legend(fontsize=6)
    figure.savefig(path, format="png")
    return path


def _write_histograms(trained: TrainedRun, fits: List[Dict[str, Any]]) -> None:
    """TensorBoard histograms (tags <fit>/weights/<layer>, <fit>/gradients/<layer>; step = epoch)."""
    import time

    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from mlexp.tracking import tracker_for
    from mlexp.tracking._tensorboard import LOG_SUBDIR

    tracker = tracker_for(trained.cfg)
    log_dir = getattr(tracker, "log_dir", None)
    run_dir = trained.run_dir
    target = run_dir / LOG_SUBDIR if log_dir is None else Path(log_dir) / f"{run_dir.parent.name}_{run_dir.name}"
    target.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(target), filename_suffix=".histograms")
    try:
        for fit in fits:
            label = fit["fit"].replace(" ", "_")
            for epoch in fit["epochs"]:
                for kind in ("weights", "gradients"):
                    for layer, h in epoch[kind].items():
                        proto = HistogramProto(min=h["min"], max=h["max"], num=h["n"], sum=h["sum"],
                                               sum_squares=h["sum_squares"], bucket_limit=h["edges"][1:],
                                               bucket=h["counts"])
                        summary = Summary(value=[Summary.Value(tag=f"{label}/{kind}/{layer}", histo=proto)])
                        writer.add_event(Event(wall_time=time.time(), step=int(epoch["epoch"]), summary=summary))
    finally:
        writer.close()
    log.info("tensorboard: weight and gradient histograms in %s", target)
