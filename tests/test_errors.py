"""Bad input: a clear one-paragraph message naming the problem and the fix, a non-zero exit, nothing lost."""

import json
from pathlib import Path

import pandas as pd

from conftest import run_cli


def _fails(workdir: Path, args, *fragments, code=2, run_dir="run"):
    done = run_cli(args + [f"hydra.run.dir={run_dir}"], cwd=workdir, check=False)
    assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    message = done.stderr
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message[-3000:]}"
    if code == 2:
        assert "Traceback" not in message  # one paragraph, not a stack trace
    return message


def test_unknown_option_lists_the_valid_ones(workdir):
    _fails(workdir, ["model=xgboost"], "Could not find 'model/xgboost'", "random_forest", "logreg", code=1)


def test_wrong_type_names_the_key(workdir):
    _fails(workdir, ["seed=abc"], "seed=abc", "could not be converted to Integer", "full_key: seed", code=1)


def test_unknown_key_is_refused_at_composition(workdir):
    _fails(workdir, ["model.foo=1"], "Key 'foo' is not in struct", "full_key: model.foo", code=1)


def test_unknown_model_parameter_lists_the_real_ones(workdir):
    _fails(workdir, ["+model.foo=1"], "has no parameter(s) foo", "Its parameters are:", "max_iter")


def test_invalid_parameter_value(workdir):
    _fails(workdir, ["model.C=-1"], "'C' parameter of LogisticRegression", "Got -1")


def test_csv_not_found(workdir):
    _fails(workdir, ["data=csv", "data.path=nowhere.csv", "data.target=y"], "data file not found", "nowhere.csv", "data.path")


def test_target_column_missing_names_the_columns_found(workdir):
    pd.DataFrame({"a": range(20), "b": range(20)}).to_csv(workdir / "t.csv", index=False)
    _fails(workdir, ["data=csv", "data.path=t.csv", "data.target=label"], "target column 'label' not found",
           "Columns found: a, b", "data.target")


def test_malformed_csv(workdir):
    (workdir / "bad.csv").write_text('a,b\n1,2\n3,"4\n5,6,7,8\n')
    _fails(workdir, ["data=csv", "data.path=bad.csv", "data.target=b"], "could not read", "bad.csv")


def test_nan_where_the_model_cannot_take_them(workdir):
    # Imputation is the default (data.impute); turned off, the model's refusal is a clear error.
    _fails(workdir, ["data=penguins", "data.dropna=false", "data.impute.numeric=none"],
           "missing values (NaN) in bill_length_mm (2)", "features=[impute,standardize]", "data.dropna=true")


def test_nan_is_fine_with_an_imputer(workdir):
    run_cli(["data=penguins", "data.dropna=false", "features=[impute,standardize]", "data.impute.numeric=none",
             "hydra.run.dir=run"], cwd=workdir)
    assert json.loads((workdir / "run" / "metrics.json").read_text())["objective"] > 0.95


def test_log_of_negative_values(workdir):
    _fails(workdir, ["data=synthetic", "data.loader.n_samples=200", "features=[log]"],
           "log transform of negative values", "signed=true")


def test_smote_with_fewer_minority_rows_than_neighbours(workdir):
    _fails(workdir, ["data=synthetic", "data.loader.n_samples=200", "data.loader.weights=[0.97,0.03]", "sampler=smote"],
           "needs more than k_neighbors=5 rows", "sampler=random_over")


def test_classifier_on_a_continuous_target(workdir):
    _fails(workdir, ["data=diabetes", "task=classification"], "looks continuous", "task=regression")
    _fails(workdir, ["data=diabetes", "model=logreg", "model._regressor_=null"],
           "is a classifier and has no regression form", "model=linear",
           run_dir="run2")  # a new directory: an earlier run's is never reused


def test_gpu_profile_without_a_gpu(workdir):
    _fails(workdir, ["instance=ml.p3.2xlarge"], "no GPU is visible", "allow_cpu_fallback=true")


def test_a_failed_run_loses_nothing_already_written(workdir):
    run_cli(["hydra.run.dir=good"], cwd=workdir)
    good = (workdir / "good" / "metrics.json").read_text()
    _fails(workdir, ["data=penguins", "data.dropna=false", "data.impute.numeric=none"], "missing values")
    assert (workdir / "good" / "metrics.json").read_text() == good
    lineage = json.loads((workdir / "run" / "lineage.json").read_text())
    assert lineage["status"] == "failed" and "missing values" in lineage["error"]
    assert (workdir / "run" / ".hydra" / "config.yaml").is_file() and not (workdir / "run" / "metrics.json").exists()
