"""Experiences from the data: `continual.tasks` splits rows by a column's values or by spans of time."""

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from mlexp.errors import MlexpError

__all__ = ["Task", "make_tasks", "task_keys"]

log = logging.getLogger("mlexp")

# `every` for date columns: pandas period aliases by their plain names.
PERIODS = {"year": "Y", "quarter": "Q", "month": "M", "week": "W", "day": "D"}


@dataclass
class Task:
    """One experience: its name and row positions (into the data set's rows) for training and for testing."""

    name: str
    train: np.ndarray
    test: np.ndarray


def make_tasks(spec: Optional[Dict[str, Any]], dataset: Any, dev: np.ndarray, test: np.ndarray) -> List[Task]:
    """The experiences, in order. No column: one task of all rows (a plain warm start).

    ``spec`` keys: ``column`` (a feature, or the target for class-incremental tasks), ``values``
    (one list of values per task, or one value per task; null: every value, sorted), ``every``
    (time spans: a number buckets a numeric column, e.g. 10 turns years into decades; year,
    quarter, month, week or day buckets a date column).
    """
    spec = spec or {}
    column = spec.get("column")
    if column is None:
        if spec.get("values") is not None or spec.get("every") is not None:
            raise MlexpError("continual.tasks.values/every need continual.tasks.column: the column whose values "
                             "make the tasks (e.g. continual.tasks.column=target).")
        return [Task("all rows", np.asarray(dev), np.asarray(test))]
    keys = task_keys(dataset, column, spec.get("every"))
    present = sorted(keys.dropna().unique(), key=_order)
    groups = spec.get("values")
    if groups is None:
        groups = [[value] for value in present]
    elif not isinstance(groups, (list, tuple)) or not groups:
        raise MlexpError(f"continual.tasks.values={groups!r}: give a list, one entry per task, e.g. "
                         "[[0,1,2,3,4],[5,6,7,8,9]] (several values per task) or [Professional,Service] (one each).")
    by_text = {str(v): v for v in present}
    tasks, used = [], set()
    for group in groups:
        members = list(group) if isinstance(group, (list, tuple)) else [group]
        unknown = [m for m in members if str(m) not in by_text]
        if unknown:
            shown = ", ".join(str(v) for v in present[:40]) + (", ..." if len(present) > 40 else "")
            raise MlexpError(
                f"continual.tasks.values names {', '.join(map(str, unknown))}, which column {column!r} does not hold"
                f"{' (after bucketing by every=' + str(spec.get('every')) + ')' if spec.get('every') is not None else ''}. "
                f"Its values are: {shown}."
            )
        repeated = [m for m in members if str(m) in used]
        if repeated:
            raise MlexpError(f"continual.tasks.values lists {', '.join(map(str, repeated))} in more than one task; "
                             "each value belongs to one task.")
        used |= {str(m) for m in members}
        mask = keys.astype(str).isin([str(m) for m in members]).to_numpy() & keys.notna().to_numpy()
        name = ",".join(_name(by_text[str(m)], spec.get("every")) for m in members)
        train, held_out = np.asarray(dev)[mask[dev]], np.asarray(test)[mask[test]]
        if len(train) == 0:
            raise MlexpError(f"task {name!r} (continual.tasks) has no training rows; drop it from continual.tasks.values.")
        if len(held_out) == 0:
            log.warning("task %r has no test rows: its column of the accuracy matrix is empty (raise test_size)", name)
        tasks.append(Task(name, train, held_out))
    missing = int(keys.isna().sum())
    if missing:
        log.warning("continual.tasks: %d rows have no value in column %r and belong to no task", missing, column)
    return tasks


def task_keys(dataset: Any, column: str, every: Any) -> pd.Series:
    """The value deciding each row's task: the column (class labels for the target), bucketed by ``every``."""
    if column == dataset.target.name:
        labels = dataset.class_names or sorted(dataset.target.unique())
        values = dataset.target.map(lambda code: labels[int(code)]) if dataset.class_names else dataset.target
    elif column in dataset.features.columns:
        values = dataset.features[column]
    else:
        raise MlexpError(
            f"continual.tasks.column={column!r} is not a column of data '{dataset.name}'. Columns: "
            f"{', '.join(map(str, dataset.features.columns))}, and the target {dataset.target.name!r}."
        )
    if every is None:
        return values
    if pd.api.types.is_datetime64_any_dtype(values) or isinstance(every, str):
        dates = pd.to_datetime(values, errors="coerce")
        if dates.notna().mean() < 0.5:
            raise MlexpError(f"continual.tasks.every={every!r} buckets dates, but column {column!r} holds no dates. "
                             "Use a number (e.g. every=10 on a year column) or leave every unset.")
        alias = PERIODS.get(str(every), str(every))
        try:
            return dates.dt.to_period(alias).astype(str).where(dates.notna())
        except ValueError as err:
            raise MlexpError(f"continual.tasks.every={every!r}: use year, quarter, month, week, day or a pandas "
                             f"period alias ({err}).") from err
    if not pd.api.types.is_numeric_dtype(values):
        raise MlexpError(f"continual.tasks.every={every!r} buckets numbers, but column {column!r} is not numeric.")
    if not every or every <= 0:
        raise MlexpError(f"continual.tasks.every={every!r} must be a positive span (e.g. 10 for decades).")
    start = np.floor(values / every) * every  # each row's bucket, named by where it starts
    return start.map(lambda v: int(v) if float(v).is_integer() else float(v), na_action="ignore")


def _name(value: Any, every: Any) -> str:
    """A task's name: the value, or the span of a numeric bucket (1970-1979 for every=10)."""
    if isinstance(every, (int, float)) and not isinstance(every, bool):
        if float(every).is_integer() and float(value).is_integer():
            return f"{int(value)}-{int(value + every - 1)}"
        return f"[{value:g}, {value + every:g})"
    return str(value)


def _order(value: Any) -> Any:
    """Numbers sort numerically, everything else as text (dates as ISO periods sort in time order)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))
