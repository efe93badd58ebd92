"""One experiment, start to finish: `run(cfg)` is what the CLI calls and what notebooks and tests call."""

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError

__all__ = ["run", "run_train", "RunResult"]

log = logging.getLogger("mlexp")


@dataclass
class RunResult:
    objective: float
    metric: str
    direction: str
    metrics: Dict[str, Any]
    lineage: Dict[str, Any]
    model: Any
    run_dir: Path


def run_train(cfg: DictConfig) -> float:
    """`mode=train`: run the experiment in Hydra's run directory; the objective goes back to the sweeper."""
    return run(cfg).objective


def run(cfg: DictConfig, run_dir: Optional[Path] = None, reporter: Any = None) -> RunResult:
    """Cross-validate the composed experiment, fit on all development rows, score the test split once.

    Writes metrics.json, lineage.json and model.skops (+ model.json) to ``run_dir``
    (Hydra's run directory by default) and returns the objective with everything written.
    """
    from mlexp import lineage as lin
    from mlexp.instance import resolve_resources

    run_dir = Path(run_dir) if run_dir is not None else _hydra_run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    started, t0 = lin.now_iso(), time.perf_counter()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    resources = resolve_resources(cfg.instance)
    lineage: Dict[str, Any] = {
        "status": "running",
        "started": started,
        "git": lin.git_state(Path(os.getcwd())),
        "config_hash": lin.config_hash(resolved),
        "overrides": _hydra_overrides(),
        "instance": {**resources.profile, "n_jobs": resources.n_jobs, "device": resources.device,
                     "cpu_fallback": resources.fallback},
        "packages": lin.package_versions(),
    }
    _write_json(run_dir / "lineage.json", lineage)
    try:
        return _run(cfg, run_dir, reporter, lineage, resources, t0)
    except BaseException as err:
        # Keep the record of what was attempted: the run directory says why it stopped.
        lineage.update(status="failed", finished=lin.now_iso(), error=f"{type(err).__name__}: {err}")
        _write_json(run_dir / "lineage.json", lineage)
        raise


