"""The nets' epoch callbacks: the objective on the validation slice, the reporter and progress bar, early stopping."""

import numpy as np

from mlexp.neural import _skorch  # noqa: F401  (first: skorch without its torch_geometric probe)
from skorch.callbacks import Callback, EarlyStopping

__all__ = ["ObjectiveScorer", "EpochReport", "StopEarly", "StopTraining"]


class StopTraining(Exception):
    """Early stopping's signal to end the fit loop.

    skorch's own EarlyStopping raises KeyboardInterrupt for this, which is also what Ctrl-C
    raises: the nets would then have to swallow both (as skorch does). With a signal of its own,
    a real KeyboardInterrupt always propagates out of fit.
    """


class StopEarly(EarlyStopping):
    """skorch's EarlyStopping, signalling the stop with StopTraining instead of KeyboardInterrupt."""

    def on_epoch_end(self, net, **kwargs):
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            if self.misses_ != self.patience:  # not ours: Ctrl-C arrived during the check
                raise
            raise StopTraining(f"{self.monitor} has not improved in {self.patience} epochs") from None


class ObjectiveScorer:
    """EpochScoring's scorer: the run's objective on the validation slice, as mlexp.evaluation.metrics scores it.

    Only the one metric is computed, and the common ones (ROC AUC, accuracy, log loss, RMSE,
    MAE, R2) in plain numpy: scikit-learn's input checks cost ~10 ms a call, a third of a small
    fit's time when paid every epoch (tests check the values against scikit-learn's). Averaging
    follows mlexp.evaluation.metrics.score. A class rather than a closure, so that a fitted net
    pickles. ``y`` holds class indices (the nets encode labels before training).
    """

    def __init__(self, metric: str, task: str):
        self.metric = metric
        self.task = task

    def __call__(self, net, X, y) -> float:
        metric = self.metric
        if self.task == "regression":
            y, predicted = net.unscale_target(np.asarray(y)), net.predict(X)
            error = predicted - y
            if metric in ("rmse", "mae"):
                return float(np.sqrt(np.mean(error ** 2)) if metric == "rmse" else np.mean(np.abs(error)))
            return _r2(y, error)
        y, proba = np.asarray(y).astype(int).reshape(-1), net.predict_proba(X)
        labels = np.arange(proba.shape[1])
        binary, predicted = len(labels) == 2, proba.argmax(axis=1)
        if metric == "accuracy":
            return float(np.mean(predicted == y))
        if metric == "log_loss":
            return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0))))
        if metric in ("precision", "recall", "f1"):
            from sklearn import metrics as m

            return getattr(m, f"{metric}_score")(y, predicted, labels=None if binary else labels,
                                                 average="binary" if binary else "macro", zero_division=0)
        present = len(np.unique(y))
        if present < 2 or (not binary and present < len(labels)):
            return float("nan")  # ROC AUC is undefined when the slice lacks classes
        if binary:
            return roc_auc(y == 1, proba[:, 1])
        return float(np.mean([roc_auc(y == k, proba[:, k]) for k in labels]))  # one-vs-rest, macro


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U); tied scores share their mean rank, as in the curve."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse.reshape(-1)]
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _r2(y: np.ndarray, error: np.ndarray) -> float:
    spread, residual = np.sum((y - y.mean()) ** 2), np.sum(error ** 2)
    if spread == 0:  # a constant target: scikit-learn's r2_score gives 1 for a perfect fit, else 0
        return 1.0 if residual == 0 else 0.0
    return float(1.0 - residual / spread)


class EpochReport(Callback):
    """Send train loss, validation loss and the objective metric to the active mlexp reporter each epoch,
    and show an epoch progress bar on a terminal."""

    def __init__(self, metric: str):
        self.metric = metric

    def on_train_begin(self, net, **kwargs):
        from mlexp.reporting.progress import progress
        from mlexp.reporting.reporter import active_reporter

        _, fold = active_reporter()
        where = "final fit" if fold is None else f"fold {fold}"
        self.bar_ = progress(total=net.max_epochs, desc=f"{where} epochs", unit="epoch")

    def on_train_end(self, net, **kwargs):
        self._close_bar()

    def on_epoch_end(self, net, **kwargs):
        from mlexp.reporting.reporter import active_reporter

        row = net.history[-1]
        bar = getattr(self, "bar_", None)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: round(float(row[k]), 4) for k in ("train_loss", "valid_loss") if k in row})
        reporter, fold = active_reporter()
        if reporter is None:
            return
        values = {key: float(row[key]) for key in ("train_loss", "valid_loss", self.metric) if key in row}
        reporter.report_epoch(fold, int(row["epoch"]), values)
        if reporter.should_prune():
            import optuna

            self._close_bar()
            raise optuna.TrialPruned(f"pruned at fold {fold}, epoch {row['epoch']}")

    def _close_bar(self) -> None:
        bar = getattr(self, "bar_", None)
        if bar is not None:
            bar.close()
            self.bar_ = None

    def __getstate__(self):  # a progress bar holds a terminal stream: never pickled with a fitted net
        return {**self.__dict__, "bar_": None}
