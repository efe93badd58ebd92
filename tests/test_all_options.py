"""Every option of every config group composes and runs on small real data (no YAML hides a broken _target_)."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, compose, read_metrics, run_inprocess

CONF = REPO / "conf"
# Groups exercised elsewhere: `mode` (train is every run; predict in test_cli and test_predict, serve in
# test_serve, recommend in test_recommend: they need a train run first), `tuner` (multirun only).
SKIPPED_GROUPS = {"mode", "tuner", "hydra"}
SLOW_GROUPS = {"experiment"}  # presets run full-size data
# Extra overrides an option needs to make sense (regression data needs a regression splitter, ...).
NEEDS = {
    ("data", "diabetes"): ["model=linear", "splitter=kfold"],
    ("data", "diamonds"): ["model=linear", "splitter=kfold"],
    ("data", "penguins"): ["model=logreg"],
    ("encoder", "label"): ["data=penguins"],
    ("encoder", "onehot"): ["data=penguins"],
    ("encoder", "target"): ["data=penguins"],
    ("model", "lasso"): ["data=diabetes", "splitter=kfold"],
    ("features", "log"): ["data=diabetes", "model=linear", "splitter=kfold"],
    ("data", "amazon_reviews"): ["features=[ngrams]"],
    ("data", "seattle_weather"): ["features=[temporal,standardize]"],
    ("features", "bag_of_words"): ["data=amazon_reviews"],
    ("features", "ngrams"): ["data=amazon_reviews"],
    ("features", "temporal"): ["data=seattle_weather"],
    ("features", "drop"): ["data=penguins", "features.drop.columns=[island]"],
    ("features", "keep"): ["data=penguins", "features.keep.columns=[bill_length_mm,island]"],
    ("features", "truncated_svd"): ["data=digits", "features.truncated_svd.transformer.n_components=20"],
    ("splitter", "group_kfold"): ["data=synthetic", "splitter.groups=cat0", "splitter.n_splits=3"],
    ("splitter", "stratified_group_kfold"): ["data=synthetic", "splitter.groups=cat0", "splitter.n_splits=3"],
    ("splitter", "time_series"): ["data=seattle_weather", "features=[temporal,standardize]"],
    ("target_transform", "log1p"): ["data=diabetes"],
    ("target_transform", "sqrt"): ["data=diabetes"],
    ("target_transform", "yeo_johnson"): ["data=diabetes"],
    ("bias", "auto"): ["data=penguins", "data.roles.facet=island", "bias.label_values=[Adelie]"],
    ("bias", "clarify"): ["data=penguins", "bias.facet=sex", "bias.label_values=[Gentoo]", "bias.group=island"],
    ("compress", "distill"): ["compress.student.max_epochs=5"],
    ("compress", "prune"): ["compress.fine_tune_epochs=1"],
    ("compress", "prune_structured"): ["compress.fine_tune_epochs=1"],
}
GROUP_NEEDS = {"optimizer": ["model=mlp", "model.max_epochs=3"], "rules": ["model=mlp", "model.max_epochs=3"],
               "compress": ["model=mlp", "model.max_epochs=5", "splitter.n_splits=3"]}
LIST_GROUPS = {"features", "rules"}  # groups whose option is chosen as a list: features=[log]
# Groups a mode other than train runs: (mode, overrides). Their options run through that mode below.
MODE_GROUPS = {"continual": ("incremental", ["model=mlp", "data=digits", "continual.epochs=2",
                                             "continual.tasks.column=target",
                                             "continual.tasks.values=[[0,1,2,3,4],[5,6,7,8,9]]"])}


def _options(groups=None):
    for group_dir in sorted(p for p in CONF.iterdir() if p.is_dir() and p.name not in SKIPPED_GROUPS):
        if (groups is None and group_dir.name in MODE_GROUPS) or (groups is not None and group_dir.name not in groups):
            continue
        for option in sorted(f.stem for f in group_dir.glob("*.yaml")):
            yield group_dir.name, option


def _choose(group: str, option: str) -> str:
    return f"{group}=[{option}]" if group in LIST_GROUPS else f"{group}={option}"


def _params():
    for group, option in _options():
        marks = [pytest.mark.slow] if group in SLOW_GROUPS else []
        yield pytest.param(group, option, marks=marks, id=f"{group}-{option}")


@pytest.mark.parametrize("group,option", list(_params()))
def test_option_composes_and_runs(group, option, tmp_path: Path):
    overrides = [_choose(group, option), *GROUP_NEEDS.get(group, []), *NEEDS.get((group, option), [])]
    if group == "data" and option == "csv":
        from sklearn.datasets import load_iris

        load_iris(as_frame=True).frame.to_csv(tmp_path / "iris.csv", index=False)
        overrides += [f"data.path={tmp_path / 'iris.csv'}", "data.target=target"]
    if group == "encoder" and option == "none":
        rng = np.random.default_rng(0)
        frame = pd.DataFrame({"x": rng.normal(size=300), "code": rng.integers(0, 4, 300)})
        frame["y"] = ((frame.x + frame.code) > 1.5).astype(int)
        frame.to_csv(tmp_path / "codes.csv", index=False)
        overrides += ["data=csv", f"data.path={tmp_path / 'codes.csv'}", "data.target=y", "data.roles.categorical=[code]"]
    if group == "tracking" and option == "mlflow":  # keep the MLflow store out of the working directory
        overrides.append(f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}")
    if group == "instance" and compose([f"instance={option}"]).instance.gpus > 0:
        overrides.append("instance.allow_cpu_fallback=true")
    cfg = compose(overrides)
    result = run_inprocess(overrides, tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert math.isfinite(result.objective) and metrics["objective"] == result.objective
    assert (tmp_path / "run" / "lineage.json").is_file()
    if cfg.save_model:
        assert any((tmp_path / "run").glob("model.*"))
    if "roc_auc" in metrics["cv"]:
        roc_auc = metrics["cv"]["roc_auc"]["mean"]
        assert roc_auc > 0.6, f"{group}={option} barely beats chance: {roc_auc}"
    else:
        assert metrics["cv"]["r2"]["mean"] > 0.1, f"{group}={option} explains nothing: {metrics['cv']['r2']}"


@pytest.mark.parametrize("group,option", [pytest.param(g, o, id=f"{g}-{o}") for g, o in _options(MODE_GROUPS)])
def test_mode_option_composes_and_runs(group, option, tmp_path: Path):
    """Options of the groups another mode reads (continual: mode=incremental) run through that mode."""
    import importlib

    from mlexp.modes import MODES

    mode, needs = MODE_GROUPS[group]
    module, function = MODES[mode]
    objective = getattr(importlib.import_module(module), function)(
        compose([f"mode={mode}", _choose(group, option), *needs]), run_dir=tmp_path)
    metrics = read_metrics(tmp_path)
    assert math.isfinite(objective) and metrics["objective"] == objective
    assert objective > 0.3, f"{group}={option}: {objective}"  # chance is 0.1 on ten digits
