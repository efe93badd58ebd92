"""The `features` list read as specs, each transform placed where its list position puts it."""

import logging
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mlexp.data import ROLES, ColumnRoles
from mlexp.errors import MlexpError

__all__ = ["WHOLE_MATRIX", "SELECTIONS", "feature_specs", "place", "select_columns", "instantiate_node"]

log = logging.getLogger("mlexp.pipeline")

# `transformer` values that select columns instead of transforming them: drop the named
# columns, or keep only them. Applied before any branch is built, whatever their position.
WHOLE_MATRIX = "all"
SELECTIONS = ("drop", "keep")
TASKS = ("classification", "regression")


def feature_specs(features_cfg: Optional[DictConfig]) -> List[Tuple[str, Any, Any]]:
    """(name, columns, transformer config) for each selected `features` option, in order."""
    specs = []
    for name, spec in (features_cfg or {}).items():
        if spec is None:
            continue
        if "columns" in spec.keys() and OmegaConf.is_missing(spec, "columns"):
            raise MlexpError(
                f"features.{name}.columns is not set: name the columns, e.g. features.{name}.columns=[age,fare] "
                "(or a role: numeric, categorical, text, datetime)."
            )
        if "transformer" not in spec or "columns" not in spec:
            raise MlexpError(
                f"features option {name!r} needs `columns` (a role, 'all' or a list of names) and "
                f"`transformer` (with _target_); it has {list(spec.keys())}."
            )
        columns = spec.columns
        if not isinstance(columns, str):
            columns = list(columns)
        elif columns not in (*ROLES, WHOLE_MATRIX):
            raise MlexpError(
                f"features.{name}.columns={columns!r}: use one of {', '.join((*ROLES, WHOLE_MATRIX))} "
                "or a list of column names."
            )
        specs.append((name, columns, spec.transformer))
    return specs


def place(specs: List[Tuple[str, Any, Any]], X: pd.DataFrame, task: str):
    """Each transform in its place: (role -> [(name, t)], subsets [(name, columns, t)], whole-matrix [(name, t)]).

    Nothing is reordered: a numeric option after a whole-matrix one transforms that one's output; an
    option naming a role or columns cannot follow one (those columns no longer exist there).
    """
    by_role: Dict[str, List[Tuple[str, Any]]] = {role: [] for role in ROLES}
    subsets: List[Tuple[str, List[str], Any]] = []
    whole: List[Tuple[str, Any]] = []
    for name, columns, transformer_cfg in specs:
        if isinstance(transformer_cfg, str) and transformer_cfg in SELECTIONS:
            continue
        if whole and columns != WHOLE_MATRIX and columns != "numeric":
            what = "the columns it names" if isinstance(columns, list) else f"{columns} columns"
            raise MlexpError(
                f"features.{name} works on {what}, but it is listed after features.{whole[0][0]}, which replaces "
                f"the columns by its output (it works on the whole matrix). List it before: "
                f"features=[{name},{whole[0][0]}] (features apply in the order given)."
            )
        transformer = instantiate_node(_for_task(transformer_cfg, task, name), f"features.{name}.transformer")
        if columns == WHOLE_MATRIX:
            whole.append((name, transformer))
        elif whole:  # a numeric option after a whole-matrix one: it transforms that output, every column
            log.info("features.%s comes after features.%s: it transforms %s's output (every column)",
                     name, whole[-1][0], whole[-1][0])
            whole.append((name, transformer))
        elif isinstance(columns, list):
            unknown = [c for c in columns if c not in X.columns]
            if unknown:
                raise MlexpError(
                    f"features.{name}.columns names unknown columns {unknown}; columns are: {', '.join(X.columns)}."
                )
            subsets.append((name, columns, transformer))
        else:
            by_role[columns].append((name, transformer))
    return by_role, subsets, whole


def select_columns(specs: List[Tuple[str, Any, Any]], roles: ColumnRoles, X: pd.DataFrame) -> ColumnRoles:
    """Roles without the columns that `drop` / `keep` options remove."""
    kept = [c for role in ROLES for c in getattr(roles, role)]
    selected = False
    for name, columns, transformer in specs:
        if not (isinstance(transformer, str) and transformer in SELECTIONS):
            continue
        if columns == WHOLE_MATRIX:
            raise MlexpError(
                f"features.{name}.columns=all would {transformer} every column; name the columns "
                f"(features.{name}.columns=[age,fare]) or a role (numeric, categorical, text, datetime)."
            )
        names = list(getattr(roles, columns)) if isinstance(columns, str) else columns
        unknown = [c for c in names if c not in X.columns]
        if unknown:
            raise MlexpError(
                f"features.{name}.columns names unknown columns {unknown}; columns are: {', '.join(X.columns)}."
            )
        kept = [c for c in kept if (c in names) == (transformer == "keep")]
        selected = True
        log.info("features.%s: %s %s", name, transformer, names)
    if not selected:
        return roles
    return ColumnRoles(**{role: [c for c in getattr(roles, role) if c in kept] for role in ROLES}, facet=roles.facet)


def _for_task(node: Any, task: str, name: str) -> Any:
    """A transformer given per task ({classification: {...}, regression: {...}}) for ``task``."""
    if isinstance(node, DictConfig) and "_target_" not in node and set(node.keys()) <= set(TASKS):
        if task not in node:
            raise MlexpError(f"features.{name}.transformer has no {task} form; it has {', '.join(node.keys())}.")
        return node[task]
    return node


def instantiate_node(node: DictConfig, where: str, **kwargs: Any) -> Any:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    target = node.get("_target_")
    log.info("%s: %s", where, target)
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as err:
        raise MlexpError(f"{where} ({target}) could not be built: {err.__cause__ or err}") from err
