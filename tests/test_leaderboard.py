"""Sweep leaderboards: a real 4-job multirun with failing jobs, then `mlexp-report` on an interrupted sweep."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

REPORT_CLI = Path(sys.executable).parent / "mlexp-report"


def _read(path: Path) -> list:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _mlexp_report(sweep: Path) -> subprocess.CompletedProcess:
    # The installed console script when there is one (the user's command), else the same main().
    command = [str(REPORT_CLI)] if REPORT_CLI.is_file() else [sys.executable, "-m", "mlexp.reporting.leaderboard"]
    return subprocess.run(command + [str(sweep)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple:
    """model=logreg,knn x instance.vcpus=2,0: the two vcpus=0 jobs fail before the experiment starts."""
    workdir = tmp_path_factory.mktemp("sweep")
    done = run_cli(["-m", "model=logreg,knn", "instance.vcpus=2,0", "splitter.n_splits=3", "save_model=false",
                    "hydra.sweep.dir=sweep"], cwd=workdir, check=False)
    return workdir / "sweep", done


def test_leaderboard_lists_every_job_sorted_with_failures(sweep):
    sweep_dir, done = sweep
    # Every job ran; the sweep ends with one paragraph naming the failed jobs (no traceback), exit 2.
    assert done.returncode == 2, done.stderr
    assert "2 of 4 jobs failed (job 1, 3)" in done.stderr and "Traceback" not in done.stderr
    rows = _read(sweep_dir / "leaderboard.csv")
    assert len(rows) == 4
    assert {r["job"] for r in rows} == {"0", "1", "2", "3"}
    completed, failed = rows[:2], rows[2:]
    assert [r["status"] for r in completed] == ["completed", "completed"]
    assert [r["status"] for r in failed] == ["failed", "failed"]
    assert [r["rank"] for r in rows] == ["1", "2", "", ""]
    # Sorted by the objective (roc_auc, maximize), each value the job's own metrics.json.
    objectives = [float(r["objective"]) for r in completed]
    assert objectives == sorted(objectives, reverse=True)
    for row in completed:
        metrics = json.loads((sweep_dir / row["job_dir"] / "metrics.json").read_text())
        assert float(row["objective"]) == pytest.approx(metrics["objective"])
        assert float(row["cv_roc_auc_std"]) == pytest.approx(metrics["cv"]["roc_auc"]["std"])
        assert float(row["test_accuracy"]) == pytest.approx(metrics["test"]["accuracy"])
        assert float(row["fit_seconds"]) > 0 and row["estimated_cost_usd"] != ""
        assert "instance.vcpus=2" in row["overrides"] and row["error"] == ""
    assert {r["overrides"].split()[0] for r in completed} == {"model=logreg", "model=knn"}
    for row in failed:
        assert "instance.vcpus=0" in row["overrides"]
        assert "instance.vcpus must be at least 1" in row["error"] and row["objective"] == ""
        # Failed before mlexp.experiment.run: the callback wrote the job's lineage.json.
        lineage = json.loads((sweep_dir / row["job_dir"] / "lineage.json").read_text())
        assert lineage["status"] == "failed" and "instance.vcpus must be at least 1" in lineage["error"]

    markdown = (sweep_dir / "leaderboard.md").read_text()
    assert "4 jobs: 2 completed, 2 failed" in markdown
    assert markdown.count("\n| ") == 5  # header + 4 rows
    assert "leaderboard (4 jobs)" in done.stdout and "completed" in done.stdout


def test_no_progress_bar_when_output_is_not_a_terminal(sweep):
    _, done = sweep
    for stream in (done.stdout, done.stderr):
        assert "cv folds" not in stream and "\r" not in stream


def test_mlexp_report_rebuilds_an_interrupted_sweep(sweep, tmp_path):
    import shutil

    sweep_dir, _ = sweep
    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy)
    for name in ("leaderboard.csv", "leaderboard.md"):
        (copy / name).unlink()
    best, second = _read(sweep_dir / "leaderboard.csv")[:2]
    # The best job as a killed job leaves it: lineage.json says running, no metrics.json.
    lineage_path = copy / best["job_dir"] / "lineage.json"
    lineage = json.loads(lineage_path.read_text())
    lineage["status"] = "running"
    lineage_path.write_text(json.dumps(lineage))
    (copy / best["job_dir"] / "metrics.json").unlink()

    done = _mlexp_report(copy)
    assert done.returncode == 0, done.stderr
    rows = _read(copy / "leaderboard.csv")
    by_job = {r["job"]: r for r in rows}
    assert by_job[second["job"]]["status"] == "completed" and by_job[second["job"]]["rank"] == "1"
    assert by_job[best["job"]]["status"] == "running" and by_job[best["job"]]["rank"] == ""
    assert [r["status"] for r in rows] == ["completed", "failed", "failed", "running"]
    assert "completed" in done.stdout and (copy / "leaderboard.md").is_file()


def test_mlexp_report_names_a_wrong_directory(tmp_path):
    done = _mlexp_report(tmp_path / "nowhere")
    assert done.returncode == 2 and "not a directory" in done.stderr
    done = _mlexp_report(tmp_path)
    assert done.returncode == 2 and "no job directories" in done.stderr
