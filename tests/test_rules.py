"""Training rules (rules=[...]): broken configurations trigger exactly their rule, a healthy run none."""

import json

import numpy as np
import pytest

from conftest import compose, run_inprocess

torch = pytest.importorskip("torch")
from skorch.callbacks import Callback  # noqa: E402

from mlexp.errors import MlexpError  # noqa: E402


class ScaleWeights(Callback):
    """Multiply every initial parameter by ``factor`` (tiny initial weights), before the rules record them."""

    def __init__(self, factor: float = 0.1):
        self.factor = factor

    def on_train_begin(self, net, **kwargs):
        with torch.no_grad():
            for parameter in net.module_.parameters():
                parameter.mul_(self.factor)


def net_for(overrides, task="classification", before=(), **params):
    """mlexp's own net for ``model=mlp`` + overrides (the rules callback comes from cfg.rules, as in a run)."""
    from mlexp.neural import build_torch_model

    cfg = compose(["model=mlp", *overrides])
    net = build_torch_model(cfg.model, task, context={"seed": 0, "cfg": cfg})
    if before:
        params["callbacks"] = list(before) + (net.callbacks or [])  # the rules run after them (the net adds them last)
    return net.set_params(**params) if params else net


def triggered(net) -> set:
    rules = dict(net.callbacks_)["training_rules"]
    return {finding["rule"] for finding in rules.fit_["findings"]}


@pytest.fixture(scope="module")
def breast_cancer():
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


@pytest.fixture(scope="module")
def diabetes():
    from sklearn.datasets import load_diabetes
    from sklearn.preprocessing import StandardScaler

    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y.astype(np.float32)


def test_zero_learning_rate_triggers_loss_not_decreasing_only(breast_cancer):
    net = net_for(["model.max_epochs=12", "model.early_stopping=false"], lr=0.0)  # config refuses lr=0: set on the net
    net.fit(*breast_cancer)
    assert triggered(net) == {"loss_not_decreasing"}


def test_deep_sigmoid_net_with_tiny_initial_weights_triggers_vanishing_gradient_only(breast_cancer):
    net = net_for(["model.activation=sigmoid", "model.hidden_sizes=[32,32,32,32,32,32,32,32]", "model.max_epochs=15",
                   "model.early_stopping=false"], before=[("tiny_init", ScaleWeights(0.1))])
    net.fit(*breast_cancer)
    assert triggered(net) == {"vanishing_gradient"}
    first = dict(net.callbacks_)["training_rules"].fit_["epochs"][0]["grad_mean_abs"]
    assert first["0"] < 1e-7 < first["16"]  # the first layer's gradient vanished, the output layer's did not


def test_big_net_on_sixty_rows_triggers_overfit_only(diabetes):
    X, y = diabetes
    rows = np.random.default_rng(0).choice(len(X), 60, replace=False)
    net = net_for(["model.hidden_sizes=[256,256]", "model.max_epochs=200"], task="regression")
    net.fit(X[rows], y[rows])
    assert triggered(net) == {"overfit"}


def test_huge_learning_rate_triggers_exploding_tensor_only_and_stops_with_the_cause(diabetes):
    net = net_for(["optimizer=sgd", "model.max_epochs=20"], task="regression", lr=100.0)
    with pytest.raises(MlexpError, match="exploding_tensor.*optimizer.lr"):
        net.fit(*diabetes)
    assert triggered(net) == {"exploding_tensor"}
    assert dict(net.callbacks_)["training_rules"].fit_["stopped"]["rule"] == "exploding_tensor"


def test_healthy_net_triggers_no_rule(breast_cancer):
    net = net_for([])
    net.fit(*breast_cancer)
    assert triggered(net) == set() and len(net.history) > 10


def test_stop_action_ends_training_at_the_epoch_the_rule_fires(diabetes):
    X, y = diabetes
    rows = np.random.default_rng(0).choice(len(X), 60, replace=False)
    net = net_for(["model.hidden_sizes=[256,256]", "model.max_epochs=200", "rules.overfit.action=stop",
                   "model.early_stopping=false"], task="regression")
    net.fit(X[rows], y[rows])
    fit = dict(net.callbacks_)["training_rules"].fit_
    assert fit["stopped"]["rule"] == "overfit" and len(net.history) == fit["stopped"]["epoch"] < 200


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("mlp")
    run_inprocess(["model=mlp", "explain=none", "save_model=false", "splitter.n_splits=3", "tracking=tensorboard"],
                  run_dir)
    return run_dir


