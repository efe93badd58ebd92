"""Start-up time: `mlexp --cfg job` and `--help` (compose and print, nothing fitted), and the imports
a train run needs, each in a fresh interpreter; median of N.

Usage: python bench/bench_startup.py [--repeats 10] [--imports-only | --commands-only]

The imports show what a small run pays before and after its fit: scikit-learn and pandas
(a plain script pays them too), skops (as `import skops.io` loads it, and as mlexp loads it,
without torch: mlexp.artifacts.skops_io), matplotlib's Agg figure, and torch alone.
"""

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "mlexp --cfg job": [sys.executable, "-m", "mlexp", "--cfg", "job"],
    "mlexp --help": [sys.executable, "-m", "mlexp", "--help"],
}
IMPORTS = {
    "scikit-learn + pandas": "import sklearn.model_selection, sklearn.linear_model, pandas",
    "import skops.io": "import sklearn.model_selection; import skops.io",
    "skops, as mlexp imports it": "import sklearn.model_selection; from mlexp.artifacts import skops_io; skops_io()",
    "matplotlib Figure + Agg": "import matplotlib.figure, matplotlib.backends.backend_agg",
    "torch": "import torch",
}


def _median(command: list, repeats: int) -> tuple:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), min(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--imports-only", action="store_true")
    parser.add_argument("--commands-only", action="store_true")
    args = parser.parse_args()
    if not args.imports_only:
        for name, command in COMMANDS.items():
            median, fastest = _median(command, args.repeats)
            print(f"{name:<30} median {median:.3f}s  min {fastest:.3f}s  (n={args.repeats})")
    if not args.commands_only:
        base, _ = _median([sys.executable, "-c", "pass"], args.repeats)
        for name, code in IMPORTS.items():
            median, fastest = _median([sys.executable, "-c", code], args.repeats)
            print(f"{name:<30} median {median - base:.3f}s  min {fastest - base:.3f}s  (interpreter start "
                  f"subtracted, n={args.repeats})")


if __name__ == "__main__":
    main()
