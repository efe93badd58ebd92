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
    lines += _member_lines(metrics)
    lines += [
        "-" * 39,
        f"objective  {metrics['objective_metric']} ({metrics['direction']}) = {metrics['objective']:.4f}",
        f"time {metrics['timings']['total_seconds']:.2f}s   est. cost ${metrics['estimated_cost_usd']:.6f}",
        f"outputs    {run_dir}",
    ]
    return "\n".join(lines)


def _member_lines(metrics: Dict[str, Any]) -> list:
    """An ensemble's members, each alone on the same folds, beside the ensemble's CV score."""
    members = metrics.get("members")
    if not members:
        return []
    metric = metrics["objective_metric"]
    ensemble = metrics["cv"][metric]
    lines = ["-" * 39, f"{'members':<20} {metric + ' cv':>9} {'± std':>8}"]
    for name, stats in members.items():
        lines.append(f"{name[:20]:<20} {_num(stats[metric]['mean']):>9} {_num(stats[metric]['std']):>8}")
    lines.append(f"{'(ensemble)':<20} {_num(ensemble['mean']):>9} {_num(ensemble['std']):>8}")
    return lines


def print_summary(metrics: Dict[str, Any], run_dir: Path, cfg: DictConfig) -> None:
    print(format_summary(metrics, run_dir, cfg), flush=True)


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _choices(cfg: DictConfig) -> Dict[str, str]:
    """The selected option of each group (Hydra's runtime choices), or class names outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    groups = ("data", "encoder", "features", "sampler", "splitter", "model", "ensemble", "instance")
    if HydraConfig.initialized():
        chosen = HydraConfig.get().runtime.choices
        shown = {g: str(chosen.get(g)) for g in groups if chosen.get(g) is not None}
        # List-valued groups are not in Hydra's choices: show the selected features from the config.
        shown["features"] = "[" + ",".join(cfg.get("features") or {}) + "]"
        return {g: v for g, v in shown.items() if not (g == "ensemble" and v == "none")}
    return {"data": cfg.data.name, "model": str(cfg.model.get("_target_", "?")).rsplit(".", 1)[-1]}
