"""mlexp's Hydra callback: a sweep's leaderboard after every job, failed jobs recorded, sweep tracking.

Registered in conf/config.yaml under ``hydra.callbacks``. The leaderboard is rebuilt in
``on_job_end`` (at most every few seconds), not only at the end, because Hydra's basic sweeper raises on the first
failed job after the sweep and then never calls ``on_multirun_end``.
"""

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

__all__ = ["LeaderboardCallback"]

log = logging.getLogger("mlexp")


class LeaderboardCallback(Callback):
    """Rebuild ``leaderboard.csv``/``.md`` in the sweep directory after each job; print the top at the end.

    Args:
        top: rows printed when the sweep ends.
        min_interval: seconds between rebuilds after jobs. A rebuild reads every job
            directory, so rebuilding after each of thousands of short trials would cost
            O(jobs^2); the end of the sweep (or the exit hook) always rebuilds.
    """

    def __init__(self, top: int = 10, min_interval: float = 5.0) -> None:
        self.top = top
        self.min_interval = min_interval
        self._printed = False
        self._last_build = float("-inf")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import atexit

        # Hydra skips on_multirun_end when a job failed (or on Ctrl-C): finish the sweep at exit then.
        atexit.register(self._finish_at_exit, config)
        tracker = _sweep_tracker(config)
        if tracker is not None:
            run_id = tracker.start_sweep(Path(config.hydra.sweep.dir))
            log.info("tracking: sweep parent run %s", run_id)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        from mlexp.reporting.leaderboard import build_leaderboard

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        tracker = _sweep_tracker(config)
        if job_return.status == JobStatus.FAILED:
            job_dir = Path(config.hydra.runtime.output_dir)
            error = _error_text(job_return)
            _record_failure(job_dir, error, list(config.hydra.overrides.task))
            if tracker is not None:
                tracker.log_failed_job(job_dir, config, error)
        if time.monotonic() - self._last_build < self.min_interval:
            return
        rows = build_leaderboard(sweep_dir)
        self._last_build = time.monotonic()
        if tracker is not None:
            tracker.log_sweep(sweep_dir, best=rows[0]["objective"] if rows and rows[0]["rank"] else None)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._finish(config)

    def _finish(self, config: DictConfig) -> None:
        """The final leaderboard, printed, and the sweep's tracking parent brought up to date."""
        from mlexp.reporting.leaderboard import build_leaderboard

        sweep_dir = Path(config.hydra.sweep.dir)
        rows = build_leaderboard(sweep_dir)
        self._print(sweep_dir, rows)
        tracker = _sweep_tracker(config)
        if tracker is not None:
            tracker.log_sweep(sweep_dir, best=rows[0]["objective"] if rows and rows[0]["rank"] else None)

    def _print(self, sweep_dir: Path, rows: list) -> None:
        from mlexp.reporting.leaderboard import LEADERBOARD_CSV, format_table

        self._printed = True
        print(f"\nleaderboard ({len(rows)} jobs): {sweep_dir / LEADERBOARD_CSV}\n{format_table(rows, self.top)}",
              flush=True)

    def _finish_at_exit(self, config: DictConfig) -> None:
        if self._printed or not Path(config.hydra.sweep.dir).is_dir():
            return
        try:
            self._finish(config)
        except Exception as err:  # noqa: BLE001 - at exit, a report must not mask the sweep's own error
            print(f"leaderboard: not rebuilt ({type(err).__name__}: {err})", file=sys.stderr)


def _sweep_tracker(config: DictConfig) -> Optional[Any]:
    """The selected tracker when it groups sweeps (MLflow); None otherwise (TensorBoard, none)."""
    node = config.get("tracking")
    if not node or not node.get("_target_"):
        return None
    from mlexp.tracking import tracker_for

    tracker = tracker_for(config)
    return tracker if hasattr(tracker, "start_sweep") else None


def _error_text(job_return: Any) -> str:
    error = getattr(job_return, "_return_value", None)  # JobReturn.return_value re-raises a failed job's error
    return f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)


def _record_failure(job_dir: Path, error: str, overrides: list) -> None:
    """Make the job directory say it failed and why, also when the job stopped before mlexp.experiment.run
    wrote lineage.json (e.g. an instance that asks for a GPU this machine lacks)."""
    from mlexp.lineage import now_iso

    path = job_dir / "lineage.json"
    try:
        lineage = json.loads(path.read_text())
    except (OSError, ValueError):
        lineage = {"overrides": overrides, "note": "the job failed before the experiment started"}
    if lineage.get("status") == "failed" and lineage.get("error"):
        return
    lineage.update(status="failed", error=error, finished=lineage.get("finished") or now_iso())
    job_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(lineage, indent=2, default=str))
    temporary.replace(path)
