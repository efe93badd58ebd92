"""Missing values by default: a SimpleImputer at the head of each branch whose columns have gaps a later step cannot take."""

import logging
from typing import Any, List, Tuple

import pandas as pd

from mlexp.errors import MlexpError

__all__ = ["IMPUTE_STEP", "allows_nan", "add_imputers", "NUMERIC_STRATEGIES", "CATEGORICAL_STRATEGIES"]

log = logging.getLogger(__name__)

IMPUTE_STEP = "data_impute"  # the step's name in a branch; data.impute configures it
NUMERIC_STRATEGIES = ("mean", "median", "most_frequent", "none")
# missing: a category of its own (the encoders code missing values themselves; encoder=none gets the code -1)
CATEGORICAL_STRATEGIES = ("missing", "most_frequent", "none")

Steps = List[Tuple[str, Any]]


def allows_nan(estimator: Any) -> bool:
    """Whether a step or model takes NaN input (its scikit-learn tags; unknown: no)."""
    from sklearn.utils import get_tags

    if estimator is None or isinstance(estimator, str):  # "passthrough"
        return True
    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except Exception:  # no tags (a third-party estimator): assume it cannot
        return False


def add_imputers(branches: List[Tuple[str, Steps, Any]], downstream: List[Any], X: pd.DataFrame,
                 impute_cfg: Any) -> List[Tuple[str, Steps, Any]]:
    """Each branch with an imputer where its columns have missing values that a later step or the model
    (``downstream``: whole-matrix steps, sampler, model) cannot take. A branch with an imputer of the
    user's own (features=[impute,...]) is left as it is."""
    numeric = _strategy(impute_cfg, "numeric", NUMERIC_STRATEGIES, "median")
    categorical = _strategy(impute_cfg, "categorical", CATEGORICAL_STRATEGIES, "missing")
    tolerant = all(allows_nan(step) for step in downstream)
    out = []
    for name, steps, columns in branches:
        if not isinstance(columns, list) or _has_imputer(steps) or not X[columns].isna().any().any():
            out.append((name, steps, columns))
            continue
        gaps = [c for c in columns if X[c].isna().any()]
        if name == "categorical":
            steps = _categorical(steps, categorical, tolerant, gaps)
        else:
            # Dates become calendar parts first: the imputer fills the parts (after the date option).
            at = 1 if name == "datetime" else 0
            after = steps[at:]
            if numeric != "none" and not (tolerant and all(allows_nan(s) for _, s in after)):
                log.info("data.impute: %s missing values in %s filled with the training fold's %s",
                         name, ", ".join(gaps), numeric)
                steps = [*steps[:at], (IMPUTE_STEP, _imputer(numeric)), *after]
        out.append((name, steps, columns))
    return out


def _categorical(steps: Steps, strategy: str, tolerant: bool, gaps: List[str]) -> Steps:
    from sklearn.preprocessing import FunctionTransformer

    passes_through = isinstance(steps[0][1], FunctionTransformer)  # encoder=none
    if strategy == "most_frequent":
        log.info("data.impute: missing categories in %s filled with the training fold's most frequent", ", ".join(gaps))
        return [(IMPUTE_STEP, _imputer("most_frequent")), *steps]
    if strategy == "missing" and passes_through and not tolerant:
        log.info("data.impute: missing codes in %s become the code -1 (encoder=none)", ", ".join(gaps))
        return [(IMPUTE_STEP, _imputer("constant", fill_value=-1)), *steps]
    return steps  # the encoder gives missing values a category of their own


def _imputer(strategy: str, **params: Any) -> Any:
    from sklearn.impute import SimpleImputer

    # keep_empty_features: a column empty in one training fold keeps its place (filled with 0).
    return SimpleImputer(strategy=strategy, keep_empty_features=True, **params)


def _has_imputer(steps: Steps) -> bool:
    from sklearn.impute import SimpleImputer

    return any(isinstance(step, SimpleImputer) for _, step in steps)


def _strategy(impute_cfg: Any, key: str, allowed: Tuple[str, ...], default: str) -> str:
    value = (impute_cfg or {}).get(key, default) if impute_cfg is not None else default
    value = "none" if value is None else str(value)
    if value not in allowed:
        raise MlexpError(f"data.impute.{key}={value!r}: choose one of {', '.join(allowed)}.")
    return value
