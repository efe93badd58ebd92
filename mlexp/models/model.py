"""Build the estimator one `model` option names, in its classification or regression form."""

import inspect
import logging
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError

__all__ = ["build_model", "checked_params", "model_params", "instantiate_params", "counterpart", "RESERVED_KEYS",
           "COUNTERPART_KEYS"]

log = logging.getLogger(__name__)

# Keys of a model option that are mlexp's, not the estimator's: the class for the other task (written like
# Hydra's own `_target_`, so they never shadow an estimator's parameter of the same name, such as
# TransformedTargetRegressor's `regressor`), and the default tuning space (read by the tuner).
COUNTERPART_KEYS = {"classification": "_classifier_", "regression": "_regressor_"}
RESERVED_KEYS = (*COUNTERPART_KEYS.values(), "search_space")


def model_params(model_cfg: DictConfig) -> Dict[str, Any]:
    """The estimator's keyword arguments: the option minus `_target_` and mlexp's reserved keys."""
    params = OmegaConf.to_container(model_cfg, resolve=True)
    for key in ("_target_", *RESERVED_KEYS):
        params.pop(key, None)
    return params


def instantiate_params(params: Dict[str, Any], where: str) -> Dict[str, Any]:
    """Parameter values given as configs (``{_target_: ...}``, also inside lists) built into objects:
    a user's own TransformedTargetRegressor, StackingRegressor or scorer YAML."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    if not any(_has_target(v) for v in params.values()):
        return params
    try:
        return {k: instantiate(v, _convert_="all") if _has_target(v) else v for k, v in params.items()}
    except InstantiationException as err:
        raise MlexpError(f"{where}: a nested _target_ could not be built: {err.__cause__ or err}") from err


def _has_target(value: Any) -> bool:
    if isinstance(value, dict):
        return "_target_" in value or any(_has_target(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_target(v) for v in value)
    return False


def counterpart(option: Dict[str, Any], task: str) -> Optional[Any]:
    """The option's class for ``task`` when its own `_target_` does not fit it: a class path (same
    parameters), or a mapping with its own `_target_` and parameters."""
    return option.get(COUNTERPART_KEYS[task])


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
    params = model_params(model_cfg)
    if not wanted(_probe(cls)):
        other = counterpart(model_cfg, task)
        if other is None:
            kind = "classifier" if task == "regression" else "regressor"
            raise MlexpError(
                f"model {target} is a {kind} and has no {task} form, but the task is {task}. "
                f"Choose a model that fits {task} (e.g. "
                f"{'model=logreg, random_forest, gradient_boosting' if task == 'classification' else 'model=linear, lasso, random_forest, gradient_boosting'}), "
                f"or set task= if the task was inferred wrongly."
            )
        own = inspect.signature(cls).parameters
        if OmegaConf.is_dict(other):  # its own class and parameters
            params = model_params(other)
            target = other.get("_target_")
        else:
            target = other
        cls = _load_class(get_class, target)
        accepted = inspect.signature(cls).parameters
        ignored = sorted(k for k in params if k in own and k not in accepted)
        if ignored:  # e.g. logreg's C on a regression target (Ridge): said, not silently dropped
            log.info("model: the %s form %s takes no %s; left out", task, target, ", ".join(ignored))
        params = {k: v for k, v in params.items() if k not in ignored}
    params = instantiate_params(params, f"model {target}")
    params = checked_params(cls, target, params, n_jobs, what="model")
    log.info("model: %s(%s)", target, ", ".join(f"{k}={v!r}" for k, v in params.items()))
    return cls(**params)


def checked_params(cls: type, target: str, params: Dict[str, Any], n_jobs: Optional[int], what: str) -> Dict[str, Any]:
    """``params`` after refusing any ``cls`` does not take; ``n_jobs: null`` becomes the instance's threads."""
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        renamed = [k for k in unknown if k in ("regressor", "classifier")]
        hint = (f" (mlexp's key for the other task's class is now _{renamed[0]}_)" if renamed else "")
        raise MlexpError(
            f"{what} {target} has no parameter(s) {', '.join(unknown)}{hint}. Its parameters are: "
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
