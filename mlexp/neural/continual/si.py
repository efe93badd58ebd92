"""Synaptic intelligence: each weight's importance is its contribution to the loss decrease along the training path."""

from typing import Any, Dict, List, Optional

import torch

from mlexp.errors import MlexpError
from mlexp.neural.continual.loop import Plugin, Trainer, trainable

__all__ = ["SI"]


class SI(Plugin):
    """SI (Zenke et al., 2017): ``omega += path / (delta^2 + eps)`` after each experience, penalty ``c * sum omega (w - w*)^2``.

    ``path`` sums ``-grad * step`` over every optimizer step of the experience and ``delta`` is
    how far the weight moved during it, so SI needs to watch the earlier training: it cannot
    protect what a saved run learnt before (``incremental.from``).

    Args:
        si_lambda: strength ``c`` of the penalty.
        eps: damping ``xi`` that keeps the importance finite for weights that barely moved.
    """

    name = "si"
    watches_training = True

    def __init__(self, si_lambda: float = 1.0, eps: float = 1e-3):
        if si_lambda < 0 or eps <= 0:
            raise MlexpError(f"continual.strategy: si_lambda={si_lambda!r} must be >= 0 and eps={eps!r} > 0.")
        self.si_lambda, self.eps = float(si_lambda), float(eps)
        self.omega: Optional[List[torch.Tensor]] = None
        self.anchor: Optional[List[torch.Tensor]] = None
        self.path: List[torch.Tensor] = []
        self.start: List[torch.Tensor] = []
        self.previous: List[torch.Tensor] = []
        self.protected = 0  # experiences whose importance is in omega

    def before_experience(self, trainer: Trainer) -> None:
        params = trainable(trainer.module)
        if self.omega is None:
            self.omega = [torch.zeros_like(p) for p in params]
        self.path = [torch.zeros_like(p) for p in params]
        self.start = [p.detach().clone() for p in params]

    def before_step(self, trainer: Trainer) -> None:
        self.previous = [p.detach().clone() for p in trainable(trainer.module)]

    def after_step(self, trainer: Trainer) -> None:
        for path, p, before in zip(self.path, trainable(trainer.module), self.previous):
            if p.grad is not None:
                path -= p.grad.detach() * (p.detach() - before)

    def penalty(self, trainer: Trainer) -> Optional[torch.Tensor]:
        if self.anchor is None:
            return None
        params = trainable(trainer.module)
        return self.si_lambda * sum((w * (p - a) ** 2).sum() for p, a, w in zip(params, self.anchor, self.omega))

    def after_experience(self, trainer: Trainer) -> None:
        if not self.path:  # an experience this plugin did not watch (a saved run's training)
            raise MlexpError("continual=si needs to watch the training of every earlier experience, so it cannot "
                             "protect what a saved run learnt (incremental.from). Use continual=ewc, which needs "
                             "only that run's data, or continual=lwf, which needs none.")
        params = trainable(trainer.module)
        for omega, path, p, start in zip(self.omega, self.path, params, self.start):
            omega += torch.relu(path) / ((p.detach() - start) ** 2 + self.eps)
        self.anchor = [p.detach().clone() for p in params]
        self.path = []
        self.protected += 1

    def summary(self) -> Dict[str, Any]:
        if self.omega is None:
            return {}
        return {"experiences_protected": self.protected,
                "omega_mean": float(torch.cat([w.flatten() for w in self.omega]).mean())}
