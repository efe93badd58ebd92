"""Data-parallel training of a net: DistributedDataParallel over processes from torch.multiprocessing (gloo on CPU, NCCL on GPUs).

This process is rank 0 and fits the user's net (its reporter, progress bar, pruning and
callbacks work as in a single-process fit); ranks 1..N-1 are spawned for the fit and end with
it. Every rank trains the same module on its share of every global batch (TensorBatches), and
DistributedDataParallel averages the gradients, so an update equals one process's update on
the whole batch up to floating-point summation order. The train/validation split is made once,
here, and every rank validates on the whole slice: losses, early stopping and the restored best
epoch are the same on every rank.
"""

import os
import sys
import time
from datetime import timedelta
from functools import partial
from typing import Any, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist

from mlexp.neural._batches import dataset_tensors

__all__ = ["fit_data_parallel", "all_ranks_sum"]

# A collective waits this long for a slow rank; a crashed rank ends the fit sooner (its sockets
# close and the collective fails), and one that dies while starting is seen by polling (_await_ranks).
_TIMEOUT = timedelta(minutes=10)
_HOST = "127.0.0.1"  # the ranks are processes of this machine


def fit_data_parallel(net: Any, X: torch.Tensor, y: torch.Tensor, **fit_params) -> None:
    """Fit ``net`` (initialized, rank 0) with ``net.processes`` ranks; the fitted weights end up in ``net``."""
    world = int(net.processes)
    if dist.is_initialized():
        raise ValueError(f"processes={world}: this process already belongs to a torch.distributed job (torchrun?); "
                         "mlexp starts its own processes. Use processes=1 inside such a job.")
    devices = _devices(net.device, world)
    train, valid = net.get_split_datasets(X, y)
    train, valid = dataset_tensors(train), None if valid is None else dataset_tensors(valid)
    # Every rank draws the same batch order: the workers start from this process's generator state.
    rng = (torch.get_rng_state(), torch.cuda.get_rng_state(devices[0]) if devices[0] != "cpu" else None)
    worker = _worker_copy(net)
    arrays = [None if t is None else t.numpy() for t in (*train, *(valid or (None, None)))]
    store = dist.TCPStore(_HOST, 0, world, is_master=True, wait_for_workers=False, timeout=_TIMEOUT)
    context = torch.multiprocessing.start_processes(
        _rank_main, args=(worker, arrays, rng, store.port, world, devices, torch.get_num_threads(), fit_params),
        nprocs=world - 1, join=False, start_method="spawn")
    try:
        _await_ranks(store, context, world)
        _join(store, 0, world, devices[0])
        _train_rank(net, train, valid, 0, world, devices[0], fit_params)
    except BaseException:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    while not context.join():  # raises with the worker's traceback if a rank failed
        pass


def all_ranks_sum(total: Optional[torch.Tensor], rows: int) -> Tuple[torch.Tensor, int]:
    """An epoch's summed loss and row count over every rank (one collective per epoch)."""
    device = total.device if total is not None else "cpu"
    both = torch.stack([total if total is not None else torch.zeros((), device=device),
                        torch.tensor(float(rows), device=device)])
    dist.all_reduce(both)
    return both[0], int(both[1].item())


def _devices(device: Optional[str], world: int) -> list:
    kind = torch.device(device or "cpu").type
    if kind != "cuda":
        return ["cpu"] * world
    if torch.cuda.device_count() < world:
        raise ValueError(f"processes={world} needs one GPU per process; {torch.cuda.device_count()} visible.")
    return [f"cuda:{rank}" for rank in range(world)]


def _worker_copy(net: Any) -> Any:
    """An unfitted copy of ``net`` for the other ranks: same parameters and module shape, no reporting."""
    from sklearn.base import clone

    worker = clone(net)
    silent = {f"callbacks__{name}": None for name, _ in net.callbacks_
              if name not in ("epoch_timer", "early_stopping")}
    return worker.set_params(module__n_features=net.n_features_in_, module__n_outputs=net._n_outputs(),
                             processes=1, **silent)


def _rank_main(index: int, net: Any, arrays: list, rng: tuple, port: int, world: int, devices: list,
               threads: int, fit_params: dict) -> None:
    rank = index + 1
    torch.set_num_threads(threads)
    store = dist.TCPStore(_HOST, port, world, is_master=False, timeout=_TIMEOUT)
    store.set(f"mlexp/ready/{rank}", "1")
    _join(store, rank, world, devices[rank])
    try:
        tensors = [None if a is None else torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
        valid = None if tensors[2] is None else (tensors[2], tensors[3])
        net.set_params(device=devices[rank])
        net.initialize()  # its weights are replaced by rank 0's when DistributedDataParallel wraps the module
        torch.set_rng_state(rng[0])
        if rng[1] is not None:
            torch.cuda.set_rng_state(rng[1], devices[rank])
        _train_rank(net, (tensors[0], tensors[1]), valid, rank, world, devices[rank], fit_params)
    finally:
        dist.destroy_process_group()
    # Done, and everything this rank computed is in rank 0 already. Skip the interpreter's teardown:
    # a C++ destructor in it aborted about one exit in six here (SIGABRT, "terminate called without
    # an active exception"), which would fail a fit that has succeeded.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _await_ranks(store: Any, context: Any, world: int) -> None:
    """Wait until every spawned rank has started; one that dies first ends the fit with its error, at once."""
    keys = [f"mlexp/ready/{rank}" for rank in range(1, world)]
    while not store.check(keys):
        for index, process in enumerate(context.processes):
            if process.exitcode is not None:
                raise RuntimeError(f"data-parallel rank {index + 1} of {world} ended before training started "
                                   f"(exit code {process.exitcode}; its error is printed above).")
        time.sleep(0.05)


def _join(store: Any, rank: int, world: int, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=_TIMEOUT)


def _train_rank(net: Any, train: tuple, valid: Optional[tuple], rank: int, world: int, device: str,
                fit_params: dict) -> None:
    from torch.nn.parallel import DistributedDataParallel
    from skorch.dataset import Dataset

    split = net.train_split
    net.train_split = None if valid is None else partial(_given_split, valid=Dataset(*valid))
    net.module_ = DistributedDataParallel(net.module_, device_ids=[torch.device(device)] if device.startswith("cuda") else None)
    net._ranks = (rank, world)
    try:
        net.train_loop(*train, **fit_params)
    finally:
        net.module_ = net.module_.module
        net.train_split = split
        del net._ranks
        vars(net).pop("_share", None)


def _given_split(dataset: Any, y: Any = None, valid: Any = None, **kwargs) -> tuple:
    return dataset, valid
