"""`mode=monitor`: check new data (a table or a capture folder) against a train run's baseline, window by window.

Reads ``monitor.data`` in chunks of ``monitor.chunk_rows`` (bounded memory, a progress bar), predicts a
table's rows with the run's model when a model check needs predictions (a capture holds them), joins
``monitor.labels`` by event id, splits rows into ``monitor.window`` windows by their time, and writes
``constraint_violations.json``, ``statistics.json``, ``model_quality_statistics.json``, ``merged.jsonl``,
``monitor.json``, ``windows/<start>/`` and ``monitor.md`` with plots in the run directory. Exits 3
(``MonitorViolations``) when anything is violated, so cron or CI can act on it.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError

__all__ = ["run_monitor", "monitor", "MonitorViolations", "MonitorSettings"]

log = logging.getLogger("mlexp")


class MonitorViolations(MlexpError):
    """Not an error: the monitor ran and found violations; the entrypoint exits 3."""

    exit_code = 3


@dataclass
class MonitorSettings:
    baseline: Path
    data: Path
    labels: Optional[Path] = None
    constraints: Optional[Path] = None
    window: Optional[str] = None
    start: Optional[pd.Timestamp] = None
    end: Optional[pd.Timestamp] = None
    time_column: Optional[str] = None
    id_column: str = "event_id"
    distance: str = "model_monitor"
    checks: tuple = ()
    quality_tolerance: float = 0.05
    bias_tolerance: float = 0.1
    ndcg_threshold: float = 0.9
    chunk_rows: int = 100_000
    seed: int = 0

    @classmethod
    def from_config(cls, node: DictConfig, seed: int = 0) -> "MonitorSettings":
        from hydra.utils import to_absolute_path

        from mlexp.monitor.checks import DISTANCES
        from mlexp.monitor.window import CHECKS

        raw = OmegaConf.to_container(node, resolve=True)
        path = lambda key: Path(to_absolute_path(str(raw[key]))) if raw.get(key) else None  # noqa: E731
        for key in ("baseline", "data"):
            if not raw.get(key) or raw[key] == "???":
                raise MlexpError(f"mode=monitor needs monitor.{key}=<...>: monitor.baseline is a train run's directory, "
                                 "monitor.data a CSV/Parquet table or a capture folder.")
        checks = raw.get("checks") or list(CHECKS)
        unknown = [c for c in checks if c not in CHECKS]
        if unknown:
            raise MlexpError(f"monitor.checks names unknown checks {unknown}; choose from {', '.join(CHECKS)}.")
        if raw.get("distance", "model_monitor") not in DISTANCES:
            raise MlexpError(f"monitor.distance={raw.get('distance')!r} is not a distance; use one of: {', '.join(DISTANCES)}.")
        settings = cls(baseline=path("baseline"), data=path("data"), labels=path("labels"),
                       constraints=path("constraints"), window=raw.get("window"), time_column=raw.get("time_column"),
                       id_column=str(raw.get("id_column") or "event_id"), distance=raw.get("distance", "model_monitor"),
                       checks=tuple(checks), seed=seed)
        for key, kind in (("quality_tolerance", float), ("bias_tolerance", float), ("ndcg_threshold", float),
                          ("chunk_rows", int)):
            try:
                value = kind(raw.get(key, getattr(settings, key)))
            except (TypeError, ValueError):
                raise MlexpError(f"monitor.{key}={raw.get(key)!r} must be a {kind.__name__}.") from None
            if value < 0 or (key == "chunk_rows" and value < 1):
                raise MlexpError(f"monitor.{key}={value} must be positive.")
            setattr(settings, key, value)
        if settings.window:
            window_offset(settings.window)
        for key in ("start", "end"):
            if raw.get(key):
                try:
                    setattr(settings, key, pd.Timestamp(raw[key], tz="UTC") if pd.Timestamp(raw[key]).tz is None
                            else pd.Timestamp(raw[key]).tz_convert("UTC"))
                except ValueError:
                    raise MlexpError(f"monitor.{key}={raw[key]!r} is not a date or time (2024-05-01, 2024-05-01T10:00).") from None
        return settings


def run_monitor(cfg: DictConfig) -> None:
    """`mode=monitor` in Hydra's run directory."""
    from hydra.core.hydra_config import HydraConfig

    if cfg.get("monitor") is None:
        raise MlexpError("mode=monitor needs the monitor node: select it with mode=monitor (conf/mode/monitor.yaml).")
    settings = MonitorSettings.from_config(cfg.monitor, seed=int(cfg.seed))
    monitor(settings, Path(HydraConfig.get().runtime.output_dir))


