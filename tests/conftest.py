"""Shared test helpers: run the real `mlexp` entrypoint, or compose + run in-process."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
MLEXP = [sys.executable, "-m", "mlexp"]


def run_cli(args: List[str], cwd: Path, env: Optional[dict] = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m mlexp ARGS` in ``cwd`` (the installed entrypoint, as a user would)."""
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    done = subprocess.run(MLEXP + args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(f"mlexp {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def compose(overrides: List[str]):
    """The composed config for ``overrides`` (same search path and schema as the CLI)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from mlexp.schema import register

    register()
    with initialize_config_module(config_module="mlexp.conf", version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def run_inprocess(overrides: List[str], run_dir: Path):
    """Compose and run an experiment in this process; returns mlexp.experiment.RunResult."""
    from mlexp.experiment import run

    return run(compose(overrides), run_dir=run_dir)


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty directory to run mlexp from (its outputs/ land here)."""
    return tmp_path


def run_saved(overrides: List[str], run_dir: Path):
    """run_inprocess, then write the composed config to ``run_dir/.hydra/config.yaml`` as the CLI does
    (mode=compress and mode=incremental reload a saved run's data from it)."""
    from omegaconf import OmegaConf

    result = run_inprocess(overrides, run_dir)
    (Path(run_dir) / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(compose(overrides), Path(run_dir) / ".hydra" / "config.yaml")
    return result
