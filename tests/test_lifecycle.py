"""How a run starts and ends: its own directory, Ctrl-C, errors printed once, lineage of what it read.

Every test drives the real entrypoint (a subprocess, real signals) or `mlexp.run` in-process.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import pandas as pd
import pytest

from conftest import MLEXP, REPO, compose, read_metrics, run_cli, run_inprocess

QUICK = ["splitter.n_splits=2", "report=false", "save_model=false"]
# Slow enough that a run is still fitting when the signal arrives, however loaded the machine.
SLOW_FOREST = ["data=synthetic", "data.loader.n_samples=20000", "data.loader.n_categorical=0", "model=random_forest",
               "model.n_estimators=3000", "splitter.n_splits=3"]


def _start(args: List[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.Popen(MLEXP + args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, text: str, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise AssertionError(f"mlexp ended before {text!r} appeared in {path}:\n{process.communicate()[1][-3000:]}")
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"{text!r} never appeared in {path}")


def _interrupt(process: subprocess.Popen, timeout: float) -> tuple:
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"mlexp went on {timeout:.0f}s after Ctrl-C:\n{out[-2000:]}")
    return process.returncode, out, err


def _assert_interrupted(run_dir: Path, code: int, err: str) -> None:
    assert code == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mlexp: interrupted (Ctrl-C)"), err
    lineage = json.loads((run_dir / "lineage.json").read_text())
    assert lineage["status"] == "interrupted" and lineage["finished"] >= lineage["started"]
    assert not (run_dir / "metrics.json").exists()


# ---- Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_stops_a_scikit_learn_run(tmp_path):
    process = _start(SLOW_FOREST + ["hydra.run.dir=run"], tmp_path)
    _wait_for(tmp_path / "run" / "mlexp.log", "rows:", process)  # cross-validation has begun
    time.sleep(1.0)
    code, _, err = _interrupt(process, timeout=60)
    _assert_interrupted(tmp_path / "run", code, err)


def test_ctrl_c_stops_a_pytorch_run(tmp_path):
    pytest.importorskip("skorch")
    args = ["model=mlp", "model.max_epochs=3000", "model.early_stopping=false", "hydra.verbose=mlexp"]
    process = _start(args + ["hydra.run.dir=run"], tmp_path)
    _wait_for(tmp_path / "run" / "mlexp.log", "fold 0 epoch 3:", process)  # inside skorch's training loop
    code, _, err = _interrupt(process, timeout=45)
    _assert_interrupted(tmp_path / "run", code, err)


def test_a_run_stopped_after_writing_metrics_leaves_none_that_look_complete(tmp_path, monkeypatch):
    import mlexp.lineage as lineage_module
    from mlexp.errors import MlexpError

    finish = lineage_module.finish

    def interrupted_at_the_end(record, status, **extra):
        if status == "completed":  # Ctrl-C between metrics.json and the completed lineage record
            raise KeyboardInterrupt
        return finish(record, status, **extra)

    monkeypatch.setattr(lineage_module, "finish", interrupted_at_the_end)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_inprocess(["splitter.n_splits=2", "save_model=false"], run_dir)
    lineage = json.loads((run_dir / "lineage.json").read_text())
    assert lineage["status"] == "interrupted" and lineage["metrics"] == "metrics.incomplete.json"
    assert not (run_dir / "metrics.json").exists()
    assert json.loads((run_dir / "metrics.incomplete.json").read_text())["objective"] > 0.9
    monkeypatch.undo()

    # From Python too, an earlier run's directory is refused, and overwrite=true starts it afresh.
    with pytest.raises(MlexpError, match="already holds an earlier interrupted run"):
        run_inprocess(QUICK, run_dir)
    run_inprocess(QUICK + ["overwrite=true"], run_dir)
    assert json.loads((run_dir / "lineage.json").read_text())["status"] == "completed"
    fresh = tmp_path / "fresh"
    run_inprocess(QUICK, fresh)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(p.name for p in fresh.iterdir())  # nothing stale
    assert not (run_dir / "metrics.incomplete.json").exists()


# ---- the run directory ------------------------------------------------------------------------


def test_an_earlier_runs_directory_is_refused_and_overwrite_clears_it(tmp_path):
    run_cli(["splitter.n_splits=2", "hydra.run.dir=run"], cwd=tmp_path)
    run_dir = tmp_path / "run"
    (run_dir / "model.pt").write_bytes(b"stale")  # what an earlier PyTorch run leaves beside its files
    (run_dir / "training_curves.png").write_bytes(b"stale")
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}

    done = run_cli(["model=knn", "hydra.run.dir=run"], cwd=tmp_path, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "run already holds an earlier completed run" in done.stderr and "overwrite=true" in done.stderr
    after = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # not one byte written: not .hydra/, not the log

    run_cli(["model=knn", "splitter.n_splits=2", "overwrite=true", "hydra.run.dir=run"], cwd=tmp_path)
    assert not (run_dir / "model.pt").exists() and not (run_dir / "training_curves.png").exists()
    log = (run_dir / "mlexp.log").read_text()
    assert log.count("data: breast_cancer") == 1 and "KNeighborsClassifier" in log  # this run's log alone
    assert "fold 0: roc_auc=" in log and "step " not in log  # fold lines say fold
    assert json.loads((run_dir / "lineage.json").read_text())["status"] == "completed"
    assert "KNeighborsClassifier" in (run_dir / ".hydra" / "config.yaml").read_text()


def test_runs_started_together_never_share_a_directory(tmp_path):
    # ${now:%Y} stands for the default outputs/<date>/<time>: every run started in the same year
    # (second) asks for the same directory.
    stamped = [_start(QUICK + ["hydra.run.dir=out/${now:%Y}"], tmp_path) for _ in range(2)]
    fixed = [_start(QUICK + ["hydra.run.dir=shared"], tmp_path) for _ in range(2)]
    results = [(*p.communicate(timeout=300), p.returncode) for p in stamped + fixed]
    results = [(code, out, err) for out, err, code in results]
    assert [code for code, _, _ in results[:2]] == [0, 0], [err[-2000:] for _, _, err in results]
    runs = sorted((tmp_path / "out").iterdir())
    year = time.strftime("%Y")
    assert [p.name for p in runs] == [year, f"{year}_2"]
    for run_dir in runs:
        assert json.loads((run_dir / "lineage.json").read_text())["status"] == "completed"
        assert (run_dir / "mlexp.log").read_text().count("data: breast_cancer") == 1
    # Two runs asking for the same fixed directory: one runs, the other is refused whole.
    codes = sorted(code for code, _, _ in results[2:])
    assert codes == [0, 2], [err[-2000:] for _, _, err in results[2:]]
    refused = next(err for code, _, err in results[2:] if code == 2)
    assert "shared is in use by another mlexp run" in refused or "shared already holds an earlier" in refused
    assert (tmp_path / "shared" / "mlexp.log").read_text().count("data: breast_cancer") == 1


def test_a_time_stamped_sweep_directory_that_is_taken_gets_a_new_name(tmp_path):
    for _ in range(2):  # the same second, as far as ${now:%Y} can tell
        run_cli(["-m", "model=knn", *QUICK, "hydra.sweep.dir=multi/${now:%Y}"], cwd=tmp_path)
    year = time.strftime("%Y")
    assert sorted(p.name for p in (tmp_path / "multi").iterdir()) == [year, f"{year}_2"]
    for sweep in (tmp_path / "multi").iterdir():  # each job in its own sweep's directory
        lineage = json.loads((sweep / "0" / "lineage.json").read_text())
        assert lineage["status"] == "completed"
        assert (sweep / "0" / "mlexp.log").read_text().count("data: breast_cancer") == 1


# ---- errors: one paragraph, printed once --------------------------------------------------------


def test_an_error_is_printed_once(tmp_path):
    done = run_cli(["model.C=-1", "hydra.run.dir=run"], cwd=tmp_path, check=False)
    assert done.returncode == 2
    both = done.stdout + done.stderr
    assert both.count("'C' parameter of LogisticRegression") == 1, both
    assert done.stderr.strip().startswith("mlexp: error:") and "Traceback" not in both
    assert "'C' parameter of LogisticRegression" in (tmp_path / "run" / "mlexp.log").read_text()


def test_a_job_failing_inside_a_sweep_is_one_paragraph(tmp_path):
    done = run_cli(["-m", "model.C=1,-1", *QUICK, "hydra.sweep.dir=sweep"], cwd=tmp_path, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    both = done.stdout + done.stderr
    assert both.count("'C' parameter of LogisticRegression") == 1, both  # the job's log line; the table shortens it
    assert "mlexp: error: 1 of 2 jobs failed (job 1)" in done.stderr
    statuses = {json.loads((tmp_path / "sweep" / job / "lineage.json").read_text())["status"] for job in "01"}
    assert statuses == {"completed", "failed"}
    # A finished sweep's directory is not reused either.
    again = run_cli(["-m", "model.C=1,2", *QUICK, "hydra.sweep.dir=sweep"], cwd=tmp_path, check=False)
    assert again.returncode == 2 and "sweep already holds an earlier sweep" in again.stderr
    assert json.loads((tmp_path / "sweep" / "0" / "lineage.json").read_text())["overrides"][0] == "model.C=1"


def test_a_sweep_that_stops_before_its_first_job_says_why(tmp_path):
    done = run_cli(["-m", "model=nope1,nope2", "hydra.sweep.dir=sweep"], cwd=tmp_path, check=False)
    assert done.returncode == 1  # Hydra's own composition error
    assert "no job ran; the sweep stopped before its first job" in done.stdout
    assert "Could not find 'model/nope1'" in done.stdout  # the reason, beside the leaderboard
    assert "0 jobs" not in done.stdout
    assert "No job ran" in (tmp_path / "sweep" / "leaderboard.md").read_text()


def _as_nobody() -> List[str]:
    """A command prefix running as an unprivileged user (root writes anywhere), or skip."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root and setpriv is missing: permissions cannot be tested as root")
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(prefix + [sys.executable, "-c", "import mlexp"], cwd="/", capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"the test interpreter cannot run as user nobody: {probe.stderr[-300:]}")
    return prefix


