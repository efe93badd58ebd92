"""Performance estimation without labels: confidence-based performance estimation (CBPE), as NannyML does it.

At training time an isotonic calibrator per class is fitted on the out-of-fold probabilities (the
model's own probabilities are not calibrated); it is stored as plain JSON (the isotonic steps), never
pickled. On unlabeled data each row's calibrated probability of its predicted class is the chance
that the prediction is right, so the expected confusion matrix, accuracy, precision, recall, F1 and
the expected ROC curve follow from the probabilities alone. Sums only: data stream through in chunks.
Binary metrics take class 1 as positive; multi-class ones are macro averages (ROC AUC one-vs-rest),
as mlexp scores them.
"""

import json
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

__all__ = ["Calibrator", "PerformanceEstimate", "ESTIMATED_METRICS"]

ESTIMATED_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
_SCORE_BINS = 1000


class Calibrator:
    """Isotonic calibration of each class's probability (binary: class 1 only), kept as step points."""

    def __init__(self, steps: List[Dict[str, List[float]]], n_classes: int):
        self.steps, self.n_classes = steps, n_classes

    @classmethod
    def fit(cls, scores: np.ndarray, y: np.ndarray) -> "Calibrator":
        from sklearn.isotonic import IsotonicRegression

        n_classes = scores.shape[1]
        steps = []
        for c in ([1] if n_classes == 2 else range(n_classes)):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores[:, c], (y == c).astype(float))
            steps.append({"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()})
        return cls(steps, n_classes)

    def transform(self, scores: np.ndarray) -> np.ndarray:
        columns = [np.interp(scores[:, c], step["x"], step["y"])
                   for c, step in zip([1] if self.n_classes == 2 else range(self.n_classes), self.steps)]
        if self.n_classes == 2:
            return np.column_stack([1 - columns[0], columns[0]])
        calibrated = np.column_stack(columns)
        totals = calibrated.sum(axis=1, keepdims=True)
        return np.where(totals > 0, calibrated / np.where(totals > 0, totals, 1), scores)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"method": "isotonic", "fitted_on": "out-of-fold probabilities",
                                    "n_classes": self.n_classes, "steps": self.steps}))

    @classmethod
    def load(cls, path: Path) -> "Calibrator":
        content = json.loads(Path(path).read_text())
        return cls(content["steps"], int(content["n_classes"]))


class PerformanceEstimate:
    """Expected metrics of a classifier on unlabeled rows, fed chunk by chunk with ``update(scores)``."""

    def __init__(self, calibrator: Calibrator):
        self.calibrator = calibrator
        k = calibrator.n_classes
        self.rows = 0
        self.correct = 0.0
        self.tp, self.fp, self.fn = np.zeros(k), np.zeros(k), np.zeros(k)
        self.positive = np.zeros((k, _SCORE_BINS))
        self.negative = np.zeros((k, _SCORE_BINS))

    def update(self, scores: np.ndarray) -> None:
        scores = np.asarray(scores, dtype=float)
        calibrated = self.calibrator.transform(scores)
        predicted = scores.argmax(axis=1)
        rows = np.arange(len(scores))
        self.rows += len(scores)
        self.correct += float(calibrated[rows, predicted].sum())
        for c in range(self.calibrator.n_classes):
            chosen = predicted == c
            p = calibrated[:, c]
            self.tp[c] += p[chosen].sum()
            self.fp[c] += (1 - p[chosen]).sum()
            self.fn[c] += p[~chosen].sum()
            bins = np.clip((scores[:, c] * _SCORE_BINS).astype(int), 0, _SCORE_BINS - 1)
            self.positive[c] += np.bincount(bins, weights=p, minlength=_SCORE_BINS)
            self.negative[c] += np.bincount(bins, weights=1 - p, minlength=_SCORE_BINS)

    def metrics(self) -> Dict[str, float]:
        if not self.rows:
            return {}
        classes = [1] if self.calibrator.n_classes == 2 else list(range(self.calibrator.n_classes))
        precision = [_ratio(self.tp[c], self.tp[c] + self.fp[c]) for c in classes]
        recall = [_ratio(self.tp[c], self.tp[c] + self.fn[c]) for c in classes]
        f1 = [_ratio(2 * p * r, p + r) for p, r in zip(precision, recall)]
        return {"accuracy": self.correct / self.rows, "precision": float(np.mean(precision)),
                "recall": float(np.mean(recall)), "f1": float(np.mean(f1)),
                "roc_auc": float(np.mean([_auc(self.positive[c], self.negative[c]) for c in classes]))}


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the expected ROC curve: thresholds from the highest score bin down; ties count half."""
    tpr = np.concatenate([[0.0], np.cumsum(positive[::-1])]) / max(positive.sum(), 1e-12)
    fpr = np.concatenate([[0.0], np.cumsum(negative[::-1])]) / max(negative.sum(), 1e-12)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def estimate_gap(estimated: Dict[str, float], actual: Dict[str, Any]) -> Dict[str, float]:
    """Estimated minus actual, metric by metric (how close CBPE came once labels arrived)."""
    return {k: estimated[k] - float(actual[k]) for k in estimated if actual.get(k) is not None}
