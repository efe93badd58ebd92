"""The sweeper's structured config, registered in Hydra's ConfigStore as `hydra/sweeper: mlexp`."""

from dataclasses import dataclass, field
from typing import Any, Dict

from hydra.core.config_store import ConfigStore


@dataclass
class MlexpSweeperConf:
    """Tuner settings live in the `tuner` config group (conf/tuner/*.yaml); here only the space.

    params: extra or replacing search-space entries in Hydra's override grammar, keyed by
    config path (``model.C: tag(log, interval(1e-3, 1e2))``, ``model: choice(logreg,svm)``).
    tuner: the settings for a Hydra application whose config has no ``tuner`` node (not mlexp's,
    which selects them with ``tuner=<option>``); same keys as conf/tuner/*.yaml.
    """

    _target_: str = "hydra_plugins.mlexp_sweeper.mlexp_sweeper.MlexpSweeper"
    _recursive_: bool = False  # tuner.sampler/pruner are built by the tuner, not when Hydra builds the sweeper
    params: Dict[str, Any] = field(default_factory=dict)
    tuner: Any = None  # Any: OmegaConf 2.3 cannot merge a mapping into a None Optional[Dict]


ConfigStore.instance().store(group="hydra/sweeper", name="mlexp", node=MlexpSweeperConf, provider="mlexp")
