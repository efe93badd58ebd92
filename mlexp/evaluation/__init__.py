"""Fit and score the pipeline per fold, then once on the test split."""

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from mlexp.errors import MlexpError
from mlexp.evaluation.checks import check_fit_preconditions, check_missing_values, fit_error, make_folds
from mlexp.evaluation.metrics import score
from mlexp.reporting.reporter import Reporter, reporting_fold

__all__ = [
    "CVResult", "Predictions", "cross_validate", "fit_and_test", "check_fit_preconditions", "check_missing_values",
    "make_folds",
]

log = logging.getLogger(__name__)


# Training-fold scores (the train-vs-validation check in report.md) use at most this many rows per fold.
TRAIN_SCORE_ROWS = 5000


@dataclass
class Predictions:
    """Held-out predictions, kept from scoring so that report.md needs no second predict call.

    ``scores`` holds class probabilities (n x classes) when the model has predict_proba, else
    decision values (``scores_kind`` says which); None for regression.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    fold: np.ndarray
    scores: Optional[np.ndarray] = None
    scores_kind: Optional[str] = None
    # Row positions of these predictions in the rows they were made for (the development rows for
    # out-of-fold predictions, the test rows for the test split): lines them up with facets, weights...
    index: Optional[np.ndarray] = None


@dataclass
class CVResult:
    folds: List[Dict[str, Optional[float]]] = field(default_factory=list)
    fit_seconds: List[float] = field(default_factory=list)
    # Scores of each fold's model on (a capped sample of) its own training rows.
    train_folds: List[Dict[str, Optional[float]]] = field(default_factory=list)
    predictions: Optional[Predictions] = None  # out-of-fold, all folds concatenated

    def train_summary(self) -> Dict[str, Dict[str, Any]]:
        """{metric: {"mean", "std", "folds"}} of the training-fold scores (empty when not collected)."""
        return CVResult(folds=self.train_folds).summary()

    def summary(self) -> Dict[str, Dict[str, Any]]:
        """{metric: {"mean", "std", "folds"}}; None where a metric was not computable."""
        out: Dict[str, Dict[str, Any]] = {}
        for metric in self.folds[0] if self.folds else []:
            values = [fold[metric] for fold in self.folds]
            known = [v for v in values if v is not None]
            out[metric] = {
                "mean": float(np.mean(known)) if known else None,
                "std": float(np.std(known)) if known else None,
                "folds": values,
            }
        return out


def cross_validate(
    pipeline: Any, X: pd.DataFrame, y: pd.Series, splitter: Any, task: str, n_classes: Optional[int],
    reporter: Reporter, train_scores: bool = True, groups: Optional[np.ndarray] = None,
    weights: Optional[np.ndarray] = None,
) -> CVResult:
    """Clone, fit and score the pipeline on each fold of the development rows.

    Keeps the out-of-fold predictions (``result.predictions``) and, with ``train_scores``,
    each fold's scores on at most TRAIN_SCORE_ROWS of its own training rows. ``groups`` go to
    the splitter; ``weights`` (one per row) to the fit, as sample_weight, and to the scores.
    """
    from sklearn.base import clone

    from mlexp.reporting.progress import progress

    budgeted = getattr(reporter, "budgeted_cross_validate", None)  # tuning: folds trained in budget rungs
    if budgeted is not None:
        result = budgeted(pipeline, X, y, splitter, task, n_classes, train_scores)
        if result is not None:
            return result
    result = CVResult()
    y_array = y.to_numpy()
    kept: List[Predictions] = []
    splits = make_folds(splitter, X, y_array, groups)
    folds = progress(enumerate(splits), total=len(splits), desc="cv folds", unit="fold")
    for fold, (train, validation) in folds:
        check_fit_preconditions(pipeline, X.iloc[train], y_array[train], where=f"fold {fold}")
        model = clone(pipeline)
        start = time.perf_counter()
        with reporting_fold(reporter, fold):
            _fit(model, X.iloc[train], y_array[train], _rows(weights, train))
        result.fit_seconds.append(time.perf_counter() - start)
        recorder = _Recorder(model)
        scores = score(recorder, X.iloc[validation], y_array[validation], task, n_classes, _rows(weights, validation))
        result.folds.append(scores)
        kept.append(recorder.predictions(y_array[validation], fold, task, n_classes, index=validation))
        if train_scores:
            rows = _capped(train, TRAIN_SCORE_ROWS, seed=fold)
            result.train_folds.append(score(model, X.iloc[rows], y_array[rows], task, n_classes, _rows(weights, rows)))
        objective = scores.get(reporter.metric)
        if objective is not None:
            reporter.report(fold, objective, scores)
        if reporter.should_prune():
            folds.close()
            raise _pruned(fold)
    folds.close()
    result.predictions = _concatenate(kept)
    return result


def fit_and_test(pipeline: Any, X_dev, y_dev, X_test, y_test, task: str, n_classes: Optional[int],
                 weights_dev: Optional[np.ndarray] = None, weights_test: Optional[np.ndarray] = None):
    """Fit on all development rows; score once on the test rows.

    Returns (model, test scores, fit seconds, test Predictions); the last two parts are None
    when there is no test split.
    """
    from sklearn.base import clone

    check_fit_preconditions(pipeline, X_dev, y_dev.to_numpy(), where="the final fit")
    model = clone(pipeline)
    start = time.perf_counter()
    _fit(model, X_dev, y_dev.to_numpy(), weights_dev)
    if weights_dev is not None:  # the requests steered the weighted fit; the saved model does without them
        from mlexp.pipeline.wrappers import forget_requests

        forget_requests(model)
    fit_seconds = time.perf_counter() - start
    if not len(y_test):
        return model, None, fit_seconds, None
    recorder = _Recorder(model)
    test_scores = score(recorder, X_test, y_test.to_numpy(), task, n_classes, weights_test)
    return model, test_scores, fit_seconds, recorder.predictions(y_test.to_numpy(), -1, task, n_classes)


class _Recorder:
    """Stands in for a fitted model inside score(): passes each predict call through and keeps its output."""

    _METHODS = ("predict", "predict_proba", "decision_function")

    def __init__(self, model: Any):
        from mlexp.evaluation.metrics import decides_by_threshold

        self.outputs: Dict[str, np.ndarray] = {}
        self.thresholded = decides_by_threshold(model)  # labels from predict(), not the most probable class
        for name in self._METHODS:
            if hasattr(model, name):  # Pipeline exposes predict_proba only when its last step has it
                setattr(self, name, self._recording(name, getattr(model, name)))

    def _recording(self, name: str, method: Any) -> Any:
        def call(X: Any) -> np.ndarray:
            self.outputs[name] = np.asarray(method(X))
            return self.outputs[name]

        return call

    def predictions(self, y_true: np.ndarray, fold: int, task: str, n_classes: Optional[int],
                    index: Optional[np.ndarray] = None) -> Predictions:
        folds = np.full(len(y_true), fold)
        index = np.arange(len(y_true)) if index is None else np.asarray(index)
        if task == "regression":
            return Predictions(y_true, self.outputs["predict"], folds, index=index)
        proba = self.outputs.get("predict_proba")
        if proba is not None and n_classes is not None and proba.shape[1] == n_classes:
            labels = self.outputs["predict"] if self.thresholded else np.argmax(proba, axis=1)
            return Predictions(y_true, labels, folds, proba, "proba", index=index)
        predicted = self.outputs.get("predict")
        if predicted is None:  # score() took the labels from the probabilities (n_classes unknown)
            predicted = np.argmax(proba, axis=1)
        decision = self.outputs.get("decision_function")
        return Predictions(y_true, predicted, folds, decision, "decision" if decision is not None else None,
                           index=index)


def _capped(rows: np.ndarray, cap: int, seed: int) -> np.ndarray:
    if len(rows) <= cap:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=cap, replace=False))


def _concatenate(parts: List[Predictions]) -> Optional[Predictions]:
    if not parts:
        return None
    with_scores = all(p.scores is not None for p in parts) and len({p.scores_kind for p in parts}) == 1
    return Predictions(
        y_true=np.concatenate([p.y_true for p in parts]),
        y_pred=np.concatenate([p.y_pred for p in parts]),
        fold=np.concatenate([p.fold for p in parts]),
        scores=np.concatenate([p.scores for p in parts]) if with_scores else None,
        scores_kind=parts[0].scores_kind if with_scores else None,
        index=np.concatenate([p.index for p in parts]),
    )


def _rows(weights: Optional[np.ndarray], rows: np.ndarray) -> Optional[np.ndarray]:
    return None if weights is None else np.asarray(weights)[rows]


def _fit(model: Any, X: pd.DataFrame, y: np.ndarray, weights: Optional[np.ndarray] = None) -> None:
    """Fit; sample weights travel by scikit-learn's metadata routing to the steps that requested them."""
    import sklearn
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        if weights is None:
            model.fit(X, y)
        else:
            with sklearn.config_context(enable_metadata_routing=True):
                model.fit(X, y, sample_weight=weights)
    except InvalidParameterError as err:
        raise MlexpError(f"invalid parameter: {err} Fix the override (e.g. model.<param>=...).") from err
    except ValueError as err:
        log.debug("fit failed", exc_info=True)
        raise fit_error(err, model) from err


def _pruned(step: int) -> Exception:
    import optuna

    return optuna.TrialPruned(f"pruned at step {step}")