def test_run_writes_diagnostics_for_every_fit_and_a_report_section(mlp_run):
    report = json.loads((mlp_run / "diagnostics.json").read_text())
    assert [f["fit"] for f in report["fits"]] == ["fold 0", "fold 1", "fold 2", "final fit"]
    assert report["triggered"] == {} and report["stopped"] == []
    assert set(report["rules"]) == {"loss_not_decreasing", "overfit", "overtraining", "vanishing_gradient",
                                    "exploding_tensor", "dead_relu", "saturated_activation",
                                    "poor_weight_initialization", "weight_update_ratio", "class_imbalance"}
    epoch = report["fits"][0]["epochs"][0]
    assert {"train_loss", "valid_loss", "grad_mean_abs", "weight_norm", "update_ratio", "dead_share"} <= set(epoch)
    assert set(epoch["grad_mean_abs"]) == {"0", "2"} and set(epoch["dead_share"]) == {"1"}
    text = (mlp_run / "report.md").read_text()
    assert "## Training rules" in text and "| overfit | warn | - |" in text and (mlp_run / "diagnostics.png").is_file()


def test_tensorboard_gets_weight_and_gradient_histograms_per_epoch(mlp_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(mlp_run / "tensorboard"), size_guidance={"histograms": 0})
    accumulator.Reload()
    tags = set(accumulator.Tags()["histograms"])
    assert {"final_fit/weights/0", "final_fit/gradients/2", "fold_0/weights/2"} <= tags
    epochs = json.loads((mlp_run / "diagnostics.json").read_text())["fits"][-1]["epochs"]
    events = accumulator.Histograms("final_fit/weights/0")
    assert [e.step for e in events] == [e["epoch"] for e in epochs]
    assert events[-1].histogram_value.num == 30 * 64  # every weight of the first layer (30 inputs x 64 units)


def test_scikit_learn_models_get_no_diagnostics(tmp_path):
    run_inprocess(["explain=none", "save_model=false", "splitter.n_splits=2"], tmp_path)
    assert not (tmp_path / "diagnostics.json").exists()


def test_bad_rule_settings_fail_before_training(tmp_path):
    with pytest.raises(MlexpError, match="rules.overfit.action='halt': use warn or stop"):
        run_inprocess(["model=mlp", "rules.overfit.action=halt"], tmp_path)
    assert not (tmp_path / "metrics.json").exists()


class ScaleLayer(Callback):
    """Multiply one Linear layer's initial weights (and optionally set its bias) before training."""

    def __init__(self, layer: str = "0", factor: float = 1.0, bias=None):
        self.layer, self.factor, self.bias = layer, factor, bias

    def on_train_begin(self, net, **kwargs):
        module = dict(net.module_.named_modules())[self.layer]
        with torch.no_grad():
            module.weight.mul_(self.factor)
            if self.bias is not None:
                module.bias.fill_(self.bias)


@pytest.mark.parametrize("rule,overrides,before", [
    ("poor_weight_initialization", ["model.max_epochs=5"], [("scale", ScaleLayer("2", 30.0))]),
    ("dead_relu", ["model.max_epochs=8"], [("scale", ScaleLayer("0", 1.0, bias=-20.0))]),
    ("saturated_activation", ["model.activation=tanh", "model.max_epochs=8"], [("scale", ScaleLayer("0", 40.0))]),
    ("weight_update_ratio", ["model.max_epochs=5", "rules.weight_update_ratio.large_threshold=0.001"], []),
    ("overtraining", ["model.max_epochs=80", "model.early_stopping=false", "rules.overtraining.patience=15"], []),
])
def test_each_other_rule_fires_on_its_own_signal(breast_cancer, rule, overrides, before):
    X, y = breast_cancer
    if rule == "overtraining":  # 80 rows: the validation loss bottoms out early, training goes on
        rows = np.random.default_rng(0).choice(len(X), 80, replace=False)
        X, y = X[rows], y[rows]
    net = net_for(overrides, before=before)
    net.fit(X, y)
    assert rule in triggered(net)


def test_class_imbalance_fires_on_a_skewed_training_set(breast_cancer):
    X, y = breast_cancer
    rows = np.r_[np.flatnonzero(y == 1), np.flatnonzero(y == 0)[:20]]  # 357 benign vs 20 malignant
    net = net_for(["model.max_epochs=3"])
    net.fit(X[rows], y[rows])
    assert "class_imbalance" in triggered(net)
    finding = dict(net.callbacks_)["training_rules"].fit_["findings"][0]
    assert finding["rule"] == "class_imbalance" and "[20, 357]" in finding["message"]


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "leaky_relu"])
def test_healthy_nets_of_other_activations_trigger_no_rule(breast_cancer, activation):
    net = net_for([f"model.activation={activation}"])
    net.fit(*breast_cancer)
    assert triggered(net) == set()
