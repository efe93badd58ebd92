"""mlexp's endpoint vs MLflow's model server (`mlflow models serve`) on the same model and the same load.

Trains the default run (breast_cancer, standardized logistic regression), saves the same fitted
pipeline as an MLflow sklearn model in a temporary local folder, starts both servers on 127.0.0.1
(one worker each; MLflow with --env-manager local, no network), and drives both with the same
bounded async client (mlexp.serve.loadtest), the same single-row `dataframe_records` bodies and
the same concurrency, alternating rounds so drifting machine load hits both alike.

mlexp answers with the class label and both probabilities; MLflow's pyfunc answers with the label only.

Usage: python bench/bench_serve.py [--users 1,4,16] [--duration 10] [--rounds 3] [--rows 1]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mlexp.serve.loadtest import run_load, wait_ready


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(command, cwd: Path, log: Path) -> subprocess.Popen:
    # MLflow runs `uvicorn` from PATH: a shim makes it this interpreter's, whatever the venv's scripts say.
    shims = cwd / "bin"
    shims.mkdir(exist_ok=True)
    (shims / "uvicorn").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m uvicorn "$@"\n')
    (shims / "uvicorn").chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}:{os.environ.get('PATH', '')}", "MLFLOW_TRACKING_URI": f"file://{cwd}/mlruns"}
    return subprocess.Popen(command, cwd=cwd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", default="1,4,16")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run([sys.executable, "-m", "mlexp", "hydra.run.dir=run", "report=false"], cwd=work, check=True,
                       capture_output=True)
        code = ("from mlexp.artifacts import load_model, check_model_file; import mlflow.sklearn; "
                "m, _ = load_model('run'); mlflow.sklearn.save_model(m, 'mlflow_model', "
                "skops_trusted_types=check_model_file('run'), pip_requirements=['scikit-learn'])")
        subprocess.run([sys.executable, "-c", code], cwd=work, check=True, capture_output=True)
        from sklearn.datasets import load_breast_cancer

        frame = load_breast_cancer(as_frame=True).frame.drop(columns="target")
        bodies = [json.dumps({"dataframe_records": frame.iloc[i:i + args.rows].to_dict(orient="records")}).encode()
                  for i in range(0, len(frame) - args.rows + 1)]
        ports = {"mlexp": _free_port(), "mlflow": _free_port()}
        servers = {
            "mlexp": _start([sys.executable, "-m", "mlexp", "mode=serve", "serve.models=[run]",
                             f"serve.port={ports['mlexp']}", "hydra.run.dir=serve"], work, work / "mlexp.log"),
            "mlflow": _start([sys.executable, "-m", "mlflow", "models", "serve", "-m", "mlflow_model",
                              "--env-manager", "local", "-p", str(ports["mlflow"]), "-h", "127.0.0.1", "-w", "1"],
                             work, work / "mlflow.log"),
        }
        try:
            for name, process in servers.items():
                if not wait_ready(f"http://127.0.0.1:{ports[name]}/ping", 120, process):
                    sys.exit(f"{name} did not start:\n{(work / f'{name}.log').read_text()[-2000:]}")
                run_load(f"http://127.0.0.1:{ports[name]}/invocations", bodies, 1, 3.0, 200)  # warm up
            results = {(name, users): [] for name in servers for users in map(int, args.users.split(","))}
            for _ in range(args.rounds):
                for users in map(int, args.users.split(",")):
                    for name in servers:
                        result = run_load(f"http://127.0.0.1:{ports[name]}/invocations", bodies, users,
                                          args.duration, args.requests)
                        assert result.errors == 0, (name, result.statuses)
                        results[(name, users)].append(result.summary())
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(timeout=30)
    print(f"rows per request {args.rows}, {args.duration:g} s per step, {args.rounds} rounds (medians), "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"{'users':>5} {'server':<7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for users in map(int, args.users.split(",")):
        rps = {}
        for name in servers:
            runs = results[(name, users)]
            median = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p95_ms", "p99_ms")}
            rps[name] = median["rps"]
            print(f"{users:>5} {name:<7} {median['rps']:>8.1f} {median['p50_ms']:>8.2f} {median['p95_ms']:>8.2f} "
                  f"{median['p99_ms']:>8.2f}")
        print(f"{users:>5} ratio mlexp/mlflow throughput {rps['mlexp'] / rps['mlflow']:.2f}")


if __name__ == "__main__":
    main()
