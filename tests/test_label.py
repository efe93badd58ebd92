"""mode=label on penguins (three species): the queue, consolidation of three annotators' answers, and the
labelled table fed back to monitor.labels and to a new train run; mode=predict with capture into the monitor."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from conftest import read_metrics, run_cli, run_inprocess

K = 40  # rows queued


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    from palmerpenguins import load_penguins

    root = tmp_path_factory.mktemp("penguins")
    frame = load_penguins().dropna().reset_index(drop=True)
    frame.drop(columns=["species"]).to_csv(root / "pool.csv", index=False)
    run_inprocess(["data=penguins", "model=logreg", "splitter.n_splits=3"], root / "run")
    return SimpleNamespace(root=root, run=root / "run", frame=frame)


def _label(penguins, out, **options):
    """mode=label through the entrypoint (Hydra composes label.*), in a subprocess."""
    args = ["mode=label", f"label.run={penguins.run}", f"hydra.run.dir={out}"]
    args += [f"label.{k}={v}" for k, v in options.items()]
    return run_cli(args, cwd=penguins.root, check=False)


@pytest.fixture(scope="module")
def queued(penguins):
    """The K most uncertain penguins, queued through the entrypoint."""
    done = _label(penguins, "queue", pool=penguins.root / "pool.csv", k=K)
    assert done.returncode == 0, done.stderr
    return penguins.root / "queue"


def test_queue_holds_the_rows_the_model_is_least_sure_about(penguins, queued):
    from mlexp.artifacts import load_model
    from mlexp.predict import predict_frame

    lines = [json.loads(line) for line in (penguins.root / "queue" / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == K and all(set(line) == {"source", "event-id", "mlexp-queue"} for line in lines)
    model, card = load_model(penguins.run)
    pool = pd.read_csv(penguins.root / "pool.csv")
    proba = predict_frame(model, card, pool)[[f"proba_{c}" for c in card["classes"]]].to_numpy()
    uncertainty = 1 - proba.max(axis=1)
    expected = list(np.argsort(-uncertainty, kind="stable")[:K])
    assert [int(line["event-id"]) for line in lines] == expected
    first = lines[0]
    source = json.loads(first["source"])
    assert source["island"] == pool.iloc[expected[0]]["island"] and source["bill_length_mm"] == pool.iloc[expected[0]]["bill_length_mm"]
    assert first["mlexp-queue"]["score"] == pytest.approx(uncertainty[expected[0]], abs=1e-6)
    assert set(first["mlexp-queue"]["probabilities"]) == {"Adelie", "Chinstrap", "Gentoo"}
    scores = [line["mlexp-queue"]["score"] for line in lines]
    assert scores == sorted(scores, reverse=True) and scores[-1] > np.median(uncertainty)
    table = pd.read_csv(penguins.root / "queue" / "queue.csv")
    assert list(table["event_id"]) == expected and list(table["rank"]) == list(range(1, K + 1))


@pytest.mark.parametrize("strategy", ["margin", "entropy", "random"])
def test_other_strategies(penguins, queued, strategy):
    from mlexp.monitor.label import queue

    out = penguins.root / f"queue_{strategy}"
    out.mkdir()
    queue(penguins.run, penguins.root / "pool.csv", 10, strategy, out, seed=1)
    ids = [json.loads(line)["event-id"] for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 10
    uncertain = pd.read_csv(penguins.root / "queue" / "queue.csv")["event_id"].astype(str).head(10)
    overlap = len(set(ids) & set(uncertain))
    assert overlap >= 5 if strategy != "random" else overlap <= 3


def _answers(penguins, errors):
    """Each annotator answers every queued task; a share of their answers is a wrong species."""
    lines = [json.loads(line) for line in (penguins.root / "queue" / "manifest.jsonl").read_text().splitlines()]
    species = ["Adelie", "Chinstrap", "Gentoo"]
    folder = penguins.root / "answers"
    folder.mkdir(exist_ok=True)
    for seed, (name, error) in enumerate(errors.items()):
        rng = np.random.default_rng(seed)
        with (folder / f"{name}.jsonl").open("w") as handle:
            for line in lines:
                truth = penguins.frame.loc[int(line["event-id"]), "species"]
                answer = rng.choice([s for s in species if s != truth]) if rng.random() < error else truth
                handle.write(json.dumps({**line, "species": species.index(answer), "species-metadata": {
                    "class-name": answer, "worker-id": name, "human-annotated": "yes",
                    "type": "groundtruth/text-classification"}}) + "\n")
    return folder


def test_consolidation_flags_the_poor_annotator_and_feeds_monitor_and_training(penguins, queued, tmp_path):
    folder = _answers(penguins, {"ann": 0.0, "ben": 0.1, "cat": 0.7})
    done = _label(penguins, "consolidated", answers=f"'{folder}/*.jsonl'")
    assert done.returncode == 0, done.stderr
    out = penguins.root / "consolidated"
    annotators = pd.read_csv(out / "annotators.csv").set_index("annotator")
    assert list(annotators.index[annotators["flagged"]]) == ["cat"]
    assert annotators.loc["cat", "disagreement_rate"] > 0.5 > annotators.loc["ben", "disagreement_rate"]
    result = pd.read_csv(out / "consolidation.csv")
    assert len(result) == K and set(result["answers"]) == {3}
    assert set(result["agreement"].round(4)) <= {1.0, 0.6667, 0.3333}
    truth = penguins.frame.loc[result["event_id"], "species"].to_numpy()
    assert (result.loc[result["accepted"], "label"].to_numpy() == truth[result["accepted"]]).mean() >= 0.9
    sent_back = [json.loads(line)["event-id"] for line in (out / "send_back.jsonl").read_text().splitlines()]
    assert sorted(map(int, sent_back)) == sorted(result.loc[result["agreement"] < 0.6, "event_id"])
    labelled = pd.read_csv(out / "labelled.csv")
    assert list(labelled.columns) == ["event_id", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
                                      "body_mass_g", "sex", "year", "species"]
    assert len(labelled) == int(result["accepted"].sum()) and "cat" in (out / "label.md").read_text()

    # The labelled table as it is: late labels for the monitor (joined by event id = the pool's row number)...
    from mlexp.monitor.run import MonitorSettings, MonitorViolations, monitor

    try:
        monitor(MonitorSettings(baseline=penguins.run, data=penguins.root / "pool.csv", labels=out / "labelled.csv",
                                checks=("data_quality", "model_quality")), tmp_path / "monitor")
    except MonitorViolations:
        pass
    summary = json.loads((tmp_path / "monitor" / "monitor.json").read_text())
    assert summary["windows"][0]["labelled"] == len(labelled) and set(summary["violations_by_type"]) <= {"LessThanThreshold"}
    quality = json.loads((tmp_path / "monitor" / "model_quality_statistics.json").read_text())
    metrics = quality["multiclass_classification_metrics"]
    baseline = json.loads((penguins.run / "baseline" / "model_quality_statistics.json").read_text())
    # The queue held the rows the model is least sure about: it is right on them less often than on all rows.
    assert metrics["accuracy"]["value"] < baseline["multiclass_classification_metrics"]["accuracy"]["value"]
    assert quality["dataset"]["item_count"] == len(labelled)
    assert sum(sum(row.values()) for row in metrics["confusion_matrix"].values()) == len(labelled)
    # ...and training data for a new run (the event id is not a feature).
    run_inprocess(["data=csv", f"data.path={out / 'labelled.csv'}", "data.target=species", "data.roles.drop=[event_id]",
                   "splitter.n_splits=2", "test_size=0.2"], tmp_path / "retrain")
    assert read_metrics(tmp_path / "retrain")["cv"]["accuracy"]["mean"] > 0.3


def test_dawid_skene_consolidation(penguins, queued, tmp_path):
    pytest.importorskip("crowdkit")
    from mlexp.monitor.consolidate import consolidate

    folder = _answers(penguins, {"ann": 0.0, "ben": 0.1, "cat": 0.7})
    result = consolidate(penguins.run, [str(folder / "*.jsonl")], tmp_path, method="dawid_skene")
    truth = penguins.frame.loc[result["event_id"].astype(int), "species"].to_numpy()
    majority = consolidate(penguins.run, [str(folder / "*.jsonl")], tmp_path, method="majority")
    assert (result["label"].to_numpy() == truth).mean() >= (majority["label"].to_numpy() == truth).mean()
    assert result["agreement"].between(0, 1).all() and result["accepted"].mean() > 0.8


def test_bad_answers_are_refused_clearly(penguins, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "{}", "species": 1}\n')
    done = _label(penguins, tmp_path / "bad", answers=bad)
    assert done.returncode == 2 and f"{bad}:1 is not an output manifest line" in done.stderr
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"source": "{}", "species": 0, "species-metadata": {"class-name": "Penguin?"}}) + "\n")
    from mlexp.errors import MlexpError
    from mlexp.monitor.consolidate import consolidate

    with pytest.raises(MlexpError, match=r"not classes of the model: \['Penguin\?'\]"):
        consolidate(penguins.run, [str(odd)], tmp_path)
    done = _label(penguins, tmp_path / "none")
    assert done.returncode == 2 and "label.pool" in done.stderr


def test_predict_with_capture_then_monitor(penguins, tmp_path):
    done = run_cli(["mode=predict", f"mode.run_dir={penguins.run}", f"mode.input={penguins.root / 'pool.csv'}",
                    "capture.enabled=true", f"capture.folder={tmp_path / 'capture'}", "hydra.run.dir=predict"], cwd=tmp_path)
    from mlexp.monitor.capture import read_capture

    captured = read_capture(tmp_path / "capture")
    assert len(captured) == len(penguins.frame) and "proba_Adelie" in captured.outputs.columns
    done = run_cli(["mode=monitor", f"monitor.baseline={penguins.run}", f"monitor.data={tmp_path / 'capture'}",
                    "hydra.run.dir=monitor"], cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "monitor" / "monitor.json").read_text())["rows"] == len(penguins.frame)


def test_multiclass_estimate_without_labels(penguins, tmp_path):
    """CBPE for three classes (one-vs-rest calibration): on the pool, the estimate is close to the real accuracy."""
    from mlexp.monitor.run import MonitorSettings, monitor

    summary = monitor(MonitorSettings(baseline=penguins.run, data=penguins.root / "pool.csv", checks=("estimate",)),
                      tmp_path / "estimate")
    estimated = summary["windows"][0]["estimated"]
    assert set(estimated) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    baseline = json.loads((penguins.run / "baseline" / "baseline.json").read_text())
    assert estimated["accuracy"] == pytest.approx(baseline["estimate_reference"]["accuracy"], abs=0.03)
    assert 0.95 < estimated["roc_auc"] <= 1.0
