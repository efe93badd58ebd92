"""Consolidate annotators' answers (Ground Truth output manifests) into one label per item.

Each answer line is an input-manifest line plus the label attribute ``<name>`` and ``<name>-metadata``,
as Ground Truth writes them (the label is the metadata's ``class-name`` when present, else the value);
the annotator is the metadata's ``worker-id`` (or ``annotator``), else the file's name. ``label.method``:
``majority`` (the most frequent answer; agreement = its share of the answers) or ``dawid_skene``
(crowd-kit's Dawid-Skene EM, which weighs annotators by their estimated confusion matrices; agreement
is the label's posterior probability). Items below ``label.agreement_threshold`` go back to the
annotators (``send_back.jsonl``, an input manifest); annotators whose disagreement with the consolidated
labels is ``label.poor_annotator_ratio`` times the median annotator's (and 0.1 above it) are flagged.

Writes ``labelled.csv`` (event_id, the features, the target: ``monitor.labels`` and a new
``data=csv`` train run read it as it is), ``consolidation.csv``, ``annotators.csv``, ``send_back.jsonl``
and ``label.md``.
"""

import glob
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pandas as pd

from mlexp.errors import MlexpError
from mlexp.monitor.label import read_manifest

__all__ = ["consolidate", "METHODS", "read_answers", "poor_annotators"]

log = logging.getLogger("mlexp")

METHODS = ("majority", "dawid_skene")
_FLOOR = 0.1  # a flagged annotator disagrees at least this much more often than the median one


def consolidate(run_dir: Path, answers: Sequence[str], out_dir: Path, method: str = "majority",
                threshold: float = 0.6, ratio: float = 2.0) -> pd.DataFrame:
    """Consolidate the answer files (paths or globs); write the outputs; return the consolidation table."""
    from mlexp.artifacts import load_model

    if method not in METHODS:
        raise MlexpError(f"label.method={method!r} is not a method; use one of: {', '.join(METHODS)}.")
    _, card = load_model(run_dir)
    target, classes = card.get("target", "label"), card.get("classes")
    frame, sources = read_answers(answers)
    if classes:
        known = {str(c) for c in classes}
        odd = sorted(set(frame["label"]) - known)
        if odd:
            raise MlexpError(f"answers hold labels that are not classes of the model: {odd[:5]}; the classes are {classes}.")
    result = _majority(frame) if method == "majority" else _dawid_skene(frame)
    result["accepted"] = result["agreement"] >= threshold
    annotators = poor_annotators(frame, result.set_index("event_id")["label"], ratio)
    _write(out_dir, result, annotators, sources, target, classes, method, threshold)
    return result


def read_answers(answers: Sequence[str]) -> tuple:
    """(answers frame: task, worker, label; {task: source line}) from output manifest files or globs."""
    files: List[Path] = []
    for pattern in answers:
        matched = sorted(glob.glob(pattern)) if any(ch in pattern for ch in "*?[") else [pattern]
        files += [Path(p) for p in matched]
    absent = [str(p) for p in files if not p.is_file()]
    if not files or absent:
        raise MlexpError(f"label.answers: no such file(s) {absent or list(answers)}; give output manifests (JSON Lines) "
                         "or a glob such as answers/*.jsonl.")
    rows, sources = [], {}
    for path in files:
        for number, line in enumerate(read_manifest(path), 1):
            attribute = next((k[: -len("-metadata")] for k in line if k.endswith("-metadata") and k[: -len("-metadata")] in line), None)
            if attribute is None or "source" not in line:
                raise MlexpError(f"{path}:{number} is not an output manifest line: it needs 'source' and a label "
                                 "attribute '<name>' with '<name>-metadata', as Ground Truth writes them.")
            metadata = line[f"{attribute}-metadata"] or {}
            task = str(line.get("event-id") or line["source"])
            worker = str(metadata.get("worker-id") or metadata.get("annotator") or path.stem)
            label = metadata.get("class-name", line[attribute])
            rows.append({"task": task, "worker": worker, "label": str(label)})
            sources.setdefault(task, {k: line[k] for k in ("source", "event-id", "mlexp-queue") if k in line})
    return pd.DataFrame(rows), sources


