"""Column roles (numeric, categorical, text, datetime, id): configured ones win, the rest are inferred from the values."""

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import pandas as pd

from mlexp.errors import MlexpError

__all__ = ["ROLES", "ColumnRoles", "infer_roles", "to_datetime"]

log = logging.getLogger(__name__)

# Roles of the feature columns; `id` columns are kept aside (never learned from), `facet` names a feature column.
ROLES = ("numeric", "categorical", "text", "datetime")


@dataclass
class ColumnRoles:
    numeric: List[str] = field(default_factory=list)
    categorical: List[str] = field(default_factory=list)
    text: List[str] = field(default_factory=list)
    datetime: List[str] = field(default_factory=list)
    facet: Optional[str] = None
    id: List[str] = field(default_factory=list)  # identifiers: kept out of the features, never learned from

    def as_dict(self) -> Dict[str, Any]:
        return {**{role: list(getattr(self, role)) for role in ROLES}, "facet": self.facet, "id": list(self.id)}


def infer_roles(X: pd.DataFrame, configured: Dict[str, Any]) -> ColumnRoles:
    """Column roles: those named in config win; the rest are inferred from dtypes and values."""
    roles = ColumnRoles(facet=configured.get("facet"), id=list(configured.get("id") or []))
    assigned: Dict[str, str] = {}
    for role in ROLES:
        for column in configured.get(role) or []:
            if column not in X.columns:
                raise MlexpError(
                    f"data.roles.{role} names column {column!r}, which is not in the data "
                    f"(columns: {', '.join(X.columns)})."
                )
            assigned[column] = role
    if roles.facet is not None and roles.facet not in X.columns:
        raise MlexpError(f"data.roles.facet {roles.facet!r} is not a feature column (columns: {', '.join(X.columns)}).")
    for column in X.columns:
        role = assigned.get(column) or _infer_role(X[column])
        getattr(roles, role).append(column)
    return roles


def to_datetime(column: pd.Series) -> pd.Series:
    """Parse a column of dates; timestamps with an offset (``...Z``, ``+02:00``) stay time-zone aware.

    Offsets that differ from row to row (daylight saving time) are converted to UTC.
    """
    if pd.api.types.is_datetime64_any_dtype(column):
        return column
    try:
        parsed = pd.to_datetime(column, errors="coerce", format="mixed")
    except (ValueError, TypeError):  # mixed offsets: one common zone is needed
        parsed = pd.to_datetime(column, errors="coerce", format="mixed", utc=True)
    if not pd.api.types.is_datetime64_any_dtype(parsed):
        parsed = pd.to_datetime(column, errors="coerce", format="mixed", utc=True)
    return parsed


def _infer_role(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "categorical"
    if pd.api.types.is_numeric_dtype(column):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "datetime"
    if isinstance(column.dtype, pd.CategoricalDtype):
        return "categorical"
    values = column.dropna().astype(str)
    if values.empty:
        return "categorical"
    sample = values.sample(min(len(values), 500), random_state=0)
    words = sample.str.split().str.len()
    if words.mean() >= 4 and sample.nunique() > 0.5 * len(sample):
        return "text"
    if sample.str.contains(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}", regex=True).mean() > 0.95:
        parsed = to_datetime(sample)
        if parsed.notna().mean() > 0.95:
            return "datetime"
    return "categorical"
