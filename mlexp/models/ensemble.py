"""Ensembles composed from `model` options: bagging, boosting, voting and stacking as one pipeline step.

An `ensemble` option names a scikit-learn meta-estimator by `_target_` (its `_regressor_:`
counterpart for regression), like a model option. Its members are built by
`mlexp.models.model.build_model`, so each keeps its classification/regression form and checks:
- a class taking `estimator` (bagging, AdaBoost) wraps the selected `model` option;
- a class taking `estimators` (voting, stacking) gets the model options named in
  `members`, loaded by Hydra from the same config search path (user config dirs included),
  with per-member overrides inline (`{random_forest: {n_estimators: 300}}`) or in
  `member_params`; `meta` names the `final_estimator`.
"""

import copy
import inspect
import logging
from typing import Any, Dict, List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf, open_dict

from mlexp.errors import MlexpError

__all__ = ["build_ensemble", "model_option", "member_estimators", "member_cv", "ENSEMBLE_KEYS"]

log = logging.getLogger(__name__)

# Keys of an ensemble option that are mlexp's, not the meta-estimator's.
ENSEMBLE_KEYS = ("_classifier_", "_regressor_", "search_space", "members", "member_params", "meta", "meta_params")


def build_ensemble(cfg: DictConfig, task: str, n_jobs: Optional[int] = None, context: Optional[dict] = None) -> Any:
    """The ensemble the `ensemble` option names, for ``task``, with its members built from model options."""
    from hydra.utils import get_class
    from sklearn.base import is_classifier

    from mlexp.models.model import COUNTERPART_KEYS, build_model, checked_params, instantiate_params

    ens = cfg.ensemble
    target = ens.get(COUNTERPART_KEYS[task]) or ens._target_
    try:
        cls = get_class(target)
    except Exception as err:
        raise MlexpError(f"ensemble _target_ {target!r} cannot be imported: {err}") from err
    params = OmegaConf.to_container(ens, resolve=True)
    for key in ("_target_", *ENSEMBLE_KEYS):
        params.pop(key, None)
    accepted = inspect.signature(cls).parameters
    if target != ens._target_:  # the other task's class: drop what only the option's own class takes (voting=soft)
        own = inspect.signature(get_class(ens._target_)).parameters
        params = {k: v for k, v in params.items() if k in accepted or k not in own}
    params = checked_params(cls, target, instantiate_params(params, f"ensemble {target}"), n_jobs, what="ensemble")

    if "estimators" in accepted:  # voting, stacking: different model types
        params["estimators"] = _members(cfg, task, n_jobs, context)
        if "final_estimator" in accepted and ens.get("meta"):
            meta_cfg = _with_params(model_option(ens.meta, cfg), ens.get("meta_params"), "ensemble.meta_params")
            params["final_estimator"] = _build(build_model, meta_cfg, task, n_jobs, context, f"ensemble.meta={ens.meta}")
        _check_voting(cls, params, target)
    elif "estimator" in accepted:  # bagging, boosting: copies of the selected model
        base = _build(build_model, cfg.model, task, n_jobs, context, "model")
        _check_sample_weight(cls, base, target)
        params["estimator"] = base
    else:
        raise MlexpError(
            f"ensemble {target} takes neither `estimator` (one base model) nor `estimators` (members); "
            "name a scikit-learn meta-estimator such as sklearn.ensemble.BaggingClassifier or StackingClassifier."
        )
    _check_savable(cfg, params)
    ensemble = cls(**params)
    if (task == "classification") != is_classifier(ensemble):
        raise MlexpError(
            f"ensemble {target} does not fit {task}; give the option a "
            f"`{COUNTERPART_KEYS[task]}:` counterpart class."
        )
    log.info("ensemble: %s(%s)", target, ", ".join(f"{k}={v!r}" for k, v in params.items() if k != "estimators"))
    return ensemble


