"""The tuner's search space: Hydra override grammar (choice, range, interval, tag) to Optuna distributions."""

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from mlexp.errors import MlexpError

__all__ = ["Param", "SearchSpace", "parse_params", "default_space", "grid_values", "suggest", "format_value"]

# Tags that change how a sweep is sampled; any other tag is a typo we should not ignore silently.
KNOWN_TAGS = {"log", "int"}


@dataclass(frozen=True)
class Param:
    """One entry of the space: a distribution to sample, or a fixed value passed to every trial."""

    key: str                       # the override key, with any +/++ prefix: "model.C", "model", "+model.x"
    text: str                      # the whole entry as given: "model.C=tag(log, interval(1e-3, 1e2))"
    expression: str                # the text after '=' (kept for messages and the results file)
    distribution: Any = None       # an optuna BaseDistribution; None for a fixed value
    value: Optional[str] = None    # override-ready fixed value
    group: bool = False            # the key selects a config group option (model=...)

    @property
    def name(self) -> str:
        """The Optuna parameter name: the key without the +/++ prefix."""
        return self.key.lstrip("+~")


@dataclass
class SearchSpace:
    """Ordered parameters: config-group choices first (their options decide the rest), then values."""

    params: List[Param] = field(default_factory=list)

    @property
    def sampled(self) -> List[Param]:
        return [p for p in self.params if p.distribution is not None]

    @property
    def fixed(self) -> List[Param]:
        return [p for p in self.params if p.distribution is None]

    def keys(self) -> List[str]:
        return [p.name for p in self.params]


def parse_params(overrides: Sequence[str], config_loader: Any = None) -> List[Param]:
    """Parse ``key=expression`` strings with Hydra's own override parser into Params.

    Later entries for the same key replace earlier ones. ``config_loader`` lets
    ``glob(...)`` list a group's options and marks config-group keys as groups.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create(config_loader=config_loader)
    params: Dict[str, Param] = {}
    for text in overrides:
        try:
            override = parser.parse_override(text)
        except HydraException as err:
            raise MlexpError(f"search-space entry {text!r} is not valid Hydra override grammar: {err}") from err
        key = override.get_key_element()
        expression = text.partition("=")[2].strip()
        group = _is_group(config_loader, override.key_or_group)
        if override.is_sweep_override():
            param = Param(key, text, expression, distribution=_distribution(override, text), group=group)
        else:
            param = Param(key, text, expression, value=expression, group=group)
        params[param.name] = param  # a later entry replaces an earlier one, in its place
    return list(params.values())


def default_space(model_cfg: Any, prefix: str = "model") -> List[str]:
    """The ``search_space`` node of a model option as ``key=expression`` strings.

    Keys are relative to ``prefix`` (``C`` means ``model.C``); a key starting with ``/``
    is absolute (``/optimizer.lr``). Nested mappings are flattened with dots.
    """
    if model_cfg is None:
        return []
    space = model_cfg.get("search_space") if isinstance(model_cfg, (DictConfig, dict)) else None
    if space is None:
        return []
    if isinstance(space, DictConfig):
        space = OmegaConf.to_container(space, resolve=True)
    if not isinstance(space, dict):
        raise MlexpError(f"{prefix}.search_space must be a mapping of key: expression; got {space!r}.")
    entries = []
    for key, expression in _flatten(space):
        full = key[1:] if key.startswith("/") else f"{prefix}.{key}"
        entries.append(f"{full}={_expression(expression)}")
    return entries


def grid_values(param: Param) -> List[Any]:
    """Every value of a finite parameter (choice, range, integer interval); an error for a continuous one."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dist = param.distribution
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        n = int(round((dist.high - dist.low) / dist.step))
        return [round(dist.low + i * dist.step, 12) for i in range(n + 1)]
    raise MlexpError(
        f"tuner=grid needs a finite set of values for every parameter, but {param.name}={param.expression} "
        f"is a continuous range. Give it as a list or a stepped range, e.g. "
        f"'hydra.sweeper.params.{param.name}=choice(0.01,0.1,1)' or 'range(0.1,1.0,step=0.1)', "
        "or use tuner=random / tuner=tpe, which sample continuous ranges."
    )


def suggest(trial: Any, name: str, distribution: Any) -> str:
    """Sample ``name`` on an Optuna trial through its public suggest API; the override-ready value."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        value = trial.suggest_categorical(name, distribution.choices)
    elif isinstance(distribution, IntDistribution):
        value = trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    elif isinstance(distribution, FloatDistribution):
        value = trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    else:  # pragma: no cover - only the three kinds above are ever built
        raise TypeError(f"unsupported distribution {distribution!r}")
    return format_value(value)


def format_value(value: Any) -> str:
    """A sampled value as Hydra override text (choices of quoted strings are already quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _distribution(override: Any, text: str) -> Any:
    from hydra.core.override_parser.types import Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    sweep = override.value()
    tags = set(getattr(sweep, "tags", set()) or set())
    unknown = tags - KNOWN_TAGS
    if unknown:
        raise MlexpError(f"search-space entry {text!r} has unknown tag(s) {sorted(unknown)}; mlexp knows tag(log, ...) and tag(int, ...).")
    log = "log" in tags
    if override.is_choice_sweep() or (override.is_range_sweep() and sweep.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        if not choices:
            raise MlexpError(f"search-space entry {text!r} has no values.")
        if log:
            raise MlexpError(f"tag(log, ...) applies to range(...) and interval(...), not to a list of choices: {text!r}.")
        return CategoricalDistribution(choices)
    if override.is_range_sweep():
        values = list(override.sweep_iterator())
        if not values:
            raise MlexpError(f"search-space entry {text!r} is an empty range (range excludes its stop value).")
        low, high = min(values), max(values)
        step = abs(sweep.step)
        if all(isinstance(v, int) for v in values) and isinstance(sweep.step, int):
            if log and step != 1:
                raise MlexpError(f"tag(log, range(...)) needs step 1 (Optuna samples log-scaled integers without a step): {text!r}.")
            return IntDistribution(int(low), int(high), log=log, step=1 if log else int(step))
        if log:
            raise MlexpError(f"tag(log, range(...)) needs integers; use tag(log, interval(low, high)) for floats: {text!r}.")
        return FloatDistribution(float(low), float(high), step=float(step))
    if override.is_interval_sweep():
        low, high = sweep.start, sweep.end
        if low is None or high is None or not low < high:
            raise MlexpError(f"search-space entry {text!r} needs interval(low, high) with low < high.")
        if log and low <= 0:
            raise MlexpError(f"tag(log, interval(...)) needs a positive lower bound: {text!r}.")
        if "int" in tags:
            return IntDistribution(int(low), int(high), log=log)
        return FloatDistribution(float(low), float(high), log=log)
    raise MlexpError(f"search-space entry {text!r}: this sweep kind is not supported by the tuner; use choice, range or interval.")


def _is_group(config_loader: Any, key: str) -> bool:
    if config_loader is None or "." in key or key.startswith("hydra"):
        return False
    try:
        return bool(config_loader.get_group_options(key))
    except Exception:  # not a group (Hydra raises for unknown groups in some versions)
        return False


def _flatten(node: Dict[str, Any], prefix: str = "") -> Iterable[tuple]:
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, path + ".")
        else:
            yield path, value


def _expression(value: Any) -> str:
    if isinstance(value, (list, ListConfig)):
        return "choice(" + ",".join(format_value(v) for v in value) + ")"
    return format_value(value)
