"""Dispatch the entrypoint to the selected mode: `mode=<name>` runs `run_<name>(cfg)` of the module below."""

import importlib
from typing import Callable, Dict, Optional, Tuple

from omegaconf import DictConfig

from mlexp.errors import MlexpError

__all__ = ["dispatch", "MODES"]

# mode name -> (module, function). A mode function takes the composed config and returns the
# objective for Hydra's sweepers (a float) or None. Modules are imported only when selected.
MODES: Dict[str, Tuple[str, str]] = {
    "train": ("mlexp.experiment", "run_train"),
    "predict": ("mlexp.predict", "run_predict"),
    "monitor": ("mlexp.monitor.run", "run_monitor"),
    "label": ("mlexp.monitor.label", "run_label"),
    "serve": ("mlexp.serve.server", "run_serve"),
    "recommend": ("mlexp.serve.recommend", "run_recommend"),
    "compress": ("mlexp.neural.compress.mode", "run_compress"),
    "incremental": ("mlexp.neural.continual.mode", "run_incremental"),
}


def dispatch(cfg: DictConfig) -> Optional[float]:
    """Run cfg.mode; return the objective for Hydra's sweepers (None for modes without one)."""
    name = cfg.mode.name
    if name not in MODES:
        raise MlexpError(f"mode.name={name!r} is not a mode; use one of: {', '.join(f'mode={m}' for m in MODES)}.")
    module, function = MODES[name]
    run: Callable[[DictConfig], Optional[float]] = getattr(importlib.import_module(module), function)
    return run(cfg)
