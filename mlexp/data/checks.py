"""Checks of a loaded table before any model is trusted: ID-like columns, integer-coded categories, one-column leaks.

Each check returns warnings that name the column and the fix. ``DataChecks`` is the post-training
step that runs them before training (so they are in the log early) and lists them in report.md.
"""

import logging
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from mlexp.posttrain import PostTrainStep, Section

__all__ = ["id_like_columns", "integer_codes", "single_column_scores", "leak_warnings", "DataChecks"]

log = logging.getLogger("mlexp")

ID_SHARE = 0.9  # distinct values per row from which a string or integer column identifies rows
ID_NAMED_SHARE = 0.3  # ... or from which it does, when its name says so (case_id, idNum, key)
HIGH_CARDINALITY = 100  # a string column with this many levels or more...
HIGH_CARDINALITY_SHARE = 0.2  # ... covering this share of rows or more: one-hot keeps only the most frequent
CODE_LEVELS = (3, 50)  # integer columns with this many distinct values may be codes
LEAK_ROWS = 3000  # the single-column check fits on at most this many rows
TOP = 5  # columns shown in the report's single-column table

_ID_WORDS = {"id", "ids", "key", "uuid", "guid", "identifier", "number", "num", "no", "case", "caseid", "serial"}
_CODE_WORDS = {
    "code", "codes", "cd", "precinct", "zip", "zipcode", "postal", "postcode", "district", "region", "county",
    "state", "ward", "beat", "zone", "area", "type", "category", "cat", "class", "group", "station", "unit",
    "dept", "department", "fips", "naics", "sic", "icd", "site", "store", "branch", "sector", "division", "team",
}


