"""Continual strategies on split digits (0-4 then 5-9): average accuracy, backward and forward transfer, seconds.

    python bench/bench_continual.py [--epochs 10] [--seeds 42] [--strategies naive,ewc,si,replay,exemplar,gem,lwf]

Each strategy runs `mode=incremental model=mlp data=digits` with the tasks of the issue (class-
incremental, 30% test rows) and its default settings. Side by side: a plain PyTorch loop doing
naive fine-tuning on the same tensors (same module, optimizer, batch size and epochs), to show
what mlexp's plugin loop costs per epoch.
"""

import argparse
import contextlib
import io
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPLIT = ["mode=incremental", "model=mlp", "data=digits", "continual.tasks.column=target",
         "continual.tasks.values=[[0,1,2,3,4],[5,6,7,8,9]]", "test_size=0.3"]


def compose(overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from mlexp.schema import register

    register()
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def plain_loop_seconds(epochs: int, rounds: int = 5) -> tuple:
    """Seconds for naive fine-tuning over both tasks: a hand-written loop vs mlexp's Trainer (no plugin)."""
    import torch
    from sklearn.datasets import load_digits

    from mlexp.neural import MLP
    from mlexp.neural.continual.loop import Trainer

    X, y = load_digits(return_X_y=True)
    X, y = torch.as_tensor(X / 16.0, dtype=torch.float32), torch.as_tensor(y)
    tasks = [(X[y < 5], y[y < 5]), (X[y >= 5], y[y >= 5])]
    settings = {"optimizer": torch.optim.Adam, "lr": 0.001, "batch_size": 32}

    def plain() -> None:
        torch.manual_seed(0)
        module, loss_fn = MLP(64, 10, [64]), torch.nn.CrossEntropyLoss()
        for t, (Xt, yt) in enumerate(tasks):
            optimizer = torch.optim.Adam(module.parameters(), lr=0.001)
            generator = torch.Generator().manual_seed(t)
            for _ in range(epochs):
                order = torch.randperm(len(Xt), generator=generator)
                for start in range(0, len(Xt), 32):
                    index = order[start:start + 32]
                    optimizer.zero_grad()
                    loss_fn(module(Xt[index]), yt[index]).backward()
                    optimizer.step()

    def ours() -> None:
        torch.manual_seed(0)
        trainer = Trainer(MLP(64, 10, [64]), torch.nn.CrossEntropyLoss(), settings, epochs)
        for t, (Xt, yt) in enumerate(tasks):
            trainer.fit(Xt, yt, t)

    times = {"plain": [], "mlexp": []}
    for _ in range(rounds):  # interleaved
        for name, call in (("plain", plain), ("mlexp", ours)):
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["plain"]), statistics.median(times["mlexp"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--strategies", default="naive,ewc,si,replay,exemplar,gem,lwf")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    sys.path.insert(0, str(ROOT))
    import torch

    from mlexp.neural.continual.mode import run_incremental

    torch.set_num_threads(1)
    print(f"{'strategy':<10} {'seed':>5} {'ACC':>7} {'BWT':>8} {'FWT':>8} {'forgetting':>10}  matrix                 seconds")
    with tempfile.TemporaryDirectory(prefix="bench-continual-") as temporary:
        for strategy in args.strategies.split(","):
            for seed in args.seeds.split(","):
                out = Path(temporary) / f"{strategy}_{seed}"
                start = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):
                    run_incremental(compose([*SPLIT, f"continual={strategy}", f"continual.epochs={args.epochs}",
                                             f"seed={seed}"]), run_dir=out)
                seconds = time.perf_counter() - start
                c = json.loads((out / "continual.json").read_text())
                matrix = str([[round(v, 3) for v in row] for row in c["matrix"]])
                print(f"{strategy:<10} {seed:>5} {c['average']:>7.4f} {c['backward_transfer']:>+8.4f} "
                      f"{c['forward_transfer']:>+8.4f} {c['forgetting']:>10.4f}  {matrix:<22} {seconds:>6.1f}",
                      flush=True)
    plain, ours = plain_loop_seconds(args.epochs)
    print(f"\nnaive fine-tuning, {args.epochs} epochs per task: plain PyTorch loop {plain:.3f}s, mlexp Trainer "
          f"{ours:.3f}s, ratio {ours / plain:.2f}")


if __name__ == "__main__":
    main()
