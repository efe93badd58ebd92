"""The Sweeper Hydra instantiates for `hydra/sweeper: mlexp`; it forwards to mlexp.tuning, imported lazily."""

import sys
from typing import Any, Dict, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.mlexp_sweeper.config import MlexpSweeperConf  # noqa: F401 - registers the config


class MlexpSweeper(Sweeper):
    """Optuna-backed tuning sweeper: see mlexp.tuning.TunerSweeper and docs/tuner.md."""

    def __init__(self, params: Optional[Dict[str, Any]] = None, tuner: Optional[Dict[str, Any]] = None) -> None:
        # Imported here, not at module level: Hydra imports every plugin module on each start.
        from mlexp.tuning._sweeper import TunerSweeper

        self._impl = TunerSweeper(params, tuner)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self._impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = self._impl.launcher

    def sweep(self, arguments: List[str]) -> Any:
        from mlexp.errors import MlexpError

        try:
            return self._impl.sweep(arguments)
        except MlexpError as err:  # as the entrypoint does for a run: one paragraph, exit status 2
            print(f"\nmlexp: error: {err}", file=sys.stderr)
            sys.exit(2)
