"""Continual learning for PyTorch models: `mode=incremental`, the `continual` strategies and the one training loop they hook into.

Strategies (one module each, plugins on :class:`~mlexp.neural.continual.loop.Trainer`):
Naive, EWC, SI, Replay, Exemplar, AGEM, LwF. Torch is imported only when one is used.
"""

from typing import Any

__all__ = ["Naive", "EWC", "SI", "Replay", "Exemplar", "AGEM", "LwF", "Plugin", "Trainer", "run_incremental"]

_LAZY = {
    "Naive": "naive", "EWC": "ewc", "SI": "si", "Replay": "replay", "Exemplar": "exemplar", "AGEM": "gem",
    "LwF": "lwf", "Plugin": "loop", "Trainer": "loop", "run_incremental": "mode",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"mlexp.neural.continual.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'mlexp.neural.continual' has no attribute {name!r}")
