"""The data capture the monitor reads: sampling, the record format, and whole lines after a kill -9."""

import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pandas as pd

from mlexp.monitor.capture import CaptureWriter, capture_files, iter_capture, read_capture


def _frames(n):
    inputs = pd.DataFrame({"age": range(n), "city": ["Paris", "Lyon"] * (n // 2)})
    return inputs, pd.DataFrame({"prediction": [i % 2 for i in range(n)], "proba_1": [0.25] * n})


def test_sampling_is_seeded_and_records_follow_sagemakers_format(tmp_path):
    inputs, outputs = _frames(2000)
    when = datetime(2026, 3, 1, 13, 5, tzinfo=timezone.utc)
    ids = []
    for run in ("a", "b"):
        with CaptureWriter(tmp_path / run, endpoint="model", sampling_percentage=25, seed=7) as writer:
            ids.append(writer.write(inputs, outputs, event_ids=[f"e{i}" for i in range(2000)], when=when))
    assert ids[0] == ids[1] and 400 < len(ids[0]) < 600
    files = capture_files(tmp_path / "a")
    assert [p.relative_to(tmp_path / "a").parts[:6] for p in files] == [("model", "AllTraffic", "2026", "03", "01", "13")]
    record = json.loads(files[0].read_text().splitlines()[0])
    assert record["eventVersion"] == "0" and record["eventMetadata"]["inferenceTime"] == "2026-03-01T13:05:00.000Z"
    assert record["captureData"]["endpointInput"]["encoding"] == "JSON"
    captured = read_capture(tmp_path / "a")
    assert list(captured.meta["event_id"]) == ids[0] and list(captured.inputs.columns) == ["age", "city"]
    assert sum(len(chunk) for chunk in iter_capture(tmp_path / "a", chunk_rows=100)) == len(ids[0])


def test_a_killed_writer_leaves_whole_lines(tmp_path):
    script = (
        "import pandas as pd, sys\n"
        "from mlexp.monitor.capture import CaptureWriter\n"
        "frame = pd.DataFrame({'text': ['x' * 2000] * 200})\n"
        "writer = CaptureWriter(sys.argv[1], endpoint='m')\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    writer.write(frame, frame)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    lines = [line for path in capture_files(tmp_path) for line in path.read_text().splitlines()]
    assert len(lines) >= 200 and all(json.loads(line)["eventVersion"] == "0" for line in lines)
    assert len(read_capture(tmp_path)) == len(lines)
