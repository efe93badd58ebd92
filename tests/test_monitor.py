"""mode=monitor on real drift: gss_wages trained on 1974-1985, checked on its own rows, on shifted copies and on
later years window by window (data capture, late labels, CBPE), with the exit statuses cron would see."""

import json
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli, run_inprocess

CHECKS = ("data_quality", "model_quality", "bias", "attribution", "estimate")
YEARS = (1986, 1990, 1994, 1998, 2002, 2006, 2010, 2014, 2018)


@pytest.fixture(scope="module")
def gss(tmp_path_factory):
    """A logistic regression trained on gss_wages up to 1985 (gender facet), and the later years as a table."""
    from mlexp.data.loaders import gss_wages

    root = tmp_path_factory.mktemp("gss")
    frame = gss_wages().dropna().reset_index(drop=True)
    early, late = frame[frame.year <= 1985].drop(columns=["year"]), frame[frame.year.isin(YEARS)]
    early.to_csv(root / "early.csv", index=False)
    late.to_csv(root / "late.csv", index=False)
    run_inprocess(["data=csv", f"data.path={root / 'early.csv'}", "data.target=high_income", "data.roles.facet=gender",
                   "splitter.n_splits=3"], root / "run")
    return SimpleNamespace(root=root, run=root / "run", early=early, late=late)


def _monitor(gss, data, name, **options):
    """Run the monitor in-process; returns (violations, monitor.json)."""
    from mlexp.monitor.run import MonitorSettings, MonitorViolations, monitor

    settings = MonitorSettings(baseline=gss.run, data=Path(data), checks=options.pop("checks", CHECKS), **options)
    out = gss.root / name
    try:
        monitor(settings, out)
    except MonitorViolations as err:
        assert err.exit_code == 3
    violations = json.loads((out / "constraint_violations.json").read_text())["violations"]
    return violations, json.loads((out / "monitor.json").read_text())


def test_baseline_files_follow_model_monitor_schemas(gss):
    folder = gss.run / "baseline"
    stats = json.loads((folder / "statistics.json").read_text())
    assert stats["version"] == 0 and stats["dataset"]["item_count"] == json.loads((folder / "baseline.json").read_text())["rows"]
    features = {f["name"]: f for f in stats["features"]}
    assert set(features) == {"age", "occrecode", "prestg10", "childs", "wrkstat", "gender", "educcat", "maritalcat"}
    assert features["age"]["inferred_type"] == "Integral" and features["gender"]["inferred_type"] == "String"
    age = features["age"]["numerical_statistics"]
    rows = stats["dataset"]["item_count"]
    assert age["common"] == {"num_present": rows, "num_missing": 0}
    assert 18 <= age["min"] < age["mean"] < age["max"] <= 89 and age["sum"] == pytest.approx(age["mean"] * rows)
    buckets = age["distribution"]["kll"]["buckets"]
    assert len(buckets) == 10 and sum(b["count"] for b in buckets) == pytest.approx(rows, abs=10)
    assert len(age["distribution"]["kll"]["sketch"]["data"][0]) == 1024
    genders = features["gender"]["string_statistics"]
    assert genders["distinct_count"] == 2 and {b["value"] for b in genders["distribution"]["categorical"]["buckets"]} == {"Female", "Male"}
    constraints = json.loads((folder / "constraints.json").read_text())
    by_name = {f["name"]: f for f in constraints["features"]}
    assert by_name["gender"]["string_constraints"]["domains"] == ["Female", "Male"]
    assert by_name["age"]["num_constraints"] == {"is_non_negative": True} and by_name["age"]["completeness"] == 1.0
    config = constraints["monitoring_config"]
    assert config["datatype_check_threshold"] == 1.0 and config["domain_content_threshold"] == 1.0
    assert config["distribution_constraints"] == {"perform_comparison": "Enabled", "comparison_threshold": 0.1,
                                                  "comparison_method": "Robust", "categorical_comparison_threshold": 0.1,
                                                  "categorical_drift_method": "LInfinity"}
    quality = json.loads((folder / "model_quality_statistics.json").read_text())["binary_classification_metrics"]
    matrix = quality["confusion_matrix"]
    assert sum(sum(row.values()) for row in matrix.values()) == rows
    accuracy = (matrix["0"]["0"] + matrix["1"]["1"]) / rows
    assert quality["accuracy"]["value"] == pytest.approx(accuracy) and 0.7 < accuracy < 0.85
    assert quality["auc"]["value"] > 0.8 and quality["accuracy"]["standard_deviation"] < 0.01
    limits = json.loads((folder / "model_quality_constraints.json").read_text())["binary_classification_constraints"]
    assert limits["accuracy"] == {"threshold": quality["accuracy"]["value"], "comparison_operator": "LessThanThreshold"}
    bias = json.loads((folder / "bias_analysis.json").read_text())["post_training_bias_metrics"]["facets"]["gender"]
    female = {m["name"]: m["value"] for g in bias if g["value_or_threshold"] == "Female" for m in g["metrics"]}
    assert female["DPPL"] > 0.3 and 0 < female["DI"] < 0.5  # men were predicted high income far more often
    summary = json.loads((folder / "baseline.json").read_text())
    assert summary["attribution_ranking"][0] in {"occrecode", "gender", "age", "prestg10", "educcat"}
    check = summary["estimate_check"]  # CBPE on the test split, against the real scores
    assert abs(check["error"]["accuracy"]) < 0.05 and check["rows"] == pytest.approx(0.1 * len(gss.early), abs=2)


