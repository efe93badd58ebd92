"""Run reports: report.md and valid PNG plots per task, warnings, kept predictions; progress bars on a TTY only."""

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import MLEXP, REPO, run_inprocess

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_report(run_dir: Path, plots: set) -> str:
    """report.md links exactly ``plots``; each is a real PNG that matplotlib reads back."""
    import matplotlib.image

    report = (run_dir / "report.md").read_text()
    linked = set(re.findall(r"\]\(plots/([^)]+)\)", report))
    assert linked == plots
    assert {p.name for p in (run_dir / "plots").iterdir()} == plots
    for name in plots:
        path = run_dir / "plots" / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0.01  # something was drawn
    return report


def test_binary_classification_report(tmp_path):
    result = run_inprocess(["splitter.n_splits=3", "save_model=false"], tmp_path / "run")
    report = _assert_report(tmp_path / "run", {"fold_scores.png", "confusion_matrix.png", "roc_pr_curves.png"})
    metrics = result.metrics
    assert f"= {metrics['objective']:.4f} ± {metrics['cv']['roc_auc']['std']:.4f} over 3 folds" in report
    # Standardized logistic regression on breast cancer: no over-fitting, no unstable folds.
    assert "## Warnings\n\nNone." in report
    # Training-fold scores are kept beside the validation ones, one per fold.
    train = metrics["cv_train"]["roc_auc"]
    assert len(train["folds"]) == 3 and train["mean"] >= metrics["cv"]["roc_auc"]["mean"] - 0.01
    for fold, value in enumerate(metrics["cv"]["accuracy"]["folds"]):
        assert f"| {fold} | {value:.4f} |" in report


def test_regression_report(tmp_path):
    run_inprocess(["data=diabetes", "model=linear", "splitter=kfold", "splitter.n_splits=3", "save_model=false"],
                  tmp_path / "run")
    report = _assert_report(tmp_path / "run", {"fold_scores.png", "prediction_errors.png"})
    assert "Predicted vs actual, residuals" in report and "confusion" not in report


def test_multiclass_report_draws_one_vs_rest_curves(tmp_path):
    run_inprocess(["data=wine", "splitter.n_splits=3", "save_model=false"], tmp_path / "run")
    report = _assert_report(tmp_path / "run", {"fold_scores.png", "confusion_matrix.png", "roc_pr_curves.png"})
    assert "one-vs-rest per class" in report


def test_overfitting_tree_gets_a_divergence_warning(tmp_path):
    # An unpruned tree scores 1.0 on its own training rows and well below on validation rows.
    result = run_inprocess(["model=decision_tree", "splitter.n_splits=3", "save_model=false"], tmp_path / "run")
    report = (tmp_path / "run" / "report.md").read_text()
    assert result.metrics["cv_train"]["roc_auc"]["mean"] == pytest.approx(1.0)
    assert "Train and validation diverge: train roc_auc 1.0000" in report


def test_report_false_writes_no_report(tmp_path):
    run_inprocess(["splitter.n_splits=2", "report=false", "save_model=false"], tmp_path / "run")
    assert not (tmp_path / "run" / "report.md").exists() and not (tmp_path / "run" / "plots").exists()


def test_warnings_thresholds():
    from mlexp.reporting.report import report_warnings

    steady = {"roc_auc": {"mean": 0.95, "std": 0.01, "folds": [0.94, 0.95, 0.96]}}
    assert report_warnings(steady, {"roc_auc": {"mean": 0.97}}, "roc_auc") == []
    shaky = {"roc_auc": {"mean": 0.8, "std": 0.09, "folds": [0.7, 0.8, 0.9]}}
    assert "High fold-to-fold variance" in report_warnings(shaky, {}, "roc_auc")[0]
    errors = {"rmse": {"mean": 50.0, "std": 10.0, "folds": [40.0, 50.0, 60.0]}}
    found = report_warnings(errors, {"rmse": {"mean": 30.0}}, "rmse")
    assert len(found) == 2 and "20%" in found[0] and "x1.67" in found[1]


def test_cross_validate_keeps_out_of_fold_predictions():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlexp.evaluation import cross_validate
    from mlexp.reporting.reporter import Reporter

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())])
    cv = cross_validate(pipeline, X, y, StratifiedKFold(4, shuffle=True, random_state=0), "classification", 2,
                        Reporter("roc_auc", "maximize"))
    pred = cv.predictions
    assert len(pred.y_true) == len(y) and sorted(np.bincount(pred.fold)) == sorted([143, 142, 142, 142])
    assert pred.scores.shape == (len(y), 2) and pred.scores_kind == "proba"
    for fold, scores in enumerate(cv.folds):  # the kept predictions are the ones that were scored
        rows = pred.fold == fold
        assert accuracy_score(pred.y_true[rows], pred.y_pred[rows]) == pytest.approx(scores["accuracy"])
    assert len(cv.train_folds) == 4


def test_progress_is_silent_off_a_terminal(monkeypatch):
    from mlexp.reporting.progress import progress, progress_enabled

    stream = io.StringIO()
    monkeypatch.delenv("MLEXP_PROGRESS", raising=False)
    assert not progress_enabled(stream)
    monkeypatch.setattr(sys, "stderr", stream)
    assert list(progress(range(3), desc="folds")) == [0, 1, 2]
    assert stream.getvalue() == ""
    monkeypatch.setenv("MLEXP_PROGRESS", "1")
    assert progress_enabled(stream)


def test_progress_bar_appears_on_a_terminal(tmp_path):
    """Under a pseudo-terminal the fold bar is drawn (the same run through pipes stays quiet: test_leaderboard)."""
    env = {k: v for k, v in os.environ.items() if k != "MLEXP_PROGRESS"}
    env["HYDRA_FULL_ERROR"] = "0"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    primary, secondary = pty.openpty()
    # A fresh pseudo-terminal is 0 columns wide, and tqdm draws nothing in 0 columns.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    process = subprocess.Popen(MLEXP + ["splitter.n_splits=3", "report=false", "save_model=false",
                                        "hydra.run.dir=run"], cwd=tmp_path, env=env,
                               stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary)
    os.close(secondary)
    output = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(primary)
    assert process.wait(timeout=60) == 0, output.decode(errors="replace")[-2000:]
    text = output.decode(errors="replace")
    assert "cv folds" in text and "/3" in text and "\r" in text
