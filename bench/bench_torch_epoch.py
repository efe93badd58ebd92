"""Epoch time of mlexp's MLP (skorch net built from `model=mlp optimizer=adam`) vs a plain PyTorch loop.

Both train the same architecture with Adam on the same rows, batch size and thread count,
shuffle every epoch, and compute the validation loss on a 10% slice after each epoch (mlexp
also scores its objective, ROC AUC, on that slice and reports it: part of its epoch).
Prints seconds per epoch of each (wall: fastest and median epoch; CPU: process time of the
fastest epoch, which other load on a shared machine barely moves), alternating rounds so that
load hits both alike, and the ratios mlexp / plain (target: at most 1.15).

    python bench/bench_torch_epoch.py --rows 100000 --epochs 3 --rounds 2 --batch-size 32 --threads 1
"""

import argparse
import statistics
import time

import numpy as np


def data(rows: int, seed: int):
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=rows, n_features=20, n_informative=10, random_state=seed)
    return StandardScaler().fit_transform(X), y


def mlexp_epochs(X, y, args) -> tuple:
    from hydra import compose, initialize_config_module
    from skorch.callbacks import Callback

    from mlexp.models.model import build_model
    from mlexp.schema import register

    class CpuTime(Callback):
        """Process CPU time of each epoch (training, validation and the net's per-epoch scoring)."""

        def on_epoch_begin(self, net, **kwargs):
            self.start = time.process_time()

        def on_epoch_end(self, net, **kwargs):
            net.history.record("cpu", time.process_time() - self.start)

    register()
    overrides = ["model=mlp", "optimizer=adam", f"optimizer.batch_size={args.batch_size}",
                 f"model.hidden_sizes=[{args.hidden}]", f"model.max_epochs={args.epochs}",
                 "model.early_stopping=false", "model.validation_fraction=0.1"]
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    net = build_model(cfg.model, "classification", n_jobs=args.threads,
                      context={"seed": args.seed, "device": "cpu", "cfg": cfg})
    net.set_params(callbacks=[("cpu_time", CpuTime())])
    net.fit(X, y)
    return list(net.history[:, "dur"]), list(net.history[:, "cpu"])


def plain_epochs(X, y, args) -> tuple:
    import torch
    from torch import nn

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    order = np.random.default_rng(args.seed).permutation(len(X))
    n_valid = int(np.ceil(0.1 * len(X)))
    X_t = torch.as_tensor(X, dtype=torch.float32)
    y_t = torch.as_tensor(y, dtype=torch.int64)
    X_valid, y_valid = X_t[order[:n_valid]], y_t[order[:n_valid]]
    X_train, y_train = X_t[order[n_valid:]], y_t[order[n_valid:]]
    model = nn.Sequential(nn.Linear(X.shape[1], args.hidden), nn.ReLU(), nn.Linear(args.hidden, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    durations, cpu, history = [], [], []
    for _ in range(args.epochs):
        start, start_cpu = time.perf_counter(), time.process_time()
        model.train()
        permutation = torch.randperm(len(X_train))
        total = 0.0
        for i in range(0, len(X_train), args.batch_size):
            index = permutation[i:i + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(X_train[index]), y_train[index])
            loss.backward()
            optimizer.step()
            total += loss.item()
        model.eval()
        with torch.no_grad():
            valid = sum(loss_fn(model(X_valid[i:i + args.batch_size]), y_valid[i:i + args.batch_size]).item()
                        for i in range(0, n_valid, args.batch_size))
        history.append((total, valid))  # kept, as a real loop keeps its losses
        durations.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return durations, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    X, y = data(args.rows, args.seed)
    plain, mlexp, plain_cpu, mlexp_cpu = [], [], [], []
    for _ in range(args.rounds):  # alternated, so that load from other processes hits both alike
        wall, cpu = plain_epochs(X, y, args)
        plain += wall
        plain_cpu += cpu
        wall, cpu = mlexp_epochs(X, y, args)
        mlexp += wall
        mlexp_cpu += cpu
    # The fastest epoch of each is the least disturbed by other work on the machine; CPU time
    # (one thread) is the work done, whatever the machine's load.
    plain_s, mlexp_s = min(plain), min(mlexp)
    print(f"rows={args.rows} epochs={args.epochs} x {args.rounds} rounds batch_size={args.batch_size} "
          f"hidden={args.hidden} threads={args.threads}")
    print(f"plain PyTorch loop: {plain_s:.3f} s/epoch wall (fastest; median {statistics.median(plain):.3f}), "
          f"{min(plain_cpu):.3f} s/epoch CPU")
    print(f"mlexp MLP (skorch): {mlexp_s:.3f} s/epoch wall (fastest; median {statistics.median(mlexp):.3f}), "
          f"{min(mlexp_cpu):.3f} s/epoch CPU")
    print(f"ratio mlexp / plain, CPU time: {min(mlexp_cpu) / min(plain_cpu):.3f}")
    print(f"ratio mlexp / plain, wall time: {mlexp_s / plain_s:.3f}")


if __name__ == "__main__":
    main()
