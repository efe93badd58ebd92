"""Open the tuner's Optuna storage: SQLite (default), any SQLAlchemy URL (PostgreSQL), or a journal file by path."""

import logging
import os
import time
import warnings
from typing import Any, Dict, Optional

from mlexp.errors import MlexpError

__all__ = ["storage_url", "default_storage_url", "open_storage", "quiet_optuna", "retry_trial"]

log = logging.getLogger("mlexp.tuning")

SQLITE_TIMEOUT_S = 60          # parallel jobs write intermediate values to the same SQLite file
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
STORAGE_HELP = (
    "Give an SQLAlchemy URL (sqlite:///path/study.db, postgresql://user@host/db after "
    "pip install 'mlexp[postgres]') or a plain file path for Optuna's journal file storage "
    "(tuner.storage=/shared/study.log, for several machines on a shared file system)."
)

_storages: Dict[str, Any] = {}


def default_storage_url(sweep_dir: str) -> str:
    """The study's file in the sweep directory, as an absolute path every job can open.

    Optuna's journal file ``optuna.log``: an append-only log read back into memory, so asking and
    telling a trial costs a fraction of a millisecond (an SQLite database, through SQLAlchemy,
    several). A sweep directory made before, holding ``optuna.db``, keeps its SQLite database.
    """
    folder = os.path.abspath(sweep_dir)
    if os.path.exists(os.path.join(folder, "optuna.db")):
        return f"sqlite:///{os.path.join(folder, 'optuna.db')}"
    return os.path.join(folder, "optuna.log")


def storage_url(spec: Optional[str], sweep_dir: str) -> str:
    """``tuner.storage`` as the URL or absolute path every job can open.

    null: the journal file in the sweep directory. A URL (``scheme://...``) is kept. A plain path is a
    journal file (Optuna's ``JournalFileBackend``), or an SQLite file when it ends in .db,
    .sqlite or .sqlite3.
    """
    if spec is None or str(spec).strip() == "":
        return default_storage_url(sweep_dir)
    spec = str(spec).strip()
    if "://" in spec:
        return spec
    path = os.path.abspath(os.path.expanduser(spec))
    if os.path.isdir(path):
        raise MlexpError(f"tuner.storage={spec} is a directory. {STORAGE_HELP}")
    return f"sqlite:///{path}" if path.endswith(SQLITE_SUFFIXES) else path


