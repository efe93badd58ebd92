"""Trials in persistent worker processes: forked from the sweeper (spawned where forking is unsafe),
each running mlexp's lean job for the trial it is sent."""

import importlib
import inspect
import logging
import multiprocessing
import os
import pickle
import sys
import threading
import traceback
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable, Optional, Sequence

from mlexp.tuning._launch import Outcome, outcome_of

__all__ = ["ProcessRunner", "restored", "START_METHOD"]

log = logging.getLogger("mlexp.tuning")

# Workers are forked from the sweeper before it opens any database or starts a thread, so they
# start at once with every module already imported. Where fork is unsafe (macOS) or missing
# (Windows) they are spawned, and import mlexp themselves.
START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"
# What a train run imports on its first call, imported once in the sweeper before the workers are
# forked, rather than once in every worker (only speed depends on this list).
PRELOAD = ("mlexp.experiment", "mlexp.data", "mlexp.evaluation", "mlexp.models", "mlexp.pipeline",
           "mlexp.posttrain", "mlexp.reporting.summary", "mlexp.artifacts", "sklearn.model_selection",
           "imblearn.pipeline", "optuna.storages._rdb.models", "sqlalchemy.dialects.sqlite", "alembic.command",
           "alembic.config", "alembic.migration", "alembic.script")  # Optuna's RDBStorage imports alembic


class ProcessRunner:
    def __init__(self, n_jobs: int, composer: Any, task_function: Callable):
        self.n_jobs = n_jobs
        self.args = (composer, task_function)
        self.pool = self._start()

    def _start(self, method: Optional[str] = None) -> ProcessPoolExecutor:
        global _worker
        method = method or START_METHOD
        if method == "fork":
            _stop_progress_monitor()
        if method == "fork" and threading.active_count() > 1:
            # Only the forking thread survives a fork; a lock another thread holds (a tracking client's)
            # would stay locked in the workers. Spawned workers start slower but clean.
            log.info("worker processes spawned, not forked: %d threads run in the sweeper (%s)",
                     threading.active_count(), ", ".join(t.name for t in threading.enumerate()))
            method = "spawn"
        context = multiprocessing.get_context(method)
        if method == "fork":
            _preload()
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
        except BrokenProcessPool:  # a worker was killed: the pool takes no more work. A new one, spawned:
            self.pool = self._start("spawn")  # this process now holds databases and threads, not fit to fork
            inner = self.pool.submit(_run_in_worker, list(overrides), number)
        future: Future = Future()
        inner.add_done_callback(lambda done: future.set_result(_worker_result(done)))
        return future

    def shutdown(self, wait: bool = False) -> None:
        """Stop the workers (``wait``: for them to exit, once no trial runs: no thread or process is left)."""
        self.pool.shutdown(wait=wait, cancel_futures=True)


def _stop_progress_monitor() -> None:
    """tqdm's monitor thread (left by any progress bar drawn earlier): stopped, so the fork is clean.
    tqdm starts it again with the next bar."""
    for thread in threading.enumerate():
        owner = getattr(thread, "tqdm_cls", None)  # tqdm's TMonitor, for one tqdm class
        if owner is not None and hasattr(thread, "exit"):
            thread.exit()
            if getattr(owner, "monitor", None) is thread:
                owner.monitor = None


def _preload() -> None:
    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except ImportError:  # pragma: no cover - an optional part: the worker imports what it needs
            pass
    try:  # the study's ORM classes, set up once here rather than on every worker's first query
        from sqlalchemy.orm import configure_mappers

        configure_mappers()
    except ImportError:  # pragma: no cover
        pass


def _worker_result(done: Future) -> Outcome:
    error = done.exception()
    if error is None:
        return done.result()
    # A worker killed (out of memory, a signal) breaks the whole pool: every trial in it was lost, none failed.
    return Outcome("fail", error=f"a worker process stopped ({type(error).__name__}: {error})", lost=True)


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
