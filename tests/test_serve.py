"""mode=serve: a real endpoint on a free 127.0.0.1 port, every route, every bad input, LRU, variants, capture, shutdown."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from palmerpenguins import load_penguins

from conftest import MLEXP, run_cli, run_inprocess

FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
CLASSES = {"Adelie", "Chinstrap", "Gentoo"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m mlexp mode=serve ...` in a subprocess on a free port; stopped (SIGTERM) by the fixture."""

    def __init__(self, args, cwd: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"server-{self.port}.log"
        self.process = subprocess.Popen(MLEXP + ["mode=serve", f"serve.port={self.port}", *args], cwd=cwd,
                                        stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                        env={**os.environ, "HYDRA_FULL_ERROR": "0"})
        from mlexp.serve.loadtest import wait_ready

        if not wait_ready(self.url + "/ping", 120, self.process):
            self.stop()
            raise AssertionError(f"the endpoint did not start:\n{self.log.read_text()[-3000:]}")
        self.client = httpx.Client(base_url=self.url, timeout=60, trust_env=False)

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three train runs on penguins: logistic regression, a small forest, a tree (same features); a regression."""
    root = tmp_path_factory.mktemp("runs")
    for name, overrides in {"a": ["model=logreg"], "b": ["model=random_forest", "model.n_estimators=10"],
                            "c": ["model=decision_tree"]}.items():
        run_inprocess(["data=penguins", *overrides, "report=false"], root / name)
    run_inprocess(["data=diabetes", "model=linear", "splitter=kfold", "report=false"], root / "regression" / "d")
    return root


@pytest.fixture(scope="module")
def rows():
    return load_penguins().dropna()[FEATURES].reset_index(drop=True)


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    cwd = tmp_path_factory.mktemp("serve")
    server = Server([f"serve.models={runs}", "serve.max_loaded=2",  # a folder of runs, named by their paths
                     "serve.variants=[{name: blue, model: a, weight: 0.7}, {name: green, model: b, weight: 0.3}]",
                     "serve.max_body_bytes=100000", "capture.enabled=true", f"capture.folder={cwd / 'capture'}",
                     "hydra.run.dir=endpoint"], cwd)
    server.capture = cwd / "capture"
    yield server
    assert server.stop() == 0
    assert "Traceback" not in server.log.read_text()


def _metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_ping_models_and_metrics_routes(server):
    ping = server.client.get("/ping")
    assert ping.status_code == 200 and ping.json()["status"] == "healthy"
    listed = server.client.get("/models").json()
    assert [m["name"] for m in listed["models"]] == ["a", "b", "c", "regression/d"] and listed["max_loaded"] == 2
    assert {v["name"]: v["weight"] for v in listed["variants"]} == {"blue": 0.7, "green": 0.3}
    metrics = server.client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE mlexp_model_latency_seconds histogram" in metrics.text
    assert "# TYPE mlexp_invocations_total counter" in metrics.text and "mlexp_requests_in_flight" in metrics.text
    assert server.client.get("/nope").status_code == 404
    assert server.client.get("/invocations").status_code == 405


def test_invocations_answer_labels_and_probabilities_of_the_saved_model(server, runs, rows):
    from mlexp.artifacts import load_model
    from mlexp.predict import predict_frame

    model, card = load_model(runs / "a")
    expected = predict_frame(model, card, rows.head(5))
    records = json.loads(rows.head(5).to_json(orient="records"))
    headers = {"X-Amzn-SageMaker-Target-Model": "a"}
    bodies = {
        "records": records, "one record": records[0], "instances": {"instances": records},
        "dataframe_split": {"dataframe_split": {"columns": FEATURES, "data": [list(r.values()) for r in records]}},
    }
    for kind, body in bodies.items():
        answer = server.client.post("/invocations", json=body, headers=headers)
        assert answer.status_code == 200, (kind, answer.text)
        got = pd.DataFrame(answer.json()["predictions"])
        want = expected.head(len(got)).reset_index(drop=True)
        assert list(got["prediction"]) == list(want["prediction"]), kind
        np.testing.assert_allclose(got[[c for c in got if c.startswith("proba_")]], want.drop(columns="prediction"),
                                   rtol=1e-12)
        assert answer.json()["model"] == "a" and answer.headers["X-Mlexp-Model"] == "a"
    csv_with_header = rows.head(5).to_csv(index=False)
    csv_without = rows.head(5).to_csv(index=False, header=False)
    for body in (csv_with_header, csv_without):
        answer = server.client.post("/models/a/invocations", content=body, headers={"content-type": "text/csv"})
        assert answer.status_code == 200, answer.text
        assert [p["prediction"] for p in answer.json()["predictions"]] == list(expected["prediction"])
    regression = server.client.post("/models/regression/d/invocations", content="age,sex,bmi,bp,s1,s2,s3,s4,s5,s6\n"
                                    "59,2,32.1,101,157,93.2,38,4,4.8598,87\n",  # diabetes row 0
                                    headers={"content-type": "text/csv"})
    assert regression.status_code == 200, regression.text
    assert list(regression.json()["predictions"][0]) == ["prediction"]
    reg_model, reg_card = load_model(runs / "regression" / "d")
    row = pd.DataFrame([[59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87]], columns=reg_card["features"])
    assert regression.json()["predictions"][0]["prediction"] == predict_frame(reg_model, reg_card, row)["prediction"][0]
    as_csv = server.client.post("/models/a/invocations", json=records, headers={"accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines()[0] == "prediction,proba_Adelie,proba_Chinstrap,proba_Gentoo"
    assert len(as_csv.text.splitlines()) == 6


@pytest.mark.parametrize("case,status,reason", [
    ("empty", 400, "empty request body"),
    ("malformed json", 400, "malformed JSON"),
    ("malformed csv", 400, "malformed CSV"),
    ("headerless csv, wrong width", 400, "must have 7 values"),
    ("wrong columns", 400, "missing columns: bill_length_mm"),
    ("wrong type", 400, "column 'bill_length_mm' must be numeric; got 'long' in row 0"),
    ("boolean for a number", 400, "must be numeric; got a boolean"),
    ("nested value", 400, "a value must be a number, string, bool or null"),
    ("not records", 400, "every JSON row must be an object"),
    ("json scalar", 400, "JSON body must be a record"),
    ("content type", 415, "Content-Type text/plain is not supported"),
    ("declared huge body", 413, "over the limit of 100000"),
    ("streamed huge body", 413, "over the limit of 100000"),
    ("unknown model", 404, "no model named 'zebra'"),
    ("unknown variant", 404, "no variant named 'purple'"),
    ("model and variant", 400, "not both"),
])
def test_bad_input_gets_a_4xx_with_a_one_line_reason_and_the_server_stays_up(server, rows, case, status, reason):
    record = json.loads(rows.head(1).to_json(orient="records"))[0]
    post = server.client.post
    target = {"X-Amzn-SageMaker-Target-Model": "a"}
    answer = {
        "empty": lambda: post("/invocations", content=b"", headers={**target, "content-type": "application/json"}),
        "malformed json": lambda: post("/invocations", content=b'[{"island": "Dream"', headers={
            **target, "content-type": "application/json"}),
        "malformed csv": lambda: post("/invocations", content=rows.head(1).to_csv(index=False) + "Dream,1,2,3,4,5,6,7,8\n",
                                      headers={**target, "content-type": "text/csv"}),
        "headerless csv, wrong width": lambda: post("/invocations", content="Dream,2007\n", headers={
            **target, "content-type": "text/csv"}),
        "wrong columns": lambda: post("/invocations", json=[{"island": "Dream", "colour": "blue"}], headers=target),
        "wrong type": lambda: post("/invocations", json=[{**record, "bill_length_mm": "long"}], headers=target),
        "boolean for a number": lambda: post("/invocations", json=[{**record, "year": True}], headers=target),
        "nested value": lambda: post("/invocations", json=[{**record, "sex": ["male"]}], headers=target),
        "not records": lambda: post("/invocations", json=[[1, 2, 3]], headers=target),
        "json scalar": lambda: post("/invocations", json=42, headers=target),
        "content type": lambda: post("/invocations", content=b"hello", headers={**target, "content-type": "text/plain"}),
        "declared huge body": lambda: post("/invocations", json=[record] * 2000, headers=target),
        "streamed huge body": lambda: post("/invocations", content=(json.dumps(record).encode() for _ in range(2000)),
                                           headers={**target, "content-type": "application/json"}),
        "unknown model": lambda: post("/models/zebra/invocations", json=[record]),
        "unknown variant": lambda: post("/invocations", json=[record], headers={"X-Amzn-SageMaker-Target-Variant": "purple"}),
        "model and variant": lambda: post("/invocations", json=[record], headers={
            **target, "X-Amzn-SageMaker-Target-Variant": "blue"}),
    }[case]()
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert reason in detail and "\n" not in detail
    assert server.client.get("/ping").status_code == 200
    assert _metric(server.client.get("/metrics").text, "mlexp_invocations_total", status="500") == 0


def test_lru_unloads_the_least_recently_used_model(server, rows):
    body = json.loads(rows.head(1).to_json(orient="records"))

    def loaded():
        return {m["name"] for m in server.client.get("/models").json()["models"] if m["loaded"]}

    def ask(name):
        assert server.client.post(f"/models/{name}/invocations", json=body).status_code == 200

    ask("a"), ask("b")  # b most recent
    assert loaded() == {"a", "b"}
    before = _metric(server.client.get("/metrics").text, "mlexp_model_events_total", model="a", event="unload")
    ask("b"), ask("c")  # a is the least recently used: it goes
    assert loaded() == {"b", "c"}
    metrics = server.client.get("/metrics").text
    assert _metric(metrics, "mlexp_model_events_total", model="a", event="unload") == before + 1
    assert _metric(metrics, "mlexp_model_events_total", model="c", event="load") >= 1
    ask("a")  # back on first use; now b goes
    assert loaded() == {"c", "a"}
    assert _metric(server.client.get("/metrics").text, "mlexp_loaded_models") == 2


def test_variants_split_traffic_by_weight_and_metrics_count_each(server, rows):
    from concurrent.futures import ThreadPoolExecutor

    bodies = [json.loads(rows.iloc[[i % len(rows)]].to_json(orient="records")) for i in range(1000)]
    before = server.client.get("/metrics").text

    def ask(body):
        answer = server.client.post("/invocations", json=body)
        assert answer.status_code == 200
        variant = answer.headers["X-Amzn-Invoked-Production-Variant"]
        assert answer.json()["variant"] == variant and answer.json()["model"] == {"blue": "a", "green": "b"}[variant]
        return variant

    with ThreadPoolExecutor(4) as pool:  # httpx.Client is thread-safe; 4 connections
        answered = list(pool.map(ask, bodies))
    share = answered.count("blue") / len(answered)
    assert abs(share - 0.7) < 0.05, share  # binomial sd over 1,000 requests: 0.0145
    after = server.client.get("/metrics").text
    for variant in ("blue", "green"):
        counted = (_metric(after, "mlexp_invocations_total", variant=variant, status="200")
                   - _metric(before, "mlexp_invocations_total", variant=variant, status="200"))
        assert counted == answered.count(variant)
        assert _metric(after, "mlexp_model_latency_seconds_count", variant=variant) >= answered.count(variant)
    asked = server.client.post("/invocations", json=bodies[0], headers={"X-Amzn-SageMaker-Target-Variant": "green"})
    assert asked.headers["X-Amzn-Invoked-Production-Variant"] == "green"


def test_capture_records_each_row_with_its_prediction_and_event_id(server, rows):
    from mlexp.monitor.capture import read_capture

    sent = rows.iloc[10:13]
    answer = server.client.post("/invocations", json=json.loads(sent.to_json(orient="records")),
                                headers={"X-Amzn-SageMaker-Target-Variant": "green",
                                         "X-Amzn-SageMaker-Inference-Id": "order-17"})
    assert answer.status_code == 200 and answer.json()["event_ids"] == ["order-17-0", "order-17-1", "order-17-2"]
    captured = read_capture(server.capture)
    mine = captured.meta["event_id"].str.startswith("order-17-").to_numpy()
    assert mine.sum() == 3
    assert set(captured.meta.loc[mine, "variant"]) == {"green"} and set(captured.meta.loc[mine, "endpoint"]) == {"b"}
    pd.testing.assert_frame_equal(captured.inputs[mine].reset_index(drop=True)[FEATURES],
                                  sent.reset_index(drop=True), check_dtype=False)
    outputs = captured.outputs[mine].reset_index(drop=True)
    assert list(outputs["prediction"]) == [p["prediction"] for p in answer.json()["predictions"]]
    assert set(captured.meta["variant"]) <= {"blue", "green", "AllTraffic"}


def test_graceful_shutdown_finishes_the_request_in_flight_and_flushes_capture(tmp_path, rows):
    run_inprocess(["data=penguins", "model=random_forest", "model.n_estimators=100", "report=false"], tmp_path / "big")
    server = Server([f"serve.models=[{tmp_path / 'big'}]", "capture.enabled=true", "hydra.run.dir=endpoint"], tmp_path)
    body = pd.concat([rows] * 60, ignore_index=True).to_csv(index=False)  # 20k rows: a slow request
    result = {}
    worker = threading.Thread(target=lambda: result.update(answer=server.client.post(
        "/invocations", content=body, headers={"content-type": "text/csv"})))
    try:
        worker.start()
        for _ in range(2000):  # until the endpoint says the request is being answered
            if _metric(server.client.get("/metrics").text, "mlexp_requests_in_flight") >= 1:
                break
        else:
            raise AssertionError("the request never showed as in flight")
        server.process.send_signal(signal.SIGTERM)
        worker.join(timeout=120)
        assert result["answer"].status_code == 200 and len(result["answer"].json()["predictions"]) == 60 * len(rows)
        assert server.process.wait(timeout=60) == 0
    finally:
        server.stop()
    from mlexp.monitor.capture import read_capture

    assert len(read_capture(tmp_path / "endpoint" / "capture")) == 60 * len(rows)  # every line whole
    assert "endpoint stopped: captures flushed" in server.log.read_text()


def _tamper(run: Path, target: Path, how: str) -> None:
    shutil.copytree(run, target)
    model = target / "model.skops"
    if how == "garbage":
        model.write_bytes(b"not a zip file at all")
        return
    with zipfile.ZipFile(model) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    schema = files["schema.json"].decode()
    schema = schema.replace('"__module__": "sklearn.linear_model._logistic"', '"__module__": "subprocess"')
    files["schema.json"] = schema.replace('"__class__": "LogisticRegression"', '"__class__": "Popen"').encode()
    with zipfile.ZipFile(model, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def test_a_tampered_model_is_refused_before_serving_starts(runs, tmp_path):
    _tamper(runs / "a", tmp_path / "tampered", "unknown type")
    done = run_cli(["mode=serve", f"serve.models=[{runs / 'b'},{tmp_path / 'tampered'}]", f"serve.port={_free_port()}"],
                   cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert "model 'tampered' cannot be served" in done.stderr
    assert "holds types mlexp does not trust: subprocess.Popen" in done.stderr
    assert "Uvicorn running" not in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_a_damaged_model_file_is_refused_too(runs, tmp_path):
    from mlexp.errors import MlexpError
    from mlexp.serve.spec import spec_from_config

    _tamper(runs / "a", tmp_path / "damaged", "garbage")
    with pytest.raises(MlexpError, match="model 'damaged' cannot be served: .* is not a readable skops model file"):
        spec_from_config({"models": [str(tmp_path / "damaged")]}, None, 0, tmp_path)


def test_a_model_calling_builtins_is_not_trusted(tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from mlexp.artifacts import check_model_file
    from mlexp.errors import MlexpError

    tmp_path.mkdir(exist_ok=True)
    sio.dump(FunctionTransformer(func=eval), tmp_path / "model.skops")  # would call eval() on the request
    with pytest.raises(MlexpError, match="builtins.eval"):
        check_model_file(tmp_path)


def test_serve_config_is_checked_before_serving(runs, tmp_path):
    from mlexp.errors import MlexpError
    from mlexp.serve.spec import spec_from_config

    def spec(**serve):
        return spec_from_config(serve, None, 0, tmp_path)

    with pytest.raises(MlexpError, match="mode=serve needs serve.models"):
        spec()
    with pytest.raises(MlexpError, match="neither a name in serve.models"):
        spec(models=[str(runs / "a")], variants=[{"name": "x", "model": "nope", "weight": 1}])
    with pytest.raises(MlexpError, match="add up to 0"):
        spec(models=[str(runs / "a")], variants=[{"name": "x", "model": "a", "weight": 0}])
    with pytest.raises(MlexpError, match="holds no train run"):
        spec(models=[str(tmp_path)])
    folder = spec(models=[str(runs)])  # a folder of runs: each named by its path inside it
    assert folder.models == {"a": str(runs / "a"), "b": str(runs / "b"), "c": str(runs / "c"),
                             "regression/d": str(runs / "regression" / "d")}
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in folder.sha256.values())
    assert spec(models={"churn": str(runs / "a")}).models == {"churn": str(runs / "a")}  # named by a mapping
    with pytest.raises(MlexpError, match="serve.models.churn=.* is not a train run's directory"):
        spec(models={"churn": str(runs)})
    by_path = spec(models=[str(runs / "a")], variants=[{"name": "v2", "model": str(runs / "b"), "weight": 1}])
    assert by_path.models == {"a": str(runs / "a"), "v2": str(runs / "b")}


def test_a_port_in_use_is_a_clear_error():
    from mlexp.errors import MlexpError
    from mlexp.serve.server import _check_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(MlexpError, match=r"cannot listen on 127.0.0.1:\d+ .*serve.port="):
            _check_port("127.0.0.1", taken.getsockname()[1])
