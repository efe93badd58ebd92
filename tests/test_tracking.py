"""Tracking against the real libraries: MLflow runs read back with MlflowClient, TensorBoard with EventAccumulator."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, compose, run_cli


@pytest.mark.slow
def test_mlflow_sweep_is_a_parent_run_with_job_children(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # Job 1 (instance.vcpus=0) fails before the experiment starts: a FAILED child with its error.
    done = run_cli(["-m", "tracking=mlflow", "instance.vcpus=2,0", "splitter.n_splits=3", "hydra.sweep.dir=sweep"],
                   cwd=tmp_path, env=env, check=False)
    assert done.returncode == 2, done.stderr  # a job failed: one paragraph, exit 2
    sweep = tmp_path / "sweep"
    # Default store: embedded SQLite in the working directory, no server.
    assert (tmp_path / "mlruns" / "mlflow.db").is_file()
    parent_record = json.loads((sweep / "mlflow_parent.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mlexp")
    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    assert len(runs) == 3

    parent = runs[parent_record["run_id"]]
    children = [r for r in runs.values() if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2
    finished = next(r for r in children if r.data.tags["mlexp.job"] == "0")
    failed = next(r for r in children if r.data.tags["mlexp.job"] == "1")
    assert finished.info.status == "FINISHED" and failed.info.status == "FAILED"
    assert "instance.vcpus must be at least 1" in failed.data.tags["mlexp.error"]

    # Params: the flattened config.
    params = finished.data.params
    assert params["model._target_"] == "sklearn.linear_model.LogisticRegression"
    assert params["splitter.n_splits"] == "3" and params["instance.vcpus"] == "2"
    # Metrics: per fold with step = fold, as in the job's metrics.json.
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    history = sorted(client.get_metric_history(finished.info.run_id, "cv.roc_auc"), key=lambda m: m.step)
    assert [m.step for m in history] == [0, 1, 2]
    assert [m.value for m in history] == pytest.approx(metrics["cv"]["roc_auc"]["folds"])
    assert finished.data.metrics["objective"] == pytest.approx(metrics["objective"])
    assert finished.data.metrics["test.roc_auc"] == pytest.approx(metrics["test"]["roc_auc"])
    # Artifacts: model, plots, metrics.json, report.
    top = {a.path for a in client.list_artifacts(finished.info.run_id)}
    assert {"metrics.json", "report.md", "lineage.json", "plots", "model", "config"} <= top
    assert {a.path for a in client.list_artifacts(finished.info.run_id, "plots")} >= {"plots/fold_scores.png"}
    assert "model/model.skops" in {a.path for a in client.list_artifacts(finished.info.run_id, "model")}

    # The parent carries the sweep's leaderboard and best objective.
    assert parent.info.status == "FINISHED"
    assert {"leaderboard.csv", "leaderboard.md"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert parent.data.metrics["best_objective"] == pytest.approx(metrics["objective"])


@pytest.mark.slow
def test_tensorboard_events_of_a_pytorch_model(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("tensorboard")
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mlexp.experiment import run

    run_dir = tmp_path / "run"
    cfg = compose(["model=mlp", "model.max_epochs=4", "model.early_stopping=false", "splitter.n_splits=2",
                   "tracking=tensorboard", "report=false", "save_model=false"])
    run(cfg, run_dir=run_dir)
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"fold_0/train_loss", "fold_1/valid_loss", "fold_0/roc_auc", "cv/roc_auc"} <= tags
    # The same values as the run's training curves, step = epoch.
    curves = pd.read_csv(run_dir / "training_curves.csv")
    fold0 = curves[curves["fold"] == 0].sort_values("epoch")
    logged = events.Scalars("fold_0/train_loss")
    assert [e.step for e in logged] == fold0["epoch"].tolist() == [1, 2, 3, 4]
    assert [e.value for e in logged] == pytest.approx(fold0["train_loss"].tolist(), rel=1e-6)
    assert [e.step for e in events.Scalars("cv/roc_auc")] == [0, 1]


def test_tensorboard_writer_with_synthetic_epochs(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mlexp.tracking import TensorBoardTracker

    epochs = [{"fold": f, "epoch": e, "train_loss": 1.0 / e, "valid_loss": 1.5 / e}
              for f in (0, None) for e in (1, 2, 3)]
    metrics = {"cv": {"rmse": {"mean": 2.0, "std": 0.1, "folds": [1.9, 2.1]}}}
    target = TensorBoardTracker(log_dir=str(tmp_path / "logs")).log_run(tmp_path / "sweep" / "7", None, metrics, epochs)
    assert target == tmp_path / "logs" / "sweep_7"
    events = EventAccumulator(str(target))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"fold_0/train_loss", "fold_0/valid_loss", "final/train_loss",
                                             "final/valid_loss", "cv/rmse"}
    assert [round(e.value, 4) for e in events.Scalars("final/valid_loss")] == [1.5, 0.75, 0.5]


def test_trackers_are_not_imported_unless_selected(tmp_path):
    code = (
        "import sys; from mlexp.cli import main; "
        "sys.argv = ['mlexp', 'splitter.n_splits=2', 'report=false', 'save_model=false', 'hydra.run.dir=run']; "
        "main(); print('LOADED', sorted(m for m in ('mlflow', 'tensorboard') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout


def test_a_missing_tracking_extra_names_the_fix(tmp_path, monkeypatch):
    from mlexp.errors import MlexpError
    from mlexp.tracking import tracker_for

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if mlexp[mlflow] were not installed
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(MlexpError, match=r"mlexp\[mlflow\]"):
        tracker_for(compose(["tracking=mlflow"]))
