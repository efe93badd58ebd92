"""mlexp's Hydra callback: a sweep's leaderboard after every job, failed jobs recorded, sweep tracking.

Registered in conf/config.yaml under ``hydra.callbacks``. The leaderboard is rebuilt in
``on_job_end`` (at most every few seconds), not only at the end, because a sweep that stops
early (an unexpected error, Ctrl-C) never calls ``on_multirun_end``; an exit hook finishes it then.

Under Hydra's basic sweeper, a job that fails with an mlexp error (one the user can fix, already
logged once when it happened) is recorded as failed and the sweep goes on; the sweep then ends
with one paragraph and exit status 2, instead of Hydra re-raising that error as a traceback.
"""

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

__all__ = ["LeaderboardCallback", "note_sweep_stopped"]

log = logging.getLogger("mlexp")

# Sweepers that raise a failed job's error once the sweep is over (Hydra's basic sweeper).
FAIL_FAST_SWEEPERS = ("hydra._internal.core_plugins.basic_sweeper.",)
_stopped_by: Optional[str] = None  # why the sweep of this process stopped early, when known


def note_sweep_stopped(reason: Any) -> None:
    """Tell the exit hook why the sweep stopped (an exception or words), so its leaderboard can say it."""
    global _stopped_by
    if reason is None or _stopped_by is not None:
        return
    text = f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
    _stopped_by = text.strip().splitlines()[0][:300] if text.strip() else None


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
            if _is_mlexp_error(job_return) and _fails_fast(config):
                # Recorded above and logged when it happened: Hydra must not re-raise it as a traceback.
                job_return.status, job_return.return_value = JobStatus.COMPLETED, None
        if time.monotonic() - self._last_build < self.min_interval:
            return
        rows = build_leaderboard(sweep_dir)
        self._last_build = time.monotonic()
        if tracker is not None:
            tracker.log_sweep(sweep_dir, best=rows[0]["objective"] if rows and rows[0]["rank"] else None)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        rows = self._finish(config)
        failed = [row for row in rows if row["status"] == "failed"]
        if failed and _fails_fast(config):
            print(f"\nmlexp: error: {len(failed)} of {len(rows)} jobs failed (job "
                  f"{', '.join(str(row['job']) for row in failed)}); each error is in the leaderboard above and in "
                  "its job's mlexp.log. Fix the cause and run the failed combinations again.", file=sys.stderr)
            sys.exit(2)

    def _finish(self, config: DictConfig, stopped_by: Optional[str] = None) -> list:
        """The final leaderboard, printed, and the sweep's tracking parent brought up to date."""
        from mlexp.reporting.leaderboard import build_leaderboard

        sweep_dir = Path(config.hydra.sweep.dir)
        rows = build_leaderboard(sweep_dir, stopped_by=stopped_by)
        self._print(sweep_dir, rows, stopped_by)
        tracker = _sweep_tracker(config)
        if tracker is not None:
            tracker.log_sweep(sweep_dir, best=rows[0]["objective"] if rows and rows[0]["rank"] else None)
        return rows

    def _print(self, sweep_dir: Path, rows: list, stopped_by: Optional[str]) -> None:
        from mlexp.reporting.leaderboard import LEADERBOARD_CSV, format_table

        self._printed = True
        if not rows:
            print(f"\nleaderboard: no job ran; the sweep stopped before its first job "
                  f"({stopped_by or 'see the error above'}).", flush=True)
            return
        stopped = f"; the sweep stopped early ({stopped_by})" if stopped_by else ""
        print(f"\nleaderboard ({len(rows)} jobs{stopped}): {sweep_dir / LEADERBOARD_CSV}\n"
              f"{format_table(rows, self.top)}", flush=True)

    def _finish_at_exit(self, config: DictConfig) -> None:
        if self._printed or not Path(config.hydra.sweep.dir).is_dir():
            return
        try:
            self._finish(config, stopped_by=_stopped_by or "stopped before the sweep's end")
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


def _fails_fast(config: DictConfig) -> bool:
    """Whether the sweep re-raises a failed job's error. A tuner's job (it carries its `trial`) is composed
    without the tuner's settings, so its own config names Hydra's basic sweeper: the trial decides."""
    from omegaconf import OmegaConf

    target = str(OmegaConf.select(config, "hydra.sweeper._target_", default="") or "")
    # The tuner names its trial in the job's environment (mlexp.tuning._trial.TRIAL_ENV), or `trial` by hand.
    trial = config.get("trial") or OmegaConf.select(config, "hydra.job.env_set.MLEXP_TRIAL", default=None)
    return target.startswith(FAIL_FAST_SWEEPERS) and not trial


def _is_mlexp_error(job_return: Any) -> bool:
    from mlexp.errors import MlexpError

    return isinstance(getattr(job_return, "_return_value", None), MlexpError)


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
