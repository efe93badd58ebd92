"""Where an incremental run starts: a saved run's PyTorch model (warm start) or a new one, and each task's rows as inputs."""

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from omegaconf import DictConfig

from mlexp.errors import MlexpError

__all__ = ["Experience", "build_strategy", "warm_start", "fresh_model"]

log = logging.getLogger("mlexp")

# Strategies that use the rows of earlier experiences: with incremental.from, those of the saved run.
NEEDS_OLD_ROWS = ("ewc", "si", "replay", "exemplar", "gem")


@dataclass
class Experience:
    """One task's rows as model inputs: training rows for the strategy, test rows for the matrix."""

    name: str
    X: Any
    y: Any
    X_test: Any
    y_test: Any
    trained_before: bool = False  # the saved run's own data, learnt before this run (incremental.from)


def build_strategy(node: Optional[DictConfig]) -> Any:
    """The strategy plugin a `continual` option names (naive when none is selected)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from mlexp.neural.continual.naive import Naive

    if node is None:
        return Naive()
    try:
        return instantiate(node)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, MlexpError):
            raise cause from None
        raise MlexpError(f"continual.strategy ({node.get('_target_')}) could not be built: {cause or err}. "
                         "See docs/continual.md for each strategy's parameters.") from err


def fresh_model(cfg: DictConfig, dataset: Any, tasks: List[Any], n_jobs: int) -> Tuple[Any, Any, Dict, List[Experience]]:
    """A new net of the `model` option; preprocessing fitted on the first task's training rows only."""
    import torch

    from mlexp.models.model import build_model
    from mlexp.neural import is_torch_estimator
    from mlexp.pipeline import build_pipeline
    from mlexp.neural.continual.source import preprocessor

    target = str(cfg.model.get("_target_", ""))
    if not target.startswith("mlexp.neural") or (cfg.get("ensemble") or {}).get("_target_"):
        raise MlexpError(
            f"mode=incremental trains a PyTorch model step by step, and model {target} is not one"
            f"{' (or sits in an ensemble)' if (cfg.get('ensemble') or {}).get('_target_') else ''}. Use model=mlp or "
            "model=torch_linear (ensemble=none)."
        )
    if (cfg.get("sampler") or {}).get("_target_"):
        log.warning("mode=incremental: the sampler is not applied (rows are learnt task by task as they come)")
    context = {"seed": cfg.seed, "device": "cpu", "cfg": cfg}
    net = build_model(cfg.model, dataset.task, n_jobs=n_jobs, context=context)
    if not is_torch_estimator(net):
        raise MlexpError(f"model {target} did not build one of mlexp's PyTorch nets; use model=mlp or model=torch_linear.")
    preprocess = preprocessor(build_pipeline(cfg, dataset.roles, dataset.features, dataset.task, net))
    first = tasks[0].train
    if preprocess is not None:
        preprocess.fit(dataset.features.iloc[first], dataset.target.iloc[first])
    experiences = [_experience(t.name, preprocess, dataset, t.train, t.test, None) for t in tasks]
    if dataset.task == "classification":
        n_outputs = max(2, len(dataset.class_names))
        net.set_params(classes=list(range(n_outputs)))
    else:
        n_outputs = 1
    net.set_params(module__n_features=int(experiences[0].X.shape[1]), module__n_outputs=n_outputs)
    torch.manual_seed(int(cfg.seed))
    net.initialize()
    if dataset.task == "regression":
        first_y = dataset.target.iloc[first].to_numpy(dtype=float)
        net.y_mean_, net.y_scale_ = float(first_y.mean()), float(first_y.std()) or 1.0
    card = {"task": dataset.task, "target": cfg.data.target, "classes": dataset.class_names,
            "features": list(dataset.features.columns), "roles": dataset.roles.as_dict()}
    return net, preprocess, card, experiences


def warm_start(source: Any, dataset: Any, tasks: List[Any], strategy: Any) -> Tuple[Any, Any, Dict, List[Experience]]:
    """The saved run's net and fitted preprocessing; its own data first, as an experience already learnt."""
    from mlexp.neural import is_torch_estimator
    from mlexp.neural.continual.source import load_run, load_run_data, preprocessor

    saved = load_run(source, "incremental.from")
    net = saved.estimator
    if not is_torch_estimator(net):
        raise MlexpError(
            f"incremental.from={source} holds a {type(net).__name__}: warm start continues the training of a "
            "PyTorch model (a run with model=mlp or model=torch_linear)."
        )
    if getattr(net, "compression_", None):
        raise MlexpError(f"incremental.from={source} holds a compressed model ({net.compression_}); continue "
                         "training the uncompressed run it was made from, then compress again.")
    card = dict(saved.card)
    if card.get("task") != dataset.task:
        raise MlexpError(f"incremental.from={source} is a {card.get('task')} model, but data "
                         f"'{dataset.name}' gives a {dataset.task} task.")
    missing = [c for c in card.get("features", []) if c not in dataset.features.columns]
    if missing:
        raise MlexpError(f"the new data lacks feature columns the saved model was trained on: {', '.join(missing)}. "
                         f"Columns found: {', '.join(map(str, dataset.features.columns))}.")
    preprocess = preprocessor(saved.model)
    classes = card.get("classes")
    experiences = []
    if saved.cfg is not None:
        old, old_dev, old_test = load_run_data(saved, "incremental.from")
        experiences.append(_experience("saved run", preprocess, old, old_dev, old_test, classes, card, True))
    elif strategy.name in NEEDS_OLD_ROWS:
        raise MlexpError(f"continual={strategy.name} needs the rows the saved run learnt from, but "
                         f"{saved.directory} has no .hydra/config.yaml to load them again. Use continual=naive "
                         "or continual=lwf, which need no old rows.")
    experiences += [_experience(t.name, preprocess, dataset, t.train, t.test, classes, card) for t in tasks]
    return net, preprocess, card, experiences


def _experience(name: str, preprocess: Any, dataset: Any, train: np.ndarray, test: np.ndarray,
                classes: Optional[List[Any]], card: Optional[Dict] = None, trained_before: bool = False) -> Experience:
    from mlexp.neural.continual.source import as_matrix

    columns = card.get("features") if card else None
    features = dataset.features[columns] if columns else dataset.features
    y = _codes(dataset, classes)
    return Experience(name, as_matrix(preprocess, features.iloc[train]), y[train],
                      as_matrix(preprocess, features.iloc[test]), y[test], trained_before)


def _codes(dataset: Any, classes: Optional[List[Any]]) -> np.ndarray:
    """Targets as the model's class numbers (a saved model's classes may be ordered unlike the new data's)."""
    y = dataset.target.to_numpy()
    if dataset.task != "classification" or classes is None:
        return y
    index = {str(c): i for i, c in enumerate(classes)}
    unknown = sorted({str(c) for c in dataset.class_names} - set(index))
    if unknown:
        raise MlexpError(f"the new data has classes the saved model does not know: {', '.join(unknown)} (it knows "
                         f"{', '.join(map(str, classes))}). Its output layer has one unit per known class; train a "
                         "new run that sees every class.")
    mapping = np.array([index[str(c)] for c in dataset.class_names])
    return mapping[y.astype(int)]
