"""The job side of tuning: a Reporter bound to the Optuna trial the tuner runs this job as."""

import logging
from typing import Any, Dict, Optional, Sequence

from mlexp.errors import MlexpError
from mlexp.reporting.reporter import Reporter

__all__ = ["TrialReporter", "trial_reporter"]

log = logging.getLogger("mlexp.tuning")


class TrialReporter(Reporter):
    """Forwards intermediate objective values to an Optuna trial and asks its pruner.

    A step is the same amount of training in every trial of a model family:

    - PyTorch models: epochs, counted across folds (fold ``k``'s epoch ``e`` is step
      ``k * max_epochs + e``), so the pruner can stop a trial inside any fold;
    - other models with a budget (``steps``, from tuner.budget): rung ``s`` means ``s/steps[-1]``
      of the trees, boosting iterations or training rows in every fold (mlexp.tuning._budget);
    - otherwise (tuner.budget=folds): cross-validation folds.
    """

    def __init__(self, trial: Any, metric: str, direction: str, steps: Optional[Sequence[int]] = None,
                 epochs_per_fold: Optional[int] = None, budget: str = "auto"):
        super().__init__(metric, direction)
        self.trial = trial
        self.steps = list(steps) if steps else None
        self.budget = budget
        self.epochs_per_fold = epochs_per_fold
        self.epoch_reports = False
        self._offset: Dict[int, int] = {}   # first step of each fold, when max_epochs is unknown
        self._last_epoch: Dict[int, int] = {}
        self._prune = False

    def report(self, step: int, value: float, scores: Optional[Dict[str, Optional[float]]] = None) -> None:
        super().report(step, value, scores)
        if not self.epoch_reports:  # a model reporting epochs has reported this fold already
            self._report(step, value)

    def report_epoch(self, fold: int, epoch: int, values: Dict[str, float]) -> None:
        super().report_epoch(fold, epoch, values)
        value = values.get(self.metric)
        if value is None or fold is None or value != value:  # no objective this epoch (or NaN)
            return
        self.epoch_reports = True
        self._report(self._epoch_step(fold, epoch), float(value))

    def report_rung(self, step: int, value: float, last: bool) -> None:
        """The mean validation objective of all folds trained with budget rung ``step``."""
        log.info("rung %d/%d: %s=%.4f", step, self.steps[-1] if self.steps else step, self.metric, value)
        self._report(step, value)

    def budgeted_cross_validate(self, pipeline: Any, X: Any, y: Any, splitter: Any, task: str,
                                n_classes: Optional[int], train_scores: bool = True) -> Any:
        """Cross-validation in budget rungs (None: this model's budget is epochs or folds)."""
        if not self.steps:
            return None
        from mlexp.tuning._budget import budgeted_cross_validate

        return budgeted_cross_validate(pipeline, X, y, splitter, task, n_classes, self, self.steps, train_scores,
                                       mode=self.budget)

    def should_prune(self) -> bool:
        # Decided when a step is reported; asking the pruner reads the whole study, so not per call.
        return self._prune

    def _epoch_step(self, fold: int, epoch: int) -> int:
        if self.epochs_per_fold:
            return fold * int(self.epochs_per_fold) + epoch
        if fold not in self._offset:  # max_epochs unknown: continue after the previous fold's last epoch
            self._offset[fold] = max(self._last_epoch.values(), default=0)
        step = self._offset[fold] + epoch
        self._last_epoch[fold] = step
        return step

    def _report(self, step: int, value: float) -> None:
        import optuna

        if isinstance(self.trial.study.pruner, optuna.pruners.NopPruner):
            return  # nothing would read it: no write to the storage (the job's metrics.json has every fold)
        self.trial.report(value, step)
        self._prune = self.trial.should_prune()


def trial_reporter(cfg: Any, metric: str, direction: str) -> TrialReporter:
    """A reporter bound to this job's trial (mlexp.tuning._trial.job_trial names it)."""
    from mlexp.tuning._trial import job_trial, load_trial

    identity = job_trial(cfg)
    if not identity:
        raise MlexpError("this job is not a tuner trial: trial_reporter needs the tuner's trial identity.")
    trial = load_trial(identity)
    study_direction = trial.study.direction.name.lower()
    if study_direction != direction:
        raise MlexpError(
            f"the study {identity['study_name']!r} is set to {study_direction}, but this job's objective "
            f"{metric} is to {direction}. Set objective.direction={study_direction} or objective.metric "
            "explicitly so the tuner and the job agree."
        )
    model = cfg.get("model") if cfg is not None else None
    epochs = model.get("max_epochs") if model is not None and hasattr(model, "get") else None
    return TrialReporter(trial, metric, direction, steps=identity.get("budget_steps"),
                         epochs_per_fold=int(epochs) if isinstance(epochs, int) else None,
                         budget=identity.get("budget") or "auto")
