"""The monitoring baseline of a train run: ``baseline/`` in Model Monitor's and Clarify's formats.

Written by every train run (a post-training step), from the development rows and the out-of-fold
predictions (the rows the model did not see), so the monitor needs neither the training data nor
a refit:

- ``statistics.json`` / ``constraints.json``: data quality (Model Monitor's baselining job output);
- ``model_quality_statistics.json`` / ``model_quality_constraints.json``: model quality from the
  out-of-fold predictions; ``model_quality_test_statistics.json`` from the test split;
- ``calibration.json``: the isotonic calibrator for performance estimation without labels (CBPE);
- ``bias_analysis.json``: post-training bias per facet value (Clarify's analysis.json layout), when
  the data has a facet (``data.roles.facet``) and the task is binary classification;
- ``attribution.json``: the global attribution of each feature (label-free permutation importance);
- ``baseline.json``: what the monitor needs to read the rest (task, classes, columns, facet, files).

bias.json and explain.json of the responsible-AI steps, when the run wrote them, are referenced in
baseline.json and compared with the monitor's own values in the report (the monitor recomputes
its values with the same code on new data, so baseline and monitor agree by construction).
"""

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from mlexp.lineage import write_json
from mlexp.posttrain import PostTrainStep, Section, TrainedRun

__all__ = ["BaselineStep", "BASELINE_DIR", "write_json"]

log = logging.getLogger("mlexp")

BASELINE_DIR = "baseline"


class BaselineStep(PostTrainStep):
    """Post-training step: write ``<run dir>/baseline/`` (every train run; cheap next to training)."""

    name = "baseline"

    def run(self, trained: TrainedRun) -> Optional[Section]:
        from mlexp.monitor.checks import suggest_constraints
        from mlexp.monitor.stats import Profiler

        folder = Path(trained.run_dir) / BASELINE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        dataset, roles = trained.dataset, trained.dataset.roles
        string_columns = [*roles.categorical, *roles.text, *roles.datetime]
        profiler = Profiler(string_columns=string_columns, seed=int(trained.cfg.seed))
        X_dev = trained.X_dev
        for start in range(0, len(X_dev), 100_000):
            profiler.update(X_dev.iloc[start:start + 100_000])
        statistics = profiler.statistics()
        write_json(folder / "statistics.json", statistics)
        write_json(folder / "constraints.json", suggest_constraints(statistics))
        summary: Dict[str, Any] = {
            "task": trained.task, "target": trained.cfg.data.target, "classes": dataset.class_names,
            "features": [str(c) for c in X_dev.columns], "string_columns": string_columns,
            "facet": roles.facet, "rows": int(len(X_dev)), "seed": int(trained.cfg.seed), "files": {},
        }
        summary["files"].update(_model_quality(trained, folder))
        lines, warnings = [], []
        summary.update(_calibration(trained, folder, lines, warnings))
        if (folder / "calibration.json").is_file():
            summary["files"]["calibration"] = "calibration.json"
        summary["files"].update(_bias(trained, folder))
        summary["files"].update(_attribution(trained, folder, summary))
        lines += _responsible(Path(trained.run_dir), folder, summary, warnings)
        write_json(folder / "baseline.json", summary)
        files = ", ".join(f"`{name}`" for name in ["statistics.json", "constraints.json", *summary["files"].values()])
        lines = [f"`baseline/` holds {files}, from {len(X_dev)} development rows: "
                 "`mlexp mode=monitor monitor.baseline=<this run> monitor.data=<new data>` checks new data "
                 "against it (docs/monitor.md).", ""] + lines
        return Section("Monitoring baseline", lines, warnings)


