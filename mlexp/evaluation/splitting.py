"""Set the test split aside once, and the hold-out splitter scikit-learn lacks."""

from typing import Iterator, Optional, Tuple

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import type_of_target

from mlexp.errors import MlexpError

__all__ = ["split_test", "HoldOut"]


def split_test(y, task: str, test_size: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices of the development rows and the test rows (stratified for classification)."""
    index = np.arange(len(y))
    if not 0.0 <= test_size < 1.0:
        raise MlexpError(f"test_size must be in [0, 1); got {test_size}.")
    if test_size == 0.0:
        return index, index[:0]
    stratify = y if task == "classification" and np.bincount(np.asarray(y)).min() >= 2 else None
    try:
        dev, test = train_test_split(index, test_size=test_size, shuffle=True, random_state=seed, stratify=stratify)
    except ValueError as err:
        raise MlexpError(f"cannot set aside a test split of {test_size}: {err}. Adjust test_size.") from err
    return np.sort(dev), np.sort(test)


class HoldOut:
    """One train/validation split, sized as fractions of the *whole* data set.

    mlexp sets ``test_size`` aside first; HoldOut then takes ``validation_size`` of the
    whole (``validation_size / (1 - test_size)`` of what remains), so 0.1/0.1 gives the
    classic 80/10/10. Classification targets are stratified.
    """

    def __init__(
        self,
        validation_size: float = 0.1,
        test_size: float = 0.1,
        shuffle: bool = True,
        random_state: Optional[int] = None,
    ):
        self.validation_size = validation_size
        self.test_size = test_size
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return 1

    def split(self, X, y=None, groups=None) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        if not 0.0 < self.validation_size < 1.0 - self.test_size:
            raise MlexpError(
                f"splitter.validation_size={self.validation_size} must be in (0, 1 - test_size={self.test_size})."
            )
        index = np.arange(len(X))
        fraction = self.validation_size / (1.0 - self.test_size)
        stratify = None
        if y is not None and self.shuffle and type_of_target(y) in ("binary", "multiclass"):
            stratify = y if np.unique(y, return_counts=True)[1].min() >= 2 else None
        train, validation = train_test_split(
            index, test_size=fraction, shuffle=self.shuffle, random_state=self.random_state, stratify=stratify
        )
        yield np.sort(train), np.sort(validation)
