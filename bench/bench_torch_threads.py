"""torch threads for mlexp's MLP: one thread vs all cores, narrow to wide layers, small to large batches.

For each shape, the fastest epoch of `model=mlp` with `model.n_jobs=1` and with
`model.n_jobs=<cores>` (alternated), their ratio, and what the default (`model.n_jobs: null`)
picks: the rule in mlexp.neural._net.training_threads is chosen from this table.

    python bench/bench_torch_threads.py --rows 20000 --epochs 2
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_torch_epoch import data  # noqa: E402


def fastest_epoch(X, y, hidden: int, batch: int, threads: int, epochs: int) -> float:
    from hydra import compose, initialize_config_module

    from mlexp.models.model import build_model
    from mlexp.schema import register

    register()
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=["model=mlp", f"model.hidden_sizes=[{hidden}]", f"model.n_jobs={threads}",
                                           f"optimizer.batch_size={batch}", f"model.max_epochs={epochs}",
                                           "model.early_stopping=false"])
    net = build_model(cfg.model, "classification", n_jobs=os.cpu_count(), context={"seed": 0, "cfg": cfg})
    return min(net.fit(X, y).history[:, "dur"])


def main() -> None:
    from mlexp.neural._modules import MLP
    from mlexp.neural._net import training_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    X, y = data(args.rows, args.features, 0)
    cores = os.cpu_count()
    print(f"rows={args.rows} features={args.features} cores={cores}; fastest epoch, seconds")
    print(f"{'hidden':>6} {'batch':>5} {'1 thread':>9} {f'{cores} threads':>10} {'speed-up':>8}  default")
    for hidden in (64, 256, 512, 1024):
        for batch in (32, 256, 1024):
            times = {1: [], cores: []}
            for _ in range(args.rounds):
                for threads in (1, cores):
                    times[threads].append(fastest_epoch(X, y, hidden, batch, threads, args.epochs))
            one, many = min(times[1]), min(times[cores])
            import torch

            torch.set_num_threads(cores)
            default = training_threads(None, MLP(args.features, 2, hidden_sizes=[hidden]), batch)
            print(f"{hidden:>6} {batch:>5} {one:>9.3f} {many:>10.3f} {one / many:>8.2f}  {default} thread(s)")


if __name__ == "__main__":
    main()
