"""Cross-validation in rungs of a growing budget, so Hyperband and the median rule stop weak scikit-learn trials early.

The budget is real training work: trees or boosting iterations for ensembles that can warm
start (``n_estimators`` of forests, gradient boosting and bagging; ``max_iter`` of histogram
gradient boosting), training rows for any other model. At rung ``s`` of ``steps`` (e.g. 1, 3,
9, 27) every fold trains with ``s / steps[-1]`` of the full budget and the mean validation
objective is reported as step ``s``; the last rung is the trial's ordinary cross-validation.
"""

import logging
import math
import time
from typing import Any, List, Optional, Sequence

import numpy as np

__all__ = ["budget_param", "budgeted_cross_validate", "subsample"]

log = logging.getLogger("mlexp.tuning")

MIN_ROWS = 20                 # rows of the smallest rung (and 5 per class), whatever the fraction


def budget_param(estimator: Any) -> Optional[str]:
    """The parameter that sizes a warm-startable ensemble (n_estimators or max_iter), or None."""
    try:
        params = estimator.get_params(deep=False)
    except AttributeError:
        return None
    if "warm_start" not in params:
        return None
    if "n_estimators" in params:
        return "n_estimators"   # forests, extra trees, gradient boosting, bagging
    if "max_iter" in params and "HistGradientBoosting" in type(estimator).__name__:
        return "max_iter"
    return None


def _reports_epochs(estimator: Any) -> bool:
    # PyTorch models report epochs themselves (TrialReporter.report_epoch): their budget is epochs.
    return any(cls.__name__ == "NeuralNet" for cls in type(estimator).__mro__)


def subsample(train: np.ndarray, y: np.ndarray, fraction: float, task: str, seed: int) -> np.ndarray:
    """The first ``fraction`` of the training rows in a fixed shuffled order (so rungs nest), every class kept."""
    n = len(train)
    classes = np.unique(y[train]) if task == "classification" else np.array([])
    size = max(math.ceil(fraction * n), MIN_ROWS, 5 * len(classes))
    if size >= n:
        return train
    order = np.random.default_rng(seed).permutation(n)
    if len(classes):  # each class's first rows in the shuffled order go first
        labels = y[train][order]
        firsts = np.concatenate([np.flatnonzero(labels == c)[:5] for c in classes])
        order = np.concatenate([order[firsts], np.delete(order, firsts)])
    return np.sort(train[order[:size]])


def budgeted_cross_validate(
    pipeline: Any, X: Any, y: Any, splitter: Any, task: str, n_classes: Optional[int], reporter: Any,
    steps: Sequence[int], train_scores: bool = True, mode: str = "auto",
) -> Optional[Any]:
    """mlexp.evaluation.cross_validate in budget rungs; None for a model whose budget is epochs.

    ``mode``: ``auto`` (trees or iterations where the model can warm start, else rows) or ``rows``.
    """
    from sklearn.base import clone

    from mlexp import evaluation as ev
    from mlexp.evaluation.metrics import score
    from mlexp.reporting.reporter import reporting_fold

    name, estimator = pipeline.steps[-1]
    if _reports_epochs(estimator):
        return None
    param = budget_param(estimator) if mode == "auto" else None
    full = estimator.get_params(deep=False)[param] if param else None
    warm_start = estimator.get_params(deep=False).get("warm_start") if param else None
    y_array = y.to_numpy()
    folds = list(splitter.split(X, y_array))
    models: List[Any] = [clone(pipeline) for _ in folds]
    result = ev.CVResult(fit_seconds=[0.0] * len(folds))
    kept = []
    log.info("budget rungs %s of %s", list(steps), f"{param}={full}" if param else "the training rows")
    for step in steps:
        last = step == steps[-1]
        fraction = step / steps[-1]
        objectives = []
        for fold, (train, validation) in enumerate(folds):
            rows = train if (param or last) else subsample(train, y_array, fraction, task, seed=fold)
            if param:  # continue from the previous rung's trees or iterations
                models[fold].set_params(**{f"{name}__{param}": max(1, math.ceil(full * fraction)),
                                           f"{name}__warm_start": True})
            else:  # a smaller sample of the rows: trained from scratch
                models[fold] = clone(pipeline)
            if last:
                ev.check_fit_preconditions(models[fold], X.iloc[rows], y_array[rows], where=f"fold {fold}")
            start = time.perf_counter()
            try:
                with reporting_fold(reporter, fold):
                    ev._fit(models[fold], X.iloc[rows], y_array[rows])
            except Exception as err:  # noqa: BLE001 - a partial budget too small for this model: skip the rung
                if last:
                    raise
                log.info("rung %d skipped: fold %d cannot be fitted on %d rows (%s)", step, fold, len(rows), err)
                objectives = []
                break
            result.fit_seconds[fold] += time.perf_counter() - start
            if not last:
                objectives.append(score(models[fold], X.iloc[validation], y_array[validation], task, n_classes)
                                  .get(reporter.metric))
                continue
            if param:
                models[fold].set_params(**{f"{name}__warm_start": warm_start})
            recorder = ev._Recorder(models[fold])
            scores = score(recorder, X.iloc[validation], y_array[validation], task, n_classes)
            result.folds.append(scores)
            objectives.append(scores.get(reporter.metric))
            kept.append(recorder.predictions(y_array[validation], fold, task, n_classes, index=validation))
            if train_scores:
                capped = ev._capped(train, ev.TRAIN_SCORE_ROWS, seed=fold)
                result.train_folds.append(score(models[fold], X.iloc[capped], y_array[capped], task, n_classes))
        known = [v for v in objectives if v is not None]
        if known and len(known) == len(objectives):
            reporter.report_rung(step, float(np.mean(known)), last)
        if not last and reporter.should_prune():
            raise ev._pruned(step)
    result.predictions = ev._concatenate(kept)
    return result
