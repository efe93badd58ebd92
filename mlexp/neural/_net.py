"""skorch nets for tabular rows: float32 tensors, seeded shuffling, L1 and noise, early stopping, per-epoch reports."""

import logging
import math
from typing import Any

import numpy as np
import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback, EarlyStopping, EpochScoring, EpochTimer, PassthroughScoring
from skorch.dataset import Dataset
from skorch.utils import is_dataset
from torch.utils.data import Subset

from mlexp.errors import MlexpError

__all__ = ["TorchClassifier", "TorchRegressor", "TensorBatches"]

log = logging.getLogger("mlexp")

_BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_grad_computed")


class TensorBatches:
    """Mini-batches sliced from whole tensors: one indexing operation per batch, not one per row.

    skorch calls it as its iterator (``iterator(dataset, batch_size=..., shuffle=...)``). The
    order comes from torch's global generator, which the net seeds before each fit, so a seed
    gives the same batches every run.
    """

    def __init__(self, dataset: Any, batch_size: int = 32, shuffle: bool = False):
        self.X, self.y = _tensors(dataset)
        self.batch_size = max(1, int(batch_size))
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        n, size = len(self.X), self.batch_size
        if size >= n:  # full batch (optimizer=gd): no shuffling needed
            yield self.X, self.y
            return
        order = torch.randperm(n) if self.shuffle else None
        for start in range(0, n, size):
            if order is None:
                yield self.X[start:start + size], None if self.y is None else self.y[start:start + size]
            else:
                index = order[start:start + size]
                yield self.X[index], None if self.y is None else self.y[index]


def _tensors(dataset: Any):
    if isinstance(dataset, Subset):
        X, y = _tensors(dataset.dataset)
        index = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)
        return X[index], None if y is None else y[index]
    return dataset.X, dataset.y


class _EpochReport(Callback):
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


def _objective_scorer(metric: str, task: str):
    """EpochScoring's scorer: the run's objective metric on the validation slice, as mlexp.evaluation.metrics scores it.

    Only the one metric is computed (scoring all of them each epoch costs as much as the
    optimizer steps of a small epoch); averaging follows mlexp.evaluation.metrics.score.
    """

    def scorer(net, X, y):
        from sklearn import metrics as m

        if task == "regression":
            y, predicted = net.unscale_target(np.asarray(y)), net.predict(X)
            if metric == "rmse":
                return math.sqrt(m.mean_squared_error(y, predicted))
            return m.mean_absolute_error(y, predicted) if metric == "mae" else m.r2_score(y, predicted)
        y, proba = np.asarray(y).astype(int), net.predict_proba(X)
        labels = np.arange(proba.shape[1])
        binary, predicted = len(labels) == 2, proba.argmax(axis=1)
        if metric == "accuracy":
            return m.accuracy_score(y, predicted)
        if metric in ("precision", "recall", "f1"):
            return getattr(m, f"{metric}_score")(y, predicted, labels=None if binary else labels,
                                                 average="binary" if binary else "macro", zero_division=0)
        if metric == "log_loss":
            return m.log_loss(y, np.clip(proba, 1e-15, 1.0), labels=labels)
        present = len(np.unique(y))
        if present < 2 or (not binary and present < len(labels)):
            return float("nan")  # ROC AUC is undefined when the slice lacks classes
        if binary:
            return m.roc_auc_score(y, proba[:, 1])
        return m.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels)

    return scorer


