"""The tuner's settings (the `tuner` config node, checked) and what follows from them before any trial."""

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

from omegaconf import DictConfig

from mlexp.errors import MlexpError

__all__ = ["TUNER_KEYS", "TunerSettings", "study_direction", "budget_steps"]

TUNER_KEYS = {
    "name": None, "n_trials": 20, "n_jobs": 1, "storage": None, "study_name": "mlexp",
    "default_space": True, "max_failure_rate": 0.5, "sampler": None, "pruner": None,
    "heartbeat_interval": 30, "max_retry": 2, "plots": True, "budget": "auto",
}
BUDGETS = ("auto", "rows", "folds")


@dataclass
class TunerSettings:
    """The `tuner` config node, checked."""

    name: str
    n_trials: Optional[int]
    n_jobs: int
    storage: Optional[str]
    study_name: str
    default_space: bool
    max_failure_rate: float
    sampler: Any
    pruner: Any
    heartbeat_interval: Optional[int]
    max_retry: Optional[int]
    plots: bool
    budget: str

    @classmethod
    def from_config(cls, cfg: DictConfig, fallback: Any = None) -> "TunerSettings":
        """From ``cfg.tuner``, else from ``fallback`` (hydra.sweeper.tuner, for other applications)."""
        node = cfg.get("tuner")
        if node is None and fallback:
            from omegaconf import OmegaConf

            node = OmegaConf.create(OmegaConf.to_container(fallback) if not isinstance(fallback, dict) else fallback)
        if node is None:
            raise MlexpError(
                "hydra/sweeper=mlexp needs a tuner: select one with tuner=grid, random, tpe, hyperband or "
                "median (e.g. `mlexp -m tuner=tpe`)."
            )
        unknown = sorted(set(node.keys()) - set(TUNER_KEYS))
        if unknown:
            raise MlexpError(f"tuner has no setting(s) {', '.join(unknown)}; its settings are {', '.join(TUNER_KEYS)}.")
        values = {key: node.get(key, default) for key, default in TUNER_KEYS.items()}
        if values["sampler"] is None or not values["sampler"].get("_target_"):
            raise MlexpError("tuner.sampler needs a _target_ naming an Optuna sampler (e.g. optuna.samplers.TPESampler).")
        if values["n_trials"] is not None and int(values["n_trials"]) < 1:
            raise MlexpError(f"tuner.n_trials must be at least 1; got {values['n_trials']}.")
        if int(values["n_jobs"]) < 1:
            raise MlexpError(f"tuner.n_jobs must be at least 1; got {values['n_jobs']}.")
        if not 0.0 <= float(values["max_failure_rate"]) <= 1.0:
            raise MlexpError(f"tuner.max_failure_rate is a fraction of n_trials in [0, 1]; got {values['max_failure_rate']}.")
        if values["budget"] not in BUDGETS:
            raise MlexpError(f"tuner.budget={values['budget']!r} is not one of {', '.join(BUDGETS)} (see docs/tuner.md).")
        values["name"] = values["name"] or "custom"
        values["n_jobs"] = int(values["n_jobs"])
        return cls(**values)


def study_direction(cfg: DictConfig) -> Tuple[str, str]:
    """(metric, direction) the job will settle, worked out before any job runs.

    An application other than mlexp (no ``objective`` node) has its job's return value minimized.
    """
    from mlexp.evaluation.metrics import LOWER_IS_BETTER, resolve_objective

    if cfg.get("objective") is None:
        return "objective", "minimize"
    metric, direction = cfg.objective.metric, cfg.objective.direction
    if direction in ("minimize", "maximize"):
        return metric, direction
    if metric != "auto":
        return metric, "minimize" if metric in LOWER_IS_BETTER else "maximize"
    task = cfg.get("task", "auto")
    if task == "auto":
        task = cfg.data.get("task", "auto")
    if task == "auto":  # only the data can tell (classification: roc_auc up; regression: rmse down)
        from mlexp.data import load_dataset

        task = load_dataset(cfg.data).task
    return resolve_objective(metric, direction, task)


def budget_steps(settings: TunerSettings) -> Optional[List[int]]:
    """The rungs a pruned scikit-learn trial reports (None: no pruner, or tuner.budget=folds).

    Geometric from the pruner's ``min_resource`` by its ``reduction_factor`` (1, 3, 9, 27 for
    Hyperband's defaults): Hyperband's rungs fall exactly on them.
    """
    if settings.pruner is None or settings.budget == "folds":
        return None
    low = settings.pruner.get("min_resource", 1)
    low = int(low) if isinstance(low, int) and low >= 1 else 1
    factor = settings.pruner.get("reduction_factor", 3)
    factor = int(factor) if isinstance(factor, int) and factor >= 2 else 3
    high = settings.pruner.get("max_resource", "auto")
    high = int(high) if isinstance(high, int) and high >= low else low * factor ** 3
    steps = [low]
    while steps[-1] * factor <= high:
        steps.append(steps[-1] * factor)
    if steps[-1] != high:
        steps.append(high)
    return steps
