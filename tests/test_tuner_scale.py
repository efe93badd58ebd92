"""The tuner past one process: Hydra launchers (joblib, submitit) and a study shared on a real PostgreSQL server."""

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

ROOT = Path(__file__).resolve().parents[1]
FAST = ["splitter.n_splits=2", "save_model=false", "report=false", "tuner.plots=false"]
ENV = {**os.environ, "MPLBACKEND": "Agg", "HYDRA_FULL_ERROR": "1"}

pytestmark = pytest.mark.slow


def mlexp(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlexp", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def overlapping(trials) -> bool:
    spans = [(t.datetime_start, t.datetime_complete) for t in trials]
    return any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])


# ---- Hydra launchers ------------------------------------------------------------------------

@pytest.mark.parametrize("launcher, plugin, extra", [
    ("joblib", "hydra_plugins.hydra_joblib_launcher", ["hydra.launcher.n_jobs=2"]),
    ("submitit_local", "hydra_plugins.hydra_submitit_launcher", ["hydra.launcher.timeout_min=10"]),
])
def test_launchers_run_trials_in_their_own_processes_two_at_a_time(tmp_path, launcher, plugin, extra):
    pytest.importorskip(plugin, reason="the launcher plugins are the extra mlexp[launchers]")
    sweep = tmp_path / launcher
    # A pruner that never prunes (so that every job reports its folds to its trial, from its own process).
    done = mlexp("-m", "tuner=median", "tuner.pruner.n_startup_trials=100", "tuner.budget=folds", "tuner.n_trials=4",
                 "tuner.n_jobs=2", f"hydra/launcher={launcher}", *extra, *FAST, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    trials = optuna.load_study(study_name="mlexp", storage=JournalStorage(JournalFileBackend(str(sweep / "optuna.log")))).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert overlapping(trials)  # both slots busy at once
    for trial in trials:  # each job reloaded its trial from the storage in its own process
        assert sorted(trial.intermediate_values) == [0, 1]
        assert Path(trial.user_attrs["job_dir"]) == sweep / str(trial.number)
        assert (sweep / str(trial.number) / "metrics.json").is_file()
    board = pd.read_csv(sweep / "leaderboard.csv")
    assert sorted(board["job"]) == [0, 1, 2, 3] and set(board["status"]) == {"completed"}


# ---- PostgreSQL -----------------------------------------------------------------------------

def _postgres_binary(name: str):
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))  # Debian keeps them off PATH
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of its own on 127.0.0.1 (a fresh cluster in a temporary folder), stopped at the end."""
    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("the PostgreSQL server binaries are not installed (Debian package postgresql; .ci/run installs it)")
    pytest.importorskip("psycopg", reason="the driver is the extra mlexp[postgres]")
    base = Path(tempfile.mkdtemp(prefix="mlexp-pg-"))
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        account = next((a for a in ("postgres", "nobody") if _has_account(a)), None)
        if account is None:
            pytest.skip("running as root without a postgres or nobody account to start the server as")
        entry = pwd.getpwnam(account)
        os.chown(base, entry.pw_uid, entry.pw_gid)
        as_user = ["runuser", "-u", account, "--"]
    port = _free_port()
    subprocess.run([*as_user, initdb, "-D", str(base / "data"), "-U", "mlexp", "-A", "trust", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True)
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
    subprocess.run([*as_user, pg_ctl, "-D", str(base / "data"), "-l", str(base / "server.log"), "-o", options,
                    "-w", "-t", "60", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://mlexp@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(base / "data"), "-m", "immediate", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _has_account(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_four_workers_share_a_postgres_study_and_retry_a_killed_ones_trial(tmp_path, postgres):
    n_trials = 16
    args = ["-m", "tuner=random", f"tuner.n_trials={n_trials}", f"tuner.storage={postgres}", "tuner.study_name=pg",
            "tuner.heartbeat_interval=2", *FAST]
    logs = [open(tmp_path / f"w{i}.log", "w") for i in range(4)]
    workers = [subprocess.Popen([sys.executable, "-m", "mlexp", *args, f"hydra.sweep.dir={tmp_path / f'w{i}'}"],
                                cwd=tmp_path, env=ENV, stdout=logs[i], stderr=subprocess.STDOUT,
                                start_new_session=True) for i in range(4)]
    by_pid = {w.pid: w for w in workers}
    storage = optuna.storages.RDBStorage(postgres)
    victim, killed_trial, deadline = None, None, time.time() + 300
    while victim is None and time.time() < deadline:  # a worker in the middle of a trial's job
        time.sleep(0.1)
        try:
            trials = optuna.load_study(study_name="pg", storage=storage).trials
        except KeyError:
            continue  # the study is being created
        started = {(t.user_attrs.get("worker") or {}).get("pid") for t in trials}
        if not set(by_pid) <= started:
            continue  # a worker still starting would find the dead one's trial by its pid, not by heartbeat
        for trial in (t for t in trials if t.state.name == "RUNNING"):
            pid = (trial.user_attrs.get("worker") or {}).get("pid")
            if pid in by_pid and trial.user_attrs.get("job_dir"):
                victim, killed_trial = by_pid[pid], trial.number
                os.killpg(victim.pid, signal.SIGKILL)
                break
    assert victim is not None, "no worker was seen running a trial"
    for worker in workers:
        worker.wait(timeout=600)
    for log in logs:
        log.close()
    survivors = [w for w in workers if w is not victim]
    outputs = [(tmp_path / f"w{workers.index(w)}.log").read_text() for w in survivors]
    assert all(w.returncode == 0 for w in survivors), "\n".join(o[-3000:] for o in outputs)

    trials = optuna.load_study(study_name="pg", storage=storage).trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == n_trials  # exactly n_trials, across the four workers
    killed = trials[killed_trial]
    assert killed.state.name == "FAIL" and "interrupted" not in killed.user_attrs  # failed by its heartbeat
    assert any(f"trial {killed_trial} failed: its worker stopped sending heartbeats" in o for o in outputs)
    lineage = json.loads((Path(killed.user_attrs["job_dir"]) / "lineage.json").read_text())
    assert lineage["status"] == "failed" and "ran it again as trial" in lineage["error"]  # its directory agrees
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == killed_trial]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE" and retry[0].params == killed.params
    # No duplicates: every trial ran once, in one job directory of one worker.
    dirs = [t.user_attrs["job_dir"] for t in complete]
    assert len(set(dirs)) == n_trials
    assert all(t.user_attrs.get("surplus") for t in trials if t.state.name == "FAIL" and t is not killed)
    run_dirs = [p for i in range(4) for p in (tmp_path / f"w{i}").glob("[0-9]*") if p.is_dir()]
    assert len(run_dirs) == n_trials + 1  # the complete ones and the killed one
