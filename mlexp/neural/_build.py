"""Turn a `model` option (mlp, torch_linear) and the `optimizer` option into a skorch net for the task."""

import inspect
import logging
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError
from mlexp.models.model import RESERVED_KEYS as MODEL_KEYS

__all__ = ["build_torch_model", "optimizer_settings"]

log = logging.getLogger(__name__)

# Keys of a torch model option that configure training rather than the module's constructor.
TRAINING_KEYS = ("max_epochs", "l1", "noise_std", "early_stopping", "patience", "min_delta",
                 "validation_fraction", "loss", "random_state", "n_jobs", "precision")
RESERVED_KEYS = ("_target_", *MODEL_KEYS)  # _classifier_, _regressor_, search_space: not constructor arguments


def optimizer_settings(optimizer_cfg: Optional[DictConfig]) -> Dict[str, Any]:
    """skorch's optimizer arguments from an `optimizer` option: class, lr, batch_size, optimizer__*."""
    import torch
    from hydra.utils import get_class

    if optimizer_cfg is None or not optimizer_cfg.get("_target_"):
        raise MlexpError(
            "PyTorch models need an optimizer, and none is selected. "
            f"Choose one of: {', '.join(_optimizer_options())} (optimizer=adam; see docs/optimizer.md)."
        )
    params = OmegaConf.to_container(optimizer_cfg, resolve=True)
    target = params.pop("_target_")
    params.pop("_partial_", None)
    batch_size = params.pop("batch_size", 32)
    try:
        cls = get_class(target)
    except Exception as err:
        raise MlexpError(
            f"optimizer._target_={target!r} cannot be imported ({err}). Name a torch.optim class "
            "(torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, ...) or pick an option: "
            "optimizer=gd, sgd, minibatch, momentum, adam, adamw."
        ) from err
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise MlexpError(f"optimizer._target_={target!r} is not a torch.optim optimizer class.")
    accepted = set(inspect.signature(cls).parameters) - {"params", "self"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise MlexpError(
            f"optimizer {target} has no parameter(s) {', '.join(unknown)}. Its parameters are: "
            f"{', '.join(sorted(accepted))} (and mlexp's batch_size)."
        )
    lr = params.pop("lr", 0.01)
    if not isinstance(lr, (int, float)) or lr <= 0:
        raise MlexpError(f"optimizer.lr={lr!r}: the learning rate must be a positive number (e.g. optimizer.lr=0.01).")
    if params.get("weight_decay", 0) is not None and params.get("weight_decay", 0) < 0:
        raise MlexpError(f"optimizer.weight_decay={params['weight_decay']!r} must be 0 or positive (L2 strength).")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or (batch_size < 1 and batch_size != -1):
        raise MlexpError(
            f"optimizer.batch_size={batch_size!r}: use a positive number of rows per step, or -1 for the whole "
            "training fold (full-batch gradient descent)."
        )
    return {"optimizer": cls, "lr": float(lr), "batch_size": batch_size,
            **{f"optimizer__{key}": value for key, value in params.items()}}


def _optimizer_options() -> list:
    from importlib.resources import files

    return sorted(p.name[:-5] for p in files("mlexp.conf").joinpath("optimizer").iterdir() if p.name.endswith(".yaml"))


def build_torch_model(model_cfg: DictConfig, task: str, n_jobs: Optional[int] = None,
                      context: Optional[dict] = None) -> Any:
    """A TorchClassifier or TorchRegressor for ``task`` (a skorch `_target_` is instantiated as written).

    ``context`` gives ``seed``, ``device`` ("cpu"/"cuda", checked by the instance profile),
    ``reporter`` (its metric is reported per epoch) and ``cfg`` (for the `optimizer` option and
    the instance's ``processes``). ``n_jobs`` (the instance's threads) becomes torch's thread
    count: the most a net uses; ``model.n_jobs`` fixes the net's own (null: by work per step).
    """
    import torch
    from hydra.utils import get_class, instantiate

    from mlexp.neural._batches import ValidationSlice
    from mlexp.neural._net import PRECISIONS, TensorBatches, TorchClassifier, TorchRegressor
    from mlexp.neural.rules import rules_params

    context = context or {}
    target = model_cfg.get("_target_")
    if n_jobs:
        torch.set_num_threads(int(n_jobs))
    if target.startswith("skorch."):
        node = {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=False).items() if k not in RESERVED_KEYS[1:]}
        log.info("model: %s (as configured)", target)
        return instantiate(OmegaConf.create(node), _convert_="all")

    module = _module_class(get_class, target)
    params = OmegaConf.to_container(model_cfg, resolve=True)
    for key in RESERVED_KEYS:
        params.pop(key, None)
    training = {key: params.pop(key) for key in TRAINING_KEYS if key in params}
    accepted = set(inspect.signature(module).parameters) - {"n_features", "n_outputs", "self"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise MlexpError(
            f"model {target} has no parameter(s) {', '.join(unknown)}. Its parameters are: "
            f"{', '.join(sorted(accepted | set(TRAINING_KEYS)))}."
        )
    _check_model_values(params, training, PRECISIONS)
    seed = training.get("random_state", context.get("seed"))
    fraction = float(training.get("validation_fraction", 0.1) or 0.0)
    early = bool(training.get("early_stopping", True))
    if early and fraction <= 0:
        raise MlexpError(
            "model.early_stopping=true watches the validation loss, but model.validation_fraction=0 leaves no "
            "validation slice. Set model.validation_fraction (e.g. 0.1) or model.early_stopping=false."
        )
    net_cls = TorchClassifier if task == "classification" else TorchRegressor
    loss = training.get("loss", "auto")
    extra = {}
    if loss not in (None, "auto"):
        extra["criterion"] = _loss_class(get_class, loss)
    reporter = context.get("reporter")
    processes = int(context["cfg"].instance.get("processes", 1) or 1) if "cfg" in context else 1
    split = ValidationSlice(fraction, stratified=task == "classification", random_state=seed) if fraction > 0 else None
    net = net_cls(
        module,
        **{f"module__{key}": value for key, value in params.items()},
        **optimizer_settings(context["cfg"].get("optimizer") if "cfg" in context else None),
        **extra,
        max_epochs=int(training.get("max_epochs", 100)),
        train_split=split,
        iterator_train=TensorBatches,
        iterator_train__shuffle=True,
        iterator_valid=TensorBatches,
        l1=float(training.get("l1", 0.0)),
        noise_std=float(training.get("noise_std", 0.0)),
        early_stopping=early,
        patience=int(training.get("patience", 10)),
        min_delta=float(training.get("min_delta", 1e-4)),
        objective=getattr(reporter, "metric", None),
        random_state=seed,
        n_jobs=training.get("n_jobs"),
        precision=training.get("precision", "fp32"),
        processes=processes,
        device=context.get("device", "cpu"),
        **rules_params(context.get("cfg")),  # training rules (docs/rules.md)
        verbose=0,
    )
    log.info("model: %s(%s) as %s, optimizer %s(lr=%s), batch_size=%s, %s%s", target,
             ", ".join(f"{k}={v!r}" for k, v in params.items()), net_cls.__name__,
             net.optimizer.__name__, net.lr, net.batch_size, net.precision,
             f", {processes} data-parallel processes" if processes > 1 else "")
    return net


def _module_class(get_class, target: str) -> type:
    try:
        return get_class(target)
    except Exception as err:
        raise MlexpError(f"model _target_ {target!r} cannot be imported: {err}. Use model=mlp or model=torch_linear.") from err


def _loss_class(get_class, loss: str) -> type:
    try:
        return get_class(loss)
    except Exception as err:
        raise MlexpError(
            f"model.loss={loss!r} is not a loss class ({err}). Use auto, or a torch.nn loss such as "
            "torch.nn.CrossEntropyLoss (classification), torch.nn.MSELoss or torch.nn.HuberLoss (regression)."
        ) from err


def _check_model_values(params: Dict[str, Any], training: Dict[str, Any], precisions: tuple) -> None:
    precision = training.get("precision", "fp32")
    if precision not in precisions:
        raise MlexpError(f"model.precision={precision!r}: use {' or '.join(precisions)} "
                         "(bf16: bfloat16 autocast for the forward pass; the weights stay float32).")
    n_jobs = training.get("n_jobs")
    if n_jobs is not None and (not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 1):
        raise MlexpError(f"model.n_jobs={n_jobs!r}: a number of torch threads (1 or more), or null to "
                         "choose by the work per step (up to the instance profile's threads).")
    dropout = params.get("dropout", 0.0)
    if dropout is not None and not 0 <= dropout < 1:
        raise MlexpError(f"model.dropout={dropout!r}: dropout is a probability in [0, 1).")
    for key in ("l1", "noise_std", "min_delta"):
        if training.get(key, 0) < 0:
            raise MlexpError(f"model.{key}={training[key]!r} must be 0 or positive.")
    if int(training.get("max_epochs", 1)) < 1:
        raise MlexpError(f"model.max_epochs={training['max_epochs']!r} must be at least 1.")
    fraction = training.get("validation_fraction", 0.1) or 0.0
    if not 0 <= fraction < 1:
        raise MlexpError(f"model.validation_fraction={fraction!r} must be in [0, 1).")
    sizes = params.get("hidden_sizes", [])
    if any(int(s) < 1 for s in sizes or []):
        raise MlexpError(f"model.hidden_sizes={sizes!r}: every hidden layer needs at least one unit.")
