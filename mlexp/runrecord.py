"""The lineage.json every mode's run leaves: `running`, then `completed`, `failed` or `interrupted`."""

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence

from omegaconf import DictConfig

from mlexp import lineage as lin
from mlexp.errors import MlexpError

__all__ = ["RunRecord", "recorded_run", "hydra_run_dir", "write_json"]

write_json = lin.write_json  # one atomic JSON writer for every mode's files


@dataclass
class RunRecord:
    """A running mode's directory and the lineage it will write; ``lineage`` may be extended in the block."""

    run_dir: Path
    lineage: Dict[str, Any]
    started: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return time.perf_counter() - self.started


@contextmanager
def recorded_run(cfg: DictConfig, run_dir: Optional[Path] = None, inputs: Sequence[Path] = (),
                 **extra: Any) -> Iterator[RunRecord]:
    """Write lineage.json as `running` (the train run's record: git, config hash, overrides, packages,
    plus ``mode`` and ``extra``), then `completed`, `failed` with the error, or `interrupted` (Ctrl-C)."""
    run_dir = Path(run_dir) if run_dir is not None else hydra_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    lineage = {"mode": cfg.mode.name, **lin.start_record(cfg, inputs), **extra}
    record = RunRecord(run_dir, lineage)
    write_json(run_dir / "lineage.json", lineage)
    try:
        yield record
    except BaseException as err:
        status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        write_json(run_dir / "lineage.json", lin.finish(lineage, status, error=f"{type(err).__name__}: {err}"))
        raise
    write_json(run_dir / "lineage.json", lin.finish(lineage, "completed", seconds=round(record.seconds(), 3)))


def hydra_run_dir() -> Path:
    """This run's directory as Hydra made it; outside the entrypoint the caller must name one."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    raise MlexpError("outside the mlexp entrypoint, pass run_dir=<a directory for the outputs>.")
