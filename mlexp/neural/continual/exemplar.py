"""Exemplar replay (iCaRL-style): a class-balanced memory whose rows are chosen by herding, replayed in every batch."""

from typing import Dict, Optional, Sequence

import torch

from mlexp.errors import MlexpError
from mlexp.neural.continual.loop import Batch, Trainer
from mlexp.neural.continual.replay import Rehearsal

__all__ = ["Exemplar", "herding"]


class Exemplar(Rehearsal):
    """Class-balanced exemplars: ``memory_size // classes seen`` rows per class, the most representative first.

    Herding (Welling, 2009; Rebuffi et al., 2017) picks, one at a time, the row that brings the
    mean of the chosen rows' features closest to the class mean; features are the network's
    last hidden layer (the inputs for a linear model), L2-normalised. When a class is seen again
    (domain-incremental tasks), its exemplars are chosen again from old exemplars and new rows.

    Args:
        memory_size: the most rows the memory holds, over all classes.
        selection: ``herding`` or ``random`` (a baseline for herding).
        batch_size: replayed rows added to each batch (null: as many as the batch has).
    """

    name = "exemplar"
    size_key = "memory_size"

    def __init__(self, memory_size: int = 200, selection: str = "herding", batch_size: Optional[int] = None):
        super().__init__(memory_size, batch_size)
        if selection not in ("herding", "random"):
            raise MlexpError(f"continual.strategy.selection={selection!r}: use herding or random.")
        self.selection = selection
        self.classes: Dict[int, torch.Tensor] = {}  # class -> its exemplars, most representative first

    def check(self, rows_per_task: Sequence[int], task: str) -> None:
        if task != "classification":
            raise MlexpError("continual=exemplar keeps a class-balanced memory, so it needs a classification task; "
                             "use continual=replay (a reservoir buffer) for regression.")
        super().check(rows_per_task, task)

    def memory(self) -> Optional[Batch]:
        if not self.classes:
            return None
        X = torch.cat(list(self.classes.values()))
        y = torch.cat([torch.full((len(rows),), label, dtype=torch.long) for label, rows in self.classes.items()])
        return X, y

    def after_experience(self, trainer: Trainer) -> None:
        X, y = trainer.X, trainer.y
        present = sorted(int(c) for c in torch.unique(y))
        quota = self.size // len(set(self.classes) | set(present))
        generator = torch.Generator().manual_seed(trainer.seed + trainer.experience)
        for label in present:
            candidates = X[y == label]
            if label in self.classes:
                candidates = torch.cat([self.classes[label], candidates])
            if self.selection == "herding":
                order = herding(_features(trainer.module, candidates), quota)
            else:
                order = torch.randperm(len(candidates), generator=generator)[:quota]
            self.classes[label] = candidates[order]
        for label in self.classes:  # older classes give up rows to the new ones, least representative first
            self.classes[label] = self.classes[label][:quota]
        self.sizes.append(sum(len(rows) for rows in self.classes.values()))


def herding(features: torch.Tensor, m: int) -> torch.Tensor:
    """Indices of ``m`` rows (or all, if fewer) whose running mean tracks the mean of ``features`` best, in pick order."""
    m = min(m, len(features))
    target = features.mean(0)
    chosen = torch.zeros(len(features), dtype=torch.bool)
    total = torch.zeros_like(target)
    order = []
    for k in range(1, m + 1):
        distance = ((target - (total + features) / k) ** 2).sum(1)
        distance[chosen] = float("inf")
        pick = int(torch.argmin(distance))
        order.append(pick)
        chosen[pick] = True
        total += features[pick]
    return torch.as_tensor(order, dtype=torch.long)


def _features(module: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    hidden = X
    if isinstance(module, torch.nn.Sequential):  # every layer but the output layer
        with torch.no_grad():
            for layer in list(module)[:-1]:
                hidden = layer(hidden)
    return torch.nn.functional.normalize(hidden.flatten(1), dim=1)
