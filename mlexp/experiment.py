"""One experiment, start to finish: `run(cfg)` is what the CLI calls and what notebooks and tests call."""

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import DictConfig

from mlexp.errors import MlexpError
from mlexp.runrecord import hydra_run_dir

__all__ = ["run", "run_train", "RunResult", "METRICS_FILE", "LINEAGE_FILE"]

log = logging.getLogger("mlexp")

METRICS_FILE = "metrics.json"
LINEAGE_FILE = "lineage.json"
# A stopped run's metrics, renamed so that no script takes them for a finished run's.
INCOMPLETE_METRICS_FILE = "metrics.incomplete.json"


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
    A ``run_dir`` given here is claimed as the CLI claims its own: never an earlier run's
    directory unless ``overwrite=true`` (mlexp.rundir).
    """
    from mlexp import rundir

    claimed = None
    if run_dir is None:
        run_dir = hydra_run_dir()  # claimed before Hydra wrote into it (rundir.RunDirCallback)
    else:
        claimed = run_dir = rundir.claim(Path(run_dir), overwrite=bool(cfg.get("overwrite", False)), key="run_dir")
    try:
        return _run_in(cfg, run_dir, reporter)
    finally:
        if claimed is not None:
            rundir.release(claimed)


def _run_in(cfg: DictConfig, run_dir: Path, reporter: Any) -> RunResult:
    """The run with its lineage record: written as it starts, closed however it ends."""
    from mlexp import lineage as lin
    from mlexp.instance import resolve_resources

    t0 = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    resources = resolve_resources(cfg.instance)
    data_path = lin.data_file(cfg.data)
    lineage = lin.start_record(cfg, inputs=[data_path] if data_path else [])
    lineage["instance"] = {**resources.profile, "n_jobs": resources.n_jobs, "device": resources.device,
                           "cpu_fallback": resources.fallback}
    lin.write_json(run_dir / LINEAGE_FILE, lineage)
    try:
        return _run(cfg, run_dir, reporter, lineage, resources, t0)
    except BaseException as err:
        # Keep the record of what was attempted: the run directory says why it stopped.
        if lineage["status"] != "completed":
            if isinstance(err, KeyboardInterrupt):
                _stopped(run_dir, lineage, "interrupted", "interrupted by the user (Ctrl-C, SIGINT)")
            else:
                _stopped(run_dir, lineage, "failed", f"{type(err).__name__}: {err}")
        raise


def _stopped(run_dir: Path, lineage: Dict[str, Any], status: str, error: str) -> None:
    """Record a run that did not complete; a metrics.json it already wrote must not pass for a finished run's."""
    from mlexp import lineage as lin

    metrics = run_dir / METRICS_FILE
    if lineage["status"] == "running" and metrics.is_file():
        metrics.replace(run_dir / INCOMPLETE_METRICS_FILE)
        lineage["metrics"] = INCOMPLETE_METRICS_FILE
    lin.write_json(run_dir / LINEAGE_FILE, lin.finish(lineage, status, error=error))


