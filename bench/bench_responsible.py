"""Cost of the post-training steps: a default run (bias=auto, explain=permutation) vs the same run without them.

Each case runs both commands as fresh processes, interleaved (bench/_side_by_side.py), and prints
the wall-time medians, their ratio, and the steps' own seconds from the last run's metrics.json.
Cases: breast_cancer (defaults: no facet, so permutation importance only), gss_income (bias on
gender + permutation importance), and the training rules' cost on an MLP (rules vs rules=[]).
Usage: python bench/bench_responsible.py [--repeats 3] [--cases breast_cancer,gss_income,rules]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _side_by_side import compare, report

CASES = {
    "breast_cancer": ([], ["explain=none", "bias=none"]),
    "gss_income": (["experiment=gss_income"], ["experiment=gss_income", "explain=none", "bias=none"]),
    "rules": (["model=mlp", "explain=none"], ["model=mlp", "explain=none", "rules=[]"]),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    for case in args.cases.split(","):
        steps, without = CASES[case]
        mlexp = [sys.executable, "-m", "mlexp", *steps, "hydra.run.dir=with_steps"]
        plain = [sys.executable, "-m", "mlexp", *without, "hydra.run.dir=without_steps"]
        with tempfile.TemporaryDirectory() as work:
            times = compare(plain, mlexp, args.repeats, Path(work))
            timings = json.loads((Path(work) / "with_steps" / "metrics.json").read_text())["timings"]
        print(f"== {case}: {' '.join(steps) or '(defaults)'} vs {' '.join(without)}  repeats={args.repeats}")
        ratio = report(times)
        own = {k: round(v, 3) for k, v in timings.items() if k in ("bias_seconds", "explain_seconds", "rules_seconds",
                                                                      "total_seconds")}
        print(f"ratio with/without steps = {ratio:.3f}  (steps' own seconds in the last run: {own})", flush=True)


if __name__ == "__main__":
    main()
