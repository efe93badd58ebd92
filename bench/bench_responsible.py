"""Cost of the post-training steps: a default run (bias=auto, explain=permutation) vs the same run without them.

Each case runs both commands as fresh processes, interleaved, and reports the medians of wall time
and of CPU time (user + system of the child process: steadier than wall time on a shared machine),
their ratios, and the steps' own seconds from the last run's metrics.json. Cases: breast_cancer
(the default run: no facet, so permutation importance only), gss_income (bias on gender +
permutation importance), pdp (explain.top_k=3 on breast_cancer: what the PDP/ICE plots add), and
rules_epoch: the training rules' cost per epoch of an MLP, in process (same net, rules vs none).
Usage: python bench/bench_responsible.py [--repeats 3] [--cases breast_cancer,gss_income,pdp,rules_epoch]
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

CASES = {
    "breast_cancer": ([], ["explain=none", "bias=none"]),
    "gss_income": (["experiment=gss_income"], ["experiment=gss_income", "explain=none", "bias=none"]),
    "pdp": (["explain.top_k=3"], []),
}


def _run(command: Sequence[str], cwd: Path) -> tuple:
    """(wall seconds, CPU seconds) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(list(command), cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def process_case(name: str, repeats: int) -> None:
    steps, without = CASES[name]
    commands = {"with": [sys.executable, "-m", "mlexp", *steps, "hydra.run.dir=with_steps"],
                "without": [sys.executable, "-m", "mlexp", *without, "hydra.run.dir=without_steps"]}
    times: Dict[str, List[tuple]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory() as work:
        for _ in range(repeats):  # alternating, so that drifting load hits both sides alike
            for side in ("without", "with"):
                times[side].append(_run(commands[side], Path(work)))
        timings = json.loads((Path(work) / "with_steps" / "metrics.json").read_text())["timings"]
    print(f"== {name}: {' '.join(steps) or '(defaults)'}  vs  {' '.join(without) or '(defaults)'}  repeats={repeats}")
    medians = {}
    for side in ("without", "with"):
        wall, cpu = (statistics.median(t[i] for t in times[side]) for i in (0, 1))
        medians[side] = (wall, cpu)
        print(f"  {side:<8} wall median {wall:6.2f}s  cpu median {cpu:6.2f}s  "
              f"runs {[f'{w:.2f}/{c:.2f}' for w, c in times[side]]}")
    own = {k: round(v, 3) for k, v in timings.items() if k in ("bias_seconds", "explain_seconds", "total_seconds")}
    print(f"  ratio with/without: wall {medians['with'][0] / medians['without'][0]:.3f}, "
          f"cpu {medians['with'][1] / medians['without'][1]:.3f}  (last run's own seconds: {own})", flush=True)


def rules_epoch(repeats: int) -> None:
    """CPU seconds per epoch of mlexp's MLP on breast_cancer with the training rules vs without."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import numpy as np
    from conftest import compose
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    from mlexp.neural import build_torch_model

    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    epochs = 30
    per_epoch: Dict[str, List[float]] = {"rules": [], "none": []}
    for _ in range(repeats):
        for side, extra in (("none", ["rules=[]"]), ("rules", [])):
            cfg = compose(["model=mlp", f"model.max_epochs={epochs}", "model.early_stopping=false", *extra])
            net = build_torch_model(cfg.model, "classification", context={"seed": 0, "cfg": cfg})
            start = time.process_time()
            net.fit(X, y)
            per_epoch[side].append((time.process_time() - start) / epochs)
    none, rules = (statistics.median(per_epoch[k]) for k in ("none", "rules"))
    print(f"== rules_epoch: model=mlp on breast_cancer, {epochs} epochs, repeats={repeats}")
    print(f"  without rules {none * 1000:.2f} ms/epoch, with all rules {rules * 1000:.2f} ms/epoch "
          f"(CPU time), ratio {rules / none:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="breast_cancer,gss_income,pdp,rules_epoch")
    args = parser.parse_args()
    for case in args.cases.split(","):
        if case == "rules_epoch":
            rules_epoch(args.repeats)
        else:
            process_case(case, args.repeats)


if __name__ == "__main__":
    main()
