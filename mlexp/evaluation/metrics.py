"""Score predictions: the classification and regression metrics every run reports."""

import math
from typing import Any, Dict, Optional

import numpy as np

__all__ = ["CLASSIFICATION_METRICS", "REGRESSION_METRICS", "score", "resolve_objective", "LOWER_IS_BETTER"]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = {"log_loss", "rmse", "mae"}


def score(estimator: Any, X, y: np.ndarray, task: str, n_classes: Optional[int] = None) -> Dict[str, Optional[float]]:
    """Every metric of the task for a fitted estimator on (X, y).

    Binary scores use class 1 as positive; multi-class precision/recall/F1 are macro
    averages and ROC AUC is one-vs-rest. A score that needs probabilities is None for a
    model without predict_proba (ROC AUC falls back to decision_function).
    """
    from sklearn import metrics as m

    y = np.asarray(y)
    if task == "regression":
        predicted = estimator.predict(X)
        return {
            "rmse": float(math.sqrt(m.mean_squared_error(y, predicted))),
            "mae": float(m.mean_absolute_error(y, predicted)),
            "r2": float(m.r2_score(y, predicted)) if len(y) > 1 else None,
        }
    labels = np.arange(n_classes if n_classes is not None else int(y.max()) + 1)
    binary = len(labels) == 2
    proba = estimator.predict_proba(X) if hasattr(estimator, "predict_proba") else None
    predicted = labels[np.argmax(proba, axis=1)] if proba is not None and proba.shape[1] == len(labels) else estimator.predict(X)
    average = "binary" if binary else "macro"
    result: Dict[str, Optional[float]] = {
        "accuracy": float(m.accuracy_score(y, predicted)),
        "precision": float(m.precision_score(y, predicted, labels=labels if not binary else None, average=average, zero_division=0)),
        "recall": float(m.recall_score(y, predicted, labels=labels if not binary else None, average=average, zero_division=0)),
        "f1": float(m.f1_score(y, predicted, labels=labels if not binary else None, average=average, zero_division=0)),
        "roc_auc": None,
        "log_loss": None,
    }
    present = np.unique(y)
    if proba is not None:
        result["log_loss"] = float(m.log_loss(y, np.clip(proba, 1e-15, 1.0), labels=labels))
        ranking = proba[:, 1] if binary else proba
    elif hasattr(estimator, "decision_function"):
        ranking = estimator.decision_function(X)
    else:
        ranking = None
    if ranking is not None and len(present) > 1:
        if binary:
            result["roc_auc"] = float(m.roc_auc_score(y, ranking))
        elif len(present) == len(labels):
            probs = ranking if proba is not None else _softmax(ranking)
            result["roc_auc"] = float(m.roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=labels))
    return result


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def resolve_objective(metric: str, direction: str, task: str) -> tuple:
    """(metric, direction) with `auto` settled: roc_auc / rmse, maximize scores, minimize errors."""
    from mlexp.errors import MlexpError

    names = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if metric == "auto":
        metric = "roc_auc" if task == "classification" else "rmse"
    if metric not in names:
        raise MlexpError(f"objective.metric={metric!r} is not a {task} metric; choose one of {', '.join(names)}.")
    if direction == "auto":
        direction = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    if direction not in ("minimize", "maximize"):
        raise MlexpError(f"objective.direction must be auto, minimize or maximize; got {direction!r}.")
    return metric, direction
