"""Fit and score the pipeline per fold, then once on the test split."""

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from mlexp.errors import MlexpError
from mlexp.metrics import score
from mlexp.reporting import Reporter, reporting_fold

__all__ = ["CVResult", "cross_validate", "fit_and_test", "check_fit_preconditions", "check_missing_values"]

log = logging.getLogger(__name__)


@dataclass
class CVResult:
    folds: List[Dict[str, Optional[float]]] = field(default_factory=list)
    fit_seconds: List[float] = field(default_factory=list)

    def summary(self) -> Dict[str, Dict[str, Any]]:
        """{metric: {"mean", "std", "folds"}}; None where a metric was not computable."""
        out: Dict[str, Dict[str, Any]] = {}
        for metric in self.folds[0] if self.folds else []:
            values = [fold[metric] for fold in self.folds]
            known = [v for v in values if v is not None]
            out[metric] = {
                "mean": float(np.mean(known)) if known else None,
                "std": float(np.std(known)) if known else None,
                "folds": values,
            }
        return out


def cross_validate(
    pipeline: Any, X: pd.DataFrame, y: pd.Series, splitter: Any, task: str, n_classes: Optional[int],
    reporter: Reporter,
) -> CVResult:
    """Clone, fit and score the pipeline on each fold of the development rows."""
    from sklearn.base import clone

    result = CVResult()
    y_array = y.to_numpy()
    for fold, (train, validation) in enumerate(splitter.split(X, y_array)):
        check_fit_preconditions(pipeline, X.iloc[train], y_array[train], where=f"fold {fold}")
        model = clone(pipeline)
        start = time.perf_counter()
        with reporting_fold(reporter, fold):
            _fit(model, X.iloc[train], y_array[train])
        result.fit_seconds.append(time.perf_counter() - start)
        scores = score(model, X.iloc[validation], y_array[validation], task, n_classes)
        result.folds.append(scores)
        objective = scores.get(reporter.metric)
        if objective is not None:
            reporter.report(fold, objective, scores)
        if reporter.should_prune():
            raise _pruned(fold)
    return result


def fit_and_test(pipeline: Any, X_dev, y_dev, X_test, y_test, task: str, n_classes: Optional[int]):
    """Fit on all development rows; score once on the test rows (None when there is no test split)."""
    from sklearn.base import clone

    check_fit_preconditions(pipeline, X_dev, y_dev.to_numpy(), where="the final fit")
    model = clone(pipeline)
    start = time.perf_counter()
    _fit(model, X_dev, y_dev.to_numpy())
    fit_seconds = time.perf_counter() - start
    test_scores = score(model, X_test, y_test.to_numpy(), task, n_classes) if len(y_test) else None
    return model, test_scores, fit_seconds


def check_fit_preconditions(pipeline: Any, X: pd.DataFrame, y: np.ndarray, where: str) -> None:
    """Errors a user can act on, caught before the libraries raise them mid-fit."""
    sampler = pipeline.named_steps.get("sampler")
    k = getattr(sampler, "k_neighbors", None)
    if isinstance(k, int):
        counts = np.bincount(y)
        minority = counts[counts > 0].min()
        if minority <= k:
            raise MlexpError(
                f"sampler {type(sampler).__name__} needs more than k_neighbors={k} rows of every class in "
                f"each training set, but {where} has a class with {minority}. Lower sampler.k_neighbors "
                f"(below {minority}), use sampler=random_over, or use fewer folds (splitter.n_splits)."
            )


def check_missing_values(pipeline: Any, X: pd.DataFrame) -> None:
    """NaN in numeric columns that no step imputes and the model cannot take (checked on all rows,
    since a fold without NaN would fit and then fail to predict)."""
    columns = pipeline.named_steps["columns"]
    # The numeric branch and PCA-style subsets hold lists of numeric columns; text branches hold one name.
    numeric_columns = [
        c for name, _, cols in columns.transformers if name not in ("categorical", "datetime") and isinstance(cols, list)
        for c in cols
    ]
    missing = X[numeric_columns].isna().sum() if numeric_columns else pd.Series(dtype=int)
    missing = missing[missing > 0]
    if missing.empty or _imputes(columns) or _accepts_nan(pipeline):
        return
    listed = ", ".join(f"{c} ({n})" for c, n in missing.items())
    model = type(pipeline.named_steps["model"]).__name__
    raise MlexpError(
        f"missing values (NaN) in {listed}, and {model} cannot take them. Add the imputer to the features "
        "(features=[impute,standardize]), drop incomplete rows (data.dropna=true), or choose a model "
        "that takes NaN natively (model=gradient_boosting)."
    )


def _imputes(columns: Any) -> bool:
    from sklearn.impute import SimpleImputer

    for _, transformer, _ in columns.transformers:
        steps = getattr(transformer, "steps", [(None, transformer)])
        if any(isinstance(step, SimpleImputer) for _, step in steps):
            return True
    return False


def _accepts_nan(pipeline: Any) -> bool:
    """True when every step after the column transforms, and the model, takes NaN."""
    for _, step in pipeline.steps[1:]:
        try:
            if not step.__sklearn_tags__().input_tags.allow_nan:
                return False
        except AttributeError:
            return False
    return True


def _fit(model: Any, X: pd.DataFrame, y: np.ndarray) -> None:
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        model.fit(X, y)
    except InvalidParameterError as err:
        raise MlexpError(f"invalid parameter: {err} Fix the override (e.g. model.<param>=...).") from err
    except ValueError as err:
        if "negative values" in str(err) or "log transform" in str(err):
            raise MlexpError(str(err)) from err
        raise


def _pruned(step: int) -> Exception:
    import optuna

    return optuna.TrialPruned(f"pruned at step {step}")
