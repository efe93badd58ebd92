"""The console summary a run ends with: CV mean +/- std per metric, test scores, where the files are."""

from pathlib import Path
from typing import Any, Dict

from omegaconf import DictConfig

__all__ = ["print_summary", "format_summary"]


def format_summary(metrics: Dict[str, Any], run_dir: Path, cfg: DictConfig, model: Any = None) -> str:
    """The summary of a finished run; ``model`` (the fitted pipeline) tells whether an optimizer was used."""
    choices = " ".join(f"{group}={option}" for group, option in _choices(cfg, model).items())
    width = max([10, *(len(name) for name in metrics["cv"])])  # average_precision, balanced_accuracy
    rule = "-" * (width + 29)
    lines = [
        "",
        f"mlexp  {choices}",
        f"{'metric':<{width}} {'cv mean':>9} {'± std':>8} {'test':>9}",
        rule,
    ]
    for name, stats in metrics["cv"].items():
        test = metrics["test"].get(name)
        lines.append(f"{name:<{width}} {_num(stats['mean']):>9} {_num(stats['std']):>8} {_num(test):>9}")
    lines += _member_lines(metrics)
    lines += [
        rule,
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


def print_summary(metrics: Dict[str, Any], run_dir: Path, cfg: DictConfig, model: Any = None) -> None:
    print(format_summary(metrics, run_dir, cfg, model), flush=True)


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _choices(cfg: DictConfig, model: Any = None) -> Dict[str, str]:
    """The options this run was made of: Hydra's runtime choices, or names read from the config outside Hydra.

    The `model` option is left out where an ensemble of `members` does not use it (voting,
    stacking), and the `optimizer` shown only where a PyTorch model trained with it.
    """
    from hydra.core.hydra_config import HydraConfig

    chosen = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}

    def option(group: str) -> str:
        if chosen.get(group) is not None:
            return str(chosen.get(group))
        node = cfg.get(group)
        if group == "data":
            return str(node.name)
        target = node.get("_target_") if node is not None else None
        return str(target).rsplit(".", 1)[-1] if target else "none"

    shown = {"data": option("data"), "encoder": option("encoder"),
             # List-valued groups are not in Hydra's choices: the selected features from the config.
             "features": "[" + ",".join(cfg.get("features") or {}) + "]",
             "sampler": option("sampler"), "splitter": option("splitter"), "model": option("model")}
    ensemble = cfg.get("ensemble")
    if ensemble is not None and ensemble.get("_target_"):
        members = [m if isinstance(m, str) else next(iter(m)) for m in ensemble.get("members") or []]
        if members:  # voting, stacking: the members are the models; `model` is not used
            del shown["model"]
            shown["ensemble"] = f"{option('ensemble')}[{','.join(members)}]"
            if ensemble.get("meta"):
                shown["meta"] = str(ensemble.meta)
        else:  # bagging, boosting: copies of `model`
            shown["ensemble"] = option("ensemble")
    if model is not None and _trains_with_optimizer(model):
        shown["optimizer"] = option("optimizer")
    shown["instance"] = option("instance")
    return shown


def _trains_with_optimizer(model: Any) -> bool:
    from mlexp.neural import holds_torch_estimator  # by type name: no torch import

    return holds_torch_estimator(model)
