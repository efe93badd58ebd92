"""The `mlexp` entrypoint: Hydra composes the config, mlexp runs the selected mode.

How a run ends, as the user sees it: an error they can fix is one paragraph on stderr (exit
status 2, or the error's own code), printed once; Ctrl-C is one line (exit status 130) and
the run directory says ``status: interrupted``; Hydra's own errors (composition, bad
overrides) are printed by Hydra (exit status 1).
"""

import gc
import logging
import sys
from typing import List, Optional

import hydra
from omegaconf import DictConfig

from mlexp.schema import register

register()
log = logging.getLogger("mlexp")

INTERRUPTED = 130  # what a shell reports for a process ended by SIGINT (128 + 2)


@hydra.main(config_path="pkg://mlexp.conf", config_name="config", version_base="1.3")
def _app(cfg: DictConfig) -> Optional[float]:
    # Imported here, not at module level, so --help and --cfg stay fast.
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from mlexp.errors import MlexpError
    from mlexp.modes import dispatch

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        return dispatch(cfg)
    except MlexpError as err:
        if multirun:
            log.error("%s", err)  # the job's log and the console, once; the sweep goes on (reporting.callbacks)
            raise
        _log_to_files(err)  # the console gets the paragraph below, not a log line repeating it
        label = "error: " if err.exit_code == 2 else ""
        print(f"\nmlexp: {label}{err}", file=sys.stderr)
        sys.exit(err.exit_code)


def _log_to_files(err: Exception) -> None:
    # An error the user can fix is an ERROR; another outcome with its own exit code (the monitor's
    # violations, exit 3) is a finding of a run that did its work: a WARNING.
    level = logging.ERROR if getattr(err, "exit_code", 2) == 2 else logging.WARNING
    record = log.makeRecord(log.name, level, __file__, 0, "%s", (err,), None)
    for handler in logging.getLogger().handlers + log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _what_stopped() -> str:
    from mlexp.rundir import current

    where = current()
    if where is None:
        return "nothing was written yet"
    if where["kind"] == "sweep":
        return (f"the sweep in {where['dir']} stopped: finished jobs are kept, a job cut short says status: "
                "interrupted in its lineage.json")
    return f"the run in {where['dir']} stopped: what it wrote is kept and its lineage.json says status: interrupted"


def unquoted_non_ascii(argv: List[str]) -> Optional[str]:
    """The first override whose value has a non-ASCII character outside quotes (Hydra's grammar refuses it)."""
    for previous, arg in zip([""] + argv, argv):
        if arg.startswith("-") or previous in _FLAGS_WITH_VALUES or "=" not in arg:
            continue
        quote = None
        for char in arg.split("=", 1)[1]:
            if quote is not None:
                quote = None if char == quote else quote
            elif char in "'\"":
                quote = char
            elif ord(char) > 127:
                return arg
    return None


_FLAGS_WITH_VALUES = {"-cd", "--config-dir", "-cp", "--config-path", "-cn", "--config-name", "-p", "--package",
                      "-i", "--info", "--experimental-rerun"}


def main() -> None:
    try:
        _main()
    finally:
        # Left to the OS: the interpreter's last garbage collection over every object of scikit-learn,
        # pandas and matplotlib takes longer (~0.4 s) than many small runs' fit. Exit hooks still run.
        gc.freeze()


def _main() -> None:
    from mlexp.reporting.callbacks import note_sweep_stopped
    from mlexp.tuning import lift_sweeper_params

    sys.argv[1:] = lift_sweeper_params(sys.argv[1:])  # Hydra refuses sweep values under hydra.*
    unquoted = unquoted_non_ascii(sys.argv[1:])
    if unquoted is not None:
        key, value = unquoted.split("=", 1)
        fix = f"\"{key}='{value}'\"" if not any(c in value for c in ",()[]{}") else "each value in quotes"
        print(f"\nmlexp: error: the override {unquoted} has a non-ASCII character outside quotes, which Hydra's "
              f"override grammar refuses. Quote the value: {fix} (the outer quotes are for the shell; "
              "see docs/recipes.md, 'Values with non-ASCII characters').", file=sys.stderr)
        sys.exit(2)
    try:
        _app()
    except KeyboardInterrupt:
        note_sweep_stopped("interrupted (Ctrl-C)")
        print(f"\nmlexp: interrupted (Ctrl-C); {_what_stopped()}.", file=sys.stderr)
        sys.exit(INTERRUPTED)
    except SystemExit as done:
        if done.code not in (0, None):
            # Hydra reports an error and then exits; the error it reported is the exit's context.
            note_sweep_stopped(done.__context__)
        raise
