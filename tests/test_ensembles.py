"""Ensembles composed from model options: stacking, bagging, boosting, voting, members' scores, errors."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, read_metrics, run_cli, run_inprocess
from mlexp.errors import MlexpError


def test_stacking_is_as_good_as_its_best_member(tmp_path: Path):
    # Measured (breast_cancer, 5 folds): logreg 0.9951 +/- 0.0055, random_forest 0.9917 +/- 0.0078,
    # stack with a logistic meta model 0.9967 +/- 0.0028; "within noise" = one fold std of the best member.
    result = run_inprocess(
        ["ensemble=stacking", "ensemble.members=[logreg,random_forest]", "ensemble.meta=logreg", "save_model=false"],
        tmp_path,
    )
    metrics = read_metrics(tmp_path)
    assert list(metrics["members"]) == ["logreg", "random_forest"]
    best = max(metrics["members"].values(), key=lambda m: m["roc_auc"]["mean"])["roc_auc"]
    stack = metrics["cv"]["roc_auc"]
    assert stack["mean"] >= best["mean"] - best["std"], (stack, metrics["members"])
    assert stack["mean"] > 0.99 and len(best["folds"]) == len(stack["folds"]) == 5
    stacking = result.model.named_steps["model"]
    assert type(stacking).__name__ == "StackingClassifier"
    assert type(stacking.final_estimator_).__name__ == "LogisticRegression"


def test_bagging_a_tree_lowers_its_fold_to_fold_variance(tmp_path: Path):
    # Measured (wine, 5 folds): one tree 0.925 +/- 0.025 ROC AUC, 50 bagged trees 0.998 +/- 0.002.
    run_inprocess(
        ["data=wine", "ensemble=bagging", "model=decision_tree", "ensemble.n_estimators=50", "save_model=false"], tmp_path
    )
    metrics = read_metrics(tmp_path)
    (tree,) = metrics["members"].values()
    bagged = metrics["cv"]["roc_auc"]
    assert bagged["std"] < tree["roc_auc"]["std"] / 2, (bagged, tree["roc_auc"])
    assert bagged["mean"] > tree["roc_auc"]["mean"]


def test_boosting_stumps_beats_one_stump_and_refuses_models_without_weights(tmp_path: Path):
    run_inprocess(
        ["ensemble=boosting", "model=decision_tree", "model.max_depth=1", "ensemble.n_estimators=30", "save_model=false",
         "splitter.n_splits=3"],
        tmp_path / "ok",
    )
    metrics = read_metrics(tmp_path / "ok")
    (stump,) = metrics["members"].values()
    assert metrics["cv"]["roc_auc"]["mean"] > stump["roc_auc"]["mean"] + 0.02
    with pytest.raises(MlexpError, match="sample_weight.*ensemble=bagging"):
        run_inprocess(["ensemble=boosting", "model=knn"], tmp_path / "knn")


def test_voting_members_keep_their_overrides_and_the_run_seed(tmp_path: Path):
    result = run_inprocess(
        ["ensemble=voting", "ensemble.members=[logreg,random_forest]", "ensemble.voting=hard", "seed=7",
         "+ensemble.member_params.random_forest.n_estimators=7", "+ensemble.member_params.random_forest.max_depth=3",
         "objective.metric=accuracy", "splitter.n_splits=3"],
        tmp_path,
    )
    voting = result.model.named_steps["model"]
    forest = dict(voting.estimators)["random_forest"]
    assert (forest.n_estimators, forest.max_depth, forest.random_state) == (7, 3, 7)
    assert len(voting.named_estimators_["random_forest"].estimators_) == 7
    metrics = read_metrics(tmp_path)
    assert metrics["cv"]["roc_auc"]["mean"] is None  # hard voting has no probabilities
    assert metrics["members"]["logreg"]["roc_auc"]["mean"] > 0.98
    assert metrics["objective"] > 0.9


def test_inline_member_overrides(tmp_path: Path):
    result = run_inprocess(
        ["ensemble=voting", "ensemble.members=[logreg,{random_forest:{n_estimators:5,max_depth:2}}]",
         "+ensemble.member_params.random_forest.max_depth=4", "splitter.n_splits=2", "save_model=false"],
        tmp_path,
    )
    forest = dict(result.model.named_steps["model"].estimators)["random_forest"]
    assert (forest.n_estimators, forest.max_depth) == (5, 4)  # member_params after the inline values
    assert set(read_metrics(tmp_path)["members"]) == {"logreg", "random_forest"}


def test_regression_stack_and_saved_ensemble_predicts(tmp_path: Path):
    from mlexp.artifacts import load_model
    from mlexp.predict import predict_frame

    result = run_inprocess(
        ["data=diabetes", "splitter=kfold", "splitter.n_splits=3", "ensemble=stacking",
         "ensemble.members=[linear,random_forest]", "ensemble.cv=3"],
        tmp_path,
    )
    assert type(result.model.named_steps["model"]).__name__ == "StackingRegressor"
    metrics = read_metrics(tmp_path)
    assert set(metrics["members"]) == {"linear", "random_forest"}
    assert metrics["cv"]["rmse"]["mean"] < 1.05 * min(m["rmse"]["mean"] for m in metrics["members"].values())
    model, card = load_model(tmp_path)
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame.head(5)
    out = predict_frame(model, card, frame)
    assert np.allclose(out["prediction"], result.model.predict(frame[card["features"]]))


def test_member_errors_name_the_fix(tmp_path: Path):
    with pytest.raises(MlexpError, match="no model option 'nope'.*logreg"):
        run_inprocess(["ensemble=stacking", "ensemble.members=[logreg,nope]"], tmp_path / "a")
    with pytest.raises(MlexpError, match="member_params has overrides for svm"):
        run_inprocess(["ensemble=voting", "+ensemble.member_params.svm.C=2"], tmp_path / "b")
    with pytest.raises(MlexpError, match="soft voting.*svm"):
        run_inprocess(["ensemble=voting", "ensemble.members=[logreg,svm]"], tmp_path / "c")
    with pytest.raises(MlexpError, match="ensemble member logreg: model .* regression"):
        run_inprocess(["data=diabetes", "splitter=kfold", "ensemble=voting",
                       "+ensemble.member_params.logreg._regressor_=null"], tmp_path / "d")


def test_cli_members_from_a_user_config_dir_and_summary(tmp_path: Path):
    user = tmp_path / "my_conf" / "model"
    user.mkdir(parents=True)
    (user / "shallow_tree.yaml").write_text(
        "_target_: sklearn.tree.DecisionTreeClassifier\n_regressor_: sklearn.tree.DecisionTreeRegressor\n"
        "max_depth: 2\nrandom_state: ${seed}\n"
    )
    done = run_cli(
        ["ensemble=voting", "ensemble.members=[logreg,shallow_tree]", "splitter.n_splits=3",
         "+ensemble.member_params.shallow_tree.max_depth=3", "hydra.run.dir=run"],
        cwd=tmp_path, env={"MLEXP_CONFIG_DIR": str(tmp_path / "my_conf")},
    )
    assert "ensemble=voting" in done.stdout and "shallow_tree" in done.stdout and "(ensemble)" in done.stdout
    metrics = read_metrics(tmp_path / "run")
    assert set(metrics["members"]) == {"logreg", "shallow_tree"}


@pytest.mark.slow
@pytest.mark.skipif(
    not (REPO / "conf" / "model" / "mlp.yaml").is_file() or importlib.util.find_spec("torch") is None,
    reason="the PyTorch mlp model option is not available",
)
def test_pytorch_member_in_a_stack(tmp_path: Path):
    common = ["ensemble=stacking", "ensemble.members=[logreg,mlp]", "ensemble.meta=logreg", "ensemble.cv=2",
              "+ensemble.member_params.mlp.max_epochs=5", "splitter.n_splits=2"]
    run_inprocess([*common, "save_model=false"], tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert metrics["members"]["mlp"]["roc_auc"]["mean"] > 0.9
    assert metrics["cv"]["roc_auc"]["mean"] > 0.9
    with pytest.raises(MlexpError, match="save_model=false"):
        run_inprocess(common, tmp_path / "saved")
