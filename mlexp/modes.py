"""Dispatch the entrypoint to the selected mode (train, predict; later monitor, recommend)."""

from typing import Optional

from omegaconf import DictConfig

from mlexp.errors import MlexpError

__all__ = ["dispatch"]


def dispatch(cfg: DictConfig) -> Optional[float]:
    """Run cfg.mode; return the objective for Hydra's sweepers (None for modes without one)."""
    name = cfg.mode.name
    if name == "train":
        from mlexp.experiment import run

        return run(cfg).objective
    if name == "predict":
        from mlexp.predict import predict

        predict(cfg)
        return None
    raise MlexpError(f"mode.name={name!r} is not a mode; use mode=train or mode=predict.")
