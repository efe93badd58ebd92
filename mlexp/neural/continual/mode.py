"""`mode=incremental`: warm-start a saved PyTorch model on new data, or learn tasks in sequence, with a continual strategy."""

import copy
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError

__all__ = ["run_incremental"]

log = logging.getLogger("mlexp")

ERRORS = ("rmse", "mae", "log_loss")


def run_incremental(cfg: DictConfig, run_dir: Optional[Path] = None) -> float:
    """Train through the experiences; write continual.json, the matrix and its plot, report.md, the model.

    Returns the average score over all tasks after the last one (the sweepers' objective).
    """
    from threadpoolctl import threadpool_limits

    from mlexp.instance import resolve_resources
    from mlexp.runrecord import recorded_run

    resources = resolve_resources(cfg.instance)
    with recorded_run(cfg, run_dir) as record, threadpool_limits(limits=resources.n_jobs):
        return _run(cfg, record, resources.n_jobs)


def _run(cfg: DictConfig, record: Any, n_jobs: int) -> float:
    import torch

    from mlexp.artifacts import save_model
    from mlexp.data import load_dataset
    from mlexp.lineage import data_fingerprint
    from mlexp.neural._build import optimizer_settings
    from mlexp.neural.continual.loop import Trainer
    from mlexp.neural.continual.metrics import transfer_metrics
    from mlexp.runrecord import write_json
    from mlexp.neural.continual.report import write_continual_report
    from mlexp.neural.continual.source import split_rows, training_target
    from mlexp.neural.continual.start import build_strategy, fresh_model, warm_start
    from mlexp.neural.continual.tasks import make_tasks

    settings = cfg.get("continual") or OmegaConf.create({})
    strategy = build_strategy(settings.get("strategy"))
    epochs = settings.get("epochs", 10)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise MlexpError(f"continual.epochs={epochs!r}: use a positive number of passes over each task's rows.")
    source = (cfg.get("incremental") or {}).get("from")
    dataset = load_dataset(cfg.data, task=cfg.task)
    record.lineage["data"] = {"name": dataset.name, "task": dataset.task,
                              **data_fingerprint(dataset.features, dataset.target)}
    record.lineage["source"] = str(source) if source is not None else None
    task, metric = dataset.task, _metric(settings.get("metric", "auto"), dataset.task)
    dev, test = split_rows(dataset, cfg.test_size, cfg.seed)
    spec = settings.get("tasks")
    tasks = make_tasks(OmegaConf.to_container(spec, resolve=True) if spec is not None else {}, dataset, dev, test)
    if source is not None:
        net, preprocess, card, experiences = warm_start(source, dataset, tasks, strategy)
        torch.set_num_threads(n_jobs)
    else:
        net, preprocess, card, experiences = fresh_model(cfg, dataset, tasks, n_jobs)
    card["objective"] = {"metric": metric, "direction": _direction(metric)}
    strategy.check([len(e.X) for e in experiences], task)
    n_classes = len(card["classes"]) if task == "classification" else None
    trainer = Trainer(net.module_, net.criterion_, optimizer_settings(cfg.get("optimizer")), epochs,
                      seed=int(cfg.seed), plugins=[strategy], task=task)
    baseline = _random_init_scores(net, experiences, task, n_classes, metric, int(cfg.seed))
    matrix: List[List[float]] = []
    cells: List[List[Optional[Dict[str, Any]]]] = []
    losses: List[List[float]] = []
    for i, experience in enumerate(experiences):
        target = training_target(experience.y, net, task)
        if experience.trained_before:  # learnt by the saved run: the strategy only takes note of it
            trainer.X, trainer.y, trainer.experience = experience.X, target, i
            strategy.after_experience(trainer)
            losses.append([])
        else:
            log.info("continual: experience %d/%d (%s): %d rows, strategy %s", i + 1, len(experiences),
                     experience.name, len(experience.X), strategy.name)
            losses.append(trainer.fit(experience.X, target, i))
        scores = [_score(net, e.X_test, e.y_test, task, n_classes) for e in experiences]
        cells.append(scores)
        matrix.append([_value(s, metric) for s in scores])
    summary = transfer_metrics(matrix, baseline)
    if cfg.get("save_model", True):
        save_model(_pipeline(preprocess, net), record.run_dir, card)
    final = _score(net, np.concatenate([e.X_test for e in experiences]),
                   np.concatenate([e.y_test for e in experiences]), task, n_classes)
    content = {
        "strategy": {"name": strategy.name, **_node(settings.get("strategy")), **strategy.summary()},
        "source": str(source) if source is not None else None,
        "epochs": epochs,
        "metric": metric,
        "tasks": [{"name": e.name, "train_rows": len(e.X), "test_rows": len(e.X_test),
                   "trained_before": e.trained_before} for e in experiences],
        "matrix": matrix,
        "random_init": baseline,
        **summary,
        "scores": cells,
        "final_test": final,
        "train_loss": losses,
    }
    write_continual_report(record.run_dir, content, title=" ".join(record.lineage["overrides"]))
    objective = summary["average"]
    write_json(record.run_dir / "metrics.json", {
        "objective": objective, "objective_metric": metric, "direction": _direction(metric),
        "continual": {k: summary[k] for k in ("average", "backward_transfer", "forward_transfer", "forgetting")},
        "test": final or {},
        "timings": {"total_seconds": record.seconds()},
    })
    print(f"continual ({strategy.name}): average {metric} {_fmt(objective)}, backward transfer "
          f"{_fmt(summary['backward_transfer'])}, forward transfer {_fmt(summary['forward_transfer'])}\n"
          f"run directory: {record.run_dir}")
    return objective


def _metric(metric: str, task: str) -> str:
    from mlexp.evaluation.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

    if metric == "auto":
        return "accuracy" if task == "classification" else "r2"
    names = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if metric not in names:
        raise MlexpError(f"continual.metric={metric!r} is not a {task} metric; use auto or one of {', '.join(names)}.")
    return metric


def _direction(metric: str) -> str:
    return "minimize" if metric in ERRORS else "maximize"


def _score(net: Any, X: Any, y: np.ndarray, task: str, n_classes: Optional[int]) -> Optional[Dict[str, Any]]:
    from mlexp.evaluation.metrics import score

    if len(y) == 0:
        return None
    return score(net, X.numpy() if hasattr(X, "numpy") else X, np.asarray(y), task, n_classes)


def _value(scores: Optional[Dict[str, Any]], metric: str) -> float:
    value = None if scores is None else scores.get(metric)
    return float("nan") if value is None else float(value)


def _random_init_scores(net: Any, experiences: List[Any], task: str, n_classes: Optional[int], metric: str,
                        seed: int) -> List[float]:
    """Each task's score by the same architecture at a random initialisation (b_j of forward transfer)."""
    import torch

    fresh = copy.deepcopy(net)
    torch.manual_seed(seed)
    for layer in fresh.module_.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    return [_value(_score(fresh, e.X_test, e.y_test, task, n_classes), metric) for e in experiences]


def _pipeline(preprocess: Any, net: Any) -> Any:
    from imblearn.pipeline import Pipeline

    return Pipeline([*(preprocess.steps if preprocess is not None else []), ("model", net)])


def _node(node: Any) -> Dict[str, Any]:
    if node is None:
        return {}
    values = OmegaConf.to_container(node, resolve=True)
    values.pop("_target_", None)
    return values


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:+.4f}" if value < 0 else f"{value:.4f}"
