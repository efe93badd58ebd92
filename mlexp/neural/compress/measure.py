"""What a compression is judged on: file sizes, parameters (non-zero), latency per row and per batch, every metric."""

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

__all__ = ["describe", "count_parameters", "sklearn_parameters", "model_files"]

MODEL_FILES = ("model.skops", "model.pt", "model_torch.json", "model.json")


def describe(pipeline: Any, card: Dict[str, Any], X_test: Any, y_test: np.ndarray, task: str,
             n_classes: Optional[int], latency: Dict[str, Any], directory: Optional[Path] = None) -> Dict[str, Any]:
    """Measure a fitted pipeline. Its files are those in ``directory`` (saved there before), else it is
    saved to a temporary directory just to weigh the files. Latency is the model step's alone, on rows
    already through the preprocessing (the same for every compression of a model)."""
    from mlexp.artifacts import save_model
    from mlexp.evaluation.metrics import score
    from mlexp.neural import is_torch_estimator
    from mlexp.neural.continual.source import as_matrix, preprocessor

    if directory is None:
        with tempfile.TemporaryDirectory(prefix="mlexp-size-") as temporary:
            save_model(pipeline, Path(temporary), card)
            sizes = model_files(Path(temporary))
    else:
        sizes = model_files(Path(directory))
    estimator = pipeline.steps[-1][1]
    rows = as_matrix(preprocessor(pipeline), X_test).numpy()
    out: Dict[str, Any] = {
        "model": type(estimator).__name__,
        **sizes,
        "metrics": score(pipeline, X_test, y_test, task, n_classes),
    }
    batch, repeats = int(latency.get("batch_rows", 1000)), int(latency.get("repeats", 30))
    predict = estimator.predict_proba if task == "classification" and hasattr(estimator, "predict_proba") else estimator.predict
    out["latency_ms"] = {"batch_rows": min(batch, len(rows)), **_timings(predict, rows, batch, repeats, "predict")}
    if is_torch_estimator(estimator):
        import torch

        module = estimator.module_
        total, nonzero = count_parameters(module)
        out.update(parameters=total, nonzero_parameters=nonzero,
                   sparsity=round(1 - nonzero / total, 6) if total else None, module=_describe_module(module))
        tensor = torch.as_tensor(rows)

        def forward(x: Any) -> Any:
            with torch.inference_mode():
                return module(x)

        out["latency_ms"].update(_timings(forward, tensor, batch, repeats, "forward"))
    else:
        total, nonzero = sklearn_parameters(estimator)
        out.update(parameters=total, nonzero_parameters=nonzero,
                   sparsity=round(1 - nonzero / total, 6) if total else None)
    return out


def sklearn_parameters(estimator: Any) -> Tuple[Optional[int], Optional[int]]:
    """(all, non-zero) learnt numbers of a scikit-learn model: coefficients and intercepts, tree nodes (each a
    split or a leaf), summed over an ensemble's members; (None, None) when there is nothing to count."""
    tree = getattr(estimator, "tree_", None)
    if tree is not None:
        return int(tree.node_count), int(tree.node_count)
    predictors = getattr(estimator, "_predictors", None)  # HistGradientBoosting keeps its trees here
    if predictors is not None:
        nodes = sum(len(tree.nodes) for trees in predictors for tree in trees)
        return nodes, nodes
    counts = []
    for name in ("coef_", "intercept_"):
        value = getattr(estimator, name, None)
        if value is not None:
            array = np.asarray(value)
            counts.append((array.size, int(np.count_nonzero(array))))
    members = getattr(estimator, "estimators_", None)
    members = list(members.ravel()) if isinstance(members, np.ndarray) else list(members or [])
    final = getattr(estimator, "final_estimator_", None)
    for member in members + ([final] if final is not None else []):
        if hasattr(member, "fit") and not isinstance(member, str):
            counts.append(sklearn_parameters(member))
    counts = [c for c in counts if c[0] is not None]
    if not counts:
        return None, None
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def model_files(directory: Path) -> Dict[str, Any]:
    """Bytes of the model's weights (model.pt, else model.skops) and of all its files together."""
    sizes = {name: (directory / name).stat().st_size for name in MODEL_FILES if (directory / name).is_file()}
    weights = sizes.get("model.pt", sizes.get("model.skops"))
    return {"model_file": "model.pt" if "model.pt" in sizes else "model.skops", "model_bytes": weights,
            "files_bytes": sum(sizes.values()), "files": sizes}


def count_parameters(module: Any) -> Tuple[int, int]:
    """(all, non-zero) weights and biases, quantized layers included (their int8 weights dequantized)."""
    total = nonzero = 0
    for layer in module.modules():
        weight = getattr(layer, "weight", None)
        if callable(weight) and not hasattr(weight, "shape"):  # quantized Linear: weight() and bias() are methods
            tensors = [weight().dequantize(), layer.bias()]
        else:
            tensors = [p.detach() for p in layer.parameters(recurse=False)]
        for tensor in tensors:
            if tensor is not None:
                total += tensor.numel()
                nonzero += int(tensor.count_nonzero())
    return total, nonzero


def _timings(call: Callable[[Any], Any], rows: Any, batch: int, repeats: int, prefix: str) -> Dict[str, float]:
    """Median milliseconds of one row and of one batch of ``batch`` rows (after two warm-up calls)."""
    batch_rows = rows[: max(1, min(batch, len(rows)))]
    for _ in range(2):
        call(rows[:1])
        call(batch_rows)
    per_row, per_batch = [], []
    for i in range(repeats):
        j = i % len(rows)
        start = time.perf_counter()
        call(rows[j:j + 1])
        per_row.append(time.perf_counter() - start)
    for _ in range(max(3, repeats // 3)):
        start = time.perf_counter()
        call(batch_rows)
        per_batch.append(time.perf_counter() - start)
    return {f"{prefix}_row": round(1000 * statistics.median(per_row), 4),
            f"{prefix}_batch": round(1000 * statistics.median(per_batch), 4)}


def _describe_module(module: Any) -> str:
    """Layer types and widths in one line, e.g. 'DynamicQuantizedLinear(35->256), ReLU, ...'."""
    if hasattr(module, "in_features"):  # a layer, quantized ones included (they hold packed-weight children)
        return f"{module._get_name()}({module.in_features}->{module.out_features})"
    children = list(module.children())
    if not children:
        return module._get_name()
    return ", ".join(_describe_module(child) for child in children)