def _shifted(gss, kind: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = gss.early.copy()
    if kind != "flipped_labels":
        frame = frame.drop(columns=["high_income"])
    if kind == "scaled_column":
        frame["age"] = frame["age"] * 2
    elif kind == "unseen_category":
        frame.loc[rng.random(len(frame)) < 0.05, "wrkstat"] = "Astronaut"
    elif kind == "dropped_column":
        frame = frame.drop(columns=["childs"])
    elif kind == "extra_column":
        frame["shoe_size"] = rng.normal(42, 2, len(frame)).round()
    elif kind == "injected_nans":
        frame.loc[rng.random(len(frame)) < 0.05, "prestg10"] = np.nan
    elif kind == "flipped_labels":
        frame["high_income"] = 1 - frame["high_income"]
    return frame


@pytest.mark.parametrize("kind,expected", [
    ("training_data", set()),
    ("scaled_column", {("baseline_drift_check", "age")}),
    ("unseen_category", {("categorical_values_check", "wrkstat")}),
    ("dropped_column", {("missing_column_check", "childs")}),
    ("extra_column", {("extra_column_check", "shoe_size")}),
    ("injected_nans", {("completeness_check", "prestg10")}),
    ("flipped_labels", {("LessThanThreshold", m) for m in ("accuracy", "precision", "recall", "f1", "auc")}),
])
def test_each_shift_gives_exactly_its_check(gss, kind, expected):
    frame = gss.early if kind == "training_data" else _shifted(gss, kind)
    path = gss.root / f"{kind}.csv"
    frame.to_csv(path, index=False)
    violations, summary = _monitor(gss, path, f"shift_{kind}")
    found = {(v["constraint_check_type"], v.get("feature_name") or v.get("metric_name")) for v in violations}
    assert found == expected, json.dumps(violations, indent=1)
    assert summary["rows"] == len(gss.early)
    for violation in violations:
        assert any(ch.isdigit() for ch in violation["description"])  # the description gives the numbers
    if kind == "training_data":  # every model check ran and agrees with the baseline
        window = summary["windows"][0]
        assert window["ndcg"] > 0.95 and window["labelled"] == len(gss.early)
        assert set(window["bias"]) == {"Female", "Male"} and abs(window["estimate_error"]["accuracy"]) < 0.03


def test_distances_other_than_model_monitors(gss):
    path = gss.root / "scaled_column.csv"
    _shifted(gss, "scaled_column").to_csv(path, index=False)
    for distance, low, high in (("jensen_shannon", 0.3, 1.0), ("psi", 1.0, 50.0)):
        violations, summary = _monitor(gss, path, f"distance_{distance}", distance=distance, checks=("data_quality",))
        assert [(v["constraint_check_type"], v["feature_name"]) for v in violations] == [("baseline_drift_check", "age")]
        distances = summary["windows"][0]["distances"]
        assert low < distances["age"] < high and max(v for k, v in distances.items() if k != "age") < 0.05


@pytest.fixture(scope="module")
def later_years(gss):
    """Later years through the data capture (one capture time per year) and their labels, arriving later."""
    from mlexp.artifacts import load_model
    from mlexp.monitor.capture import CaptureWriter
    from mlexp.predict import predict_frame

    model, card = load_model(gss.run)
    labels = []
    with CaptureWriter(gss.root / "capture", endpoint="gss", seed=0) as writer:
        for year, rows in gss.late.groupby("year"):
            X = rows[card["features"]]
            ids = writer.write(X, predict_frame(model, card, X), when=datetime(year, 6, 1, tzinfo=timezone.utc))
            labels.append(pd.DataFrame({"event_id": ids, "high_income": rows["high_income"].to_numpy()}))
    pd.concat(labels).to_csv(gss.root / "labels.csv", index=False)
    return gss.root / "capture", gss.root / "labels.csv"


def test_later_years_window_by_window(gss, later_years):
    capture, labels = later_years
    violations, summary = _monitor(gss, capture, "later", labels=labels, window="YS")
    out = gss.root / "later"
    windows = pd.read_csv(out / "windows.csv")
    assert list(windows["window"].str[:4].astype(int)) == list(YEARS)
    assert (windows["rows"] == windows["labelled"]).all() and windows["rows"].sum() == len(gss.late)
    assert sorted(p.name[:4] for p in (out / "windows").iterdir()) == [str(y) for y in YEARS]
    for folder in (out / "windows").iterdir():
        assert {"statistics.json", "constraint_violations.json", "model_quality_statistics.json"} <= {p.name for p in folder.iterdir()}
    merged = (out / "merged.jsonl").read_text().splitlines()
    assert len(merged) == len(gss.late) and json.loads(merged[0])["groundTruthData"]["encoding"] == "CSV"
    # Real drift: education and marital status move away from 1974-85 over the decades, not in 1986.
    drifted = {(v["window"][:4], v["feature_name"]) for v in violations if v["constraint_check_type"] == "baseline_drift_check"}
    assert ("2018", "educcat") in drifted and not any(year == "1986" for year, _ in drifted)
    distance = windows.set_index(windows["window"].str[:4])
    assert distance.loc["2018", "violations"] > distance.loc["1986", "violations"]
    # Performance without labels follows the real metric (the numbers docs/monitor.md reports).
    error = windows["estimate_error_accuracy"]
    assert error.abs().mean() < 0.05 and error.abs().max() < 0.08
    assert (windows["estimated_accuracy"] - windows["actual_accuracy"]).abs().max() < 0.08
    report = (out / "monitor.md").read_text()
    assert "## Checks over windows" in report and (out / "plots" / "windows.png").stat().st_size > 10_000


def test_bias_and_attribution_drift_from_the_capture(gss):
    """Predictions that turn against one group (bias drift); inputs that make the model follow one feature."""
    from mlexp.monitor.capture import CaptureWriter

    rows = gss.early.drop(columns=["high_income"]).reset_index(drop=True)
    favoured = (rows["gender"] == "Male").to_numpy()
    proba = np.where(favoured, 0.9, 0.1)
    outputs = pd.DataFrame({"prediction": favoured.astype(int), "proba_0": 1 - proba, "proba_1": proba})
    with CaptureWriter(gss.root / "biased", endpoint="gss") as writer:
        writer.write(rows, outputs)
    violations, summary = _monitor(gss, gss.root / "biased", "biased", checks=("bias",))
    found = {(v["facet_value"], v["metric_name"]) for v in violations}
    assert {("Female", "DPPL"), ("Male", "DPPL")} <= found and all(v["constraint_check_type"] == "bias_drift_check"
                                                                   for v in violations)
    assert summary["windows"][0]["bias"]["Female"]["DPPL"] == pytest.approx(1.0)

    # Ages ten times larger: the model's output now follows age first.
    frame = rows.assign(age=rows["age"] * 10)
    frame.to_csv(gss.root / "age_times_ten.csv", index=False)
    violations, summary = _monitor(gss, gss.root / "age_times_ten.csv", "attribution", checks=("attribution",))
    assert [v["constraint_check_type"] for v in violations] == ["feature_attribution_drift_check"]
    assert "now age" in violations[0]["description"] and summary["windows"][0]["ndcg"] < 0.9

    from mlexp.monitor.drift import attribution_violation, ndcg

    baseline = json.loads((gss.run / "baseline" / "attribution.json").read_text())["explanations"]["permutation"]["label0"]
    values = baseline["global_attributions"]
    reversed_ranking = {name: -value for name, value in values.items()}
    assert ndcg(values, values) == pytest.approx(1.0) and ndcg(values, reversed_ranking) < 0.9
    violation = attribution_violation(values, reversed_ranking, 0.9)
    assert violation["constraint_check_type"] == "feature_attribution_drift_check" and "exceeds threshold 0.9" in violation["description"]


def test_errors_are_clear(gss, later_years):
    from mlexp.errors import MlexpError

    capture, _ = later_years
    with pytest.raises(MlexpError, match="holds no monitoring baseline") as err:
        _monitor(SimpleNamespace(run=gss.root, root=gss.root), gss.root / "early.csv", "no_baseline")
    assert err.value.exit_code == 2
    wrong = gss.early.drop(columns=["high_income"]).astype({"age": object})
    wrong.loc[:5, "age"] = "forty"
    wrong.to_csv(gss.root / "wrong_types.csv", index=False)
    with pytest.raises(MlexpError, match="column 'age' holds values that are not numbers .*'forty'"):
        _monitor(gss, gss.root / "wrong_types.csv", "wrong_types")
    violations, _ = _monitor(gss, gss.root / "wrong_types.csv", "wrong_types_dq", checks=("data_quality",))
    assert [(v["constraint_check_type"], v["feature_name"]) for v in violations] == [("data_type_check", "age")]
    with pytest.raises(MlexpError, match="no rows to monitor .* the window is empty"):
        _monitor(gss, capture, "empty", start=pd.Timestamp("2030-01-01", tz="UTC"))


def test_exit_statuses_of_the_entrypoint(gss, tmp_path):
    gss.early.to_csv(gss.root / "training_data.csv", index=False)
    _shifted(gss, "scaled_column").to_csv(gss.root / "scaled_column.csv", index=False)
    ok = run_cli(["mode=monitor", f"monitor.baseline={gss.run}", f"monitor.data={gss.root / 'training_data.csv'}",
                  "monitor.checks=[data_quality]", "hydra.run.dir=ok"], cwd=tmp_path, check=False)
    assert ok.returncode == 0, ok.stderr
    drift = run_cli(["mode=monitor", f"monitor.baseline={gss.run}", f"monitor.data={gss.root / 'scaled_column.csv'}",
                     "monitor.checks=[data_quality]", "hydra.run.dir=drift"], cwd=tmp_path, check=False)
    assert drift.returncode == 3 and "monitor found 1 violation(s): baseline_drift_check (1)" in drift.stderr
    assert "error:" not in drift.stderr and (tmp_path / "drift" / "monitor.md").is_file()
    missing = run_cli(["mode=monitor", f"monitor.baseline={tmp_path}", f"monitor.data={gss.root / 'early.csv'}"],
                      cwd=tmp_path, check=False)
    assert missing.returncode == 2 and "error: monitor.baseline=" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.slow
def test_nycflights_month_by_month(tmp_path):
    """Trained on January 2013's flights (late arrival > 15 min), February and March as monthly windows."""
    from mlexp.data.loaders import rdataset

    flights = rdataset("nycflights13", "flights")
    flights = flights[flights.month <= 3].dropna(subset=["dep_delay", "arr_delay"])
    flights = flights.sample(frac=0.4, random_state=0).sort_values("time_hour")
    frame = flights[["time_hour", "month", "sched_dep_time", "dep_delay", "carrier", "origin", "distance"]].copy()
    frame["late"] = (flights["arr_delay"] > 15).astype(int)
    frame[frame.month == 1].drop(columns=["time_hour", "month"]).to_csv(tmp_path / "january.csv", index=False)
    frame[frame.month > 1].drop(columns=["month"]).to_csv(tmp_path / "later.csv", index=False)
    run_inprocess(["data=csv", f"data.path={tmp_path / 'january.csv'}", "data.target=late", "splitter.n_splits=3"],
                  tmp_path / "run")
    gss = SimpleNamespace(run=tmp_path / "run", root=tmp_path)
    # time_hour is UTC: late-evening flights of March 31 (New York) fall in April; monitor.end leaves them out.
    end = pd.Timestamp("2013-04-01", tz="UTC")
    violations, summary = _monitor(gss, tmp_path / "later.csv", "monitor", window="MS", time_column="time_hour", end=end)
    windows = pd.read_csv(tmp_path / "monitor" / "windows.csv")
    assert list(windows["window"].str[:7]) == ["2013-02", "2013-03"]
    in_range = (pd.to_datetime(frame.loc[frame.month > 1, "time_hour"], utc=True) < end).sum()
    assert windows["rows"].sum() == in_range and (windows["labelled"] == windows["rows"]).all()
    assert (windows["actual_roc_auc"] > 0.85).all() and windows["estimate_error_accuracy"].abs().max() < 0.05
    assert {v["constraint_check_type"] for v in violations} <= {"baseline_drift_check", "LessThanThreshold",
                                                                 "categorical_values_check"}


def test_regression_model_quality(tmp_path):
    """diabetes with a linear model: its own rows pass; shuffled targets raise mae and rmse, lower r2."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    run_inprocess(["data=diabetes", "model=linear", "splitter=kfold", "splitter.n_splits=3"], tmp_path / "run")
    assert not (tmp_path / "run" / "baseline" / "calibration.json").exists()  # no estimate without probabilities
    frame.to_csv(tmp_path / "same.csv", index=False)
    frame.assign(target=frame["target"].sample(frac=1, random_state=0).to_numpy()).to_csv(tmp_path / "shuffled.csv", index=False)
    gss = SimpleNamespace(run=tmp_path / "run", root=tmp_path)
    violations, summary = _monitor(gss, tmp_path / "same.csv", "same")
    assert violations == [] and summary["windows"][0]["ndcg"] > 0.95
    violations, _ = _monitor(gss, tmp_path / "shuffled.csv", "shuffled")
    assert {(v["constraint_check_type"], v["metric_name"]) for v in violations} == {
        ("GreaterThanThreshold", "mae"), ("GreaterThanThreshold", "rmse"), ("LessThanThreshold", "r2")}
    quality = json.loads((tmp_path / "shuffled" / "model_quality_statistics.json").read_text())["regression_metrics"]
    assert quality["rmse"]["value"] == pytest.approx(np.sqrt(quality["mse"]["value"])) and quality["r2"]["value"] < 0


class _ResponsibleFiles:
    """Stands in for the bias and explain steps: writes bias.json and explain.json as docs/bias.md and
    docs/explain.md specify them, the bias values computed here by hand from the out-of-fold predictions."""

    name = "responsible_stand_in"

    def enabled(self, cfg):
        return True

    def check(self, cfg, dataset):
        pass

    def run(self, trained):
        oof = trained.cv.predictions
        female = (trained.X_dev["gender"].iloc[oof.index] == "Female").to_numpy()
        q_d, q_a = (oof.y_pred[female] == 1).mean(), (oof.y_pred[~female] == 1).mean()
        group = {"value_or_threshold": "Female", "metrics": [
            {"name": "DPPL", "description": "", "value": q_a - q_d}, {"name": "DI", "description": "", "value": q_d / q_a},
            {"name": "TE", "description": "", "value": 0.5}]}
        bias = {"version": 1, "facet": "gender", "post_training_bias_metrics": {"facets": {"gender": [group]}}}
        (trained.run_dir / "bias.json").write_text(json.dumps(bias))
        ranking = [{"feature": f, "importance": 1.0 / (i + 1), "rank": i + 1}
                   for i, f in enumerate(["occrecode", "gender", "prestg10", "educcat", "age", "wrkstat", "maritalcat", "childs"])]
        (trained.run_dir / "explain.json").write_text(json.dumps({"version": 1, "method": "permutation",
                                                                  "global_ranking": ranking}))


def test_baseline_reads_bias_and_explain_files(gss, tmp_path, monkeypatch):
    from mlexp import posttrain

    monkeypatch.setattr(posttrain, "STEPS", [f"{__name__}:_ResponsibleFiles", *posttrain.STEPS])
    sample = gss.early.sample(3000, random_state=0)
    sample.to_csv(tmp_path / "sample.csv", index=False)
    run_inprocess(["data=csv", f"data.path={tmp_path / 'sample.csv'}", "data.target=high_income", "splitter.n_splits=3"],
                  tmp_path / "run")  # no data.roles.facet: the facet comes from bias.json
    summary = json.loads((tmp_path / "run" / "baseline" / "baseline.json").read_text())
    assert summary["responsible"] == {"bias.json": "../bias.json", "explain.json": "../explain.json"}
    assert 0.5 < summary["explain_ndcg"] <= 1.0
    report = (tmp_path / "run" / "report.md").read_text()
    assert "agree on 2 values (largest difference 0)" in report and "against `explain.json`'s" in report
    bias = json.loads((tmp_path / "run" / "baseline" / "bias_analysis.json").read_text())
    assert set(bias["post_training_bias_metrics"]["facets"]) == {"gender"}
