"""Monitoring at scale: `mlexp mode=monitor` over 1M captured rows vs a plain all-in-memory pandas script.

Setup (timed apart): a logistic regression on gss_wages (1974-1985, gender facet), then ``--rows`` rows of
gss_wages predicted and written through the data capture (CaptureWriter), one capture hour per 100k rows.
Then, as fresh processes, interleaved:
- mlexp: ``mode=monitor`` over the capture folder with every check (data quality, CBPE, bias, attributions)
  and ``monitor.window=1h``, reading ``monitor.chunk_rows`` rows at a time;
- plain: a script that reads every capture record into one DataFrame and computes the same per-column
  statistics (describe + value counts), no checks.
Prints seconds per million rows and the peak resident memory of each side (bounded vs all in memory).
Usage: python bench/bench_monitor.py [--rows 1000000] [--repeats 1] [--workdir DIR]
       (the plain side alone: python bench/bench_monitor.py --plain <capture folder>)
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path


def plain(folder: str) -> None:
    import pandas as pd

    rows = []
    for path in sorted(Path(folder).rglob("*.jsonl")):
        with path.open() as handle:
            for line in handle:
                record = json.loads(line)["captureData"]
                rows.append({**json.loads(record["endpointInput"]["data"]), **json.loads(record["endpointOutput"]["data"])})
    frame = pd.DataFrame(rows)
    numeric = frame.select_dtypes("number")
    numeric.describe(percentiles=[i / 10 for i in range(1, 10)])
    for column in frame.columns.difference(numeric.columns):
        frame[column].value_counts()
    print(len(frame))


def setup(workdir: Path, rows: int) -> Path:
    """Train once, then capture ``rows`` predicted rows; returns the run directory."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import pandas as pd

    from conftest import run_inprocess
    from mlexp.artifacts import load_model
    from mlexp.data.loaders import gss_wages
    from mlexp.monitor.capture import CaptureWriter
    from mlexp.predict import predict_frame

    frame = gss_wages().dropna().reset_index(drop=True)
    frame[frame.year <= 1985].drop(columns=["year"]).to_csv(workdir / "early.csv", index=False)
    run_dir = workdir / "run"
    if not (run_dir / "model.skops").is_file():
        run_inprocess(["data=csv", f"data.path={workdir / 'early.csv'}", "data.target=high_income",
                       "data.roles.facet=gender"], run_dir)
    capture = workdir / "capture"
    if not capture.is_dir():
        model, card = load_model(run_dir)
        pool = frame[card["features"]]
        start, written = time.perf_counter(), 0
        with CaptureWriter(capture, endpoint="gss", seed=0) as writer:
            hour = datetime(2026, 1, 1, tzinfo=timezone.utc)
            while written < rows:
                X = pd.concat([pool] * (100_000 // len(pool) + 1), ignore_index=True).iloc[: min(100_000, rows - written)]
                writer.write(X, predict_frame(model, card, X), when=hour)
                written += len(X)
                hour += timedelta(hours=1)
        seconds = time.perf_counter() - start
        print(f"setup: predicted and captured {written} rows in {seconds:.1f}s ({seconds / written * 1e6:.1f} s per million)")
    return run_dir


# Runs the command as its own child and reports that child's peak resident memory (KiB).
_WRAP = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(done.returncode)")


def timed(command, cwd: Path) -> tuple:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAP, *command], cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 3):
        raise SystemExit(f"{command} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, int(done.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--plain", default=None)
    args = parser.parse_args()
    if args.plain:
        return plain(args.plain)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_monitor_"))
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = setup(workdir, args.rows)
    mlexp = [sys.executable, "-m", "mlexp", "mode=monitor", f"monitor.baseline={run_dir}",
             f"monitor.data={workdir / 'capture'}", "monitor.window=1h", "hydra.run.dir=monitor"]
    script = [sys.executable, str(Path(__file__).resolve()), "--plain", str(workdir / "capture")]
    results = {"mlexp": [], "plain": []}
    for _ in range(args.repeats):
        results["mlexp"].append(timed(mlexp, workdir))
        results["plain"].append(timed(script, workdir))
    for side, runs in results.items():
        best = min(seconds for seconds, _ in runs)
        memory = f", peak memory {max(p for _, p in runs) / 1024:.0f} MiB"
        print(f"{side:<6} {best:.1f}s for {args.rows} rows = {best / args.rows * 1e6:.1f} s per million rows{memory}")
    print(f"ratio mlexp / plain (time): {min(s for s, _ in results['mlexp']) / min(s for s, _ in results['plain']):.2f}")
    summary = json.loads((workdir / "monitor" / "monitor.json").read_text())
    print(f"monitor: {summary['rows']} rows, {len(summary['windows'])} windows, {summary['violation_count']} violations")


if __name__ == "__main__":
    main()
