"""Where the rows go: the test split set aside once (by class, group or time), the splitter for the rest."""

import logging
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np
from omegaconf import DictConfig, OmegaConf
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import type_of_target

from mlexp.errors import MlexpError

__all__ = ["split_test", "HoldOut", "Splits", "plan_splits", "build_splitter", "data_needs", "SPLITTER_KEYS"]

log = logging.getLogger("mlexp")

# Keys of a splitter option that are mlexp's, not the splitter class's.
SPLITTER_KEYS = ("groups", "time_column")
# Stratifying splitters and their plain counterparts, used when the target is a quantity (regression).
UNSTRATIFIED = {"StratifiedKFold": "sklearn.model_selection.KFold",
                "StratifiedGroupKFold": "sklearn.model_selection.GroupKFold"}


@dataclass
class Splits:
    """Row positions of the development and test rows, the splitter for the development rows, and their groups."""

    dev: np.ndarray
    test: np.ndarray
    splitter: Any
    groups: Optional[np.ndarray] = None  # the development rows' groups (for group splitters), else None


def data_needs(splitter_cfg: DictConfig) -> Dict[str, Optional[str]]:
    """What the splitter needs from the data loader: ``groups`` (a column kept aside), ``order_by`` (sort by time)."""
    grouped = "Group" in str(splitter_cfg.get("_target_", "")).rsplit(".", 1)[-1]
    if grouped and not splitter_cfg.get("groups"):
        raise MlexpError(
            f"splitter {splitter_cfg.get('_target_')} keeps groups of rows together: name the column that holds "
            "each row's group, e.g. splitter.groups=patient_id."
        )
    time_ordered = "time_column" in splitter_cfg.keys() or str(splitter_cfg.get("_target_", "")).endswith("TimeSeriesSplit")
    return {"groups": splitter_cfg.get("groups"),
            "order_by": (splitter_cfg.get("time_column") or "datetime") if time_ordered else None}


def plan_splits(splitter_cfg: DictConfig, dataset: Any, task: str, test_size: float, seed: int) -> Splits:
    """The test rows (the data set's own, the latest rows, whole groups, or a stratified sample) and the splitter."""
    splitter = build_splitter(splitter_cfg, task)
    y = dataset.target.to_numpy()
    groups = None if dataset.groups is None else dataset.groups.to_numpy()
    if groups is not None and not _takes_groups(splitter):
        raise MlexpError(
            f"splitter.groups={dataset.groups.name!r} is set, but {type(splitter).__name__} ignores groups. "
            "Use splitter=group_kfold or splitter=stratified_group_kfold."
        )
    if dataset.fixed_test is not None:  # the data set's own test split (data.split_column)
        dev, test = np.flatnonzero(~dataset.fixed_test), np.flatnonzero(dataset.fixed_test)
    elif data_needs(splitter_cfg)["order_by"]:  # rows are in time order: the test split is the latest rows
        n_test = int(round(test_size * len(y)))
        dev, test = np.arange(len(y) - n_test), np.arange(len(y) - n_test, len(y))
    elif groups is not None:
        dev, test = split_test_groups(y, groups, task, test_size, seed)
    else:
        dev, test = split_test(y, task, test_size, seed)
    return Splits(dev, test, splitter, None if groups is None else groups[dev])


def build_splitter(splitter_cfg: DictConfig, task: str) -> Any:
    """The splitter class the option names, without mlexp's keys; stratifying splitters fall back to their
    plain form for a regression target (there are no classes to stratify by)."""
    from hydra.utils import instantiate

    node = OmegaConf.to_container(splitter_cfg, resolve=True)
    for key in SPLITTER_KEYS:
        node.pop(key, None)
    target = str(node.get("_target_", ""))
    plain = UNSTRATIFIED.get(target.rsplit(".", 1)[-1])
    if plain and task != "classification":
        log.info("splitter: %s stratifies by class; the target is a quantity, so the folds are %s", target, plain)
        node["_target_"] = target = plain
    log.info("splitter: %s", target)
    try:
        return instantiate(node)
    except Exception as err:
        raise MlexpError(f"splitter ({target}) could not be built: {getattr(err, '__cause__', None) or err}") from err


def split_test(y, task: str, test_size: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices of the development rows and the test rows (stratified for classification)."""
    index = np.arange(len(y))
    _check_test_size(test_size)
    if test_size == 0.0:
        return index, index[:0]
    stratify = y if task == "classification" and np.bincount(np.asarray(y)).min() >= 2 else None
    try:
        dev, test = train_test_split(index, test_size=test_size, shuffle=True, random_state=seed, stratify=stratify)
    except ValueError as err:
        raise MlexpError(f"cannot set aside a test split of {test_size}: {err}. Adjust test_size.") from err
    return np.sort(dev), np.sort(test)


def split_test_groups(y, groups: np.ndarray, task: str, test_size: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Development and test rows with every group wholly on one side (classes balanced where groups allow)."""
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    index = np.arange(len(y))
    _check_test_size(test_size)
    if test_size == 0.0:
        return index, index[:0]
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise MlexpError("splitter.groups has a single group; a test split of whole groups needs two or more.")
    folds = int(round(1 / test_size))
    if task == "classification" and 2 <= folds <= n_groups:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        dev, test = next(splitter.split(index, y, groups))
    else:
        dev, test = next(GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed).split(index, y, groups))
    return np.sort(dev), np.sort(test)


def _check_test_size(test_size: float) -> None:
    if not 0.0 <= test_size < 1.0:
        raise MlexpError(f"test_size must be in [0, 1); got {test_size}.")


def _takes_groups(splitter: Any) -> bool:
    import inspect

    split = getattr(splitter, "split", None)
    return split is not None and "groups" in inspect.signature(split).parameters and "Group" in type(splitter).__name__


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
