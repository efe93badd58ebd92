"""A compression sweep's summary: compress_sweep.csv and a plot of each metric against sparsity, across the job dirs.

Registered as a Hydra callback in conf/config.yaml. After each job that wrote compress.json
(``mlexp -m ... compress=prune compress.sparsity=0.5,0.7,0.9,0.95``), the summary is rebuilt
from every job directory of the sweep, so it is complete whichever job ends last.
"""

import json
import logging
from pathlib import Path
from typing import Any, Dict, List

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

__all__ = ["CompressSweepCallback", "summarize_sweep", "SWEEP_CSV", "SWEEP_PNG"]

log = logging.getLogger("mlexp")

SWEEP_CSV = "compress_sweep.csv"
SWEEP_PNG = "compress_sweep.png"


class CompressSweepCallback(Callback):
    """Rebuild the sweep directory's compression summary after each job that compressed a model."""

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        if not (Path(config.hydra.runtime.output_dir) / "compress.json").is_file():
            return
        try:
            summarize_sweep(Path(config.hydra.sweep.dir))
        except Exception as err:  # a summary must never fail the sweep
            log.warning("compress sweep summary not written: %s", err)


def summarize_sweep(sweep_dir: Path) -> List[Dict[str, Any]]:
    """One row per job with compress.json (its sparsity, sizes and metrics before and after); writes the CSV and,
    when jobs pruned, the plot of accuracy (r2) and the objective metric against sparsity."""
    rows = []
    for path in sorted(Path(sweep_dir).glob("*/compress.json")):
        content = json.loads(path.read_text())
        before, after = content["before"], content["after"]
        row: Dict[str, Any] = {
            "job": path.parent.name, "method": content["method"],
            "sparsity": content["settings"].get("sparsity"), "measured_sparsity": after.get("sparsity"),
            "model_bytes_before": before.get("model_bytes"), "model_bytes_after": after.get("model_bytes"),
            "nonzero_parameters": after.get("nonzero_parameters"),
            "objective_metric": (content.get("objective") or {}).get("metric"),
        }
        for name in before["metrics"]:
            row[f"{name}_before"], row[f"{name}_after"] = before["metrics"][name], after["metrics"].get(name)
        rows.append(row)
    if not rows:
        return rows
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame.sort_values(["method", "sparsity"], na_position="last").to_csv(Path(sweep_dir) / SWEEP_CSV, index=False)
    pruned = frame[frame["method"] == "prune"].dropna(subset=["sparsity"]).sort_values("sparsity")
    if len(pruned):
        _plot(pruned, Path(sweep_dir) / SWEEP_PNG)
    return rows


def _plot(frame: Any, path: Path) -> None:
    from matplotlib.figure import Figure

    # Accuracy (r2 for regression) and the run's objective metric: the scores a sweep is read by.
    wanted = ["accuracy" if "accuracy_after" in frame else "r2", *frame["objective_metric"].dropna().unique()]
    names = [n for n in dict.fromkeys(wanted) if f"{n}_after" in frame and frame[f"{n}_after"].notna().any()]
    figure = Figure(figsize=(6.5, 4.2))
    axes = figure.subplots()
    for name in names:
        line = axes.plot(frame["sparsity"], frame[f"{name}_after"], marker="o", label=f"{name} pruned")[0]
        axes.axhline(frame[f"{name}_before"].iloc[0], linestyle="--", color=line.get_color(), linewidth=1,
                     label=f"{name} before")
    axes.set(xlabel="sparsity (fraction of the pruned weights at zero)", ylabel="test score",
             title="Test scores against sparsity (dashed: before pruning)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    temporary = path.with_suffix(".tmp.png")
    figure.savefig(temporary, dpi=90)
    temporary.replace(path)
