"""The nets' training loop: skorch's epoch and step without per-batch history, conversions or GPU syncs.

Mixed into mlexp's nets (mlexp.neural._net) ahead of skorch's NeuralNet, whose methods of the
same names it replaces; on a CUDA device the batches are index slices of tensors already there.
"""

import torch

from mlexp.neural import _skorch  # noqa: F401  (first: skorch without its torch_geometric probe)
from mlexp.neural._batches import TensorBatches
from mlexp.neural._callbacks import StopTraining
from skorch.callbacks import Callback, EpochScoring
from skorch.utils import TeeGenerator

__all__ = ["TrainingLoop"]

_BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_grad_computed")


class TrainingLoop:
    """skorch's fit loop for tabular tensors (parameters ``precision``, ``noise_std``, ``l1`` come from the net)."""

    def train_loop(self, X, y, **fit_params) -> None:
        """skorch's partial_fit loop, except that a KeyboardInterrupt (Ctrl-C) is not swallowed."""
        self.notify("on_train_begin", X=X, y=y)
        try:
            self.fit_loop(X, y, **fit_params)
        except StopTraining:
            pass
        self.notify("on_train_end", X=X, y=y)

    def get_iterator(self, dataset, training=False):
        iterator = self.iterator_train if training else self.iterator_valid
        if iterator is not TensorBatches:
            return super().get_iterator(dataset, training=training)
        kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
        size = kwargs.pop("batch_size", self.batch_size)
        kwargs.setdefault("device", self.device)
        if training and getattr(self, "_ranks", None):
            kwargs["rank"], kwargs["world"] = self._ranks
        return iterator(dataset, batch_size=len(dataset) if size == -1 else size, **kwargs)

    # --- the epoch: one pass over device batches, losses summed on the device ---------------------

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """skorch's epoch without per-batch history: the loss stays on the device until the epoch ends.

        skorch records every batch's loss with ``.item()`` (a GPU sync per batch) and its size in
        the history; here only the batch hooks that some callback defines are called, and the
        epoch records ``<prefix>_loss`` (mean over rows), ``<prefix>_batch_count`` and
        ``<prefix>_loss_best``.
        """
        if iterator is None:
            return
        begin = self.batch_listeners_["on_batch_begin"]
        end = self.training_batch_end_ if training else self.batch_listeners_["on_batch_end"]
        shared = training and getattr(self, "_ranks", None) and isinstance(iterator, TensorBatches)
        total, rows, count = None, 0, 0
        for batch in iterator:
            if begin:
                self.notify("on_batch_begin", batch=batch, training=training)
            if shared:  # data-parallel: this rank's share of the global batch scales its loss
                self._share = iterator.share
            step = step_fn(batch, **fit_params)
            n = batch[0].shape[0]
            weighted = step["loss"].detach().float() * n
            total = weighted if total is None else total.add_(weighted)
            rows, count = rows + n, count + 1
            if end:
                self.notify("on_batch_end", batch=batch, training=training, **step)
        if getattr(self, "_ranks", None):
            from mlexp.neural._distributed import all_ranks_sum

            total, rows = all_ranks_sum(total, rows)
        loss = float(total) / rows if rows else float("nan")
        key = f"{prefix}_loss"
        best = all(loss < row[key] for row in list.__iter__(self.history) if key in row)  # before this epoch's
        self.history.record(key, loss)
        self.history.record(f"{prefix}_batch_count", count)
        self.history.record(f"{key}_best", best)

    def train_step(self, batch, **fit_params):
        """skorch's train_step: one optimizer step through a closure (LBFGS-safe), without per-step objects."""
        step = {}

        def closure():
            self._zero_grad_optimizer()
            result = self.train_step_single(batch, **fit_params)
            step.setdefault("loss", result["loss"])
            step.setdefault("y_pred", result["y_pred"])
            if self.batch_listeners_["on_grad_computed"]:
                self.notify("on_grad_computed", named_parameters=TeeGenerator(self.get_all_learnable_params()),
                            batch=batch, training=True)
            return result["loss"]

        self._step_optimizer(closure)
        return step

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = batch
        if self.noise_std:
            Xi = Xi + self.noise_std * torch.randn_like(Xi)
        y_pred = self.infer(Xi, **fit_params)
        if Xi.shape[0]:
            loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        else:  # a data-parallel rank with no row in a short last batch: zero gradients, same collectives
            loss = y_pred.sum() * 0.0
        share = getattr(self, "_share", 1.0)
        (loss * share if share != 1.0 else loss).backward()
        return {"loss": loss, "y_pred": y_pred}

    def infer(self, x, **fit_params):
        if self.precision == "bf16":
            device = torch.device(self.device or "cpu").type
            with torch.autocast(device_type=device, dtype=torch.bfloat16):
                return self._forward(x, fit_params).float()
        return self._forward(x, fit_params)

    def _forward(self, x, fit_params):
        if isinstance(x, torch.Tensor) and not fit_params:  # a batch of TensorBatches: skip skorch's conversions
            return self.module_(x if self.device is None else x.to(self.device))
        return super().infer(x, **fit_params)

    def initialize_callbacks(self):
        super().initialize_callbacks()
        # Batch hooks run thousands of times an epoch: keep only the callbacks that define them.
        self.batch_listeners_ = {
            hook: [cb for _, cb in self.callbacks_ if getattr(type(cb), hook) is not getattr(Callback, hook)]
            for hook in _BATCH_HOOKS
        }
        # EpochScoring of validation data keeps validation batches' predictions only (skorch returns at
        # once on training batches): it is not called for training batches at all.
        self.training_batch_end_ = [cb for cb in self.batch_listeners_["on_batch_end"]
                                    if not (isinstance(cb, EpochScoring) and not cb.on_train)]
        return self

    def notify(self, method_name, **cb_kwargs):
        if method_name not in _BATCH_HOOKS:
            return super().notify(method_name, **cb_kwargs)
        getattr(self, method_name)(self, **cb_kwargs)
        listeners = self.batch_listeners_[method_name]
        if method_name == "on_batch_end" and cb_kwargs.get("training"):
            listeners = self.training_batch_end_
        for cb in listeners:
            getattr(cb, method_name)(self, **cb_kwargs)

    def _set_training(self, training=True):
        # skorch sets train/eval mode on every batch; walking the module tree each time costs
        # several percent of an epoch on small tabular batches, so only switch on a change.
        if self.module_.training != training or self.criterion_.training != training:
            super()._set_training(training)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        if (isinstance(y_true, torch.Tensor) and y_true.device == y_pred.device
                and not isinstance(self.criterion_, torch.nn.NLLLoss)):
            loss = self.criterion_(y_pred, y_true)  # skorch's get_loss minus its per-batch conversions
        else:
            loss = super().get_loss(y_pred, y_true, X=X, training=training)
        if training and self.l1:
            weights = [p for name, p in self.module_.named_parameters() if name.endswith("weight")]
            loss = loss + self.l1 * sum(w.abs().sum() for w in weights)
        return loss
