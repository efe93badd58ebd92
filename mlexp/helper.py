"""A helper process for a run's last steps: forked as the run starts, it imports skops and matplotlib
(and what they need) on an idle core while the run imports its own libraries, loads and fits, then
saves the model and draws the report when asked.

Those imports take about as long as the whole of a small fit, and the fit needs neither: with a
core to spare they then cost the run nothing. The helper is forked only when the machine has an
idle core (load average at most the number of cores less one), runs at the lowest priority (the
run's own BLAS and OpenMP threads keep their cores), and a call goes to it only once it says it is
ready; until then the run does the work itself. On a busy machine a run is no slower than without it.

It is forked only where that is safe: on Linux, from a process that has not loaded numpy (so
nothing was fitted before and no native thread pool exists to be inherited broken) and runs no
other Python thread: a CLI run, not a notebook, a test process or the second job of an
in-process sweep. Anywhere else, and with ``MLEXP_HELPER=0``, calls run in the calling process;
``MLEXP_HELPER=always`` forks it whatever the load (for tests and measurements).
"""

import gc
import importlib
import logging
import os
import pickle
import signal
import sys
import threading
import traceback
from typing import Any, Callable, Optional

__all__ = ["Helper", "helper_allowed", "idle_core"]

log = logging.getLogger("mlexp")

# What the helper imports before it says it is ready.
PRELOAD = ("sklearn.metrics", "mlexp.reporting.report", "matplotlib.pyplot")
READY = "ready"


class Helper:
    """Runs functions in the helper process once it is ready, else in this one.

    ``allowed``: whether ``start()`` may fork; decide it with ``helper_allowed()``.
    """

    def __init__(self, allowed: bool = False) -> None:
        self.allowed = allowed
        self.pid: Optional[int] = None
        self.connection: Any = None
        self.is_ready = False
        self.busy = False  # a call is in progress (a Ctrl-C may leave it so)

    def start(self) -> "Helper":
        """Fork the helper, if allowed and still safe (call it before numpy is imported)."""
        if not (self.allowed and helper_allowed()) or self.connection is not None:
            return self
        if not idle_core() and os.environ.get("MLEXP_HELPER", "").strip().lower() != "always":
            log.debug("helper: not started, no idle core (load average %.2f)", os.getloadavg()[0])
            return self
        from multiprocessing import Pipe

        ours, theirs = Pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()  # objects from before the fork stay out of both processes' collections: fewer pages copied
        pid = os.fork()
        if pid == 0:  # the helper
            ours.close()
            _serve(theirs)  # never returns
        theirs.close()
        self.pid, self.connection = pid, ours
        log.debug("helper: process %d imports skops and matplotlib while the run fits", pid)
        return self

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether the helper has its libraries loaded (waiting up to ``timeout`` seconds to know)."""
        if not self.is_ready and self.connection is not None:
            try:
                if self.connection.poll(timeout) and self.connection.recv() == READY:
                    self.is_ready = True
            except (EOFError, OSError):
                self.close()
        return self.is_ready

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``: by the helper when it is ready (its result, or its error raised
        here), else here."""
        if not self.ready():
            return function(*args, **kwargs)
        try:
            payload = pickle.dumps((function, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as err:  # noqa: BLE001 - something the helper cannot receive: do it here
            log.debug("helper: %s runs in the run's process (%s)", getattr(function, "__name__", function), err)
            return function(*args, **kwargs)
        try:
            self.busy = True
            self.connection.send_bytes(payload)
            status, value, where = self.connection.recv()
            self.busy = False
        except (EOFError, OSError) as err:  # the helper died: do it here
            log.debug("helper: gone (%s); continuing without it", err)
            self.close()
            return function(*args, **kwargs)
        if status == "error":
            if where:
                value.add_note(f"(raised in mlexp's helper process)\n{where}")
            raise value
        return value

    def close(self) -> None:
        """End the helper: it exits when its pipe closes, or at once if it is still loading or working."""
        if self.connection is None:
            return
        self.connection.close()
        self.connection = None
        if self.pid is None:
            return
        if self.busy or not self.is_ready:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def helper_allowed() -> bool:
    """Whether this process may fork the helper now (see the module's docstring)."""
    if os.environ.get("MLEXP_HELPER", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return (sys.platform == "linux" and "numpy" not in sys.modules and threading.active_count() == 1
            and not {"skops.io", "matplotlib"} <= set(sys.modules))


def idle_core() -> bool:
    """Whether the machine has a core to spare: the 1-minute load average leaves one of this process's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return os.getloadavg()[0] <= cores - 1


def _serve(connection: Any) -> None:
    """The helper's life: preload, say so, run calls until the run closes the pipe. Never returns."""
    try:
        # Ctrl-C is the run's to handle; idle-time work only; the console is the run's: whoever reads
        # the run's output is not kept waiting for the helper's end.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.nice(19)
        quiet = os.open(os.devnull, os.O_WRONLY)
        os.dup2(quiet, 1)
        os.dup2(quiet, 2)
        from mlexp import rundir

        rundir.release()  # the run directory's lock is the run's alone
        _preload()
        connection.send(READY)
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
        os._exit(0)  # no exit hooks, no flushing of buffers inherited from the run


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
