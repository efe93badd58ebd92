"""One monitoring window: everything accumulated over its rows, then every check against the baseline.

A window keeps sums and bounded samples only (a Profiler, a CBPE estimate, bias counts, at most
``ATTRIBUTION_ROWS`` rows for attributions); labelled rows keep three numbers each for model quality.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from mlexp.errors import MlexpError
from mlexp.monitor.baseline import BASELINE_DIR
from mlexp.monitor.stats import STRING, Profiler

__all__ = ["Baseline", "load_baseline", "WindowState", "CHECKS"]

log = logging.getLogger("mlexp")

CHECKS = ("data_quality", "model_quality", "bias", "attribution", "estimate")


@dataclass
class Baseline:
    """A train run's baseline/ files, read once."""

    run_dir: Path
    summary: Dict[str, Any]
    statistics: Dict[str, Any]
    constraints: Dict[str, Any]
    quality_constraints: Optional[Dict[str, Any]] = None
    calibrator: Any = None
    bias: Optional[Dict[str, Any]] = None
    attribution: Optional[Dict[str, float]] = None
    model: Any = field(default=None, repr=False)

    @property
    def classes(self) -> Optional[List[Any]]:
        return self.summary.get("classes")

    @property
    def task(self) -> str:
        return self.summary["task"]


def load_baseline(run_dir: Path, constraints: Optional[Path] = None) -> Baseline:
    from mlexp.monitor.cbpe import Calibrator

    folder = Path(run_dir) / BASELINE_DIR
    needed = [folder / "baseline.json", folder / "statistics.json", constraints or folder / "constraints.json"]
    absent = [str(p) for p in needed if not Path(p).is_file()]
    if absent:
        raise MlexpError(f"monitor.baseline={run_dir} holds no monitoring baseline (missing {', '.join(absent)}). "
                         "Point it at the directory of a train run (every train run writes baseline/), or train "
                         "one first: mlexp data=... hydra.run.dir=runs/model.")
    read = lambda name: json.loads((folder / name).read_text())  # noqa: E731
    summary = read("baseline.json")
    files = summary.get("files", {})
    base = Baseline(Path(run_dir), summary, read("statistics.json"), json.loads(Path(needed[2]).read_text()))
    if "model_quality_constraints" in files:
        base.quality_constraints = read(files["model_quality_constraints"])
    if "calibration" in files:
        base.calibrator = Calibrator.load(folder / files["calibration"])
    if "bias" in files:
        base.bias = read(files["bias"])
    if "attribution" in files:
        explanations = read(files["attribution"])["explanations"]
        base.attribution = next(iter(explanations.values()))["label0"]["global_attributions"]
    return base


