"""Packaging: every package and config group declared, a quiet build, a wheel that holds every file."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from conftest import REPO


def _declared() -> set:
    return set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def _on_disk() -> set:
    """Package names the source tree holds: Python packages, and each config folder as mlexp.conf.<group>."""
    names = set()
    for root, prefix in (("mlexp", "mlexp"), ("hydra_plugins", "hydra_plugins")):
        for init in (REPO / root).rglob("*.py"):
            names.add(".".join([prefix, *init.parent.relative_to(REPO / root).parts]))
    for config in (REPO / "conf").rglob("*.yaml"):
        names.add(".".join(["mlexp.conf", *config.parent.relative_to(REPO / "conf").parts]))
    return names


def test_every_package_and_config_group_is_declared():
    missing = sorted(_on_disk() - _declared())
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
    on_disk = _on_disk()
    stale = [name for name in _declared() - on_disk if not any(d.startswith(name + ".") for d in on_disk)]
    assert not stale, f"declared in pyproject.toml but gone from the tree: {sorted(stale)}"


def test_the_wheel_builds_without_warnings_and_ships_every_file(tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "is absent from the `packages` configuration" not in output, output[-3000:]
    assert "Warning" not in output, output[-3000:]
    [wheel] = tmp_path.glob("mlexp-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"mlexp/conf/{p.relative_to(REPO / 'conf').as_posix()}" for p in (REPO / "conf").rglob("*.yaml")}
    expected |= {p.relative_to(REPO).as_posix() for root in ("mlexp", "hydra_plugins") for p in (REPO / root).rglob("*.py")}
    assert not expected - shipped, sorted(expected - shipped)
