"""Run one trial's job: in this process, through the configured Hydra launcher, or in worker processes.

Each runner starts a job and returns a Future of its `Outcome`, so the sweeper keeps
`n_jobs` trials running at all times instead of waiting for a whole batch.
"""

import importlib
import inspect
import logging
import traceback
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
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
            return Outcome("complete", float(value), job_dir=job_dir)
        except (TypeError, ValueError):
            return Outcome("fail", error=f"the job returned {value!r}, not a number", job_dir=job_dir)
    error = ret._return_value  # JobReturn keeps the job's exception here (return_value re-raises it)
    if isinstance(error, optuna.TrialPruned):
        return Outcome("pruned", error=str(error), job_dir=job_dir)
    return Outcome("fail", error=f"{type(error).__name__}: {error}", job_dir=job_dir)


def make_runner(launcher: Any, n_jobs: int, config: Any, hydra_context: Any, task_function: Callable) -> Any:
    """The runner for ``n_jobs`` parallel trials with the configured launcher.

    - one at a time: the launcher itself, in this thread (Hydra's basic launcher runs in-process);
    - several with Hydra's basic launcher: persistent worker processes (jobs in one process would
      share Hydra's global state), each running Hydra's own ``run_job``;
    - several with any other launcher (joblib, submitit, ...): one launcher call per trial from
      ``n_jobs`` threads, so a finished trial's slot is refilled at once.
    """
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    if n_jobs <= 1:
        return _InlineRunner(launcher)
    if isinstance(launcher, BasicLauncher):
        return _ProcessRunner(n_jobs, config, hydra_context, task_function)
    return _ThreadRunner(launcher, n_jobs)


class _InlineRunner:
    def __init__(self, launcher: Any):
        self.launcher = launcher

    def start(self, overrides: Sequence[str], number: int) -> Future:
        future: Future = Future()
        future.set_result(_launch_one(self.launcher, overrides, number))
        return future

    def shutdown(self) -> None:
        pass


class _ThreadRunner:
    def __init__(self, launcher: Any, n_jobs: int):
        self.launcher = launcher
        self.pool = ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="mlexp-trial")

    def start(self, overrides: Sequence[str], number: int) -> Future:
        return self.pool.submit(_launch_one, self.launcher, overrides, number)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class _ProcessRunner:
    def __init__(self, n_jobs: int, config: Any, hydra_context: Any, task_function: Callable):
        import multiprocessing

        self.config = config
        self.config_loader = hydra_context.config_loader
        # spawn, not fork: the sweeper holds database connections and threads.
        self.pool = ProcessPoolExecutor(
            max_workers=n_jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(_task_reference(task_function),),
        )

    def start(self, overrides: Sequence[str], number: int) -> Future:
        from omegaconf import open_dict

        try:  # composed here, so a bad override fails this trial without a worker round trip
            sweep_config = self.config_loader.load_sweep_config(self.config, list(overrides))
        except Exception as err:  # noqa: BLE001 - any composition error is this trial's failure
            future: Future = Future()
            future.set_result(Outcome("fail", error=f"{type(err).__name__}: {err}"))
            return future
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = number
            sweep_config.hydra.job.num = number
        return self.pool.submit(_run_in_worker, sweep_config)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _launch_one(launcher: Any, overrides: Sequence[str], number: int) -> Outcome:
    try:
        returns = launcher.launch([list(overrides)], initial_job_idx=number)
    except Exception as err:  # noqa: BLE001 - composition or launcher errors fail this trial only
        return Outcome("fail", error=f"{type(err).__name__}: {err}")
    return outcome_of(returns[0])


# ---- inside a worker process -------------------------------------------------------------

_worker_task: Optional[Callable] = None


def _task_reference(task_function: Callable) -> tuple:
    # The task function is usually wrapped by @hydra.main under its own name, so it cannot be
    # pickled by reference; the worker imports the module and unwraps the decorator instead.
    return task_function.__module__, task_function.__qualname__


def _init_worker(task_reference: tuple) -> None:
    # Hydra's global state is not picklable (OmegaConf resolvers); the worker sets up its own:
    # Hydra's resolvers here, the job's HydraConfig in run_job, the job name below.
    global _worker_task
    from hydra.core.utils import setup_globals

    setup_globals()
    module, qualname = task_reference
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    _worker_task = inspect.unwrap(target)


def _run_in_worker(sweep_config: Any) -> Outcome:
    from hydra._internal.callbacks import Callbacks
    from hydra.core.utils import JobRuntime, run_job
    from hydra.types import HydraContext

    JobRuntime.instance().set("name", sweep_config.hydra.job.name)
    try:
        ret = run_job(
            hydra_context=HydraContext(config_loader=None, callbacks=Callbacks(sweep_config)),  # type: ignore[arg-type]
            task_function=_worker_task,  # type: ignore[arg-type]
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        return outcome_of(ret)
    except Exception as err:  # noqa: BLE001 - report, never lose the worker's error
        return Outcome("fail", error=f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=5)}")
