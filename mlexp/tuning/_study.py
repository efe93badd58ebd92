"""Open the tuner's Optuna storage, and count a (possibly shared) study's trials toward n_trials."""

import os
import socket
import time
import warnings
from typing import Any, Dict, List, Optional, Set

__all__ = [
    "default_storage_url", "open_storage", "quiet_optuna", "worker_attrs", "fail_orphans",
    "retried_numbers", "counted_trials", "budget_rank", "mark_interrupted", "SURPLUS_ATTR",
]

SQLITE_TIMEOUT_S = 60          # parallel jobs write intermediate values to the same SQLite file
NAMING_GRACE_S = 2.0
WORKER_ATTR = "worker"          # {"host", "pid"} of the sweeper process that asked the trial
SURPLUS_ATTR = "surplus"       # a trial asked after other workers had used up n_trials; never run

_storages: Dict[str, Any] = {}


def default_storage_url(sweep_dir: str) -> str:
    """An SQLite file in the sweep directory (absolute, so jobs in any working directory find it)."""
    return f"sqlite:///{os.path.abspath(os.path.join(sweep_dir, 'optuna.db'))}"


def quiet_optuna() -> None:
    """Silence Optuna's experimental-feature warnings and its per-trial INFO lines (the tuner logs its own)."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(url: str, heartbeat_interval: Optional[int] = None, max_retry: Optional[int] = None) -> Any:
    """An RDBStorage for ``url``: one per URL in a process (the sweeper's has heartbeats and retries).

    Trials of a worker that stops beating (a killed process or machine) are failed after
    two intervals and re-queued once per ``max_retry`` by Optuna's own retry callback.
    """
    import optuna

    quiet_optuna()
    if url in _storages and (heartbeat_interval is None or _storages[url].heartbeat_interval == heartbeat_interval):
        return _storages[url]
    sqlite = url.startswith("sqlite:///") and ":memory:" not in url
    engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if sqlite else None
    if sqlite:
        _sqlite_wal(url)
    kwargs: Dict[str, Any] = {}
    if heartbeat_interval:
        kwargs = {
            "heartbeat_interval": int(heartbeat_interval),
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
        }
    for attempt in range(5):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
            break
        except Exception as err:  # noqa: BLE001 - another worker creating the same new database
            if "sqlalchemy" not in type(err).__module__ or attempt == 4:
                raise
            time.sleep(0.5 + attempt)
    if sqlite:
        _sqlite_fast_commits(storage.engine)
    _storages[url] = storage
    return storage


def _sqlite_wal(url: str) -> None:
    # Write-ahead logging: readers never wait for the writer, and a commit is one append.
    # The mode is stored in the database file, so every process opening it gets it.
    import sqlite3

    path = url[len("sqlite:///"):]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def _sqlite_fast_commits(engine: Any) -> None:
    # With WAL, synchronous=NORMAL syncs at checkpoints, not at every commit: a power cut may lose
    # the last trials' records, never corrupt the file (a killed process loses nothing).
    from sqlalchemy import event

    def on_connect(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened while creating the tables reconnect with the pragma


def worker_attrs() -> Dict[str, Any]:
    """Who runs a trial: lets a restarted sweep on the same machine fail a dead worker's trials at once."""
    return {WORKER_ATTR: {"host": socket.gethostname(), "pid": os.getpid()}}


def fail_orphans(study: Any) -> List[int]:
    """Fail (and re-queue) RUNNING trials whose worker is gone; returns their numbers.

    Same machine: the worker's process no longer exists. Elsewhere: Optuna's heartbeat
    grace period has passed (``optuna.storages.fail_stale_trials``).
    """
    import optuna
    from optuna.trial import TrialState

    host = socket.gethostname()
    orphans = []
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if any(WORKER_ATTR not in t.user_attrs for t in running):
        # A live worker names itself milliseconds after asking; a trial still unnamed after a
        # pause was asked by a worker killed in between.
        time.sleep(NAMING_GRACE_S)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in running:
        worker = trial.user_attrs.get(WORKER_ATTR)
        if not isinstance(worker, dict) or (worker.get("host") == host and not _alive(worker.get("pid"))):
            orphans.append(trial)
    mark_interrupted(study, [t.number for t in orphans])
    optuna.storages.fail_stale_trials(study)
    return [t.number for t in orphans]


def mark_interrupted(study: Any, numbers: List[int]) -> None:
    """FAIL the running trials and queue each again with the same parameters (Optuna's retry callback).

    The retry carries ``retry_history`` (a system attribute) naming the trial it replaces.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    if not numbers:
        return
    retry = getattr(study._storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number in numbers:
        trial = by_number.get(number)
        if trial is None or trial.state != TrialState.RUNNING:
            continue
        try:
            if not study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another worker failed it first
        if retry is not None:
            retry(study, study._storage.get_trial(trial._trial_id))


def retried_numbers(trials: List[Any]) -> Set[int]:
    """Numbers of failed trials that were queued again (their retry stands in for them)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def counted_trials(trials: List[Any]) -> List[Any]:
    """Finished trials that count toward n_trials: complete, pruned, failed; not retried or surplus."""
    retried = retried_numbers(trials)
    return [
        t for t in trials
        if t.state.is_finished() and t.number not in retried and not t.user_attrs.get(SURPLUS_ATTR)
    ]


def budget_rank(trials: List[Any], number: int) -> int:
    """How many earlier trials use the budget before trial ``number`` (>= n_trials: a surplus trial)."""
    retried = retried_numbers(trials)
    return sum(
        1 for t in trials
        if t.number < number and t.number not in retried and not t.user_attrs.get(SURPLUS_ATTR)
    )


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid == os.getpid():
        return False  # this process has just started: no trial can be ours yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
