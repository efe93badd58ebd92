"""The console summary a run ends with: CV mean +/- std per metric, test scores, where the files are."""

from pathlib import Path
from typing import Any, Dict

from omegaconf import DictConfig

__all__ = ["print_summary", "format_summary"]


def format_summary(metrics: Dict[str, Any], run_dir: Path, cfg: DictConfig) -> str:
    choices = " ".join(f"{group}={option}" for group, option in _choices(cfg).items())
    lines = [
        "",
        f"mlexp  {choices}",
        f"{'metric':<10} {'cv mean':>9} {'± std':>8} {'test':>9}",
        "-" * 39,
    ]
    for name, stats in metrics["cv"].items():
        test = metrics["test"].get(name)
        lines.append(f"{name:<10} {_num(stats['mean']):>9} {_num(stats['std']):>8} {_num(test):>9}")
    lines += [
        "-" * 39,
        f"objective  {metrics['objective_metric']} ({metrics['direction']}) = {metrics['objective']:.4f}",
        f"time {metrics['timings']['total_seconds']:.2f}s   est. cost ${metrics['estimated_cost_usd']:.6f}",
        f"outputs    {run_dir}",
    ]
    return "\n".join(lines)


def print_summary(metrics: Dict[str, Any], run_dir: Path, cfg: DictConfig) -> None:
    print(format_summary(metrics, run_dir, cfg), flush=True)


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _choices(cfg: DictConfig) -> Dict[str, str]:
    """The selected option of each group (Hydra's runtime choices), or class names outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    groups = ("data", "encoder", "features", "sampler", "splitter", "model", "instance")
    if HydraConfig.initialized():
        chosen = HydraConfig.get().runtime.choices
        return {g: str(chosen.get(g)) for g in groups if chosen.get(g) is not None}
    return {"data": cfg.data.name, "model": str(cfg.model.get("_target_", "?")).rsplit(".", 1)[-1]}