def model_option(name: str, cfg: DictConfig) -> DictConfig:
    """The `model` option ``name`` as Hydra composes it, its interpolations (``${seed}``) read from ``cfg``.

    Uses the running Hydra's config search path (built-in options, ``--config-dir``,
    MLEXP_CONFIG_DIR, ./mlexp_conf); outside Hydra (``run(cfg)`` from Python) it opens
    mlexp's own config module, where the search path plugin adds the user folders.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    if not isinstance(name, str) or not name:
        raise MlexpError(f"ensemble members are named by model options (e.g. logreg, random_forest); got {name!r}.")
    overrides = [f"+model={name}"]
    try:
        if GlobalHydra.instance().is_initialized():
            composed = compose(overrides=overrides)
        else:
            with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
                composed = compose(overrides=overrides)
    except HydraException as err:
        raise MlexpError(
            f"no model option {name!r} for the ensemble. Model options: {', '.join(_model_options())}. "
            "Your own go in a model/ folder of a config dir (MLEXP_CONFIG_DIR, ./mlexp_conf or --config-dir)."
        ) from err
    # Graft the option into a copy of the run's config, so ${seed} and friends resolve against it.
    holder = copy.deepcopy(cfg)
    option = composed.model
    OmegaConf.set_struct(option, False)
    with open_dict(holder):
        holder.model = option
    return holder.model


def member_estimators(cfg: DictConfig, ensemble: Any) -> List[Tuple[str, Any]]:
    """(name, unfitted estimator) of each member: the model options of voting/stacking, or the base model."""
    members = getattr(ensemble, "estimators", None)
    if members:
        return [(name, est) for name, est in members if not isinstance(est, str)]
    base = getattr(ensemble, "estimator", None)
    return [(_model_choice(cfg, base), base)] if base is not None else []


def member_cv(cfg: DictConfig, pipeline: Any, X, y, splitter: Any, task: str, n_classes: Optional[int],
              groups: Any = None, weights: Any = None) -> Optional[Dict[str, Any]]:
    """Each ensemble member's CV scores on the same folds and features as the ensemble; None without one.

    Per fold, the steps before the model (column transforms, selection, sampler) are fitted
    once on the training rows; every member is then fitted alone on their output and scored
    on the validation rows (with the rows' weights, when the data has them).
    Returns ``{member: {metric: {"mean", "std", "folds"}}}``.
    """
    from imblearn.pipeline import Pipeline
    from sklearn.base import clone

    from mlexp.evaluation import CVResult
    from mlexp.evaluation.checks import make_folds
    from mlexp.evaluation.metrics import score

    if not (cfg.get("ensemble") is not None and cfg.ensemble.get("_target_")):
        return None
    members = member_estimators(cfg, pipeline.named_steps["model"])
    if not members:
        return None
    results = {name: CVResult() for name, _ in members}
    y_array = y.to_numpy()
    for train, validation in make_folds(splitter, X, y_array, groups):
        prefix = clone(pipeline[:-1])
        X_train, y_train = X.iloc[train], y_array[train]
        if hasattr(prefix, "fit_resample"):  # ends with the sampler: resample the training rows only
            Xt, yt = prefix.fit_resample(X_train, y_train)
        else:
            Xt, yt = prefix.fit_transform(X_train, y_train), y_train
        fit_weights = {} if weights is None else {"sample_weight": weights[train]}
        for name, estimator in members:
            fitted = clone(estimator).fit(Xt, yt, **fit_weights)
            alone = Pipeline([*prefix.steps, ("model", fitted)])
            results[name].folds.append(score(alone, X.iloc[validation], y_array[validation], task, n_classes,
                                             None if weights is None else weights[validation]))
    return {name: result.summary() for name, result in results.items()}


def _members(cfg: DictConfig, task: str, n_jobs: Optional[int], context: Optional[dict]) -> List[Tuple[str, Any]]:
    from mlexp.models.model import build_model

    names = cfg.ensemble.get("members")
    if OmegaConf.is_dict(names) or isinstance(names, str) or not names:
        raise MlexpError(
            f"ensemble.members must list model options, e.g. ensemble.members=[logreg,random_forest]; got {names!r}. "
            "A member with overrides: {random_forest:{n_estimators:300}}, or "
            "+ensemble.member_params.random_forest.n_estimators=300."
        )
    inline: Dict[str, Any] = {}  # members=[logreg,{random_forest:{n_estimators:300}}]
    for i, item in enumerate(names):
        if OmegaConf.is_dict(item) and len(item) == 1:
            name, params = next(iter(item.items()))
            inline[str(name)] = params
        elif not isinstance(item, str):
            raise MlexpError(
                f"ensemble.members[{i}] is {item!r}; give a model option's name (random_forest) or one name "
                "with its overrides ({random_forest:{n_estimators:300}})."
            )
    names = [str(next(iter(n))) if OmegaConf.is_dict(n) else str(n) for n in names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise MlexpError(f"ensemble.members lists {', '.join(repeated)} more than once; name each model option once.")
    member_params = cfg.ensemble.get("member_params") or {}
    stray = sorted(set(member_params) - set(names))
    if stray:
        raise MlexpError(
            f"ensemble.member_params has overrides for {', '.join(stray)}, which is not in ensemble.members "
            f"({', '.join(names)}). Add it to the members or fix the name."
        )
    built = []
    for name in names:
        member_cfg = _with_params(model_option(name, cfg), inline.get(name), f"ensemble.members.{name}")
        member_cfg = _with_params(member_cfg, member_params.get(name), f"ensemble.member_params.{name}")
        built.append((name, _build(build_model, member_cfg, task, n_jobs, context, f"ensemble member {name}")))
    return built


def _with_params(option: DictConfig, params: Any, where: str) -> DictConfig:
    if not params:
        return option
    if not OmegaConf.is_dict(params):
        raise MlexpError(f"{where} must map parameter names to values (e.g. {where}.n_estimators=300); got {params!r}.")
    for key, value in params.items():
        option[key] = value
    return option


def _build(build_model, model_cfg: DictConfig, task: str, n_jobs, context, where: str) -> Any:
    try:
        return build_model(model_cfg, task, n_jobs=n_jobs, context=context)
    except MlexpError as err:
        raise MlexpError(f"{where}: {err}") from err


def _check_sample_weight(cls: type, base: Any, target: str) -> None:
    from sklearn.ensemble import AdaBoostClassifier, AdaBoostRegressor
    from sklearn.utils.validation import has_fit_parameter

    if issubclass(cls, (AdaBoostClassifier, AdaBoostRegressor)) and not has_fit_parameter(base, "sample_weight"):
        raise MlexpError(
            f"boosting ({target}) reweights the training rows each round, but {type(base).__name__}.fit takes no "
            "sample_weight. Choose a model that does (model=decision_tree, logreg, linear, svm, random_forest), "
            "use ensemble=bagging, or use model=gradient_boosting (gradient boosting is a model of its own)."
        )


def _check_savable(cfg: DictConfig, params: Dict[str, Any]) -> None:
    from mlexp.neural import is_torch_estimator  # no torch import

    inner = [est for _, est in params.get("estimators", [])] + [params.get("estimator"), params.get("final_estimator")]
    torch_members = [type(est).__name__ for est in inner if est is not None and is_torch_estimator(est)]
    if torch_members and cfg.get("save_model", False):
        raise MlexpError(
            f"an ensemble with PyTorch members ({', '.join(torch_members)}) cannot be saved to model.skops yet. "
            "Run it with save_model=false (CV and test scores are still written)."
        )


def _check_voting(cls: type, params: Dict[str, Any], target: str) -> None:
    if params.get("voting") != "soft":
        return
    lacking = [name for name, est in params["estimators"] if not hasattr(est, "predict_proba")]
    if lacking:
        raise MlexpError(
            f"soft voting ({target}) averages class probabilities, but member(s) {', '.join(lacking)} have no "
            "predict_proba. Use ensemble.voting=hard, or members with probabilities (svm needs "
            "+ensemble.member_params.svm.probability=true)."
        )


def _model_choice(cfg: DictConfig, base: Any) -> str:
    """The selected `model` option's name under Hydra, else the estimator's class name."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("model")
        if choice:
            return str(choice)
    return type(base).__name__


def _model_options() -> List[str]:
    from hydra.core.global_hydra import GlobalHydra

    try:
        if GlobalHydra.instance().is_initialized():
            return list(GlobalHydra.instance().config_loader().get_group_options("model"))
        from hydra import initialize_config_module

        with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
            return list(GlobalHydra.instance().config_loader().get_group_options("model"))
    except Exception:  # listing is a courtesy in an error message
        return []
