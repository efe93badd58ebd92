"""Learning without forgetting: the network distils its own earlier outputs on the new rows (no old data kept)."""

import copy
from typing import Any, Dict, Optional, Set

import torch
import torch.nn.functional as F

from mlexp.errors import MlexpError
from mlexp.neural.continual.loop import Plugin, Trainer

__all__ = ["LwF"]


class LwF(Plugin):
    """LwF (Li and Hoiem, 2017): ``alpha * T^2 * KL(old(x)/T || new(x)/T)`` on the classes seen before.

    After each experience a frozen copy of the network is kept; while training on the next,
    its softened outputs on the current batch are the targets of a distillation term.
    Regression: ``alpha * MSE(new(x), old(x))``.

    Args:
        alpha: weight of the distillation term.
        temperature: softens both distributions (T > 1 spreads probability over more classes).
    """

    name = "lwf"

    def __init__(self, alpha: float = 1.0, temperature: float = 2.0):
        if alpha < 0 or temperature <= 0:
            raise MlexpError(f"continual.strategy: alpha={alpha!r} must be >= 0 and temperature={temperature!r} > 0.")
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.previous: Optional[torch.nn.Module] = None
        self.seen: Set[int] = set()

    def penalty(self, trainer: Trainer) -> Optional[torch.Tensor]:
        if self.previous is None or self.alpha == 0:
            return None
        X = trainer.batch[0]
        with torch.no_grad():
            old = self.previous(X)
        new = trainer.outputs
        if trainer.task == "regression":
            return self.alpha * F.mse_loss(new, old)
        columns = sorted(self.seen)
        T = self.temperature
        old_p = F.softmax(old[:, columns] / T, dim=1)
        new_log_p = F.log_softmax(new[:, columns] / T, dim=1)
        return self.alpha * T * T * F.kl_div(new_log_p, old_p, reduction="batchmean")

    def after_experience(self, trainer: Trainer) -> None:
        self.previous = copy.deepcopy(trainer.module).eval()
        for p in self.previous.parameters():
            p.requires_grad_(False)
        if trainer.task == "classification":
            self.seen |= {int(c) for c in torch.unique(trainer.y)}

    def summary(self) -> Dict[str, Any]:
        return {"classes_distilled": sorted(self.seen)}