def _run(cfg: DictConfig, run_dir: Path, reporter: Any, lineage: Dict[str, Any], resources: Any, t0: float) -> RunResult:
    from threadpoolctl import threadpool_limits

    from mlexp import lineage as lin
    from mlexp.artifacts import save_model
    from mlexp.data import load_dataset
    from mlexp.evaluation import cross_validate, fit_and_test
    from mlexp.evaluation.checks import preflight
    from mlexp.instance import estimated_cost
    from mlexp.evaluation.metrics import resolve_objective
    from mlexp.models import build_estimator, member_cv
    from mlexp.pipeline import build_pipeline
    from mlexp.posttrain import TrainedRun, check_steps, load_steps, run_steps
    from mlexp.evaluation.splitting import data_needs, plan_splits
    from mlexp.reporting.summary import print_summary

    timings: Dict[str, float] = {}
    with threadpool_limits(limits=resources.n_jobs):
        step = time.perf_counter()
        data_path = lin.data_file(cfg.data)
        read = lin.file_fingerprint(data_path) if data_path and data_path.is_file() else None
        dataset = load_dataset(cfg.data, task=cfg.task, **data_needs(cfg.splitter))
        timings["load_seconds"] = time.perf_counter() - step
        task = dataset.task
        lineage["data"] = {"name": dataset.name, "task": task, "roles": dataset.roles.as_dict(),
                           "classes": dataset.class_names, **lin.data_fingerprint(dataset.features, dataset.target)}
        if read is not None:  # the file as read: changed while loading means the fingerprint is not of these rows
            lineage["data"]["file"] = {**read, "changed_while_read": lin.file_changed(read)}
            if lineage["data"]["file"]["changed_while_read"]:
                log.warning("data file %s changed while it was read; lineage.json records that", data_path)
        metric, direction = resolve_objective(cfg.objective.metric, cfg.objective.direction, task)
        splits = plan_splits(cfg.splitter, dataset, task, cfg.test_size, cfg.seed)  # test rows by class, group or time
        dev, test, splitter = splits.dev, splits.test, splits.splitter
        step = time.perf_counter()
        steps = load_steps(cfg)  # data checks, bias, explanations, baseline...: checked now, run after the final fit
        # On the development rows only: a check that reads labels (the one-column leak check) never sees the test's.
        check_steps(steps, cfg, replace(dataset, features=dataset.features.iloc[dev], target=dataset.target.iloc[dev]))
        timings["checks_seconds"] = time.perf_counter() - step
        reporter = reporter or _reporter_for(cfg, metric, direction)
        n_classes = len(dataset.class_names) if dataset.class_names else None

        weights = None if dataset.weights is None else dataset.weights.to_numpy()  # data.weight_column
        w_dev, w_test = (None, None) if weights is None else (weights[dev], weights[test])
        X_dev, y_dev = dataset.features.iloc[dev], dataset.target.iloc[dev]
        X_test, y_test = dataset.features.iloc[test], dataset.target.iloc[test]
        context = {"seed": cfg.seed, "device": resources.device, "reporter": reporter, "cfg": cfg}
        model = build_estimator(cfg, task, n_jobs=resources.n_jobs, context=context)
        pipeline = build_pipeline(cfg, dataset.roles, dataset.features, task, model, n_classes=n_classes)
        preflight(pipeline, dataset)
        log.info("rows: %d development, %d test; %s, %s", len(dev), len(test), type(splitter).__name__, task)

        step = time.perf_counter()
        cv = cross_validate(pipeline, X_dev, y_dev, splitter, task, n_classes, reporter, groups=splits.groups,
                            weights=w_dev)
        timings["cv_seconds"] = time.perf_counter() - step
        step = time.perf_counter()  # ensembles: each member alone on the same folds and features
        members = member_cv(cfg, pipeline, X_dev, y_dev, splitter, task, n_classes, splits.groups, w_dev)
        if members is not None:
            timings["member_cv_seconds"] = time.perf_counter() - step
        fitted, test_scores, final_fit, test_predictions = fit_and_test(
            pipeline, X_dev, y_dev, X_test, y_test, task, n_classes, w_dev, w_test)
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
    metrics = {
        "objective": objective,
        "objective_metric": metric,
        "direction": direction,
        "cv": cv_summary,
        **({"cv_train": cv.train_summary()} if cv.train_folds else {}),  # scores on (capped) training folds
        **({"members": members} if members is not None else {}),
        "test": test_scores or {},
        **({"sample_weight": cfg.data.weight_column} if weights is not None else {}),  # metrics are weighted
        "timings": timings,  # the total and the cost once the report is written
    }
    if cfg.get("report", True):  # report.md + plots/ from the kept predictions (docs/reports.md)
        from mlexp.reporting.report import write_report

        step = time.perf_counter()
        write_report(run_dir, metrics, cv, test_predictions, dataset.class_names,
                     title=" ".join(lineage["overrides"]), sections=sections)
        timings["report_seconds"] = time.perf_counter() - step
    timings["total_seconds"] = time.perf_counter() - t0
    metrics["estimated_cost_usd"] = estimated_cost(resources.profile.get("price_per_hour"), timings["total_seconds"])
    lin.write_json(run_dir / METRICS_FILE, metrics)
    # Completed only now that every file of the run is written (trackers copy lineage.json as it is).
    lin.write_json(run_dir / LINEAGE_FILE,
                   lin.finish(lineage, "completed", estimated_cost_usd=metrics["estimated_cost_usd"]))
    if cfg.get("tracking") and cfg.tracking.get("_target_"):  # tracking=mlflow|tensorboard (docs/tracking.md)
        from mlexp.tracking import track_run

        track_run(cfg, run_dir, metrics, reporter.epochs)
    print_summary(metrics, run_dir, cfg, fitted)
    return RunResult(objective, metric, direction, metrics, lineage, fitted, run_dir)


def _reporter_for(cfg: DictConfig, metric: str, direction: str) -> Any:
    """The plain Reporter, or, when the tuner runs this job as a trial, one bound to that Optuna trial."""
    from mlexp.tuning import job_trial

    if job_trial(cfg):
        from mlexp.tuning import trial_reporter

        return trial_reporter(cfg, metric, direction)
    from mlexp.reporting import Reporter

    return Reporter(metric, direction)
