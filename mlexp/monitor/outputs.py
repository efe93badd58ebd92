"""The monitor's output files: constraint_violations.json, statistics.json, model quality, merged.jsonl, monitor.json."""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from mlexp.lineage import write_json

__all__ = ["write_merged", "write_results"]


def write_merged(handle: Any, batch: Any, outputs: pd.DataFrame, y_true: np.ndarray,
                  classes: Optional[List[Any]]) -> None:
    """Model Monitor's merged file: each captured record with its groundTruthData, labelled rows only."""
    from mlexp.monitor.capture import _payload, _records

    rows = np.flatnonzero(~pd.isna(y_true))
    for i, row_in, row_out in zip(rows, _records(batch.inputs.iloc[rows]), _records(outputs.iloc[rows])):
        truth = y_true[i]
        handle.write(json.dumps({
            "captureData": {"endpointInput": _payload("INPUT", row_in), "endpointOutput": _payload("OUTPUT", row_out)},
            "groundTruthData": {"data": str(truth if classes is None else classes[int(truth)]), "encoding": "CSV"},
            "eventMetadata": {"eventId": batch.ids.iloc[i],
                              **({"inferenceTime": batch.times.iloc[i].isoformat()} if batch.times is not None else {})},
            "eventVersion": "0"}, separators=(",", ":")) + "\n")


def write_results(results: List[Dict[str, Any]], settings: Any, skipped: Optional[str], out_dir: Path) -> Dict[str, Any]:
    """Each window's files, the combined constraint_violations.json, monitor.json and windows.csv; returns the summary."""
    windowed = bool(settings.window)
    violations = []
    for result in results:
        if windowed:
            folder = out_dir / "windows" / pd.Timestamp(result["window"]).strftime("%Y-%m-%dT%H-%M-%S")
            folder.mkdir(parents=True, exist_ok=True)
        else:
            folder = out_dir
        write_json(folder / "constraint_violations.json", {"violations": result["violations"]})
        if "statistics" in result:
            write_json(folder / "statistics.json", result["statistics"])
        if "quality" in result:
            write_json(folder / "model_quality_statistics.json", result["quality"])
        stamp = {"window": pd.Timestamp(result["window"]).isoformat()} if windowed else {}
        violations += [{**v, **stamp} for v in result["violations"]]
    if windowed:
        write_json(out_dir / "constraint_violations.json", {"violations": violations})
    by_type: Dict[str, int] = {}
    for v in violations:
        by_type[v["constraint_check_type"]] = by_type.get(v["constraint_check_type"], 0) + 1
    summary = {
        "baseline": str(settings.baseline), "data": str(settings.data), "labels": str(settings.labels or ""),
        "window": settings.window, "distance": settings.distance, "checks": list(settings.checks),
        "rows": int(sum(r["rows"] for r in results)), "violation_count": len(violations), "violations_by_type": by_type,
        "skipped": skipped,
        "windows": [{k: (pd.Timestamp(v).isoformat() if k == "window" and windowed else v) for k, v in r.items()
                     if k not in ("statistics", "quality", "violations", "attribution")}
                    | {"violations": len(r["violations"])} for r in results],
    }
    write_json(out_dir / "monitor.json", summary)
    if windowed:
        pd.DataFrame([_flat(w) for w in summary["windows"]]).to_csv(out_dir / "windows.csv", index=False)
    return summary


def _flat(window: Dict[str, Any]) -> Dict[str, Any]:
    row = {k: v for k, v in window.items() if not isinstance(v, dict)}
    for part in ("estimated", "actual", "estimate_error"):
        row.update({f"{part}_{k}": v for k, v in (window.get(part) or {}).items()})
    return row
