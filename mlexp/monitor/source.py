"""What the monitor reads: new data in chunks (a CSV / Parquet table or a capture folder) and late labels.

Every chunk becomes a ``Batch``: ``ids`` (event ids), ``times`` (UTC timestamps or None), ``inputs`` (the
columns checked against the baseline), ``outputs`` (captured predictions, or None for a table: the monitor
predicts them) and ``labels`` (ground truth of a table's target column, or None).

Labels (``monitor.labels``) are keyed by event id: a CSV / Parquet table with an ``event_id`` column (or
``monitor.id_column``) and the target column (or ``label``), as ``mode=label`` writes it, or JSON Lines in
Model Monitor's ground-truth format (``{"groundTruthData": {"data": ..., "encoding": "CSV"},
"eventMetadata": {"eventId": ...}}``).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Optional

import pandas as pd

from mlexp.errors import MlexpError

__all__ = ["Batch", "iter_batches", "load_labels", "to_times"]


@dataclass
class Batch:
    ids: pd.Series
    times: Optional[pd.Series]
    inputs: pd.DataFrame
    outputs: Optional[pd.DataFrame]
    labels: Optional[pd.Series]

    def __len__(self) -> int:
        return len(self.inputs)


def iter_batches(path: Path, chunk_rows: int, target: Optional[str], id_column: str,
                 time_column: Optional[str]) -> Iterator[Batch]:
    """Chunks of ``path``: a capture folder (the capture's event ids and inference times) or a table."""
    path = Path(path)
    if path.is_dir():
        from mlexp.monitor.capture import iter_capture

        for chunk in iter_capture(path, chunk_rows):
            yield Batch(chunk.meta["event_id"].astype(str), chunk.meta["inference_time"], chunk.inputs,
                        chunk.outputs, None)
        return
    if not path.is_file():
        raise MlexpError(f"monitor.data {path} does not exist: give a CSV or Parquet table, or a capture folder "
                         "(capture.folder of a predict run or an endpoint).")
    offset = 0
    for frame in _table_chunks(path, chunk_rows):
        if id_column in frame.columns:
            ids = frame.pop(id_column).astype(str)
        else:  # no id column: the row number is the event id labels join on
            ids = pd.Series(range(offset, offset + len(frame)), index=frame.index).astype(str)
        times = None
        if time_column:
            if time_column not in frame.columns:
                raise MlexpError(f"monitor.time_column {time_column!r} is not a column of {path}; columns: "
                                 f"{', '.join(map(str, frame.columns))}.")
            times = to_times(frame.pop(time_column), time_column)
        labels = frame.pop(target) if target and target in frame.columns else None
        offset += len(frame)
        yield Batch(ids.reset_index(drop=True), None if times is None else times.reset_index(drop=True),
                    frame.reset_index(drop=True), None, None if labels is None else labels.reset_index(drop=True))


def to_times(column: pd.Series, name: str) -> pd.Series:
    """UTC timestamps from dates, date strings, or four-digit years (1974 -> 1974-01-01)."""
    if pd.api.types.is_integer_dtype(column) or (pd.api.types.is_float_dtype(column) and column.dropna().mod(1).eq(0).all()):
        years = column.dropna()
        if len(years) and years.between(1000, 9999).all():
            return pd.to_datetime(column.astype("Int64").astype(str), format="%Y", errors="coerce", utc=True)
        raise MlexpError(f"monitor.time_column {name!r} holds numbers ({years.iloc[0] if len(years) else 'none'}...) that "
                         "are not four-digit years: give dates (2024-05-01, 2024-05-01T10:00:00Z) or years.")
    times = pd.to_datetime(column, errors="coerce", utc=True, format="mixed")
    bad = times.isna() & column.notna()
    if bad.any():
        raise MlexpError(f"monitor.time_column {name!r} holds values that are not dates, e.g. "
                         f"{column[bad].iloc[0]!r}: give ISO dates or times (2024-05-01, 2024-05-01T10:00:00Z).")
    return times


def load_labels(path: Path, target: str, id_column: str) -> pd.Series:
    """Ground truth indexed by event id (as strings)."""
    path = Path(path)
    if not path.is_file():
        raise MlexpError(f"monitor.labels {path} does not exist: give the labelled table of mode=label (event_id + "
                         f"{target}) or Ground Truth JSON Lines keyed by eventId.")
    if path.suffix.lower() in {".jsonl", ".json"}:
        ids, values = _ground_truth_lines(path)
        labels = pd.Series(values, index=pd.Index(ids, name="event_id"))
    else:
        frame = pd.read_parquet(path) if path.suffix.lower() in {".parquet", ".pq"} else pd.read_csv(path)
        id_name = id_column if id_column in frame.columns else "event_id"
        label_name = target if target in frame.columns else "label"
        if id_name not in frame.columns or label_name not in frame.columns:
            raise MlexpError(f"monitor.labels {path} needs an {id_column!r} column and a {target!r} (or 'label') "
                             f"column; it has {', '.join(map(str, frame.columns))}.")
        labels = pd.Series(frame[label_name].to_numpy(), index=pd.Index(frame[id_name].astype(str), name="event_id"))
    labels = labels[~labels.index.duplicated(keep="last")]  # a later answer for the same event wins
    return labels.dropna()


def _ground_truth_lines(path: Path) -> tuple:
    ids: List[str] = []
    values: List[Any] = []
    with path.open() as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                data = record["groundTruthData"]
                value = data["data"]
                if data.get("encoding", "CSV") == "JSON":
                    value = json.loads(value)
                ids.append(str(record["eventMetadata"]["eventId"]))
                values.append(value)
            except (ValueError, KeyError, TypeError) as err:
                raise MlexpError(f"{path}:{number} is not a ground-truth record ({type(err).__name__}: {err}); each "
                                 'line needs {"groundTruthData": {"data": ..., "encoding": "CSV"}, '
                                 '"eventMetadata": {"eventId": ...}}.') from err
    return ids, values


def _table_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
            return
        yield from pd.read_csv(path, chunksize=chunk_rows)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        raise MlexpError(f"could not read {path} as a table: {err}. Give a CSV with a header row or a Parquet file.") from err
