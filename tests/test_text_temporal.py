"""Text (bag of words, n-grams), temporal and feature-selection `features` options on real data."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import read_metrics, run_inprocess
from mlexp.errors import MlexpError
from mlexp.pipeline.transformers import DatetimeFeatures

# --- text -----------------------------------------------------------------------------------------


def test_reviews_tfidf_bigrams_logreg_reach_the_plain_script(tmp_path: Path):
    # A plain TfidfVectorizer((1, 2), min_df=2) + LogisticRegression script gets 0.871 test ROC AUC.
    result = run_inprocess(["data=amazon_reviews", "features=[ngrams]", "splitter.n_splits=3"], tmp_path)
    metrics = read_metrics(tmp_path)
    assert metrics["test"]["roc_auc"] >= 0.83, metrics["test"]
    assert result.lineage["data"]["roles"]["text"] == ["review"]
    model = result.model
    vectorizer = model.named_steps["columns"].named_transformers_["text_review"]
    assert vectorizer.ngram_range == (1, 2) and any(" " in t for t in vectorizer.get_feature_names_out()[:5000])
    reviews = pd.DataFrame({"review": ["great coffee, will buy again", "zxqvv blorfle unseenword", ""]})
    assert sp.issparse(model[:-1].transform(reviews))  # sparse all the way to the model
    proba = model.predict_proba(reviews)  # unknown words (and an empty review) do not fail
    assert proba.shape == (3, 2) and np.isfinite(proba).all()
    assert proba[0, 1] > proba[1, 1]  # class 1 = "great"

    from mlexp.artifacts import load_model
    from mlexp.predict import predict_frame

    saved, card = load_model(tmp_path)
    out = predict_frame(saved, card, reviews)
    assert list(out.columns) == ["prediction", "proba_0", "proba_1"] and len(out) == 3


def test_bag_of_words_counts_and_dense_only_models_are_refused(tmp_path: Path):
    result = run_inprocess(
        ["data=amazon_reviews", "features=[bag_of_words]", "features.bag_of_words.transformer.min_df=3",
         "+model.solver=liblinear", "splitter.n_splits=2", "save_model=false"],
        tmp_path / "bow",
    )
    counts = result.model[:-1].transform(pd.DataFrame({"review": ["good good good"]}))
    assert sp.issparse(counts) and counts.max() == 3  # raw counts, not tf-idf
    assert read_metrics(tmp_path / "bow")["test"]["roc_auc"] > 0.75
    with pytest.raises(MlexpError, match="sparse.*HistGradientBoostingClassifier"):
        run_inprocess(["data=amazon_reviews", "features=[ngrams]", "model=gradient_boosting"], tmp_path / "hgb")


def test_missing_text_is_a_clear_error(tmp_path: Path):
    frame = pd.DataFrame({
        "note": ["a fine long product review here"] * 20 + [None] + ["a rather bad long product review"] * 19,
        "y": [1] * 20 + [0] * 20,
    })
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(MlexpError, match=r"missing text in note \(1\)"):
        run_inprocess(["data=csv", f"data.path={tmp_path / 't.csv'}", "data.target=y", "data.roles.text=[note]",
                       "features=[ngrams]"], tmp_path / "run")


# --- temporal -------------------------------------------------------------------------------------


def test_temporal_parts_on_hand_checked_dates():
    dates = pd.DataFrame({"when": [
        "2012-01-07 13:45",  # Saturday
        "2012-01-09 00:00",  # Monday
        "2015-12-27 23:00",  # Sunday
        "2014-07-04 08:30",  # Friday
        None,
    ]})
    parts = ["year", "month", "dayofweek", "hour", "weekend", "day", "quarter"]
    expander = DatetimeFeatures(parts=parts).fit(dates)
    out = pd.DataFrame(expander.transform(dates), columns=expander.get_feature_names_out())
    assert list(out.columns) == [f"when_{p}" for p in parts]  # the source column itself is not passed on
    expected = [
        [2012, 1, 5, 13, 1, 7, 1],
        [2012, 1, 0, 0, 0, 9, 1],
        [2015, 12, 6, 23, 1, 27, 4],
        [2014, 7, 4, 8, 0, 4, 3],
    ]
    assert out.iloc[:4].to_numpy().tolist() == expected
    assert out.iloc[4].isna().all()  # a missing date gives NaN parts

    cyclical = DatetimeFeatures(parts=["month", "weekend"], cyclical=True).fit(dates)
    assert list(cyclical.get_feature_names_out()) == ["when_month_sin", "when_month_cos", "when_weekend"]
    values = cyclical.transform(dates)
    # December (12) and January (1) sit next to each other: angle 2*pi*m/12.
    assert np.allclose(values[0, :2], [np.sin(np.pi / 6), np.cos(np.pi / 6)])
    assert np.allclose(values[2, :2], [0.0, 1.0], atol=1e-12)
    with pytest.raises(ValueError, match="parts=.*choose"):
        DatetimeFeatures(parts=["fortnight"]).fit(dates)


def test_temporal_expander_follows_the_estimator_contract():
    from sklearn.utils.estimator_checks import check_estimator

    check_estimator(DatetimeFeatures())


def test_temporal_on_seattle_weather_end_to_end(tmp_path: Path):
    # Measured (3 folds, logreg): 0.812 ROC AUC without the date, 0.899 with its calendar parts.
    run_inprocess(["data=seattle_weather", "splitter.n_splits=3", "save_model=false"], tmp_path / "plain")
    result = run_inprocess(
        ["data=seattle_weather", "features=[temporal,standardize]", "features.temporal.transformer.cyclical=true",
         "splitter.n_splits=3"], tmp_path / "dates",
    )
    names = list(result.model.named_steps["columns"].get_feature_names_out())
    assert "datetime__date_month_sin" in names and "datetime__date_weekend" in names
    assert not any(n.endswith("__date") for n in names)  # the date column is dropped after expansion
    scaled = result.model.named_steps["columns"].named_transformers_["datetime"]
    assert [name for name, _ in scaled.steps] == ["temporal", "standardize"]  # options listed after it apply
    with_dates = read_metrics(tmp_path / "dates")["cv"]["roc_auc"]["mean"]
    assert with_dates > read_metrics(tmp_path / "plain")["cv"]["roc_auc"]["mean"] + 0.03
    assert len(result.lineage["data"]["classes"]) == 5


def test_temporal_from_string_dates_with_gaps(tmp_path: Path):
    rng = np.random.default_rng(0)
    days = pd.date_range("2021-01-01", periods=200, freq="D")
    frame = pd.DataFrame({"day": days.strftime("%Y-%m-%d"), "x": rng.normal(size=200)})
    frame["busy"] = ((days.day_of_week >= 5) | (frame.x > 1)).astype(int)  # weekends are busy
    frame.loc[3, "day"] = None
    frame.to_csv(tmp_path / "days.csv", index=False)
    base = ["data=csv", f"data.path={tmp_path / 'days.csv'}", "data.target=busy", "splitter.n_splits=3"]
    with pytest.raises(MlexpError, match=r"missing dates \(NaT\) in day \(1\).*features=\[temporal,impute\]"):
        run_inprocess([*base, "features=[temporal,standardize]", "data.impute.numeric=none"], tmp_path / "gap")
    imputed = run_inprocess([*base, "features=[temporal,standardize]"], tmp_path / "default")  # data.impute
    branch = imputed.model.named_steps["columns"].named_transformers_["datetime"]
    assert [name for name, _ in branch.steps] == ["temporal", "data_impute", "standardize"]
    result = run_inprocess([*base, "features=[temporal,impute,standardize]"], tmp_path / "ok")
    assert result.lineage["data"]["roles"]["datetime"] == ["day"]  # inferred from the strings
    assert read_metrics(tmp_path / "ok")["cv"]["roc_auc"]["mean"] > 0.95  # the weekend flag is learned


# --- selection and combination --------------------------------------------------------------------


def _n_model_inputs(result) -> int:
    return result.model.named_steps["model"].n_features_in_


def test_select_k_best_and_l1_for_both_tasks(tmp_path: Path):
    kbest = run_inprocess(["features=[standardize,select_k_best]", "features.select_k_best.transformer.classification.k=5",
                           "splitter.n_splits=3", "save_model=false"], tmp_path / "k")
    assert _n_model_inputs(kbest) == 5 and kbest.objective > 0.97
    l1 = run_inprocess(["features=[standardize,select_l1]", "splitter.n_splits=3", "save_model=false"], tmp_path / "l1")
    kept = _n_model_inputs(l1)
    selector = l1.model.named_steps["select_l1"]
    assert 0 < kept < 30 and kept == int((np.abs(selector.estimator_.coef_) > 1e-5).sum())
    assert l1.objective > 0.97
    regression = run_inprocess(["data=diabetes", "model=linear", "splitter=kfold", "splitter.n_splits=3",
                                "features=[standardize,select_l1,select_k_best]",
                                "features.select_k_best.transformer.regression.k=4", "save_model=false"], tmp_path / "r")
    assert type(regression.model.named_steps["select_l1"].estimator_).__name__ == "LassoCV"
    assert _n_model_inputs(regression) == 4 and read_metrics(tmp_path / "r")["cv"]["r2"]["mean"] > 0.35


def test_drop_keep_and_polynomial(tmp_path: Path):
    penguins = ["data=penguins", "splitter.n_splits=3", "save_model=false"]
    dropped = run_inprocess([*penguins, "features=[drop,standardize]", "features.drop.columns=[island,bill_depth_mm]"],
                            tmp_path / "drop")
    names = list(dropped.model.named_steps["columns"].get_feature_names_out())
    assert not any("island" in n or "bill_depth_mm" in n for n in names) and any("sex" in n for n in names)
    kept = run_inprocess([*penguins, "features=[keep,standardize]", "features.keep.columns=[bill_length_mm,island]"],
                         tmp_path / "keep")
    names = list(kept.model.named_steps["columns"].get_feature_names_out())
    assert names[0] == "numeric__bill_length_mm" and all("island" in n for n in names[1:]) and len(names) == 4
    assert kept.objective > 0.95
    role = run_inprocess([*penguins, "features=[drop,standardize]", "features.drop.columns=categorical"],
                         tmp_path / "role")
    names = list(role.model.named_steps["columns"].get_feature_names_out())
    assert len(names) == 5 and all(n.startswith("numeric__") for n in names)  # island and sex are gone
    poly = run_inprocess(["features=[standardize,polynomial]", "splitter.n_splits=3", "save_model=false"], tmp_path / "p")
    assert _n_model_inputs(poly) == 30 + 30 * 29 // 2  # the columns and every pair's product
    with pytest.raises(MlexpError, match=r"features.drop.columns is not set.*features.drop.columns=\["):
        run_inprocess(["features=[drop]"], tmp_path / "unset")
    with pytest.raises(MlexpError, match="unknown columns \\['nope'\\]"):
        run_inprocess(["features=[keep]", "features.keep.columns=[nope]"], tmp_path / "unknown")
