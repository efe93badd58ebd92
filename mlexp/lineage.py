"""Lineage: what a run needs to be trusted and reproduced (code, config, data, packages, time).

``start_record(cfg, inputs=...)`` builds the part every mode shares (the user's repository
and the files the run read from it, mlexp's own version and checkout, config hash, overrides,
packages); a mode adds its own parts, ``finish()`` closes the record and ``write_json()`` writes
it atomically. ``lineage.json`` of a train run is described in docs/recipes.md.
"""

import hashlib
import json
import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence

if TYPE_CHECKING:
    import pandas as pd
    from omegaconf import DictConfig

__all__ = [
    "start_record", "finish", "write_json", "git_state", "mlexp_state", "config_hash", "config_files_read",
    "untracked_files", "data_file", "file_fingerprint", "file_changed", "data_fingerprint", "package_versions",
    "now_iso",
]

PACKAGES = (
    "mlexp", "hydra-core", "omegaconf", "scikit-learn", "imbalanced-learn", "pandas", "numpy", "scipy",
    "skops", "optuna", "torch", "skorch",
)
NOT_HASHED = ("overwrite",)


def start_record(cfg: "DictConfig", inputs: Sequence[Path] = ()) -> Dict[str, Any]:
    """The lineage every mode shares, with status ``running``; ``inputs`` are files the run reads
    besides its config (a data file, a table to predict): untracked ones in the user's repository
    are listed with their fingerprint, since the commit alone does not reproduce them."""
    from omegaconf import OmegaConf

    repo = git_state(Path.cwd())
    configs = config_files_read(cfg)
    if repo["repository"]:
        repo["untracked_read"] = untracked_files(Path(repo["repository"]), configs + [Path(p) for p in inputs])
    return {
        "status": "running",
        "started": now_iso(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "git": repo,
        "mlexp": mlexp_state(),
        "config_hash": config_hash(OmegaConf.to_container(cfg, resolve=True)),
        "overrides": _hydra_overrides(),
        "config_files": [str(p) for p in configs],
        "packages": package_versions(),
    }


def finish(record: Dict[str, Any], status: str, **extra: Any) -> Dict[str, Any]:
    """Close ``record``: ``completed``, ``failed`` or ``interrupted``, with the end time."""
    record.update(status=status, finished=now_iso(), **extra)
    return record


def write_json(path: Path, content: Dict[str, Any]) -> None:
    """Write ``content`` to a temporary name and rename it: a crash never leaves half a file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(content, indent=2, default=_json_value))
    temporary.replace(path)


def _json_value(value: Any) -> Any:
    """numpy scalars and arrays as numbers and lists; anything else JSON lacks as its text."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def git_state(directory: Path) -> Dict[str, Any]:
    """Commit and dirty flag of the git repository holding ``directory`` (the user's config repo)."""
    lines = _git(directory, "rev-parse", "--show-toplevel", "HEAD")
    if lines is None or len(lines.splitlines()) < 2:
        return {"repository": None, "commit": None, "dirty": None}
    root, commit = lines.splitlines()[:2]
    status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return {"repository": root, "commit": commit, "dirty": bool(status) if status is not None else None}


def mlexp_state() -> Dict[str, Any]:
    """mlexp's version, where it was imported from and, from a git checkout, its commit and dirty flag."""
    import mlexp

    package = Path(mlexp.__file__).resolve().parent
    try:
        version = metadata.version("mlexp")
    except metadata.PackageNotFoundError:
        version = mlexp.__version__
    state: Dict[str, Any] = {"version": version, "path": str(package), "commit": None, "dirty": None}
    checkout = git_state(package)
    # Only mlexp's own checkout counts, not a repository that happens to hold a virtual environment.
    if checkout["repository"] and Path(checkout["repository"]).resolve() == package.parent:
        state.update(commit=checkout["commit"], dirty=checkout["dirty"])
    return state


def config_hash(resolved: Dict[str, Any]) -> str:
    """sha256 of the resolved experiment config (Hydra's own settings and ``overwrite`` excluded: where a
    run is written does not change what it computes)."""
    experiment = {k: v for k, v in resolved.items() if k not in NOT_HASHED}
    return hashlib.sha256(json.dumps(experiment, sort_keys=True, default=str).encode()).hexdigest()


def config_files_read(cfg: "DictConfig") -> List[Path]:
    """The config files Hydra composed this run from that live in folders (the user's, not mlexp's
    package): the primary config, each selected group option and the options those build on."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    hydra_cfg = HydraConfig.get()
    sources = [(s.schema, s.path) for s in hydra_cfg.runtime.config_sources if s.schema in ("file", "pkg")]
    wanted = [hydra_cfg.job.config_name] if hydra_cfg.job.config_name else []
    wanted += [f"{group}/{option}" for group, option in hydra_cfg.runtime.choices.items()
               if option and not group.startswith("hydra/")]
    wanted += [f"features/{name}" for name in (cfg.get("features") or {})]  # a list group: not in choices
    ensemble = cfg.get("ensemble") or {}
    members = [m if isinstance(m, str) else next(iter(m)) for m in (ensemble.get("members") or [])]
    wanted += [f"model/{name}" for name in members + ([ensemble.get("meta")] if ensemble.get("meta") else [])]
    found: List[Path] = []
    seen = set()
    while wanted:
        name = wanted.pop(0)
        if name in seen:
            continue
        seen.add(name)
        path = _first_in_search_path(sources, f"{name}.yaml")
        if path is None:
            continue
        found.append(path)
        group = name.rsplit("/", 1)[0] if "/" in name else ""
        wanted += [f"{group}/{base}" if group else base for base in _same_group_defaults(path)]
    return found


def untracked_files(repository: Path, paths: Iterable[Path]) -> List[Dict[str, Any]]:
    """Files among ``paths`` inside ``repository`` that git does not track, with their fingerprints."""
    root = repository.resolve()
    inside = []
    for path in paths:
        resolved = Path(path).resolve()
        if resolved.is_file() and root in resolved.parents:
            inside.append(resolved.relative_to(root).as_posix())
    if not inside:
        return []
    tracked = set((_git(root, "ls-files", "--full-name", "--", *inside) or "").splitlines())
    return [{**file_fingerprint(root / name), "path": name} for name in dict.fromkeys(inside) if name not in tracked]


def data_file(data_cfg: Any) -> Optional[Path]:
    """The file a data option reads (``data.path`` or ``data.loader.path``), absolute; None for built-in sets."""
    raw = data_cfg.get("path") if data_cfg is not None else None
    if raw is None and data_cfg is not None and data_cfg.get("loader") is not None:
        raw = data_cfg.loader.get("path")
    if not raw or not isinstance(raw, str):
        return None
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        from hydra.utils import to_absolute_path

        return Path(to_absolute_path(raw))
    return Path(raw).resolve()


def file_fingerprint(path: Path) -> Dict[str, Any]:
    """sha256, size and modification time of a file, read in chunks."""
    path = Path(path)
    digest = hashlib.sha256()
    before = path.stat()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return {"path": str(path.resolve()), "sha256": digest.hexdigest(), **_size_and_time(before)}


def file_changed(fingerprint: Dict[str, Any]) -> bool:
    """True when the file changed since ``fingerprint`` was taken (size or modification time)."""
    try:
        now = Path(fingerprint["path"]).stat()
    except OSError:
        return True
    return _size_and_time(now) != {k: fingerprint.get(k) for k in ("bytes", "modified")}


def data_fingerprint(features: "pd.DataFrame", target: "pd.Series") -> Dict[str, Any]:
    """A content hash of the rows as loaded (values, column names and dtypes), plus the shape."""
    import pandas as pd

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


# ---- internals ---------------------------------------------------------------------------------


def _size_and_time(stat: os.stat_result) -> Dict[str, Any]:
    modified = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, timezone.utc).isoformat(timespec="microseconds")
    return {"bytes": stat.st_size, "modified": modified}


def _git(directory: Path, *args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _hydra_overrides() -> List[str]:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _first_in_search_path(sources: Sequence[tuple], name: str) -> Optional[Path]:
    """The file Hydra reads for ``name``: the first source that has it; None when that is a package."""
    import importlib.util

    for schema, location in sources:
        if schema == "file":
            candidate = Path(location) / name
            if candidate.is_file():
                return candidate.resolve()
        else:
            spec = importlib.util.find_spec(location) if location else None
            roots = list(spec.submodule_search_locations or []) if spec else []
            if any((Path(root) / name).is_file() for root in roots):
                return None  # a package's own config: versioned with that package
    return None


def _same_group_defaults(path: Path) -> List[str]:
    """Plain entries of a config file's defaults list (``- csv``): options of the same group it builds on."""
    import yaml

    try:
        content = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    defaults = content.get("defaults") if isinstance(content, dict) else None
    return [entry for entry in defaults or [] if isinstance(entry, str) and entry != "_self_"]
