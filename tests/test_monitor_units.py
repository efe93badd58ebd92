"""The monitor's building blocks against independent computations: chunked statistics, distances, CBPE, windows."""

import numpy as np
import pandas as pd
import pytest

from mlexp.monitor.cbpe import Calibrator, PerformanceEstimate
from mlexp.monitor.checks import data_quality_violations, drift_edges, suggest_constraints
from mlexp.monitor.stats import Profiler


def _table(n, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(shift, 1, n), "k": rng.integers(0, 50, n),
                         "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])})


def test_statistics_do_not_depend_on_the_chunking():
    frame = _table(10_000)
    frame.loc[::97, "x"] = np.nan
    whole, chunked = Profiler(), Profiler()
    whole.update(frame)
    for start in range(0, len(frame), 1_337):
        chunked.update(frame.iloc[start:start + 1_337])
    a, b = whole.statistics()["features"], chunked.statistics()["features"]
    for fa, fb in zip(a, b):
        assert fa["inferred_type"] == fb["inferred_type"]
        if "numerical_statistics" in fa:
            na, nb = fa["numerical_statistics"], fb["numerical_statistics"]
            assert na["common"] == nb["common"]
            for key in ("mean", "sum", "std_dev", "min", "max"):
                assert na[key] == pytest.approx(nb[key], rel=1e-9)
        else:
            assert fa["string_statistics"] == fb["string_statistics"]
    x = a[0]["numerical_statistics"]
    present = frame["x"].dropna()
    assert x["common"] == {"num_present": len(present), "num_missing": frame["x"].isna().sum()}
    assert x["mean"] == pytest.approx(present.mean()) and x["std_dev"] == pytest.approx(present.std(ddof=0))
    assert [f["inferred_type"] for f in a] == ["Fractional", "Integral", "String"]


def test_linf_distance_is_the_kolmogorov_smirnov_statistic():
    from scipy.stats import ks_2samp

    base, now = _table(20_000, 0), _table(5_000, 1, shift=0.3)
    profile = Profiler()
    profile.update(base)
    statistics = profile.statistics()
    constraints = suggest_constraints(statistics)
    for feature in constraints["features"]:  # Simple: the distance as it is
        feature["monitoringConfigOverrides"] = {"comparison_method": "Simple"}
    current = Profiler(string_columns=["c"], numeric_columns=["x", "k"], edges=drift_edges(statistics))
    current.update(now)
    violations, distances = data_quality_violations(statistics, constraints, current)
    ks = ks_2samp(base["x"], now["x"]).statistic
    assert distances["x"] == pytest.approx(ks, abs=0.01)  # evaluated at the baseline's percentiles
    assert [(v["constraint_check_type"], v["feature_name"]) for v in violations] == [("baseline_drift_check", "x")]
    frequencies = base["c"].value_counts(normalize=True) - now["c"].value_counts(normalize=True)
    assert distances["c"] == pytest.approx(frequencies.abs().max())


def test_cbpe_matches_the_truth_on_calibrated_scores():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    p = rng.beta(2, 2, 40_000)
    y = (rng.random(40_000) < p).astype(int)
    raw = np.column_stack([1 - p, p]) ** 1.5  # miscalibrated on purpose: the isotonic step undoes it
    raw = raw / raw.sum(axis=1, keepdims=True)
    calibrator = Calibrator.fit(raw[:20_000], y[:20_000])
    estimate = PerformanceEstimate(calibrator)
    for start in range(20_000, 40_000, 3_000):
        estimate.update(raw[start:start + 3_000])
    metrics = estimate.metrics()
    truth_y, truth_raw = y[20_000:], raw[20_000:]
    predicted = truth_raw.argmax(axis=1)
    assert metrics["accuracy"] == pytest.approx((predicted == truth_y).mean(), abs=0.01)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(truth_y, truth_raw[:, 1]), abs=0.01)
    assert metrics["recall"] == pytest.approx((predicted[truth_y == 1] == 1).mean(), abs=0.015)


def test_calibrator_round_trips_as_json(tmp_path):
    rng = np.random.default_rng(1)
    scores = rng.dirichlet([1, 1, 1], 3_000)
    y = np.array([rng.choice(3, p=row) for row in scores])
    calibrator = Calibrator.fit(scores, y)
    calibrator.save(tmp_path / "calibration.json")
    again = Calibrator.load(tmp_path / "calibration.json")
    assert np.allclose(again.transform(scores), calibrator.transform(scores))
    assert np.allclose(again.transform(scores).sum(axis=1), 1.0)


@pytest.mark.parametrize("window,expected", [
    ("1D", ["2024-01-31", "2024-02-01", "2024-02-01", "2024-03-05"]),
    ("MS", ["2024-01-01", "2024-02-01", "2024-02-01", "2024-03-01"]),
    ("YS", ["2024-01-01"] * 4),
])
def test_window_starts(window, expected):
    from mlexp.monitor.run import MonitorSettings, _window_keys
    from mlexp.monitor.source import Batch, to_times

    times = to_times(pd.Series(["2024-01-31T23:59:00Z", "2024-02-01T00:00:00Z", "2024-02-01T10:00", "2024-03-05"]), "t")
    batch = Batch(pd.Series(["1", "2", "3", "4"]), times, pd.DataFrame({"x": range(4)}), None, None)
    keys = _window_keys(batch, MonitorSettings(baseline=None, data=None, window=window))
    assert [str(k)[:10] for k in keys] == expected
    assert str(to_times(pd.Series([1994, 2018]), "year").iloc[0])[:10] == "1994-01-01"
