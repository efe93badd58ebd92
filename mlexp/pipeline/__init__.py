"""Assemble the leakage-free pipeline: column transforms, whole-matrix steps, sampler, model.

Everything that learns from data (encoders, scalers, PCA, samplers, the model) sits in one
imblearn Pipeline that is cloned and fitted per fold, so validation and test rows never
inform a fitted statistic, and samplers run on fit only.
"""

import logging
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mlexp.data import ROLES, ColumnRoles
from mlexp.errors import MlexpError

__all__ = ["build_pipeline", "feature_specs"]

log = logging.getLogger(__name__)

WHOLE_MATRIX = "all"
# `transformer` values that select columns instead of transforming them: drop the named
# columns, or keep only them. Applied before any branch is built, whatever their position.
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


def build_pipeline(cfg: DictConfig, roles: ColumnRoles, X: pd.DataFrame, task: str, model: Any):
    """The imblearn Pipeline for one experiment (unfitted; clone it per fold)."""
    from imblearn.pipeline import Pipeline
    from sklearn.base import clone
    from sklearn.compose import ColumnTransformer

    specs = feature_specs(cfg.get("features"))
    order = [name for name, *_ in specs]  # list position decides what runs before what
    roles = _select_columns(specs, roles, X)
    by_role: Dict[str, List[Tuple[str, Any]]] = {role: [] for role in ROLES}
    subsets: List[Tuple[str, List[str], Any]] = []
    whole: List[Tuple[str, Any]] = []
    for name, columns, transformer_cfg in specs:
        if isinstance(transformer_cfg, str) and transformer_cfg in SELECTIONS:
            continue
        transformer = _instantiate(_for_task(transformer_cfg, task, name), f"features.{name}.transformer")
        if columns == WHOLE_MATRIX:
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

    branches = []
    in_subset = {c for _, cols, _ in subsets for c in cols}
    numeric_rest = [c for c in roles.numeric if c not in in_subset]
    if numeric_rest:
        branches.append(("numeric", _chain(by_role["numeric"]), numeric_rest))
    for name, columns, transformer in subsets:
        # A subset sees the numeric steps listed before it, then its own transformer.
        before = [(n, t) for n, t in by_role["numeric"] if order.index(n) < order.index(name)]
        branches.append((name, _chain([(n, clone(t)) for n, t in before] + [(name, transformer)]), columns))
    if roles.categorical:
        _check_encodable(cfg, roles, X)
        encoder = _instantiate(cfg.encoder, "encoder")
        branches.append(("categorical", _chain([("encoder", encoder), *by_role["categorical"]]), roles.categorical))
    for role in ("text", "datetime"):
        columns = getattr(roles, role)
        if not columns:
            continue
        if not by_role[role]:
            log.warning("%s columns %s are left out: no `features` option handles %s columns", role, columns, role)
            continue
        if role == "text":  # text vectorizers take one column (1-D) at a time
            for column in columns:
                branches.append((f"text_{column}", _chain([(n, clone(t)) for n, t in by_role["text"]]), column))
        else:
            # Numeric options listed after the date option also apply to the calendar parts it gives
            # (features=[temporal,standardize] scales year, month, ...).
            first = min(order.index(n) for n, _ in by_role[role])
            after = [(n, clone(t)) for n, t in by_role["numeric"] if order.index(n) > first]
            branches.append((role, _chain(by_role[role] + after), columns))
    if not branches:
        unhandled = {"text": "features=[ngrams] or features=[bag_of_words]", "datetime": "features=[temporal]"}
        hints = [f"{role} columns {getattr(roles, role)} need a {role} option: {fix}"
                 for role, fix in unhandled.items() if getattr(roles, role) and not by_role[role]]
        raise MlexpError(
            "no feature columns are left to learn from; "
            + ("; ".join(hints) + "." if hints else "check data.roles and the features options.")
        )

    # Text vectorizers give sparse matrices: keep the stacked output sparse whatever its density
    # (a dense tf-idf matrix can take gigabytes), and refuse early a step that needs dense input.
    text = any(name.startswith("text_") for name, *_ in branches)
    steps: List[Tuple[str, Any]] = [
        ("columns", ColumnTransformer(branches, remainder="drop", sparse_threshold=1.0 if text else 0.3))
    ]
    steps += whole
    sampler = _build_sampler(cfg.sampler, task)
    if sampler is not None:
        steps.append(("sampler", sampler))
    steps.append(("model", model))
    if text:
        _check_takes_sparse(steps[1:])
    return Pipeline(steps)


def _select_columns(specs: List[Tuple[str, Any, Any]], roles: ColumnRoles, X: pd.DataFrame) -> ColumnRoles:
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


def _check_takes_sparse(steps: List[Tuple[str, Any]]) -> None:
    refusing = [type(est).__name__ for _, est in steps if not _takes_sparse(est)]
    if refusing:
        raise MlexpError(
            f"text features give a sparse matrix, and {', '.join(refusing)} takes only dense input. Choose a "
            "model that takes sparse input (model=logreg, linear, svm, random_forest, knn, decision_tree), or "
            "drop that step from the features."
        )


def _takes_sparse(estimator: Any) -> bool:
    from sklearn.base import BaseEstimator
    from sklearn.utils import get_tags

    from mlexp.neural import is_torch_estimator  # no torch import

    if not isinstance(estimator, BaseEstimator) or is_torch_estimator(estimator):
        return True  # not ours to judge (mlexp's PyTorch nets densify sparse input themselves)
    inner = [e for _, e in getattr(estimator, "estimators", None) or [] if not isinstance(e, str)]
    base = getattr(estimator, "estimator", None)
    inner += [base] if isinstance(base, BaseEstimator) else []
    try:
        takes = get_tags(estimator).input_tags.sparse
    except Exception:  # tags of third-party estimators: let fit decide
        takes = True
    return takes and all(_takes_sparse(e) for e in inner)


def _chain(steps: List[Tuple[str, Any]]) -> Any:
    from sklearn.pipeline import Pipeline

    if not steps:
        return "passthrough"
    return steps[0][1] if len(steps) == 1 else Pipeline(steps)


def _build_sampler(sampler_cfg: DictConfig, task: str) -> Any:
    if not sampler_cfg.get("_target_"):
        return None
    if task != "classification":
        raise MlexpError(
            f"sampler {sampler_cfg._target_} balances classes, but the task is {task}. Use sampler=none for regression."
        )
    return _instantiate(sampler_cfg, "sampler")


def _check_encodable(cfg: DictConfig, roles: ColumnRoles, X: pd.DataFrame) -> None:
    if cfg.encoder.get("_target_") != "sklearn.preprocessing.FunctionTransformer":
        return
    strings = [c for c in roles.categorical if not pd.api.types.is_numeric_dtype(X[c])]
    if strings:
        raise MlexpError(
            f"encoder=none passes categorical columns through unchanged, but {', '.join(strings)} hold "
            "strings a model cannot take. Use encoder=onehot, encoder=label or encoder=target, or drop "
            "the columns (data.roles.drop=[...])."
        )


def _instantiate(node: DictConfig, where: str) -> Any:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    target = node.get("_target_")
    log.info("%s: %s", where, target)
    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as err:
        raise MlexpError(f"{where} ({target}) could not be built: {err.__cause__ or err}") from err
