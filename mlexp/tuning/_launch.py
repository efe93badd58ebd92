"""Run trials' jobs: in this process, in worker processes, or through the configured Hydra launcher.

Each runner starts one job and returns a Future of its `Outcome`, so the sweeper keeps
`n_jobs` trials running at all times instead of waiting for a whole batch.
"""

import importlib
import inspect
import logging
import multiprocessing
import os
import pickle
import sys
import traceback
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

__all__ = ["Outcome", "outcome_of", "make_runner", "START_METHOD"]

log = logging.getLogger("mlexp.tuning")

# Workers are forked from the sweeper before it opens any database or starts a thread, so they
# start at once with every module already imported. Where fork is unsafe (macOS) or missing
# (Windows) they are spawned, and import mlexp themselves.
START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"


@dataclass
class Outcome:
    """What a job came to: ``complete`` with a value, ``pruned``, or ``fail`` with the error."""

    state: str
    value: Optional[float] = None
    error: Optional[str] = None
    job_dir: Optional[str] = None
    ret: Any = None             # Hydra's JobReturn (a slim one from worker processes)


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
    return _ProcessRunner(n_jobs, composer, task_function)


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

    def shutdown(self) -> None:
        pass


class _LauncherRunner:
    def __init__(self, launcher: Any, n_jobs: int):
        self.launcher = launcher
        self.pool = ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="mlexp-trial")

    def start(self, overrides: Sequence[str], number: int) -> Future:
        return self.pool.submit(_launch_one, self.launcher, overrides, number)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _launch_one(launcher: Any, overrides: Sequence[str], number: int) -> Outcome:
    try:
        returns = launcher.launch([list(overrides)], initial_job_idx=number)
    except Exception as err:  # noqa: BLE001 - composition or launcher errors fail this trial only
        return Outcome("fail", error=f"{type(err).__name__}: {err}")
    return outcome_of(returns[0])


class _ProcessRunner:
    def __init__(self, n_jobs: int, composer: Any, task_function: Callable):
        self.n_jobs = n_jobs
        self.args = (composer, task_function)
        self.pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        global _worker
        context = multiprocessing.get_context(START_METHOD)
        if START_METHOD == "fork":
            _worker = _Worker(*self.args)  # inherited by the forked workers: nothing pickled
            initargs: tuple = ()
        else:
            composer, task_function = self.args
            cloudpickle = _cloudpickle()  # Hydra's config sources may be classes pickle cannot find by name
            initargs = (cloudpickle.dumps((composer.loader, composer.master)), _task_reference(task_function))
        pool = ProcessPoolExecutor(max_workers=self.n_jobs, mp_context=context, initializer=_init_worker,
                                   initargs=initargs)
        for _ in range(self.n_jobs):  # fork: every worker now, before this process opens databases or threads
            pool.submit(os.getpid)
        return pool

    def start(self, overrides: Sequence[str], number: int) -> Future:
        from concurrent.futures.process import BrokenProcessPool

        try:
            inner = self.pool.submit(_run_in_worker, list(overrides), number)
        except BrokenProcessPool:  # a worker was killed: the pool cannot take work; start a new one
            self.pool = self._start()
            inner = self.pool.submit(_run_in_worker, list(overrides), number)
        future: Future = Future()
        inner.add_done_callback(lambda done: future.set_result(_worker_result(done)))
        return future

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _worker_result(done: Future) -> Outcome:
    error = done.exception()
    if error is None:
        return done.result()
    return Outcome("fail", error=f"the worker process running this trial stopped ({type(error).__name__}: {error})")


# ---- inside a worker process -------------------------------------------------------------

class _Worker:
    def __init__(self, composer: Any, task_function: Callable):
        from hydra._internal.callbacks import Callbacks

        self.composer, self.task_function = composer, task_function
        self.callbacks = Callbacks(composer.master)


_worker: Optional[_Worker] = None


