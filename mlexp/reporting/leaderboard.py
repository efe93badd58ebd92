"""A sweep's leaderboard: one row per job directory (leaderboard.csv, leaderboard.md), sorted by the objective.

Built only from files: each job's ``.hydra/overrides.yaml``, ``metrics.json`` and
``lineage.json``. So it works for any sweep directory, finished, failed or interrupted,
and for the jobs of any sweeper (Hydra's basic sweeper, mlexp's tuner). The
``mlexp-report <sweep_dir>`` command rebuilds it by hand.
"""

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["collect_jobs", "build_leaderboard", "format_table", "main", "LEADERBOARD_CSV", "LEADERBOARD_MD"]

LEADERBOARD_CSV = "leaderboard.csv"
LEADERBOARD_MD = "leaderboard.md"
_STATUS_ORDER = {"completed": 0, "pruned": 1, "failed": 2, "interrupted": 3, "running": 4, "incomplete": 5}


def collect_jobs(sweep_dir: Path) -> List[Dict[str, Any]]:
    """One row per job directory under ``sweep_dir`` (any directory holding ``.hydra/overrides.yaml``)."""
    import yaml

    sweep_dir = Path(sweep_dir)
    rows = []
    for overrides_file in sweep_dir.glob("**/.hydra/overrides.yaml"):
        job_dir = overrides_file.parent.parent
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        metrics = _read_json(job_dir / "metrics.json")
        lineage = _read_json(job_dir / "lineage.json")
        status, error = _status(metrics, lineage)
        row: Dict[str, Any] = {
            "job": _job_number(job_dir),
            "overrides": " ".join(str(o) for o in overrides),
            "status": status,
            "error": error,
            "objective": None,
            "objective_metric": None,
            "direction": None,
        }
        if metrics and status == "completed":
            row.update(objective=metrics.get("objective"), objective_metric=metrics.get("objective_metric"),
                       direction=metrics.get("direction"))
            for name, stats in (metrics.get("cv") or {}).items():
                row[f"cv_{name}_mean"] = stats.get("mean")
                row[f"cv_{name}_std"] = stats.get("std")
            for name, value in (metrics.get("test") or {}).items():
                row[f"test_{name}"] = value
            timings = metrics.get("timings") or {}
            folds = timings.get("fold_fit_seconds") or []
            row["fit_seconds"] = round(sum(folds) + (timings.get("final_fit_seconds") or 0.0), 4)
            row["total_seconds"] = _round(timings.get("total_seconds"), 4)
            row["estimated_cost_usd"] = metrics.get("estimated_cost_usd")
        row["job_dir"] = os.path.relpath(job_dir, sweep_dir)
        rows.append(row)
    return rows


def build_leaderboard(sweep_dir: Path, write: bool = True, stopped_by: Optional[str] = None) -> List[Dict[str, Any]]:
    """Rows sorted best first (completed jobs by objective, then pruned, failed, unfinished); writes the files.

    ``stopped_by``: why the sweep stopped early, when it did; leaderboard.md says it.
    """
    from mlexp.errors import MlexpError

    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise MlexpError(f"{sweep_dir} is not a directory: pass a sweep directory (multirun/<date>/<time>).")
    rows = _sorted(collect_jobs(sweep_dir))
    if write:
        _write_csv(rows, sweep_dir / LEADERBOARD_CSV)
        _atomic_write(sweep_dir / LEADERBOARD_MD, _markdown(rows, sweep_dir, stopped_by))
    return rows


