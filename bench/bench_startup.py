"""Start-up time of `mlexp --cfg job` (compose and print, nothing fitted), median of N runs.

Usage: python bench/bench_startup.py [--repeats 10]
"""

import argparse
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "mlexp --cfg job": [sys.executable, "-m", "mlexp", "--cfg", "job"],
        "mlexp --help": [sys.executable, "-m", "mlexp", "--help"],
    }
    for name, command in commands.items():
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            runs.append(time.perf_counter() - start)
        print(f"{name:<18} median {statistics.median(runs):.3f}s  min {min(runs):.3f}s  (n={args.repeats})")


if __name__ == "__main__":
    main()
