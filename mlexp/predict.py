"""Predict mode: apply a train run's saved model to a new table."""

import logging
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from mlexp.artifacts import load_model
from mlexp.errors import MlexpError

__all__ = ["predict", "predict_frame", "run_predict"]

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
    X = frame[features]
    predicted = model.predict(X)
    out = pd.DataFrame(index=frame.index)
    classes = card.get("classes")
    if card.get("task") == "classification" and classes:
        out["prediction"] = [classes[int(i)] for i in predicted]
        if hasattr(model, "predict_proba"):
            for i, p in enumerate(model.predict_proba(X).T):
                out[f"proba_{classes[i]}"] = p
    else:
        out["prediction"] = predicted
    return out


def predict(cfg: DictConfig) -> Path:
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import to_absolute_path

    from mlexp.data.loaders import read_table

    model, card = load_model(Path(to_absolute_path(cfg.mode.run_dir)))
    frame = read_table(cfg.mode.input)
    out = predict_frame(model, card, frame)
    output = Path(cfg.mode.output)
    if not output.is_absolute():
        output = Path(HydraConfig.get().runtime.output_dir) / output
    output.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output, index=False)
    log.info("wrote %d predictions to %s", len(out), output)
    print(f"predictions: {output}")
    return output


def run_predict(cfg: DictConfig) -> None:
    """`mode=predict`: write the predictions file; no objective."""
    predict(cfg)
