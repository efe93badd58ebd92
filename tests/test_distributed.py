"""Data-parallel PyTorch training (instance.processes): DistributedDataParallel over gloo matches one process."""

import numpy as np
import pytest

from conftest import compose

pytest.importorskip("skorch")
import torch  # noqa: E402

from mlexp.neural._modules import MLP  # noqa: E402

# Measured (bench/bench_torch_ddp.py, docs/benchmarks.md): 2 processes give the 1-process weights to
# ~6e-8 (float32 rounding of a different summation order); the bound leaves room for other CPUs' kernels.
WEIGHT_TOLERANCE = 1e-5


def _data(n=200):
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X[:n]).astype(np.float32), y[:n]


def _net(processes, overrides=()):
    from mlexp.models.model import build_model

    cfg = compose(["model=mlp", "model.max_epochs=12", "optimizer.batch_size=24", "model.patience=3",
                   "optimizer.lr=0.01", f"instance.processes={processes}", *overrides])
    return build_model(cfg.model, "classification", n_jobs=2, context={"seed": 3, "device": "cpu", "cfg": cfg})


def _weights(net):
    return torch.cat([p.detach().flatten() for p in net.module_.parameters()])


@pytest.fixture(scope="module")
def one_and_two():
    X, y = _data()
    return X, _net(1).fit(X, y), _net(2).fit(X, y)


def test_two_processes_train_the_same_model_as_one(one_and_two):
    X, one, two = one_and_two
    assert two.processes == 2 and type(two.module_) is MLP  # unwrapped after training, saved as usual
    assert (_weights(one) - _weights(two)).abs().max().item() < WEIGHT_TOLERANCE
    np.testing.assert_allclose(two.predict_proba(X), one.predict_proba(X), atol=1e-5)
    for key in ("train_loss", "valid_loss", "roc_auc"):  # every rank's share summed: the whole batch's numbers
        np.testing.assert_allclose(two.history[:, key], one.history[:, key], rtol=1e-5)
    assert len(two.history) == len(one.history) < 12  # early stopping decided alike on every rank


class _FailingMLP(MLP):
    """Breaks in the spawned rank only (rank 0 is this process), after a few steps."""

    def forward(self, x):
        if torch.distributed.get_rank() == 1 and torch.rand(()) < 0.2:
            raise RuntimeError("rank 1 failed")
        return super().forward(x)


@pytest.mark.timeout(300)
def test_a_failing_rank_ends_the_fit_with_its_error():
    X, y = _data()
    net = _net(2)
    net.set_params(module=_FailingMLP)
    with pytest.raises(Exception, match="rank 1 failed|Connection|closed|gloo"):
        net.fit(X, y)
    assert not torch.distributed.is_initialized()


def test_processes_come_from_the_instance_profile_and_are_checked():
    from mlexp.errors import MlexpError
    from mlexp.instance import resolve_resources

    assert compose(["instance=ml.g5.12xlarge"]).instance.processes == 4
    assert resolve_resources(compose(["instance.processes=2"]).instance).processes == 2
    with pytest.raises(MlexpError, match="instance.processes must be a whole number"):
        resolve_resources(compose(["instance.processes=0"]).instance)


def test_one_process_per_gpu(monkeypatch):
    import mlexp.instance as instance
    from mlexp.errors import MlexpError

    monkeypatch.setattr(instance, "gpu_available", lambda: True)
    monkeypatch.setattr(instance, "visible_gpus", lambda: 2)
    cfg = compose(["instance=ml.g5.12xlarge"]).instance  # 4 processes, 4 GPUs in the profile, 2 visible
    with pytest.raises(MlexpError, match="instance.processes=2 or fewer"):
        instance.resolve_resources(cfg)
    assert instance.resolve_resources(compose(["instance=ml.g5.12xlarge", "instance.processes=2"]).instance).processes == 2


def test_continuing_a_fit_is_refused_with_several_processes():
    X, y = _data(60)
    net = _net(2, ["model.max_epochs=1"])
    net.set_params(processes=1).fit(X, y)
    with pytest.raises(ValueError, match="starts from a fresh net"):
        net.set_params(processes=2).partial_fit(X, y)
