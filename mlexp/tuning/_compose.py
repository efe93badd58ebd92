"""Compose each trial's config as Hydra's load_sweep_config does, doing the defaults-list work once per group choice.

Hydra composes in two stages: the defaults list (every config-group YAML found, read and merged;
most of the ~60 ms a composition takes) and then the value overrides, applied in order to the
merged config (``model.C=0.3``). The trials of a sweep differ mostly in values, so the first
stage is done once per distinct set of config-group (and Hydra) overrides and copied for each
trial; the second stage runs per trial with Hydra's own function. Any override this cannot
place is composed the ordinary way.
"""

import copy
from typing import Any, Dict, List, Optional, Tuple

from omegaconf import DictConfig, OmegaConf, open_dict

__all__ = ["Composer"]


class Composer:
    """Trial configs from ``config_loader`` and the sweep's ``master_config``, cached by config-group choices."""

    def __init__(self, config_loader: Any, master_config: DictConfig):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.loader, self.master = config_loader, master_config
        self.parser = OverridesParser.create(config_loader=config_loader)
        self.master_hydra: List[str] = OmegaConf.to_container(master_config.hydra.overrides.hydra)  # type: ignore
        self._bases: Dict[Tuple[str, ...], DictConfig] = {}
        self._groups: Optional[set] = None
        self._parsed: Dict[str, Any] = {}

    def compose(self, overrides: List[str]) -> DictConfig:
        """The job config for ``overrides`` (the same as ``config_loader.load_sweep_config(master, overrides)``)."""
        try:
            parsed = [self._parse(text) for text in overrides]
        except Exception:  # noqa: BLE001 - Hydra's own composition reports the bad override
            return self.loader.load_sweep_config(self.master, list(overrides))
        structural = tuple(o.input_line for o in parsed if self._is_structural(o))
        base = self._bases.get(structural)
        if base is None:
            base = self.loader.load_sweep_config(self.master, list(structural))
            self._bases[structural] = base
            if self._groups is None:
                self._groups = set(base.hydra.runtime.choices.keys())
        values = [o for o in parsed if o.input_line not in structural]
        if not values:
            return copy.deepcopy(base)
        try:
            return self._apply(base, parsed, values)
        except Exception:  # noqa: BLE001 - let Hydra compose it (and word any error) the ordinary way
            return self.loader.load_sweep_config(self.master, list(overrides))

    def _parse(self, text: str) -> Any:
        """Hydra's parse of one override, remembered for the overrides every trial repeats."""
        parsed = self._parsed.get(text)
        if parsed is None:
            parsed = self.parser.parse_override(text)
            if len(self._parsed) < 10_000:
                self._parsed[text] = parsed
        return parsed

    def _is_structural(self, override: Any) -> bool:
        """A config-group choice (or a package override): part of the defaults list, not a value."""
        if isinstance(override.value(), dict):
            return False  # Hydra merges a dict into the config even under a group's name
        key = override.key_or_group
        if override.package is not None:
            return True
        if self._groups is not None and key in self._groups:
            return True
        return "." not in key and bool(self.loader.repository.group_exists(key))  # group paths use /, not .

    def _apply(self, base: DictConfig, parsed: List[Any], values: List[Any]) -> DictConfig:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname

        cfg = copy.deepcopy(base)
        OmegaConf.set_readonly(cfg.hydra, False)
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        task = [o for o in parsed if not o.is_hydra_override()]
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.task = [o.input_line for o in task]
            cfg.hydra.overrides.hydra = self.master_hydra + [o.input_line for o in parsed if o.is_hydra_override()]
            naming = cfg.hydra.job.config.override_dirname
            cfg.hydra.job.override_dirname = get_overrides_dirname(
                overrides=task, kv_sep=naming.kv_sep, item_sep=naming.item_sep, exclude_keys=naming.exclude_keys)
        return cfg
