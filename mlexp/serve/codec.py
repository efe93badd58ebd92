"""Request bodies to feature frames and predictions to response bodies, with a one-line reason for every bad input."""

import csv
import io
import json
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd

__all__ = ["BadRequest", "parse_body", "encode_predictions", "JSON", "CSV"]

JSON = "application/json"
CSV = "text/csv"


class BadRequest(Exception):
    """A client error: the HTTP status and a one-line reason for the response."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason.replace("\n", " ")


def parse_body(body: bytes, content_type: Optional[str], card: Dict[str, Any]) -> pd.DataFrame:
    """The request's rows as a frame of the model's feature columns, typed as in training.

    JSON: a list of records, one record, ``{"instances": [...]}``, or MLflow's ``{"dataframe_split":
    {"columns": [...], "data": [[...]]}}`` / ``{"dataframe_records": [...]}``. CSV: a header row naming
    the columns, or rows without one in the order of the model's features (SageMaker's convention).
    """
    if not body or not body.strip():
        raise BadRequest(400, "empty request body: send JSON records or CSV rows")
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in (JSON, "application/x-json"):
        frame = _from_json(body, card.get("features") or [])
    elif kind in (CSV, "application/csv"):
        frame = _from_csv(body, card.get("features") or [])
    else:
        raise BadRequest(415, f"Content-Type {content_type or '(none)'} is not supported: use {JSON} or {CSV}")
    if frame.empty or len(frame.columns) == 0:
        raise BadRequest(400, "the request holds no rows")
    return _typed(frame, card)


def encode_predictions(predictions: pd.DataFrame, accept: Optional[str], extra: Dict[str, Any]) -> Tuple[bytes, str]:
    """JSON ``{"predictions": [records], **extra}`` (default) or CSV with a header row when Accept asks for it."""
    wanted = (accept or "").split(",")[0].split(";")[0].strip().lower()
    if wanted in (CSV, "application/csv"):
        return predictions.to_csv(index=False).encode(), CSV
    if predictions.isna().to_numpy().any():  # JSON has no NaN: null instead
        predictions = predictions.astype(object).where(predictions.notna(), None)
    # json.dumps writes floats round-trip exact (pandas' to_json rounds to 15 decimals)
    body = {"predictions": predictions.to_dict(orient="records"), **extra}
    return json.dumps(body, separators=(",", ":"), default=_plain).encode(), JSON


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _from_json(body: bytes, features: List[str]) -> pd.DataFrame:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(400, f"malformed JSON: {err}") from err
    if isinstance(payload, dict):
        if "dataframe_split" in payload:
            split = payload["dataframe_split"]
            if not isinstance(split, dict) or not isinstance(split.get("data"), list):
                raise BadRequest(400, 'dataframe_split needs {"columns": [...], "data": [[...], ...]}')
            return _frame_from_rows(split["data"], split.get("columns"))
        for key in ("instances", "dataframe_records", "inputs"):
            if key in payload:
                payload = payload[key]
                break
        else:
            payload = [payload]  # a single record
    if not isinstance(payload, list):
        raise BadRequest(400, "JSON body must be a record, a list of records or {\"instances\": [...]}")
    if not all(isinstance(row, dict) for row in payload):
        raise BadRequest(400, "every JSON row must be an object of column: value (a record)")
    if not payload:
        return pd.DataFrame()
    if not features:
        return pd.DataFrame.from_records(payload)
    present = set().union(*payload)
    _require(features, present)
    rows = [[row.get(column) for column in features] for row in payload]  # feature order; extra keys ignored
    for i, row in enumerate(rows):
        for column, value in zip(features, row):
            if isinstance(value, (dict, list)):
                raise BadRequest(400, f"row {i}, column {column!r}: a value must be a number, string, bool or null")
    return pd.DataFrame(rows, columns=features)


def _require(features: List[str], present: Any) -> None:
    missing = [c for c in features if c not in present]
    if missing:
        raise BadRequest(400, f"missing columns: {', '.join(map(str, missing))} (the model needs "
                              f"{', '.join(map(str, features))})")


def _frame_from_rows(rows: List[Any], columns: Optional[List[str]]) -> pd.DataFrame:
    if not all(isinstance(row, list) for row in rows):
        raise BadRequest(400, "dataframe_split data must be a list of rows (lists)")
    if columns is not None and any(len(row) != len(columns) for row in rows):
        raise BadRequest(400, f"every dataframe_split row must have {len(columns)} values, one per column")
    try:
        return pd.DataFrame(rows, columns=columns)
    except ValueError as err:
        raise BadRequest(400, f"dataframe_split: {err}") from err


def _from_csv(body: bytes, features: List[str]) -> pd.DataFrame:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadRequest(400, f"CSV body is not UTF-8 text: {err}") from err
    first = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), [])
    header = bool(first) and (not features or any(name.strip() in features for name in first))
    try:
        frame = pd.read_csv(io.StringIO(text), header=0 if header else None, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        raise BadRequest(400, f"malformed CSV: {str(err).strip()}") from err
    if not header:
        if features and frame.shape[1] != len(features):
            raise BadRequest(400, f"CSV rows without a header must have {len(features)} values in the order "
                                  f"{', '.join(features)}; got {frame.shape[1]} (or add a header row)")
        frame.columns = features or [str(c) for c in frame.columns]
    return frame


def _typed(frame: pd.DataFrame, card: Dict[str, Any]) -> pd.DataFrame:
    """Only the model's columns, numeric ones as numbers and dates as datetimes; a 400 naming what is wrong."""
    features = card.get("features") or list(frame.columns)
    _require(features, set(frame.columns))
    if list(frame.columns) != features:
        frame = frame[features]
    roles = card.get("roles") or {}
    numeric = set(roles.get("numeric") or [])
    for column, dtype in frame.dtypes.items():
        if column in numeric and (dtype.kind not in "iuf"):
            frame = frame.assign(**{column: _numbers(frame[column], column)})
    for column in roles.get("datetime") or []:
        if column in frame.columns:
            try:
                frame = frame.assign(**{column: pd.to_datetime(frame[column])})
            except (ValueError, TypeError) as err:
                raise BadRequest(400, f"column {column!r} must hold dates: {err}") from err
    return frame


def _numbers(values: pd.Series, column: str) -> pd.Series:
    if values.map(lambda v: isinstance(v, bool)).any():
        raise BadRequest(400, f"column {column!r} must be numeric; got a boolean")
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & numbers.isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise BadRequest(400, f"column {column!r} must be numeric; got {values.iloc[row]!r} in row {row}")
    return numbers
