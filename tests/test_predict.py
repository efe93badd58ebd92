"""mode=predict: chunked batch transform (CSV/Parquet in and out), capture, lineage, and refusals that keep files safe."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins

from conftest import run_cli, run_inprocess


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A penguins random forest run and a table of new rows (CSV and Parquet), shared by the tests here."""
    root = tmp_path_factory.mktemp("predict")
    run_inprocess(["data=penguins", "model=random_forest", "model.n_estimators=20", "report=false"], root / "train")
    rows = load_penguins().dropna().drop(columns=["species"]).reset_index(drop=True)
    rows.to_csv(root / "new.csv", index=False)
    rows.to_parquet(root / "new.parquet")
    return root, rows


def _expected(root: Path, rows: pd.DataFrame) -> pd.DataFrame:
    from mlexp.artifacts import load_model
    from mlexp.predict import predict_frame

    model, card = load_model(root / "train")
    return predict_frame(model, card, rows)


def test_chunked_csv_to_parquet_matches_whole_table_and_writes_capture_and_lineage(trained, tmp_path):
    root, rows = trained
    run_cli(["mode=predict", f"mode.run_dir={root / 'train'}", f"mode.input={root / 'new.csv'}",
             "mode.output=out.parquet", "mode.chunk_rows=50", "capture.enabled=true", "hydra.run.dir=pred"], cwd=tmp_path)
    out = pd.read_parquet(tmp_path / "pred" / "out.parquet")
    pd.testing.assert_frame_equal(out, _expected(root, rows).reset_index(drop=True))
    lineage = json.loads((tmp_path / "pred" / "lineage.json").read_text())
    assert lineage["mode"] == "predict" and lineage["status"] == "completed"
    assert lineage["rows"] == {"read": len(rows), "predicted": len(rows), "chunks": 7}  # 333 rows in chunks of 50
    assert lineage["input"]["path"] == str(root / "new.csv")
    assert lineage["input"]["sha256"] == hashlib.sha256((root / "new.csv").read_bytes()).hexdigest()
    assert lineage["model"]["run_dir"] == str(root / "train")
    assert lineage["model"]["sha256"] == hashlib.sha256((root / "train" / "model.skops").read_bytes()).hexdigest()
    trained_lineage = json.loads((root / "train" / "lineage.json").read_text())
    assert lineage["model"]["train_config_hash"] == trained_lineage["config_hash"]
    assert lineage["output"]["path"] == str(tmp_path / "pred" / "out.parquet") and lineage["output"]["format"] == "parquet"
    assert lineage["packages"]["scikit-learn"] and lineage["started"] <= lineage["finished"]
    assert lineage["overrides"][0] == "mode=predict" and len(lineage["config_hash"]) == 64
    from mlexp.monitor.capture import read_capture

    captured = read_capture(tmp_path / "pred" / "capture")
    assert len(captured) == len(rows) == lineage["capture"]["rows"]
    assert set(captured.meta["endpoint"]) == {"train"} and set(captured.meta["variant"]) == {"AllTraffic"}
    assert list(captured.outputs["prediction"]) == list(out["prediction"])
    np.testing.assert_allclose(captured.inputs["bill_length_mm"], rows["bill_length_mm"])


def test_parquet_to_csv_in_chunks(trained, tmp_path):
    root, rows = trained
    done = run_cli(["mode=predict", f"mode.run_dir={root / 'train'}", f"mode.input={root / 'new.parquet'}",
                    "mode.chunk_rows=100", "hydra.run.dir=pred"], cwd=tmp_path, env={"MLEXP_PROGRESS": "1"})
    assert re.search(r"predict: +\d+%\|.*\| [\d.]+/333 ", done.stderr), done.stderr[-500:]  # the progress bar
    out = pd.read_csv(tmp_path / "pred" / "predictions.csv")
    expected = _expected(root, rows).reset_index(drop=True)
    assert list(out["prediction"]) == list(expected["prediction"])
    np.testing.assert_allclose(out.drop(columns="prediction"), expected.drop(columns="prediction"))
    assert json.loads((tmp_path / "pred" / "lineage.json").read_text())["rows"]["chunks"] == 4


def test_an_existing_output_is_refused_unless_overwrite_is_set(trained, tmp_path):
    """Issue 9: mode.output overwrote any file, even a train run's metrics.json, and exited 0."""
    root, _ = trained
    metrics = root / "train" / "metrics.json"
    before = metrics.read_bytes()
    done = run_cli(["mode=predict", f"mode.run_dir={root / 'train'}", f"mode.input={root / 'new.csv'}",
                    f"mode.output={metrics}", "hydra.run.dir=pred"], cwd=tmp_path, check=False)
    assert done.returncode == 2 and metrics.read_bytes() == before
    assert f"mode.output={metrics} already exists" in done.stderr and "mode.overwrite=true" in done.stderr
    old = tmp_path / "old.csv"
    old.write_text("stale\n")
    run_cli(["mode=predict", f"mode.run_dir={root / 'train'}", f"mode.input={root / 'new.csv'}", f"mode.output={old}",
             "mode.overwrite=true", "hydra.run.dir=pred2"], cwd=tmp_path)
    assert pd.read_csv(old).columns[0] == "prediction"


def test_predict_without_input_names_mode_input(trained, tmp_path):
    """Issue 9: the advice was 'data file not found: .../None. Set data.path'."""
    root, _ = trained
    done = run_cli(["mode=predict", f"mode.run_dir={root / 'train'}", "hydra.run.dir=pred"], cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert "mode=predict needs mode.input=" in done.stderr
    assert "None" not in done.stderr and "data.path" not in done.stderr


def test_a_bad_chunk_fails_clearly_and_leaves_no_complete_looking_output(trained, tmp_path):
    root, rows = trained
    bad = rows.astype({"bill_length_mm": object})
    bad.loc[120, "bill_length_mm"] = "long"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    done = run_cli(["mode=predict", f"mode.run_dir={root / 'train'}", f"mode.input={tmp_path / 'bad.csv'}",
                    "mode.chunk_rows=100", "hydra.run.dir=pred"], cwd=tmp_path, check=False)
    assert done.returncode == 2 and "rows 100-199 of" in done.stderr, done.stderr
    assert not (tmp_path / "pred" / "predictions.csv").exists()
    assert len(pd.read_csv(tmp_path / "pred" / "predictions.csv.partial")) == 100  # the chunk before, kept aside
    lineage = json.loads((tmp_path / "pred" / "lineage.json").read_text())
    assert lineage["status"] == "failed" and "rows 100-199" in lineage["error"]
