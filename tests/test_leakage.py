"""Leakage: where a leaky pipeline scores far above chance, mlexp's CV score stays at chance."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from sklearn.linear_model import LogisticRegression

from conftest import run_cli


@pytest.fixture
def random_target_with_unique_ids(workdir):
    """600 rows, a unique string ID per row, two noise columns, and a coin-flip target."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "customer_id": [f"c{i:05d}" for i in range(600)],
        "noise_a": rng.normal(size=600),
        "noise_b": rng.normal(size=600),
        "y": rng.integers(0, 2, 600),
    })
    frame.to_csv(workdir / "ids.csv", index=False)
    return frame


def test_target_encoding_of_unique_ids_stays_at_chance(workdir, random_target_with_unique_ids):
    frame = random_target_with_unique_ids
    # The leaky way: encode each ID by the target mean over the whole table, then cross-validate.
    leaky_code = frame.groupby("customer_id")["y"].transform("mean").to_frame()
    leaky = cross_val_predict(LogisticRegression(), leaky_code, frame.y, cv=StratifiedKFold(5, shuffle=True, random_state=0),
                              method="predict_proba")[:, 1]
    assert roc_auc_score(frame.y, leaky) > 0.95

    run_cli(["data=csv", "data.path=ids.csv", "data.target=y", "data.roles.categorical=[customer_id]",
             "encoder=target", "hydra.run.dir=run"], cwd=workdir)
    metrics = json.loads((workdir / "run" / "metrics.json").read_text())
    assert 0.4 < metrics["cv"]["roc_auc"]["mean"] < 0.6
    assert 0.35 < metrics["test"]["roc_auc"] < 0.65


def test_oversampling_happens_inside_the_training_folds_only(workdir):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(800, 5))
    y = (rng.random(800) < 0.15).astype(int)  # imbalanced coin flips: nothing to learn
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)]).assign(y=y)
    frame.to_csv(workdir / "noise.csv", index=False)

    # The leaky way: oversample the whole table, then cross-validate a 1-nearest-neighbour model.
    from imblearn.over_sampling import RandomOverSampler

    X_over, y_over = RandomOverSampler(random_state=0).fit_resample(X, y)
    leaky = cross_val_predict(KNeighborsClassifier(1), X_over, y_over, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert roc_auc_score(y_over, leaky) > 0.75

    run_cli(["data=csv", "data.path=noise.csv", "data.target=y", "sampler=random_over", "model=knn",
             "model.n_neighbors=1", "hydra.run.dir=run"], cwd=workdir)
    metrics = json.loads((workdir / "run" / "metrics.json").read_text())
    assert 0.4 < metrics["cv"]["roc_auc"]["mean"] < 0.6
