"""A saved run as a starting point (compress.from, incremental.from): its fitted model, card, config and data split."""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError

__all__ = ["SavedRun", "load_run", "load_run_data", "split_rows", "preprocessor", "as_matrix", "training_target"]

log = logging.getLogger("mlexp")


@dataclass
class SavedRun:
    """A run directory's fitted pipeline (preprocessing + model), its model card, config and lineage."""

    directory: Path
    model: Any
    card: Dict[str, Any]
    cfg: Optional[DictConfig]
    lineage: Dict[str, Any] = field(default_factory=dict)

    @property
    def estimator(self) -> Any:
        return self.model.steps[-1][1]


def load_run(directory: Any, key: str) -> SavedRun:
    """Load the run at ``directory`` (``key`` names the option that pointed at it, for messages)."""
    from hydra.utils import to_absolute_path

    from mlexp.artifacts import load_model

    path = Path(to_absolute_path(str(directory)))
    if not path.is_dir():
        raise MlexpError(f"{key}={directory}: no such directory. Point it at a train run's directory "
                         "(outputs/<date>/<time>, holding model.skops).")
    if not (path / "model.skops").is_file():
        raise MlexpError(f"{key}={directory} holds no model.skops: point it at the directory of a train run made "
                         "with save_model=true.")
    model, card = load_model(path)
    config = path / ".hydra" / "config.yaml"
    if not config.is_file() and (path.parent / ".hydra" / "config.yaml").is_file() and path.name == "compressed":
        config = path.parent / ".hydra" / "config.yaml"  # a train run's compressed/ model: that run's config
    cfg = OmegaConf.load(config) if config.is_file() else None
    lineage_file = path / "lineage.json"
    lineage = json.loads(lineage_file.read_text()) if lineage_file.is_file() else {}
    return SavedRun(path, model, card, cfg, lineage)


def load_run_data(saved: SavedRun, key: str) -> Tuple[Any, np.ndarray, np.ndarray]:
    """The saved run's data set and the same development / test rows it used (its data config, seed, test_size)."""
    from mlexp.data import load_dataset
    from mlexp.lineage import data_fingerprint

    if saved.cfg is None:
        raise MlexpError(f"{key}={saved.directory} has no .hydra/config.yaml, so the data it was trained on cannot "
                         "be loaded again. Use a run made by the mlexp command (Hydra writes .hydra/ in each run).")
    dataset = load_dataset(saved.cfg.data, task=saved.cfg.get("task", "auto"))
    recorded = (saved.lineage.get("data") or {}).get("sha256")
    if recorded and recorded != data_fingerprint(dataset.features, dataset.target)["sha256"]:
        log.warning("%s: the data of %s changed since that run (fingerprint differs): scores before and after "
                    "are both taken on the data as it is now", key, saved.directory)
    dev, test = split_rows(dataset, float(saved.cfg.get("test_size", 0.1)), int(saved.cfg.get("seed", 42)))
    return dataset, dev, test


def split_rows(dataset: Any, test_size: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """Development and test row positions exactly as a train run splits them (mlexp.experiment)."""
    from mlexp.evaluation.splitting import split_test

    if dataset.fixed_test is not None:
        return np.flatnonzero(~dataset.fixed_test), np.flatnonzero(dataset.fixed_test)
    return split_test(dataset.target.to_numpy(), dataset.task, test_size, seed)


def preprocessor(pipeline: Any) -> Any:
    """The pipeline's steps before the model, without a sampler (rows must stay lined up with their labels)."""
    from imblearn.pipeline import Pipeline

    steps = [(name, step) for name, step in pipeline.steps[:-1] if name != "sampler"]
    return Pipeline(steps) if steps else None


def as_matrix(preprocess: Any, X: Any) -> Any:
    """Rows through the (fitted) preprocessing steps as a dense float32 tensor, the model's input."""
    import torch

    out = X if preprocess is None else preprocess.transform(X)
    if hasattr(out, "toarray"):
        out = out.toarray()
    return torch.as_tensor(np.asarray(out, dtype=np.float32))


def training_target(y: Any, net: Any, task: str) -> Any:
    """Targets as the net's loss takes them: class numbers, or the regression target standardized as the net was."""
    import torch

    if task == "classification":
        return torch.as_tensor(np.asarray(y, dtype=np.int64))
    scaled = (np.asarray(y, dtype=np.float32) - net.y_mean_) / net.y_scale_
    return torch.as_tensor(scaled.reshape(-1, 1), dtype=torch.float32)
