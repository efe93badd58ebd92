"""Assemble the leakage-free pipeline: column transforms, whole-matrix steps, sampler, model.

Everything that learns from data (encoders, scalers, PCA, samplers, the model) sits in one
imblearn Pipeline that is cloned and fitted per fold, so validation and test rows never
inform a fitted statistic, and samplers run on fit only.
"""

import logging
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd
from omegaconf import DictConfig

from mlexp.data import ColumnRoles
from mlexp.errors import MlexpError
from mlexp.pipeline.specs import feature_specs, instantiate_node, place, select_columns

__all__ = ["build_pipeline", "feature_specs"]

log = logging.getLogger(__name__)


def build_pipeline(cfg: DictConfig, roles: ColumnRoles, X: pd.DataFrame, task: str, model: Any,
                   n_classes: Optional[int] = None):
    """The imblearn Pipeline for one experiment (unfitted; clone it per fold).

    `features` options apply in the order given: column options (a role or named columns) join their
    branch of the ColumnTransformer; `columns: all` options run on the whole matrix after it, and a
    numeric option listed after one of those runs on its output. Branches with missing values get an
    imputer (data.impute); PCA gets scaled input; the model is wrapped by `target_transform` and
    `threshold`; with data.weight_column the model (only) requests sample weights.
    """
    from imblearn.pipeline import Pipeline
    from sklearn.base import clone
    from sklearn.compose import ColumnTransformer

    from mlexp.pipeline.chains import check_no_sparse_pca, label_columns, scaled_pca
    from mlexp.pipeline.imputation import add_imputers
    from mlexp.pipeline.wrappers import request_weights, wrap_model

    specs = feature_specs(cfg.get("features"))
    roles = select_columns(specs, roles, X)
    by_role, subsets, whole = place(specs, X, task)
    order = [name for name, *_ in specs]  # list position decides what runs before what

    branches: List[Tuple[str, List[Tuple[str, Any]], Any]] = []
    in_subset = {c for _, cols, _ in subsets for c in cols}
    numeric_rest = [c for c in roles.numeric if c not in in_subset]
    if numeric_rest:
        branches.append(("numeric", list(by_role["numeric"]), numeric_rest))
    for name, columns, transformer in subsets:
        # A subset sees the numeric steps listed before it, then its own transformer.
        before = [(n, clone(t)) for n, t in by_role["numeric"] if order.index(n) < order.index(name)]
        branches.append((name, scaled_pca(before + [(name, transformer)], cfg.get("features")), columns))
    if roles.categorical:
        _check_encodable(cfg, roles, X)
        encoder = instantiate_node(cfg.encoder, "encoder")
        branches.append(("categorical", [("encoder", encoder), *by_role["categorical"]], roles.categorical))
    if roles.datetime:
        if by_role["datetime"]:
            # Numeric options listed after the date option also apply to the calendar parts it gives
            # (features=[temporal,standardize] scales year, month, ...).
            first = min(order.index(n) for n, _ in by_role["datetime"])
            after = [(n, clone(t)) for n, t in by_role["numeric"] if order.index(n) > first]
            branches.append(("datetime", by_role["datetime"] + after, roles.datetime))
        else:
            log.warning("datetime columns %s are left out: no `features` option handles datetime columns "
                        "(features=[temporal,...] turns them into calendar parts)", roles.datetime)
    whole = scaled_pca(whole, cfg.get("features"))
    sampler = _build_sampler(cfg.sampler, task)
    model = wrap_model(cfg, model, task, n_classes)
    downstream = [t for _, t in whole] + ([sampler] if sampler is not None else []) + [model]
    branches += _text_branches(roles, by_role["text"], downstream)
    if not branches:
        _nothing_left(roles, by_role)
    branches = add_imputers(branches, downstream, X, cfg.data.get("impute") if "data" in cfg else None)

    # Text vectorizers give sparse matrices: keep the stacked output sparse whatever its density
    # (a dense tf-idf matrix can take gigabytes), and refuse early a step that needs dense input.
    text = any(name.startswith("text_") for name, *_ in branches)
    column_transformer = ColumnTransformer(
        [(name, _chain(label_columns(steps)), cols) for name, steps, cols in branches],
        remainder="drop", sparse_threshold=1.0 if text else 0.3)
    steps: List[Tuple[str, Any]] = [("columns", column_transformer), *label_columns(whole)]
    if sampler is not None:
        steps.append(("sampler", sampler))
    steps.append(("model", model))
    if text:
        check_no_sparse_pca(whole)
        _check_takes_sparse(steps[1:])
    pipeline = Pipeline(steps)
    if "data" in cfg and cfg.data.get("weight_column"):
        request_weights(pipeline)
    return pipeline


def _text_branches(roles: ColumnRoles, options: List[Tuple[str, Any]], downstream: List[Any]) -> list:
    """One branch per text column (vectorizers take one column at a time). Without a text option, the
    `ngrams` option's defaults (tf-idf of words and word pairs) when every later step takes sparse input."""
    from sklearn.base import clone

    from mlexp.pipeline.transformers import ngram_vectorizer

    if not roles.text:
        return []
    if not options:
        if not all(_takes_sparse(step) for step in downstream):
            log.warning("text columns %s are left out: no `features` option handles text columns, and a later step "
                        "takes only dense input (features=[ngrams] or [bag_of_words] to use them)", roles.text)
            return []
        log.info("text columns %s: tf-idf of words and word pairs (the ngrams option's defaults); choose "
                 "features=[ngrams,...] or [bag_of_words,...] to set it", roles.text)
        options = [("ngrams", ngram_vectorizer([1, 2], weighting="tfidf", min_df=2))]
    return [(f"text_{column}", [(n, clone(t)) for n, t in options], column) for column in roles.text]


def _nothing_left(roles: ColumnRoles, by_role: Dict[str, List[Tuple[str, Any]]]) -> None:
    unhandled = {"text": "features=[ngrams] or features=[bag_of_words]", "datetime": "features=[temporal]"}
    hints = [f"{role} columns {getattr(roles, role)} need a {role} option: {fix}"
             for role, fix in unhandled.items() if getattr(roles, role) and not by_role[role]]
    raise MlexpError(
        "no feature columns are left to learn from; "
        + ("; ".join(hints) + "." if hints else "check data.roles and the features options.")
    )


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
    return instantiate_node(sampler_cfg, "sampler")


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
