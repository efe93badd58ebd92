"""skorch nets for tabular rows: scikit-learn's estimator contract (labels, checks, tags), threads, data-parallel fits."""

import logging
from numbers import Integral, Real
from typing import Any, Optional

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from mlexp.neural import _skorch  # noqa: F401  (first: skorch without its torch_geometric probe)
from mlexp.neural._batches import TensorBatches, features_tensor
from mlexp.neural._callbacks import EpochReport, ObjectiveScorer, StopEarly
from mlexp.neural._loop import TrainingLoop
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import EpochScoring, EpochTimer
from skorch.dataset import Dataset
from skorch.utils import is_dataset

__all__ = ["TorchClassifier", "TorchRegressor", "TensorBatches", "EXPECTED_FAILED_CHECKS", "training_threads"]

log = logging.getLogger("mlexp")

PRECISIONS = ("fp32", "bf16")
# Intra-op threads pay off only when one optimizer step has enough work to split: below about
# this many multiply-adds in the widest layer per step (batch rows x inputs x outputs), a second
# thread costs more in synchronisation than it saves (measured on 2 and 16 cores: docs/benchmarks.md,
# "CPU threads"; on 16 cores 8.4M multiply-adds per step ran 0.59x with all threads, 16.8M 1.5-1.7x).
THREADED_WORK = 12_000_000

# scikit-learn checks that cannot apply to a skorch net, with the reason (for parametrize_with_checks).
EXPECTED_FAILED_CHECKS = {
    "check_no_attributes_set_in_init": "skorch's NeuralNet.__init__ sets history_, initialized_ and "
                                       "virtual_params_ itself: part of skorch's design, not of mlexp's nets.",
}


