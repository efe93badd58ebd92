"""mode=recommend: a short real load test on 127.0.0.1, per-profile estimates, the cheapest profile meeting the target."""

import json

import pytest

from conftest import run_cli
from mlexp.serve.estimate import Target, at_rate, at_users, cheapest, estimate_profile, scaling_efficiency, why_none

# One worker measured at 1, 2 and 4 users: 100 -> 180 -> 200 requests/s, p95 5 -> 10 -> 30 ms.
CURVE = [{"users": 1, "rps": 100.0, "p95_ms": 5.0}, {"users": 2, "rps": 180.0, "p95_ms": 10.0},
         {"users": 4, "rps": 200.0, "p95_ms": 30.0}]
M5 = {"name": "ml.m5.xlarge", "family": "m5", "vcpus": 4, "price_per_hour": 0.23, "gpus": 0}
C5 = {"name": "ml.c5.2xlarge", "family": "c5", "vcpus": 8, "price_per_hour": 0.408, "gpus": 0}
G5 = {"name": "ml.g5.xlarge", "family": "g5", "vcpus": 4, "price_per_hour": 1.408, "gpus": 1, "accelerator": "nvidia-a10g"}


def test_scaling_efficiency_and_the_one_worker_curve():
    assert scaling_efficiency({1: 100.0, 2: 150.0}) == 0.5
    assert scaling_efficiency({1: 100.0, 4: 400.0}) == 1.0
    assert scaling_efficiency({1: 100.0, 2: 90.0}) == 0.0  # slower with more workers: no gain, not negative
    assert scaling_efficiency({1: 100.0}) is None
    assert at_rate(CURVE, 140.0) == pytest.approx(7.5)  # halfway between 100 and 180 requests/s
    assert at_rate(CURVE, 250.0) is None  # beyond one worker's capacity
    assert at_users(CURVE, 3) == {"rps": pytest.approx(190.0), "p95_ms": pytest.approx(20.0)}
    assert at_users(CURVE, 8) == {"rps": 200.0, "p95_ms": pytest.approx(60.0)}  # queueing: Little's law


def test_profiles_are_estimated_from_vcpus_and_the_cheapest_meeting_the_target_wins():
    target = Target(max_p95_ms=8.0, min_rps=420.0)
    m5, c5, g5 = (estimate_profile(p, CURVE, 0.5, target, cores=2, rows_per_request=1, gpu_here=False)
                  for p in (M5, C5, G5))
    assert m5["workers_equivalent"] == 2.5 and m5["estimated_capacity_rps"] == 500.0
    assert m5["estimated_p95_ms"] == pytest.approx(at_rate(CURVE, 420.0 / 2.5), abs=0.01)  # 168 req/s per worker
    assert m5["failed"] == ["max_p95_ms"]
    assert c5["workers_equivalent"] == 4.5 and c5["estimated_p95_ms"] == pytest.approx(at_rate(CURVE, 420 / 4.5), abs=0.01)
    assert c5["meets_target"] and c5["cost_per_million_predictions"] == pytest.approx(0.408 / (900 * 3600) * 1e6, abs=1e-4)
    assert "nvidia-a10g not measured (no GPU on this machine)" in g5["note"]
    assert cheapest([m5, c5, g5])["name"] == "ml.c5.2xlarge"
    impossible = Target(max_p95_ms=1.0, min_rps=5000.0)
    estimates = [estimate_profile(p, CURVE, 0.5, impossible, 2, 1, False) for p in (M5, C5)]
    assert cheapest(estimates) is None
    message = why_none(estimates, impossible)
    assert "max_p95_ms=1: the lowest estimated p95 is none (every profile saturated)" in message
    assert "min_rps=5000: the highest estimated throughput is 900 requests/s (ml.c5.2xlarge)" in message


