"""Structured config of mode=serve and mode=recommend (the `serve` and `recommend` nodes): types checked at composition."""

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

__all__ = ["ServerConf", "ServeConf", "VariantConf", "RecommendConf", "PhaseConf"]


@dataclass
class VariantConf:
    """One production variant of an A/B test: a model and its share of the traffic."""

    name: str = MISSING
    model: str = MISSING  # a name from serve.models, or a train run's directory
    weight: float = 1.0


@dataclass
class ServerConf:
    """How the endpoint runs: memory cap, address, processes, limits (part of serve.* and of endpoint.json)."""

    max_loaded: int = 8
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 6 * 1024 * 1024
    graceful_timeout_s: float = 30.0
    access_log: bool = False


@dataclass
class ServeConf(ServerConf):
    """mode=serve (docs/serve.md); conf/mode/serve.yaml fills it in."""

    models: Any = None  # a run dir, a folder of run dirs, a list of them, or {name: run dir}
    variants: List[VariantConf] = field(default_factory=list)


@dataclass
class PhaseConf:
    """A phase of a custom traffic pattern: ramp to `users` concurrent users over `ramp_s`, hold until `duration_s`."""

    users: int = MISSING
    ramp_s: float = 0.0
    duration_s: float = MISSING


@dataclass
class RecommendConf:
    """mode=recommend (docs/recommend.md); conf/mode/recommend.yaml fills it in."""

    run: Optional[str] = None
    max_p95_ms: float = 100.0
    min_rps: float = 0.0
    phases: List[PhaseConf] = field(default_factory=list)
    concurrency: List[int] = field(default_factory=lambda: [1, 2, 4, 8])
    workers: Optional[List[int]] = None
    duration_s: float = 5.0
    max_requests: int = 5000
    rows_per_request: int = 1
    sample_rows: int = 1000
    input: Optional[str] = None
    profiles: Optional[List[str]] = None
    request_timeout_s: float = 10.0
