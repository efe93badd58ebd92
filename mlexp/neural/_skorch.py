"""Import skorch without its start-up probe of torch_geometric (seconds where PyTorch Geometric is installed).

``skorch.utils`` runs ``import torch_geometric`` at import time only to learn whether graph data
types exist; on GPU images with PyG installed that import pulls ``torch._dynamo`` and
``transformers`` (~10 s measured on an H100 image). mlexp feeds skorch tensors only, so the probe
buys it nothing. Every mlexp module that touches skorch imports this module first: skorch is then
imported with the probe answered "not installed", and the probe is replaced by a check that costs
nothing and stays exact: an object of a torch_geometric type can only exist once the user's own
code has imported torch_geometric, so looking in ``sys.modules`` is enough.
"""

import importlib.util
import sys
from typing import Any

__all__ = ["is_geometric_data_type"]

_PROBED = "torch_geometric"


def is_geometric_data_type(x: Any) -> bool:
    """skorch's check, answered from modules already imported (never imports torch_geometric)."""
    data = sys.modules.get(f"{_PROBED}.data")
    return data is not None and isinstance(x, getattr(data, "Data", ()))


def _import_skorch() -> None:
    if "skorch" in sys.modules or _PROBED in sys.modules:
        import skorch  # noqa: F401  (already paid for, or the user imported torch_geometric)

        return
    sys.modules[_PROBED] = None  # makes `import torch_geometric` raise ImportError, without the import
    try:
        import skorch.utils
    finally:
        del sys.modules[_PROBED]
    if importlib.util.find_spec(_PROBED) is not None:  # installed: keep skorch's support, checked lazily
        skorch.utils.TORCH_GEOMETRIC_INSTALLED = True
        skorch.utils.is_geometric_data_type = is_geometric_data_type


_import_skorch()
