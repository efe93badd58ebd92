"""Data capture in SageMaker's JSON Lines format: one record per predicted row, append-only and crash-safe.

Each line is one record, as SageMaker's data capture writes it::

    {"captureData": {"endpointInput":  {"observedContentType": "application/json", "mode": "INPUT",
                                        "data": "{\\"age\\": 39, ...}", "encoding": "JSON"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "{\\"prediction\\": \\"yes\\", \\"proba_yes\\": 0.81}",
                                        "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid4>", "inferenceTime": "2026-11-25T21:05:03.123Z"},
     "eventVersion": "0"}

Files go where SageMaker puts them under its S3 prefix: ``<folder>/<endpoint>/<variant>/YYYY/MM/DD/HH/
<minute-second>-<uuid>.jsonl`` (UTC). A batch of records is encoded first and appended with one
``write`` on a file opened with O_APPEND, so a killed process leaves whole lines; the reader
skips (and counts) a torn last line all the same.
"""

import json
import logging
import math
import os
import random
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence

import pandas as pd

from mlexp.errors import MlexpError

__all__ = ["json_value", "CaptureWriter", "CapturedRows", "read_capture", "iter_capture", "capture_files", "DEFAULT_VARIANT"]

log = logging.getLogger("mlexp")

DEFAULT_VARIANT = "AllTraffic"  # SageMaker's variant name for an endpoint with one variant
_CONTENT_TYPE = "application/json"


class CaptureWriter:
    """Append sampled rows of a model's inputs and outputs to capture files.

    Args:
        folder: the capture root (``capture.folder``).
        endpoint: the model or endpoint name (first folder level).
        variant: the production variant (second level).
        sampling_percentage: share of rows kept, 0-100 (``capture.sampling_percentage``).
        seed: seeds the row sampling, so a rerun captures the same rows.

    Thread-safe: a server's handlers may share one writer.
    """

    def __init__(self, folder: Path, endpoint: str = "mlexp", variant: str = DEFAULT_VARIANT,
                 sampling_percentage: float = 100.0, seed: Optional[int] = None):
        if not 0.0 <= float(sampling_percentage) <= 100.0:
            raise MlexpError(f"capture.sampling_percentage={sampling_percentage!r} must be between 0 and 100.")
        self.folder = Path(folder)
        self.endpoint = _safe_name(endpoint, "capture endpoint name")
        self.variant = _safe_name(variant, "capture variant name")
        self.sampling_percentage = float(sampling_percentage)
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._hour: Optional[str] = None
        self._fd: Optional[int] = None
        self.rows_written = 0

    def write(self, inputs: pd.DataFrame, outputs: pd.DataFrame, event_ids: Optional[Sequence[str]] = None,
              when: Optional[datetime] = None) -> List[str]:
        """Capture the sampled rows of ``inputs`` (features) with their ``outputs`` (prediction columns);
        returns the event ids written. ``event_ids`` default to new UUIDs; ``when`` to now (UTC)."""
        if len(inputs) != len(outputs):
            raise ValueError(f"inputs have {len(inputs)} rows, outputs {len(outputs)}")
        when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        with self._lock:
            keep = [i for i in range(len(inputs)) if self._sampled()]
        if not keep:
            return []
        ids = [str(event_ids[i]) if event_ids is not None else str(uuid.uuid4()) for i in keep]
        in_rows = _records(inputs.iloc[keep])
        out_rows = _records(outputs.iloc[keep])
        lines = [
            json.dumps({
                "captureData": {
                    "endpointInput": _payload("INPUT", row_in),
                    "endpointOutput": _payload("OUTPUT", row_out),
                },
                "eventMetadata": {"eventId": event_id, "inferenceTime": stamp},
                "eventVersion": "0",
            }, separators=(",", ":"))
            for event_id, row_in, row_out in zip(ids, in_rows, out_rows)
        ]
        data = ("\n".join(lines) + "\n").encode()
        with self._lock:
            fd = self._file_for(when)
            view = memoryview(data)
            while view:  # one write() in practice; the loop covers a short write
                written = os.write(fd, view)
                view = view[written:]
            self.rows_written += len(lines)
        return ids

    def close(self) -> None:
        """Flush to disk and close the open file (a server calls it on shutdown)."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd, self._hour = None, None

    def __enter__(self) -> "CaptureWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _sampled(self) -> bool:
        return self.sampling_percentage >= 100.0 or self._random.random() * 100.0 < self.sampling_percentage

    def _file_for(self, when: datetime) -> int:
        hour = when.strftime("%Y/%m/%d/%H")
        if self._fd is None or hour != self._hour:
            if self._fd is not None:
                os.close(self._fd)
            directory = self.folder / self.endpoint / self.variant / hour
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{when.strftime('%M-%S')}-{uuid.uuid4().hex[:12]}.jsonl"
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._hour = hour
        return self._fd


@dataclass
class CapturedRows:
    """Captured records as frames lined up row by row: ``meta`` (event_id, inference_time as UTC
    timestamps, endpoint, variant), ``inputs`` (the feature columns) and ``outputs`` (prediction columns)."""

    meta: pd.DataFrame
    inputs: pd.DataFrame
    outputs: pd.DataFrame

    def __len__(self) -> int:
        return len(self.meta)


def capture_files(folder: Path) -> List[Path]:
    """Every capture file under ``folder``, in time order (the path encodes the hour)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MlexpError(f"capture folder {folder} does not exist: point it at the capture.folder of a predict "
                         "run or the endpoint (it holds <endpoint>/<variant>/YYYY/MM/DD/HH/*.jsonl).")
    return sorted(folder.rglob("*.jsonl"), key=lambda p: (p.parent.relative_to(folder).parts[2:], p.name))