def test_a_traffic_pattern_is_estimated_at_its_peak_users():
    target = Target(max_p95_ms=25.0, min_rps=0.0, peak_users=10)
    m5 = estimate_profile(M5, CURVE, 0.5, target, 2, 1, False)  # 10 users over 2.5 workers: 4 each
    assert m5["estimated_p95_ms"] == 30.0 and m5["failed"] == ["max_p95_ms"]
    c5 = estimate_profile(C5, CURVE, 0.5, target, 2, 1, False)  # 10 / 4.5 = 2.22 users each
    assert c5["meets_target"] and c5["estimated_rps"] == pytest.approx(4.5 * (180 + 20 * 0.111), rel=1e-2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommend")
    run_cli(["data=penguins", "report=false", "hydra.run.dir=train"], cwd=root)
    return root


@pytest.mark.slow
def test_recommend_load_tests_the_endpoint_and_writes_a_recommendation(run_dir):
    done = run_cli(["mode=recommend", "recommend.run=train", "recommend.concurrency=[1,2]", "recommend.duration_s=1",
                    "recommend.workers=[1,2]", "recommend.max_p95_ms=2000", "recommend.min_rps=1",
                    "recommend.phases=[{users: 1, ramp_s: 0, duration_s: 1}, {users: 3, ramp_s: 0.5, duration_s: 1}]",
                    "hydra.run.dir=rec"], cwd=run_dir)
    report = json.loads((run_dir / "rec" / "recommendation.json").read_text())
    assert [(m["workers"], m["users"]) for m in report["measurements"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all(m["requests"] > 0 and m["errors"] == 0 and m["p50_ms"] <= m["p95_ms"] <= m["p99_ms"]
               for m in report["measurements"])
    assert [p["users"] for p in report["traffic_pattern"]] == [1, 3]
    assert all(p["requests"] > 0 and p["errors"] == 0 for p in report["traffic_pattern"])
    names = {p["name"] for p in report["profiles"]}
    assert {"local", "ml.m5.xlarge", "ml.c5.2xlarge", "ml.g5.xlarge", "ml.inf1.xlarge"} <= names
    meeting = [p for p in report["profiles"] if p["meets_target"] and p["family"] != "local"]
    assert report["recommendation"]["name"] == min(meeting, key=lambda p: p["price_per_hour"])["name"]
    assert report["scaling_efficiency"] is not None and 0 <= report["scaling_efficiency"] <= 1
    assert "estimates from this machine" in report["estimate"]
    assert f"recommended: {report['recommendation']['name']}" in done.stdout
    assert (run_dir / "rec" / "recommendation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_recommend_says_which_constraint_no_profile_meets(run_dir):
    done = run_cli(["mode=recommend", "recommend.run=train", "recommend.concurrency=[1]", "recommend.duration_s=0.5",
                    "recommend.workers=[1]", "recommend.max_p95_ms=0.001", "recommend.min_rps=1",
                    "recommend.profiles=[ml.m5.xlarge,ml.c5.2xlarge]", "hydra.run.dir=rec_none"], cwd=run_dir, check=False)
    assert done.returncode == 3, done.stderr
    assert "no instance profile meets the target: max_p95_ms=0.001: the lowest estimated p95 is" in done.stderr
    assert "min_rps=1:" not in done.stderr  # throughput was not the problem
    report = json.loads((run_dir / "rec_none" / "recommendation.json").read_text())
    assert report["recommendation"] is None and {p["name"] for p in report["profiles"]} == {"ml.m5.xlarge", "ml.c5.2xlarge"}
    assert report["scaling_efficiency"] is None  # one worker count measured: said, not guessed


def test_recommend_needs_a_run(tmp_path):
    done = run_cli(["mode=recommend"], cwd=tmp_path, check=False)
    assert done.returncode == 2 and "mode=recommend needs recommend.run=" in done.stderr


def test_request_bodies_are_real_rows_of_the_run_data_or_of_recommend_input(run_dir):
    import pandas as pd
    from palmerpenguins import load_penguins

    from conftest import compose
    from mlexp.errors import MlexpError
    from mlexp.serve.recommend import _bodies, _check

    cfg = compose(["mode=recommend", "recommend.sample_rows=50", "recommend.rows_per_request=5"])
    bodies = [json.loads(b) for b in _bodies(cfg, run_dir / "train")]
    assert len(bodies) == 10 and all(len(b) == 5 for b in bodies)  # 50 sampled rows, 5 per request
    penguins = load_penguins().dropna()
    sent = pd.DataFrame([row for body in bodies for row in body])
    assert list(sent.columns) == json.loads((run_dir / "train" / "model.json").read_text())["features"]
    assert sent.merge(penguins, on=list(sent.columns)).shape[0] == 50  # every row is a real penguin
    penguins.head(7).to_csv(run_dir / "rows.csv", index=False)
    cfg = compose(["mode=recommend", f"recommend.input={run_dir / 'rows.csv'}"])
    assert len(_bodies(cfg, run_dir / "train")) == 7
    with pytest.raises(MlexpError, match="must include 1"):
        _check(compose(["mode=recommend", "recommend.workers=[2,4]"]).recommend, [2, 4], [])
