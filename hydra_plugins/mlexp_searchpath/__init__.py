"""Adds a user's own config folders to mlexp's search path (MLEXP_CONFIG_DIR, ./mlexp_conf)."""

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

ENV_VAR = "MLEXP_CONFIG_DIR"
CONVENTION_DIR = "mlexp_conf"


class MlexpSearchPathPlugin(SearchPathPlugin):
    """Appends, after mlexp's built-in configs, the folders a user keeps in their own repo.

    - every folder in ``$MLEXP_CONFIG_DIR`` (separated by ``os.pathsep``);
    - ``./mlexp_conf`` in the directory mlexp is started from, when it exists.

    Their group options (``data/my_table.yaml``, ``model/my_model.yaml``,
    ``experiment/my_preset.yaml``) join the built-in ones. To *replace* a built-in option
    of the same name, use Hydra's ``--config-dir``, which is searched first.
    """

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not any(entry.path == "pkg://mlexp.conf" for entry in search_path.get_path()):
            return  # another Hydra app in the same environment: leave it alone
        folders = [f for f in os.environ.get(ENV_VAR, "").split(os.pathsep) if f]
        if Path(CONVENTION_DIR).is_dir():
            folders.append(CONVENTION_DIR)
        for folder in folders:
            search_path.append(provider="mlexp-user", path=f"file://{Path(folder).resolve()}")
