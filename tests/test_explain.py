"""Explanations (explain=permutation|shap|none): importance per input column, SHAP additivity, PDP/ICE, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import compose, run_inprocess


def _trained(overrides, run_dir):
    """Run and return (RunResult, explain.json, the dataset, the test rows)."""
    from mlexp.data import load_dataset
    from mlexp.evaluation.splitting import split_test

    result = run_inprocess(overrides, run_dir)
    cfg = compose(overrides)
    dataset = load_dataset(cfg.data, task=cfg.task)
    _, test = split_test(dataset.target.to_numpy(), dataset.task, cfg.test_size, cfg.seed)
    return result, json.loads((run_dir / "explain.json").read_text()), dataset, test


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("default")
    return (run_dir, *_trained(["save_model=false", "splitter.n_splits=3", "explain.top_k=3"], run_dir))


def test_default_run_explains_with_permutation_importance_per_input_column(default_run):
    run_dir, result, report, dataset, test = default_run
    assert report["method"] == "permutation" and report["model"] == "LogisticRegression"
    ranking = report["global_ranking"]
    assert [r["feature"] for r in ranking] == sorted(dataset.features.columns, key=lambda c: (
        -report["permutation_importance"]["features"][c]["mean"], c))
    assert [r["rank"] for r in ranking] == list(range(1, 31))
    perm = report["permutation_importance"]
    assert perm["scoring"] == "roc_auc" and perm["split"] == "test" and perm["rows"] == len(test)
    assert all(len(v["values"]) == 5 for v in perm["features"].values())
    assert ranking[0]["importance"] > 0 and ranking[0]["std"] == pytest.approx(np.std(
        perm["features"][ranking[0]["feature"]]["values"]))
    text = (run_dir / "report.md").read_text()
    assert "## Explanations" in text and "![importance](explain/importance.png)" in text
    assert (run_dir / "explain" / "importance.png").is_file() and (run_dir / "explain" / "pdp.png").is_file()
    assert [p["features"] for p in report["partial_dependence"]] == [[r["feature"]] for r in ranking[:3]]


def test_permutation_importance_equals_shuffling_the_raw_column(default_run):
    """Shuffling encoded parts together (one transform) gives exactly the importance of shuffling the raw column."""
    from sklearn.metrics import get_scorer

    run_dir, result, report, dataset, test = default_run
    X, y = dataset.features.iloc[test], dataset.target.to_numpy()[test]
    scorer = get_scorer("roc_auc")
    baseline = scorer(result.model, X, y)
    rng = np.random.RandomState(42)
    for column in X.columns:  # the same permutation sequence, column by column
        for value in report["permutation_importance"]["features"][column]["values"]:
            shuffled = X.copy()
            shuffled[column] = X[column].to_numpy()[rng.permutation(len(X))]
            assert value == pytest.approx(baseline - scorer(result.model, shuffled, y), abs=1e-12)


@pytest.fixture(scope="module")
def shap_penguins(tmp_path_factory):
    pytest.importorskip("shap")
    runs = {}
    for model in ("logreg", "random_forest", "knn"):
        run_dir = tmp_path_factory.mktemp(model)
        overrides = ["data=penguins", f"model={model}", "explain=shap", "explain.rows=[0,5]", "save_model=false",
                     "splitter.n_splits=2", "explain.shap.max_rows=20", "explain.shap.background=20",
                     "explain.pairs=[[bill_length_mm,flipper_length_mm]]"]
        runs[model] = (run_dir, *_trained(overrides, run_dir))
    return runs


@pytest.mark.parametrize("model,explainer", [("logreg", "LinearExplainer"), ("random_forest", "TreeExplainer"),
                                             ("knn", "KernelExplainer (sampled)")])
def test_shap_attributions_per_input_column_add_up_to_the_prediction(shap_penguins, model, explainer):
    run_dir, result, report, dataset, _ = shap_penguins[model]
    assert report["shap"]["explainer"] == explainer
    assert set(report["shap"]["mean_abs"]) == set(dataset.features.columns)  # island, not island_Biscoe
    assert report["global_ranking_measure"] == "mean |SHAP value|"
    for entry in report["local"]:
        row = dataset.features.iloc[[entry["row"]]]
        if explainer == "LinearExplainer":  # log-odds of the predicted class (multinomial: its logit)
            output = result.model.decision_function(row)[0][entry["output"]]
        else:
            output = result.model.predict_proba(row)[0][entry["output"]]
        if explainer != "LinearExplainer":
            assert entry["prediction"] == pytest.approx(output, abs=1e-6)
        assert entry["prediction"] == pytest.approx(entry["base_value"] + sum(entry["attributions"].values()))
        assert entry["output"] == int(result.model.predict(row)[0])
        assert (run_dir / entry["plot"]).is_file()
    assert [e["row"] for e in report["local"]] == [0, 5]
    pairs = [p for p in report["partial_dependence"] if len(p["features"]) == 2]
    assert pairs and pairs[0]["features"] == ["bill_length_mm", "flipper_length_mm"] and (run_dir / pairs[0]["plot"]).is_file()
    assert "![row 5](explain/waterfall_row5.png)" in (run_dir / "report.md").read_text()


def test_linear_shap_matches_the_coefficients(shap_penguins):
    """LinearExplainer on the one-hot columns, summed back to island: sum of coef_j (z_j - background mean_j)."""
    from mlexp.evaluation.splitting import split_test

    run_dir, result, report, dataset, _ = shap_penguins["logreg"]
    columns, model = result.model[0], result.model.steps[-1][1]
    dev, _ = split_test(dataset.target.to_numpy(), dataset.task, 0.1, 42)
    background = dataset.features.iloc[dev].iloc[np.sort(np.random.default_rng(43).choice(len(dev), 20, replace=False))]
    names = [n.split("__", 1)[1] for n in columns.get_feature_names_out()]
    parts = [j for j, n in enumerate(names) if n.startswith("island_")]
    assert len(parts) == 3
    mean = np.asarray(columns.transform(background))[:, parts].mean(axis=0)
    for entry in report["local"]:
        z = np.asarray(columns.transform(dataset.features.iloc[[entry["row"]]]))[0, parts]
        expected = float(model.coef_[entry["output"]][parts] @ (z - mean))
        assert entry["attributions"]["island"] == pytest.approx(expected, abs=1e-9)


def test_explain_none_writes_nothing(tmp_path):
    run_inprocess(["explain=none", "save_model=false", "splitter.n_splits=2"], tmp_path)
    assert not (tmp_path / "explain.json").exists() and not (tmp_path / "explain").exists()
    assert "## Explanations" not in (tmp_path / "report.md").read_text()


def test_shap_without_the_extra_is_a_clear_error(tmp_path):
    """shap hidden from the process (a None entry in sys.modules makes its import fail)."""
    code = ("import runpy, sys; sys.modules['shap'] = None; "
            f"sys.argv = ['mlexp', 'explain=shap', 'hydra.run.dir={tmp_path}']; "
            "runpy.run_module('mlexp', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "pip install 'mlexp[explain]'" in output and "Traceback" not in output
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("overrides,message", [
    (["explain.rows=[1]"], "explain.rows asks for local explanations"),
    (["explain.pairs=[[age,bill_length_mm]]"], "explain.pairs: 'age' is not"),
    (["explain.n_repeats=0"], "explain.n_repeats=0 must be a positive whole number"),
    (["explain.pairs=[[bill_length_mm,island]]"], "two numeric or two categorical columns"),
    (["explain.scoring=nonsense"], "explain.scoring='nonsense' is not a scikit-learn scorer"),
])
def test_bad_explain_options_fail_before_training(tmp_path, overrides, message):
    from mlexp.errors import MlexpError

    with pytest.raises(MlexpError, match=message.replace("[", r"\[")):
        run_inprocess(["data=penguins", *overrides], tmp_path)
    assert not (tmp_path / "metrics.json").exists()
