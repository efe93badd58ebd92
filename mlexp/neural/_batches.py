"""The rows a net trains on: the validation slice, and mini-batches as index slices of tensors kept on the device."""

import logging
import math
from typing import Any, Iterator, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Subset

from mlexp.neural import _skorch  # noqa: F401  (first: skorch without its torch_geometric probe)
from skorch.dataset import ValidSplit

__all__ = ["TensorBatches", "ValidationSlice", "dataset_tensors", "features_tensor"]

log = logging.getLogger("mlexp")


class ValidationSlice(ValidSplit):
    """skorch's ValidSplit; where a stratified slice cannot hold every class, a plain seeded slice instead.

    A small training fold with many classes (or a class of one row) cannot be split with one
    row of each class on both sides; stratification is then dropped for that fit, not the fit.
    """

    def __call__(self, dataset, y=None, groups=None):
        try:
            return super().__call__(dataset, y, groups)
        except ValueError as err:
            if not self.stratified or y is None:
                raise
            log.debug("validation slice not stratified (%s)", err)
            return ValidSplit(self.cv, stratified=False, random_state=self.random_state)(dataset, y, groups)

Batch = Tuple[torch.Tensor, Optional[torch.Tensor]]


class TensorBatches:
    """skorch's iterator (``iterator(dataset, batch_size=..., shuffle=...)``) over whole tensors.

    The fold is moved to ``device`` once, when skorch creates the iterator at the start of a fit;
    each batch is then one indexing operation on that device: no per-row collation, no per-batch
    host-to-device copy (on CUDA the shuffled order is drawn on the GPU too). The order comes from
    torch's generator, which the net seeds before each fit, so a seed gives the same batches.

    Data-parallel training: with ``world`` processes, rank ``rank`` takes rows ``rank::world`` of
    every global batch, so the ranks together see exactly the batches one process would see.
    ``share`` is then this rank's rows times ``world`` over the global batch's rows: scaling the
    rank's mean loss by it makes the averaged gradient equal one process's, also for a last
    batch that does not split evenly.
    """

    def __init__(self, dataset: Any, batch_size: int = 32, shuffle: bool = False, device: Any = "cpu",
                 rank: int = 0, world: int = 1):
        X, y = dataset_tensors(dataset)
        self.X = X.to(device)
        self.y = None if y is None else y.to(device)
        self.batch_size = max(1, int(batch_size))
        self.shuffle = shuffle
        self.rank, self.world = rank, world
        self.share = 1.0

    def __len__(self) -> int:
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n, size = len(self.X), self.batch_size
        if size >= n and self.world == 1:  # one batch of the whole fold (optimizer=gd): no shuffling needed
            yield self.X, self.y
            return
        order = torch.randperm(n, device=self.X.device) if self.shuffle else None
        for start in range(0, n, size):
            stop = min(start + size, n)
            if order is None and self.world == 1:
                yield self.X[start:stop], None if self.y is None else self.y[start:stop]
                continue
            index = order[start:stop] if order is not None else torch.arange(start, stop, device=self.X.device)
            if self.world > 1:
                index = index[self.rank::self.world]
                self.share = len(index) * self.world / (stop - start)
            yield self.X[index], None if self.y is None else self.y[index]


def dataset_tensors(dataset: Any) -> Batch:
    """(X, y) tensors of a skorch Dataset, or of a Subset of one (the train/validation split)."""
    if isinstance(dataset, Subset):
        X, y = dataset_tensors(dataset.dataset)
        index = torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)
        return X[index], None if y is None else y[index]
    return dataset.X, dataset.y


def features_tensor(X: Any) -> torch.Tensor:
    """float32 rows as a tensor (sparse input, e.g. text counts, made dense)."""
    if isinstance(X, torch.Tensor):
        return X.float()
    if hasattr(X, "toarray"):
        X = X.toarray()
    return torch.as_tensor(np.asarray(X, dtype=np.float32))