def _run(cfg: DictConfig, run_dir: Path, reporter: Any, lineage: Dict[str, Any], resources: Any, t0: float) -> RunResult:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from mlexp import lineage as lin
    from mlexp.artifacts import save_model
    from mlexp.data import load_dataset
    from mlexp.evaluation import check_missing_values, cross_validate, fit_and_test
    from mlexp.instance import estimated_cost
    from mlexp.evaluation.metrics import resolve_objective
    from mlexp.models import build_estimator, member_cv
    from mlexp.pipeline import build_pipeline
    from mlexp.posttrain import TrainedRun, check_steps, load_steps, run_steps
    from mlexp.evaluation.splitting import split_test
    from mlexp.reporting.summary import print_summary

    timings: Dict[str, float] = {}
    with threadpool_limits(limits=resources.n_jobs):
        step = time.perf_counter()
        dataset = load_dataset(cfg.data, task=cfg.task)
        timings["load_seconds"] = time.perf_counter() - step
        task = dataset.task
        lineage["data"] = {"name": dataset.name, "task": task, "roles": dataset.roles.as_dict(),
                           "classes": dataset.class_names, **lin.data_fingerprint(dataset.features, dataset.target)}
        metric, direction = resolve_objective(cfg.objective.metric, cfg.objective.direction, task)
        steps = load_steps(cfg)  # bias, explanations, baseline...: checked now, run after the final fit
        check_steps(steps, cfg, dataset)
        reporter = reporter or _reporter_for(cfg, metric, direction)
        n_classes = len(dataset.class_names) if dataset.class_names else None

        if dataset.fixed_test is not None:  # the data set's own test split (data.split_column)
            dev, test = np.flatnonzero(~dataset.fixed_test), np.flatnonzero(dataset.fixed_test)
        else:
            dev, test = split_test(dataset.target.to_numpy(), task, cfg.test_size, cfg.seed)
        X_dev, y_dev = dataset.features.iloc[dev], dataset.target.iloc[dev]
        X_test, y_test = dataset.features.iloc[test], dataset.target.iloc[test]
        context = {"seed": cfg.seed, "device": resources.device, "reporter": reporter, "cfg": cfg}
        model = build_estimator(cfg, task, n_jobs=resources.n_jobs, context=context)
        pipeline = build_pipeline(cfg, dataset.roles, dataset.features, task, model)
        check_missing_values(pipeline, dataset.features)
        splitter = _build_splitter(cfg.splitter, task)
        log.info("rows: %d development, %d test; %s, %s", len(dev), len(test), type(splitter).__name__, task)

        step = time.perf_counter()
        cv = cross_validate(pipeline, X_dev, y_dev, splitter, task, n_classes, reporter)
        timings["cv_seconds"] = time.perf_counter() - step
        step = time.perf_counter()  # ensembles: each member alone on the same folds and features
        members = member_cv(cfg, pipeline, X_dev, y_dev, splitter, task, n_classes)
        if members is not None:
            timings["member_cv_seconds"] = time.perf_counter() - step
        fitted, test_scores, final_fit, test_predictions = fit_and_test(
            pipeline, X_dev, y_dev, X_test, y_test, task, n_classes)
        timings["final_fit_seconds"] = final_fit

    cv_summary = cv.summary()
    objective = cv_summary[metric]["mean"]
    if objective is None:
        raise MlexpError(f"objective metric {metric} could not be computed for this model; set objective.metric.")
    if reporter.epochs:  # PyTorch models report per epoch: training curves (CSV + PNG) per run
        from mlexp.neural import write_training_curves

        write_training_curves(reporter.epochs, run_dir, metric)
    if cfg.save_model:
        step = time.perf_counter()
        save_model(fitted, run_dir, {
            "task": task, "target": cfg.data.target, "classes": dataset.class_names,
            "features": list(dataset.features.columns), "roles": dataset.roles.as_dict(),
            "objective": {"metric": metric, "direction": direction},
        })
        timings["save_seconds"] = time.perf_counter() - step
    trained = TrainedRun(cfg=cfg, run_dir=run_dir, dataset=dataset, dev=dev, test=test, pipeline=pipeline,
                         model=fitted, splitter=splitter, cv=cv, test_predictions=test_predictions,
                         metrics={"cv": cv_summary, "test": test_scores or {}}, reporter=reporter)
    with threadpool_limits(limits=resources.n_jobs):
        sections = run_steps(steps, trained, timings)
    timings["fold_fit_seconds"] = cv.fit_seconds
    timings["total_seconds"] = time.perf_counter() - t0
    metrics = {
        "objective": objective,
        "objective_metric": metric,
        "direction": direction,
        "cv": cv_summary,
        **({"cv_train": cv.train_summary()} if cv.train_folds else {}),  # scores on (capped) training folds
        **({"members": members} if members is not None else {}),
        "test": test_scores or {},
        "timings": timings,
        "estimated_cost_usd": estimated_cost(resources.profile.get("price_per_hour"), timings["total_seconds"]),
    }
    _write_json(run_dir / "metrics.json", metrics)
    lineage.update(status="completed", finished=lin.now_iso(), estimated_cost_usd=metrics["estimated_cost_usd"])
    _write_json(run_dir / "lineage.json", lineage)
    if cfg.get("report", True):  # report.md + plots/ from the kept predictions (docs/reports.md)
        from mlexp.reporting.report import write_report

        write_report(run_dir, metrics, cv, test_predictions, dataset.class_names,
                     title=" ".join(lineage["overrides"]), sections=sections)
    if cfg.get("tracking") and cfg.tracking.get("_target_"):  # tracking=mlflow|tensorboard (docs/tracking.md)
        from mlexp.tracking import track_run

        track_run(cfg, run_dir, metrics, reporter.epochs)
    print_summary(metrics, run_dir, cfg)
    return RunResult(objective, metric, direction, metrics, lineage, fitted, run_dir)


def _reporter_for(cfg: DictConfig, metric: str, direction: str) -> Any:
    """The plain Reporter, or, when the tuner runs this job as a trial, one bound to that Optuna trial."""
    from mlexp.tuning import job_trial

    if job_trial(cfg):
        from mlexp.tuning import trial_reporter

        return trial_reporter(cfg, metric, direction)
    from mlexp.reporting import Reporter

    return Reporter(metric, direction)


def _build_splitter(splitter_cfg: DictConfig, task: str) -> Any:
    from hydra.utils import instantiate

    target = splitter_cfg.get("_target_", "")
    if "Stratified" in target and task != "classification":
        raise MlexpError(
            f"splitter {target} stratifies by class, but the task is {task}. Use splitter=kfold or splitter=holdout."
        )
    log.info("splitter: %s", target)
    try:
        return instantiate(splitter_cfg)
    except Exception as err:
        raise MlexpError(f"splitter ({target}) could not be built: {getattr(err, '__cause__', None) or err}") from err


def _hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    raise MlexpError("run(cfg) outside the mlexp entrypoint needs run_dir=<a directory for the outputs>.")


def _hydra_overrides() -> list:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _write_json(path: Path, content: Dict[str, Any]) -> None:
    # Written to a temporary name and renamed, so a crash never leaves half a file.
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(content, indent=2, default=str))
    temporary.replace(path)
