"""Hyperparameter tuning on Optuna: the `tuner` group's sweeper, the job-side trial reporter, results.

Hydra finds the sweeper through the thin plugin in ``hydra_plugins/mlexp_sweeper``; the logic
lives here. Imports are lazy so that `mlexp --help` and plain runs never load Optuna.
"""

from typing import TYPE_CHECKING, Any, List

__all__ = [
    "trial_reporter", "TrialReporter", "TunerSweeper", "parse_params", "lift_sweeper_params", "job_trial",
    "TrialCallback",
]

if TYPE_CHECKING:
    from mlexp.tuning._reporter import TrialReporter, trial_reporter
    from mlexp.tuning._space import parse_params
    from mlexp.tuning._sweeper import TunerSweeper
    from mlexp.tuning._trial import TrialCallback, job_trial

_SWEEPER_PARAMS = "hydra.sweeper.params."


def lift_sweeper_params(argv: List[str]) -> List[str]:
    """Turn command-line ``hydra.sweeper.params.<key>=<expr>`` into the sweep override ``<key>=<expr>``.

    Hydra 1.3 refuses sweep expressions (choice, interval, ...) under ``hydra.*`` on the
    command line; as a task override the same entry reaches the tuner unchanged.
    """
    lifted = []
    for arg in argv:
        bare = arg.lstrip("+")
        lifted.append(bare[len(_SWEEPER_PARAMS):] if bare.startswith(_SWEEPER_PARAMS) else arg)
    return lifted


def __getattr__(name: str) -> Any:
    if name in ("trial_reporter", "TrialReporter"):
        from mlexp.tuning import _reporter

        return getattr(_reporter, name)
    if name == "TunerSweeper":
        from mlexp.tuning._sweeper import TunerSweeper

        return TunerSweeper
    if name in ("job_trial", "TrialCallback"):
        from mlexp.tuning import _trial

        return getattr(_trial, name)
    if name == "parse_params":
        from mlexp.tuning._space import parse_params

        return parse_params
    raise AttributeError(f"module 'mlexp.tuning' has no attribute {name!r}")
