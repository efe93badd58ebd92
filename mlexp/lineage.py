"""Lineage: what a run needs to be trusted and reproduced (code, config, data, packages, time)."""

import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Optional

import pandas as pd

__all__ = ["git_state", "config_hash", "data_fingerprint", "package_versions", "now_iso"]

PACKAGES = (
    "mlexp", "hydra-core", "omegaconf", "scikit-learn", "imbalanced-learn", "pandas", "numpy", "scipy",
    "skops", "optuna", "torch", "skorch",
)


def git_state(directory: Path) -> Dict[str, Any]:
    """Commit and dirty flag of the git repository holding ``directory`` (the user's config repo)."""
    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    root = git("rev-parse", "--show-toplevel")
    if root is None:
        return {"repository": None, "commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"repository": root, "commit": git("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def config_hash(resolved: Dict[str, Any]) -> str:
    """sha256 of the resolved experiment config (Hydra's own settings excluded)."""
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()


def data_fingerprint(features: pd.DataFrame, target: pd.Series) -> Dict[str, Any]:
    """A content hash of the rows as loaded (values, column names and dtypes), plus the shape."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(features, index=False).to_numpy().tobytes())
    digest.update(pd.util.hash_pandas_object(target, index=False).to_numpy().tobytes())
    digest.update(json.dumps([[str(c), str(t)] for c, t in features.dtypes.items()]).encode())
    return {"sha256": digest.hexdigest(), "rows": int(len(features)), "columns": int(features.shape[1])}


def package_versions() -> Dict[str, Optional[str]]:
    versions: Dict[str, Optional[str]] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