def training_threads(n_jobs: Optional[int], module: torch.nn.Module, batch_rows: int, processes: int = 1) -> int:
    """torch threads for a fit: ``n_jobs`` when set; else 1 for small steps, all of torch's threads for wide ones.

    "All" is torch's thread count when the fit starts (mlexp sets it from the instance profile),
    shared among ``processes`` data-parallel processes.
    """
    if n_jobs:
        return int(n_jobs)
    available = max(1, torch.get_num_threads() // max(1, processes))
    widest = max((m.in_features * m.out_features for m in module.modules() if isinstance(m, torch.nn.Linear)),
                 default=0)
    return available if batch_rows * widest >= THREADED_WORK else 1


class _TabularNet(TrainingLoop):
    """What mlexp adds to skorch's nets; mixed into the classifier and the regressor below.

    Extra parameters: ``l1`` (L1 penalty on the weights, added to the training loss),
    ``noise_std`` (Gaussian noise added to training inputs: augmentation), ``early_stopping``,
    ``patience``, ``min_delta``, ``objective`` (metric reported per epoch), ``random_state``
    (seeds torch before each fit), ``n_jobs`` (torch threads; None: by the work per step, see
    ``training_threads``), ``precision`` ("fp32", or "bf16" autocast), ``processes``
    (data-parallel processes, DistributedDataParallel).
    """

    task = "classification"
    # mlexp's own parameters, checked at fit as scikit-learn checks its estimators' (skorch checks its own).
    _parameter_constraints = {
        "l1": [Interval(Real, 0, None, closed="left")],
        "noise_std": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "min_delta": [Interval(Real, 0, None, closed="left")],
        "objective": [str, None],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
        "n_jobs": [Interval(Integral, 1, None, closed="left"), None],
        "precision": [StrOptions(set(PRECISIONS))],
        "processes": [Interval(Integral, 1, None, closed="left")],
        "rules": [dict, None],
        "rule_histograms": ["boolean"],
    }

    def _init_extra(self, l1, noise_std, early_stopping, patience, min_delta, objective, random_state, n_jobs,
                    precision, processes, rules, rule_histograms):
        self.l1 = l1
        self.noise_std = noise_std
        self.early_stopping = early_stopping
        self.patience = patience
        self.min_delta = min_delta
        self.objective = objective
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.precision = precision
        self.processes = processes
        self.rules = rules
        self.rule_histograms = rule_histograms

    @property
    def _default_callbacks(self):
        from mlexp.evaluation.metrics import LOWER_IS_BETTER

        # Never raises, whatever the parameters hold (scikit-learn's contract); fit checks them.
        metric = self.objective if isinstance(self.objective, str) and self.objective else (
            "roc_auc" if self.task == "classification" else "rmse")

        callbacks = [
            ("epoch_timer", EpochTimer()),
            (metric, EpochScoring(ObjectiveScorer(metric, self.task), name=metric,
                                  lower_is_better=metric in LOWER_IS_BETTER, use_caching=True)),
            ("report", EpochReport(metric)),
        ]
        if isinstance(self.early_stopping, (bool, np.bool_)) and self.early_stopping and self.train_split is not None:
            callbacks.append(("early_stopping", StopEarly(
                monitor="valid_loss", patience=self.patience, threshold=self.min_delta,
                threshold_mode="abs", load_best=True, sink=log.debug,
            )))
        return callbacks

    def _yield_callbacks(self):
        yield from super()._yield_callbacks()
        # The training rules come last, after the user's callbacks (an initializer among them acts first), and
        # are made afresh from the `rules` parameter at each initialization: fitting never mutates a parameter.
        if isinstance(self.rules, dict) and self.rules:
            from mlexp.neural.rules import TrainingRules

            yield "training_rules", TrainingRules(rules=self.rules, histograms=bool(self.rule_histograms)), True

    def _get_param_names(self):
        # skorch takes every attribute not ending in "_" for a parameter, its private bookkeeping
        # (_params_to_validate, _modules, ...) included; scikit-learn's contract is public names only.
        return [name for name in super()._get_param_names() if not name.startswith("_")]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # made dense: text features reach the net as sparse counts
        return tags

    # --- fitting: inputs checked as scikit-learn checks them, then skorch's loop --------------------

    def fit(self, X, y, **fit_params):
        X, y = self._training_data(X, y, reset=True)
        fresh = not self.warm_start or not self.initialized_
        if fresh:
            self._seed()
            self.initialize()
        return self._train(X, y, fresh, **fit_params)

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        first = not self.initialized_
        X, y = self._training_data(X, y, reset=first, classes=classes if first else None)
        if first:
            self._seed()
            self.initialize()
        return self._train(X, y, first, **fit_params)

    def _inputs(self, X):
        """Rows to predict on, checked as scikit-learn checks them (fitted, same number of features, finite)."""
        self.check_is_fitted()
        if is_dataset(X):
            return X
        return features_tensor(validate_data(self, X, reset=False, accept_sparse=True, dtype=np.float32))

    def _seed(self) -> None:
        if self.random_state is not None:
            torch.manual_seed(int(self.random_state))

    def _train(self, X, y, fresh: bool, **fit_params):
        validate_parameter_constraints(self._parameter_constraints,
                                       {key: getattr(self, key) for key in self._parameter_constraints},
                                       caller_name=type(self).__name__)
        if self.processes > 1 and not fresh:
            raise ValueError(f"processes={self.processes}: data-parallel training starts from a fresh net; "
                             "continuing a fit (partial_fit, warm_start) runs in one process (processes=1).")
        rows = len(X) if self.batch_size == -1 else min(len(X), self.batch_size)
        previous = torch.get_num_threads()
        torch.set_num_threads(training_threads(self.n_jobs, self.module_, rows, self.processes))
        try:
            if self.processes > 1:
                from mlexp.neural._distributed import fit_data_parallel

                fit_data_parallel(self, X, y, **fit_params)
            else:
                self.train_loop(X, y, **fit_params)
        finally:
            torch.set_num_threads(previous)
        return self

    def check_data(self, X, y):
        pass  # checked in fit; skorch's version would re-infer classes from the encoded target

    def get_dataset(self, X, y=None):
        if is_dataset(X):
            return X
        if y is not None and not isinstance(y, torch.Tensor):  # skorch's API called directly: class indices or values
            y = torch.as_tensor(np.asarray(y, dtype=np.int64 if self.task == "classification" else np.float32))
            y = y if self.task == "classification" else y.reshape(-1, 1)
        return Dataset(features_tensor(X), y)

    def get_params_for(self, prefix):
        params = super().get_params_for(prefix)
        if prefix == "module" and hasattr(self, "n_features_in_"):  # the module's shape comes from the data
            params = {**params, "n_features": self.n_features_in_, "n_outputs": self._n_outputs()}
        return params

class TorchClassifier(_TabularNet, NeuralNetClassifier):
    """A skorch classifier on logits: cross-entropy loss, softmax probabilities, any class labels."""

    task = "classification"

    def __init__(self, module, *args, criterion=torch.nn.CrossEntropyLoss, l1=0.0, noise_std=0.0,
                 early_stopping=True, patience=10, min_delta=1e-4, objective=None, random_state=None,
                 n_jobs=None, precision="fp32", processes=1, rules=None, rule_histograms=False, **kwargs):
        super().__init__(module, *args, criterion=criterion, **kwargs)
        self._init_extra(l1, noise_std, early_stopping, patience, min_delta, objective, random_state, n_jobs,
                         precision, processes, rules, rule_histograms)

    def _training_data(self, X, y, reset: bool, classes: Any = None):
        X, y = validate_data(self, X, y, reset=reset, accept_sparse=True, dtype=np.float32)
        check_classification_targets(y)
        if reset:
            self.classes_inferred_ = np.unique(y if classes is None else classes)
        known = self.classes_
        if len(known) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes to train; got 1 class ({known[0]!r}).")
        index = np.searchsorted(known, y)
        unknown = (index >= len(known)) | (known[np.minimum(index, len(known) - 1)] != y)
        if unknown.any():
            raise ValueError(f"y has labels the classifier was not fitted on: {sorted(set(y[unknown]))}")
        return features_tensor(X), torch.as_tensor(index, dtype=torch.int64)

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def predict_proba(self, X):
        return super().predict_proba(self._inputs(X))

    def predict(self, X):
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]


