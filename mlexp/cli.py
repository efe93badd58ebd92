"""The `mlexp` entrypoint: Hydra composes the config, mlexp runs the selected mode."""

import logging
import sys
from typing import Optional

import hydra
from omegaconf import DictConfig

from mlexp.schema import register

register()
log = logging.getLogger("mlexp")


@hydra.main(config_path="pkg://mlexp.conf", config_name="config", version_base="1.3")
def _app(cfg: DictConfig) -> Optional[float]:
    # Imported here, not at module level, so --help and --cfg stay fast.
    from mlexp.errors import MlexpError
    from mlexp.modes import dispatch

    try:
        return dispatch(cfg)
    except MlexpError as err:
        log.error("%s", err)
        if _in_multirun():
            raise  # the launcher records the job as failed; the sweep goes on
        label = "error: " if err.exit_code == 2 else ""
        print(f"\nmlexp: {label}{err}", file=sys.stderr)
        sys.exit(err.exit_code)


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.MULTIRUN


def main() -> None:
    from mlexp.tuning import lift_sweeper_params

    sys.argv[1:] = lift_sweeper_params(sys.argv[1:])  # Hydra refuses sweep values under hydra.*
    _app()