def iter_capture(folder: Path, chunk_rows: int = 100_000) -> Iterator[CapturedRows]:
    """Captured rows in chunks of at most ``chunk_rows`` (bounded memory for millions of rows)."""
    folder = Path(folder)
    meta: List[dict] = []
    inputs: List[dict] = []
    outputs: List[dict] = []
    torn = 0
    for path in capture_files(folder):
        parts = path.relative_to(folder).parts
        endpoint, variant = (parts[0], parts[1]) if len(parts) >= 7 else (None, None)
        with path.open("rb") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    data = record["captureData"]
                    inputs.append(_decode(data["endpointInput"]))
                    outputs.append(_decode(data["endpointOutput"]))
                except (ValueError, KeyError, TypeError):
                    torn += 1
                    continue
                event = record.get("eventMetadata", {})
                meta.append({"event_id": event.get("eventId"), "inference_time": event.get("inferenceTime"),
                             "endpoint": endpoint, "variant": variant})
                if len(meta) >= chunk_rows:
                    yield _frames(meta, inputs, outputs)
                    meta, inputs, outputs = [], [], []
    if torn:
        log.warning("capture: skipped %d line(s) that are not whole capture records (a write cut short)", torn)
    if meta:
        yield _frames(meta, inputs, outputs)


def read_capture(folder: Path) -> CapturedRows:
    """All captured rows under ``folder`` at once (use iter_capture for large captures)."""
    chunks = list(iter_capture(folder))
    if not chunks:
        raise MlexpError(f"no capture records under {folder}: capture.enabled=true on a predict run or an "
                         "endpoint writes them there.")
    if len(chunks) == 1:
        return chunks[0]
    return CapturedRows(*(pd.concat([getattr(c, part) for c in chunks], ignore_index=True)
                          for part in ("meta", "inputs", "outputs")))


def _frames(meta: List[dict], inputs: List[dict], outputs: List[dict]) -> CapturedRows:
    frame = pd.DataFrame(meta)
    frame["inference_time"] = pd.to_datetime(frame["inference_time"], utc=True, errors="coerce")
    return CapturedRows(frame, pd.DataFrame(inputs), pd.DataFrame(outputs))


def _records(frame: pd.DataFrame) -> List[dict]:
    """Rows as JSON-ready dicts: NaN and NaT become null, timestamps ISO strings, numpy scalars plain."""
    rows = []
    for row in frame.to_dict(orient="records"):
        rows.append({str(k): json_value(v) for k, v in row.items()})
    return rows


def json_value(value: Any) -> Any:
    """A table cell as JSON has it: None for missing values and non-finite numbers, ISO text for times."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, datetime)):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _payload(mode: str, row: dict) -> dict:
    return {"observedContentType": _CONTENT_TYPE, "mode": mode,
            "data": json.dumps(row, separators=(",", ":")), "encoding": "JSON"}


def _decode(payload: dict) -> dict:
    if payload.get("encoding", "JSON") != "JSON":
        raise ValueError(f"capture encoding {payload.get('encoding')!r} is not JSON")
    return json.loads(payload["data"])


def _safe_name(name: str, what: str) -> str:
    text = str(name)
    if not text or "/" in text or text in (".", ".."):
        raise MlexpError(f"{what} {name!r} must be a plain folder name (no '/').")
    return text
