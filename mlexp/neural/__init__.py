"""PyTorch models as pipeline estimators: `model=mlp|torch_linear`, trained with the `optimizer` group.

Nothing here imports torch at import time: the names below load their private module on
first use, so `mlexp --cfg job` and scikit-learn-only runs never pay for torch.
"""

from typing import TYPE_CHECKING, Any

__all__ = [
    "build_torch_model",
    "MLP",
    "LinearModel",
    "TorchClassifier",
    "TorchRegressor",
    "is_torch_estimator",
    "holds_torch_estimator",
    "save_torch_model",
    "load_torch_model",
    "write_training_curves",
    "TORCH_STATE_FILE",
    "TORCH_SPEC_FILE",
]

TORCH_STATE_FILE = "model.pt"
TORCH_SPEC_FILE = "model_torch.json"

_LAZY = {
    "build_torch_model": "mlexp.neural._build",
    "MLP": "mlexp.neural._modules",
    "LinearModel": "mlexp.neural._modules",
    "TorchClassifier": "mlexp.neural._net",
    "TorchRegressor": "mlexp.neural._net",
    "save_torch_model": "mlexp.neural._io",
    "load_torch_model": "mlexp.neural._io",
    "write_training_curves": "mlexp.neural._curves",
}

if TYPE_CHECKING:
    from mlexp.neural._build import build_torch_model
    from mlexp.neural._curves import write_training_curves
    from mlexp.neural._io import load_torch_model, save_torch_model
    from mlexp.neural._modules import MLP, LinearModel
    from mlexp.neural._net import TorchClassifier, TorchRegressor


def is_torch_estimator(estimator: Any) -> bool:
    """True for mlexp's torch nets, checked by type name so that torch is not imported."""
    return type(estimator).__module__.startswith("mlexp.neural")


def holds_torch_estimator(estimator: Any) -> bool:
    """True when a torch net sits anywhere inside ``estimator`` (e.g. an ensemble member)."""
    if is_torch_estimator(estimator):
        return True
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return False
    values = get_params(deep=True).values()
    return any(is_torch_estimator(v) or (isinstance(v, list) and any(holds_torch_estimator(x) for x in v))
               for v in values)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlexp.neural' has no attribute {name!r}")
