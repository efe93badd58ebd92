"""Experiment tracking (`tracking=mlflow|tensorboard`): the selected tracker, imported only when selected.

A tracker is the object that ``tracking._target_`` names. Every tracker has
``log_run(run_dir, cfg, metrics, epochs)``; a tracker that groups the jobs of a sweep also
has ``start_sweep(sweep_dir)``, ``log_sweep(sweep_dir)`` and ``log_failed_job(job_dir, cfg, error)``,
which mlexp's Hydra callback calls (mlexp.reporting.callbacks).
"""

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

__all__ = ["tracker_for", "track_run", "MlflowTracker", "TensorBoardTracker"]

log = logging.getLogger("mlexp")

_LAZY = {"MlflowTracker": "mlexp.tracking._mlflow", "TensorBoardTracker": "mlexp.tracking._tensorboard"}


def tracker_for(cfg: Any) -> Optional[Any]:
    """The tracker that ``cfg.tracking`` names, or None for ``tracking=none`` / no tracking node."""
    node = cfg.get("tracking") if cfg is not None else None
    if not node or not node.get("_target_"):
        return None
    from hydra.utils import instantiate

    from mlexp.errors import MlexpError

    try:
        return instantiate(node)
    except Exception as err:  # noqa: BLE001 - a missing extra or a bad option: say which and how to fix
        cause = getattr(err, "__cause__", None) or err
        raise MlexpError(
            f"tracking ({node.get('_target_')}) could not be set up: {cause}. Install the extra "
            "(pip install 'mlexp[mlflow]' or 'mlexp[tensorboard]'), fix the tracking.* override, or use tracking=none."
        ) from err


def track_run(cfg: Any, run_dir: Path, metrics: Dict[str, Any], epochs: List[Dict[str, Any]]) -> None:
    """Send a finished run to the selected tracker (nothing when none is selected)."""
    tracker = tracker_for(cfg)
    if tracker is not None:
        tracker.log_run(Path(run_dir), cfg, metrics, epochs)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlexp.tracking' has no attribute {name!r}")
