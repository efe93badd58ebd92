"""How a compressed net's weights go to model.pt and come back: quantized modules rebuilt, sparse weights stored as CSR.

``model_torch.json`` of a compressed net carries ``"compression"`` (e.g. ``{"quantized": "dynamic",
"backend": "x86"}`` or ``{"sparse": true, ...}``); :func:`load_compressed_state` rebuilds the
same module structure from the plain net before loading the weights, all with
``torch.load(weights_only=True)``: no pickled code.
"""

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator

import torch

from mlexp.errors import MlexpError

__all__ = ["state_for_file", "load_compressed_state", "quantize_structure", "quiet_quantization"]


@contextmanager
def quiet_quantization() -> Iterator[None]:
    """torch.ao.quantization warns on every call that it is deprecated in favour of torchao (docs/compress.md says
    why mlexp keeps it); the warnings say nothing about the model, so they are kept out of the log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated.*")
        warnings.filterwarnings("ignore", message=".*must run observer before calling calculate_qparams.*")
        warnings.filterwarnings("ignore", message=".*reduce_range will be deprecated.*")
        yield


def state_for_file(module: torch.nn.Module, compression: Dict[str, Any]) -> Dict[str, Any]:
    """The module's state dict as it goes to model.pt: sparse weights as CSR where that is smaller."""
    state = module.state_dict()
    if not compression.get("sparse"):
        return state
    return _with_metadata(state, {name: _smaller(value) for name, value in state.items()})


def load_compressed_state(net: Any, compression: Dict[str, Any], path: Path) -> None:
    """Give the freshly built ``net`` the compressed module's structure, then the weights in ``path``
    (``torch.load(weights_only=True)``)."""
    if compression.get("quantized"):
        net.module_ = quantize_structure(net.module_, compression)
    with quiet_quantization(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = _with_metadata(state, {name: value.to_dense() if isinstance(value, torch.Tensor)
                                       and value.layout != torch.strided else value for name, value in state.items()})
    net.module_.load_state_dict(state)
    net.module_.eval()
    net.compression_ = dict(compression)


def quantize_structure(module: torch.nn.Module, compression: Dict[str, Any],
                       calibration: Any = None) -> torch.nn.Module:
    """``module`` with its Linear layers quantized as ``compression`` says; static quantization observes
    ``calibration`` rows (none when loading: the saved scales replace the observed ones)."""
    from torch.ao import quantization as q

    backend = compression.get("backend", "x86")
    if backend not in torch.backends.quantized.supported_engines:
        raise MlexpError(f"compress.backend={backend!r} is not a quantized engine of this torch build; it has: "
                         f"{', '.join(e for e in torch.backends.quantized.supported_engines if e != 'none')}.")
    torch.backends.quantized.engine = backend
    approach = compression["quantized"]
    with quiet_quantization():
        if approach == "dynamic":
            return q.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
        wrapper = q.QuantWrapper(module).eval()
        wrapper.qconfig = q.get_default_qconfig(backend)
        q.fuse_modules(module, _linear_relu_pairs(module), inplace=True)
        q.prepare(wrapper, inplace=True)
        if calibration is not None:
            with torch.no_grad():
                for start in range(0, len(calibration), 256):
                    wrapper(calibration[start:start + 256])
        q.convert(wrapper, inplace=True)
        return wrapper


def _with_metadata(original: Dict[str, Any], values: Dict[str, Any]) -> Dict[str, Any]:
    """``values`` as a state dict that keeps ``original``'s module versions (quantized layers read them)."""
    from collections import OrderedDict

    out = OrderedDict(values)
    metadata = getattr(original, "_metadata", None)
    if metadata is not None:
        out._metadata = metadata
    return out


def _linear_relu_pairs(module: torch.nn.Module) -> list:
    """Names of Linear -> ReLU neighbours in a Sequential, fused into one quantized LinearReLU."""
    if not isinstance(module, torch.nn.Sequential):
        return []
    names = list(module._modules)
    return [[a, b] for a, b in zip(names, names[1:])
            if isinstance(module._modules[a], torch.nn.Linear) and isinstance(module._modules[b], torch.nn.ReLU)]


def _smaller(value: Any) -> Any:
    """A 2-D tensor as CSR with int32 indices when that takes fewer bytes than the dense tensor."""
    if not isinstance(value, torch.Tensor) or value.dim() != 2 or not value.is_floating_point():
        return value
    nonzero = int(value.count_nonzero())
    dense_bytes = value.numel() * value.element_size()
    sparse_bytes = nonzero * (value.element_size() + 4) + (value.shape[0] + 1) * 4
    if sparse_bytes >= dense_bytes:
        return value
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        csr = value.to_sparse_csr()
        return torch.sparse_csr_tensor(csr.crow_indices().to(torch.int32), csr.col_indices().to(torch.int32),
                                       csr.values(), value.shape, check_invariants=True)
