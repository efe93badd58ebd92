"""MLP fit throughput of mlexp (skorch net built from `model=mlp optimizer=adam`) vs a plain PyTorch loop.

Both train the same architecture with Adam on the same rows, epochs and batch size, on the
same device: a 10% validation slice, batches reshuffled every epoch, the validation loss after
each epoch (mlexp also scores its objective, ROC AUC, on that slice and reports it: part of
its epoch). The plain loop is written as a careful user would on a GPU: the data moved to the
device once, `torch.randperm` index batches there, losses summed on the device (no sync per
batch), `torch.cuda.synchronize()` before the clock stops. Each side's fit is timed whole,
from NumPy arrays to a fitted model, alternating rounds so that load hits both alike; the
figure is rows per second of mlexp over the plain loop's (goal: >= 0.95 on a GPU, >= 0.9 on
a multi-core CPU). Threads: the plain loop uses torch's default (all cores); mlexp its default
(`model.n_jobs: null`, the instance's threads for wide layers) unless --threads sets both.

    python bench/bench_torch_epoch.py --rows 300000 --features 64 --hidden 512 --batch-size 1024 --epochs 8
    python bench/bench_torch_epoch.py --device cuda --precision bf16 ...
"""

import argparse
import os
import statistics
import time

import numpy as np


def data(rows: int, features: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32)
    w = rng.standard_normal(features)
    y = (X @ w + 0.5 * rng.standard_normal(rows) > 0).astype(np.int64)
    return X, y


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def mlexp_fit(X, y, args) -> tuple:
    """Wall and CPU seconds of the whole fit, and the fastest epoch's wall seconds (skorch's epoch timer)."""
    from hydra import compose, initialize_config_module

    from mlexp.models.model import build_model
    from mlexp.schema import register

    register()
    overrides = ["model=mlp", "optimizer=adam", f"optimizer.batch_size={args.batch_size}",
                 f"model.hidden_sizes=[{args.hidden}]", f"model.max_epochs={args.epochs}",
                 "model.early_stopping=false", "model.validation_fraction=0.1", f"model.precision={args.precision}"]
    if args.threads:
        overrides.append(f"model.n_jobs={args.threads}")
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    net = build_model(cfg.model, "classification", n_jobs=args.threads or os.cpu_count(),
                      context={"seed": args.seed, "device": args.device, "cfg": cfg})
    _sync(args.device)
    start, cpu = time.perf_counter(), time.process_time()
    net.fit(X, y)
    _sync(args.device)
    return time.perf_counter() - start, time.process_time() - cpu, min(net.history[:, "dur"])


def plain_fit(X, y, args) -> tuple:
    import torch
    from torch import nn

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    _sync(args.device)
    start, cpu = time.perf_counter(), time.process_time()
    X_all = torch.as_tensor(X).to(device)
    y_all = torch.as_tensor(y).to(device)
    order = torch.randperm(len(X_all), device=device)
    n_valid = int(np.ceil(0.1 * len(X_all)))
    X_valid, y_valid = X_all[order[:n_valid]], y_all[order[:n_valid]]
    X_train, y_train = X_all[order[n_valid:]], y_all[order[n_valid:]]
    model = nn.Sequential(nn.Linear(X.shape[1], args.hidden), nn.ReLU(), nn.Linear(args.hidden, 2)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    history, epochs = [], []
    for _ in range(args.epochs):
        epoch_start = time.perf_counter()
        model.train()
        permutation = torch.randperm(len(X_train), device=device)
        total = torch.zeros((), device=device)
        for i in range(0, len(X_train), args.batch_size):
            index = permutation[i:i + args.batch_size]
            optimizer.zero_grad()
            with autocast:
                logits = model(X_train[index])
            loss = loss_fn(logits.float(), y_train[index])
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(index)
        model.eval()
        valid = torch.zeros((), device=device)
        with torch.no_grad(), autocast:
            for i in range(0, n_valid, args.batch_size):
                logits = model(X_valid[i:i + args.batch_size])
                valid += loss_fn(logits.float(), y_valid[i:i + args.batch_size]) * len(logits)
        history.append(((total / len(X_train)).item(), (valid / n_valid).item()))  # one sync per epoch
        epochs.append(time.perf_counter() - epoch_start)
    _sync(args.device)
    return time.perf_counter() - start, time.process_time() - cpu, min(epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both (0: each side's default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    X, y = data(args.rows, args.features, args.seed)
    plain_fit(X[:2048], y[:2048], argparse.Namespace(**{**vars(args), "epochs": 1}))  # warm-up (CUDA context, kernels)
    mlexp_fit(X[:2048], y[:2048], argparse.Namespace(**{**vars(args), "epochs": 1}))
    times, cpu, epochs = ({"plain": [], "mlexp": []} for _ in range(3))
    for _ in range(args.rounds):  # alternated, so that load from other processes hits both alike
        for side, fit in (("plain", plain_fit), ("mlexp", mlexp_fit)):
            whole, work, epoch = fit(X, y, args)
            times[side].append(whole)
            cpu[side].append(work)
            epochs[side].append(epoch)
    rows = 0.9 * args.rows * args.epochs
    print(f"rows={args.rows} features={args.features} hidden={args.hidden} batch_size={args.batch_size} "
          f"epochs={args.epochs} x {args.rounds} rounds device={args.device} precision={args.precision} "
          f"threads={args.threads or 'default'} (cores: {os.cpu_count()})")
    for side, label in (("plain", "plain PyTorch loop"), ("mlexp", "mlexp MLP (skorch)")):
        best = min(times[side])
        print(f"{label}: fit {best:.2f} s wall (fastest; median {statistics.median(times[side]):.2f}), "
              f"{rows / best:,.0f} rows/s; {min(cpu[side]):.2f} s CPU; fastest epoch {min(epochs[side]):.3f} s")
    print(f"throughput mlexp / plain, whole fit (wall): {min(times['plain']) / min(times['mlexp']):.3f}")
    print(f"throughput mlexp / plain, fastest epoch (wall): {min(epochs['plain']) / min(epochs['mlexp']):.3f}")
    # CPU time is the work done whatever else runs on the machine (with one thread; with more,
    # threads spinning on a busy machine inflate it): the figure to trust on a loaded machine.
    print(f"work mlexp / plain, whole fit (CPU time): {min(cpu['plain']) / min(cpu['mlexp']):.3f}")


if __name__ == "__main__":
    main()
