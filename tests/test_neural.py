"""PyTorch models (model=mlp, torch_linear) with the optimizer group: accuracy, steps, regularization, saving, errors."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import compose, read_metrics, run_cli, run_inprocess

pytest.importorskip("skorch")

# One torch thread: on a small shared machine, intra-op threads on tiny batches only contend.
FAST = ["splitter.n_splits=3", "model.max_epochs=25", "model.n_jobs=1"]


def _breast_cancer(n=None):
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:n], y[:n]
    return StandardScaler().fit_transform(X), y


def _net(overrides, task="classification", seed=0):
    """The estimator mlexp builds for these overrides (composed exactly as the CLI composes them)."""
    from mlexp.models.model import build_model

    cfg = compose(overrides)
    return build_model(cfg.model, task, n_jobs=1, context={"seed": seed, "device": "cpu", "cfg": cfg})


def test_no_torch_import_for_config_and_sklearn_modules():
    code = "import sys, mlexp.artifacts, mlexp.models.model, mlexp.neural; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_mlp_breast_cancer_accuracy_and_curves(tmp_path):
    result = run_inprocess(["model=mlp", "optimizer=adam", *FAST], tmp_path)
    cv = result.metrics["cv"]
    assert cv["accuracy"]["mean"] >= 0.95
    curves = pd.read_csv(tmp_path / "training_curves.csv")
    assert set(curves.columns) >= {"fold", "epoch", "train_loss", "valid_loss", "roc_auc"}
    assert sorted(curves["fold"].unique()) == [0, 1, 2]
    first, last = curves[curves.epoch == 1], curves.groupby("fold").tail(1)
    assert last["train_loss"].mean() < first["train_loss"].mean()  # it learns
    assert (tmp_path / "training_curves.png").stat().st_size > 1000
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "model_torch.json").is_file()


def test_mlp_diabetes_beats_mean_predictor(tmp_path):
    from sklearn.datasets import load_diabetes

    result = run_inprocess(["model=mlp", "data=diabetes", "splitter=kfold", "model.hidden_sizes=[32]",
                            "optimizer.lr=0.01", *FAST], tmp_path)
    y = load_diabetes().target
    rmse = result.metrics["cv"]["rmse"]["mean"]
    assert rmse < 0.9 * np.std(y), (rmse, np.std(y))
    curves = pd.read_csv(tmp_path / "training_curves.csv")
    assert "rmse" in curves.columns


@pytest.mark.parametrize("optimizer, expected", [("gd", lambda n: 1), ("sgd", lambda n: n),
                                                 ("minibatch", lambda n: math.ceil(n / 32))])
def test_optimizer_steps_per_epoch(optimizer, expected):
    import torch.optim.optimizer as torch_optimizer

    X, y = _breast_cancer(100)
    net = _net(["model=torch_linear", f"optimizer={optimizer}", "model.max_epochs=2",
                "model.validation_fraction=0.0", "model.early_stopping=false"])
    steps = []
    handle = torch_optimizer.register_optimizer_step_post_hook(lambda *args: steps.append(1))
    try:
        net.fit(X, y)
    finally:
        handle.remove()
    assert len(steps) == 2 * expected(100)
    assert list(net.history[:, "train_batch_count"]) == [expected(100)] * 2


def test_gradient_descent_modes_give_different_curves():
    X, y = _breast_cancer(200)
    losses = {}
    for optimizer in ("gd", "sgd", "minibatch"):
        net = _net(["model=torch_linear", f"optimizer={optimizer}", "optimizer.lr=0.01", "model.max_epochs=5"])
        losses[optimizer] = net.fit(X, y).history[:, "train_loss"]
    # Same step size: one sample per step moves furthest per epoch, one step per epoch least.
    assert losses["sgd"][-1] < losses["minibatch"][-1] < losses["gd"][-1]


def test_l1_makes_first_layer_sparser_dropout_and_noise_change_result():
    X, y = _breast_cancer()
    base = ["model=mlp", "model.max_epochs=30", "model.early_stopping=false", "optimizer.lr=0.01"]

    def first_layer(net):
        return net.module_[0].weight.detach().numpy()

    plain = _net(base).fit(X, y)
    sparse = _net(base + ["model.l1=0.001"]).fit(X, y)
    dropped = _net(base + ["model.dropout=0.3"]).fit(X, y)
    noisy = _net(base + ["model.noise_std=0.3"]).fit(X, y)
    assert np.mean(np.abs(first_layer(sparse)) < 0.01) > 2 * np.mean(np.abs(first_layer(plain)) < 0.01)
    assert np.abs(first_layer(sparse)).sum() < 0.5 * np.abs(first_layer(plain)).sum()
    assert not np.allclose(plain.predict_proba(X), dropped.predict_proba(X))
    assert not np.allclose(plain.predict_proba(X), noisy.predict_proba(X))  # augmentation changes it too


def test_early_stopping_stops_and_restores_best_epoch():
    import torch

    X, y = _breast_cancer(120)
    net = _net(["model=mlp", "model.hidden_sizes=[256,256]", "model.max_epochs=200", "model.patience=5",
                "model.validation_fraction=0.3", "optimizer.lr=0.01", "optimizer.batch_size=8"])
    net.fit(X, y)
    valid_losses = net.history[:, "valid_loss"]
    assert len(valid_losses) < 200
    best = int(np.argmin(valid_losses))
    assert len(valid_losses) - 1 - best == 5  # stopped after `patience` epochs without improvement
    _, valid = net.get_split_datasets(X, y)
    Xv, yv = valid.dataset.X[valid.indices], valid.dataset.y[valid.indices]
    with torch.no_grad():
        restored = torch.nn.functional.cross_entropy(net.infer(Xv), yv).item()
    assert restored == pytest.approx(valid_losses[best], rel=1e-4)
    assert restored < valid_losses[-1]


def test_same_seed_same_numbers_and_reload_predicts_identically(tmp_path):
    from mlexp.artifacts import load_model
    from mlexp.data import load_dataset

    overrides = ["model=mlp", "model.hidden_sizes=[16]", "splitter.n_splits=2", "model.max_epochs=8",
                 "optimizer=momentum", "model.n_jobs=1"]
    first = run_inprocess(overrides, tmp_path / "a")
    second = run_inprocess(overrides, tmp_path / "b")
    assert first.metrics["cv"] == second.metrics["cv"] and first.metrics["test"] == second.metrics["test"]
    other_seed = run_inprocess(overrides + ["seed=7"], tmp_path / "c")
    assert other_seed.metrics["cv"] != first.metrics["cv"]

    model, card = load_model(tmp_path / "a")
    X = load_dataset(compose(overrides).data, task="auto").features
    np.testing.assert_array_equal(model.predict_proba(X), first.model.predict_proba(X))
    assert type(model.named_steps["model"]).__name__ == "TorchClassifier"


def test_cli_torch_linear_gd_then_predict(workdir):
    from sklearn.datasets import load_diabetes

    run_cli(["model=torch_linear", "optimizer=gd", "data=diabetes", "splitter=kfold", "splitter.n_splits=2",
             "model.max_epochs=40", "model.n_jobs=1", "hydra.run.dir=train"], cwd=workdir)
    metrics = read_metrics(workdir / "train")
    y = load_diabetes().target
    assert metrics["cv"]["rmse"]["mean"] < np.std(y)
    assert json.loads((workdir / "train" / "model_torch.json").read_text())["module"] == "mlexp.neural.LinearModel"
    frame = load_diabetes(as_frame=True, scaled=False).frame.drop(columns="target").head(20)
    frame.to_csv(workdir / "new.csv", index=False)
    run_cli(["mode=predict", "mode.run_dir=train", "mode.input=new.csv", "hydra.run.dir=predict"], cwd=workdir)
    predictions = pd.read_csv(workdir / "predict" / "predictions.csv")
    assert len(predictions) == 20 and predictions["prediction"].between(0, 400).all()


@pytest.mark.parametrize("override, message", [
    ("optimizer.lr=-0.1", "learning rate must be a positive"),
    ("model.precision=fp16", "use fp32 or bf16"),
    ("model.n_jobs=0", "a number of torch threads"),
    ("optimizer._target_=torch.optim.Nope", "cannot be imported"),
    ("+optimizer.foo=1", "has no parameter(s) foo"),
])
def test_bad_optimizer_input_is_a_clear_error(tmp_path, override, message):
    from mlexp.errors import MlexpError

    with pytest.raises(MlexpError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_inprocess(["model=torch_linear", "splitter.n_splits=2", "model.max_epochs=1", override], tmp_path)


def test_unknown_optimizer_option_lists_the_options(workdir):
    done = run_cli(["model=mlp", "optimizer=rmsprop_nope"], cwd=workdir, check=False)
    assert done.returncode == 1  # refused by Hydra at composition, before anything runs
    assert "Could not find 'optimizer/rmsprop_nope'" in done.stderr and "minibatch" in done.stderr