def format_table(rows: List[Dict[str, Any]], top: int = 10) -> str:
    """The best ``top`` rows as a plain-text table for the console."""
    if not rows:
        return "leaderboard: no job directories yet"
    metric = next((r["objective_metric"] for r in rows if r["objective_metric"]), "objective")
    shown = rows[:top]
    varying = _varying_overrides(rows)
    lines = [f"{'rank':>4} {'job':>4} {'status':<10} {metric:>10} {'± std':>8}  overrides"]
    for row in shown:
        std = row.get(f"cv_{row['objective_metric']}_std") if row["objective_metric"] else None
        text = varying(row) or "(defaults)"
        if row["error"]:
            text += f"  [{_short(row['error'], 70)}]"
        lines.append(f"{_cell(row.get('rank')):>4} {_cell(row['job']):>4} {row['status']:<10} "
                     f"{_num(row['objective']):>10} {_num(std):>8}  {text}")
    if len(rows) > top:
        lines.append(f"... {len(rows) - top} more in leaderboard.csv")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """`mlexp-report SWEEP_DIR [--top N]`: rebuild leaderboard.csv/.md from the job directories and print the top."""
    from mlexp.errors import MlexpError

    parser = argparse.ArgumentParser(
        prog="mlexp-report",
        description="Rebuild leaderboard.csv and leaderboard.md of a sweep directory (finished, failed or "
                    "interrupted) from its job directories, and print the best jobs.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory, e.g. multirun/2026-01-31/12-00-00")
    parser.add_argument("--top", type=int, default=10, help="rows to print (default 10)")
    args = parser.parse_args(argv)
    try:
        rows = build_leaderboard(args.sweep_dir)
        if not rows:
            raise MlexpError(f"no job directories (with .hydra/overrides.yaml) under {args.sweep_dir}: "
                             "pass the directory of a sweep made with mlexp -m.")
    except MlexpError as err:
        print(f"mlexp-report: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(format_table(rows, args.top))
    print(f"\nwritten: {args.sweep_dir / LEADERBOARD_CSV}, {args.sweep_dir / LEADERBOARD_MD}")


# ---- internals ---------------------------------------------------------------------------------


def _status(metrics: Optional[dict], lineage: Optional[dict]) -> tuple:
    if lineage is not None:
        status, error = lineage.get("status", "incomplete"), lineage.get("error")
        if status == "completed" and metrics is None:
            return "incomplete", "metrics.json is missing"
        if status == "failed" and str(error or "").startswith("TrialPruned"):
            return "pruned", error
        return status, error
    if metrics is not None:
        return "completed", None
    return "incomplete", None


def _sorted(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    done = [r for r in rows if r["status"] == "completed" and _finite(r["objective"])]
    # The direction is the objective's, the same for every job of a sweep unless it sweeps objective.*.
    direction = next((r["direction"] for r in done if r["direction"]), "maximize")
    sign = -1.0 if direction == "maximize" else 1.0
    done.sort(key=lambda r: (sign * r["objective"], _job_key(r)))
    rest = [r for r in rows if r not in done]
    rest.sort(key=lambda r: (_STATUS_ORDER.get(r["status"], 9), _job_key(r)))
    for rank, row in enumerate(done, start=1):
        row["rank"] = rank
    for row in rest:
        row["rank"] = None
    return [{"rank": r.pop("rank"), **r} for r in done + rest]


def _columns(rows: List[Dict[str, Any]]) -> List[str]:
    columns: List[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns and k != "job_dir"]
    return columns + ["job_dir"]


def _write_csv(rows: List[Dict[str, Any]], path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_columns(rows), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    temporary.replace(path)  # jobs in parallel workers rebuild it too: never a half-written file


def _markdown(rows: List[Dict[str, Any]], sweep_dir: Path, stopped_by: Optional[str] = None) -> str:
    metrics = []
    for row in rows:
        metrics += [k[3:-5] for k in row if k.startswith("cv_") and k.endswith("_mean") and k[3:-5] not in metrics]
    objective = next((r["objective_metric"] for r in rows if r["objective_metric"]), None)
    direction = next((r["direction"] for r in rows if r["direction"]), None)
    counts = {s: sum(r["status"] == s for r in rows) for s in _STATUS_ORDER if any(r["status"] == s for r in rows)}
    header = ["rank", "job", "status", "objective"] + [f"{m} (cv)" for m in metrics]
    header += ([f"{objective} (test)"] if objective else []) + ["fit s", "cost $", "overrides", "error"]
    varying = _varying_overrides(rows)
    shared = _shared_overrides(rows)
    common = " ".join(o for o in rows[0]["overrides"].split() if o in shared) if rows else ""
    if not rows:
        return (f"# Leaderboard: {sweep_dir}\n\nNo job ran: the sweep stopped before its first job"
                f"{f' ({stopped_by})' if stopped_by else ''}.\n")
    lines = [
        f"# Leaderboard: {sweep_dir}",
        "",
        *([f"The sweep stopped early: {stopped_by}.", ""] if stopped_by else []),
        f"{len(rows)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ". "
        + (f"Sorted by {objective} ({direction}), CV mean ± std." if objective else ""),
        "",
        *([f"Overrides of every job: `{common}`. The table shows the ones that differ.", ""] if common else []),
        "| " + " | ".join(header) + " |",
        "|" + "---:|" * 4 + "---:|" * len(metrics) + ("---:|" if objective else "") + "---:|---:|---|---|",
    ]
    for row in rows:
        cells = [_cell(row["rank"]), _cell(row["job"]), row["status"], _num(row["objective"])]
        for m in metrics:
            mean, std = row.get(f"cv_{m}_mean"), row.get(f"cv_{m}_std")
            cells.append("" if mean is None else f"{_num(mean)} ± {_num(std)}")
        if objective:
            cells.append(_num(row.get(f"test_{objective}")))
        cells += [_num(row.get("fit_seconds"), 2), _num(row.get("estimated_cost_usd"), 6),
                  f"`{varying(row)}`" if varying(row) else "(defaults)", _short(row["error"] or "", 200)]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _varying_overrides(rows: List[Dict[str, Any]]) -> Any:
    """A function giving a row's overrides less those every job shares and the tuner's ``trial=`` bookkeeping
    (leaderboard.csv keeps them all)."""
    common = _shared_overrides(rows)

    def varying(row: Dict[str, Any]) -> str:
        return " ".join(o for o in row["overrides"].split() if o not in common and not o.startswith("trial="))

    return varying


def _shared_overrides(rows: List[Dict[str, Any]]) -> set:
    sets = [set(r["overrides"].split()) for r in rows]
    return set.intersection(*sets) if len(sets) > 1 else set()


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def _job_number(job_dir: Path) -> Optional[int]:
    if job_dir.name.isdigit():
        return int(job_dir.name)
    import yaml

    hydra_file = job_dir / ".hydra" / "hydra.yaml"
    try:
        return int(yaml.safe_load(hydra_file.read_text())["hydra"]["job"]["num"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


def _job_key(row: Dict[str, Any]) -> tuple:
    return (row["job"] is None, row["job"] if row["job"] is not None else 0, row["job_dir"])


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _round(value: Any, digits: int) -> Any:
    return round(value, digits) if isinstance(value, (int, float)) else value


def _num(value: Any, digits: int = 4) -> str:
    return "" if value is None or value == "" else f"{value:.{digits}f}"


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _short(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


if __name__ == "__main__":
    main()
