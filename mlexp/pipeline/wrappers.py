"""What wraps the model step: a target transform (regression), a tuned decision threshold (binary), sample-weight requests."""

import logging
from typing import Any, Optional

import numpy as np
from omegaconf import DictConfig

from mlexp.errors import MlexpError

__all__ = ["wrap_model", "request_weights", "forget_requests", "check_target_domain"]

log = logging.getLogger(__name__)


def wrap_model(cfg: DictConfig, model: Any, task: str, n_classes: Optional[int]) -> Any:
    """The model inside the `target_transform` option's regressor (regression) and the `threshold` option's
    classifier (binary classification); options with ``_target_: null`` leave it as it is."""
    from mlexp.pipeline.specs import instantiate_node as _instantiate

    transform = cfg.get("target_transform")
    if transform is not None and transform.get("_target_"):
        if task != "regression":
            raise MlexpError(
                f"target_transform ({transform._target_}) transforms a quantity, but the task is {task}. "
                "Use target_transform=none for classification."
            )
        model = _instantiate(transform, "target_transform", regressor=model)
    threshold = cfg.get("threshold")
    if threshold is not None and threshold.get("_target_"):
        if task != "classification" or (n_classes is not None and n_classes != 2):
            what = task if task != "classification" else f"a {n_classes}-class classification"
            raise MlexpError(
                f"threshold ({threshold._target_}) tunes the decision threshold of a binary classifier, but this is "
                f"{what}. Use threshold=none."
            )
        model = _instantiate(threshold, "threshold", estimator=model)
    return model


# Target transforms whose function is undefined on part of the line: (function name, lowest value, inclusive).
DOMAINS = {"log1p": (-1.0, False), "sqrt": (0.0, True), "log": (0.0, False)}


def check_target_domain(model: Any, y: np.ndarray) -> None:
    """A target transform's function must be defined on every target value (log1p needs y > -1, sqrt y >= 0)."""
    func = getattr(model, "func", None)
    if func is None or not hasattr(model, "regressor"):
        return
    name = getattr(func, "__name__", "")
    if name not in DOMAINS:
        return
    low, inclusive = DOMAINS[name]
    bad = (y < low) if inclusive else (y <= low)
    if bad.any():
        raise MlexpError(
            f"target_transform uses {name}, which is undefined for {int(bad.sum())} target values "
            f"(smallest {float(np.min(y)):g}; it needs y {'>=' if inclusive else '>'} {low:g}). "
            "Use target_transform=yeo_johnson, which takes any value, or target_transform=none."
        )


def request_weights(pipeline: Any) -> None:
    """Route sample weights to the model (and every estimator inside it) and to no transformer, through
    scikit-learn's metadata routing; a model that cannot take weights is refused with the alternatives."""
    import sklearn

    with sklearn.config_context(enable_metadata_routing=True):
        for name, step in pipeline.steps[:-1]:
            if name == "sampler":
                raise MlexpError(
                    f"data.weight_column weights the rows, but sampler {type(step).__name__} adds or removes rows, so "
                    "the weights would no longer match. Use sampler=none (the weights already rebalance the classes)."
                )
            _request(step, False)
        _request_model(pipeline.steps[-1][1])


def _request(estimator: Any, wanted: bool) -> None:
    for item in [estimator, *_inner(estimator)]:
        if hasattr(item, "set_fit_request"):
            item.set_fit_request(sample_weight=wanted)


def _request_model(model: Any) -> None:
    from sklearn.base import is_classifier, is_regressor
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import TunedThresholdClassifierCV

    from mlexp.neural import is_torch_estimator  # no torch import

    for item in [model, *_inner(model)]:
        predictor = is_classifier(item) or is_regressor(item)
        if predictor and (is_torch_estimator(item) or (_is_leaf(item) and not hasattr(item, "set_fit_request"))):
            raise MlexpError(
                f"data.weight_column passes sample weights to the model, but {type(item).__name__} cannot take "
                "them. Choose a model that can (model=logreg, linear, lasso, decision_tree, random_forest, "
                "gradient_boosting, svm), or leave data.weight_column unset."
            )
        if hasattr(item, "set_fit_request"):  # a transformer inside the model (a target transform's) is not weighted
            item.set_fit_request(sample_weight=predictor)
        if isinstance(item, TunedThresholdClassifierCV):  # the threshold's metric is weighted too
            scorer = check_scoring(item.estimator, scoring=item.scoring)
            item.set_params(scoring=scorer.set_score_request(sample_weight=True))


def _inner(estimator: Any) -> list:
    """The estimators inside a meta-estimator, pipeline or column transformer (deep)."""
    from sklearn.base import BaseEstimator

    try:
        params = estimator.get_params(deep=True)
    except Exception:  # not an estimator
        return []
    found = []
    for value in params.values():
        if isinstance(value, BaseEstimator):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found += [v[-1] for v in value if isinstance(v, tuple) and isinstance(v[-1], BaseEstimator)]
    return found


def _is_leaf(estimator: Any) -> bool:
    return not _inner(estimator)


def forget_requests(model: Any) -> Any:
    """``model`` without metadata requests anywhere inside it (fitted clones included): they only steer a
    weighted fit, and skops cannot save them."""
    seen = set()

    def walk(item: Any) -> None:
        if id(item) in seen:
            return
        seen.add(id(item))
        if isinstance(item, (list, tuple)):
            for value in item:
                walk(value)
        elif isinstance(item, dict):
            for value in item.values():
                walk(value)
        elif hasattr(item, "__dict__") and (hasattr(item, "get_params") or hasattr(item, "_metadata_request")):
            vars(item).pop("_metadata_request", None)
            for value in vars(item).values():
                walk(value)

    walk(model)
    return model