class TorchRegressor(_TabularNet, NeuralNetRegressor):
    """A skorch regressor trained on the standardized target (MSE); predictions come back in target units."""

    task = "regression"

    def __init__(self, module, *args, criterion=torch.nn.MSELoss, l1=0.0, noise_std=0.0,
                 early_stopping=True, patience=10, min_delta=1e-4, objective=None, random_state=None,
                 n_jobs=None, precision="fp32", processes=1, rules=None, rule_histograms=False, **kwargs):
        super().__init__(module, *args, criterion=criterion, **kwargs)
        self._init_extra(l1, noise_std, early_stopping, patience, min_delta, objective, random_state, n_jobs,
                         precision, processes, rules, rule_histograms)

    def _training_data(self, X, y, reset: bool, classes: Any = None):
        X, y = validate_data(self, X, y, reset=reset, accept_sparse=True, dtype=np.float32, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        if reset:  # standardized, so that losses and step sizes do not depend on the target's units
            self.y_mean_ = float(y.mean())
            self.y_scale_ = float(y.std()) or 1.0
        scaled = (y - self.y_mean_) / self.y_scale_
        return features_tensor(X), torch.as_tensor(scaled, dtype=torch.float32).reshape(-1, 1)

    def _n_outputs(self) -> int:
        return 1

    def unscale_target(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64).reshape(-1) * self.y_scale_ + self.y_mean_

    def predict(self, X):
        return self.unscale_target(self.forward(self._inputs(X), training=False, device="cpu").numpy())

    @property
    def predict_proba(self):  # skorch gives every net one; a regressor has none (scikit-learn checks for it)
        raise AttributeError(f"{type(self).__name__} predicts values: it has no predict_proba")
