"""Hydra's own launcher/sweeper suites (hydra.test_utils.launcher_common_tests) run against mlexp's sweeper.

The suites are written for sweepers that expand ``key=a,b`` into one job per combination. mlexp's
tuner does that with tuner=grid (every combination once; ``sweep()`` returns the JobReturns in the
order of the values given), so the suites run with grid settings, given to the sweeper through
``hydra.sweeper.tuner`` because Hydra's test applications have no ``tuner`` node.
``max_failure_rate: 1.0`` because the suites' jobs return no number (None, 100 or "foo"): a search
sweeper records a job that returns no objective as a failed trial, and must not stop the sweep here.

Which suites apply:
- ``LauncherTestSuite``: all of it, with Hydra's basic launcher, jobs in this process
  (tuner.n_jobs=1) and in worker processes (tuner.n_jobs=2, which also runs Hydra's
  ``SweepTaskFunction``, an object without ``__qualname__``, in the workers).
- ``IntegrationTestSuite``: all of it (real applications in subprocesses; job names, sweep and
  job directories including ``hydra.job.override_dirname``, original cwd, absolute paths).
  ``test_to_absolute_path_multirun`` runs the same sweep directory twice; mlexp's tuner resumes
  the study it finds there (a finished one runs nothing), so each run gets its own study name.
- ``BatchedSweeperTestSuite`` does not apply: it checks that a sweeper splits the combinations
  into batches of ``hydra.sweeper.max_batch_size`` and returns one list per batch. mlexp's tuner
  has no batches: it keeps ``tuner.n_jobs`` trials running and starts the next one as soon as one
  finishes (a batch would leave slots idle), so it has no max_batch_size and returns one list.
"""

import itertools
import os

import pytest
from hydra.test_utils import launcher_common_tests
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

@pytest.fixture(autouse=True)
def version_base_of_an_app_that_sets_none():
    """The suites' applications set no version_base (Hydra 1.1 behaviour, e.g. jobs change directory);
    a test that composed mlexp's config earlier in this process left 1.3 in Hydra's singleton."""
    from hydra import version

    base = version.VersionBase.instance()
    saved, base.version_base = base.version_base, version._UNSPECIFIED_
    yield
    version.VersionBase.instance().version_base = saved


GRID = "name:grid,n_trials:null,max_failure_rate:1.0,plots:false,sampler:{_target_:optuna.samplers.GridSampler}"
SWEEPER = ["hydra/sweeper=mlexp", f"hydra.sweeper.tuner={{{GRID}}}"]
WORKERS = ["hydra/sweeper=mlexp", f"hydra.sweeper.tuner={{{GRID},n_jobs:2}}"]


@pytest.mark.parametrize("launcher_name, overrides", [
    pytest.param("basic", list(SWEEPER), id="in-process"),
    pytest.param("basic", list(WORKERS), id="worker-processes"),
])
class TestMlexpSweeperLaunches(LauncherTestSuite):
    """Hydra's launcher suite through mlexp's tuner (the basic launcher runs each trial's job)."""


@pytest.mark.slow
@pytest.mark.parametrize("task_launcher_cfg, extra_flags", [
    ({}, ["-m", "hydra/launcher=basic", *SWEEPER]),
])
class TestMlexpSweeperIntegration(IntegrationTestSuite):
    """Hydra's integration suite: real applications run with ``-m hydra/sweeper=mlexp``."""

    def test_to_absolute_path_multirun(self, tmpdir, task_launcher_cfg, extra_flags, monkeypatch) -> None:
        runs = itertools.count()
        real = launcher_common_tests.integration_test

        def fresh_study(*args, overrides, **kwargs):
            return real(*args, overrides=[*overrides, f"++hydra.sweeper.tuner.study_name=run{next(runs)}"], **kwargs)

        monkeypatch.setattr(launcher_common_tests, "integration_test", fresh_study)
        super().test_to_absolute_path_multirun(tmpdir, task_launcher_cfg, extra_flags)


def _trials(sweep_dir):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name="mlexp", storage=JournalStorage(JournalFileBackend(str(sweep_dir / "optuna.log")))).trials


def failing_task(cfg):
    raise ValueError(f"bad value a={cfg.a}")


def test_spawned_workers_take_any_task_and_report_its_errors(hydra_sweep_runner, monkeypatch, tmp_path):
    """Where workers are spawned (macOS, Windows), the task function is sent to them: Hydra's
    SweepTaskFunction is an object without __qualname__, and its job's error must come back as the
    trial's error (it used to be AttributeError: 'SweepTaskFunction' object has no attribute '__qualname__')."""
    from mlexp.tuning import _workers

    monkeypatch.setattr(_workers, "START_METHOD", "spawn")
    sweep = hydra_sweep_runner(calling_file=None, calling_module="hydra.test_utils.a_module",
                               task_function=failing_task, config_path="configs", config_name="compose.yaml",
                               overrides=[*WORKERS, "+a=0,1"], temp_dir=tmp_path)
    with sweep:
        assert [r.status.name for r in sweep.returns[0]] == ["FAILED", "FAILED"]
        trials = _trials(tmp_path)
        errors = sorted(t.user_attrs["error"] for t in trials)
    assert errors == ["ValueError: bad value a=0", "ValueError: bad value a=1"]


def dies_once(cfg):
    """Kill the worker process running it the first time a=0 runs (as the OOM killer would)."""
    import signal

    marker = os.path.join(cfg.marker_dir, "died")
    if cfg.a == 0 and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return float(cfg.a)


def test_a_killed_worker_process_loses_no_trial(hydra_sweep_runner, tmp_path):
    """A worker killed mid-trial takes the process pool down: its trials are queued again, not failed."""
    sweep = hydra_sweep_runner(calling_file=None, calling_module="hydra.test_utils.a_module", task_function=dies_once,
                               config_path="configs", config_name="compose.yaml",
                               overrides=[*WORKERS, "+a=0,1", f"+marker_dir={tmp_path}"], temp_dir=tmp_path / "s")
    with sweep:
        trials = _trials(tmp_path / "s")
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.value for t in complete) == [0.0, 1.0]
    lost = [t for t in trials if t.state.name == "FAIL"]
    assert lost and all("worker process stopped" in t.user_attrs["interrupted"] for t in lost)
    assert {t.params["a"] for t in lost} <= {0, 1} and (tmp_path / "died").exists()