@pytest.mark.parametrize("args, cwd, shown", [
    (["hydra.run.dir=readonly/run"], ".", "readonly/run"),
    ([], "readonly", "outputs/"),
    (["-m", "model=logreg,knn", "hydra.sweep.dir=readonly/sweep"], ".", "readonly/sweep"),
])
def test_an_output_directory_that_cannot_be_written_is_one_paragraph(args, cwd, shown):
    prefix = _as_nobody()
    base = Path(tempfile.mkdtemp(prefix="mlexp-perm-"))  # not under pytest's root-only tmp tree
    try:
        (base / "readonly").mkdir()
        base.chmod(0o755)
        (base / "readonly").chmod(0o555)
        env = {**os.environ, "HYDRA_FULL_ERROR": "0", "HOME": str(base)}
        done = subprocess.run(prefix + MLEXP + args, cwd=base / cwd, env=env, capture_output=True, text=True,
                              timeout=300)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "PermissionError" not in done.stderr, done.stderr[-3000:]
    assert "mlexp: error: cannot write the run directory" in done.stderr and shown in done.stderr


# ---- overrides ------------------------------------------------------------------------------------


def test_a_non_ascii_override_value_must_be_quoted(tmp_path):
    frame = pd.DataFrame({"länge": range(60), "breite": [i % 7 for i in range(60)], "größe": [i % 2 for i in range(60)]})
    frame.to_csv(tmp_path / "maße.csv", index=False)
    done = run_cli(["data=csv", "data.path=t.csv", "data.target=größe"], cwd=tmp_path, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "LexerNoViableAlt" not in done.stderr
    assert "\"data.target='größe'\"" in done.stderr  # the fix, ready to paste
    # As the docs say: quoted, the value reaches the run unchanged.
    run_cli(["data=csv", "data.path='maße.csv'", "data.target='größe'", *QUICK, "hydra.run.dir=run"], cwd=tmp_path)
    assert read_metrics(tmp_path / "run")["cv"]["accuracy"]["mean"] is not None
    assert "data.target='größe'" in (REPO / "docs" / "recipes.md").read_text()


# ---- the console summary --------------------------------------------------------------------------

SUMMARY_METRICS = {"cv": {"roc_auc": {"mean": 0.9, "std": 0.01}}, "test": {}, "objective_metric": "roc_auc",
                   "direction": "maximize", "objective": 0.9, "timings": {"total_seconds": 1.0},
                   "estimated_cost_usd": 0.0}


class _TorchNet:  # stands for a fitted skorch net: mlexp knows them by their module, without importing torch
    __module__ = "mlexp.neural._net"


@pytest.mark.parametrize("overrides, model, shown, hidden", [
    (["ensemble=stacking"], None, ["ensemble=stacking[logreg,random_forest]"], ["model=", "optimizer="]),
    (["ensemble=bagging", "model=decision_tree"], None, ["ensemble=bagging", "model=decision_tree"], ["optimizer="]),
    (["model=mlp"], _TorchNet(), ["model=mlp", "optimizer=adam"], ["ensemble="]),
    ([], None, ["model=logreg"], ["optimizer=", "ensemble="]),
])
def test_the_summary_header_names_what_the_run_used(overrides, model, shown, hidden):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.hydra_config import HydraConfig

    from mlexp.reporting.summary import format_summary
    from mlexp.schema import register

    register()
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        header = format_summary(SUMMARY_METRICS, Path("run"), cfg, model).splitlines()[1]
    finally:
        HydraConfig.instance().cfg = None
    for text in shown:
        assert text in header, header
    for text in hidden:
        assert text not in header, header
    # Outside Hydra (mlexp.run from Python) the same rules, with class names.
    header = format_summary(SUMMARY_METRICS, Path("run"), compose(overrides), model).splitlines()[1]
    assert ("model=" in header) == ("model=" not in hidden) and ("optimizer=" in header) == (model is not None)


# ---- plots ------------------------------------------------------------------------------------------


def _font_sizes(figure) -> List[float]:
    from matplotlib.text import Text

    return [t.get_fontsize() for t in figure.findobj(Text) if t.get_text().strip() and t.get_visible()]


def test_roc_pr_plot_and_training_curves_are_legible(tmp_path, monkeypatch):
    import numpy as np

    import mlexp.neural._curves as curves
    import mlexp.reporting.report as report
    from mlexp.evaluation import Predictions

    figures = []
    monkeypatch.setattr(report, "_save", lambda figure, path: figures.append(figure) or path)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = np.clip(y * 0.6 + rng.random(200) * 0.5, 0, 1)
    pred = Predictions(y_true=y, y_pred=(scores > 0.5).astype(int), fold=np.zeros(200, int),
                       scores=np.c_[1 - scores, scores], scores_kind="proba")
    report._curves(pred, pred, ["no", "yes"], tmp_path / "roc.png")
    assert min(_font_sizes(figures[0])) >= report.FONT >= 9

    epochs = [{"fold": fold, "epoch": e, "train_loss": 1 / e, "valid_loss": 1.1 / e, "roc_auc": 1 - 1 / (e + 1)}
              for fold in (0, 1, None) for e in range(1, 6)]
    figure = curves._figure(pd.DataFrame(epochs), "roc_auc")
    loss, validation = figure.axes
    for ax in (loss, validation):
        assert ax.get_legend() is not None
    assert [t.get_text() for t in validation.get_legend().get_texts()] == ["fold 0", "fold 1", "final fit"]
    assert min(_font_sizes(figure)) >= report.FONT - 1
    written = curves.write_training_curves(epochs, tmp_path, "roc_auc")
    assert all(path.stat().st_size > 0 for path in written)


# ---- lineage --------------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_lineage_records_the_data_file_mlexp_itself_and_untracked_files_read(tmp_path):
    repo = tmp_path / "project"
    (repo / "mlexp_conf" / "data").mkdir(parents=True)
    (repo / "mlexp_conf" / "model").mkdir()
    (repo / "mlexp_conf" / "model" / "small_forest.yaml").write_text("defaults:\n  - random_forest\n  - _self_\n"
                                                                        "n_estimators: 10\n")
    _git(tmp_path, "init", "-q", str(repo))
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tracked model option")
    # Added after the commit: the commit alone does not reproduce a run that reads them.
    from sklearn.datasets import load_wine

    load_wine(as_frame=True).frame.to_csv(repo / "wine.csv", index=False)
    (repo / "mlexp_conf" / "data" / "wine_file.yaml").write_text(
        "defaults:\n  - csv\n  - _self_\nname: wine_file\npath: wine.csv\ntarget: target\n")

    run_cli(["data=wine_file", "model=small_forest", *QUICK, "hydra.run.dir=run"], cwd=repo)
    lineage = json.loads((repo / "run" / "lineage.json").read_text())
    sha = hashlib.sha256((repo / "wine.csv").read_bytes()).hexdigest()
    file = lineage["data"]["file"]
    assert file["path"] == str((repo / "wine.csv").resolve()) and file["sha256"] == sha
    assert file["bytes"] == (repo / "wine.csv").stat().st_size and file["changed_while_read"] is False

    untracked = {entry["path"]: entry["sha256"] for entry in lineage["git"]["untracked_read"]}
    config_sha = hashlib.sha256((repo / "mlexp_conf" / "data" / "wine_file.yaml").read_bytes()).hexdigest()
    assert untracked == {"wine.csv": sha, "mlexp_conf/data/wine_file.yaml": config_sha}
    read = {Path(p).relative_to(repo.resolve()).as_posix() for p in lineage["config_files"]}
    assert read == {"mlexp_conf/data/wine_file.yaml", "mlexp_conf/model/small_forest.yaml"}
    assert lineage["git"]["commit"] == _git(repo, "rev-parse", "HEAD") and lineage["git"]["dirty"] is False

    import mlexp

    assert lineage["mlexp"]["version"] == mlexp.__version__
    assert lineage["mlexp"]["path"] == str(Path(mlexp.__file__).resolve().parent)
    checkout = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if checkout.returncode == 0 and Path(mlexp.__file__).resolve().parent == REPO / "mlexp":
        assert lineage["mlexp"]["commit"] == checkout.stdout.strip() and isinstance(lineage["mlexp"]["dirty"], bool)
