"""One training loop for a torch module, with plugins hooked around each experience and step (Avalanche-style).

Every continual strategy is a :class:`Plugin` on this loop: EWC, SI and LwF add a penalty to
the loss, replay adds remembered rows to each batch, A-GEM projects the gradient, and they
update their state after each experience. Pruning fine-tunes and distillation train with the
same loop (a plain loss, no plugin).
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

__all__ = ["Plugin", "Trainer", "trainable"]

Batch = Tuple[torch.Tensor, torch.Tensor]


class Plugin:
    """Base of a strategy: every hook does nothing; a strategy overrides the hooks it needs.

    Hooks get the :class:`Trainer`: ``trainer.module``, ``trainer.X`` / ``trainer.y`` (the
    experience's training rows), ``trainer.experience`` (its number), ``trainer.batch``
    (the current batch after ``adapt_batch``) and ``trainer.criterion``.
    """

    name = "naive"

    def check(self, rows_per_task: Sequence[int], task: str) -> None:
        """Refuse settings that cannot work on this data (training rows of each task; the learning task)."""

    def before_experience(self, trainer: "Trainer") -> None:
        pass

    def before_step(self, trainer: "Trainer") -> None:
        pass

    def adapt_batch(self, trainer: "Trainer", X: torch.Tensor, y: torch.Tensor) -> Batch:
        return X, y

    def penalty(self, trainer: "Trainer") -> Optional[torch.Tensor]:
        return None

    def after_backward(self, trainer: "Trainer") -> None:
        pass

    def after_step(self, trainer: "Trainer") -> None:
        pass

    def after_experience(self, trainer: "Trainer") -> None:
        pass

    def summary(self) -> Dict[str, Any]:
        """What the strategy holds after training (buffer sizes...), for continual.json."""
        return {}


class Trainer:
    """Train ``module`` on one experience at a time: shuffled mini-batches, a fresh optimizer per experience.

    Args:
        module: the torch module (trained in place).
        criterion: loss of (outputs, targets), e.g. ``torch.nn.CrossEntropyLoss()``.
        optimizer: skorch-style settings from ``mlexp.neural._build.optimizer_settings``
            (``optimizer`` class, ``lr``, ``batch_size`` with -1 for the whole experience, ``optimizer__*``).
        epochs: passes over each experience's rows.
        seed: batches are drawn from a generator seeded with ``seed + experience``.
        plugins: the strategy's plugins, called in order.
        task: "classification" (outputs are logits) or "regression".
    """

    def __init__(self, module: torch.nn.Module, criterion: Callable[..., torch.Tensor], optimizer: Dict[str, Any],
                 epochs: int, seed: int = 0, plugins: Sequence[Plugin] = (), task: str = "classification"):
        self.module = module
        self.task = task
        self.criterion = criterion
        self.optimizer_settings = optimizer
        self.epochs = int(epochs)
        self.seed = int(seed)
        self.plugins = list(plugins)
        self.experience = -1
        self.X: Optional[torch.Tensor] = None
        self.y: Optional[torch.Tensor] = None
        self.batch: Optional[Batch] = None
        self.outputs: Optional[torch.Tensor] = None  # the module's outputs on the current batch
        self.optimizer: Optional[torch.optim.Optimizer] = None

    @property
    def batch_size(self) -> int:
        size = int(self.optimizer_settings.get("batch_size", 32))
        return len(self.X) if size == -1 else size

    def make_optimizer(self) -> torch.optim.Optimizer:
        settings = self.optimizer_settings
        extra = {k[len("optimizer__"):]: v for k, v in settings.items() if k.startswith("optimizer__")}
        return settings["optimizer"](trainable(self.module), lr=settings["lr"], **extra)

    def fit(self, X: torch.Tensor, y: torch.Tensor, experience: int = 0) -> List[float]:
        """Train on one experience; returns the mean training loss of each epoch."""
        self.X, self.y, self.experience = X, y, experience
        for plugin in self.plugins:
            plugin.before_experience(self)
        self.optimizer = self.make_optimizer()
        generator = torch.Generator().manual_seed(self.seed + experience)
        n, size = len(X), self.batch_size
        losses = []
        self.module.train()
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=generator)
            total = 0.0
            for start in range(0, n, size):
                index = order[start:start + size]
                total += self._step(X[index], y[index]) * len(index)
            losses.append(total / max(n, 1))
        self.module.eval()
        for plugin in self.plugins:
            plugin.after_experience(self)
        return losses

    def _step(self, X: torch.Tensor, y: torch.Tensor) -> float:
        for plugin in self.plugins:
            plugin.before_step(self)
        for plugin in self.plugins:
            X, y = plugin.adapt_batch(self, X, y)
        self.batch = (X, y)
        self.optimizer.zero_grad()
        self.outputs = self.module(X)
        loss = self.criterion(self.outputs, y)
        value = float(loss.detach())
        for plugin in self.plugins:
            extra = plugin.penalty(self)
            if extra is not None:
                loss = loss + extra
        loss.backward()
        for plugin in self.plugins:
            plugin.after_backward(self)
        self.optimizer.step()
        for plugin in self.plugins:
            plugin.after_step(self)
        return value



def trainable(module: torch.nn.Module) -> List[torch.nn.Parameter]:
    """The parameters an optimizer updates, in a fixed order (strategies keep one tensor per parameter)."""
    return [p for p in module.parameters() if p.requires_grad]
