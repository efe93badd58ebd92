"""Data-parallel MLP fit: `instance.processes=2` (DistributedDataParallel, gloo on CPU) vs one process.

Same net (`model=mlp optimizer=adam`), data, seed, epochs and global batch size; each fit timed
whole (the second process's start-up included) and per epoch (rank 0's epoch timer), rounds
alternated so that load hits both alike. Also prints how far the two fitted models are apart
(the tolerance tests/test_distributed.py holds).

    python bench/bench_torch_ddp.py --rows 200000 --hidden 512 --batch-size 1024 --epochs 3
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_torch_epoch import data  # noqa: E402


def fit(X, y, args, processes: int):
    from hydra import compose, initialize_config_module

    from mlexp.models.model import build_model
    from mlexp.schema import register

    register()
    overrides = ["model=mlp", f"optimizer={args.optimizer}", f"optimizer.batch_size={args.batch_size}",
                 f"model.hidden_sizes=[{args.hidden}]", f"model.max_epochs={args.epochs}",
                 "model.early_stopping=false", f"instance.processes={processes}"]
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    net = build_model(cfg.model, "classification", n_jobs=args.threads or os.cpu_count(),
                      context={"seed": args.seed, "device": args.device, "cfg": cfg})
    start = time.perf_counter()
    net.fit(X, y)
    return time.perf_counter() - start, min(net.history[:, "dur"]), net


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="the instance's threads (0: all cores)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimizer", default="adam", help="an optimizer option (adam, minibatch, ...)")
    args = parser.parse_args()
    X, y = data(args.rows, args.features, args.seed)
    whole, epoch, nets = {1: [], args.processes: []}, {1: [], args.processes: []}, {}
    for _ in range(args.rounds):
        for processes in (1, args.processes):
            seconds, fastest, nets[processes] = fit(X, y, args, processes)
            whole[processes].append(seconds)
            epoch[processes].append(fastest)
    one, many = (torch.cat([p.detach().flatten() for p in nets[k].module_.parameters()]) for k in (1, args.processes))
    print(f"rows={args.rows} features={args.features} hidden={args.hidden} batch_size={args.batch_size} "
          f"epochs={args.epochs} x {args.rounds} rounds device={args.device} cores={os.cpu_count()}")
    for processes in (1, args.processes):
        print(f"{processes} process(es): fit {min(whole[processes]):.2f} s (median "
              f"{statistics.median(whole[processes]):.2f}), fastest epoch {min(epoch[processes]):.3f} s")
    print(f"speed-up {args.processes} vs 1, whole fit: {min(whole[1]) / min(whole[args.processes]):.2f}x; "
          f"per epoch: {min(epoch[1]) / min(epoch[args.processes]):.2f}x")
    proba = [nets[k].predict_proba(X[:20000]) for k in (1, args.processes)]
    print(f"fitted weights: max |difference| {(one - many).abs().max().item():.2e}, "
          f"relative {((one - many).norm() / one.norm()).item():.2e}; predicted probabilities: max |difference| "
          f"{abs(proba[0] - proba[1]).max():.2e}, same class for {(proba[0].argmax(1) == proba[1].argmax(1)).mean():.4%}")


if __name__ == "__main__":
    main()
