"""Elastic weight consolidation: a quadratic penalty, weighted by the diagonal Fisher information, anchors weights that mattered before."""

from typing import Any, Dict, List, Optional, Tuple

import torch

from mlexp.errors import MlexpError
from mlexp.neural.continual.loop import Plugin, Trainer, trainable

__all__ = ["EWC", "diagonal_fisher"]


class EWC(Plugin):
    """EWC (Kirkpatrick et al., 2017) with a diagonal empirical Fisher.

    Args:
        ewc_lambda: strength of the penalty ``lambda/2 * sum F (w - w*)^2``.
        mode: ``separate`` keeps one anchor and Fisher per past experience; ``online``
            (Schwarz et al., 2018) keeps one, ``F = decay_factor * F_old + F_new``, anchored at the latest weights.
        decay_factor: online mode's weight of the older Fisher (1: no decay).
        fisher_rows: rows of each experience the Fisher is estimated on (null: all of them).
    """

    name = "ewc"

    def __init__(self, ewc_lambda: float = 1000.0, mode: str = "online", decay_factor: float = 1.0,
                 fisher_rows: Optional[int] = 1000):
        if mode not in ("online", "separate"):
            raise MlexpError(f"continual.strategy.mode={mode!r}: EWC's mode is online or separate.")
        if ewc_lambda < 0 or not 0 <= decay_factor <= 1:
            raise MlexpError(f"continual.strategy: ewc_lambda={ewc_lambda!r} must be >= 0 and "
                             f"decay_factor={decay_factor!r} in [0, 1].")
        if fisher_rows is not None and int(fisher_rows) < 1:
            raise MlexpError(f"continual.strategy.fisher_rows={fisher_rows!r}: use a positive number of rows, or null for all.")
        self.ewc_lambda, self.mode, self.decay_factor = float(ewc_lambda), mode, float(decay_factor)
        self.fisher_rows = fisher_rows
        self.anchors: List[Tuple[List[torch.Tensor], List[torch.Tensor]]] = []

    def penalty(self, trainer: Trainer) -> Optional[torch.Tensor]:
        if not self.anchors:
            return None
        params = trainable(trainer.module)
        total = sum((fisher * (p - anchor) ** 2).sum()
                    for anchors, fishers in self.anchors for p, anchor, fisher in zip(params, anchors, fishers))
        return 0.5 * self.ewc_lambda * total

    def after_experience(self, trainer: Trainer) -> None:
        X, y = trainer.X, trainer.y
        if self.fisher_rows is not None and len(X) > self.fisher_rows:
            generator = torch.Generator().manual_seed(trainer.seed + trainer.experience)
            index = torch.randperm(len(X), generator=generator)[: int(self.fisher_rows)]
            X, y = X[index], y[index]
        fisher = diagonal_fisher(trainer.module, trainer.criterion, X, y)
        anchor = [p.detach().clone() for p in trainable(trainer.module)]
        if self.mode == "online" and self.anchors:
            fisher = [self.decay_factor * old + new for old, new in zip(self.anchors[0][1], fisher)]
            self.anchors = []
        self.anchors.append((anchor, fisher))

    def summary(self) -> Dict[str, Any]:
        return {"anchors": len(self.anchors),
                "fisher_mean": [float(torch.cat([f.flatten() for f in fishers]).mean()) for _, fishers in self.anchors]}


def diagonal_fisher(module: torch.nn.Module, criterion: Any, X: torch.Tensor, y: torch.Tensor,
                    chunk: int = 256) -> List[torch.Tensor]:
    """Mean squared per-row gradient of the loss for each trainable parameter (the empirical diagonal Fisher)."""
    from torch.func import functional_call, grad, vmap

    names = [n for n, p in module.named_parameters() if p.requires_grad]
    params = {n: p.detach() for n, p in module.named_parameters() if p.requires_grad}
    was_training = module.training
    module.eval()

    def row_loss(weights: Dict[str, torch.Tensor], x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return criterion(functional_call(module, weights, (x.unsqueeze(0),)), target.unsqueeze(0))

    per_row = vmap(grad(row_loss), in_dims=(None, 0, 0))
    sums = {n: torch.zeros_like(p) for n, p in params.items()}
    for start in range(0, len(X), chunk):
        grads = per_row(params, X[start:start + chunk], y[start:start + chunk])
        for n in names:
            sums[n] += (grads[n] ** 2).sum(0)
    module.train(was_training)
    return [sums[n] / max(len(X), 1) for n in names]
