"""The nets' training loop: Ctrl-C, batch sizes, the device-tensor data path, bf16, threads, labels, pickling, import cost."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import compose

pytest.importorskip("skorch")
import torch  # noqa: E402

from skorch.callbacks import Callback  # noqa: E402


def _data(n=240, seed=0):
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    rows = np.random.default_rng(seed).permutation(len(X))[:n]
    return StandardScaler().fit_transform(X[rows]).astype(np.float32), y[rows]


def _net(overrides=(), task="classification", device="cpu"):
    from mlexp.models.model import build_model

    cfg = compose(["model=mlp", "model.max_epochs=6", "model.early_stopping=false", *overrides])
    return build_model(cfg.model, task, n_jobs=1, context={"seed": 0, "device": device, "cfg": cfg})


class _Interrupt(Callback):
    """Raises KeyboardInterrupt (what Ctrl-C raises) at a given epoch, at its end or after its first batch."""

    def __init__(self, epoch=2, where="epoch"):
        self.epoch, self.where = epoch, where

    def on_batch_end(self, net, training=False, **kwargs):
        if self.where == "batch" and training and len(net.history) == self.epoch:
            raise KeyboardInterrupt

    def on_epoch_end(self, net, **kwargs):
        if self.where == "epoch" and len(net.history) == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("where", ["epoch", "batch"])
def test_keyboard_interrupt_inside_an_epoch_propagates_out_of_fit(where):
    X, y = _data()
    net = _net(["model.early_stopping=true", "model.patience=2"]).set_params(
        callbacks=[("interrupt", _Interrupt(epoch=2, where=where))])
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y)
    assert len(net.history) == 2  # stopped where Ctrl-C came, not at max_epochs


def test_early_stopping_still_ends_a_fit_quietly():
    X, y = _data()
    net = _net(["model.early_stopping=true", "model.patience=1", "model.max_epochs=200", "optimizer.lr=0.05",
                "model.hidden_sizes=[256]"]).fit(X, y)
    assert len(net.history) < 200


def test_batch_larger_than_the_training_rows_is_one_batch():
    X, y = _data(100)
    net = _net(["optimizer.batch_size=5000", "model.max_epochs=3"]).fit(X, y)
    assert list(net.history[:, "train_batch_count"]) == [1, 1, 1]
    assert net.history[-1, "train_loss"] < net.history[0, "train_loss"]


def test_string_labels_pickle_and_saved_model_round_trip(tmp_path):
    from mlexp.neural import load_torch_model, save_torch_model

    X, y = _data()
    labels = np.array(["benign", "malignant"])[y]
    net = _net(["model.max_epochs=15"]).fit(X, labels)
    assert list(net.classes_) == ["benign", "malignant"]
    predicted = net.predict(X)
    assert set(predicted) <= {"benign", "malignant"} and np.mean(predicted == labels) > 0.9
    again = pickle.loads(pickle.dumps(net))  # a fitted net pickles (no closures)
    np.testing.assert_array_equal(again.predict_proba(X), net.predict_proba(X))
    save_torch_model(net, tmp_path)
    reloaded = load_torch_model(tmp_path)
    np.testing.assert_array_equal(reloaded.predict(X), predicted)


def test_training_batches_are_index_slices_of_tensors_on_the_device(monkeypatch):
    """The CUDA data path, exercised on the CPU: the fold moves to the net's device once, as tensors;
    each batch is one index operation there (order drawn on that device); no DataLoader, no per-batch
    conversion. With device=cuda the same code runs with the tensors on the GPU."""
    import skorch.net
    from torch.utils import data

    from mlexp.neural._batches import TensorBatches

    X, y = _data(200)
    seen = {"moves": [], "randperm": [], "to_tensor": 0, "batches": []}

    class Watched(TensorBatches):
        def __init__(self, dataset, device="cpu", **kwargs):
            seen["moves"].append(str(device))
            super().__init__(dataset, device=device, **kwargs)

        def __iter__(self):
            for batch in super().__iter__():
                seen["batches"].append((batch[0].device, self.X.device, batch[0]._base is None))
                yield batch

    real_randperm = torch.randperm

    def randperm(n, *args, device=None, **kwargs):
        seen["randperm"].append(device)
        return real_randperm(n, *args, device=device, **kwargs)

    def counted_to_tensor(*args, **kwargs):
        seen["to_tensor"] += 1
        return real_to_tensor(*args, **kwargs)

    real_to_tensor = skorch.net.to_tensor
    monkeypatch.setattr(torch, "randperm", randperm)
    monkeypatch.setattr(skorch.net, "to_tensor", counted_to_tensor)
    monkeypatch.setattr(data.DataLoader, "__init__", lambda *a, **k: pytest.fail("a DataLoader was built"))
    net = _net(["optimizer.batch_size=16", "model.max_epochs=3"])
    net.set_params(iterator_train=Watched, iterator_valid=Watched)
    net.fit(X, y)
    assert seen["moves"] == ["cpu", "cpu"]  # training fold and validation slice, once each per fit
    assert seen["randperm"] == [torch.device("cpu")] * 3  # one shuffle per epoch, drawn on the fold's device
    assert len(seen["batches"]) == 3 * (12 + 2)  # 180 training rows / 16, 20 validation rows / 16
    assert all(batch == store for batch, store, _ in seen["batches"])
    assert seen["to_tensor"] == 0  # batches arrive as device tensors: skorch converts nothing per batch


def test_bf16_autocast_runs_the_forward_pass_in_bfloat16_and_still_learns():
    X, y = _data()
    dtypes = []

    class FirstLayerDtype(Callback):
        def on_train_begin(self, net, **kwargs):
            net.module_[0].register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))

    net = _net(["model.precision=bf16", "model.max_epochs=15", "optimizer.lr=0.01"])
    net.set_params(callbacks=[("dtype", FirstLayerDtype())], rules=None).fit(X, y)  # the rules probe in float32
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in net.module_.parameters())  # weights stay float32
    proba = net.predict_proba(X)
    assert proba.dtype == np.float32 and np.mean(proba.argmax(1) == y) > 0.9


def test_threads_follow_the_work_per_step_and_are_restored_after_fit():
    from mlexp.neural._modules import MLP
    from mlexp.neural._net import THREADED_WORK, training_threads

    before = torch.get_num_threads()
    narrow, wide = MLP(30, 2, hidden_sizes=[64]), MLP(64, 2, hidden_sizes=[512])
    assert training_threads(None, narrow, 32) == 1
    assert 1024 * 64 * 512 >= THREADED_WORK and training_threads(None, wide, 1024) == before
    assert training_threads(None, wide, 1024, processes=2) == max(1, before // 2)
    assert training_threads(3, narrow, 32) == 3  # model.n_jobs set: taken as it is
    X, y = _data(100)
    _net(["model.n_jobs=1", "model.max_epochs=1"]).fit(X, y)
    assert torch.get_num_threads() == before


def test_instance_threads_cap_the_default_and_model_n_jobs_overrides():
    assert compose(["model=mlp"]).model.n_jobs is None
    assert _net().n_jobs is None and _net(["model.n_jobs=2"]).n_jobs == 2


FAKE_PYG = {
    "torch_geometric/__init__.py": "import os\nopen(os.environ['PYG_MARKER'], 'w').write('imported')\n",
    "torch_geometric/data.py": "class Data:\n    def to(self, device):\n        return ('moved', str(device))\n",
}


def test_skorch_is_imported_without_probing_torch_geometric(tmp_path):
    """On images with PyG installed, skorch's import of torch_geometric cost ~10 s (gpu-findings.md): mlexp's
    nets import skorch without it, and skorch still handles PyG data once the user imports PyG."""
    for name, text in FAKE_PYG.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    marker = tmp_path / "marker"
    code = textwrap.dedent("""
        import os, sys
        import numpy as np
        from mlexp.neural import TorchClassifier, MLP
        net = TorchClassifier(MLP, max_epochs=1, train_split=None).fit(np.eye(4, dtype=np.float32), [0, 1, 0, 1])
        print("after fit:", "torch_geometric" in sys.modules, os.path.exists(os.environ["PYG_MARKER"]))
        import skorch.utils, torch_geometric.data
        print("skorch sees PyG:", skorch.utils.to_tensor(torch_geometric.data.Data(), device="cpu"))
    """)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "PYG_MARKER": str(marker)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "after fit: False False" in out.stdout
    assert "skorch sees PyG: ('moved', 'cpu')" in out.stdout
