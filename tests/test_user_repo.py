"""mlexp used from a user's own git repository, with their own configs beside mlexp's built-ins."""

import json
import subprocess
from pathlib import Path

from sklearn.datasets import load_wine

from conftest import run_cli


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def _user_repo(root: Path, conf_dir: str) -> Path:
    repo = root / "user-project"
    (repo / conf_dir / "data").mkdir(parents=True)
    (repo / conf_dir / "model").mkdir()
    (repo / conf_dir / "experiment").mkdir()
    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame.to_csv(repo / "wine.csv", index=False)
    (repo / conf_dir / "data" / "my_wine.yaml").write_text(
        "defaults:\n  - csv\n  - _self_\nname: my_wine\npath: wine.csv\ntarget: cultivar\n"
    )
    (repo / conf_dir / "model" / "small_forest.yaml").write_text(
        "defaults:\n  - random_forest\n  - _self_\nn_estimators: 25\nmax_depth: 4\n"
    )
    (repo / conf_dir / "experiment" / "wine_forest.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: my_wine\n  - override /model: small_forest\n"
        "  - override /splitter: kfold\nseed: 11\n"
    )
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "my experiments")
    return repo


def _check_run(run_dir: Path, repo: Path, dirty: bool) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["cv"]["accuracy"]["folds"]) == 5 and metrics["cv"]["accuracy"]["mean"] > 0.85
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    assert "n_estimators: 25" in config and "max_depth: 4" in config and "seed: 11" in config
    lineage = json.loads((run_dir / "lineage.json").read_text())
    assert lineage["git"]["commit"] == _git(repo, "rev-parse", "HEAD")
    assert lineage["git"]["dirty"] is dirty


def test_convention_folder_is_picked_up_and_lineage_records_the_users_commit(tmp_path):
    repo = _user_repo(tmp_path, "mlexp_conf")
    run_cli(["experiment=wine_forest", "hydra.run.dir=run1"], cwd=repo)
    _check_run(repo / "run1", repo, dirty=False)
    (repo / "mlexp_conf" / "experiment" / "wine_forest.yaml").write_text(
        (repo / "mlexp_conf" / "experiment" / "wine_forest.yaml").read_text() + "# edited\n"
    )
    run_cli(["experiment=wine_forest", "hydra.run.dir=run2"], cwd=repo)
    _check_run(repo / "run2", repo, dirty=True)


def test_config_dir_flag_and_environment_variable(tmp_path):
    repo = _user_repo(tmp_path, "configs")
    run_cli(["--config-dir", "configs", "experiment=wine_forest", "hydra.run.dir=run1"], cwd=repo)
    _check_run(repo / "run1", repo, dirty=False)
    run_cli(["experiment=wine_forest", "hydra.run.dir=run2"], cwd=repo, env={"MLEXP_CONFIG_DIR": str(repo / "configs")})
    _check_run(repo / "run2", repo, dirty=False)
