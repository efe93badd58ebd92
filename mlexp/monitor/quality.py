"""Model-quality metrics in Model Monitor's format, their suggested constraints, and the comparison with them.

Binary classifiers get ``binary_classification_metrics`` (confusion_matrix keyed actual -> predicted, recall,
precision, accuracy, true/false positive/negative rates, ROC and precision-recall curves, auc, f0_5/f1/f2 and
the same for the best constant classifier, which always predicts the positive class), multi-class ones
``multiclass_classification_metrics`` (accuracy, weighted recall/precision/f0_5/f1/f2, best constant =
the majority class), regressors ``regression_metrics`` (mae, mse, rmse, r2). Each metric is
``{"value", "standard_deviation"}``; the deviation comes from five random 80% samples when there are
at least 200 rows, else "NaN", as Model Monitor computes it.
"""

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

__all__ = ["quality_metrics", "suggest_quality_constraints", "quality_violations", "section_of", "headline"]

_BINARY_CHECKED = ("accuracy", "precision", "recall", "f1", "auc")
_MULTI_CHECKED = ("accuracy", "weighted_precision", "weighted_recall", "weighted_f1")
_REGRESSION_CHECKED = {"mae": "GreaterThanThreshold", "rmse": "GreaterThanThreshold", "r2": "LessThanThreshold"}


def section_of(task: str, n_classes: Optional[int]) -> str:
    if task == "regression":
        return "regression"
    return "binary_classification" if n_classes == 2 else "multiclass_classification"


