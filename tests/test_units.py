"""Small pieces on their own: hold-out sizes, the log transformer's contract, task and role inference, metrics."""

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import check_estimator

from mlexp.data import infer_roles, infer_task
from mlexp.errors import MlexpError
from mlexp.instance import estimated_cost, resolve_resources
from mlexp.lineage import data_fingerprint
from mlexp.evaluation.metrics import resolve_objective, score
from mlexp.evaluation.splitting import HoldOut, split_test
from mlexp.pipeline.transformers import LogTransformer
from conftest import compose


def test_holdout_gives_80_10_10_of_the_whole():
    y = np.repeat([0, 1], 500)
    dev, test = split_test(y, "classification", 0.1, seed=0)
    assert len(test) == 100 and len(set(dev) & set(test)) == 0
    [(train, validation)] = list(HoldOut(validation_size=0.1, test_size=0.1, random_state=0).split(dev, y[dev]))
    assert (len(train), len(validation)) == (800, 100)
    assert y[dev][validation].mean() == pytest.approx(0.5, abs=0.02)  # stratified


def test_log_transformer_follows_the_scikit_learn_contract():
    check_estimator(LogTransformer(signed=True))
    frame = pd.DataFrame({"a": [0.0, np.e - 1], "b": [-1.0, 2.0]})
    with pytest.raises(ValueError, match="negative values in b"):
        LogTransformer().fit(frame)
    assert LogTransformer(signed=True).fit_transform(frame)[0].tolist() == [0.0, -np.log(2)]


def test_task_inference():
    assert infer_task(pd.Series(["yes", "no"] * 20)) == "classification"
    assert infer_task(pd.Series([0, 1, 2] * 50)) == "classification"
    assert infer_task(pd.Series(np.linspace(0, 1, 200))) == "regression"
    assert infer_task(pd.Series(np.arange(300))) == "regression"


def test_role_inference_and_configured_roles():
    frame = pd.DataFrame({
        "age": [30, 40, 50, 60] * 25,
        "city": ["Paris", "Lyon", "Nice", "Pau"] * 25,
        "review": [f"this product was great and arrived on day {i}" for i in range(100)],
        "when": [f"2024-03-{1 + i % 28:02d}" for i in range(100)],
        "flag": [True, False] * 50,
    })
    roles = infer_roles(frame, {})
    assert roles.numeric == ["age"] and roles.categorical == ["city", "flag"]
    assert roles.text == ["review"] and roles.datetime == ["when"]
    forced = infer_roles(frame, {"categorical": ["age"], "facet": "city"})
    assert "age" in forced.categorical and forced.facet == "city"
    with pytest.raises(MlexpError, match="not in the data"):
        infer_roles(frame, {"numeric": ["nope"]})


def test_metrics_on_known_predictions():
    class Fixed:
        def predict_proba(self, X):
            return np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])

    scores = score(Fixed(), None, np.array([0, 1, 1, 0]), "classification", 2)
    assert scores["accuracy"] == 0.5 and scores["precision"] == 0.5 and scores["recall"] == 0.5
    assert scores["roc_auc"] == 0.75
    assert scores["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.3])))
    assert resolve_objective("auto", "auto", "regression") == ("rmse", "minimize")
    with pytest.raises(MlexpError, match="not a regression metric"):
        resolve_objective("roc_auc", "auto", "regression")


def test_instance_profiles_cap_threads_and_price_the_run():
    cfg = compose(["instance=ml.m5.xlarge"])
    resources = resolve_resources(cfg.instance)
    assert resources.n_jobs <= 4 and resources.device == "cpu"
    assert estimated_cost(cfg.instance.price_per_hour, 3600) == pytest.approx(0.23)


def test_data_fingerprint_tracks_content():
    frame = pd.DataFrame({"a": [1, 2, 3]})
    target = pd.Series([0, 1, 0])
    first = data_fingerprint(frame, target)
    assert first == data_fingerprint(frame.copy(), target.copy())
    assert first["sha256"] != data_fingerprint(frame.assign(a=[1, 2, 4]), target)["sha256"]
