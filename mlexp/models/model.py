"""Build the estimator one `model` option names, in its classification or regression form."""

import inspect
import logging
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError

__all__ = ["build_model", "checked_params", "model_params", "RESERVED_KEYS"]

log = logging.getLogger(__name__)

# Keys of a model option that are mlexp's, not the estimator's: the counterpart class for the
# other task, and the default tuning space (read by the tuner).
RESERVED_KEYS = ("classifier", "regressor", "search_space")


def model_params(model_cfg: DictConfig) -> Dict[str, Any]:
    """The estimator's keyword arguments: the option minus `_target_` and mlexp's reserved keys."""
    params = OmegaConf.to_container(model_cfg, resolve=True)
    for key in ("_target_", *RESERVED_KEYS):
        params.pop(key, None)
    return params


def build_model(model_cfg: DictConfig, task: str, n_jobs: Optional[int] = None, context: Optional[dict] = None) -> Any:
    """Instantiate the model for ``task``; ``n_jobs: null`` takes the instance's thread count.

    Only options that declare ``n_jobs: null`` get the instance's thread count.
    A PyTorch option (a `_target_` under skorch or mlexp.neural) is built by mlexp.neural,
    imported only then.
    """
    from hydra.utils import get_class
    from sklearn.base import is_classifier, is_regressor

    target = model_cfg.get("_target_")
    if not target:
        raise MlexpError("the model option has no _target_; every model option names its estimator class.")
    if target.startswith(("skorch.", "mlexp.neural")):
        from mlexp.neural import build_torch_model

        return build_torch_model(model_cfg, task, n_jobs=n_jobs, context=context or {})

    cls = _load_class(get_class, target)
    wanted = is_classifier if task == "classification" else is_regressor
    if not wanted(_probe(cls)):
        counterpart = model_cfg.get("classifier" if task == "classification" else "regressor")
        if counterpart is None:
            kind = "classifier" if task == "regression" else "regressor"
            raise MlexpError(
                f"model {target} is a {kind} and has no {task} form, but the task is {task}. "
                f"Choose a model that fits {task} (e.g. "
                f"{'model=logreg, random_forest, gradient_boosting' if task == 'classification' else 'model=linear, lasso, random_forest, gradient_boosting'}), "
                f"or set task= if the task was inferred wrongly."
            )
        target = counterpart
        cls = _load_class(get_class, target)
    params = checked_params(cls, target, model_params(model_cfg), n_jobs, what="model")
    log.info("model: %s(%s)", target, ", ".join(f"{k}={v!r}" for k, v in params.items()))
    return cls(**params)


def checked_params(cls: type, target: str, params: Dict[str, Any], n_jobs: Optional[int], what: str) -> Dict[str, Any]:
    """``params`` after refusing any ``cls`` does not take; ``n_jobs: null`` becomes the instance's threads."""
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise MlexpError(
            f"{what} {target} has no parameter(s) {', '.join(unknown)}. Its parameters are: "
            f"{', '.join(p for p in accepted if p not in ('self', 'args', 'kwargs'))}."
        )
    if "n_jobs" in params and params["n_jobs"] is None and n_jobs is not None:
        params = {**params, "n_jobs": n_jobs}
    return params


def _load_class(get_class, target: str) -> type:
    try:
        return get_class(target)
    except Exception as err:  # hydra raises ImportError or ValueError depending on the failure
        raise MlexpError(f"model _target_ {target!r} cannot be imported: {err}") from err


def _probe(cls: type) -> Any:
    try:
        return cls()
    except TypeError:
        return cls  # estimators with required arguments: is_classifier accepts the class too