def quality_metrics(task: str, y_true: np.ndarray, y_pred: np.ndarray, scores: Optional[np.ndarray] = None,
                    classes: Optional[Sequence[Any]] = None, seed: int = 0) -> Dict[str, Any]:
    """Model Monitor's model-quality statistics for these predictions (class indices for classifiers)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if task == "classification":
        y_true, y_pred = y_true.astype(int), y_pred.astype(int)
    n_classes = len(classes) if classes is not None else None
    section = section_of(task, n_classes)
    values = _values(section, y_true, y_pred, scores, n_classes)
    deviation = _deviations(section, y_true, y_pred, scores, n_classes, seed) if len(y_true) >= 200 else {}
    metrics: Dict[str, Any] = {}
    if task == "classification":
        metrics["confusion_matrix"] = _confusion(y_true, y_pred, classes)
    for name, value in values.items():
        metrics[name] = {"value": value, "standard_deviation": deviation.get(name, "NaN")}
    if section == "binary_classification" and scores is not None and len(np.unique(y_true)) > 1:
        metrics.update(_curves(y_true, scores[:, 1]))
    return {"version": 0.0, "dataset": {"item_count": int(len(y_true))}, f"{section}_metrics": metrics}


def suggest_quality_constraints(statistics: Dict[str, Any]) -> Dict[str, Any]:
    """Model Monitor's suggested constraints: each checked metric's baseline value as its threshold."""
    section = next(k for k in statistics if k.endswith("_metrics"))
    name = section[: -len("_metrics")]
    metrics = statistics[section]
    if name == "regression":
        checked = _REGRESSION_CHECKED
    else:
        checked = {m: "LessThanThreshold" for m in (_BINARY_CHECKED if name.startswith("binary") else _MULTI_CHECKED)}
    constraints = {metric: {"threshold": metrics[metric]["value"], "comparison_operator": operator}
                   for metric, operator in checked.items()
                   if metric in metrics and _finite(metrics[metric]["value"])}
    return {"version": 0.0, f"{name}_constraints": constraints}


def quality_violations(constraints: Dict[str, Any], statistics: Dict[str, Any], tolerance: float,
                       prefix: str = "") -> List[Dict[str, str]]:
    """Metrics worse than their constraint by more than ``tolerance`` (absolute for scores, relative for errors)."""
    section = next((k for k in constraints if k.endswith("_constraints")), None)
    if section is None:
        return []
    current = statistics.get(section.replace("_constraints", "_metrics"), {})
    violations = []
    for metric, constraint in constraints[section].items():
        entry = current.get(metric)
        if not entry or not _finite(entry.get("value")):
            continue
        value, threshold = float(entry["value"]), float(constraint["threshold"])
        operator = constraint.get("comparison_operator", "LessThanThreshold")
        if operator == "LessThanThreshold":
            limit = threshold - tolerance
            violated = value < limit
        else:
            limit = threshold * (1 + tolerance)
            violated = value > limit
        if violated:
            spread = entry.get("standard_deviation")
            plus = f" +/- {spread:.4g}" if _finite(spread) else ""
            violations.append({
                "metric_name": prefix + metric, "constraint_check_type": operator,
                "description": (f"Metric {prefix}{metric} with {value:.4g}{plus} was {operator} '{limit:.4g}' "
                                f"(baseline {threshold:.4g}, monitor.quality_tolerance {tolerance:g})."),
            })
    return violations


def headline(statistics: Dict[str, Any]) -> Dict[str, float]:
    """The plain metric values of a statistics dict (no curves, no confusion matrix)."""
    section = next((k for k in statistics if k.endswith("_metrics")), None)
    if section is None:
        return {}
    return {k: v["value"] for k, v in statistics[section].items() if isinstance(v, dict) and "value" in v}


def _values(section: str, y: np.ndarray, pred: np.ndarray, scores: Optional[np.ndarray],
            n_classes: Optional[int]) -> Dict[str, float]:
    from sklearn import metrics as m

    if section == "regression":
        mse = float(m.mean_squared_error(y, pred))
        return {"mae": float(m.mean_absolute_error(y, pred)), "mse": mse, "rmse": math.sqrt(mse),
                "r2": float(m.r2_score(y, pred)) if len(y) > 1 else float("nan")}
    if section == "binary_classification":
        out = _binary(y, pred)
        constant = _binary(y, np.ones_like(y))
        out.update({f"{k}_best_constant_classifier": constant[k] for k in ("recall", "precision", "accuracy",
                                                                            "f0_5", "f1", "f2")})
        if scores is not None and len(np.unique(y)) > 1:
            out["auc"] = float(m.roc_auc_score(y, scores[:, 1]))
        return out
    labels = np.arange(n_classes)
    out = _weighted(y, pred, labels)
    majority = np.full_like(y, np.bincount(y, minlength=n_classes).argmax())
    out.update({f"{k}_best_constant_classifier": v for k, v in _weighted(y, majority, labels).items()})
    return out


def _binary(y: np.ndarray, pred: np.ndarray) -> Dict[str, float]:
    tp = float(np.sum((pred == 1) & (y == 1)))
    fp = float(np.sum((pred == 1) & (y == 0)))
    fn = float(np.sum((pred == 0) & (y == 1)))
    tn = float(np.sum((pred == 0) & (y == 0)))
    recall, precision = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
    out = {"recall": recall, "precision": precision, "accuracy": _ratio(tp + tn, len(y)),
           "true_positive_rate": recall, "true_negative_rate": _ratio(tn, tn + fp),
           "false_positive_rate": _ratio(fp, fp + tn), "false_negative_rate": _ratio(fn, fn + tp)}
    for beta, name in ((0.5, "f0_5"), (1.0, "f1"), (2.0, "f2")):
        out[name] = _fbeta(precision, recall, beta)
    return out


def _weighted(y: np.ndarray, pred: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    from sklearn import metrics as m

    kwargs = {"labels": labels, "average": "weighted", "zero_division": 0}
    return {"accuracy": float(m.accuracy_score(y, pred)),
            "weighted_recall": float(m.recall_score(y, pred, **kwargs)),
            "weighted_precision": float(m.precision_score(y, pred, **kwargs)),
            **{f"weighted_{name}": float(m.fbeta_score(y, pred, beta=beta, **kwargs))
               for beta, name in ((0.5, "f0_5"), (1.0, "f1"), (2.0, "f2"))}}


def _deviations(section: str, y: np.ndarray, pred: np.ndarray, scores: Optional[np.ndarray],
                n_classes: Optional[int], seed: int) -> Dict[str, float]:
    rng = np.random.default_rng(seed)
    runs: Dict[str, List[float]] = {}
    for _ in range(5):
        rows = rng.choice(len(y), size=int(0.8 * len(y)), replace=False)
        part = _values(section, y[rows], pred[rows], None if scores is None else scores[rows], n_classes)
        for name, value in part.items():
            runs.setdefault(name, []).append(value)
    return {name: float(np.std(v)) for name, v in runs.items() if all(_finite(x) for x in v)}


def _confusion(y: np.ndarray, pred: np.ndarray, classes: Sequence[Any]) -> Dict[str, Dict[str, int]]:
    return {str(actual): {str(guess): int(np.sum((y == i) & (pred == j))) for j, guess in enumerate(classes)}
            for i, actual in enumerate(classes)}


def _curves(y: np.ndarray, positive: np.ndarray) -> Dict[str, Any]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y, positive)
    precision, recall, _ = precision_recall_curve(y, positive)
    keep_roc = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 101)).astype(int))
    keep_pr = np.unique(np.linspace(0, len(recall) - 1, min(len(recall), 101)).astype(int))
    return {"receiver_operating_characteristic_curve": {"false_positive_rates": fpr[keep_roc].tolist(),
                                                        "true_positive_rates": tpr[keep_roc].tolist()},
            "precision_recall_curve": {"precisions": precision[keep_pr][::-1].tolist(),
                                       "recalls": recall[keep_pr][::-1].tolist()}}


def _fbeta(precision: float, recall: float, beta: float) -> float:
    denominator = beta * beta * precision + recall
    return (1 + beta * beta) * precision * recall / denominator if denominator else 0.0


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