def monitor(settings: MonitorSettings, out_dir: Path) -> Dict[str, Any]:
    """Run every check; write the outputs in ``out_dir``; raise MonitorViolations when any check fails."""
    from mlexp.monitor.outputs import write_merged, write_results
    from mlexp.monitor.report import write_monitor_report
    from mlexp.monitor.source import iter_batches, load_labels
    from mlexp.monitor.window import WindowState, load_baseline
    from mlexp.reporting.progress import progress

    out_dir.mkdir(parents=True, exist_ok=True)
    base = load_baseline(settings.baseline, settings.constraints)
    target, classes = base.summary["target"], base.classes
    labels = load_labels(settings.labels, target, settings.id_column) if settings.labels else None
    predictor = _Predictor(base, settings)
    windows: Dict[Any, WindowState] = {}
    merged = (out_dir / "merged.jsonl").open("w") if labels is not None else None
    bar = progress(total=None, desc="monitor", unit="rows")
    try:
        for batch in iter_batches(settings.data, settings.chunk_rows, target, settings.id_column, settings.time_column):
            batch = _in_range(batch, settings)
            if not len(batch):
                continue
            y_pred, scores, outputs = predictor(batch)
            y_true = _labels_of(batch, labels, base)
            if merged is not None and y_true is not None and outputs is not None:
                write_merged(merged, batch, outputs, y_true, classes)
            keys = _window_keys(batch, settings)
            for key in pd.unique(keys):
                rows = np.flatnonzero(keys == key)
                state = windows.setdefault(key, WindowState(key, base, list(settings.checks), settings.seed))
                state.add(batch.inputs.iloc[rows].reset_index(drop=True), _take(y_pred, rows), _take(scores, rows),
                          _take(y_true, rows))
            bar.update(len(batch))
    finally:
        bar.close()
        if merged is not None:
            merged.close()
    if not windows:
        span = f" between monitor.start={settings.start} and monitor.end={settings.end}" if settings.start or settings.end else ""
        raise MlexpError(f"no rows to monitor in {settings.data}{span}: the window is empty. Check the data, or "
                         "widen monitor.start/monitor.end.")
    tolerance = {"quality": settings.quality_tolerance, "bias": settings.bias_tolerance, "ndcg": settings.ndcg_threshold}
    results = [windows[key].finish(settings.distance, tolerance) for key in sorted(windows)]
    summary = write_results(results, settings, predictor.skipped, out_dir)
    write_monitor_report(out_dir, base, settings, results, summary)
    count = summary["violation_count"]
    print(f"monitor: {summary['rows']} rows, {len(results)} window(s), {count} violation(s): {out_dir}")
    if count:
        kinds = ", ".join(f"{k} ({v})" for k, v in summary["violations_by_type"].items())
        raise MonitorViolations(f"monitor found {count} violation(s): {kinds}. See {out_dir / 'constraint_violations.json'} "
                                f"and {out_dir / 'monitor.md'}.")
    return summary


class _Predictor:
    """Predictions of a batch: the captured outputs, or the model on a table's rows (loaded once)."""

    def __init__(self, base: Any, settings: MonitorSettings):
        self.base, self.settings, self.skipped = base, settings, None
        model_checks = {"model_quality", "bias", "attribution", "estimate"} & set(settings.checks)
        if model_checks:
            from mlexp.artifacts import load_model

            try:
                base.model, self.card = load_model(base.run_dir)
            except MlexpError as err:
                self.skipped = f"no model to score the data ({err})"
        self.wanted = bool(model_checks) and base.model is not None

    def __call__(self, batch: Any) -> tuple:
        if batch.outputs is not None:
            return (*self._decode(batch.outputs), batch.outputs)
        if not self.wanted:
            return None, None, None
        features = self.base.summary["features"]
        absent = [c for c in features if c not in batch.inputs.columns]
        if absent:
            self.skipped = f"the data lacks feature columns {', '.join(absent)} (missing_column_check)"
            return None, None, None
        _check_numeric(batch.inputs, self.base)
        from mlexp.predict import predict_frame

        try:
            outputs = predict_frame(self.base.model, self.card, batch.inputs[features])
        except Exception as err:  # e.g. missing values the model has no imputer for: data quality still runs
            self.skipped = f"the model could not score the rows ({type(err).__name__}: {str(err)[:200]})"
            log.warning("monitor: model-based checks skipped for a chunk: %s", self.skipped)
            return None, None, None
        return (*self._decode(outputs), outputs)

    def _decode(self, outputs: pd.DataFrame) -> tuple:
        classes = self.base.classes
        if "prediction" not in outputs.columns:
            return None, None
        if self.base.task != "classification":
            return pd.to_numeric(outputs["prediction"], errors="coerce").to_numpy(float), None
        index = {str(c): i for i, c in enumerate(classes)}
        y_pred = outputs["prediction"].astype(str).map(index).to_numpy(dtype=float)
        if np.isnan(y_pred).any():
            odd = sorted(set(outputs["prediction"].astype(str)) - set(index))[:5]
            raise MlexpError(f"the predictions hold labels that are not classes of the baseline's model: {odd} (classes "
                             f"{classes}). Is the capture from another model? Point monitor.baseline at its train run.")
        columns = [f"proba_{c}" for c in classes]
        scores = outputs[columns].to_numpy(float) if all(c in outputs.columns for c in columns) else None
        return y_pred, scores


