"""The tuner group: search-space translation, the trial reporter, and real `mlexp -m tuner=...` sweeps."""

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from mlexp.errors import MlexpError
from mlexp.tuning import lift_sweeper_params
from mlexp.tuning._reporter import TrialReporter
from mlexp.tuning._space import default_space, grid_values, parse_params

ROOT = Path(__file__).resolve().parents[1]
# Small and fast: breast_cancer, logistic regression, two folds, no model file (or report, if present).
FAST = ["splitter.n_splits=2", "save_model=false"] + (
    ["report=false"] if "\nreport:" in (ROOT / "conf" / "config.yaml").read_text() else []
)


def mlexp(*args: str, cwd: Path, timeout: int = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run([sys.executable, "-m", "mlexp", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def load_study(sweep_dir: Path, name: str = "mlexp") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def states(study: optuna.Study) -> list:
    return [t.state.name for t in study.trials]


# ---- search space: Hydra's grammar to Optuna distributions ---------------------------------

@pytest.mark.parametrize("entry, expected", [
    ("model.C=tag(log, interval(1e-3, 1e2))", FloatDistribution(1e-3, 1e2, log=True)),
    ("model.tol=interval(0.1, 0.5)", FloatDistribution(0.1, 0.5)),
    ("model.n=tag(int, interval(1, 5))", IntDistribution(1, 5)),
    ("model.n_estimators=range(50, 500, step=50)", IntDistribution(50, 450, step=50)),
    ("model.depth=tag(log, range(1, 9))", IntDistribution(1, 8, log=True)),
    ("model.frac=range(0.1, 0.5, step=0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
    ("model.weights=choice(uniform, distance)", CategoricalDistribution(["uniform", "distance"])),
    ("model.class_weight=null,balanced", CategoricalDistribution(["null", "balanced"])),
    ("model.hidden_sizes=choice([32],[64,32])", CategoricalDistribution(["[32]", "[64,32]"])),
])
def test_override_grammar_becomes_optuna_distributions(entry, expected):
    (param,) = parse_params([entry])
    assert param.distribution == expected
    assert param.name == entry.split("=")[0]


def test_fixed_entries_and_later_entries_win():
    params = parse_params(["model.C=choice(1,2)", "+model.max_iter=50", "model.C=interval(1, 2)"])
    assert [p.name for p in params] == ["model.C", "model.max_iter"]
    assert params[0].distribution == FloatDistribution(1.0, 2.0)
    assert params[1].distribution is None and params[1].text == "+model.max_iter=50"


@pytest.mark.parametrize("entry, message", [
    ("model.C=tag(logg, interval(1, 2))", "unknown tag"),
    ("model.C=tag(log, interval(0, 2))", "positive lower bound"),
    ("model.C=range(5, 1)", "empty range"),
    ("model.C=interval(1,", "not valid Hydra override grammar"),
])
def test_bad_entries_raise_clear_errors(entry, message):
    with pytest.raises(MlexpError, match=message):
        parse_params([entry])


def test_grid_values_are_finite_and_continuous_ranges_are_refused():
    finite = parse_params(["a=range(1, 4)", "b=choice(x, y)", "c=range(0.5, 1.0, step=0.25)"])
    assert [grid_values(p) for p in finite] == [[1, 2, 3], ["x", "y"], [0.5, 0.75]]
    (continuous,) = parse_params(["model.C=tag(log, interval(1e-3, 1e2))"])
    with pytest.raises(MlexpError, match="tuner=grid needs a finite set"):
        grid_values(continuous)


def test_default_space_is_relative_to_model_with_absolute_and_list_entries():
    model = OmegaConf.create({"C": 1.0, "search_space": {
        "C": "tag(log, interval(1e-3, 1e2))", "/optimizer.lr": "interval(0.001, 0.1)",
        "module": {"width": "range(8, 64, step=8)"}, "weights": ["uniform", "distance"],
    }})
    assert default_space(model) == [
        "model.C=tag(log, interval(1e-3, 1e2))", "optimizer.lr=interval(0.001, 0.1)",
        "model.module.width=range(8, 64, step=8)", "model.weights=choice(uniform,distance)",
    ]
    assert default_space(OmegaConf.create({"C": 1.0})) == []


def test_command_line_sweeper_params_become_sweep_overrides():
    argv = ["-m", "tuner=tpe", "hydra.sweeper.params.model.C=tag(log,interval(1e-3,1e2))",
            "hydra.sweeper.params.model=choice(logreg,svm)", "hydra.sweep.dir=x"]
    assert lift_sweeper_params(argv) == [
        "-m", "tuner=tpe", "model.C=tag(log,interval(1e-3,1e2))", "model=choice(logreg,svm)", "hydra.sweep.dir=x"]


# ---- the job side: steps reported to the trial ------------------------------------------

def test_trial_reporter_uses_folds_or_first_fold_epochs_as_steps(tmp_path):
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    study = optuna.create_study(storage=storage, direction="maximize", pruner=optuna.pruners.NopPruner())
    folds = TrialReporter(study.ask(), "roc_auc", "maximize")
    for fold, value in enumerate([0.9, 0.8, 0.7]):
        folds.report(fold, value)
    epochs = TrialReporter(study.ask(), "roc_auc", "maximize")
    for fold in (0, 1):
        for epoch in (1, 2, 3):
            epochs.report_epoch(fold, epoch, {"train_loss": 0.5, "roc_auc": fold + epoch / 10})
        epochs.report(fold, 0.99)  # fold scores of an epoch-reporting model are not steps
    trials = optuna.load_study(study_name=study.study_name, storage=storage).trials
    assert trials[0].intermediate_values == {0: 0.9, 1: 0.8, 2: 0.7}
    assert trials[1].intermediate_values == {1: 0.1, 2: 0.2, 3: 0.3}
    assert epochs.epoch_fold == 0 and not epochs.should_prune()


# ---- real sweeps through the entrypoint --------------------------------------------------

@pytest.mark.slow
def test_tpe_sweep_writes_results_and_best_config_reruns(tmp_path):
    sweep = tmp_path / "tpe"
    done = mlexp("-m", "tuner=tpe", "tuner.n_trials=3", *FAST, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    study = load_study(sweep)
    assert states(study) == ["COMPLETE"] * 3
    assert set(study.best_params) == {"model.C"}  # logreg's own search_space, not written by the user
    values = [json.loads((sweep / str(t.number) / "metrics.json").read_text())["objective"] for t in study.trials]
    assert [t.value for t in study.trials] == pytest.approx(values)

    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best"]["value"] == pytest.approx(max(values))
    assert results["direction"] == "maximize" and results["metric"] == "roc_auc"
    assert results["trials"] == {"complete": 3, "pruned": 0, "failed": 0, "retried": 0}
    table = pd.read_csv(sweep / "trials.csv")
    assert list(table["number"]) == [0, 1, 2] and table["value"].max() == pytest.approx(max(values))
    assert all(len(json.loads(v)) == 2 for v in table["intermediate_values"])  # one value per fold
    for plot in ("optimization_history.png", "param_importances.png"):
        assert (sweep / plot).stat().st_size > 1000

    # The documented one-line command re-runs the best trial and gets the same objective.
    rerun = tmp_path / "rerun"
    command = results["rerun"].split()[1:] + [f"hydra.run.dir={rerun}"]
    again = mlexp(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((rerun / "metrics.json").read_text())["objective"] == pytest.approx(results["best"]["value"])


@pytest.mark.slow
def test_grid_runs_each_combination_once_in_parallel_and_survives_failures(tmp_path):
    sweep = tmp_path / "grid"
    done = mlexp("-m", "tuner=grid", "tuner.n_jobs=2", "hydra.sweeper.params.model.C=choice(-1.0,0.1,1.0)",
                 "+model.class_weight=null,balanced", *FAST, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = load_study(sweep).trials
    combos = sorted((t.params["model.C"], t.params["model.class_weight"]) for t in trials)
    assert combos == sorted((c, w) for c in (-1.0, 0.1, 1.0) for w in ("null", "balanced"))
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert {t.params["model.C"] for t in failed} == {-1.0} and len(failed) == 2  # C must be > 0
    assert all("'C' parameter" in t.user_attrs["error"] for t in failed)
    assert sum(t.state.name == "COMPLETE" for t in trials) == 4
    # n_jobs=2: at some moment two trials ran at once (workers are processes, not batches).
    spans = [(t.datetime_start, t.datetime_complete) for t in trials]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])
    assert "FAIL" in pd.read_csv(sweep / "trials.csv")["state"].tolist()


def test_grid_with_a_continuous_range_is_a_clear_error(tmp_path):
    done = mlexp("-m", "tuner=grid", *FAST, f"hydra.sweep.dir={tmp_path / 'g'}", cwd=tmp_path)
    assert done.returncode == 2
    assert "tuner=grid needs a finite set of values" in done.stderr and "model.C" in done.stderr


@pytest.mark.slow
def test_seeded_random_search_repeats_its_sequence(tmp_path):
    params = []
    for name in ("a", "b"):
        sweep = tmp_path / name
        done = mlexp("-m", "tuner=random", "tuner.n_trials=2", "tuner.plots=false", *FAST,
                     f"hydra.sweep.dir={sweep}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        params.append([t.params for t in load_study(sweep).trials])
    assert params[0] == params[1] and params[0][0] != params[0][1]


@pytest.mark.slow
def test_median_rule_prunes_over_folds_for_scikit_learn(tmp_path):
    sweep = tmp_path / "median"
    # accuracy: a tiny C predicts the majority class (~0.63), clearly below the median.
    done = mlexp("-m", "tuner=median", "tuner.n_trials=7", "tuner.pruner.n_startup_trials=2", "tuner.plots=false",
                 "objective.metric=accuracy", "model.C=tag(log,interval(1e-6,1e2))", "splitter.n_splits=3",
                 "save_model=false", *FAST[2:], f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = load_study(sweep).trials
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned and all(max(t.intermediate_values) < 2 for t in pruned)  # stopped before the last fold
    assert all(sorted(t.intermediate_values) == [0, 1, 2] for t in trials if t.state.name == "COMPLETE")


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "conf" / "model" / "mlp.yaml").exists(), reason="needs the PyTorch MLP option")
@pytest.mark.parametrize("tuner, extra", [
    ("hyperband", []),
    ("median", ["tuner.pruner.n_startup_trials=2", "objective.metric=log_loss"]),
])
def test_pruners_stop_mlp_trials_by_epoch(tmp_path, tuner, extra):
    pytest.importorskip("skorch")
    sweep = tmp_path / tuner
    done = mlexp("-m", f"tuner={tuner}", "model=mlp", "tuner.n_trials=6", "tuner.plots=false", "model.max_epochs=6",
                 "model.early_stopping=false", *extra, *FAST, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = load_study(sweep).trials
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, [t.intermediate_values for t in trials]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert all(sorted(t.intermediate_values) == list(range(1, 7)) for t in complete)  # epochs 1..6 of fold 0
    assert all(max(t.intermediate_values) < 6 for t in pruned)


@pytest.mark.slow
def test_killed_sweep_resumes_to_exactly_n_trials(tmp_path):
    import signal
    import sqlite3
    import time

    sweep = tmp_path / "resume"
    args = ["-m", "tuner=random", "tuner.n_trials=5", "tuner.plots=false", *FAST, f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    first = subprocess.Popen([sys.executable, "-m", "mlexp", *args], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    complete = 0
    while complete < 2 and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
        try:
            with sqlite3.connect(sweep / "optuna.db") as db:
                complete = db.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
        except sqlite3.Error:
            continue
    os.killpg(first.pid, signal.SIGKILL)  # the whole process group, as a crash would
    first.wait()
    before = {t.number: (sweep / str(t.number) / "metrics.json").stat().st_mtime
              for t in load_study(sweep).trials if t.state.name == "COMPLETE"}
    assert 2 <= len(before) < 5

    again = mlexp(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = load_study(sweep).trials
    assert sum(t.state.name == "COMPLETE" for t in trials) == 5
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    assert all(t.state.name == "COMPLETE" or t.number in retried for t in trials)  # only killed trials failed
    # Trials finished before the kill were not run again; every trial has its own job directory.
    assert {n: (sweep / str(n) / "metrics.json").stat().st_mtime for n in before} == before
    assert len({t.user_attrs.get("job_dir") for t in trials if t.state.name == "COMPLETE"}) == 5
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text())["trials"]["complete"] == 5


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    workers = [
        subprocess.Popen([sys.executable, "-m", "mlexp", "-m", "tuner=random", "tuner.n_trials=6", "tuner.plots=false",
                          f"tuner.storage={storage}", "tuner.study_name=shared", *FAST,
                          f"hydra.sweep.dir={tmp_path / name}"], cwd=tmp_path, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for name in ("w1", "w2")
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=400)
        assert worker.returncode == 0, err[-3000:]
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    assert len({t.params["model.C"] for t in trials}) == 6  # no point proposed twice
    dirs = [{int(p.name) for p in (tmp_path / name).iterdir() if p.name.isdigit()} for name in ("w1", "w2")]
    assert dirs[0].isdisjoint(dirs[1]) and dirs[0] | dirs[1] == set(range(6))
