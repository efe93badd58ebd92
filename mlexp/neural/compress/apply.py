"""Compress a fitted pipeline's model as a `compress` option says; measure it before and after; save the result."""

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError

__all__ = ["Source", "compress", "COMPRESS_JSON"]

log = logging.getLogger("mlexp")

COMPRESS_JSON = "compress.json"


@dataclass
class Source:
    """A fitted model and what it was trained and tested on: the config it was trained with (optimizer,
    seed), its data set, development and test rows, the fitted pipeline and its model card."""

    cfg: DictConfig
    dataset: Any
    dev: np.ndarray
    test: np.ndarray
    model: Any
    card: Dict[str, Any]
    directory: Optional[Path] = None  # the saved run's directory (mode=compress)


def compress(settings: Dict[str, Any], source: Source, out_dir: Path, n_jobs: int) -> Dict[str, Any]:
    """Compress ``source.model``, save the compressed pipeline in ``out_dir``, return compress.json's content.

    Training and latency run on ``n_jobs`` torch threads (the model's ``n_jobs``): on small
    batches more threads only contend, and every model is timed with the same count.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n_jobs)))
    try:
        return _compress(settings, source, out_dir, n_jobs)
    finally:
        torch.set_num_threads(threads)


def _compress(settings: Dict[str, Any], source: Source, out_dir: Path, n_jobs: int) -> Dict[str, Any]:
    from imblearn.pipeline import Pipeline

    from mlexp.artifacts import save_model
    from mlexp.neural import is_torch_estimator
    from mlexp.neural._build import optimizer_settings
    from mlexp.neural.compress.measure import describe
    from mlexp.neural.continual.source import as_matrix, preprocessor

    method, task = settings["method"], source.dataset.task
    estimator = source.model.steps[-1][1]
    if method != "distill" and not is_torch_estimator(estimator):
        raise MlexpError(f"compress={method} works on PyTorch models, and this model is a {type(estimator).__name__}. "
                         "Use a run with model=mlp or model=torch_linear, or compress=distill to teach a small MLP "
                         "from it.")
    if getattr(estimator, "compression_", None):
        raise MlexpError(f"this model is already compressed ({estimator.compression_}); compress the run it came from.")
    if len(source.test) == 0:
        raise MlexpError("compression is scored on the test split, and test_size=0 leaves none. Use test_size > 0.")
    features, target = source.dataset.features, source.dataset.target.to_numpy()
    X_dev, y_dev = features.iloc[source.dev], target[source.dev]
    X_test, y_test = features.iloc[source.test], target[source.test]
    n_classes = len(source.card["classes"]) if task == "classification" else None
    latency = settings.get("latency") or {}

    def measure(pipeline: Any, directory: Optional[Path] = None) -> Dict[str, Any]:
        return describe(pipeline, source.card, X_test, y_test, task, n_classes, latency, directory)

    before = measure(source.model)
    preprocess = preprocessor(source.model)
    X = as_matrix(preprocess, X_dev)
    optimizer = optimizer_settings(source.cfg.get("optimizer"))
    seed = int(source.cfg.get("seed", 42))
    content: Dict[str, Any] = {"method": method, "settings": settings, "threads": int(n_jobs),
                               "source": str(source.directory) if source.directory else None}
    if method == "distill":
        from mlexp.neural.compress.distill import distill

        student = _new_student(settings["student"], task, X.shape[1], n_classes, y_dev, source.cfg, seed, n_jobs)
        student, twin, info = distill(source.model, student, X_dev, X, y_dev, settings, optimizer,
                                      int(settings["student"]["max_epochs"]), seed, task)
        compressed = Pipeline([*(preprocess.steps if preprocess else []), ("model", student)])
        content["hard_labels"] = measure(Pipeline([*(preprocess.steps if preprocess else []), ("model", twin)]))
    else:
        net = copy.deepcopy(estimator)
        info = _quantize(net, settings, X) if method == "quantize" else _prune(net, settings, X, y_dev, optimizer, seed, task)
        compressed = Pipeline([*source.model.steps[:-1], ("model", net)])
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(compressed, out_dir, source.card)
    after = measure(compressed, out_dir)
    content.update(info=info, before=before, after=after, change=_change(before, after, method))
    if "hard_labels" in content:
        content["distillation_gain"] = {k: _delta(after["metrics"].get(k), content["hard_labels"]["metrics"].get(k))
                                        for k in after["metrics"]}
    return content


def _quantize(net: Any, settings: Dict[str, Any], X: Any) -> Dict[str, Any]:
    from mlexp.neural.compress.storage import quantize_structure

    compression = {"quantized": settings["approach"], "backend": settings.get("backend", "x86")}
    calibration = X[: int(settings.get("calibration_rows", 1000))] if settings["approach"] == "static" else None
    try:
        net.module_ = quantize_structure(net.module_, compression, calibration)
        net.module_(X[:2])  # an activation without a quantized kernel fails here, not in the endpoint
    except (RuntimeError, NotImplementedError) as err:
        raise MlexpError(f"static int8 quantization failed on this network ({str(err).splitlines()[0]}). Static "
                         "quantization covers Linear layers with relu activations; use compress.approach=dynamic.") from err
    net.compression_ = compression
    return compression


def _prune(net: Any, settings: Dict[str, Any], X: Any, y: np.ndarray, optimizer: Dict[str, Any], seed: int,
           task: str) -> Dict[str, Any]:
    from mlexp.neural.compress.prune import prune_net
    from mlexp.neural.continual.loop import Trainer
    from mlexp.neural.continual.source import training_target

    epochs = int(settings.get("fine_tune_epochs", 0))
    tuning = dict(optimizer, **({"lr": float(settings["fine_tune_lr"])} if settings.get("fine_tune_lr") else {}))
    target = training_target(y, net, task)

    def fine_tune(step: int) -> List[float]:
        if epochs == 0:
            return []
        return Trainer(net.module_, net.criterion_, tuning, epochs, seed=seed + step, task=task).fit(X, target)

    info = prune_net(net, settings, fine_tune)
    net.compression_ = {"pruned": settings["pruning_method"]["_target_"].rsplit(".", 1)[-1],
                        "sparsity": settings["sparsity"],
                        # Zeros spread over the weights are stored as CSR; a structured pruning left a smaller dense net.
                        "sparse": "hidden_sizes" not in info}
    return info


def _new_student(node: Dict[str, Any], task: str, n_features: int, n_classes: Optional[int], y: np.ndarray,
                 cfg: DictConfig, seed: int, n_jobs: int) -> Any:
    import torch

    from mlexp.neural._build import build_torch_model

    student = build_torch_model(OmegaConf.create(node), task, n_jobs=n_jobs,
                                context={"seed": seed, "device": "cpu", "cfg": cfg})
    n_outputs = max(2, n_classes) if task == "classification" else 1
    student.set_params(module__n_features=int(n_features), module__n_outputs=n_outputs)
    if task == "classification":
        student.set_params(classes=list(range(n_outputs)))
    torch.manual_seed(seed)
    student.initialize()
    if task == "regression":
        student.y_mean_, student.y_scale_ = float(np.mean(y)), float(np.std(y)) or 1.0
    return student


def _change(before: Dict[str, Any], after: Dict[str, Any], method: str) -> Dict[str, Any]:
    """Ratios (before / after: >1 means smaller or faster) and metric differences (after - before)."""
    size_key = "files_bytes" if method == "distill" else "model_bytes"
    out = {"size_ratio": _ratio(before.get(size_key), after.get(size_key)), "size_measured_on": size_key,
           "nonzero_parameters_ratio": _ratio(before.get("nonzero_parameters"), after.get("nonzero_parameters"))}
    for key in ("predict_row", "predict_batch", "forward_row", "forward_batch"):
        out[f"{key}_speedup"] = _ratio(before["latency_ms"].get(key), after["latency_ms"].get(key))
    out["metrics"] = {k: _delta(after["metrics"].get(k), v) for k, v in before["metrics"].items()}
    return out


def _ratio(a: Any, b: Any) -> Optional[float]:
    return round(a / b, 4) if a and b else None


def _delta(a: Any, b: Any) -> Optional[float]:
    return None if a is None or b is None else round(a - b, 6)
