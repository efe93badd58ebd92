"""Time mlexp and a plain script as fresh processes, interleaved, and print medians and their ratio."""

import statistics
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Sequence


def _timed(command: Sequence[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(list(command), cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def compare(plain: Sequence[str], mlexp: Sequence[str], repeats: int, cwd: Path) -> Dict[str, List[float]]:
    """Run both commands ``repeats`` times, alternating (so drifting load hits both alike)."""
    times: Dict[str, List[float]] = {"plain": [], "mlexp": []}
    for _ in range(repeats):
        times["plain"].append(_timed(plain, cwd))
        times["mlexp"].append(_timed(mlexp, cwd))
    return times


def report(times: Dict[str, List[float]]) -> float:
    """Print each side's median and runs; return the ratio mlexp / plain of the medians."""
    median = {side: statistics.median(runs) for side, runs in times.items()}
    for side, label in (("plain", "plain script"), ("mlexp", "mlexp")):
        print(f"{label:<13} median {median[side]:.2f}s  runs {['%.2f' % t for t in times[side]]}")
    return median["mlexp"] / median["plain"]
