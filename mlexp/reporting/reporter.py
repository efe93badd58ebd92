"""The Reporter: where per-fold (and, for neural models, per-epoch) progress goes."""

import logging
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

__all__ = ["Reporter", "active_reporter", "reporting_fold"]

log = logging.getLogger("mlexp")


class Reporter:
    """Receives intermediate objective values; logs them by default.

    ``report`` receives each cross-validation fold's scores, ``report_epoch`` each epoch of a
    PyTorch model. Tuning replaces it with one that forwards to an Optuna trial and can ask
    for the trial to be pruned (`should_prune`).
    """

    def __init__(self, metric: str, direction: str):
        self.metric = metric
        self.direction = direction
        self.history: Dict[int, float] = {}
        self.epochs: List[Dict[str, float]] = []

    def report(self, step: int, value: float, scores: Optional[Dict[str, Optional[float]]] = None) -> None:
        """The objective (and every score) of cross-validation fold ``step``, once it is scored."""
        self.history[step] = value
        shown = ", ".join(f"{k}={v:.4f}" for k, v in (scores or {}).items() if v is not None)
        log.info("fold %d: %s=%.4f%s", step, self.metric, value, f" ({shown})" if shown else "")

    def report_epoch(self, fold: int, epoch: int, values: Dict[str, float]) -> None:
        """Per-epoch values of a PyTorch model (train_loss, valid_loss, the objective metric)."""
        self.epochs.append({"fold": fold, "epoch": epoch, **values})
        log.debug("fold %d epoch %d: %s", fold, epoch, values)

    def should_prune(self) -> bool:
        return False


# The reporter of the fit in progress. Estimators reach it through active_reporter() rather
# than holding it as a parameter, because scikit-learn's clone() deep-copies parameters.
_active: Optional[Reporter] = None
_active_fold: Optional[int] = None


@contextmanager
def reporting_fold(reporter: Reporter, fold: Optional[int]) -> Iterator[None]:
    """Make ``reporter`` the active one while fold ``fold`` is fitted (None: the final fit)."""
    global _active, _active_fold
    previous = (_active, _active_fold)
    _active, _active_fold = reporter, fold
    try:
        yield
    finally:
        _active, _active_fold = previous


def active_reporter() -> tuple:
    """(reporter, fold) of the fit in progress, or (None, None) outside mlexp's evaluation."""
    return _active, _active_fold