def _majority(frame: pd.DataFrame) -> pd.DataFrame:
    out = []
    for task, group in frame.groupby("task", sort=False):
        counts = Counter(group["label"])
        label, top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        out.append({"event_id": task, "label": label, "agreement": top / len(group), "answers": len(group),
                    "votes": json.dumps(dict(counts))})
    return pd.DataFrame(out)


def _dawid_skene(frame: pd.DataFrame) -> pd.DataFrame:
    try:
        from crowdkit.aggregation import DawidSkene
    except ImportError as err:
        raise MlexpError("label.method=dawid_skene needs crowd-kit: pip install 'mlexp[label]'.") from err
    probabilities = DawidSkene(n_iter=100).fit_predict_proba(frame[["task", "worker", "label"]])
    votes = _majority(frame).set_index("event_id")
    out = pd.DataFrame({"event_id": probabilities.index.astype(str), "label": probabilities.idxmax(axis=1).astype(str).to_numpy(),
                        "agreement": probabilities.max(axis=1).to_numpy()})
    out["answers"] = votes.loc[out["event_id"], "answers"].to_numpy()
    out["votes"] = votes.loc[out["event_id"], "votes"].to_numpy()
    order = {t: i for i, t in enumerate(pd.unique(frame["task"]))}
    return out.sort_values("event_id", key=lambda s: s.map(order)).reset_index(drop=True)


def poor_annotators(frame: pd.DataFrame, consensus: pd.Series, ratio: float) -> pd.DataFrame:
    """Each annotator's disagreement with the consolidated labels (``consensus``: task -> label), and who stands out."""
    agreed = frame["label"].to_numpy() == consensus.reindex(frame["task"]).to_numpy()
    table = (pd.DataFrame({"annotator": frame["worker"], "disagreed": ~agreed})
             .groupby("annotator").agg(answers=("disagreed", "size"), disagreement_rate=("disagreed", "mean"))
             .reset_index())
    median = float(table["disagreement_rate"].median())
    table["flagged"] = (table["disagreement_rate"] > ratio * median) & (table["disagreement_rate"] > median + _FLOOR)
    return table


def _write(out_dir: Path, result: pd.DataFrame, annotators: pd.DataFrame, sources: Dict[str, Dict[str, Any]],
           target: str, classes: Optional[List[Any]], method: str, threshold: float) -> None:
    by_name = {str(c): c for c in classes or []}
    accepted = result[result["accepted"]]
    records = []
    for task, label in zip(accepted["event_id"], accepted["label"]):
        row = json.loads(sources[task]["source"])
        records.append({"event_id": sources[task].get("event-id", task), **row, target: by_name.get(label, label)})
    pd.DataFrame(records, columns=None if records else ["event_id", target]).to_csv(out_dir / "labelled.csv", index=False)
    result.to_csv(out_dir / "consolidation.csv", index=False)
    annotators.to_csv(out_dir / "annotators.csv", index=False)
    back = result[~result["accepted"]]
    with (out_dir / "send_back.jsonl").open("w") as handle:
        for task in back["event_id"]:
            line = {k: v for k, v in sources[task].items() if k != "mlexp-queue"}
            handle.write(json.dumps(line) + "\n")
    flagged = annotators[annotators["flagged"]]
    lines = [f"# Consolidated labels ({method})", "",
             f"{len(result)} items from {annotators['answers'].sum()} answers by {len(annotators)} annotators: "
             f"{len(accepted)} accepted (agreement >= {threshold:g}) into `labelled.csv`, {len(back)} sent back "
             "(`send_back.jsonl`).", "", "| annotator | answers | disagreement with the consolidated labels | flagged |",
             "|---|---:|---:|---|"]
    lines += [f"| {r.annotator} | {r.answers} | {r.disagreement_rate:.2%} | {'**yes**' if r.flagged else ''} |"
              for r in annotators.itertuples()]
    lines += ["", f"Mean agreement: {result['agreement'].mean():.3f}."]
    if len(flagged):
        lines += ["", f"Flagged (far more disagreement than the others): {', '.join(flagged['annotator'])}: review "
                  "their answers or remove them from the workforce, then consolidate again without their files."]
    (out_dir / "label.md").write_text("\n".join(lines) + "\n")
    print(f"labels: {len(accepted)} accepted, {len(back)} sent back, {len(flagged)} annotator(s) flagged: "
          f"{out_dir / 'labelled.csv'}")
