"""`mode=label`: a queue of the rows a model is least sure about, as a Ground Truth input manifest.

``label.pool`` (a table or a capture folder) streams through the model in chunks; the ``label.k`` rows
with the highest score are kept (a bounded heap): ``uncertainty`` = 1 - max probability, ``margin`` =
1 - (top - second probability), ``entropy`` of the probabilities, or ``random``. ``manifest.jsonl``
has one task per line, as Ground Truth's input manifest: ``source`` (the row's features as JSON text,
what an annotator sees), ``event-id`` (the key labels come back with) and ``mlexp-queue`` (rank, score,
the model's prediction and probabilities). ``queue.csv`` holds the same rows as a table.

With ``label.answers`` the mode consolidates annotators' output manifests instead (mlexp.monitor.consolidate).
"""

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError
from mlexp.monitor.capture import json_value

__all__ = ["run_label", "queue", "STRATEGIES"]

log = logging.getLogger("mlexp")

STRATEGIES = ("uncertainty", "margin", "entropy", "random")


def run_label(cfg: DictConfig) -> None:
    """`mode=label`: write the queue (label.pool) and/or consolidate answers (label.answers)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import to_absolute_path

    node = OmegaConf.to_container(cfg.label, resolve=True) if cfg.get("label") is not None else None
    if not node or not node.get("run") or node["run"] == "???":
        raise MlexpError("mode=label needs label.run=<a train run's directory> (its model ranks the pool and names the "
                         "target), and label.pool=<table or capture folder> or label.answers=<output manifests>.")
    if not node.get("pool") and not node.get("answers"):
        raise MlexpError("mode=label needs label.pool=<unlabeled table or capture folder> (writes the queue) or "
                         "label.answers=<annotators' output manifests> (consolidates them).")
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(to_absolute_path(str(node["run"])))
    if node.get("pool"):
        k = _positive_int(node.get("k", 100), "label.k")
        path = queue(run_dir, Path(to_absolute_path(str(node["pool"]))), k, str(node.get("strategy", "uncertainty")),
                     out_dir, str(node.get("id_column") or "event_id"), int(node.get("seed") or 0))
        print(f"labelling queue: {path}")
    if node.get("answers"):
        from mlexp.monitor.consolidate import consolidate

        answers = node["answers"] if isinstance(node["answers"], list) else [node["answers"]]
        consolidate(run_dir, [to_absolute_path(str(a)) for a in answers], out_dir, str(node.get("method", "majority")),
                    float(node.get("agreement_threshold", 0.6)), float(node.get("poor_annotator_ratio", 2.0)))


def queue(run_dir: Path, pool: Path, k: int, strategy: str, out_dir: Path, id_column: str = "event_id",
          seed: int = 0, chunk_rows: int = 100_000) -> Path:
    """Rank the pool and write ``manifest.jsonl`` + ``queue.csv`` with the top ``k`` rows; returns the manifest."""
    from mlexp.artifacts import load_model
    from mlexp.monitor.source import iter_batches
    from mlexp.predict import predict_frame

    if strategy not in STRATEGIES:
        raise MlexpError(f"label.strategy={strategy!r} is not a strategy; use one of: {', '.join(STRATEGIES)}.")
    model, card = load_model(run_dir)
    classes = card.get("classes")
    if strategy != "random" and not (card.get("task") == "classification" and hasattr(model, "predict_proba")):
        raise MlexpError(f"label.strategy={strategy} ranks by class probabilities, which this model does not give "
                         f"({card.get('task')}); use label.strategy=random.")
    features = card.get("features") or []
    rng = np.random.default_rng(seed)
    kept: Optional[pd.DataFrame] = None
    for batch in iter_batches(pool, chunk_rows, card.get("target"), id_column, None):
        absent = [c for c in features if c not in batch.inputs.columns]
        if absent:
            raise MlexpError(f"label.pool {pool} lacks the model's feature columns {', '.join(absent)}.")
        out = predict_frame(model, card, batch.inputs)
        proba = out[[f"proba_{c}" for c in classes]].to_numpy(float) if classes and f"proba_{classes[0]}" in out else None
        frame = batch.inputs[features].copy()
        frame.insert(0, "event_id", batch.ids.to_numpy())
        frame["_prediction"] = out["prediction"].to_numpy()
        frame["_score"] = rng.random(len(frame)) if strategy == "random" else _score(proba, strategy)
        if proba is not None:
            frame["_proba"] = [json.dumps({str(c): round(float(p), 6) for c, p in zip(classes, row)}) for row in proba]
        kept = frame if kept is None else pd.concat([kept, frame], ignore_index=True)
        kept = kept.nlargest(k, "_score", keep="first")  # bounded: at most k rows kept between chunks
    if kept is None or not len(kept):
        raise MlexpError(f"label.pool {pool} holds no rows to queue.")
    kept = kept.sort_values("_score", ascending=False, kind="stable").reset_index(drop=True)
    manifest = out_dir / "manifest.jsonl"
    with manifest.open("w") as handle:
        for rank, row in enumerate(kept.to_dict(orient="records"), 1):
            source = {c: json_value(row[c]) for c in features}
            handle.write(json.dumps({
                "source": json.dumps(source, separators=(",", ":")),
                "event-id": str(row["event_id"]),
                "mlexp-queue": {"rank": rank, "strategy": strategy, "score": float(row["_score"]),
                                "prediction": json_value(row["_prediction"]),
                                **({"probabilities": json.loads(row["_proba"])} if "_proba" in row else {}),
                                "model_run": str(run_dir)},
            }) + "\n")
    table = kept.rename(columns={"_score": "score", "_prediction": "prediction", "_proba": "probabilities"})
    table.insert(1, "rank", range(1, len(table) + 1))
    table.to_csv(out_dir / "queue.csv", index=False)
    log.info("label: %d of the pool's rows queued by %s", len(kept), strategy)
    return manifest


def _score(proba: np.ndarray, strategy: str) -> np.ndarray:
    """Higher = less sure."""
    ordered = np.sort(proba, axis=1)
    if strategy == "uncertainty":
        return 1.0 - ordered[:, -1]
    if strategy == "margin":
        return 1.0 - (ordered[:, -1] - ordered[:, -2])
    clipped = np.clip(proba, 1e-12, 1.0)
    return -(clipped * np.log(clipped)).sum(axis=1)


def _positive_int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise MlexpError(f"{name}={value!r} must be a positive whole number.")
    return number


def read_manifest(path: Path) -> List[Dict[str, Any]]:
    """The JSON objects of a JSON Lines file, with the file and line named on a malformed line."""
    lines = []
    with Path(path).open() as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                lines.append(json.loads(line))
            except ValueError as err:
                raise MlexpError(f"{path}:{number} is not a JSON object ({err}); a manifest has one JSON object per line.") from err
    return lines
