"""Data-quality statistics in Model Monitor's statistics.json schema, accumulated chunk by chunk in bounded memory.

A ``Profiler`` takes a table in chunks and keeps, per column, counts, running moments, min/max and
a bounded uniform sample (numeric columns) or value counts (string columns). ``statistics()`` gives
Model Monitor's ``statistics.json``: ``inferred_type`` (Integral / Fractional / String),
``numerical_statistics`` (common counts, mean, sum, std_dev, min, max, ``distribution.kll``: ten
equal-width buckets plus a sketch) or ``string_statistics`` (distinct_count, categorical buckets).

The sketch keeps ``SKETCH_K`` quantiles of the column at evenly spaced probabilities, one level
(``data: [[q_1 ... q_k]]``), each item carrying 1/k of the mass: enough to rebuild the baseline's
distribution for the drift distances without the training data.
"""

from typing import Any, Dict, Iterable, List, Optional

import numpy as np
import pandas as pd

__all__ = ["Profiler", "ColumnProfile", "SKETCH_K", "DOMAIN_MAX", "sketch_of", "buckets_of"]

SKETCH_K = 1024  # quantiles kept per numeric column in the sketch
BUCKETS = 10  # Model Monitor materialises the distribution in 10 buckets
DOMAIN_MAX = 256  # string columns with at most this many distinct values get a domain constraint
SAMPLE_ROWS = 100_000  # bounded uniform sample per numeric column (exact below this many rows)
MAX_DISTINCT = 100_000  # value counts stop taking new values past this (distinct_count is then a lower bound)
STRING, INTEGRAL, FRACTIONAL, UNKNOWN = "String", "Integral", "Fractional", "Unknown"


class ColumnProfile:
    """Running statistics of one column. ``as_string`` profiles values as strings (categorical columns)."""

    def __init__(self, name: str, as_string: bool, edges: Optional[np.ndarray] = None, seed: int = 0):
        self.name, self.as_string, self.edges = name, as_string, edges
        self.present = self.missing = self.numeric = self.integral = 0
        self.total = 0.0
        self.mean = self.m2 = 0.0
        self.min, self.max = np.inf, -np.inf
        self.counts: Dict[str, int] = {}
        self.bins = np.zeros(len(edges) + 1, dtype=np.int64) if edges is not None else None
        self._sample = np.empty(0)
        self._keys = np.empty(0)
        self._rng = np.random.default_rng(seed)

    def update(self, column: pd.Series) -> None:
        present = column.notna().to_numpy()
        n_present = int(present.sum())
        self.present += n_present
        self.missing += len(column) - n_present
        values = column[present]
        if self.as_string:
            self._count_strings(_as_text(values))
            return
        numbers = _as_numbers(values)
        finite = numbers[np.isfinite(numbers)]
        self.numeric += len(finite)
        self.integral += int(np.count_nonzero(np.mod(finite, 1) == 0))
        if len(finite) < n_present:  # strings in a numeric column: counted for data_type_check
            self._count_strings(values[~np.isfinite(numbers)].astype(str))
        if not len(finite):
            return
        self._moments(finite)
        if self.bins is not None:
            self.bins += np.bincount(np.searchsorted(self.edges, finite, side="left"), minlength=len(self.bins))
        self._keep_sample(finite)

    def _count_strings(self, values: pd.Series) -> None:
        for value, count in values.value_counts(sort=False).items():
            if value in self.counts or len(self.counts) < MAX_DISTINCT:
                self.counts[value] = self.counts.get(value, 0) + int(count)

    def _moments(self, x: np.ndarray) -> None:
        # Chan et al.'s parallel update: chunks merge without keeping the values.
        n_a, n_b = self.numeric - len(x), len(x)
        mean_b, m2_b = float(x.mean()), float(((x - x.mean()) ** 2).sum())
        delta = mean_b - self.mean
        n = n_a + n_b
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * n_a * n_b / n
        self.total += float(x.sum())
        self.min, self.max = min(self.min, float(x.min())), max(self.max, float(x.max()))

    def _keep_sample(self, x: np.ndarray) -> None:
        # Bottom-k by random key: a uniform sample of all values seen, whatever the chunking.
        keys = self._rng.random(len(x))
        sample, all_keys = np.concatenate([self._sample, x]), np.concatenate([self._keys, keys])
        if len(sample) > SAMPLE_ROWS:
            keep = np.argpartition(all_keys, SAMPLE_ROWS)[:SAMPLE_ROWS]
            sample, all_keys = sample[keep], all_keys[keep]
        self._sample, self._keys = sample, all_keys

    @property
    def inferred_type(self) -> str:
        if self.as_string:
            return STRING
        if not self.present:
            return UNKNOWN
        if self.numeric < self.present:
            return STRING
        return INTEGRAL if self.integral == self.numeric else FRACTIONAL

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.numeric)) if self.numeric else 0.0

    def statistics(self) -> Dict[str, Any]:
        """This column's entry in statistics.json."""
        common = {"num_present": self.present, "num_missing": self.missing}
        kind = self.inferred_type
        if kind in (STRING, UNKNOWN) and (self.as_string or not self.numeric):
            buckets = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
            return {"name": self.name, "inferred_type": kind, "string_statistics": {
                "common": common, "distinct_count": len(self.counts),
                "distribution": {"categorical": {"buckets": [{"value": v, "count": c} for v, c in buckets]}}}}
        numbers = {"common": common, "mean": self.mean if self.numeric else None, "sum": self.total,
                   "std_dev": self.std, "min": _finite(self.min), "max": _finite(self.max),
                   "distribution": {"kll": {"buckets": buckets_of(self._sample, self.min, self.max, self.numeric),
                                            "sketch": {"parameters": {"c": 0.64, "k": float(SKETCH_K)},
                                                       "data": [sketch_of(self._sample)]}}}}
        return {"name": self.name, "inferred_type": kind, "numerical_statistics": numbers}

    def sample(self) -> np.ndarray:
        return self._sample