def _model_quality(trained: TrainedRun, folder: Path) -> Dict[str, str]:
    from mlexp.monitor.quality import quality_metrics, suggest_quality_constraints

    files = {}
    classes = trained.dataset.class_names
    oof = trained.cv.predictions if trained.cv is not None else None
    if oof is not None and len(oof.y_true):
        stats = quality_metrics(trained.task, oof.y_true, oof.y_pred, _proba(oof), classes, trained.cfg.seed)
        stats["dataset"]["source"] = "out-of-fold predictions on the development rows"
        write_json(folder / "model_quality_statistics.json", stats)
        write_json(folder / "model_quality_constraints.json", suggest_quality_constraints(stats))
        files.update(model_quality="model_quality_statistics.json",
                     model_quality_constraints="model_quality_constraints.json")
    test = trained.test_predictions
    if test is not None and len(test.y_true):
        stats = quality_metrics(trained.task, test.y_true, test.y_pred, _proba(test), classes, trained.cfg.seed)
        stats["dataset"]["source"] = "test split"
        write_json(folder / "model_quality_test_statistics.json", stats)
        files["model_quality_test"] = "model_quality_test_statistics.json"
    return files


def _calibration(trained: TrainedRun, folder: Path, lines: List[str], warnings: List[str]) -> Dict[str, Any]:
    """Fit the CBPE calibrator on out-of-fold probabilities; check it on the test split."""
    from mlexp.monitor.cbpe import Calibrator, PerformanceEstimate, estimate_gap

    oof = trained.cv.predictions if trained.cv is not None else None
    if trained.task != "classification" or oof is None or _proba(oof) is None:
        lines.append("Performance estimation without labels: not available (needs a classifier with probabilities).")
        return {}
    calibrator = Calibrator.fit(_proba(oof), oof.y_true)
    calibrator.save(folder / "calibration.json")
    out: Dict[str, Any] = {"estimate_reference": reference_metrics(oof.y_true, oof.y_pred, _proba(oof))}
    test = trained.test_predictions
    if test is not None and _proba(test) is not None and len(test.y_true):
        estimate = PerformanceEstimate(calibrator)
        estimate.update(_proba(test))
        actual = reference_metrics(test.y_true, test.y_pred, _proba(test))
        gap = estimate_gap(estimate.metrics(), actual)
        out["estimate_check"] = {"split": "test", "rows": int(len(test.y_true)), "estimated": estimate.metrics(),
                                 "actual": actual, "error": gap}
        lines += ["Performance estimated without labels (CBPE) on the test split, against the real scores:", "",
                  "| metric | estimated | actual | error |", "|---|---:|---:|---:|"]
        lines += [f"| {k} | {estimate.metrics()[k]:.4f} | {actual[k]:.4f} | {v:+.4f} |" for k, v in gap.items()]
        lines.append("")
    return out


def reference_metrics(y_true: np.ndarray, y_pred: np.ndarray, proba: Optional[np.ndarray]) -> Dict[str, float]:
    """The metrics CBPE estimates, computed from labels (binary: class 1 positive; multi-class: macro)."""
    from sklearn import metrics as m

    n_classes = proba.shape[1] if proba is not None else int(max(y_true.max(), y_pred.max())) + 1
    average = "binary" if n_classes == 2 else "macro"
    labels = None if n_classes == 2 else np.arange(n_classes)
    out = {"accuracy": float(m.accuracy_score(y_true, y_pred)),
           "precision": float(m.precision_score(y_true, y_pred, average=average, labels=labels, zero_division=0)),
           "recall": float(m.recall_score(y_true, y_pred, average=average, labels=labels, zero_division=0)),
           "f1": float(m.f1_score(y_true, y_pred, average=average, labels=labels, zero_division=0))}
    if proba is not None and len(np.unique(y_true)) == n_classes:
        out["roc_auc"] = float(m.roc_auc_score(y_true, proba[:, 1]) if n_classes == 2 else
                               m.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels))
    return out


def _bias(trained: TrainedRun, folder: Path) -> Dict[str, str]:
    from mlexp.monitor.drift import BiasCounts, bias_analysis

    facet, classes = trained.dataset.roles.facet or _read(Path(trained.run_dir) / "bias.json").get("facet"), \
        trained.dataset.class_names
    if facet not in trained.X_dev.columns:
        return {}
    oof = trained.cv.predictions if trained.cv is not None else None
    if not facet or trained.task != "classification" or len(classes or []) != 2 or oof is None or oof.index is None:
        return {}
    counts = BiasCounts()
    counts.update(trained.X_dev[facet].iloc[oof.index], oof.y_pred, oof.y_true)
    write_json(folder / "bias_analysis.json", bias_analysis(facet, trained.cfg.data.target, classes[1], counts.metrics()))
    return {"bias": "bias_analysis.json"}


