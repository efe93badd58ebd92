"""Steps chained one after another: PCA gets scaled input, and each step passes real column names to the next."""

import logging
from typing import Any, List, Optional, Tuple

from omegaconf import DictConfig

from mlexp.errors import MlexpError

__all__ = ["scaled_pca", "label_columns", "check_no_sparse_pca", "is_pca"]

log = logging.getLogger(__name__)

Steps = List[Tuple[str, Any]]


def is_pca(step: Any) -> bool:
    from sklearn.decomposition import PCA, IncrementalPCA, KernelPCA

    return isinstance(step, (PCA, IncrementalPCA, KernelPCA))


def scaled_pca(steps: Steps, features_cfg: Optional[DictConfig]) -> Steps:
    """``steps`` with a StandardScaler right before each PCA that is not already preceded by a scaler.

    PCA keeps the directions of largest variance, so an unscaled column (an ordinal code, a
    target-encoded category, an amount in dollars) would take the components by its units alone.
    ``features.<option>.scale: false`` leaves a PCA unscaled.
    """
    from sklearn.preprocessing import StandardScaler

    out: Steps = []
    for name, step in steps:
        option = (features_cfg or {}).get(name) if features_cfg is not None else None
        wanted = option is None or not hasattr(option, "get") or option.get("scale", True)
        if is_pca(step) and wanted and not (out and _is_scaler(out[-1][1])):
            log.info("features.%s: a StandardScaler runs right before PCA, so every column weighs the same "
                     "(features.%s.scale=false turns it off)", name, name)
            out.append((f"{name}_scale", StandardScaler()))
        out.append((name, step))
    return out


def check_no_sparse_pca(steps: Steps) -> None:
    """PCA cannot take the sparse matrix text features give; TruncatedSVD is the sparse counterpart."""
    pca = [name for name, step in steps if is_pca(step)]
    if pca:
        raise MlexpError(
            f"features.{pca[0]} (PCA) cannot take the sparse matrix that text features give (centering it would make "
            "it dense: gigabytes for a vocabulary). Use TruncatedSVD, PCA's counterpart for sparse input (latent "
            f"semantic analysis): replace {pca[0]} by truncated_svd, e.g. features=[ngrams,truncated_svd]."
        )


def label_columns(steps: Steps) -> Steps:
    """Every step but the last hands pandas frames to the next, so a step's errors and outputs name real
    columns (`mean radius`, `pca0`) instead of `column 0`. Steps that give sparse output are left alone."""
    for _, step in steps[:-1]:
        if hasattr(step, "set_output") and _dense(step):
            step.set_output(transform="pandas")
    return steps


def _dense(step: Any) -> bool:
    params = step.get_params(deep=False) if hasattr(step, "get_params") else {}
    if params.get("sparse_output") is True or params.get("sparse") is True:
        return False
    return not str(params.get("encode", "")).startswith("onehot") or params.get("encode") == "onehot-dense"


def _is_scaler(step: Any) -> bool:
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, PowerTransformer, RobustScaler, StandardScaler

    return isinstance(step, (StandardScaler, RobustScaler, MinMaxScaler, MaxAbsScaler, PowerTransformer))