class Profiler:
    """Statistics of a table fed in chunks: ``update(frame)`` per chunk, then ``statistics()``.

    ``string_columns`` are profiled as strings whatever their dtype (the run's categorical roles, or
    the baseline's String features); ``numeric_columns`` as numbers whatever their dtype (the baseline's
    numeric features: strings in them count against data_type_check); others by their values.
    ``edges`` maps numeric columns to the baseline's bin edges, so the drift distances count every row.
    """

    def __init__(self, string_columns: Iterable[str] = (), numeric_columns: Iterable[str] = (),
                 edges: Optional[Dict[str, np.ndarray]] = None, seed: int = 0):
        self.string_columns = set(string_columns)
        self.numeric_columns = set(numeric_columns)
        self.edges = edges or {}
        self.seed = seed
        self.columns: Dict[str, ColumnProfile] = {}
        self.rows = 0

    def update(self, frame: pd.DataFrame) -> None:
        self.rows += len(frame)
        for i, name in enumerate(frame.columns):
            profile = self.columns.get(name)
            if profile is None:
                as_string = name in self.string_columns or (
                    name not in self.numeric_columns and _stringy(frame[name]))
                profile = self.columns[name] = ColumnProfile(name, as_string, self.edges.get(name), self.seed + i)
                if self.rows > len(frame):  # a column that appears in a later chunk: earlier rows lacked it
                    profile.missing += self.rows - len(frame)
            profile.update(frame[name])
        for name, profile in self.columns.items():
            if name not in frame.columns:
                profile.missing += len(frame)

    def statistics(self) -> Dict[str, Any]:
        return {"version": 0, "dataset": {"item_count": self.rows},
                "features": [p.statistics() for p in self.columns.values()]}


def sketch_of(sample: np.ndarray, k: int = SKETCH_K) -> List[float]:
    """k quantiles at evenly spaced probabilities (fewer when there are fewer values)."""
    if not len(sample):
        return []
    if len(sample) <= k:
        return [float(v) for v in np.sort(sample)]
    return [float(v) for v in np.quantile(sample, (np.arange(k) + 0.5) / k)]


def buckets_of(sample: np.ndarray, low: float, high: float, count: int) -> List[Dict[str, float]]:
    """Ten equal-width buckets between min and max; counts scaled from the sample to all values."""
    if not count or not np.isfinite(low):
        return []
    edges = np.linspace(low, high, BUCKETS + 1)
    hist, _ = np.histogram(sample, bins=edges) if high > low else (np.array([len(sample)] + [0] * (BUCKETS - 1)), None)
    scale = count / max(len(sample), 1)
    return [{"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(round(hist[i] * scale))}
            for i in range(BUCKETS)]


def _as_text(values: pd.Series) -> pd.Series:
    """Values as strings; whole floats as integers, so a code column read with NaNs (1.0) matches one without (1)."""
    if pd.api.types.is_float_dtype(values) and len(values) and bool((values % 1 == 0).all()):
        return values.astype("int64").astype(str)
    return values.astype(str)


def _as_numbers(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float).to_numpy()
    if pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=float)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def _stringy(column: pd.Series) -> bool:
    """Columns profiled as strings when no role says otherwise: text, categories, booleans, dates."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
        return True
    if pd.api.types.is_numeric_dtype(column):
        return False
    present = column.dropna()
    return bool(len(present)) and pd.to_numeric(present, errors="coerce").isna().mean() > 0.5


def _finite(value: float) -> Optional[float]:
    return float(value) if np.isfinite(value) else None
