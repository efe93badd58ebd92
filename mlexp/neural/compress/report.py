"""compress.json as Markdown: one table of sizes, parameters, latency and metrics before and after."""

from typing import Any, Dict, List, Optional

__all__ = ["summary_lines", "headline"]


def summary_lines(content: Dict[str, Any]) -> List[str]:
    """The report section's lines for one compression (a table, then what changed in one sentence)."""
    distill = content["method"] == "distill"
    columns = [("before" if not distill else "teacher", content["before"]),
               ("after" if not distill else "student (distilled)", content["after"])]
    if distill:
        columns.append(("student (hard labels)", content["hard_labels"]))
    batch = content["after"]["latency_ms"]["batch_rows"]
    rows = [
        ("model", lambda d: d["model"]),
        ("weights file", lambda d: f"{d['model_file']}: {_bytes(d['model_bytes'])}"),
        ("all model files", lambda d: _bytes(d["files_bytes"])),
        ("parameters (tree nodes for trees)" if distill else "parameters", lambda d: _int(d.get("parameters"))),
        ("non-zero parameters", lambda d: _int(d.get("nonzero_parameters"))),
        ("predict, ms per row", lambda d: _ms(d["latency_ms"].get("predict_row"))),
        (f"predict, ms per batch of {batch}", lambda d: _ms(d["latency_ms"].get("predict_batch"))),
        ("forward pass, ms per row", lambda d: _ms(d["latency_ms"].get("forward_row"))),
        (f"forward pass, ms per batch of {batch}", lambda d: _ms(d["latency_ms"].get("forward_batch"))),
    ]
    rows += [(f"test {name}", (lambda n: lambda d: _num(d["metrics"].get(n)))(name)) for name in content["before"]["metrics"]]
    lines = ["| | " + " | ".join(name for name, _ in columns) + " |", "|---|" + "---:|" * len(columns)]
    lines += [f"| {label} | " + " | ".join(get(d) for _, d in columns) + " |" for label, get in rows]
    lines += ["", headline(content), ""]
    if content.get("info", {}).get("steps"):
        lines += ["| pruning step | target sparsity | sparsity reached | fine-tune loss |", "|---:|---:|---:|---:|"]
        lines += [f"| {i + 1} | {s['target']:.4f} | {s['sparsity']:.4f} | {_num(s['fine_tune_loss'])} |"
                  for i, s in enumerate(content["info"]["steps"])]
        lines.append("")
    lines.append("Latency: the model step alone on rows already through the preprocessing (median of "
                 f"{content['settings'].get('latency', {}).get('repeats', 30)} calls, {content.get('threads', 1)} torch "
                 "thread(s): model.n_jobs); predict = the estimator's "
                 "predict_proba/predict, forward pass = the torch module.")
    return lines


def headline(content: Dict[str, Any]) -> str:
    """One sentence: how much smaller, how much faster, what it cost in the objective's terms."""
    change = content["change"]
    parts = []
    if change.get("size_ratio"):
        what = "all model files" if change["size_measured_on"] == "files_bytes" else "weights file"
        parts.append(f"{what} {change['size_ratio']:.2f}x smaller")
    speed = change.get("forward_batch_speedup") or change.get("predict_batch_speedup")
    if speed:
        parts.append(f"batch latency {speed:.2f}x {'faster' if speed >= 1 else 'slower'}")
    metric = (content.get("objective") or {}).get("metric")
    delta = change["metrics"].get(metric) if metric else None
    if delta is not None:
        parts.append(f"test {metric} {delta:+.4f}")
    gain = (content.get("distillation_gain") or {}).get(metric) if metric else None
    if gain is not None:
        parts.append(f"distilled student vs hard-label student: {metric} {gain:+.4f}")
    return (content["method"].capitalize() + ": " + ", ".join(parts) + ".") if parts else ""


def _bytes(value: Optional[int]) -> str:
    if value is None:
        return ""
    return f"{value / 1024:.1f} KiB" if value < 1024 ** 2 else f"{value / 1024 ** 2:.2f} MiB"


def _int(value: Optional[int]) -> str:
    return "" if value is None else f"{value:,}"


def _ms(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.3f}"


def _num(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.4f}"
