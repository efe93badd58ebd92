"""Save a fitted torch net as a state dict plus a JSON spec to rebuild it (no pickled code), and load it back."""

import json
from pathlib import Path
from typing import Any, Dict

from mlexp.errors import MlexpError
from mlexp.neural import TORCH_SPEC_FILE, TORCH_STATE_FILE

__all__ = ["save_torch_model", "load_torch_model"]

# Only these classes are rebuilt from a spec file: a spec names classes, it never carries code.
_ESTIMATORS = ("mlexp.neural.TorchClassifier", "mlexp.neural.TorchRegressor")
_MODULES = ("mlexp.neural.MLP", "mlexp.neural.LinearModel")


def save_torch_model(net: Any, directory: Path) -> Dict[str, Any]:
    """Write ``model.pt`` (the module's state dict) and ``model_torch.json`` (how to rebuild the net)."""
    import torch

    from mlexp.neural._net import TorchClassifier

    estimator = f"mlexp.neural.{type(net).__name__}"
    module = f"mlexp.neural.{net.module.__name__}"
    if estimator not in _ESTIMATORS or module not in _MODULES:
        raise MlexpError(
            f"cannot save {type(net).__name__} with module {net.module!r}: only mlexp's PyTorch models "
            "(model=mlp, model=torch_linear) are saved as state dicts. Set save_model=false for custom skorch nets."
        )
    criterion = net.criterion_.__class__
    spec = {
        "estimator": estimator,
        "module": module,
        "module_params": net.get_params_for("module"),
        "criterion": f"{criterion.__module__}.{criterion.__qualname__}",
    }
    if isinstance(net, TorchClassifier):
        spec["classes"] = [c.item() if hasattr(c, "item") else c for c in net.classes_]  # labels as fitted
    else:
        spec["y_mean"], spec["y_scale"] = net.y_mean_, net.y_scale_
    compression = getattr(net, "compression_", None)
    if compression:  # pruned or quantized by mlexp.neural.compress: its storage writes the state (docs/compress.md)
        from mlexp.neural.compress.storage import state_for_file

        spec["compression"] = compression
        state = state_for_file(net.module_, compression)
    else:
        state = {k: v.detach().cpu() for k, v in net.module_.state_dict().items()}
    torch.save(state, directory / TORCH_STATE_FILE)
    (directory / TORCH_SPEC_FILE).write_text(json.dumps(spec, indent=2))
    return spec


def load_torch_model(directory: Path) -> Any:
    """Rebuild the net from ``model_torch.json`` and load ``model.pt`` (weights only) on the CPU."""
    import torch
    from hydra.utils import get_class

    from mlexp.neural._net import TensorBatches

    spec = json.loads((Path(directory) / TORCH_SPEC_FILE).read_text())
    if spec.get("estimator") not in _ESTIMATORS or spec.get("module") not in _MODULES:
        raise MlexpError(f"{directory / TORCH_SPEC_FILE} names classes mlexp does not rebuild: "
                         f"{spec.get('estimator')}, {spec.get('module')}.")
    criterion = get_class(spec["criterion"])
    if not (isinstance(criterion, type) and issubclass(criterion, torch.nn.Module)):
        raise MlexpError(f"{directory / TORCH_SPEC_FILE}: criterion {spec['criterion']} is not a torch.nn loss.")
    params = {f"module__{k}": v for k, v in spec["module_params"].items()}
    if "classes" in spec:
        params["classes"] = spec["classes"]
    net = get_class(spec["estimator"])(
        get_class(spec["module"]), criterion=criterion, train_split=None, iterator_valid=TensorBatches,
        device="cpu", verbose=0, **params,
    )
    net.initialize()
    if spec.get("compression"):  # quantized or sparse weights: mlexp.neural.compress rebuilds the structure first
        from mlexp.neural.compress.storage import load_compressed_state

        load_compressed_state(net, spec["compression"], Path(directory) / TORCH_STATE_FILE)
    else:
        state = torch.load(Path(directory) / TORCH_STATE_FILE, map_location="cpu", weights_only=True)
        net.module_.load_state_dict(state)
    if "y_mean" in spec:
        net.y_mean_, net.y_scale_ = spec["y_mean"], spec["y_scale"]
    return net
