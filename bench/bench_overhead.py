"""Framework overhead: a whole `mlexp` process vs a plain scikit-learn script doing the same work.

Two cases, each as fresh processes (start-up included), interleaved, wall-time ratio of the medians:

- ``--case default``: `mlexp` with no argument (breast cancer, stratified 5-fold logistic regression,
  final fit, test score; it also writes the model, lineage and report) vs bench/plain_logreg.py
  (the same CV, final fit and test score);
- ``--case forest``: a random forest on ``--rows`` generated rows, ``--folds``-fold CV, vs
  bench/plain_random_forest.py (which also saves its model with skops).

It also prints where mlexp's time goes (start-up, fit, save, report...), from the run's
metrics.json timings and the process's wall time.
Usage: python bench/bench_overhead.py [--case default|forest|both] [--repeats 5]
           [--rows 20000] [--folds 3] [--trees 100] [--mlexp-args "explain=none ..."]
"""

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from _side_by_side import compare, report

HERE = Path(__file__).resolve().parent


def commands(case: str, args: argparse.Namespace) -> tuple:
    """(plain command, mlexp command) for ``case``; mlexp writes to ``mlexp_run``."""
    mlexp = [sys.executable, "-m", "mlexp", "hydra.run.dir=mlexp_run", "overwrite=true", *args.mlexp_args.split()]
    if case == "default":
        return [sys.executable, str(HERE / "plain_logreg.py")], mlexp
    mlexp += ["data=synthetic", f"data.loader.n_samples={args.rows}", "data.loader.n_categorical=0",
              "features=[standardize]", "model=random_forest", f"model.n_estimators={args.trees}",
              f"splitter.n_splits={args.folds}"]
    plain = [sys.executable, str(HERE / "plain_random_forest.py"), f"--rows={args.rows}", f"--trees={args.trees}",
             f"--folds={args.folds}"]
    return plain, mlexp


def breakdown(metrics: dict, wall: float) -> str:
    """Where one mlexp process spent its wall time."""
    t = metrics["timings"]
    fit = sum(t.get("fold_fit_seconds") or []) + t.get("final_fit_seconds", 0.0)
    steps = {
        "start-up (interpreter, Hydra, composition, until the run starts)": wall - t["total_seconds"],
        "data load": t.get("load_seconds", 0.0),
        "fit (folds + final)": fit,
        "scoring, predictions kept for the report": t.get("cv_seconds", 0.0) - sum(t.get("fold_fit_seconds") or []),
        "save (model.skops)": t.get("save_seconds", 0.0),
        "report (report.md + plots)": t.get("report_seconds", 0.0),
    }
    known = {"load_seconds", "cv_seconds", "final_fit_seconds", "save_seconds", "report_seconds", "total_seconds",
             "fold_fit_seconds"}
    for key, seconds in t.items():  # the post-training steps: data checks, explain, bias, baseline...
        if key.endswith("_seconds") and key not in known and isinstance(seconds, (int, float)):
            steps[f"checks and post-training steps: {key[:-len('_seconds')]}"] = seconds
    steps["rest (imports inside the run, lineage, metrics)"] = wall - sum(steps.values())
    return "\n".join(f"  {name:<66} {seconds:6.2f} s" for name, seconds in steps.items())


def run_case(case: str, args: argparse.Namespace) -> None:
    plain, mlexp = commands(case, args)
    with tempfile.TemporaryDirectory() as work:
        times = compare(plain, mlexp, args.repeats, Path(work))
        ours = json.loads((Path(work) / "mlexp_run" / "metrics.json").read_text())
        theirs = json.loads((Path(work) / "plain_run" / "metrics.json").read_text())
    same = abs(ours["cv"]["roc_auc"]["mean"] - theirs["cv_mean"]["roc_auc"]) < 1e-9
    print(f"\ncase {case}" + (f": rows={args.rows} folds={args.folds} trees={args.trees}" if case == "forest" else "")
          + f", repeats={args.repeats}")
    ratio = report(times)
    print(f"ratio mlexp/plain = {ratio:.3f}  (same CV ROC AUC: {same})")
    print(f"mlexp's last run, {times['mlexp'][-1]:.2f} s:\n{breakdown(ours, times['mlexp'][-1])}")
    print(f"median mlexp - plain: {statistics.median(times['mlexp']) - statistics.median(times['plain']):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=["default", "forest", "both"], default="both")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mlexp-args", default="", help="extra overrides for the mlexp side, space-separated")
    args = parser.parse_args()
    for case in (["default", "forest"] if args.case == "both" else [args.case]):
        run_case(case, args)


if __name__ == "__main__":
    main()
