"""The tuner's Optuna sampler and pruner, built from their `_target_` nodes (a grid gets its values)."""

from typing import Any, Dict, Optional, Tuple

from mlexp.errors import MlexpError

__all__ = ["is_grid", "build_sampler", "build"]


def build_sampler(settings: Any, study: Any, grid: Optional[Tuple]) -> Any:
    """The configured sampler (a grid gets its values); seeds shift by the trials already run,
    so a resumed random search does not repeat the points it started with (not a grid's)."""
    import optuna

    kwargs: Dict[str, Any] = {}
    seed = settings.sampler.get("seed")
    done = len(study.get_trials(deepcopy=False))
    if seed is not None and (done or settings.storage) and grid is None:
        # A shared storage may have workers starting together: each gets its own seed, or they
        # would all propose the same points. (A grid keeps its seed: it fixes the order of the
        # combinations, which every worker and every restart must share.)
        kwargs["seed"] = int(seed) + done + (_worker_offset() if settings.storage else 0)
    if grid is not None:
        kwargs["search_space"] = grid[0]
    return build("tuner.sampler", settings.sampler, optuna.samplers.BaseSampler, **kwargs)


def is_grid(settings: Any) -> bool:
    """Whether tuner.sampler is a GridSampler (checked to be an importable Optuna sampler)."""
    import optuna
    from hydra.utils import get_class

    try:
        target = get_class(settings.sampler._target_)
    except Exception as err:
        raise MlexpError(
            f"tuner.sampler._target_={settings.sampler._target_!r} cannot be imported ({err}). Name an Optuna "
            "sampler class, e.g. optuna.samplers.TPESampler, RandomSampler, GridSampler, CmaEsSampler."
        ) from err
    if not (isinstance(target, type) and issubclass(target, optuna.samplers.BaseSampler)):
        raise MlexpError(f"tuner.sampler._target_={settings.sampler._target_!r} is not an Optuna sampler.")
    return issubclass(target, optuna.samplers.GridSampler)


def build(where: str, node: Any, kind: type, **kwargs: Any) -> Any:
    """Instantiate an Optuna sampler or pruner from its _target_ node, with a clear error."""
    from hydra.utils import instantiate

    try:
        built = instantiate(node, **kwargs)
    except Exception as err:
        cause = getattr(err, "__cause__", None) or err
        raise MlexpError(f"{where} ({node.get('_target_')}) could not be built: {str(cause).rstrip('.')}. Check its _target_ and "
                         "arguments against Optuna's documentation.") from err
    if not isinstance(built, kind):
        raise MlexpError(f"{where}._target_={node.get('_target_')!r} is not an Optuna {kind.__name__}.")
    return built


def _worker_offset() -> int:
    import os
    import socket
    import zlib

    return zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 1_000_003