class _TabularNet:
    """What mlexp adds to skorch's nets; mixed into the classifier and the regressor below.

    Extra parameters: ``l1`` (L1 penalty on the weights, added to the training loss),
    ``noise_std`` (Gaussian noise added to training inputs: augmentation), ``early_stopping``,
    ``patience``, ``min_delta``, ``objective`` (metric reported per epoch), ``random_state``
    (seeds torch before each fit), ``n_jobs`` (torch threads).
    """

    task = "classification"

    def _init_extra(self, l1, noise_std, early_stopping, patience, min_delta, objective, random_state, n_jobs):
        self.l1 = l1
        self.noise_std = noise_std
        self.early_stopping = early_stopping
        self.patience = patience
        self.min_delta = min_delta
        self.objective = objective
        self.random_state = random_state
        self.n_jobs = n_jobs

    @property
    def _default_callbacks(self):
        metric = self.objective or ("roc_auc" if self.task == "classification" else "rmse")
        from mlexp.evaluation.metrics import LOWER_IS_BETTER

        callbacks = [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            (metric, EpochScoring(_objective_scorer(metric, self.task), name=metric,
                                  lower_is_better=metric in LOWER_IS_BETTER, use_caching=True)),
            ("report", _EpochReport(metric)),
        ]
        if self.early_stopping and self.train_split is not None:
            callbacks.append(("early_stopping", EarlyStopping(
                monitor="valid_loss", patience=self.patience, threshold=self.min_delta,
                threshold_mode="abs", load_best=True, sink=log.debug,
            )))
        return callbacks

    def get_dataset(self, X, y=None):
        if is_dataset(X):
            return X
        return Dataset(_features(X), None if y is None else self._target(y))

    def _prepare_fit(self, X, y):
        X = _features(X)
        y = self._target(np.asarray(y))
        n_train = len(X)
        split = getattr(self.train_split, "cv", None)
        if isinstance(split, float):
            n_train -= math.ceil(split * len(X))
        if self.batch_size != -1 and self.batch_size > n_train:
            raise MlexpError(
                f"optimizer.batch_size={self.batch_size} is larger than the {n_train} training rows of this fit "
                f"(the training fold{' minus the validation slice' if split else ''}). Lower optimizer.batch_size, "
                "or use optimizer=gd for one batch of the whole fold."
            )
        if self.random_state is not None:
            torch.manual_seed(int(self.random_state))
        if self.n_jobs:
            torch.set_num_threads(int(self.n_jobs))
        return X, y

    def initialize_callbacks(self):
        super().initialize_callbacks()
        # Batch hooks run thousands of times an epoch: keep only the callbacks that define them.
        self.batch_listeners_ = {
            hook: [cb for _, cb in self.callbacks_ if getattr(type(cb), hook) is not getattr(Callback, hook)]
            for hook in _BATCH_HOOKS
        }
        return self

    def notify(self, method_name, **cb_kwargs):
        if method_name not in _BATCH_HOOKS:
            return super().notify(method_name, **cb_kwargs)
        getattr(self, method_name)(self, **cb_kwargs)
        for cb in self.batch_listeners_[method_name]:
            getattr(cb, method_name)(self, **cb_kwargs)

    def _set_training(self, training=True):
        # skorch sets train/eval mode on every batch; walking the module tree each time costs
        # several percent of an epoch on small tabular batches, so only switch on a change.
        if self.module_.training != training or self.criterion_.training != training:
            super()._set_training(training)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        if training and self.l1:
            weights = [p for name, p in self.module_.named_parameters() if name.endswith("weight")]
            loss = loss + self.l1 * sum(w.abs().sum() for w in weights)
        return loss

    def train_step_single(self, batch, **fit_params):
        if self.noise_std:
            Xi, yi = batch
            batch = (Xi + self.noise_std * torch.randn_like(Xi), yi)
        return super().train_step_single(batch, **fit_params)


class TorchClassifier(_TabularNet, NeuralNetClassifier):
    """A skorch classifier on logits: cross-entropy loss, softmax probabilities, classes 0..k-1."""

    task = "classification"

    def __init__(self, module, *args, criterion=torch.nn.CrossEntropyLoss, l1=0.0, noise_std=0.0,
                 early_stopping=True, patience=10, min_delta=1e-4, objective=None, random_state=None,
                 n_jobs=None, **kwargs):
        super().__init__(module, *args, criterion=criterion, **kwargs)
        self._init_extra(l1, noise_std, early_stopping, patience, min_delta, objective, random_state, n_jobs)

    @staticmethod
    def _target(y):
        return None if y is None else torch.as_tensor(np.asarray(y).astype(np.int64))

    def fit(self, X, y, **fit_params):
        X, y = self._prepare_fit(X, y)
        n_outputs = max(2, int(y.max()) + 1)
        self.set_params(module__n_features=X.shape[1], module__n_outputs=n_outputs)
        return super().fit(X, y.numpy(), **fit_params)


class TorchRegressor(_TabularNet, NeuralNetRegressor):
    """A skorch regressor trained on the standardized target (MSE); predictions come back in target units."""

    task = "regression"

    def __init__(self, module, *args, criterion=torch.nn.MSELoss, l1=0.0, noise_std=0.0,
                 early_stopping=True, patience=10, min_delta=1e-4, objective=None, random_state=None,
                 n_jobs=None, **kwargs):
        super().__init__(module, *args, criterion=criterion, **kwargs)
        self._init_extra(l1, noise_std, early_stopping, patience, min_delta, objective, random_state, n_jobs)

    @staticmethod
    def _target(y):
        return None if y is None else torch.as_tensor(np.asarray(y, dtype=np.float32).reshape(-1, 1))

    def fit(self, X, y, **fit_params):
        X, y = self._prepare_fit(X, y)
        # Standardized so that losses and step sizes do not depend on the target's units.
        self.y_mean_ = float(y.mean())
        self.y_scale_ = float(y.std()) or 1.0
        self.set_params(module__n_features=X.shape[1], module__n_outputs=1)
        return super().fit(X, (y - self.y_mean_) / self.y_scale_, **fit_params)

    def unscale_target(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64).reshape(-1) * self.y_scale_ + self.y_mean_

    def predict(self, X):
        return self.unscale_target(super().predict(X))


def _features(X) -> torch.Tensor:
    if isinstance(X, torch.Tensor):
        return X.float()
    if hasattr(X, "toarray"):  # sparse output of the column transforms (e.g. text counts)
        X = X.toarray()
    return torch.as_tensor(np.asarray(X, dtype=np.float32))
