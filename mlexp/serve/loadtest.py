"""A bounded async load generator (httpx + asyncio): closed-loop users POSTing real rows, latency percentiles.

Each user sends one request, waits for the answer, and sends the next, as the Inference Recommender's
users do. Every run is bounded by a deadline and a request budget, and only talks to the URL it is given.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = ["LoadResult", "run_load", "run_phases", "wait_ready"]

logging.getLogger("httpx").setLevel(logging.WARNING)  # not one log line per request


@dataclass
class LoadResult:
    """Requests answered in one step (or phase): throughput and latency percentiles in milliseconds."""

    users: int
    seconds: float
    latencies_ms: List[float] = field(default_factory=list)
    errors: int = 0
    statuses: Dict[str, int] = field(default_factory=dict)

    def summary(self) -> Dict[str, float]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        p50, p95, p99 = (float(np.percentile(lat, q)) for q in (50, 95, 99))
        return {"users": self.users, "requests": len(self.latencies_ms), "errors": self.errors,
                "seconds": round(self.seconds, 3), "rps": round(len(self.latencies_ms) / max(self.seconds, 1e-9), 2),
                "p50_ms": round(p50, 3), "p95_ms": round(p95, 3), "p99_ms": round(p99, 3),
                "mean_ms": round(float(np.mean(lat)), 3), **({"statuses": self.statuses} if self.statuses else {})}


@dataclass
class _Shared:
    bodies: Sequence[bytes]
    url: str
    headers: Dict[str, str]
    deadline: float
    budget: int
    sent: int = 0
    records: List[tuple] = field(default_factory=list)  # (finished at, latency s, ok, status)


async def _user(client, shared: _Shared, offset: int, stop: asyncio.Event) -> None:
    i = offset
    while not stop.is_set() and time.perf_counter() < shared.deadline and shared.sent < shared.budget:
        shared.sent += 1
        body = shared.bodies[i % len(shared.bodies)]
        i += 1
        started = time.perf_counter()
        try:
            response = await client.post(shared.url, content=body, headers=shared.headers)
            status = str(response.status_code)
        except Exception as err:  # a timeout or a refused connection counts as a failed request, not a crash
            status = type(err).__name__
        finished = time.perf_counter()
        shared.records.append((finished, finished - started, status == "200", status))


def _result(records: List[tuple], users: int, start: float, end: float) -> LoadResult:
    window = [r for r in records if start <= r[0] <= end]
    result = LoadResult(users=users, seconds=end - start)
    for _, latency, ok, status in window:
        if ok:
            result.latencies_ms.append(latency * 1000.0)
        else:
            result.errors += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
    return result


def _client(users: int, timeout_s: float):
    import httpx

    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    return httpx.AsyncClient(limits=limits, timeout=timeout_s, trust_env=False)


async def _load(url: str, bodies: Sequence[bytes], users: int, duration_s: float, max_requests: int,
                timeout_s: float, headers: Dict[str, str]) -> LoadResult:
    async with _client(users, timeout_s) as client:
        started = time.perf_counter()
        shared = _Shared(bodies, url, headers, started + duration_s, max_requests)
        stop = asyncio.Event()
        step = max(1, len(bodies) // max(users, 1))
        await asyncio.gather(*(_user(client, shared, k * step, stop) for k in range(users)))
        return _result(shared.records, users, started, time.perf_counter())


def run_load(url: str, bodies: Sequence[bytes], users: int, duration_s: float, max_requests: int,
             timeout_s: float = 10.0, content_type: str = "application/json") -> LoadResult:
    """``users`` concurrent users for at most ``duration_s`` seconds and ``max_requests`` requests."""
    return asyncio.run(_load(url, bodies, users, duration_s, max_requests, timeout_s,
                             {"content-type": content_type}))


async def _phases(url: str, bodies: Sequence[bytes], phases: Sequence[Dict[str, float]], max_requests: int,
                  timeout_s: float, headers: Dict[str, str]) -> List[LoadResult]:
    peak = max(int(p["users"]) for p in phases)
    async with _client(peak, timeout_s) as client:
        total = sum(float(p["duration_s"]) for p in phases)
        shared = _Shared(bodies, url, headers, time.perf_counter() + total, max_requests)
        running: List[tuple] = []  # (task, stop event)
        windows = []
        for phase in phases:
            start, users, ramp = time.perf_counter(), int(phase["users"]), float(phase.get("ramp_s", 0.0))
            end = start + float(phase["duration_s"])
            before = len(running)
            while len(running) > users:  # fewer users: the newest stop after their current request
                task, stop = running.pop()
                stop.set()
            for k in range(before, users):  # more users: spawned evenly over the ramp
                if ramp > 0 and users > before:
                    await asyncio.sleep(max(0.0, start + ramp * (k - before + 1) / (users - before) - time.perf_counter()))
                stop = asyncio.Event()
                running.append((asyncio.ensure_future(_user(client, shared, k * 7, stop)), stop))
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            windows.append((users, start, time.perf_counter()))
        for task, stop in running:
            stop.set()
        await asyncio.gather(*(task for task, _ in running))
    return [_result(shared.records, users, start, end) for users, start, end in windows]


def run_phases(url: str, bodies: Sequence[bytes], phases: Sequence[Dict[str, float]], max_requests: int,
               timeout_s: float = 10.0, content_type: str = "application/json") -> List[LoadResult]:
    """A custom traffic pattern: per phase, ramp to ``users`` over ``ramp_s`` and hold until ``duration_s``."""
    return asyncio.run(_phases(url, bodies, phases, max_requests, timeout_s, {"content-type": content_type}))


def wait_ready(url: str, timeout_s: float, process: Optional[object] = None, workers: int = 1) -> bool:
    """Poll ``GET url`` (a /ping) on fresh connections until it answers 200 from ``workers`` distinct worker
    processes (True), the process exits, or ``timeout_s`` passes (False)."""
    import httpx

    deadline = time.perf_counter() + timeout_s
    seen = set()
    while time.perf_counter() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            response = httpx.get(url, timeout=1.0, trust_env=False)
            if response.status_code == 200:
                seen.add(response.json().get("worker") if workers > 1 else 0)
                if len(seen) >= workers:
                    return True
                continue
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    return False
