"""The endpoint's web app (FastAPI): SageMaker's GET /ping and POST /invocations, per-model routes, /models, /metrics.

Routing follows SageMaker's headers: ``X-Amzn-SageMaker-Target-Model`` picks a model of a multi-model
endpoint (or ``POST /models/<name>/invocations``), ``X-Amzn-SageMaker-Target-Variant`` a variant; without
them the variants' weights decide. The variant that answered comes back in
``X-Amzn-Invoked-Production-Variant`` and in the body.
"""

import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, Dict, Optional, Tuple

from mlexp.errors import MlexpError
from mlexp.monitor.capture import DEFAULT_VARIANT
from mlexp.serve.codec import BadRequest, encode_predictions, parse_body
from mlexp.serve.spec import EndpointSpec
from mlexp.serve.store import LoadedModel, ModelStore, Router

__all__ = ["create_app", "create_app_from_env", "SPEC_ENV", "TARGET_MODEL", "TARGET_VARIANT", "INVOKED_VARIANT"]

log = logging.getLogger("mlexp")

SPEC_ENV = "MLEXP_ENDPOINT_SPEC"  # path of endpoint.json, for worker processes
TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"
TARGET_VARIANT = "X-Amzn-SageMaker-Target-Variant"
INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
INVOKED_VARIANT = "X-Amzn-Invoked-Production-Variant"
# Bodies up to this size are parsed and predicted on the event loop (about a millisecond for a few
# rows; measured faster than a thread hand-off under load), larger ones in a worker thread.
_INLINE_BYTES = 64 * 1024
_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def create_app_from_env() -> Any:
    """uvicorn's app factory in each worker process: the spec comes from the file named by MLEXP_ENDPOINT_SPEC."""
    return create_app(EndpointSpec.load(os.environ[SPEC_ENV]))


