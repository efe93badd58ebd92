"""The job side of tuning: a Reporter bound to the Optuna trial named in the job's `trial` config."""

from typing import Any, Dict, Optional

from mlexp.errors import MlexpError
from mlexp.reporting.reporter import Reporter

__all__ = ["TrialReporter", "trial_reporter"]


class TrialReporter(Reporter):
    """Forwards intermediate objective values to an Optuna trial and asks its pruner.

    Steps never mix units within a trial: a model that reports epochs (PyTorch) uses the
    epochs of the first cross-validation fold as steps; any other model uses the folds.
    Later folds of an epoch-reporting model are logged but not reported, so step ``s``
    means the same budget in every trial of the same model family.
    """

    def __init__(self, trial: Any, metric: str, direction: str):
        super().__init__(metric, direction)
        self.trial = trial
        self.epoch_fold: Optional[int] = None   # the fold whose epochs are the steps
        self._prune = False

    def report(self, step: int, value: float, scores: Optional[Dict[str, Optional[float]]] = None) -> None:
        super().report(step, value, scores)
        if self.epoch_fold is None:
            self._report(step, value)

    def report_epoch(self, fold: int, epoch: int, values: Dict[str, float]) -> None:
        super().report_epoch(fold, epoch, values)
        value = values.get(self.metric)
        if value is None or fold is None or value != value:  # no objective this epoch (or NaN)
            return
        if self.epoch_fold is None:
            self.epoch_fold = fold
        if fold == self.epoch_fold:
            self._report(epoch, float(value))

    def should_prune(self) -> bool:
        # Decided when a step is reported; asking the pruner reads the whole study, so not per call.
        return self._prune

    def _report(self, step: int, value: float) -> None:
        import optuna

        self.trial.report(value, step)
        if not isinstance(self.trial.study.pruner, optuna.pruners.NopPruner):
            self._prune = self.trial.should_prune()


def trial_reporter(cfg: Any, metric: str, direction: str) -> TrialReporter:
    """Reload the trial named by ``cfg.trial`` (storage URL, study_name, trial number, pruner config)."""
    import optuna
    from hydra.utils import instantiate

    from mlexp.tuning._study import open_storage

    identity = cfg.trial
    missing = [k for k in ("storage", "study_name", "number") if identity.get(k) is None]
    if missing:
        raise MlexpError(f"trial={dict(identity)} lacks {', '.join(missing)}; the tuner sets trial for each job, leave it null otherwise.")
    pruner_cfg = identity.get("pruner")
    pruner = instantiate(pruner_cfg) if pruner_cfg else optuna.pruners.NopPruner()
    storage = open_storage(identity.storage)
    try:
        study = optuna.load_study(
            study_name=identity.study_name, storage=storage,
            # The job never samples; a sampler without before_trial side effects keeps it that way.
            sampler=optuna.samplers.RandomSampler(), pruner=pruner,
        )
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name(identity.study_name), int(identity.number)
        )
        trial = optuna.trial.Trial(study, trial_id)
    except KeyError as err:
        raise MlexpError(f"trial {dict(identity)} is not in its storage: {err}") from err
    study_direction = study.direction.name.lower()
    if study_direction != direction:
        raise MlexpError(
            f"the study {identity.study_name!r} is set to {study_direction}, but this job's objective "
            f"{metric} is to {direction}. Set objective.direction={study_direction} or objective.metric "
            "explicitly so the tuner and the job agree."
        )
    return TrialReporter(trial, metric, direction)
