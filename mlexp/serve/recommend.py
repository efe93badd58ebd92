"""mode=recommend: load-test a run's endpoint on this machine and recommend the cheapest instance profile meeting a target.

Writes ``recommendation.json`` (measurements, per-profile estimates, the choice) and
``recommendation.png`` (cost per hour vs estimated p95 per profile) in the run directory.
"""

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError
from mlexp.serve.estimate import Target, cheapest, estimate_profile, scaling_efficiency, why_none

__all__ = ["run_recommend", "NoProfileMeetsTarget"]

log = logging.getLogger("mlexp")


class NoProfileMeetsTarget(MlexpError):
    """No profile meets the target: recommendation.json is written; exit 3 tells a script."""

    exit_code = 3


def run_recommend(cfg: DictConfig) -> None:
    """`mode=recommend`: measure, estimate per profile, write recommendation.json + plot; no objective."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import to_absolute_path

    from mlexp.instance import gpu_available
    from mlexp.serve import require_serve_extra

    require_serve_extra("recommend")
    from mlexp.serve.loadtest import run_load, run_phases

    node = cfg.recommend
    if not node.get("run"):
        raise MlexpError("mode=recommend needs recommend.run=<a train run's directory>, e.g. "
                         "mlexp mode=recommend recommend.run=outputs/2026-01-01/12-00-00 recommend.max_p95_ms=50")
    model_dir = Path(to_absolute_path(node.run))
    out = Path(HydraConfig.get().runtime.output_dir)
    cores = os.cpu_count() or 1
    workers = sorted(set(node.workers or [1, cores]))
    phases = [OmegaConf.to_container(p) for p in node.phases]
    _check(node, workers, phases)
    target = Target(float(node.max_p95_ms), float(node.min_rps), max((p["users"] for p in phases), default=None))
    profiles = _profiles(node.profiles)
    bodies = _bodies(cfg, model_dir)
    log.info("recommend: %d request bodies of %d row(s) from %s", len(bodies), node.rows_per_request, model_dir)

    measured: List[Dict[str, Any]] = []
    pattern: List[Dict[str, Any]] = []
    for count in workers:
        with _endpoint(cfg, model_dir, count, out) as url:
            run_load(url, bodies, count, 1.0, 50 * count, node.request_timeout_s)  # warm up every worker
            for users in node.concurrency:
                step = run_load(url, bodies, int(users), node.duration_s, node.max_requests, node.request_timeout_s)
                measured.append({"workers": count, **step.summary()})
                _log_step(measured[-1])
            if phases and count == workers[-1]:
                for phase, result in zip(phases, run_phases(url, bodies, phases, node.max_requests,
                                                             node.request_timeout_s)):
                    pattern.append({"workers": count, **phase, **result.summary()})
                    _log_step(pattern[-1], "phase")
    if all(m["requests"] == 0 for m in measured):
        statuses = {k: v for m in measured for k, v in m.get("statuses", {}).items()}
        raise MlexpError(f"the endpoint answered no request successfully during the load test ({statuses}); see "
                         f"{out}/endpoint-*.log. Check recommend.input's columns against the model's features.")

    curve = [m for m in measured if m["workers"] == 1 and m["requests"] > 0]
    efficiency = scaling_efficiency({w: max(m["rps"] for m in measured if m["workers"] == w) for w in workers})
    estimates = [estimate_profile(p, curve, efficiency, target, cores, int(node.rows_per_request), gpu_available())
                 for p in profiles]
    candidates = [e for e in estimates if e["family"] != "local"]  # this machine is measured, not recommended
    choice = cheapest(candidates)
    message = (f"recommended: {choice['name']}" if choice else why_none(candidates, target)) if candidates else \
        "no instance profile to choose from besides this machine: add profiles to conf/instance/ or recommend.profiles."
    report = {
        "run": str(model_dir), "target": {"max_p95_ms": target.max_p95_ms, "min_rps": target.min_rps,
                                          "phases": phases},
        "machine": {"cores": cores, "gpu": gpu_available(), "load_average": [round(x, 2) for x in os.getloadavg()]},
        "estimate": "Throughput and p95 per profile are estimates from this machine: a profile with V vCPUs is "
                    "taken as 1 + (V-1) x scaling_efficiency single-worker endpoints like the one measured here.",
        "rows_per_request": int(node.rows_per_request), "measurements": measured, "traffic_pattern": pattern,
        "scaling_efficiency": efficiency, "profiles": estimates, "recommendation": choice, "message": message,
    }
    (out / "recommendation.json").write_text(json.dumps(report, indent=2))
    _plot(estimates, choice, target, out / "recommendation.png")
    _print(report)
    if choice is None:
        raise NoProfileMeetsTarget(message)


def _check(node: DictConfig, workers: List[int], phases: List[Dict[str, Any]]) -> None:
    if 1 not in workers or min(workers) < 1:
        raise MlexpError(f"recommend.workers={workers} must include 1 (the one-worker curve is what profiles are "
                         "estimated from) and only counts of at least 1.")
    if not node.concurrency or min(node.concurrency) < 1:
        raise MlexpError("recommend.concurrency must list user counts of at least 1, e.g. [1,2,4,8].")
    if node.duration_s <= 0 or node.max_requests < 1 or node.rows_per_request < 1 or node.sample_rows < 1:
        raise MlexpError("recommend.duration_s, max_requests, rows_per_request and sample_rows must be positive.")
    for phase in phases:
        if phase["users"] < 1 or phase["duration_s"] <= 0 or not 0 <= phase["ramp_s"] <= phase["duration_s"]:
            raise MlexpError(f"recommend.phases: {phase} needs users >= 1, duration_s > 0 and 0 <= ramp_s <= duration_s.")


def _profiles(names: Any) -> List[Dict[str, Any]]:
    """Every instance profile (or those named), composed like `instance=<name>` would be."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    available = loader.get_group_options("instance")
    chosen = list(names) if names else available
    unknown = [n for n in chosen if n not in available]
    if unknown:
        raise MlexpError(f"recommend.profiles names unknown instance options {unknown}; available: {', '.join(available)}.")
    return [OmegaConf.to_container(compose(config_name="config", overrides=[f"instance={n}"]).instance, resolve=True)
            for n in chosen]


