"""The records a mode's run leaves, as a train run leaves them: lineage.json (running -> completed/failed), metrics.json."""

import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from omegaconf import DictConfig, OmegaConf

__all__ = ["RunRecord", "recorded_run", "write_json"]


@dataclass
class RunRecord:
    run_dir: Path
    lineage: Dict[str, Any]
    started: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return time.perf_counter() - self.started


@contextmanager
def recorded_run(cfg: DictConfig, run_dir: Optional[Path] = None) -> Iterator[RunRecord]:
    """Write lineage.json as `running`, then `completed` or `failed` (with the error) when the block ends."""
    from mlexp import lineage as lin

    run_dir = Path(run_dir) if run_dir is not None else _hydra_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    lineage: Dict[str, Any] = {
        "status": "running",
        "started": lin.now_iso(),
        "mode": cfg.mode.name,
        "git": lin.git_state(Path(os.getcwd())),
        "config_hash": lin.config_hash(OmegaConf.to_container(cfg, resolve=True)),
        "overrides": _hydra_overrides(),
        "packages": lin.package_versions(),
    }
    record = RunRecord(run_dir, lineage)
    write_json(run_dir / "lineage.json", lineage)
    try:
        yield record
    except BaseException as err:
        lineage.update(status="failed", finished=lin.now_iso(), error=f"{type(err).__name__}: {err}")
        write_json(run_dir / "lineage.json", lineage)
        raise
    lineage.update(status="completed", finished=lin.now_iso())
    write_json(run_dir / "lineage.json", lineage)


def write_json(path: Path, content: Dict[str, Any]) -> None:
    """Written to a temporary name and renamed, so a crash never leaves half a file."""
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(content, indent=2, default=str))
    temporary.replace(path)


def _hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    from mlexp.errors import MlexpError

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    raise MlexpError("outside the mlexp entrypoint, pass run_dir=<a directory for the outputs>.")


def _hydra_overrides() -> list:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
