"""Predict mode: apply a train run's saved model to a new table, chunk by chunk, and record the run's lineage."""

import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError
from mlexp.lineage import file_fingerprint

__all__ = ["predict", "predict_frame", "run_predict", "capture_writer"]

log = logging.getLogger("mlexp")


def predict_frame(model, card: dict, frame: pd.DataFrame) -> pd.DataFrame:
    """Predictions (original class labels for classification) and class probabilities when available."""
    features = card.get("features") or list(frame.columns)
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise MlexpError(
            f"the input lacks feature columns the model was trained on: {', '.join(missing)}. "
            f"Columns found: {', '.join(map(str, frame.columns))}."
        )
    X = frame[features] if list(frame.columns) != features else frame
    classes = card.get("classes")
    if card.get("task") != "classification" or not classes:
        return pd.DataFrame({"prediction": model.predict(X)}, index=frame.index)
    proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
    # One pass where the label is exactly the most probable class; otherwise predict() decides.
    predicted = proba.argmax(axis=1) if proba is not None and _predicts_argmax(model) else model.predict(X)
    labels = np.asarray(classes)
    labels = labels if labels.dtype.kind in "biuf" else np.asarray(classes, dtype=object)  # numbers stay numbers
    columns = {"prediction": labels[np.asarray(predicted, dtype=int)]}
    if proba is not None:
        columns.update((f"proba_{label}", proba[:, i]) for i, label in enumerate(classes))
    return pd.DataFrame(columns, index=frame.index)


# Classifiers whose predict() is the argmax of predict_proba() (forests, trees, bagging and skorch nets
# compute it exactly so; logistic regression's probabilities are a monotonic map of the scores it
# predicts from). Not SVC (a separate Platt fit) nor boosting (ties at a raw score of 0 go to class 1).
_ARGMAX_CLASSIFIERS = (
    "LogisticRegression", "RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier",
    "BaggingClassifier", "NeuralNetClassifier", "TorchClassifier",
)


def _predicts_argmax(model) -> bool:
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    return type(final).__name__ in _ARGMAX_CLASSIFIERS and type(final).__module__.startswith(("sklearn.", "skorch", "mlexp."))


def predict(cfg: DictConfig) -> Path:
    """Predict ``mode.input`` with the model of ``mode.run_dir`` into ``mode.output``; writes lineage.json."""
    from mlexp.artifacts import MODEL_FILE, load_model
    from mlexp.runrecord import hydra_run_dir, recorded_run
    from mlexp.serve.batch import table_format, transform

    run_dir = hydra_run_dir()
    if any((run_dir / name).exists() for name in (MODEL_FILE, "metrics.json")):
        raise MlexpError(f"{run_dir} holds a train run: a predict run writes its own lineage.json and must not "
                         "share it. Leave hydra.run.dir at its default or name a new directory.")
    model_dir = _required_path(cfg.mode, "run_dir", "a train run's directory (it holds model.skops)")
    source = _required_path(cfg.mode, "input", "the CSV or Parquet file to predict")
    if not source.is_file():
        raise MlexpError(f"mode.input={source} does not exist: point it at a CSV or Parquet file to predict.")
    output = _output_path(cfg, run_dir, source)
    table_format(source, "mode.input")
    with recorded_run(cfg, run_dir, inputs=[source], model=_model_lineage(model_dir, MODEL_FILE),
                      input={"path": str(source)}, output={"path": str(output)}) as record:
        capture = None
        try:
            model, card = load_model(model_dir)
            capture = capture_writer(cfg, run_dir, endpoint=model_dir.name)
            result = transform(model, card, source, output, int(cfg.mode.chunk_rows), capture)
        finally:
            if capture is not None:
                capture.close()
        lineage = record.lineage
        lineage["input"].update(sha256=result.input_sha256, bytes=result.input_bytes)
        lineage["output"].update(format=table_format(output, "mode.output"), columns=result.columns)
        lineage["rows"] = {"read": result.rows_read, "predicted": result.rows_predicted, "chunks": result.chunks}
        if capture is not None:
            lineage["capture"] = {"folder": str(capture.folder), "rows": result.captured}
        seconds = record.seconds()
    log.info("wrote %d predictions to %s (%.0f rows/s)", result.rows_predicted, output,
             result.rows_predicted / max(seconds, 1e-9))
    print(f"predictions: {output}")
    return output


def run_predict(cfg: DictConfig) -> None:
    """`mode=predict`: write the predictions file; no objective."""
    predict(cfg)


def capture_writer(cfg: DictConfig, run_dir: Path, endpoint: str, variant: Optional[str] = None) -> Any:
    """A CaptureWriter when ``capture.enabled`` (folder: ``capture.folder``, default ``<run dir>/capture``), else None."""
    node = cfg.get("capture")
    if not node or not node.get("enabled"):
        return None
    from hydra.utils import to_absolute_path

    from mlexp.monitor.capture import DEFAULT_VARIANT, CaptureWriter

    folder = Path(to_absolute_path(node.folder)) if node.get("folder") else run_dir / "capture"
    return CaptureWriter(folder, endpoint=endpoint, variant=variant or DEFAULT_VARIANT,
                         sampling_percentage=node.get("sampling_percentage", 100.0), seed=cfg.get("seed"))


def _required_path(mode: DictConfig, key: str, what: str) -> Path:
    from hydra.utils import to_absolute_path

    value = mode.get(key) if not OmegaConf.is_missing(mode, key) else None
    if value in (None, ""):
        raise MlexpError(f"mode=predict needs mode.{key}=<{what}>, e.g. mlexp mode=predict "
                         "mode.run_dir=outputs/2026-01-01/12-00-00 mode.input=new.csv")
    return Path(to_absolute_path(str(value)))


def _output_path(cfg: DictConfig, run_dir: Path, source: Path) -> Path:
    """The output path; an existing file is refused unless mode.overwrite=true, and never the input."""
    output = Path(cfg.mode.output or "predictions.csv")
    if not output.is_absolute():
        output = run_dir / output
    if output.resolve() == source.resolve():
        raise MlexpError(f"mode.output={output} is the input file: name another output file.")
    if output.is_dir():
        raise MlexpError(f"mode.output={output} is a directory: name a .csv or .parquet file.")
    if output.exists() and not cfg.mode.get("overwrite", False):
        raise MlexpError(f"mode.output={output} already exists: name a new file, or set mode.overwrite=true "
                         "to replace it.")
    output.parent.mkdir(parents=True, exist_ok=True)
    return output


def _model_lineage(model_dir: Path, model_file: str) -> Dict[str, Any]:
    """Which model predicted: its run directory, the file's sha256, and the train run's config hash and data."""
    record: Dict[str, Any] = {"run_dir": str(model_dir)}
    path = model_dir / model_file
    if path.is_file():
        record["sha256"] = file_fingerprint(path)["sha256"]
    train = model_dir / "lineage.json"
    if train.is_file():
        try:
            trained = json.loads(train.read_text())
            record.update(train_config_hash=trained.get("config_hash"), train_git=trained.get("git"),
                          train_data=trained.get("data", {}).get("sha256"))
        except ValueError:
            record["train_lineage"] = "unreadable"
    return record