def _bodies(cfg: DictConfig, model_dir: Path) -> List[bytes]:
    """JSON request bodies of real rows: recommend.input, else the train run's own data (from its .hydra/config.yaml)."""
    from mlexp.artifacts import CARD_FILE, check_model_file

    check_model_file(model_dir)
    node = cfg.recommend
    card = json.loads((model_dir / CARD_FILE).read_text()) if (model_dir / CARD_FILE).is_file() else {}
    if node.get("input"):
        from mlexp.data.loaders import read_table

        frame = read_table(node.input)
    else:
        saved = model_dir / ".hydra" / "config.yaml"
        if not saved.is_file():
            raise MlexpError(f"{model_dir} has no .hydra/config.yaml to find its data: set recommend.input=<a CSV or "
                             "Parquet file of rows like the training data>.")
        from mlexp.data import load_dataset

        train_cfg = OmegaConf.load(saved)
        frame = load_dataset(train_cfg.data, task=train_cfg.get("task", "auto")).features
    features = [c for c in card.get("features") or frame.columns if c in frame.columns]
    frame = frame[features].sample(n=min(int(node.sample_rows), len(frame)), random_state=cfg.get("seed", 0))
    k = int(node.rows_per_request)
    return [frame.iloc[i:i + k].to_json(orient="records", date_format="iso").encode()
            for i in range(0, max(1, len(frame) - k + 1), k)]


@contextlib.contextmanager
def _endpoint(cfg: DictConfig, model_dir: Path, workers: int, out: Path) -> Iterator[str]:
    """The run's endpoint on a free 127.0.0.1 port with ``workers`` processes, stopped with SIGTERM on exit."""
    from mlexp.serve.loadtest import wait_ready
    from mlexp.serve.spec import spec_from_config

    serve = OmegaConf.to_container(cfg.serve, resolve=True) if cfg.get("serve") else {}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    serve.update(models={"model": str(model_dir)}, variants=[], host="127.0.0.1", port=port, workers=workers)
    spec = spec_from_config(serve, cfg.get("capture"), cfg.get("seed"), out)
    path = spec.dump(out / f"endpoint-w{workers}.json")
    with open(out / f"endpoint-w{workers}.log", "w") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "mlexp.serve.server", str(path)], stdout=log_file,
                                   stderr=subprocess.STDOUT)
        try:
            if not wait_ready(f"http://127.0.0.1:{port}/ping", 120.0, process, workers):
                raise MlexpError(f"the endpoint with {workers} worker(s) did not start; see {out}/endpoint-w{workers}.log")
            yield f"http://127.0.0.1:{port}/invocations"
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _log_step(step: Dict[str, Any], what: str = "step") -> None:
    log.info("%s: %d worker(s), %d users: %.1f req/s, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, %d errors",
             what, step["workers"], step["users"], step["rps"], step["p50_ms"], step["p95_ms"], step["p99_ms"],
             step["errors"])


def _plot(estimates: List[Dict[str, Any]], choice: Any, target: Target, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for e in estimates:
        if e["estimated_p95_ms"] is None:
            continue
        color = "tab:green" if e["meets_target"] else "tab:red"
        marker = "*" if choice and e["name"] == choice["name"] else "o"
        ax.scatter(e["estimated_p95_ms"], e["price_per_hour"], c=color, marker=marker, s=180 if marker == "*" else 60)
        ax.annotate(e["name"], (e["estimated_p95_ms"], e["price_per_hour"]), textcoords="offset points",
                    xytext=(6, 4), fontsize=10)
    ax.axvline(target.max_p95_ms, color="grey", linestyle="--", label=f"max p95 {target.max_p95_ms:g} ms")
    ax.set_xlabel("estimated p95 latency (ms)", fontsize=12)
    ax.set_ylabel("cost (USD per hour)", fontsize=12)
    ax.set_title("instance profiles: cost vs p95 (green meets the target, * recommended)", fontsize=12)
    ax.legend(fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _print(report: Dict[str, Any]) -> None:
    lines = [f"{'profile':<18}{'vCPUs':>6}{'est. req/s':>12}{'est. p95 ms':>13}{'$/hour':>9}{'$/1M pred.':>12}  meets"]
    for e in report["profiles"]:
        p95 = "saturated" if e["estimated_p95_ms"] is None else f"{e['estimated_p95_ms']:.2f}"
        per_million = "-" if e["cost_per_million_predictions"] is None else f"{e['cost_per_million_predictions']:.4f}"
        meets = "yes" if e["meets_target"] else "no (" + ", ".join(e["failed"]) + ")"
        lines.append(f"{e['name']:<18}{e['vcpus']:>6}{e['estimated_rps']:>12.1f}{p95:>13}{e['price_per_hour']:>9.3f}"
                     f"{per_million:>12}  {meets}")
    efficiency = report["scaling_efficiency"]
    lines.append(f"scaling efficiency 1->{max(m['workers'] for m in report['measurements'])} workers: "
                 f"{'not measured' if efficiency is None else efficiency} (estimates from this machine, "
                 f"{report['machine']['cores']} cores, load average {report['machine']['load_average'][0]})")
    if report["recommendation"]:  # otherwise the message is the error the entrypoint prints
        lines.append(report["message"])
    print("\n".join(lines))
