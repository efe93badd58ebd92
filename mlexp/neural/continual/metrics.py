"""Continual-learning scores from the accuracy matrix: average accuracy, backward and forward transfer, forgetting."""

import math
from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ["transfer_metrics"]


def transfer_metrics(matrix: Sequence[Sequence[float]], random_init: Sequence[float]) -> Dict[str, Optional[float]]:
    """Scores of a T x T matrix ``R`` (row i: after training on task i; column j: task j), as the papers define them.

    - average accuracy ``ACC = mean_j R[T-1, j]``;
    - backward transfer ``BWT = mean_{j<T-1} R[T-1, j] - R[j, j]`` (Lopez-Paz and Ranzato, 2017):
      negative when training on later tasks lowered the score on earlier ones (forgetting);
    - forward transfer ``FWT = mean_{j>0} R[j-1, j] - b_j``, ``b_j`` the score of the randomly
      initialised network on task j (same paper);
    - forgetting ``F = mean_{j<T-1} max_{i<T-1} R[i, j] - R[T-1, j]`` (Chaudhry et al., 2018).

    NaN cells (a task without test rows) are left out of the means; with one task BWT, FWT and
    forgetting are None.
    """
    R = np.asarray(matrix, dtype=float)
    b = np.asarray(random_init, dtype=float)
    T = len(R)
    out: Dict[str, Optional[float]] = {"average": _mean(R[-1]), "backward_transfer": None,
                                       "forward_transfer": None, "forgetting": None}
    if T > 1:
        out["backward_transfer"] = _mean([R[-1, j] - R[j, j] for j in range(T - 1)])
        out["forward_transfer"] = _mean([R[j - 1, j] - b[j] for j in range(1, T)])
        out["forgetting"] = _mean([np.nanmax(R[: T - 1, j]) - R[-1, j] if not np.all(np.isnan(R[: T - 1, j]))
                                   else math.nan for j in range(T - 1)])
    return out


def _mean(values) -> Optional[float]:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else None
