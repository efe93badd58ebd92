"""Run trials' jobs: in this process, in worker processes, or through the configured Hydra launcher.

Each runner starts one job and returns a Future of its `Outcome`, so the sweeper keeps
`n_jobs` trials running at all times instead of waiting for a whole batch.
"""

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

__all__ = ["Outcome", "outcome_of", "make_runner"]

log = logging.getLogger("mlexp.tuning")


@dataclass
class Outcome:
    """What a job came to: ``complete`` with a value, ``pruned``, or ``fail`` with the error."""

    state: str
    value: Optional[float] = None
    error: Optional[str] = None
    job_dir: Optional[str] = None
    ret: Any = None             # Hydra's JobReturn (a slim one from worker processes)
    lost: bool = False          # the process running the job died: the trial is run again, not failed


def outcome_of(ret: Any) -> Outcome:
    """Turn Hydra's JobReturn into an Outcome (a job's exception is kept on the JobReturn)."""
    import optuna
    from hydra.core.utils import JobStatus

    job_dir = None
    if getattr(ret, "hydra_cfg", None) is not None:
        job_dir = ret.hydra_cfg.hydra.runtime.output_dir
    if ret.status == JobStatus.COMPLETED:
        value = ret.return_value
        try:
            return Outcome("complete", float(value), job_dir=job_dir, ret=ret)
        except (TypeError, ValueError):
            return Outcome("fail", error=f"the job returned {value!r}, not a number", job_dir=job_dir, ret=ret)
    error = ret._return_value  # JobReturn keeps the job's exception here (return_value re-raises it)
    if isinstance(error, optuna.TrialPruned):
        return Outcome("pruned", error=str(error), job_dir=job_dir, ret=ret)
    return Outcome("fail", error=f"{type(error).__name__}: {error}", job_dir=job_dir, ret=ret)


def make_runner(launcher: Any, n_jobs: int, composer: Any, hydra_context: Any, task_function: Callable) -> Any:
    """The runner for ``n_jobs`` parallel trials with the configured launcher.

    - Hydra's basic launcher, one at a time: mlexp's lean job in this process;
    - the basic launcher, several: that job in ``n_jobs`` persistent worker processes;
    - any other launcher (joblib, submitit, ...): one launcher call per trial from ``n_jobs``
      threads, so a finished trial's slot is refilled at once.
    """
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    if not isinstance(launcher, BasicLauncher):
        return _LauncherRunner(launcher, n_jobs)
    if n_jobs <= 1:
        return _InlineRunner(composer, task_function, hydra_context.callbacks)
    from mlexp.tuning._workers import ProcessRunner

    return ProcessRunner(n_jobs, composer, task_function)


def _failed(err: BaseException) -> Future:
    future: Future = Future()
    future.set_result(Outcome("fail", error=f"{type(err).__name__}: {err}"))
    return future


class _InlineRunner:
    def __init__(self, composer: Any, task_function: Callable, callbacks: Any):
        self.composer, self.task_function, self.callbacks = composer, task_function, callbacks

    def start(self, overrides: Sequence[str], number: int) -> Future:
        from mlexp.tuning._job import run_trial_job

        try:  # a composition error fails this trial only
            config = self.composer.compose(list(overrides))
        except Exception as err:  # noqa: BLE001
            return _failed(err)
        future: Future = Future()
        future.set_result(outcome_of(run_trial_job(self.task_function, config, self.callbacks, number)))
        return future

    def shutdown(self, wait: bool = False) -> None:
        pass


class _LauncherRunner:
    def __init__(self, launcher: Any, n_jobs: int):
        self.launcher = launcher
        self.pool = ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="mlexp-trial")

    def start(self, overrides: Sequence[str], number: int) -> Future:
        return self.pool.submit(_launch_one, self.launcher, overrides, number)

    def shutdown(self, wait: bool = False) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=True)


def _launch_one(launcher: Any, overrides: Sequence[str], number: int) -> Outcome:
    try:
        returns = launcher.launch([list(overrides)], initial_job_idx=number)
    except Exception as err:  # noqa: BLE001 - composition or launcher errors fail this trial only
        return Outcome("fail", error=f"{type(err).__name__}: {err}")
    return outcome_of(returns[0])