def create_app(spec: EndpointSpec) -> Any:
    import anyio
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    metrics = _Metrics()
    store = ModelStore(spec.models, spec.sha256, spec.max_loaded, on_change=metrics.model_event)
    router = Router(spec.variants, seed=spec.seed if spec.workers == 1 else None)  # workers draw independently
    captures = _Captures(spec.capture, spec.seed)
    single = next(iter(spec.models)) if len(spec.models) == 1 else None

    @asynccontextmanager
    async def lifespan(app: Any):
        # Models that answer /invocations without a name load before the worker takes requests;
        # the others of a multi-model endpoint load on first use.
        for name in dict.fromkeys([v.model for v in spec.variants] or ([single] if single else [])):
            await store.get(name)
        yield
        captures.close()  # after uvicorn has let in-flight requests finish
        log.info("endpoint stopped: captures flushed")

    app = FastAPI(title="mlexp endpoint", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    ping_body = f'{{"status":"healthy","worker":{os.getpid()}}}'.encode()

    @app.get("/ping")
    async def ping() -> Response:
        return Response(ping_body, media_type="application/json")

    @app.get("/models")
    async def models() -> Response:
        return JSONResponse({"models": [{"name": n, "run_dir": d, "loaded": n in store.loaded}
                                        for n, d in spec.models.items()],
                             "variants": [vars(v) for v in spec.variants], "max_loaded": spec.max_loaded})

    @app.get("/metrics")
    async def prometheus() -> Response:
        body, media = metrics.render()
        return Response(body, media_type=media)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        return await invoke(request, request.headers.get(TARGET_MODEL))

    @app.post("/models/{name:path}/invocations")
    async def model_invocations(name: str, request: Request) -> Response:
        return await invoke(request, name)

    async def invoke(request: Request, asked_model: Optional[str]) -> Response:
        started = time.perf_counter()
        labels, status = ("-", "-"), 500
        metrics.in_flight.inc()
        try:
            name, variant = _target(asked_model, request.headers.get(TARGET_VARIANT), router, single)
            labels = (name, variant) if name in spec.models else labels  # no label per unknown name sent
            body = await _read_body(request, spec.max_body_bytes)
            loaded = await store.get(name)
            if len(body) <= _INLINE_BYTES:  # a few rows: a thread hand-off would cost more than it frees
                content, media, rows = _predict(loaded, variant, body, request.headers, captures)
            else:  # large bodies in a worker thread, so /ping and other requests are not held up
                content, media, rows = await anyio.to_thread.run_sync(
                    _predict, loaded, variant, body, request.headers, captures)
            status = 200
            metrics.rows.labels(name, variant).inc(rows)
            return Response(content, media_type=media, headers={INVOKED_VARIANT: variant, "X-Mlexp-Model": name})
        except BadRequest as err:
            status = err.status
            log.info("%s %s: %d %s", request.method, request.url.path, err.status, err.reason)
            return JSONResponse({"detail": err.reason}, status_code=err.status)
        finally:
            metrics.in_flight.dec()
            metrics.invocations.labels(*labels, str(status)).inc()
            if status == 200:
                metrics.latency.labels(*labels).observe(time.perf_counter() - started)

    return app


def _target(asked_model: Optional[str], asked_variant: Optional[str], router: Router,
            single: Optional[str]) -> Tuple[str, str]:
    """(model name, variant label) for a request."""
    if asked_model:
        if asked_variant:
            raise BadRequest(400, f"name a model ({TARGET_MODEL}) or a variant ({TARGET_VARIANT}), not both")
        return asked_model, DEFAULT_VARIANT
    variant = router.pick(asked_variant)
    if variant is not None:
        return variant.model, variant.name
    if single is None:
        raise BadRequest(400, f"this endpoint serves several models: name one with the {TARGET_MODEL} header "
                              "or POST /models/<name>/invocations (GET /models lists them)")
    return single, DEFAULT_VARIANT


async def _read_body(request: Any, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(400, f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise BadRequest(413, f"request body of {int(declared)} bytes is over the limit of {limit} "
                                  "(serve.max_body_bytes): split it into smaller requests")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"request body is over the limit of {limit} bytes (serve.max_body_bytes): "
                                  "split it into smaller requests")
        chunks.append(chunk)
    return b"".join(chunks)


def _predict(loaded: LoadedModel, variant: str, body: bytes, headers: Any, captures: "_Captures") -> Tuple[bytes, str, int]:
    """Parse, predict, capture, encode (on the event loop for small bodies, in a worker thread for large ones)."""
    from mlexp.predict import predict_frame

    frame = parse_body(body, headers.get("content-type"), loaded.card)
    try:
        predictions = predict_frame(loaded.model, loaded.card, frame)
    except (MlexpError, ValueError, TypeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BadRequest(400, f"the model cannot take these rows: {reason}") from err
    extra: Dict[str, Any] = {"model": loaded.name, "variant": variant}
    writer = captures.writer(loaded.name, variant)
    if writer is not None:
        ids = _event_ids(headers.get(INFERENCE_ID), len(frame))
        try:
            writer.write(frame, predictions, event_ids=ids)
            extra["event_ids"] = ids
        except OSError as err:  # capture is best effort: a full disk must not fail the prediction
            log.warning("capture failed (%s): this request's rows are not captured", err)
    content, media = encode_predictions(predictions, headers.get("accept"), extra)
    return content, media, len(predictions)


def _event_ids(inference_id: Optional[str], rows: int) -> list:
    if inference_id:
        return [inference_id] if rows == 1 else [f"{inference_id}-{i}" for i in range(rows)]
    return [str(uuid.uuid4()) for _ in range(rows)]


class _Captures:
    """One CaptureWriter per (model, variant), under <folder>/<model>/<variant>/, closed when the endpoint stops."""

    def __init__(self, settings: Optional[Dict[str, Any]], seed: Optional[int]):
        self.settings, self.seed = settings, seed
        self._writers: Dict[Tuple[str, str], Any] = {}

    def writer(self, model: str, variant: str) -> Any:
        if not self.settings:
            return None
        key = (model, variant)
        if key not in self._writers:  # a race here only makes a second writer, each with its own file
            from pathlib import Path

            from mlexp.monitor.capture import CaptureWriter

            self._writers[key] = CaptureWriter(Path(self.settings["folder"]), endpoint=model.replace("/", "_"),
                                               variant=variant, seed=self.seed,
                                               sampling_percentage=self.settings["sampling_percentage"])
        return self._writers[key]

    def close(self) -> None:
        for writer in list(self._writers.values()):
            writer.close()


class _Metrics:
    """Prometheus metrics of the endpoint; across worker processes through prometheus_client's multiprocess mode."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        registry = None if self.multiprocess else self.registry
        self.invocations = Counter("mlexp_invocations", "Requests to /invocations by model, variant and HTTP status",
                                   ["model", "variant", "status"], registry=registry)
        self.latency = Histogram("mlexp_model_latency_seconds", "Time to answer a successful request",
                                 ["model", "variant"], buckets=_BUCKETS, registry=registry)
        self.rows = Counter("mlexp_rows_predicted", "Rows predicted", ["model", "variant"], registry=registry)
        self.in_flight = Gauge("mlexp_requests_in_flight", "Requests being answered", registry=registry,
                               multiprocess_mode="livesum")
        self.loaded = Gauge("mlexp_loaded_models", "Models in memory", registry=registry, multiprocess_mode="livesum")
        self.loads = Counter("mlexp_model_events", "Model loads and LRU unloads", ["model", "event"], registry=registry)

    def model_event(self, event: str, name: str) -> None:
        self.loads.labels(name, event).inc()
        self.loaded.inc() if event == "load" else self.loaded.dec()

    def render(self) -> Tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
