"""Built-in configs ship inside the wheel: mlexp works installed as a wheel, not only editable."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


@pytest.mark.slow
def test_wheel_install_finds_its_configs_and_runs(tmp_path: Path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(REPO)],
                   check=True, capture_output=True)
    [wheel] = list((tmp_path / "dist").glob("mlexp-*.whl"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    assert (site / "mlexp" / "conf" / "config.yaml").is_file()
    assert (site / "mlexp" / "conf" / "model" / "random_forest.yaml").is_file()
    # PYTHONPATH puts the wheel's copy ahead of the editable checkout; run from a directory
    # without conf/ so nothing can come from the source tree.
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "import mlexp, sys; sys.argv=['mlexp','data=wine','model=knn','hydra.run.dir=run']; print(mlexp.__file__); from mlexp.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0].startswith(str(site))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["cv"]["accuracy"]["mean"] > 0.9