def _responsible(run_dir: Path, folder: Path, summary: Dict[str, Any], warnings: List[str]) -> List[str]:
    """Cross-check the baseline with bias.json and explain.json of the responsible-AI steps, when they ran.

    The monitor keeps its own values (it recomputes them on new data with the same code); these lines say
    how they relate to the run's reported ones: post-training bias should agree exactly (same out-of-fold
    predictions, Clarify's definitions), the attribution rankings broadly (another method: NDCG).
    """
    from mlexp.monitor.drift import ndcg

    lines: List[str] = []
    bias, explain = _read(run_dir / "bias.json"), _read(run_dir / "explain.json")
    if bias and (folder / "bias_analysis.json").is_file():
        summary.setdefault("responsible", {})["bias.json"] = "../bias.json"
        ours = _values(_read(folder / "bias_analysis.json").get("post_training_bias_metrics", {}))
        theirs = _values(bias.get("post_training_bias_metrics", {}))
        shared = [k for k in ours if k in theirs and _finite(ours[k]) and _finite(theirs[k])]
        if shared:
            gap = max(abs(ours[k] - theirs[k]) for k in shared)
            lines.append(f"Post-training bias in `bias.json` and the monitor's baseline agree on {len(shared)} "
                         f"values (largest difference {gap:.2g}).")
            if gap > 1e-6:
                warnings.append(f"bias.json and baseline/bias_analysis.json differ by up to {gap:.3g} on the same "
                                "metrics: the monitor compares new data with its own values.")
    ranking = {r["feature"]: float(r["importance"]) for r in explain.get("global_ranking", []) if "feature" in r}
    attribution = _read(folder / "attribution.json").get("explanations", {}).get("permutation", {})
    if ranking and attribution:
        summary.setdefault("responsible", {})["explain.json"] = "../explain.json"
        agreement = ndcg(ranking, attribution["label0"]["global_attributions"])
        summary["explain_ndcg"] = agreement
        lines.append(f"The monitor's label-free attribution ranking against `explain.json`'s "
                     f"({explain.get('global_ranking_measure', explain.get('method', ''))}): NDCG {agreement:.3f}.")
    return lines


def _values(section: Dict[str, Any]) -> Dict[tuple, float]:
    return {(facet, group["value_or_threshold"], metric["name"]): metric["value"]
            for facet, groups in section.get("facets", {}).items() for group in groups
            for metric in group.get("metrics", []) if isinstance(metric, dict) and "name" in metric}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and np.isfinite(value)


def _read(path: Path) -> Dict[str, Any]:
    """A JSON file of another step, or {} when it is absent or unreadable (absent means: that step did not run)."""
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        log.warning("baseline: %s is not JSON; ignored", path)
        return {}


def _attribution(trained: TrainedRun, folder: Path, summary: Dict[str, Any]) -> Dict[str, str]:
    from mlexp.monitor.drift import attributions

    try:
        values = attributions(trained.model, trained.X_dev, seed=int(trained.cfg.seed))
    except Exception as err:  # a model that cannot score shuffled rows: no attribution baseline, say why
        log.warning("baseline: no attribution baseline (%s: %s)", type(err).__name__, err)
        return {}
    write_json(folder / "attribution.json", {"version": "1.0", "explanations": {"permutation": {
        "label0": {"global_attributions": values}}}})
    summary["attribution_ranking"] = sorted(values, key=values.get, reverse=True)
    return {"attribution": "attribution.json"}


def _proba(predictions: Any) -> Optional[np.ndarray]:
    return predictions.scores if getattr(predictions, "scores_kind", None) == "proba" else None
