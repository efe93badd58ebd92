"""Post-training diagnostics: a model that does not fit its own training folds; metrics at 0.5 vs a tuned threshold."""

import json
import logging
from typing import Any, Dict, List, Optional

import numpy as np

from mlexp.posttrain import PostTrainStep, Section, TrainedRun

__all__ = ["FitCheck", "ThresholdReport", "not_fitting", "THRESHOLD_FILE"]

log = logging.getLogger("mlexp")

THRESHOLD_FILE = "threshold.json"
LABEL_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1")
MIN_TRAIN_AUC = 0.6  # without probabilities: a training-fold ROC AUC below this does not separate the classes


def not_fitting(train: Dict[str, Any], task: str, y: np.ndarray, weights: Optional[np.ndarray] = None) -> Optional[str]:
    """Why the training-fold scores say the model failed to learn its own rows, or None.

    Classification: a training log loss above that of predicting the class frequencies (or, without
    probabilities, a training ROC AUC below 0.6). Regression: a training R^2 at or below 0 (no
    better than predicting the mean).
    """
    def mean(metric: str) -> Optional[float]:
        return (train.get(metric) or {}).get("mean")

    if task == "regression":
        r2 = mean("r2")
        if r2 is not None and r2 <= 0:
            return f"training-fold R^2 {r2:.3f} is no better than predicting the mean (0)"
        return None
    counts = np.bincount(y, weights=weights).astype(float)
    shares = counts[counts > 0] / counts.sum()
    baseline = float(-(shares * np.log(shares)).sum())
    loss, auc = mean("log_loss"), mean("roc_auc")
    if loss is not None:
        if loss > baseline:
            return (f"training-fold log loss {loss:.3f} is worse than predicting the class frequencies "
                    f"({baseline:.3f})" + (f"; training ROC AUC {auc:.3f}" if auc is not None else ""))
        return None
    if auc is not None and auc < MIN_TRAIN_AUC:
        return f"training-fold ROC AUC {auc:.3f} is below {MIN_TRAIN_AUC}"
    return None


class FitCheck(PostTrainStep):
    """Flags, apart from the fold-variance and over-fitting warnings, a model that does not fit its own training folds."""

    name = "fit_check"

    def run(self, trained: TrainedRun) -> Optional[Section]:
        if not trained.cv.train_folds:
            return None
        weights = None if trained.dataset.weights is None else trained.dataset.weights.to_numpy()[trained.dev]
        reason = not_fitting(trained.cv.train_summary(), trained.task, trained.y_dev.to_numpy(), weights)
        if reason is None:
            return None
        warning = (
            f"The model does not fit its own training rows: {reason}. This is not over-fitting but a failure to "
            "learn: check the model's parameters (a learning rate too high or too low, too few iterations, too "
            "strong a penalty), the features and the target before reading the validation scores."
        )
        return Section("Training fit", [warning], warnings=[warning])


class ThresholdReport(PostTrainStep):
    """threshold=tuned|cost: metrics at 0.5 and at the tuned threshold, in report.md and threshold.json."""

    name = "threshold"

    def enabled(self, cfg: Any) -> bool:
        node = cfg.get("threshold")
        return node is not None and bool(node.get("_target_"))

    def run(self, trained: TrainedRun) -> Optional[Section]:
        model = trained.model.steps[-1][1]
        weights = None if trained.dataset.weights is None else trained.dataset.weights.to_numpy()
        cv = _at_both(trained.cv.predictions, None if weights is None else weights[trained.dev])
        test = _at_both(trained.test_predictions, None if weights is None else weights[trained.test])
        tuned = getattr(model, "best_threshold_", None)
        content = {"tuned_threshold": tuned, "scoring": str(getattr(model, "scoring", "")),
                   "best_score": getattr(model, "best_score_", None), "cv": cv, "test": test}
        (trained.run_dir / THRESHOLD_FILE).write_text(json.dumps(content, indent=2, default=float))
        lines = [f"Decision threshold tuned on the training folds for {content['scoring']}: "
                 f"**{tuned:.4f}** (final model; each CV fold tuned its own).", "",
                 "| metric | cv at 0.5 | cv tuned | test at 0.5 | test tuned |", "|---|---:|---:|---:|---:|"]
        for metric in LABEL_METRICS:
            row = [cv.get("at_0.5", {}).get(metric), cv.get("tuned", {}).get(metric),
                   test.get("at_0.5", {}).get(metric), test.get("tuned", {}).get(metric)]
            lines.append(f"| {metric} | " + " | ".join("n/a" if v is None else f"{v:.4f}" for v in row) + " |")
        return Section("Decision threshold", lines)


def _at_both(predictions: Any, weights: Optional[np.ndarray]) -> Dict[str, Dict[str, float]]:
    """Label metrics of held-out predictions at 0.5 (the most probable class) and at the tuned threshold
    (the model's own labels), averaged over folds for out-of-fold predictions."""
    from mlexp.evaluation.metrics import label_scores

    if predictions is None or predictions.scores is None or predictions.scores_kind != "proba":
        return {}
    labels = np.arange(predictions.scores.shape[1])
    out: Dict[str, Dict[str, float]] = {}
    for name, predicted in (("at_0.5", np.argmax(predictions.scores, axis=1)), ("tuned", predictions.y_pred)):
        per_fold: List[Dict[str, float]] = []
        for fold in np.unique(predictions.fold):
            rows = predictions.fold == fold
            w = None if weights is None else weights[predictions.index[rows]]
            per_fold.append(label_scores(predictions.y_true[rows], predicted[rows], labels, w))
        out[name] = {metric: float(np.mean([f[metric] for f in per_fold])) for metric in LABEL_METRICS}
    return out
