"""The real entrypoint: default run, overrides, multirun, run-directory contract, fast paths."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import skops.io as sio

from conftest import MLEXP, run_cli


def _only_run_dir(workdir: Path) -> Path:
    runs = [p for p in (workdir / "outputs").glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_default_run_writes_the_run_directory_contract(workdir):
    done = run_cli(["hydra.run.dir=run"], cwd=workdir)
    run_dir = workdir / "run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["cv"]) == {"accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc",
                                  "average_precision", "log_loss"}
    for stats in metrics["cv"].values():
        assert len(stats["folds"]) == 5 and stats["mean"] is not None
    assert metrics["objective_metric"] == "roc_auc" and metrics["direction"] == "maximize"
    assert metrics["objective"] == pytest.approx(metrics["cv"]["roc_auc"]["mean"])
    # Standardized logistic regression on breast cancer: well above 0.97 ROC AUC everywhere.
    assert metrics["objective"] > 0.97 and metrics["test"]["roc_auc"] > 0.97
    assert {"load_seconds", "cv_seconds", "final_fit_seconds", "total_seconds"} <= set(metrics["timings"])

    lineage = json.loads((run_dir / "lineage.json").read_text())
    assert lineage["status"] == "completed"
    assert lineage["data"]["rows"] == 569 and len(lineage["data"]["sha256"]) == 64
    assert lineage["instance"]["name"] == "local" and lineage["packages"]["scikit-learn"]
    assert len(lineage["config_hash"]) == 64 and lineage["started"] <= lineage["finished"]
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / ".hydra" / "overrides.yaml").is_file()

    model = sio.load(run_dir / "model.skops", trusted=sio.get_untrusted_types(file=run_dir / "model.skops"))
    assert type(model).__name__ == "Pipeline" and type(model.named_steps["model"]).__name__ == "LogisticRegression"
    # The console summary ends the run.
    assert "roc_auc" in done.stdout and "outputs" in done.stdout and "±" in done.stdout


def test_overrides_from_the_issue_compose_and_run(workdir):
    run_cli(
        ["data=wine", "model=random_forest", "splitter=kfold", "splitter.n_splits=3", "encoder=onehot",
         "sampler=smote", "features=[log,standardize,pca]", "seed=7", "model.n_estimators=50", "hydra.run.dir=run"],
        cwd=workdir,
    )
    metrics = json.loads((workdir / "run" / "metrics.json").read_text())
    assert len(metrics["cv"]["accuracy"]["folds"]) == 3
    assert metrics["cv"]["accuracy"]["mean"] > 0.85
    config = (workdir / "run" / ".hydra" / "config.yaml").read_text()
    assert "n_estimators: 50" in config and "PCA" in config and "SMOTE" in config


def test_multirun_runs_each_combination_in_its_own_directory(workdir):
    run_cli(["-m", "model=logreg,random_forest", "sampler=none,smote", "hydra.sweep.dir=sweep2"], cwd=workdir)
    jobs = sorted(p for p in (workdir / "sweep2").iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    objectives = [json.loads((p / "metrics.json").read_text())["objective"] for p in jobs]
    assert all(0.95 < value <= 1.0 for value in objectives)
    overrides = [(p / ".hydra" / "overrides.yaml").read_text() for p in jobs]
    assert "model=logreg" in overrides[0] and "sampler=smote" in overrides[3]


def test_python_dash_m_and_console_script_are_the_same_entrypoint(workdir):
    script = Path(sys.executable).with_name("mlexp")
    a = subprocess.run([str(script), "--cfg", "job"], cwd=workdir, capture_output=True, text=True, check=True)
    b = subprocess.run(MLEXP + ["--cfg", "job"], cwd=workdir, capture_output=True, text=True, check=True)
    assert a.stdout == b.stdout and "model:" in a.stdout and "LogisticRegression" in a.stdout


@pytest.mark.parametrize("flag", ["--help", "--cfg"])
def test_help_and_cfg_do_not_import_heavy_libraries(workdir, flag):
    args = ["--help"] if flag == "--help" else ["--cfg", "job"]
    code = (
        "import sys; sys.argv = ['mlexp', *%r]\n"
        "from mlexp.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('sklearn', 'torch', 'imblearn', 'optuna', 'matplotlib', 'pandas') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n" % (args,)
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stdout, done.stdout[-500:]


def test_predict_mode_reloads_the_model_and_predicts_a_csv(workdir):
    run_cli(["data=penguins", "model=random_forest", "hydra.run.dir=train"], cwd=workdir)
    from palmerpenguins import load_penguins

    new = load_penguins().dropna().drop(columns=["species"]).head(20)
    new.to_csv(workdir / "new.csv", index=False)
    run_cli(["mode=predict", "mode.run_dir=train", "mode.input=new.csv", "hydra.run.dir=pred"], cwd=workdir)
    import pandas as pd

    predictions = pd.read_csv(workdir / "pred" / "predictions.csv")
    assert len(predictions) == 20
    assert set(predictions["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    probabilities = predictions[[c for c in predictions if c.startswith("proba_")]]
    assert probabilities.shape[1] == 3 and (abs(probabilities.sum(axis=1) - 1) < 1e-6).all()
