"""Experience replay: a reservoir buffer of at most k rows from earlier experiences, mixed into every training batch."""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mlexp.errors import MlexpError
from mlexp.neural.continual.loop import Batch, Plugin, Trainer

__all__ = ["Replay", "Rehearsal"]


class Rehearsal(Plugin):
    """Base of the strategies that keep rows: each step appends a batch drawn from memory to the current batch."""

    size_key = "buffer_size"

    def __init__(self, size: int, batch_size: Optional[int]):
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise MlexpError(f"continual.strategy.{self.size_key}={size!r}: use a positive number of rows.")
        if batch_size is not None and int(batch_size) < 1:
            raise MlexpError(f"continual.strategy.batch_size={batch_size!r}: use a positive number of rows, or null "
                             "for the optimizer's batch size.")
        self.size, self.replay_batch = size, batch_size
        self.sizes: List[int] = []  # rows held after each experience

    def check(self, rows_per_task: Sequence[int], task: str) -> None:
        total = int(sum(rows_per_task))
        if self.size > total:
            raise MlexpError(
                f"continual.strategy.{self.size_key}={self.size} is larger than the data: all tasks together have "
                f"{total} training rows, so the memory would hold every row (joint training, not continual "
                f"learning). Use a {self.size_key} below {total}, e.g. {max(1, total // 10)}."
            )

    def memory(self) -> Optional[Batch]:
        raise NotImplementedError

    def adapt_batch(self, trainer: Trainer, X: torch.Tensor, y: torch.Tensor) -> Batch:
        held = self.memory()
        if held is None:
            return X, y
        generator = getattr(self, "generator_", None)
        if generator is None:
            self.generator_ = generator = torch.Generator().manual_seed(trainer.seed)
        n = min(len(held[0]), self.replay_batch or len(X))
        index = torch.randperm(len(held[0]), generator=generator)[:n]
        return torch.cat([X, held[0][index]]), torch.cat([y, held[1][index]])

    def summary(self) -> Dict[str, Any]:
        return {self.size_key: self.size, "rows_after_each_experience": self.sizes,
                "max_rows": max(self.sizes, default=0)}


class Replay(Rehearsal):
    """Experience replay with a reservoir buffer: every row seen so far has the same chance k/n of being held.

    Args:
        buffer_size: k, the most rows the buffer ever holds.
        batch_size: replayed rows added to each batch (null: as many as the batch has).
    """

    name = "replay"

    def __init__(self, buffer_size: int = 200, batch_size: Optional[int] = None):
        super().__init__(buffer_size, batch_size)
        self.X: Optional[torch.Tensor] = None
        self.y: Optional[torch.Tensor] = None
        self.seen = 0

    def memory(self) -> Optional[Batch]:
        return None if self.X is None else (self.X, self.y)

    def after_experience(self, trainer: Trainer) -> None:
        """Reservoir sampling (Vitter's algorithm R) over the experience's rows, in order."""
        rng = np.random.default_rng(trainer.seed + 7919 * (trainer.experience + 1))
        X, y = trainer.X, trainer.y
        held = 0 if self.X is None else len(self.X)
        slots, rows = reservoir_slots(self.seen, held, self.size, len(X), rng)
        length = min(self.size, held + len(X))
        new_X, new_y = X.new_empty((length, *X.shape[1:])), y.new_empty((length, *y.shape[1:]))
        if held:
            new_X[:held], new_y[:held] = self.X, self.y
        for slot, row in zip(slots, rows):  # in stream order: a later row overwrites an earlier one's slot
            new_X[slot], new_y[slot] = X[row], y[row]
        self.X, self.y = new_X, new_y
        self.seen += len(X)
        self.sizes.append(len(self.X))


def reservoir_slots(seen: int, held: int, size: int, n: int, rng: np.random.Generator) -> Tuple[List[int], List[int]]:
    """Where each of ``n`` new rows goes in a reservoir of ``size`` that has seen ``seen`` rows and holds ``held``.

    Returns (slots, rows), in stream order: row ``rows[i]`` is written to slot ``slots[i]``. Rows
    fill the free slots first; after that, the row seen as number ``t`` replaces a random slot
    with probability ``size / t``.
    """
    free = max(0, min(size - held, n))
    slots, rows = list(range(held, held + free)), list(range(free))
    counts = seen + np.arange(free, n) + 1  # rows seen, this one included
    draws = rng.integers(0, counts) if len(counts) else np.empty(0, dtype=int)
    kept = np.flatnonzero(draws < size)
    slots += draws[kept].tolist()
    rows += (kept + free).tolist()
    return slots, rows