def _check_numeric(inputs: pd.DataFrame, base: Any) -> None:
    for feature in base.statistics["features"]:
        name = feature["name"]
        if feature["inferred_type"] == "String" or name not in inputs.columns:
            continue
        column = inputs[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        bad = pd.to_numeric(column, errors="coerce").isna() & column.notna()
        if bad.any():
            raise MlexpError(
                f"column {name!r} holds values that are not numbers (e.g. {column[bad].iloc[0]!r}), but the baseline and "
                f"the model take {feature['inferred_type']} numbers: the model cannot score these rows. Fix the column's "
                "type, or run monitor.checks=[data_quality] to get the data_type_check report without the model.")


def _labels_of(batch: Any, labels: Optional[pd.Series], base: Any) -> Optional[np.ndarray]:
    values = batch.labels if labels is None else pd.Series(labels.reindex(batch.ids.to_numpy()).to_numpy())
    if values is None:
        return None
    if base.task != "classification":
        return pd.to_numeric(values, errors="coerce").to_numpy(float)
    index = {str(c): i for i, c in enumerate(base.classes)}
    text = values.map(lambda v: None if pd.isna(v) else str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    codes = text.map(index)
    unknown = text[codes.isna() & text.notna()]
    if len(unknown):
        raise MlexpError(f"labels hold values that are not classes of the model: {sorted(set(unknown))[:5]}; the classes "
                         f"are {base.classes}. Fix the labels' column ({base.summary['target']}).")
    return codes.to_numpy(dtype=float)


def _in_range(batch: Any, settings: MonitorSettings) -> Any:
    if batch.times is None or not (settings.start or settings.end):
        return batch
    keep = np.ones(len(batch), bool)
    if settings.start is not None:
        keep &= (batch.times >= settings.start).to_numpy()
    if settings.end is not None:
        keep &= (batch.times < settings.end).to_numpy()
    if keep.all():
        return batch
    pick = lambda part: None if part is None else part[keep].reset_index(drop=True)  # noqa: E731
    return type(batch)(pick(batch.ids), pick(batch.times), pick(batch.inputs), pick(batch.outputs), pick(batch.labels))


def window_offset(window: str) -> Any:
    try:
        return pd.tseries.frequencies.to_offset(window)
    except ValueError:
        raise MlexpError(f"monitor.window={window!r} is not a pandas offset; use e.g. 1D, 12h, 7D, W, MS or YS.") from None


def _window_keys(batch: Any, settings: MonitorSettings) -> np.ndarray:
    if not settings.window:
        return np.full(len(batch), "all", dtype=object)
    if batch.times is None:
        raise MlexpError("monitor.window needs each row's time: a capture folder has it; for a table set "
                         "monitor.time_column=<its date column>.")
    if batch.times.isna().any():
        raise MlexpError(f"{int(batch.times.isna().sum())} row(s) have no time in monitor.time_column; windows need one per row.")
    offset = window_offset(settings.window)
    if isinstance(offset, pd.offsets.Tick):
        starts = batch.times.dt.floor(offset)
    else:  # calendar offsets (MS, W, YS): each day rolls back to its window's start
        days = batch.times.dt.normalize()
        starts = days.map({d: offset.rollback(d) for d in days.unique()})
    return starts.to_numpy(dtype=object)


def _take(values: Optional[np.ndarray], rows: np.ndarray) -> Optional[np.ndarray]:
    return None if values is None else values[rows]
