"""Score predictions: the classification and regression metrics every run reports (weighted when rows carry weights)."""

import math
from typing import Any, Dict, Optional

import numpy as np

__all__ = ["CLASSIFICATION_METRICS", "REGRESSION_METRICS", "score", "resolve_objective", "LOWER_IS_BETTER",
           "decides_by_threshold", "cost_scorer", "label_scores"]

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc",
                          "average_precision", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = {"log_loss", "rmse", "mae"}


def score(estimator: Any, X, y: np.ndarray, task: str, n_classes: Optional[int] = None,
          sample_weight: Optional[np.ndarray] = None) -> Dict[str, Optional[float]]:
    """Every metric of the task for a fitted estimator on (X, y), weighted by ``sample_weight`` if given.

    Binary scores use class 1 as positive; multi-class precision/recall/F1 are macro
    averages and ROC AUC / average precision are one-vs-rest macro averages. A score that
    needs probabilities is None for a model without predict_proba (ROC AUC and average
    precision fall back to decision_function). Labels are the most probable class, except for
    a model with a tuned decision threshold, whose own predict() decides.
    """
    from sklearn import metrics as m

    y = np.asarray(y)
    w = sample_weight
    if task == "regression":
        predicted = estimator.predict(X)
        return {
            "rmse": float(math.sqrt(m.mean_squared_error(y, predicted, sample_weight=w))),
            "mae": float(m.mean_absolute_error(y, predicted, sample_weight=w)),
            "r2": float(m.r2_score(y, predicted, sample_weight=w)) if len(y) > 1 else None,
        }
    labels = np.arange(n_classes if n_classes is not None else int(y.max()) + 1)
    binary = len(labels) == 2
    proba = estimator.predict_proba(X) if hasattr(estimator, "predict_proba") else None
    if proba is not None and proba.shape[1] == len(labels) and not decides_by_threshold(estimator):
        predicted = labels[np.argmax(proba, axis=1)]
    else:
        predicted = estimator.predict(X)
    result: Dict[str, Optional[float]] = {
        **label_scores(y, predicted, labels, w), "roc_auc": None, "average_precision": None, "log_loss": None,
    }
    present = np.unique(y)
    if proba is not None:
        result["log_loss"] = float(m.log_loss(y, np.clip(proba, 1e-15, 1.0), labels=labels, sample_weight=w))
        ranking = proba[:, 1] if binary else proba
    elif hasattr(estimator, "decision_function"):
        ranking = estimator.decision_function(X)
    else:
        ranking = None
    if ranking is not None and len(present) > 1:
        if binary:
            result["roc_auc"] = float(m.roc_auc_score(y, ranking, sample_weight=w))
            result["average_precision"] = float(m.average_precision_score(y, ranking, sample_weight=w))
        elif len(present) == len(labels):
            probs = ranking if proba is not None else _softmax(ranking)
            result["roc_auc"] = float(m.roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=labels,
                                                      sample_weight=w))
            onehot = (y[:, None] == labels[None, :]).astype(int)
            result["average_precision"] = float(m.average_precision_score(onehot, probs, average="macro", sample_weight=w))
    return result


def label_scores(y: np.ndarray, predicted: np.ndarray, labels: np.ndarray,
                 sample_weight: Optional[np.ndarray] = None) -> Dict[str, float]:
    """The metrics of hard labels: accuracy, balanced accuracy, precision, recall, F1."""
    import warnings

    from sklearn import metrics as m

    binary = len(labels) == 2
    average = "binary" if binary else "macro"
    chosen = None if binary else labels
    kw = {"labels": chosen, "average": average, "zero_division": 0, "sample_weight": sample_weight}
    with warnings.catch_warnings():  # a class absent from a small fold: balanced accuracy averages the present ones
        warnings.simplefilter("ignore", UserWarning)
        balanced = float(m.balanced_accuracy_score(y, predicted, sample_weight=sample_weight))
    return {
        "accuracy": float(m.accuracy_score(y, predicted, sample_weight=sample_weight)),
        "balanced_accuracy": balanced,
        "precision": float(m.precision_score(y, predicted, **kw)),
        "recall": float(m.recall_score(y, predicted, **kw)),
        "f1": float(m.f1_score(y, predicted, **kw)),
    }


def decides_by_threshold(estimator: Any) -> bool:
    """True when the estimator (or a pipeline's last step) decides labels by a tuned or fixed threshold."""
    from sklearn.model_selection._classification_threshold import BaseThresholdClassifier

    flag = getattr(estimator, "thresholded", None)
    if flag is not None:
        return bool(flag)
    steps = getattr(estimator, "steps", None)
    final = steps[-1][1] if steps else estimator
    return isinstance(final, BaseThresholdClassifier)


def cost_scorer(false_positive: float = 1.0, false_negative: float = 1.0, true_positive: float = 0.0,
                true_negative: float = 0.0) -> Any:
    """A scorer of minus the average cost per row of a binary classifier's decisions (higher is better).

    Costs are per row; a gain is a negative cost. For TunedThresholdClassifierCV's ``scoring``.
    """
    from sklearn.metrics import make_scorer

    return make_scorer(_negative_cost, response_method="predict", fp=false_positive, fn=false_negative,
                       tp=true_positive, tn=true_negative)


def _negative_cost(y_true, y_pred, fp: float, fn: float, tp: float, tn: float, sample_weight=None) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    w = np.ones(len(y_true)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    cost = np.where(y_true == 1, np.where(y_pred == 1, tp, fn), np.where(y_pred == 1, fp, tn))
    return -float(np.sum(w * cost) / np.sum(w))


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