def _task_reference(task_function: Callable) -> bytes:
    """How a spawned worker finds the task function: by module and name when it can be imported so
    (a function wrapped by @hydra.main cannot be pickled by reference), else the object pickled."""
    module, name = getattr(task_function, "__module__", None), getattr(task_function, "__qualname__", None)
    if module and name and "<locals>" not in name:
        try:
            target: Any = importlib.import_module(module)
            for part in name.split("."):
                target = getattr(target, part)
            if inspect.unwrap(target) is inspect.unwrap(task_function):
                return pickle.dumps(("name", module, name))
        except (ImportError, AttributeError):
            pass
    try:
        return pickle.dumps(("object", task_function))
    except Exception:  # noqa: BLE001 - closures and lambdas: cloudpickle pickles them by value
        return pickle.dumps(("cloudpickle", _cloudpickle().dumps(task_function)))


def _cloudpickle() -> Any:
    # scikit-learn's joblib depends on cloudpickle (older joblib versions carry their own copy).
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover
        from joblib.externals import cloudpickle  # type: ignore[no-redef]
    return cloudpickle


def _task_from_reference(reference: bytes) -> Callable:
    kind, *rest = pickle.loads(reference)
    if kind == "name":
        target: Any = importlib.import_module(rest[0])
        for part in rest[1].split("."):
            target = getattr(target, part)
        return inspect.unwrap(target)
    return rest[0] if kind == "object" else pickle.loads(rest[0])


def _init_worker(loader_and_master: Optional[bytes] = None, task_reference: Optional[bytes] = None) -> None:
    global _worker
    _die_with_parent()
    if loader_and_master is not None:  # spawned: set up Hydra's global state and the composer here
        from hydra.core.utils import JobRuntime, setup_globals

        from mlexp.tuning._compose import Composer

        setup_globals()
        loader, master = pickle.loads(loader_and_master)
        JobRuntime.instance().set("name", master.hydra.job.name)
        _worker = _Worker(Composer(loader, master), _task_from_reference(task_reference))  # type: ignore[arg-type]


def _die_with_parent() -> None:
    # A worker must not outlive a sweeper killed with SIGKILL: a restarted sweep runs its trial again.
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_in_worker(overrides: Sequence[str], number: int) -> Outcome:
    from mlexp.tuning._job import run_trial_job

    assert _worker is not None
    try:
        config = _worker.composer.compose(list(overrides))
        outcome = outcome_of(run_trial_job(_worker.task_function, config, _worker.callbacks, number))
    except Exception as err:  # noqa: BLE001 - report, never lose the worker's error
        return Outcome("fail", error=f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=5)}")
    outcome.ret = _slim(outcome.ret)
    return outcome


def _slim(ret: Any) -> Any:
    """The JobReturn with its configs as plain containers: cheap to send to the sweeper, which
    turns them back into configs only when the sweep returns (restored())."""
    from hydra.core.utils import JobReturn
    from omegaconf import OmegaConf

    def plain(node: Any) -> Any:
        return None if node is None else OmegaConf.to_container(node, resolve=False, enum_to_str=True)

    hydra = None if ret.hydra_cfg is None else {"hydra": plain(ret.hydra_cfg.hydra)}
    slim = JobReturn(overrides=ret.overrides, cfg=plain(ret.cfg), hydra_cfg=hydra,
                     working_dir=ret.working_dir, task_name=ret.task_name, status=ret.status)
    slim._return_value = ret._return_value if _picklable(ret._return_value) else RuntimeError(str(ret._return_value))
    return slim


def restored(ret: Any) -> Any:
    """A JobReturn from a worker process with its configs as OmegaConf configs again."""
    from omegaconf import OmegaConf

    if isinstance(ret.cfg, dict):
        ret.cfg = OmegaConf.create(ret.cfg)
    if isinstance(ret.hydra_cfg, dict):
        ret.hydra_cfg = OmegaConf.create(ret.hydra_cfg)
    return ret


def _picklable(value: Any) -> bool:
    try:
        pickle.dumps(value)
        return True
    except Exception:  # noqa: BLE001
        return False
