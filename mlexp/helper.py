"""A helper process for a run's last steps: forked once the run has its libraries, it imports skops and
matplotlib while the run loads its data and fits, then saves the model and draws the report when asked.

Those imports take longer than loading and fitting a small model, and the fit needs neither, so
on a machine with a core to spare they cost the run nothing; on a busy one the same work is done,
only elsewhere. The helper is forked only where that is safe and pays: on Linux, in a process
that had not loaded numpy when the run began (so nothing has been fitted, and no OpenMP thread
pool exists to be inherited broken), runs no other Python thread, and lacks skops and matplotlib:
a CLI run, not a notebook, a test process or the second job of an in-process sweep. Anywhere else,
and with ``MLEXP_HELPER=0``, ``Helper.call`` runs the same function in the calling process.
"""

import importlib
import logging
import os
import pickle
import signal
import sys
import threading
import traceback
from typing import Any, Callable, Optional

__all__ = ["Helper", "helper_allowed"]

log = logging.getLogger("mlexp")

# What the helper imports while it waits for its first call.
PRELOAD = ("mlexp.reporting.report", "matplotlib.pyplot", "sklearn.metrics")


class Helper:
    """Runs functions in the helper process, or in this one when there is none (or it is gone).

    ``allowed``: whether ``start()`` may fork; decide it with ``helper_allowed()`` as the run begins.
    """

    def __init__(self, allowed: bool = False) -> None:
        self.allowed = allowed
        self.pid: Optional[int] = None
        self.connection: Any = None

    def start(self) -> "Helper":
        """Fork the helper, if allowed and still safe; call it before anything is fitted."""
        if not (self.allowed and threading.active_count() == 1) or self.connection is not None:
            return self
        from multiprocessing import Pipe

        ours, theirs = Pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the helper
            ours.close()
            _serve(theirs)  # never returns
        theirs.close()
        self.pid, self.connection = pid, ours
        log.debug("helper: process %d imports skops and matplotlib while the run fits", pid)
        return self

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, run by the helper: its result, or its exception raised here."""
        if self.connection is not None:
            try:
                payload = pickle.dumps((function, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as err:  # noqa: BLE001 - something the helper cannot receive: do it here
                log.debug("helper: %s runs in the run's process (%s)", getattr(function, "__name__", function), err)
                return function(*args, **kwargs)
            try:
                self.connection.send_bytes(payload)
                status, value, where = self.connection.recv()
            except (EOFError, OSError) as err:  # the helper died: do it here
                log.debug("helper: gone (%s); continuing without it", err)
                self.close()
                return function(*args, **kwargs)
            if status == "error":
                if where:
                    value.add_note(f"(raised in mlexp's helper process)\n{where}")
                raise value
            return value
        return function(*args, **kwargs)

    def close(self, wait: bool = True) -> None:
        """Let the helper end (it exits when its pipe closes); ``wait`` reaps it."""
        if self.connection is None:
            return
        self.connection.close()
        self.connection = None
        if wait and self.pid is not None:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass


def helper_allowed() -> bool:
    """Whether a run starting now may fork the helper later (see the module's docstring)."""
    if os.environ.get("MLEXP_HELPER", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return (sys.platform == "linux" and "numpy" not in sys.modules and threading.active_count() == 1
            and not {"skops.io", "matplotlib"} <= set(sys.modules))


def _serve(connection: Any) -> None:
    """The helper's life: preload, then run calls until the run closes the pipe. Never returns."""
    try:
        # Ctrl-C is the run's to handle; the helper ends when the run closes its pipe. Its console output
        # goes nowhere, so that whoever reads the run's output is not kept waiting by the helper.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        from mlexp import rundir

        rundir.release()  # the run directory's lock is the run's alone
        _preload()
        while True:
            try:
                function, args, kwargs = pickle.loads(connection.recv_bytes())
            except (EOFError, OSError):
                break
            try:
                reply = ("ok", function(*args, **kwargs), None)
            except BaseException as err:  # noqa: BLE001 - every error goes back to the run
                reply = ("error", err, traceback.format_exc())
            try:
                connection.send(reply)
            except Exception:  # noqa: BLE001 - an error that cannot be pickled goes back as text
                connection.send(("error", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}"), reply[2]))
    finally:
        os._exit(0)  # no atexit hooks, no flushing of buffers inherited from the run


def _preload() -> None:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing library fails the call that needs it, with its own error
            pass
    try:
        from mlexp.artifacts import skops_io

        skops_io()
    except Exception:  # noqa: BLE001 - same
        pass
