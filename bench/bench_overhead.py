"""Framework overhead: `mlexp` vs a plain scikit-learn script doing the same CV on the same 100k rows.

Both run as fresh processes (start-up included), interleaved, and the wall-time ratio of the
medians is reported. Usage: python bench/bench_overhead.py [--rows 100000] [--trees 50] [--repeats 3]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _side_by_side import compare, report

HERE = Path(__file__).resolve().parent


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
    with tempfile.TemporaryDirectory() as work:
        times = compare(plain, mlexp, args.repeats, Path(work))
        ours = json.loads((Path(work) / "mlexp_run" / "metrics.json").read_text())
        theirs = json.loads((Path(work) / "plain_run" / "metrics.json").read_text())
    same = abs(ours["cv"]["roc_auc"]["mean"] - theirs["cv_mean"]["roc_auc"]) < 1e-9
    print(f"rows={args.rows} trees={args.trees} repeats={args.repeats}")
    ratio = report(times)
    print(f"ratio mlexp/plain = {ratio:.3f}  (same CV ROC AUC: {same})")


if __name__ == "__main__":
    main()
