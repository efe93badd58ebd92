"""TensorBoard logs: a run's per-epoch values (PyTorch models) and per-fold scores as scalar event files.

Written with TensorBoard's own event writer (no TensorFlow, no torch import needed);
read them with ``tensorboard --logdir <run or sweep dir>`` or TensorBoard's EventAccumulator.
"""

import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

__all__ = ["TensorBoardTracker", "write_scalars", "LOG_SUBDIR"]

log = logging.getLogger("mlexp")

LOG_SUBDIR = "tensorboard"


class TensorBoardTracker:
    """Write TensorBoard scalars for each run.

    Tags: ``fold_<k>/<value>`` and ``final/<value>`` per epoch (step = epoch) for PyTorch
    models (train_loss, valid_loss, the objective metric), and ``cv/<metric>`` per fold
    (step = fold) for every model.

    Args:
        log_dir: None: ``<run dir>/tensorboard``. A directory: each run writes to
            ``<log_dir>/<run dir's parent name>_<run dir's name>``.
    """

    def __init__(self, log_dir: Optional[str] = None):
        import tensorboard  # noqa: F401 - fail at set-up, with the extra's name, if it is missing

        self.log_dir = log_dir

    def log_run(self, run_dir: Path, cfg: Any, metrics: Dict[str, Any], epochs: List[Dict[str, Any]]) -> Path:
        run_dir = Path(run_dir)
        if self.log_dir is None:
            target = run_dir / LOG_SUBDIR
        else:
            target = Path(self.log_dir) / f"{run_dir.parent.name}_{run_dir.name}"
        scalars = []
        for row in epochs or []:
            fold = row.get("fold")
            label = "final" if fold is None or fold == -1 else f"fold_{int(fold)}"
            for name, value in row.items():
                if name not in ("fold", "epoch") and isinstance(value, (int, float)) and value == value:
                    scalars.append((f"{label}/{name}", float(value), int(row["epoch"])))
        if not epochs:
            log.info("tensorboard: no per-epoch values (only PyTorch models report epochs); logging fold scores")
        for name, stats in (metrics.get("cv") or {}).items():
            for fold, value in enumerate(stats.get("folds") or []):
                if value is not None:
                    scalars.append((f"cv/{name}", float(value), fold))
        write_scalars(target, scalars)
        log.info("tensorboard: %d scalars in %s", len(scalars), target)
        return target


def write_scalars(log_dir: Path, scalars: List[tuple]) -> None:
    """Write ``(tag, value, step)`` scalars to one event file in ``log_dir``."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    Path(log_dir).mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(log_dir))
    try:
        now = time.time()
        for tag, value, step in scalars:
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
            writer.add_event(Event(wall_time=now, step=step, summary=summary))
    finally:
        writer.close()