def quiet_optuna() -> None:
    """Silence Optuna's experimental-feature warnings and its per-trial INFO lines (the tuner logs its own)."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(url: str, heartbeat_interval: Optional[int] = None, max_retry: Optional[int] = None,
                 existing: bool = False) -> Any:
    """The Optuna storage for ``url`` (see storage_url): one per URL in a process.

    The sweeper's RDB storage records heartbeats: trials of a worker that stops beating (a
    killed process or machine) are failed after two intervals and queued again (at most
    ``max_retry`` times). Journal files have no heartbeats in Optuna; a restarted sweep still
    fails the trials of dead workers on its own machine (fail_orphans). ``existing``: a job's view of
    a storage its sweeper has opened, so the tables and their schema version are not checked again
    (that check imports alembic: about a second in a fresh worker).
    """
    cached = _storages.get(url)
    if cached is not None and (heartbeat_interval is None or getattr(cached, "heartbeat_interval", None)):
        return cached
    quiet_optuna()
    storage = _open_rdb(url, heartbeat_interval, max_retry, existing) if "://" in url else _open_journal(url)
    _storages[url] = storage
    return storage


def _open_journal(path: str) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise MlexpError(f"tuner.storage={path}: the folder {folder} does not exist. Create it or choose another path.")
    try:
        return JournalStorage(JournalFileBackend(path))
    except PermissionError as err:
        raise MlexpError(f"tuner.storage={path} cannot be written ({err.strerror}). Choose a writable path.") from err
    except (ValueError, UnicodeDecodeError, KeyError) as err:
        raise MlexpError(
            f"tuner.storage={path} exists but is not an Optuna journal file ({err}). Point it at a new file "
            "or at a journal an earlier sweep wrote (an SQLite file must end in .db, .sqlite or .sqlite3)."
        ) from err


def _open_rdb(url: str, heartbeat_interval: Optional[int], max_retry: Optional[int], existing: bool = False) -> Any:
    import optuna

    given, url = url, _with_driver(url)
    sqlite = url.startswith("sqlite:///") and ":memory:" not in url
    engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if sqlite else None
    if sqlite:
        _sqlite_wal(url)
    kwargs: Dict[str, Any] = {"skip_compatibility_check": True, "skip_table_creation": True} if existing else {}
    if heartbeat_interval:
        kwargs.update(heartbeat_interval=int(heartbeat_interval), heartbeat_stale_trial_callback=_StaleTrial(max_retry))
    for attempt in range(5):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
            break
        except Exception as err:  # noqa: BLE001 - sorted into a clear error or a retry below
            problem = _storage_problem(given, err)
            if problem is not None:
                raise MlexpError(problem) from err
            if "sqlalchemy" not in type(err).__module__ or attempt == 4:
                raise  # pragma: no cover - an error we cannot explain better than its own message
            time.sleep(0.5 + attempt)  # another worker creating the same new database
    if sqlite:
        _sqlite_fast_commits(storage.engine)
    return storage


def _with_driver(url: str) -> str:
    """``postgresql://`` with the psycopg 3 driver mlexp[postgres] installs (SQLAlchemy 2.0 would pick psycopg2)."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is not None and importlib.util.find_spec("psycopg2") is None:
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _storage_problem(url: str, err: Exception) -> Optional[str]:
    """A one-paragraph explanation of why ``url`` cannot be opened, or None (a transient error)."""
    name = type(err).__name__
    shown = _hide_password(url)
    if isinstance(err, ImportError) or name == "NoSuchModuleError":
        scheme = url.split("://")[0]
        hint = " Install the driver: pip install 'mlexp[postgres]'." if scheme.startswith("postgresql") else ""
        return f"tuner.storage={shown}: no database driver for {scheme!r} ({err}).{hint} {STORAGE_HELP}"
    if name == "ArgumentError":
        return f"tuner.storage={shown} is not a valid storage URL ({err}). {STORAGE_HELP}"
    if name == "OperationalError" and not url.startswith("sqlite"):
        first = str(getattr(err, "orig", err)).strip().splitlines()[0]
        return (f"tuner.storage={shown}: cannot connect to the database ({first}). Check that the server runs, "
                "the host, port, user and database name, and that the password is in ~/.pgpass or PGPASSWORD.")
    if name == "OperationalError" and any(w in str(err) for w in ("unable to open", "readonly", "permission")):
        return f"tuner.storage={shown}: cannot open the SQLite file ({getattr(err, 'orig', err)}). Choose a writable path."
    return None  # e.g. two workers creating the tables of a new database at once: tried again


def _hide_password(url: str) -> str:
    head, sep, rest = url.partition("://")
    if "@" not in rest.split("/")[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":")[0]
    return f"{head}{sep}{user}{':***' if ':' in credentials else ''}@{host}"


def _sqlite_wal(url: str) -> None:
    # Write-ahead logging: readers never wait for the writer, and a commit is one append.
    # The mode is stored in the database file, so every process opening it gets it.
    import sqlite3

    path = url[len("sqlite:///"):]
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MlexpError(f"tuner.storage={url}: the folder {folder} does not exist. Create it or choose another path.")
    try:
        with sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as err:
        raise MlexpError(f"tuner.storage={url}: {path} is not a usable SQLite database ({err}). "
                         f"Choose a new file. {STORAGE_HELP}") from err


def _sqlite_fast_commits(engine: Any) -> None:
    # With WAL, synchronous=NORMAL syncs at checkpoints, not at every commit: a power cut may lose
    # the last trials' records, never corrupt the file (a killed process loses nothing).
    from sqlalchemy import event

    def on_connect(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened while creating the tables reconnect with the pragma


class _StaleTrial:
    """Optuna's heartbeat callback: say which trial's worker went silent, then queue it again."""

    def __init__(self, max_retry: Optional[int]):
        self.max_retry = max_retry

    def __call__(self, study: Any, trial: Any) -> None:
        log.warning("trial %d failed: its worker stopped sending heartbeats (killed, or its machine is gone); "
                    "queued again", trial.number)
        retry_trial(study, trial, self.max_retry)


def retry_trial(study: Any, trial: Any, max_retry: Optional[int]) -> None:
    """Queue a failed trial again with the same parameters (Optuna's retry callback), at most ``max_retry`` times."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, trial)