class WindowState:
    """Accumulates one window's rows; ``finish()`` runs the checks and returns the window's results."""

    def __init__(self, key: Any, base: Baseline, checks: List[str], seed: int):
        from mlexp.monitor.cbpe import PerformanceEstimate
        from mlexp.monitor.checks import drift_edges
        from mlexp.monitor.drift import BiasCounts

        self.key, self.base, self.checks, self.seed = key, base, checks, seed
        strings = [f["name"] for f in base.statistics["features"] if f["inferred_type"] == STRING]
        numbers = [f["name"] for f in base.statistics["features"] if f["inferred_type"] != STRING]
        self.profiler = Profiler(strings, numbers, drift_edges(base.statistics), seed)
        self.estimate = PerformanceEstimate(base.calibrator) if base.calibrator and "estimate" in checks else None
        facet = base.summary.get("facet")
        self.bias = BiasCounts() if base.bias and facet and "bias" in checks else None
        self.labelled: List[tuple] = []
        self.sample: Optional[pd.DataFrame] = None
        self._keys = np.empty(0)
        self._rng = np.random.default_rng(seed)
        self.rows = 0

    def add(self, inputs: pd.DataFrame, y_pred: Optional[np.ndarray], scores: Optional[np.ndarray],
            y_true: Optional[np.ndarray]) -> None:
        self.rows += len(inputs)
        if "data_quality" in self.checks:
            self.profiler.update(inputs)
        if y_pred is None:
            return
        if self.estimate is not None and scores is not None:
            self.estimate.update(scores)
        facet = self.base.summary.get("facet")
        if self.bias is not None and facet in inputs.columns:
            self.bias.update(inputs[facet], y_pred, y_true)
        if y_true is not None:
            known = ~pd.isna(y_true)
            if known.any():
                self.labelled.append((y_true[known], y_pred[known], None if scores is None else scores[known]))
        if "attribution" in self.checks and self.base.attribution:
            self._keep_rows(inputs)

    def _keep_rows(self, inputs: pd.DataFrame) -> None:
        from mlexp.monitor.drift import ATTRIBUTION_ROWS

        keys = self._rng.random(len(inputs))
        frame = inputs if self.sample is None else pd.concat([self.sample, inputs], ignore_index=True)
        keys = np.concatenate([self._keys, keys])
        if len(frame) > ATTRIBUTION_ROWS:
            keep = np.sort(np.argpartition(keys, ATTRIBUTION_ROWS)[:ATTRIBUTION_ROWS])
            frame, keys = frame.iloc[keep].reset_index(drop=True), keys[keep]
        self.sample, self._keys = frame, keys

    def finish(self, distance: str, tolerance: Dict[str, float]) -> Dict[str, Any]:
        from mlexp.monitor.baseline import reference_metrics
        from mlexp.monitor.cbpe import estimate_gap
        from mlexp.monitor.checks import data_quality_violations
        from mlexp.monitor.drift import attribution_violation, attributions, bias_violations, ndcg
        from mlexp.monitor.quality import quality_metrics, quality_violations

        base, result = self.base, {"window": self.key, "rows": self.rows, "violations": []}
        if "data_quality" in self.checks:
            result["statistics"] = self.profiler.statistics()
            found, result["distances"] = data_quality_violations(base.statistics, base.constraints, self.profiler, distance)
            result["violations"] += found
        if self.labelled:
            y_true, y_pred, scores = (np.concatenate(parts) if parts[0] is not None else None
                                      for parts in zip(*self.labelled))
            result["labelled"] = int(len(y_true))
            result["quality"] = quality_metrics(base.task, y_true, y_pred, scores, base.classes, self.seed)
            if base.quality_constraints and "model_quality" in self.checks:
                result["violations"] += quality_violations(base.quality_constraints, result["quality"],
                                                           tolerance["quality"])
            if base.task == "classification":
                result["actual"] = reference_metrics(y_true, y_pred, scores)
        if self.estimate is not None and self.estimate.rows:
            result["estimated"] = self.estimate.metrics()
            reference = base.summary.get("estimate_reference", {})
            result["violations"] += _estimate_violations(result["estimated"], reference, tolerance["quality"])
            if "actual" in result:
                result["estimate_error"] = estimate_gap(result["estimated"], result["actual"])
        if self.bias is not None:
            facet = base.summary["facet"]
            result["bias"] = self.bias.metrics()
            result["violations"] += bias_violations(base.bias, result["bias"], facet, tolerance["bias"])
        if self.sample is not None and base.model is not None:
            features = base.summary["features"]
            if all(c in self.sample.columns for c in features):
                current = attributions(base.model, self.sample[features], seed=self.seed)
                result["attribution"], result["ndcg"] = current, ndcg(base.attribution, current)
                found = attribution_violation(base.attribution, current, tolerance["ndcg"])
                result["violations"] += [found] if found else []
        return result


def _estimate_violations(estimated: Dict[str, float], reference: Dict[str, float], tolerance: float) -> List[Dict[str, str]]:
    out = []
    for metric, value in estimated.items():
        before = reference.get(metric)
        if before is None or value >= before - tolerance:
            continue
        out.append({"metric_name": f"estimated_{metric}", "constraint_check_type": "LessThanThreshold",
                    "description": (f"Metric estimated_{metric} (CBPE, without labels) with {value:.4g} was "
                                    f"LessThanThreshold '{before - tolerance:.4g}' (out-of-fold baseline {before:.4g}, "
                                    f"monitor.quality_tolerance {tolerance:g}).")})
    return out
