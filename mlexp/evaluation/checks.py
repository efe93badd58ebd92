"""Problems caught before or during a fit, turned into one-paragraph errors that name the column, step or key to fix."""

import logging
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from mlexp.errors import MlexpError

__all__ = ["check_fit_preconditions", "check_missing_values", "make_folds", "fit_error", "locate_step", "preflight"]

log = logging.getLogger(__name__)


def make_folds(splitter: Any, X: pd.DataFrame, y: np.ndarray, groups: Optional[np.ndarray] = None) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Every (train, validation) pair of the splitter, computed up front so a split it cannot make fails first."""
    try:
        if groups is not None:
            return list(splitter.split(X, y, groups))
        return list(splitter.split(X, y))
    except ValueError as err:
        limit = len(np.unique(groups)) if groups is not None else len(X)
        unit = "groups" if groups is not None else "development rows"
        raise MlexpError(
            f"splitter {type(splitter).__name__} cannot split the {len(X)} development rows: {err} "
            f"Lower splitter.n_splits (there are {limit} {unit}; 5 or 10 folds are usual)."
        ) from err


def fit_error(err: Exception, pipeline: Any) -> MlexpError:
    """A ValueError raised while fitting, as an error naming the pipeline step and the config key that set it up."""
    step = _failing_estimator(err)
    if step is None:
        return MlexpError(f"the pipeline could not be fitted: {err}")
    key = locate_step(pipeline, type(step))
    name = type(step).__name__
    message = str(err).rstrip()
    advised = any(hint in message for hint in ("features.", "model.", "encoder.", "sampler.", "data."))
    fix = f" Adjust that step: {key}.<parameter>=..." if key and not advised and key != "data.impute" else ""
    return MlexpError(f"{name} could not be fitted{' (' + key + ')' if key else ''}: {message}{'' if message.endswith('.') else '.'}{fix}")


def locate_step(pipeline: Any, kind: type) -> Optional[str]:
    """The config key of the first pipeline step of class ``kind``: features.<option>.transformer, encoder, sampler, model."""
    for name, step in getattr(pipeline, "steps", []):
        if name == "columns":
            for branch, transformer, _ in step.transformers:
                for sub_name, sub in getattr(transformer, "steps", [(branch, transformer)]):
                    if type(sub) is kind or _nested(sub, kind):
                        return _key(sub_name)
        elif type(step) is kind or _nested(step, kind):
            return _key(name)
    return None


def _key(step_name: str) -> str:
    from mlexp.pipeline.imputation import IMPUTE_STEP

    if step_name in ("model", "sampler", "encoder"):
        return step_name
    if step_name == IMPUTE_STEP:
        return "data.impute"
    if step_name.endswith("_scale"):  # the scaler mlexp puts before PCA (features.<option>.scale)
        return f"features.{step_name[:-len('_scale')]}.scale"
    return f"features.{step_name}.transformer"


def _nested(estimator: Any, kind: type) -> bool:
    try:
        return any(type(v) is kind for v in estimator.get_params(deep=True).values())
    except Exception:  # not an estimator, or one whose params cannot be listed
        return False


def _failing_estimator(err: Exception) -> Any:
    """The innermost estimator (not a Pipeline or ColumnTransformer) whose method raised ``err``."""
    from sklearn.base import BaseEstimator
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    found = None
    tb = err.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, BaseEstimator) and not isinstance(owner, (Pipeline, ColumnTransformer)):
            found = owner
        tb = tb.tb_next
    return found


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
    """Missing values no step handles, checked on all rows (a fold without them would fit and then
    fail to predict): missing text always; NaN in a numeric branch, NaT in the date branch, or NaN passed
    through by encoder=none, when that branch has no imputer and the model cannot take NaN."""
    columns = pipeline.named_steps["columns"]
    # Text branches ("text_<column>") take one column each; a vectorizer rejects a missing document.
    text = [cols for name, _, cols in columns.transformers if name.startswith("text_") and isinstance(cols, str)]
    gaps = {c: int(X[c].isna().sum()) for c in text if X[c].isna().any()}
    if gaps:
        raise MlexpError(
            f"missing text in {_counts(gaps)}: a text vectorizer needs a string in every row. Fill the gaps in "
            "the data (an empty string is an empty document) or drop those rows (data.dropna=true)."
        )
    if _accepts_nan(pipeline):
        return
    # Per branch: the numeric branch and column subsets hold lists of numeric columns; the date
    # branch turns a missing date into NaN calendar parts. Each needs its own imputer.
    missing: Dict[str, Dict[str, int]] = {}
    for name, transformer, cols in columns.transformers:
        if not isinstance(cols, list) or _has_imputer(transformer):
            continue
        if name == "categorical" and not _passes_through(transformer):
            continue  # the encoders give missing categories a code of their own
        kind = {"datetime": "dates", "categorical": "categories"}.get(name, "numbers")
        counts = X[cols].isna().sum()
        missing.setdefault(kind, {}).update({c: int(n) for c, n in counts[counts > 0].items()})
    model = type(pipeline.named_steps["model"]).__name__
    off = "data.impute.numeric=none turned imputation off"
    if missing.get("dates"):
        raise MlexpError(
            f"missing dates (NaT) in {_counts(missing['dates'])}, and {model} cannot take the NaN calendar parts "
            f"they give ({off}). List the imputer after the date option (features=[temporal,impute]), set "
            "data.impute.numeric=median, drop incomplete rows (data.dropna=true), or choose a model that takes NaN "
            "natively (model=gradient_boosting)."
        )
    if missing.get("numbers"):
        raise MlexpError(
            f"missing values (NaN) in {_counts(missing['numbers'])}, and {model} cannot take them ({off}). Impute "
            "them (data.impute.numeric=median, or features=[impute,standardize]), drop incomplete rows "
            "(data.dropna=true), or choose a model that takes NaN natively (model=gradient_boosting)."
        )
    if missing.get("categories"):
        raise MlexpError(
            f"missing values in the categorical columns {_counts(missing['categories'])}, which encoder=none passes "
            f"on unchanged, and {model} cannot take NaN. Set data.impute.categorical=most_frequent, use an encoder "
            "(encoder=onehot, label or target give missing values a code of their own), or drop incomplete rows "
            "(data.dropna=true)."
        )


def _counts(counts: Dict[str, int]) -> str:
    return ", ".join(f"{column} ({n})" for column, n in counts.items())


def _has_imputer(transformer: Any) -> bool:
    from sklearn.impute import SimpleImputer

    steps = getattr(transformer, "steps", [(None, transformer)])
    return any(isinstance(step, SimpleImputer) for _, step in steps)


def _passes_through(transformer: Any) -> bool:
    from sklearn.preprocessing import FunctionTransformer

    first = getattr(transformer, "steps", [(None, transformer)])[0][1]
    return isinstance(first, FunctionTransformer)


def _accepts_nan(pipeline: Any) -> bool:
    """True when every step after the column transforms, and the model, takes NaN."""
    from mlexp.pipeline.imputation import allows_nan

    return all(allows_nan(step) for _, step in pipeline.steps[1:])


def preflight(pipeline: Any, dataset: Any) -> None:
    """Every check on the assembled pipeline against the loaded data, before the first fit."""
    from mlexp.pipeline.wrappers import check_target_domain

    check_missing_values(pipeline, dataset.features)
    check_target_domain(pipeline.steps[-1][1], dataset.target.to_numpy())