def _words(name: str) -> List[str]:
    """A column name's words: snake_case, kebab-case, camelCase and digits split apart, lower case."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return [w.lower() for w in re.split(r"[^A-Za-z]+", spaced) if w]


def _is_id_name(name: str) -> bool:
    words = _words(name)
    return bool(words) and (words[-1] in _ID_WORDS or words[0] in {"id", "uuid", "guid"} or str(name).lower().endswith("id"))


def id_like_columns(X: pd.DataFrame, roles: Any) -> List[str]:
    """Warnings for string or integer feature columns with one distinct value per row (or nearly), and for
    strings with so many levels that one-hot encoding keeps only a few of them."""
    warnings = []
    rows = len(X)
    if rows < 20:
        return warnings
    for column in [*roles.categorical, *roles.numeric]:
        values = X[column]
        numeric = column in roles.numeric
        if numeric and not _whole(values):
            continue  # measurements are unique per row without identifying anything
        distinct = values.nunique(dropna=True)
        share = distinct / rows
        named = _is_id_name(column)
        if numeric and not named:  # whole amounts (dollars) are unique too: only a run of consecutive numbers is an id
            low, high = float(values.min()), float(values.max())
            looks_id = share >= ID_SHARE and high - low + 1 <= 1.1 * distinct
        else:
            looks_id = share >= ID_SHARE or (named and share >= ID_NAMED_SHARE)
        if looks_id:
            warnings.append(
                f"column {column!r} looks like an identifier ({distinct:,} distinct values in {rows:,} rows"
                f"{', and its name says so' if named else ''}): a model learns nothing from it that holds for new "
                f"rows. Mark it data.roles.id=[{column}] (kept out of the features), or drop it: "
                f"data.roles.drop=[{column}]."
            )
        elif column in roles.categorical and distinct >= HIGH_CARDINALITY and share >= HIGH_CARDINALITY_SHARE:
            warnings.append(
                f"column {column!r} has {distinct:,} levels in {rows:,} rows: encoder=onehot keeps only the most "
                f"frequent (encoder.max_categories) and lumps the rest together. Use encoder=target, or drop it "
                f"(data.roles.drop=[{column}]) or mark it an identifier (data.roles.id=[{column}])."
            )
    return warnings


def integer_codes(X: pd.DataFrame, roles: Any, configured: Dict[str, Any]) -> List[str]:
    """Warnings for numeric columns of a few whole numbers whose name (precinct, zip, type...) or values
    (large, with gaps) suggest codes rather than quantities; `data.roles.categorical` is the override."""
    warnings = []
    stated = set(configured.get("numeric") or [])
    for column in roles.numeric:
        values = X[column].dropna()
        if column in stated or values.empty or not _whole(values):
            continue
        distinct = values.nunique()
        if not CODE_LEVELS[0] <= distinct <= CODE_LEVELS[1]:
            continue
        low, high = float(values.min()), float(values.max())
        gappy = low >= 10 and distinct / (high - low + 1) < 0.5
        named = bool(set(_words(column)) & _CODE_WORDS)
        if named or gappy:
            reason = "its name suggests codes" if named else f"its values ({low:g} to {high:g}, with gaps) look like codes"
            warnings.append(
                f"column {column!r} holds {distinct} whole numbers and {reason}; it is treated as a quantity (order "
                f"and distance matter). If the numbers are labels, say so: data.roles.categorical=[{column}]."
            )
    return warnings


def single_column_scores(X: pd.DataFrame, y: pd.Series, task: str, roles: Any, seed: int = 0) -> List[Tuple[str, float]]:
    """(column, score) of a small tree on each feature column alone, out of fold (2 folds) on at most
    LEAK_ROWS rows: ROC AUC (one-vs-rest, weighted by class, for several classes) for classification, R^2 for regression; best first."""
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.model_selection import KFold, StratifiedKFold
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    rows = np.random.default_rng(seed).permutation(len(X))[:LEAK_ROWS]
    X, y = X.iloc[rows], y.iloc[rows].to_numpy()
    classification = task == "classification"
    if classification:  # classes too rare in the sample to score are left out of it
        counts = np.bincount(y)
        kept = counts[y] >= 5
        X, y = X[kept], y[kept]
    labels = np.unique(y)
    if classification and len(labels) < 2:
        return []
    if classification:
        folds = list(StratifiedKFold(2, shuffle=True, random_state=seed).split(X, y))
    else:
        folds = list(KFold(2, shuffle=True, random_state=seed).split(X))
    scores = []
    for column in [*roles.numeric, *roles.categorical, *roles.datetime]:
        values = _as_numbers(X[column], column in roles.categorical).reshape(-1, 1)
        held_out = np.zeros((len(y), len(labels))) if classification else np.zeros(len(y))
        for train, test in folds:
            tree = (DecisionTreeClassifier if classification else DecisionTreeRegressor)(
                max_leaf_nodes=32, min_samples_leaf=5, random_state=seed).fit(values[train], y[train])
            if classification:
                held_out[np.ix_(test, np.searchsorted(labels, tree.classes_))] = tree.predict_proba(values[test])
            else:
                held_out[test] = tree.predict(values[test])
        if classification and len(labels) == 2:
            value = roc_auc_score(y, held_out[:, 1])
        elif classification:
            value = roc_auc_score(y, held_out, multi_class="ovr", average="weighted", labels=labels)
        else:
            value = r2_score(y, held_out)
        scores.append((column, float(value)))
    return sorted(scores, key=lambda item: -item[1])


def _as_numbers(values: pd.Series, categorical: bool) -> np.ndarray:
    """A column as floats for a tree: category codes (missing: -1), dates as nanoseconds, numbers as they are."""
    if categorical or not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values)):
        return pd.factorize(values.astype(str).where(values.notna()), sort=True)[0].astype(float)
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values.astype("int64").to_numpy().astype(float)
        return np.where(values.isna().to_numpy(), np.nan, stamps)
    return values.to_numpy(dtype=float)


def leak_warnings(scores: List[Tuple[str, float]], task: str, target: str, threshold: Optional[float]) -> List[str]:
    if threshold is None:
        return []
    metric = "ROC AUC" if task == "classification" else "R^2"
    return [
        f"column {column!r} alone predicts {target!r} almost perfectly ({metric} {value:.3f} out of fold, from a "
        f"small tree on that column only; limit data.leak_threshold={threshold}). A column known only after the "
        f"outcome (or derived from it) leaks the answer: check it, and drop it if so: data.roles.drop=[{column}]."
        for column, value in scores if value >= threshold
    ]


def _whole(values: pd.Series) -> bool:
    values = values.dropna()
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values) and bool(
        np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))


class DataChecks(PostTrainStep):
    """Runs the checks before training (warnings logged at once) and lists them in report.md's Data checks."""

    name = "data_checks"

    def __init__(self) -> None:
        self.warnings: List[str] = []
        self.scores: List[Tuple[str, float]] = []
        self.metric = ""

    def check(self, cfg: Any, dataset: Any) -> None:
        from omegaconf import OmegaConf

        configured = OmegaConf.to_container(cfg.data.roles, resolve=True)
        found = id_like_columns(dataset.features, dataset.roles) + integer_codes(dataset.features, dataset.roles, configured)
        threshold = cfg.data.get("leak_threshold")
        if threshold is not None:
            self.scores = single_column_scores(dataset.features, dataset.target, dataset.task, dataset.roles, cfg.seed)
            self.metric = "ROC AUC" if dataset.task == "classification" else "R^2"
            found += leak_warnings(self.scores, dataset.task, cfg.data.target, threshold)
        for message in found:
            log.warning("data check: %s", message)
        self.warnings = list(dataset.warnings) + found

    def run(self, trained: Any) -> Any:
        lines = []
        if self.scores:
            lines += [f"Each column alone (a small tree, out of fold, at most {LEAK_ROWS:,} rows), best first:", "",
                      f"| column | {self.metric} |", "|---|---:|"]
            lines += [f"| {column} | {value:.3f} |" for column, value in self.scores[:TOP]]
        if not lines and not self.warnings:
            return None
        return Section("Data checks", lines or ["No problems found."], warnings=list(self.warnings), logged=True)
