"""The target: which task it is (a rule on its values alone), and its classes encoded 0..k-1."""

import logging
from typing import Any, List, Optional, Tuple

import numpy as np
import pandas as pd

from mlexp.errors import MlexpError

__all__ = ["MAX_CLASSES", "infer_task", "task_reason", "settle_task", "encode_target"]

log = logging.getLogger("mlexp")

# Whole-number targets with at most this many distinct values are read as classes. A fixed count, not a
# share of the rows, so the same labels get the same task on 12 rows and on 12 million.
MAX_CLASSES = 20


def infer_task(y: pd.Series) -> str:
    """Classification for labels (strings, booleans, up to MAX_CLASSES whole numbers), regression otherwise."""
    return _inferred(y)[0]


def task_reason(y: pd.Series) -> str:
    """Why ``infer_task`` chose what it chose, in words."""
    return _inferred(y)[1]


def _inferred(y: pd.Series) -> Tuple[str, str]:
    if isinstance(y.dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(y):
        return "classification", f"holds {y.dtype} values"
    if not pd.api.types.is_numeric_dtype(y):
        return "classification", f"holds strings (e.g. {_plain(y.dropna().iloc[0])!r})"
    values = y.dropna()
    distinct = values.nunique()
    if not np.all(np.mod(values, 1) == 0):
        return "regression", "holds numbers with fractions"
    if distinct <= MAX_CLASSES:
        return "classification", f"holds {distinct} distinct whole numbers (up to {MAX_CLASSES} are read as classes)"
    return "regression", f"holds {distinct} distinct whole numbers (more than {MAX_CLASSES} are read as a quantity)"


def settle_task(y: pd.Series, name: str, top_level: str, configured: str) -> str:
    """The task: top-level ``task=``, else the data option's ``task``, else inferred; the decision is logged."""
    if top_level != "auto":
        task, source = top_level, "from task="
    elif configured != "auto":
        task, source = configured, "from data.task"
    else:
        task, reason = _inferred(y)
        other = "regression" if task == "classification" else "classification"
        numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
        source = f"inferred: target {name!r} {reason}" + (f"; override with task={other}" if numeric else "")
    if task not in ("classification", "regression"):
        raise MlexpError(f"task must be auto, classification or regression; got {task!r}.")
    log.info("task: %s (%s)", task, source)
    return task


def encode_target(y: pd.Series, task: str, name: str, positive_class: Any = None) -> Tuple[pd.Series, Optional[List[Any]]]:
    """(target for the models, class labels): classes as codes 0..k-1 in sorted order, or floats for regression.

    ``positive_class`` makes that label class 1 of a binary target (otherwise class 1 is the label
    that sorts second).
    """
    if task == "regression":
        if positive_class is not None:
            raise MlexpError(f"data.positive_class={positive_class!r} applies to binary classification; the task is regression.")
        if not pd.api.types.is_numeric_dtype(y):
            raise MlexpError(
                f"task=regression needs a numeric target, but {name!r} holds {y.dtype} values "
                f"such as {y.iloc[0]!r}. Use task=classification or choose another data.target."
            )
        return y.astype(float), None
    _check_classification_target(y, name)
    codes, uniques = pd.factorize(y, sort=True)
    class_names = [_plain(v) for v in uniques]
    if len(class_names) < 2:
        raise MlexpError(f"target {name!r} has a single class ({class_names[0]!r}); a classifier needs two or more.")
    if positive_class is not None:
        matches = [i for i, label in enumerate(class_names) if _same(label, positive_class)]
        if len(class_names) != 2:
            raise MlexpError(
                f"data.positive_class={positive_class!r} applies to a binary target, but {name!r} has "
                f"{len(class_names)} classes ({', '.join(map(str, class_names))})."
            )
        if not matches:
            raise MlexpError(
                f"data.positive_class={positive_class!r} is not a class of {name!r}; its classes are "
                f"{', '.join(map(repr, class_names))}."
            )
        if matches[0] == 0:  # swap: the positive label becomes class 1
            codes, class_names = 1 - codes, class_names[::-1]
        log.info("positive class: %r (class 1 of %s)", class_names[1], name)
    return pd.Series(codes, name=name), class_names


def _same(label: Any, value: Any) -> bool:
    """A class label equals the configured value, also across types (1 == "1" == 1.0)."""
    if label == value or str(label) == str(value):
        return True
    try:
        return float(label) == float(value)
    except (TypeError, ValueError):
        return False


def _check_classification_target(y: pd.Series, name: str) -> None:
    if pd.api.types.is_float_dtype(y):
        values = y.dropna()
        if not np.all(np.mod(values, 1) == 0) or values.nunique() > max(20, len(values) // 10):
            raise MlexpError(
                f"task=classification but target {name!r} looks continuous ({values.nunique()} distinct "
                f"float values, e.g. {_plain(values.iloc[0])!r}). Use task=regression with a regression model "
                "(model=linear, random_forest, gradient_boosting, ...), or bin the target first."
            )


def _plain(value: Any) -> Any:
    """numpy scalars to plain Python, so class names serialise to JSON."""
    return value.item() if hasattr(value, "item") else value
