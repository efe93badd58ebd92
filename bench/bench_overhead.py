"""Framework overhead: `mlexp` vs a plain scikit-learn script doing the same CV on the same 100k rows.

Both run as fresh processes (start-up included), interleaved, and the wall-time ratio of the
medians is reported. Usage: python bench/bench_overhead.py [--rows 100000] [--trees 50] [--repeats 3]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(command, cwd) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    mlexp = [sys.executable, "-m", "mlexp", "data=synthetic", f"data.loader.n_samples={args.rows}",
             "data.loader.n_categorical=0", "features=[standardize]", "model=random_forest",
             f"model.n_estimators={args.trees}", "hydra.run.dir=mlexp_run"]
    plain = [sys.executable, str(HERE / "plain_random_forest.py"), f"--rows={args.rows}", f"--trees={args.trees}"]
    times = {"mlexp": [], "plain": []}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.repeats):
            times["plain"].append(timed(plain, work))
            times["mlexp"].append(timed(mlexp, work))
        ours = json.loads((Path(work) / "mlexp_run" / "metrics.json").read_text())
        theirs = json.loads((Path(work) / "plain_run" / "metrics.json").read_text())
    same = abs(ours["cv"]["roc_auc"]["mean"] - theirs["cv_mean"]["roc_auc"]) < 1e-9
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"rows={args.rows} trees={args.trees} repeats={args.repeats}")
    print(f"plain script  median {median['plain']:.2f}s  runs {['%.2f' % t for t in times['plain']]}")
    print(f"mlexp         median {median['mlexp']:.2f}s  runs {['%.2f' % t for t in times['mlexp']]}")
    print(f"ratio mlexp/plain = {median['mlexp'] / median['plain']:.3f}  (same CV ROC AUC: {same})")


if __name__ == "__main__":
    main()
