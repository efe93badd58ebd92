"""Batch transform: predict a CSV or Parquet file chunk by chunk, writing CSV or Parquet as it goes (bounded memory)."""

import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pandas as pd

from mlexp.errors import MlexpError

__all__ = ["BatchResult", "transform", "table_format"]

log = logging.getLogger("mlexp")

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class BatchResult:
    rows_read: int = 0
    rows_predicted: int = 0
    chunks: int = 0
    input_sha256: Optional[str] = None
    input_bytes: int = 0
    captured: int = 0
    columns: List[str] = field(default_factory=list)


def table_format(path: Path, what: str) -> str:
    """'csv' or 'parquet' from the file name; MlexpError for anything else."""
    kind = _FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise MlexpError(f"{what} {path} must end in .csv, .parquet or .pq (the name picks the format).")
    return kind


def transform(model: Any, card: Dict[str, Any], source: Path, output: Path, chunk_rows: int,
              capture: Any = None) -> BatchResult:
    """Predict ``source`` into ``output`` chunk by chunk.

    The output is written to ``<output>.partial`` and renamed when every row is done, so a failed
    or interrupted run never leaves a complete-looking file (the partial one is kept for a look).
    ``capture``: a CaptureWriter that receives each chunk's features and predictions.
    """
    from mlexp.predict import predict_frame
    from mlexp.reporting.progress import progress

    if chunk_rows < 1:
        raise MlexpError(f"mode.chunk_rows={chunk_rows} must be at least 1.")
    result = BatchResult()
    partial = output.with_name(output.name + ".partial")
    writer = _Writer(partial, table_format(output, "mode.output"))
    reader = _Reader(source, card.get("features"), chunk_rows)
    with progress(total=reader.total_rows, desc="predict", unit="row", unit_scale=True) as bar:
        try:
            for chunk in reader:
                start = result.rows_read
                try:
                    predictions = predict_frame(model, card, chunk)
                except MlexpError as err:
                    raise MlexpError(f"rows {start}-{start + len(chunk) - 1} of {source}: {err}") from err
                except (ValueError, TypeError) as err:
                    raise MlexpError(f"rows {start}-{start + len(chunk) - 1} of {source} could not be predicted: "
                                     f"{err}. Check their values against the training data's columns.") from err
                writer.write(predictions)
                if capture is not None:
                    features = card.get("features") or list(chunk.columns)
                    result.captured += len(capture.write(chunk[features], predictions))
                result.rows_read += len(chunk)
                result.rows_predicted += len(predictions)
                result.chunks += 1
                bar.update(len(chunk))
        finally:
            writer.close()
            result.input_sha256, result.input_bytes = reader.digest()
    result.columns = writer.columns
    if result.rows_read == 0:
        raise MlexpError(f"{source} has a header but no rows: nothing to predict.")
    partial.replace(output)
    return result


class _Reader:
    """Chunks of the feature columns of a CSV or Parquet file; hashes the bytes as they are read."""

    def __init__(self, source: Path, features: Optional[List[str]], chunk_rows: int):
        self.source, self.features, self.chunk_rows = source, features, chunk_rows
        self.kind = table_format(source, "mode.input")
        self.total_rows: Optional[int] = None
        self._hashed: Optional["_HashingFile"] = None
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            try:
                # Streamed reads: with pre-buffering, pyarrow keeps every row group read until the end.
                self._parquet = pq.ParquetFile(source, pre_buffer=False, buffer_size=8 << 20)
            except Exception as err:  # pyarrow raises ArrowInvalid/OSError subclasses for damaged files
                raise MlexpError(f"could not read {source} as a Parquet file: {err}.") from err
            self.total_rows = self._parquet.metadata.num_rows

    def __iter__(self) -> Iterator[pd.DataFrame]:
        if self.kind == "parquet":
            return self._parquet_chunks()
        return self._csv_chunks()

    def digest(self):
        if self.kind == "csv" and self._hashed is not None:
            return self._hashed.sha256.hexdigest(), self._hashed.bytes_read
        digest = hashlib.sha256()  # Parquet is read by ranges: hash the file in one pass
        with open(self.source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest(), self.source.stat().st_size

    def _columns(self, available: List[str]) -> Optional[List[str]]:
        if not self.features:
            return None
        missing = [c for c in self.features if c not in available]
        if missing:
            raise MlexpError(f"{self.source} lacks feature columns the model was trained on: {', '.join(missing)}. "
                             f"Columns found: {', '.join(map(str, available))}.")
        return list(self.features)

    def _parquet_chunks(self) -> Iterator[pd.DataFrame]:
        columns = self._columns(self._parquet.schema_arrow.names)
        for batch in self._parquet.iter_batches(batch_size=self.chunk_rows, columns=columns):
            yield batch.to_pandas()

    def _csv_chunks(self) -> Iterator[pd.DataFrame]:
        try:
            # A first look fixes the dtypes: a text column whose later chunk holds only digits stays text.
            head = pd.read_csv(self.source, nrows=min(self.chunk_rows, 10_000))
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
            raise MlexpError(f"could not read {self.source} as a CSV table: {err}. Check it is a well-formed "
                             "table with a header row.") from err
        columns = self._columns(list(head.columns))
        text = {c: str for c in (columns or head.columns) if not pd.api.types.is_numeric_dtype(head[c])
                and not pd.api.types.is_bool_dtype(head[c])}
        self._hashed = _HashingFile(open(self.source, "rb"))
        try:
            reader = pd.read_csv(self._hashed, chunksize=self.chunk_rows, usecols=columns, dtype=text)
            while True:
                try:
                    chunk = next(reader)
                except StopIteration:
                    break
                except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
                    raise MlexpError(f"could not read {self.source} past row {getattr(reader, '_currow', '?')}: "
                                     f"{err}.") from err
                yield chunk[columns] if columns else chunk
            self._hashed.read()  # whatever the parser did not ask for still counts in the fingerprint
        finally:
            self._hashed.close()


class _HashingFile(io.RawIOBase):
    """A read-only file that feeds every byte read into sha256 (the fingerprint of the file as read)."""

    def __init__(self, raw: Any):
        self._raw, self.sha256, self.bytes_read = raw, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)
        if count:
            self.sha256.update(memoryview(buffer)[:count])
            self.bytes_read += count
        return count or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Writer:
    """Appends prediction chunks to a CSV (header once) or a Parquet file (one row group per chunk)."""

    def __init__(self, path: Path, kind: str):
        self.path, self.kind = path, kind
        self.columns: List[str] = []
        self._handle: Any = None
        self._parquet: Any = None
        self._schema: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        if not self.columns:
            self.columns = [str(c) for c in frame.columns]
        if self.kind == "csv":
            if self._handle is None:
                self._handle = open(self.path, "w", newline="")
                frame.to_csv(self._handle, index=False)
            else:
                frame.to_csv(self._handle, index=False, header=False)
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            self._schema = table.schema
            self._parquet = pq.ParquetWriter(self.path, self._schema)
        self._parquet.write_table(table if table.schema.equals(self._schema) else table.cast(self._schema))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._parquet is not None:
            self._parquet.close()
