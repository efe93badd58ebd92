"""A-GEM: gradient episodic memory, averaged: a step may not increase the loss on rows kept from earlier experiences."""

from typing import Any, Dict, Optional, Sequence

import torch

from mlexp.errors import MlexpError
from mlexp.neural.continual.loop import Plugin, Trainer, trainable

__all__ = ["AGEM"]


class AGEM(Plugin):
    """A-GEM (Chaudhry et al., 2019): when the gradient points against the memory's gradient, project it.

    Before each step a batch of ``sample_size`` memory rows gives the reference gradient
    ``g_ref``; if ``g . g_ref < 0`` the step uses ``g - (g . g_ref / g_ref . g_ref) g_ref``.

    Args:
        patterns_per_experience: random rows kept from each experience.
        sample_size: memory rows drawn for each reference gradient.
    """

    name = "gem"

    def __init__(self, patterns_per_experience: int = 100, sample_size: int = 64):
        for key, value in (("patterns_per_experience", patterns_per_experience), ("sample_size", sample_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise MlexpError(f"continual.strategy.{key}={value!r}: use a positive number of rows.")
        self.per_experience, self.sample_size = patterns_per_experience, sample_size
        self.X: Optional[torch.Tensor] = None
        self.y: Optional[torch.Tensor] = None
        self.reference: Optional[torch.Tensor] = None
        self.projected = 0
        self.sizes = []

    def check(self, rows_per_task: Sequence[int], task: str) -> None:
        smallest = int(min(rows_per_task))
        if self.per_experience > smallest:
            raise MlexpError(
                f"continual.strategy.patterns_per_experience={self.per_experience} is larger than the data: the "
                f"smallest task has {smallest} training rows. Use at most {smallest} (e.g. {max(1, smallest // 5)})."
            )

    def before_step(self, trainer: Trainer) -> None:
        self.reference = None
        if self.X is None:
            return
        generator = getattr(self, "generator_", None)
        if generator is None:
            self.generator_ = generator = torch.Generator().manual_seed(trainer.seed)
        index = torch.randperm(len(self.X), generator=generator)[: self.sample_size]
        trainer.module.zero_grad()
        trainer.criterion(trainer.module(self.X[index]), self.y[index]).backward()
        self.reference = _flat([p.grad for p in trainable(trainer.module)])
        trainer.module.zero_grad()

    def after_backward(self, trainer: Trainer) -> None:
        if self.reference is None:
            return
        params = trainable(trainer.module)
        gradient = _flat([p.grad for p in params])
        dot = torch.dot(gradient, self.reference)
        if dot < 0:
            gradient = gradient - dot / torch.dot(self.reference, self.reference).clamp_min(1e-12) * self.reference
            self.projected += 1
            start = 0
            for p in params:
                if p.grad is not None:
                    p.grad.copy_(gradient[start:start + p.numel()].view_as(p))
                start += p.numel()

    def after_experience(self, trainer: Trainer) -> None:
        generator = torch.Generator().manual_seed(trainer.seed + 104729 * (trainer.experience + 1))
        index = torch.randperm(len(trainer.X), generator=generator)[: self.per_experience]
        X, y = trainer.X[index], trainer.y[index]
        self.X = X if self.X is None else torch.cat([self.X, X])
        self.y = y if self.y is None else torch.cat([self.y, y])
        self.sizes.append(len(self.X))

    def summary(self) -> Dict[str, Any]:
        return {"patterns_per_experience": self.per_experience, "rows_after_each_experience": self.sizes,
                "projected_steps": self.projected}


def _flat(grads: Sequence[Optional[torch.Tensor]]) -> torch.Tensor:
    return torch.cat([g.flatten() for g in grads if g is not None])
