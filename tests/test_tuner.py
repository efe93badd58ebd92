"""The tuner group: search-space translation, the trial reporter, and real `mlexp -m tuner=...` sweeps."""

import json
import re
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
    """The study of a sweep directory's default storage (its journal file, optuna.log)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(sweep_dir / "optuna.log"))))


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

def test_trial_reporter_steps_are_folds_or_epochs_across_folds(tmp_path):
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    never = optuna.pruners.MedianPruner(n_startup_trials=1000)  # a pruner: intermediate values are stored
    study = optuna.create_study(storage=storage, direction="maximize", pruner=never)
    folds = TrialReporter(study.ask(), "roc_auc", "maximize")
    for fold, value in enumerate([0.9, 0.8, 0.7]):
        folds.report(fold, value)
    epochs = TrialReporter(study.ask(), "roc_auc", "maximize", epochs_per_fold=3)
    for fold in (0, 1):
        for epoch in (1, 2, 3):
            epochs.report_epoch(fold, epoch, {"train_loss": 0.5, "roc_auc": fold + epoch / 10})
        epochs.report(fold, 0.99)  # fold scores of an epoch-reporting model are not steps
    stopped = TrialReporter(study.ask(), "roc_auc", "maximize")  # max_epochs unknown, fold 0 stopped early
    for fold, last in ((0, 2), (1, 3)):
        for epoch in range(1, last + 1):
            stopped.report_epoch(fold, epoch, {"roc_auc": fold + epoch / 10})
    study.pruner = optuna.pruners.NopPruner()  # no pruner: nothing reads them, nothing is written
    TrialReporter(study.ask(), "roc_auc", "maximize").report(0, 0.9)
    trials = optuna.load_study(study_name=study.study_name, storage=storage).trials
    assert trials[0].intermediate_values == {0: 0.9, 1: 0.8, 2: 0.7}
    assert trials[1].intermediate_values == {1: 0.1, 2: 0.2, 3: 0.3, 4: 1.1, 5: 1.2, 6: 1.3}
    assert trials[2].intermediate_values == {1: 0.1, 2: 0.2, 3: 1.1, 4: 1.2, 5: 1.3}
    assert trials[3].intermediate_values == {}


def test_trial_reporter_prunes_inside_a_later_fold(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'p.db'}", direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=4))
    good = study.ask()
    for step in range(1, 7):
        good.report(0.9, step)
    study.tell(good, 0.9)
    reporter = TrialReporter(study.ask(), "roc_auc", "maximize", epochs_per_fold=3)
    for epoch in (1, 2, 3):  # worse than the finished trial, but within the first fold's warm-up
        reporter.report_epoch(0, epoch, {"roc_auc": 0.85})
        assert not reporter.should_prune()
    reporter.report_epoch(1, 1, {"roc_auc": 0.85})  # step 4: the second fold's first epoch
    assert reporter.should_prune()


@pytest.mark.parametrize("pruner, budget, steps", [
    ({"_target_": "optuna.pruners.HyperbandPruner", "min_resource": 1, "max_resource": "auto",
      "reduction_factor": 3}, "auto", [1, 3, 9, 27]),
    ({"_target_": "optuna.pruners.HyperbandPruner", "min_resource": 2, "max_resource": 20,
      "reduction_factor": 2}, "rows", [2, 4, 8, 16, 20]),
    ({"_target_": "optuna.pruners.MedianPruner"}, "auto", [1, 3, 9, 27]),
    ({"_target_": "optuna.pruners.MedianPruner"}, "folds", None),
    (None, "auto", None),
])
def test_budget_rungs_fall_on_hyperbands_rungs(pruner, budget, steps):
    from mlexp.tuning._settings import TunerSettings, budget_steps

    cfg = OmegaConf.create({"tuner": {"sampler": {"_target_": "optuna.samplers.TPESampler"}, "pruner": pruner,
                                      "budget": budget}})
    assert budget_steps(TunerSettings.from_config(cfg)) == steps


def test_budget_row_samples_nest_and_keep_every_class():
    import numpy as np

    from mlexp.tuning._budget import subsample

    y = np.array([0] * 90 + [1] * 10)
    train = np.arange(100)
    small, large = (subsample(train, y, f, "classification", seed=0) for f in (1 / 9, 1 / 3))
    assert len(small) == 20 and len(large) == 34 and set(small) <= set(large)
    assert set(y[small]) == {0, 1} and (y[small] == 1).sum() >= 5
    assert list(subsample(train, y, 1.0, "classification", seed=0)) == list(train)


@pytest.mark.parametrize("estimator, param", [
    ("sklearn.ensemble.RandomForestClassifier(n_estimators=30, random_state=0)", "n_estimators"),
    ("sklearn.ensemble.HistGradientBoostingClassifier(max_iter=30, random_state=0)", "max_iter"),
    ("sklearn.linear_model.LogisticRegression(max_iter=500)", None),
])
def test_budgeted_cross_validation_ends_with_the_plain_result(tmp_path, estimator, param):
    """The last rung is the ordinary CV: same fold scores as without a budget (warm starts add trees or
    iterations to the same models; a rows budget refits on all rows)."""
    import importlib

    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlexp.evaluation import cross_validate
    from mlexp.reporting import Reporter
    from mlexp.tuning._budget import budget_param

    module, _, call = estimator.rpartition(".")
    name, _, args = call.partition("(")
    model = eval(f"cls({args}", {"cls": getattr(importlib.import_module(module), name)})  # noqa: S307 - test table
    assert budget_param(model) == param
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = Pipeline([("scale", StandardScaler()), ("model", model)])
    splitter = StratifiedKFold(3, shuffle=True, random_state=0)
    plain = cross_validate(pipeline, X, y, splitter, "classification", 2, Reporter("roc_auc", "maximize"))
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'b.db'}", direction="maximize")
    reporter = TrialReporter(study.ask(), "roc_auc", "maximize", steps=[1, 3, 9])
    budgeted = cross_validate(pipeline, X, y, splitter, "classification", 2, reporter)
    assert budgeted.summary() == plain.summary()
    assert (budgeted.predictions.scores == plain.predictions.scores).all()
    assert sorted(study.trials[0].intermediate_values) == [1, 3, 9]
    assert study.trials[0].intermediate_values[9] == pytest.approx(plain.summary()["roc_auc"]["mean"])


def test_composer_gives_hydras_own_config(tmp_path):
    """The cached composition equals Hydra's load_sweep_config, override for override."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from mlexp.schema import register
    from mlexp.tuning._compose import Composer

    register()
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", ["tuner=random", f"hydra.sweep.dir={tmp_path}",
                                                      "hydra.job.config.override_dirname.exclude_keys=[seed]"],
                                           run_mode=RunMode.MULTIRUN)
        composer = Composer(loader, master)
        cases = [
            ["splitter.n_splits=2", "model.C=0.5"],
            ["model=random_forest", "model.max_depth=3", "seed=7"],
            ["model=random_forest", "model.max_depth=5", "++hydra.job.env_set.X='{\"a\": 1}'"],
            ["+model.class_weight=balanced", "features=[log,standardize]", "model.C=2.0"],
            ["model=mlp", "model.hidden_sizes=[64,32]", "optimizer.lr=0.01"],
        ]
        for overrides in cases + cases[:2]:  # the second time from the cache
            expected = loader.load_sweep_config(master, list(overrides))
            got = composer.compose(list(overrides))
            assert OmegaConf.to_yaml(got) == OmegaConf.to_yaml(expected), overrides
        assert len(composer._bases) == 4  # one per set of config-group choices


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
    assert all(json.loads(v) == {} for v in table["intermediate_values"])  # no pruner: not stored
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
@pytest.mark.parametrize("budget, steps", [("auto", [1, 3, 9, 27]), ("folds", [0, 1, 2])])
def test_median_rule_prunes_scikit_learn_trials_by_rows_or_folds(tmp_path, budget, steps):
    sweep = tmp_path / "median"
    # accuracy: a tiny C predicts the majority class (~0.63), clearly below the median.
    done = mlexp("-m", "tuner=median", "tuner.n_trials=7", "tuner.pruner.n_startup_trials=2", "tuner.plots=false",
                 f"tuner.budget={budget}", "objective.metric=accuracy", "model.C=tag(log,interval(1e-6,1e2))",
                 "splitter.n_splits=3", "save_model=false", *FAST[2:], f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = load_study(sweep).trials
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned and all(max(t.intermediate_values) < steps[-1] for t in pruned)  # stopped before the full budget
    assert all(sorted(t.intermediate_values) == steps for t in trials if t.state.name == "COMPLETE")


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
    assert all(sorted(t.intermediate_values) == list(range(1, 13)) for t in complete)  # 6 epochs x 2 folds
    assert all(max(t.intermediate_values) < 12 for t in pruned)


@pytest.mark.slow
def test_killed_sweep_resumes_to_exactly_n_trials(tmp_path):
    import signal
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
            complete = sum(t.state.name == "COMPLETE" for t in load_study(sweep).trials)
        except Exception:  # noqa: BLE001 - the study is being created
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


# ---- storages: URLs, journal files by plain path, clear errors ---------------------------

def test_storage_setting_becomes_a_url_or_a_journal_file(tmp_path):
    from mlexp.tuning._storage import storage_url

    assert storage_url(None, str(tmp_path)) == str(tmp_path / "optuna.log")
    (tmp_path / "optuna.db").write_bytes(b"")  # a sweep directory made before keeps its SQLite study
    assert storage_url(None, str(tmp_path)) == f"sqlite:///{tmp_path / 'optuna.db'}"
    assert storage_url("postgresql://u@db/s", str(tmp_path)) == "postgresql://u@db/s"
    assert storage_url(str(tmp_path / "study.log"), ".") == str(tmp_path / "study.log")
    assert storage_url(str(tmp_path / "study.sqlite3"), ".") == f"sqlite:///{tmp_path / 'study.sqlite3'}"
    with pytest.raises(MlexpError, match="is a directory"):
        storage_url(str(tmp_path), ".")


def test_unusable_storages_are_one_clear_error(tmp_path):
    from mlexp.tuning._storage import open_storage, storage_url

    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    (tmp_path / "text.db").write_text("not sqlite")
    cases = {
        "foo://somewhere": "no database driver for 'foo'",
        "mysql://u@127.0.0.1:9/db": "no database driver for 'mysql'",
        "postgresql://u:secret@127.0.0.1:9/db": "(cannot connect to the database|no database driver)",
        str(tmp_path / "missing" / "study.log"): "the folder .* does not exist",
        str(tmp_path / "table.csv"): "is not an Optuna journal file",
        str(tmp_path / "text.db"): "is not a usable SQLite database",
    }
    for spec, message in cases.items():
        with pytest.raises(MlexpError, match=message) as caught:
            open_storage(storage_url(spec, str(tmp_path)))
        assert "secret" not in str(caught.value)


@pytest.mark.slow
def test_journal_file_by_plain_path_and_bad_storage_exit_2(tmp_path):
    journal = tmp_path / "shared" / "study.log"
    journal.parent.mkdir()
    done = mlexp("-m", "tuner=random", "tuner.n_trials=2", "tuner.plots=false", f"tuner.storage={journal}", *FAST,
                 f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="mlexp", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert states(study) == ["COMPLETE"] * 2
    assert yaml.safe_load((tmp_path / "s" / "optimization_results.yaml").read_text())["storage"] == str(journal)

    bad = mlexp("-m", "tuner=random", f"tuner.storage={tmp_path}", *FAST, f"hydra.sweep.dir={tmp_path / 'b'}",
                cwd=tmp_path)
    assert bad.returncode == 2 and "is a directory" in bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) <= 3, bad.stderr


# ---- the space is checked before the first trial ------------------------------------------

@pytest.mark.parametrize("entry, message", [
    ("model.nope=interval(1,2)", "Could not override 'model.nope'"),
    ("+model.nope=interval(1,2)", "has no parameter.* nope"),
])
def test_unknown_key_in_the_space_fails_before_any_trial(tmp_path, entry, message):
    sweep = tmp_path / "s"
    done = mlexp("-m", "tuner=random", entry, *FAST, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert re.search(message, done.stderr) and "before the first trial" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (sweep / "optuna.log").exists() and not (sweep / "0").exists()  # nothing ran, nothing stored


# ---- the trial identity is not an override ------------------------------------------------

@pytest.mark.slow
def test_trial_identity_stays_out_of_overrides_and_directory_names(tmp_path):
    sweep = tmp_path / "s"
    done = mlexp("-m", "tuner=median", "tuner.n_trials=2", "tuner.plots=false", *FAST, f"hydra.sweep.dir={sweep}",
                 "hydra.sweep.subdir=${hydra.job.override_dirname}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = [p for p in sweep.iterdir() if (p / ".hydra").is_dir()]
    assert len(jobs) == 2 and all(p.name.startswith("model.C=") for p in jobs)  # one level, no trial={...}
    for job in jobs:
        assert not any("trial" in o for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))
        assert "MLEXP_TRIAL" in (job / ".hydra" / "hydra.yaml").read_text()  # the job's record keeps it
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert not board["overrides"].str.contains("trial|MLEXP", regex=True).any()
    study = load_study(sweep)
    assert all(t.intermediate_values for t in study.trials)  # the jobs still reported to their trials
    assert {t.user_attrs["job_dir"] for t in study.trials} == {str(p) for p in jobs}


# ---- the leaderboard agrees with the study after a kill -------------------------------------

@pytest.mark.slow
def test_leaderboard_agrees_with_the_study_after_a_kill(tmp_path):
    """SIGKILL two parallel trials: one mid-training (its directory says running), ideally one whose job had
    written its result but was not yet recorded. After the resume, leaderboard and study tell the same story."""
    import signal
    import time

    sweep = tmp_path / "kill"
    # report=true: the report is drawn after metrics.json, so a finished-but-unrecorded job is easy to catch.
    args = ["-m", "tuner=random", "tuner.n_trials=6", "tuner.n_jobs=2", "tuner.plots=false", "splitter.n_splits=2",
            "save_model=false", f"hydra.sweep.dir={sweep}"]
    first = subprocess.Popen([sys.executable, "-m", "mlexp", *args], cwd=tmp_path,
                             env={**os.environ, "MPLBACKEND": "Agg"}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    deadline, caught = time.time() + 300, None
    while first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
        try:
            trials = load_study(sweep).trials
        except Exception:  # noqa: BLE001 - the study is being created
            continue
        running = [t for t in trials if t.state.name == "RUNNING" and t.user_attrs.get("job_dir")]
        finished = [t for t in running if '"completed"' in _text(Path(t.user_attrs["job_dir"]) / "lineage.json")]
        if finished or (len(running) == 2 and sum(t.state.name == "COMPLETE" for t in trials) >= 3):
            caught = "finished job" if finished else "running jobs"
            break
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert caught, "the sweep ended before it could be killed mid-trial"

    again = mlexp(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = load_study(sweep).trials
    board = pd.read_csv(sweep / "leaderboard.csv")
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 6 and (board["status"] == "completed").sum() == 6  # not 7 rows for 6 trials
    assert "running" not in set(board["status"])
    status = dict(zip(board["job"], board["status"]))
    for trial in trials:
        if trial.user_attrs.get("job_dir"):
            expected = {"COMPLETE": "completed", "FAIL": "failed", "PRUNED": "pruned"}[trial.state.name]
            assert status[trial.number] == expected, (trial.number, trial.state.name, caught)
    for trial in (t for t in trials if t.state.name == "FAIL" and t.user_attrs.get("job_dir")):
        error = board.loc[board["job"] == trial.number, "error"].iloc[0]
        assert "ran it again as trial" in error


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
