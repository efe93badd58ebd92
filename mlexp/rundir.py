"""A run's directory is claimed by one run only: never an earlier run's, never shared, unless overwrite=true.

The claim happens before Hydra writes anything into the directory (`.hydra/`, the job log):
``RunDirCallback.on_run_start`` for a run, ``on_multirun_start`` for a sweep's directory, and
``claim()`` for ``mlexp.run(cfg, run_dir=...)`` from Python. A claimed directory is locked
(``flock``) while its process lives, so concurrent runs never share one; a time-stamped default
directory (``outputs/<date>/<time>``) that another run holds gets a suffix (``<time>_2``).
"""

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from mlexp.errors import MlexpError

try:  # POSIX; elsewhere a claim relies on the directory checks alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["claim", "release", "current", "RunDirCallback", "RUN_MARKERS"]

log = logging.getLogger("mlexp")

# Entries that say a directory already holds a run (or a sweep) of mlexp or Hydra.
RUN_MARKERS = (".hydra", "lineage.json", "metrics.json", "model.skops", "mlexp.log", "multirun.yaml")
# Sweepers that resume in their sweep directory by design (mlexp's tuner: the study lives there).
RESUMABLE_SWEEPERS = ("hydra_plugins.mlexp_sweeper.",)

_held: Dict[Path, int] = {}  # claimed directory -> open descriptor holding its lock
_current: Dict[str, Any] = {}  # what this process's Hydra run or sweep writes to: {"kind", "dir"}


def claim(path: Path, *, overwrite: bool = False, timestamped: bool = False, key: str = "hydra.run.dir") -> Path:
    """Claim ``path`` for this process and return the directory claimed.

    An earlier run's directory is refused (``overwrite=True`` deletes its content first); a
    directory another live process holds is always refused. With ``timestamped`` (a name made
    from the clock) the next free ``<name>_2``, ``<name>_3``... is taken instead of refusing.
    """
    base = Path(path)
    candidate, number = base, 1
    while True:
        _create(candidate, key)
        descriptor = _lock(candidate)
        busy = descriptor is None
        earlier = _earlier_run(candidate)
        if not busy and earlier is None:
            _held[candidate.resolve()] = descriptor
            return candidate
        if descriptor is not None:
            os.close(descriptor)
        if timestamped:
            number += 1
            candidate = base.with_name(f"{base.name}_{number}")
            continue
        if busy:
            raise MlexpError(f"{key}={candidate} is in use by another mlexp run that is still running; "
                             "runs never share a directory. Choose another directory.")
        if not overwrite:
            raise MlexpError(
                f"{key}={candidate} already holds {earlier}; mlexp never writes into an earlier run's (or "
                "sweep's) directory. Choose a new directory, or add overwrite=true to delete everything in it first."
            )
        _clear(candidate, key)
        return claim(candidate, overwrite=False, timestamped=False, key=key)


def current() -> Optional[Dict[str, Any]]:
    """``{"kind": "run" | "sweep", "dir": Path}`` of this process's Hydra run or sweep; None before it starts."""
    return dict(_current) if _current else None


def release(path: Optional[Path] = None) -> None:
    """Unlock ``path`` (every claimed directory when None); the process exiting does the same."""
    targets = list(_held) if path is None else [Path(path).resolve()]
    for target in targets:
        descriptor = _held.pop(target, None)
        if descriptor is not None:
            os.close(descriptor)


class RunDirCallback(Callback):
    """Hydra callback (conf/config.yaml, ``hydra.callbacks.run_dir``): claims the run or sweep directory
    before Hydra writes into it; a refusal is a one-paragraph error, exit status 2."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _claim_from_config(config, "run")

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        release()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _claim_from_config(config, "sweep")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        release()


# ---- internals ---------------------------------------------------------------------------------


def _claim_from_config(config: DictConfig, kind: str) -> None:
    import sys

    node = config.hydra.run if kind == "run" else config.hydra.sweep
    key = f"hydra.{kind}.dir"
    raw = str(OmegaConf.to_container(node, resolve=False)["dir"])
    wanted = Path(str(node.dir))
    timestamped = "${now:" in raw
    overwrite = bool(config.get("overwrite", False))
    try:
        if kind == "sweep" and not timestamped and _resumable(config):
            # The tuner resumes its study in an existing sweep directory; jobs get new trial numbers.
            _create(wanted, key)
            if overwrite and _earlier_run(wanted) is not None:
                _clear(wanted, key)
            claimed = wanted
        else:
            claimed = claim(wanted, overwrite=overwrite, timestamped=timestamped, key=key)
    except MlexpError as err:
        print(f"\nmlexp: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    _current.update(kind=kind, dir=claimed.absolute())
    if claimed != wanted:
        log.info("%s %s is taken by another run; this one writes to %s", key, wanted, claimed)
        with read_write(node):
            node.dir = str(claimed)
        if kind == "sweep":  # each job's config is composed again from these overrides
            with read_write(config.hydra.overrides):
                config.hydra.overrides.hydra.append(f"hydra.sweep.dir={_quoted(str(claimed))}")


def _resumable(config: DictConfig) -> bool:
    target = str(OmegaConf.select(config, "hydra.sweeper._target_", default="") or "")
    return target.startswith(RESUMABLE_SWEEPERS)


def _create(directory: Path, key: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        writable = os.access(directory, os.W_OK | os.X_OK)
    except OSError as err:
        raise MlexpError(_unwritable(directory, key, err.strerror or str(err))) from None
    if not writable:
        raise MlexpError(_unwritable(directory, key, "permission denied"))


def _unwritable(directory: Path, key: str, reason: str) -> str:
    return (f"cannot write the run directory {directory} ({reason}). Set {key}=<a directory you can write>, "
            "or start mlexp from a directory where it may create outputs/ and multirun/.")


def _lock(directory: Path) -> Optional[int]:
    """An open descriptor holding an exclusive lock on ``directory``; None when another process holds it."""
    descriptor = os.open(directory, os.O_RDONLY)
    if fcntl is None:
        return descriptor
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def _earlier_run(directory: Path) -> Optional[str]:
    """What earlier run ``directory`` holds, in words; None when it holds none (empty, or only other files)."""
    found = [name for name in RUN_MARKERS if (directory / name).exists()]
    if not found:
        return None
    if (directory / "multirun.yaml").exists():
        return "an earlier sweep (multirun.yaml)"
    import json

    try:
        lineage = json.loads((directory / "lineage.json").read_text())
    except (OSError, ValueError):
        return f"an earlier run ({', '.join(found)})"
    status, started = lineage.get("status", "unknown"), lineage.get("started")
    return f"an earlier {status} run" + (f" started {started}" if started else "")


def _clear(directory: Path, key: str) -> None:
    """Delete everything in ``directory`` (overwrite=true), refusing places where that would destroy more."""
    here = Path.cwd().resolve()
    target = directory.resolve()
    if target == here or target in here.parents:
        raise MlexpError(f"{key}={directory} is the current directory or one above it; overwrite=true would "
                         "delete everything in it. Choose a run directory of its own.")
    if (target / ".git").exists():
        raise MlexpError(f"{key}={directory} is a git repository; overwrite=true would delete it. "
                         "Choose a run directory of its own.")
    removed: List[str] = []
    for entry in sorted(target.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    log.info("overwrite=true: deleted %d entries of the earlier run in %s", len(removed), directory)


def _quoted(value: str) -> str:
    """``value`` as a quoted string of Hydra's override grammar."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
