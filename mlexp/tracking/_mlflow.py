"""MLflow tracking: one MLflow run per mlexp run (params, fold/epoch metrics, artifacts); a sweep is a parent run.

Uses ``mlflow.tracking.MlflowClient`` only (no fluent API, so no global active run): the
client is explicit about the store, which matters when jobs run in other processes.
"""

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from omegaconf import OmegaConf

__all__ = ["MlflowTracker", "PARENT_FILE", "RUN_FILE", "default_tracking_uri"]

log = logging.getLogger("mlexp")

PARENT_FILE = "mlflow_parent.json"  # in the sweep directory: the parent run that jobs nest under
RUN_FILE = "mlflow_run.json"  # in each run directory: which MLflow run holds it
STORE_DIR = "mlruns"
MODEL_FILES = ("model.skops", "model.json", "model.pt", "model_torch.json")
RUN_FILES = ("metrics.json", "lineage.json", "report.md", "training_curves.csv", "training_curves.png")
_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-. :/]")


def default_tracking_uri(base: Optional[Path] = None) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else an SQLite store in ./mlruns/mlflow.db (embedded, no server)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    store = Path(base or os.getcwd()).resolve() / STORE_DIR
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


class MlflowTracker:
    """Log mlexp runs to MLflow.

    Args:
        uri: tracking URI: a server (``http://host:5000``), a database URL, or None for
            ``$MLFLOW_TRACKING_URI`` or else ``sqlite:///<working dir>/mlruns/mlflow.db``.
        experiment: MLflow experiment name (created when missing).
        run_name: name of each run; None: the run's overrides (or ``mlexp``).
        log_model: upload the model files (model.skops / model.pt) as artifacts.
        tags: extra tags on every run.
    """

    def __init__(self, uri: Optional[str] = None, experiment: str = "mlexp", run_name: Optional[str] = None,
                 log_model: bool = True, tags: Optional[Dict[str, Any]] = None):
        from mlflow.tracking import MlflowClient

        self.uri = uri or default_tracking_uri()
        self.experiment = experiment
        self.run_name = run_name
        self.log_model = log_model
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.client = MlflowClient(tracking_uri=self.uri)

    # ---- one run -------------------------------------------------------------------------

    def log_run(self, run_dir: Path, cfg: Any, metrics: Dict[str, Any], epochs: List[Dict[str, Any]]) -> str:
        """Log a finished run: params, metrics per fold (step = fold) and per epoch, artifacts. Returns the run id."""
        from mlflow.entities import Param

        run_id = self._create_run(run_dir, cfg, status_tag="completed")
        params = [Param(_key(k), _param_value(v)) for k, v in _flatten(_plain(cfg)).items()]
        for chunk in _chunks(params, 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(list(_metrics(metrics, epochs)), 1000):
            self.client.log_batch(run_id, metrics=chunk)
        self._log_files(run_id, run_dir)
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def log_failed_job(self, job_dir: Path, cfg: Any, error: str) -> str:
        """A sweep job that failed: a FAILED run with its error (KILLED for a pruned trial), so the sweep shows it."""
        pruned = error.startswith("TrialPruned")
        run_id = self._create_run(Path(job_dir), cfg, status_tag="pruned" if pruned else "failed",
                                  extra={"mlexp.error": error[:5000]})
        for name in ("lineage.json",):
            if (Path(job_dir) / name).is_file():
                self.client.log_artifact(run_id, str(Path(job_dir) / name))
        self.client.set_terminated(run_id, "KILLED" if pruned else "FAILED")
        return run_id

    # ---- a sweep: parent run ----------------------------------------------------------------

    def start_sweep(self, sweep_dir: Path) -> str:
        """Create the sweep's parent run; its id goes to ``<sweep_dir>/mlflow_parent.json`` for the jobs."""
        sweep_dir = Path(sweep_dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        experiment_id = self._experiment_id()
        run = self.client.create_run(experiment_id, run_name=self.run_name or f"sweep {sweep_dir}",
                                     tags={**self.tags, "mlexp.sweep_dir": str(sweep_dir.resolve())})
        record = {"run_id": run.info.run_id, "experiment_id": experiment_id, "tracking_uri": self.uri}
        temporary = sweep_dir / (PARENT_FILE + ".tmp")
        temporary.write_text(json.dumps(record, indent=2))
        temporary.replace(sweep_dir / PARENT_FILE)
        return run.info.run_id

    def log_sweep(self, sweep_dir: Path, best: Optional[float] = None) -> None:
        """Attach the leaderboard to the parent run and record the best objective so far.

        Called as jobs finish and at the sweep's end (also from the exit hook, since a failed
        job stops Hydra before its multirun-end hook), so the parent is FINISHED as of the latest call.
        """
        parent = _read_parent(Path(sweep_dir))
        if parent is None:
            return
        run_id = parent["run_id"]
        for name in ("leaderboard.csv", "leaderboard.md"):
            if (Path(sweep_dir) / name).is_file():
                self.client.log_artifact(run_id, str(Path(sweep_dir) / name))
        if best is not None:
            from mlflow.entities import Metric

            self.client.log_batch(run_id, metrics=[Metric("best_objective", float(best), _now_ms(), 0)])
        self.client.set_terminated(run_id, "FINISHED")

    # ---- internals ------------------------------------------------------------------------------

    def _create_run(self, run_dir: Path, cfg: Any, status_tag: str, extra: Optional[Dict[str, str]] = None) -> str:
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        overrides, job_num, sweep_dir = _hydra_job()
        parent = _read_parent(sweep_dir) if sweep_dir is not None else None
        experiment_id = parent["experiment_id"] if parent else self._experiment_id()
        tags = {**self.tags, "mlexp.run_dir": str(Path(run_dir).resolve()), "mlexp.status": status_tag,
                "mlexp.overrides": " ".join(overrides)[:5000], **(extra or {})}
        if parent:
            tags[MLFLOW_PARENT_RUN_ID] = parent["run_id"]
        if job_num is not None:
            tags["mlexp.job"] = str(job_num)
        name = self.run_name or (" ".join(overrides) or "mlexp")[:250]
        run = self.client.create_run(experiment_id, run_name=name, tags=tags)
        (Path(run_dir) / RUN_FILE).write_text(json.dumps(
            {"run_id": run.info.run_id, "experiment_id": experiment_id, "tracking_uri": self.uri}, indent=2))
        return run.info.run_id

    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        artifacts = None
        if self.uri.startswith("sqlite:///"):  # keep the artifacts beside the embedded database
            artifacts = (Path(self.uri[len("sqlite:///"):]).parent / "artifacts").as_uri()
        try:
            return self.client.create_experiment(self.experiment, artifact_location=artifacts)
        except Exception:  # noqa: BLE001 - another job created it first
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def _log_files(self, run_id: str, run_dir: Path) -> None:
        for name in RUN_FILES:
            if (run_dir / name).is_file():
                self.client.log_artifact(run_id, str(run_dir / name))
        if (run_dir / "plots").is_dir():
            self.client.log_artifacts(run_id, str(run_dir / "plots"), "plots")
        if self.log_model:
            for name in MODEL_FILES:
                if (run_dir / name).is_file():
                    self.client.log_artifact(run_id, str(run_dir / name), "model")
        for name in ("config.yaml", "overrides.yaml"):
            if (run_dir / ".hydra" / name).is_file():
                self.client.log_artifact(run_id, str(run_dir / ".hydra" / name), "config")


def _metrics(metrics: Dict[str, Any], epochs: List[Dict[str, Any]]) -> Iterable[Any]:
    """cv.<m> per fold (step = fold), cv.<m>.mean/std, train.<m> per fold, test.<m>, per-epoch values, timings."""
    from mlflow.entities import Metric

    now = _now_ms()
    yield Metric("objective", float(metrics["objective"]), now, 0)
    for prefix, block in (("cv", metrics.get("cv", {})), ("train", metrics.get("cv_train", {}))):
        for name, stats in block.items():
            for fold, value in enumerate(stats.get("folds") or []):
                if value is not None:
                    yield Metric(f"{prefix}.{name}", float(value), now, fold)
            for part in ("mean", "std"):
                if stats.get(part) is not None:
                    yield Metric(f"{prefix}.{name}.{part}", float(stats[part]), now, 0)
    for name, value in (metrics.get("test") or {}).items():
        if value is not None:
            yield Metric(f"test.{name}", float(value), now, 0)
    for row in epochs or []:
        fold = row.get("fold")
        label = "final" if fold is None or fold == -1 else f"fold_{int(fold)}"
        for name, value in row.items():
            if name not in ("fold", "epoch") and isinstance(value, (int, float)) and value == value:
                yield Metric(_key(f"epoch.{label}.{name}"), float(value), now, int(row["epoch"]))
    for name, value in (metrics.get("timings") or {}).items():
        if isinstance(value, (int, float)):
            yield Metric(f"timings.{name}", float(value), now, 0)
    if metrics.get("estimated_cost_usd") is not None:
        yield Metric("estimated_cost_usd", float(metrics["estimated_cost_usd"]), now, 0)


def _hydra_job() -> tuple:
    """(task overrides, job number, sweep directory or None) of the Hydra job in progress."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return [], None, None
    hydra = HydraConfig.get()
    sweep = Path(hydra.sweep.dir) if hydra.mode == RunMode.MULTIRUN else None
    # trial=... is the tuner's bookkeeping (storage, study, number), not a choice of the user.
    overrides = [o for o in hydra.overrides.task if not str(o).startswith("trial=")]
    return overrides, hydra.job.get("num"), sweep


def _read_parent(sweep_dir: Path) -> Optional[Dict[str, str]]:
    path = Path(sweep_dir) / PARENT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _plain(cfg: Any) -> Dict[str, Any]:
    if OmegaConf.is_config(cfg):
        plain = OmegaConf.to_container(cfg, resolve=True)
    else:
        plain = dict(cfg)
    plain.pop("trial", None)  # the tuner's bookkeeping, not a parameter
    return plain


def _flatten(tree: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(tree, dict):
        out: Dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text[:6000]  # MLflow's limit on a param value


def _key(name: str) -> str:
    return _BAD_KEY.sub("_", name)[:250]


def _chunks(items: List[Any], size: int) -> Iterable[List[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _now_ms() -> int:
    return int(time.time() * 1000)
