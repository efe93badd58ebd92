"""The pipeline's final estimator: one `model` option, or an `ensemble` composed from model options."""

from typing import Any, Optional

from omegaconf import DictConfig

from mlexp.models.ensemble import build_ensemble, member_cv
from mlexp.models.model import RESERVED_KEYS, build_model, checked_params, model_params

__all__ = ["build_estimator", "build_model", "build_ensemble", "member_cv", "checked_params", "model_params",
           "RESERVED_KEYS"]


def build_estimator(cfg: DictConfig, task: str, n_jobs: Optional[int] = None, context: Optional[dict] = None) -> Any:
    """The pipeline's final estimator: the `model` option, or an `ensemble` composed from model options."""
    ensemble = cfg.get("ensemble")
    if ensemble is not None and ensemble.get("_target_"):
        return build_ensemble(cfg, task, n_jobs=n_jobs, context=context or {})
    return build_model(cfg.model, task, n_jobs=n_jobs, context=context)
