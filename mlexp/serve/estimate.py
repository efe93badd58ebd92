"""Map load-test measurements from this machine to instance profiles: estimated throughput, p95 and cost.

The model of a profile with V vCPUs is ``1 + (V - 1) * e`` single-worker endpoints, where ``e`` is the
scaling efficiency measured here between 1 and N worker processes. A request rate (or a number of
concurrent users) is spread over those workers, and the latency is read off the one-worker
latency/throughput curve measured here. An estimate from this machine, not a measurement of the
instance: the CPU model, clock and memory of the real instance differ.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["Target", "scaling_efficiency", "estimate_profile", "cheapest", "why_none"]


@dataclass
class Target:
    max_p95_ms: float
    min_rps: float
    peak_users: Optional[int] = None  # from a custom traffic pattern (phases)


def scaling_efficiency(rps_by_workers: Dict[int, float]) -> Optional[float]:
    """(rps_N / rps_1 - 1) / (N - 1), clipped to [0, 1]; None when only one worker count was measured."""
    most = max(rps_by_workers)
    if most <= 1 or not rps_by_workers.get(1):
        return None
    gain = (rps_by_workers[most] / rps_by_workers[1] - 1.0) / (most - 1)
    return round(min(1.0, max(0.0, gain)), 3)


def _interpolate(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[0] if x < xs[0] else ys[-1]


def _rising(curve: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Steps in order of users, up to the one with the highest throughput (past it the worker is saturated)."""
    steps = sorted(curve, key=lambda s: s["users"])
    best = max(range(len(steps)), key=lambda i: steps[i]["rps"])
    return steps[: best + 1]


def at_rate(curve: List[Dict[str, Any]], rate: float) -> Optional[float]:
    """p95 (ms) of one worker answering ``rate`` requests per second; None beyond its capacity."""
    steps = _rising(curve)
    if rate > steps[-1]["rps"]:
        return None
    return _interpolate(rate, [s["rps"] for s in steps], [s["p95_ms"] for s in steps])


def at_users(curve: List[Dict[str, Any]], users: float) -> Dict[str, float]:
    """Throughput and p95 of one worker with ``users`` concurrent closed-loop users; past the measured range
    throughput stays at its peak and latency grows with the queue (Little's law)."""
    steps = sorted(curve, key=lambda s: s["users"])
    last = steps[-1]
    if users > last["users"]:
        return {"rps": max(s["rps"] for s in steps), "p95_ms": last["p95_ms"] * users / last["users"]}
    xs = [s["users"] for s in steps]
    return {"rps": _interpolate(users, xs, [s["rps"] for s in steps]),
            "p95_ms": _interpolate(users, xs, [s["p95_ms"] for s in steps])}


def estimate_profile(profile: Dict[str, Any], curve: List[Dict[str, Any]], efficiency: Optional[float],
                     target: Target, cores: int, rows_per_request: int, gpu_here: bool) -> Dict[str, Any]:
    """One profile's estimate: workers equivalent, throughput, p95, costs, and which targets it misses."""
    vcpus = profile.get("vcpus") or cores
    e = 1.0 if efficiency is None else efficiency
    workers = 1.0 + (vcpus - 1) * e
    capacity = max(s["rps"] for s in curve) * workers
    if target.peak_users:
        point = at_users(curve, target.peak_users / workers)
        rps, p95 = point["rps"] * workers, point["p95_ms"]
    elif target.min_rps > 0:
        rps, p95 = capacity, at_rate(curve, target.min_rps / workers)
    else:
        rps, p95 = capacity, min(curve, key=lambda s: s["users"])["p95_ms"]
    failed = []
    if p95 is None or p95 > target.max_p95_ms:
        failed.append("max_p95_ms")
    if rps < target.min_rps or (p95 is None and target.min_rps > 0):
        failed.append("min_rps")
    price = float(profile.get("price_per_hour") or 0.0)
    predictions_per_hour = capacity * rows_per_request * 3600.0
    return {
        "name": profile["name"], "family": profile.get("family"), "vcpus": vcpus,
        "accelerator": profile.get("accelerator"), "price_per_hour": price,
        "workers_equivalent": round(workers, 2),
        "estimated_rps": round(rps, 1), "estimated_capacity_rps": round(capacity, 1),
        "estimated_p95_ms": None if p95 is None else round(p95, 2),
        "cost_per_million_predictions": round(price / predictions_per_hour * 1e6, 4) if capacity > 0 else None,
        "meets_target": not failed, "failed": failed,
        "note": _note(profile, efficiency, gpu_here),
    }


def _note(profile: Dict[str, Any], efficiency: Optional[float], gpu_here: bool) -> str:
    notes = ["estimate from this machine's measurement"]
    if efficiency is None:
        notes.append("scaling across workers not measured: assumed linear")
    accelerator = profile.get("accelerator")
    if profile.get("gpus", 0) > 0:
        why = "no GPU on this machine" if not gpu_here else "the endpoint predicts on the CPU"
        notes.append(f"{accelerator} not measured ({why}): estimated from its vCPUs")
    elif accelerator:
        notes.append(f"{accelerator} not emulated: estimated from its vCPUs")
    if profile.get("purpose") == "training":
        notes.append("a training profile")
    return "; ".join(notes)


def cheapest(estimates: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The lowest price per hour among profiles meeting the target (ties: lower p95)."""
    meeting = [e for e in estimates if e["meets_target"]]
    if not meeting:
        return None
    return min(meeting, key=lambda e: (e["price_per_hour"], e["estimated_p95_ms"] or 0.0))


def why_none(estimates: List[Dict[str, Any]], target: Target) -> str:
    """Which constraint no profile could meet, with the closest each came."""
    parts = []
    p95s = [e for e in estimates if e["estimated_p95_ms"] is not None]
    if all("max_p95_ms" in e["failed"] for e in estimates):
        best = min(p95s, key=lambda e: e["estimated_p95_ms"]) if p95s else None
        parts.append(f"max_p95_ms={target.max_p95_ms:g}: the lowest estimated p95 is "
                     + (f"{best['estimated_p95_ms']:g} ms ({best['name']})" if best else "none (every profile saturated)"))
    if target.min_rps > 0 and all("min_rps" in e["failed"] for e in estimates):
        best = max(estimates, key=lambda e: e["estimated_rps"])
        parts.append(f"min_rps={target.min_rps:g}: the highest estimated throughput is "
                     f"{best['estimated_rps']:g} requests/s ({best['name']})")
    if not parts:  # each constraint is met by some profile, never both by one
        parts.append("the profiles fast enough are not the ones with enough throughput")
    return "no instance profile meets the target: " + "; ".join(parts) + \
        ". Relax recommend.max_p95_ms / recommend.min_rps, or add a larger profile to conf/instance/."
