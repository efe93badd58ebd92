"""mode=serve: check the models, write endpoint.json, run the app under uvicorn until SIGTERM/SIGINT.

``python -m mlexp.serve.server <endpoint.json>`` serves a written spec without Hydra (the recommender's
load test starts its endpoints that way).
"""

import logging
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

from omegaconf import DictConfig

from mlexp.errors import MlexpError
from mlexp.serve.spec import EndpointSpec, spec_from_config

__all__ = ["run_serve", "serve"]

log = logging.getLogger("mlexp")


def run_serve(cfg: DictConfig) -> None:
    """`mode=serve`: serve ``serve.models`` (and ``serve.variants``) until stopped; no objective."""
    from hydra.core.hydra_config import HydraConfig

    from mlexp.serve import require_serve_extra

    require_serve_extra("serve")
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = spec_from_config(cfg.serve, cfg.get("capture"), cfg.get("seed"), run_dir)
    _check_port(spec.host, spec.port)
    if spec.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serve.host=%s: the endpoint is reachable from other machines and has no authentication",
                    spec.host)
    serve(spec, spec.dump(run_dir / "endpoint.json"))


def _check_port(host: str, port: int) -> None:
    """A clear error now rather than uvicorn's exit after startup when the address is taken."""
    if port == 0:
        return
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as err:
        raise MlexpError(f"cannot listen on {host}:{port} ({err.strerror}): another process holds it, or the "
                         "host is not this machine's. Set serve.port=<another port> (0 picks a free one).") from err


def serve(spec: EndpointSpec, spec_path: Path) -> None:
    """Run uvicorn on the spec (written at ``spec_path`` for the worker processes); returns once stopped.

    uvicorn stops on SIGTERM/SIGINT: it stops accepting, lets in-flight requests finish (up to
    ``graceful_timeout_s``), then the app's shutdown closes the capture files. It then re-raises the
    signal; the no-op handlers installed here turn that into a normal return (exit 0).
    """
    import uvicorn

    os.environ["MLEXP_ENDPOINT_SPEC"] = str(Path(spec_path).resolve())
    metrics_dir = None
    if spec.workers > 1:  # one Prometheus view over all workers: prometheus_client's multiprocess mode
        metrics_dir = tempfile.TemporaryDirectory(prefix="mlexp-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
    names = ", ".join(spec.models)
    variants = ", ".join(f"{v.name}={v.model} ({v.weight:g})" for v in spec.variants)
    print(f"serving {names}{'; variants ' + variants if variants else ''} on http://{spec.host}:{spec.port} "
          f"({spec.workers} worker{'s' if spec.workers > 1 else ''}); stop with Ctrl-C or SIGTERM", flush=True)
    stopped = []
    previous = {s: signal.signal(s, lambda sig, frame: stopped.append(sig)) for s in (signal.SIGINT, signal.SIGTERM)}
    config = uvicorn.Config("mlexp.serve.app:create_app_from_env", factory=True, host=spec.host, port=spec.port,
                            workers=spec.workers, timeout_graceful_shutdown=spec.graceful_timeout_s,
                            access_log=spec.access_log, log_level="info", lifespan="on", server_header=False)
    server = uvicorn.Server(config)
    try:
        if spec.workers > 1:  # what uvicorn.run does for workers, plus TCP_NODELAY on the shared listener
            from uvicorn.supervisors import Multiprocess

            listener = config.bind_socket()
            # uvicorn binds it with proto 0, so asyncio leaves Nagle on for accepted connections and every
            # keep-alive answer waits ~40 ms for a delayed ACK (uvicorn issue #3149); Linux copies the
            # option from the listener to each accepted socket.
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            Multiprocess(config, sockets=[listener]).run()
        else:
            server.run()
            if not server.started:
                raise MlexpError("the endpoint did not start: see uvicorn's message above.")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics_dir is not None:
            metrics_dir.cleanup()
    log.info("endpoint stopped%s", f" ({signal.Signals(stopped[0]).name})" if stopped else "")


def main(argv: list) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m mlexp.serve.server <endpoint.json>")
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    serve(EndpointSpec.load(Path(argv[0])), Path(argv[0]))


if __name__ == "__main__":
    main(sys.argv[1:])
