"""Structured config schema, registered in Hydra's ConfigStore: types and keys checked at composition."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from mlexp.serve.config import RecommendConf, ServeConf


@dataclass
class RolesConf:
    """Column roles; any left as null are inferred from the data."""

    numeric: Optional[List[str]] = None
    categorical: Optional[List[str]] = None
    text: Optional[List[str]] = None
    datetime: Optional[List[str]] = None
    facet: Optional[str] = None
    drop: List[str] = field(default_factory=list)


@dataclass
class DataConf:
    name: str = MISSING
    loader: Any = MISSING
    target: str = MISSING
    task: str = "auto"
    path: Optional[str] = None
    dropna: bool = False
    # A column whose value 'test' marks a fixed test split (dropped before learning).
    split_column: Optional[str] = None
    roles: RolesConf = field(default_factory=RolesConf)


@dataclass
class ObjectiveConf:
    metric: str = "auto"
    direction: str = "auto"


@dataclass
class InstanceConf:
    name: str = MISSING
    family: str = MISSING
    vcpus: Optional[int] = None
    memory_gib: Optional[float] = None
    gpus: int = 0
    accelerator: Optional[str] = None
    purpose: str = "general"
    price_per_hour: float = 0.0
    allow_cpu_fallback: bool = False


@dataclass
class ModeConf:
    name: str = MISSING
    run_dir: Optional[str] = None
    input: Optional[str] = None
    output: Optional[str] = None
    # mode=predict: rows per chunk read, predicted and written (bounded memory); replace an existing output.
    chunk_rows: int = 100_000
    overwrite: bool = False


@dataclass
class CaptureConf:
    """Data capture in SageMaker's JSON Lines format by mode=predict and mode=serve (read by the monitor)."""

    enabled: bool = False
    sampling_percentage: float = 100.0
    folder: Optional[str] = None  # null: capture/ inside the run directory


@dataclass
class MlexpConfig:
    mode: ModeConf = MISSING
    data: DataConf = MISSING
    encoder: Any = MISSING
    features: Dict[str, Any] = field(default_factory=dict)
    sampler: Any = MISSING
    splitter: Any = MISSING
    model: Any = MISSING
    optimizer: Any = None
    ensemble: Any = None
    instance: InstanceConf = MISSING
    seed: int = 42
    task: str = "auto"
    test_size: float = 0.1
    objective: ObjectiveConf = field(default_factory=ObjectiveConf)
    save_model: bool = True
    # Write report.md and plots/ in the run directory (mlexp.reporting.report).
    report: bool = True
    # The tracking group (conf/tracking/*.yaml): the tracker's _target_ and its options.
    tracking: Any = None
    # Set by the tuner for each job: which Optuna trial this run is (storage, study, number).
    # Typed Any: OmegaConf 2.3 cannot merge a mapping into a None Optional[Dict] node.
    trial: Any = None
    # The tuner group (conf/tuner/*.yaml): sampler, pruner, n_trials, storage; read by the sweeper.
    tuner: Any = None
    # Nodes of the post-training steps and the modes beyond train/predict. Typed Any until their
    # owners give them a dataclass; struct mode still refuses unknown keys inside them.
    bias: Any = None
    explain: Any = None
    rules: Any = None
    capture: CaptureConf = field(default_factory=CaptureConf)
    monitor: Any = None
    label: Any = None
    serve: Optional[ServeConf] = None  # filled in by mode=serve
    recommend: Optional[RecommendConf] = None  # filled in by mode=recommend
    compress: Any = None
    continual: Any = None
    incremental: Any = None


def register() -> None:
    ConfigStore.instance().store(name="mlexp_schema", node=MlexpConfig)
