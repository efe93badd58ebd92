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
    id: List[str] = field(default_factory=list)  # identifiers: kept out of the features (docs/data.md)


@dataclass
class ImputeConf:
    """Missing values, imputed inside the pipeline (per fold) where a step or the model cannot take them."""

    numeric: str = "median"  # mean | median | most_frequent | none (none: an error names the columns)
    categorical: str = "missing"  # missing (a category of its own) | most_frequent | none


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
    # Your own table's everyday options (docs/data.md).
    impute: ImputeConf = field(default_factory=lambda: ImputeConf())
    positive_class: Any = None  # the label that is class 1 of a binary target
    weight_column: Optional[str] = None  # sample weights, for the fit and the metrics
    dropna_warn_share: Optional[float] = 0.2  # dropna removing more than this share of rows warns
    leak_threshold: Optional[float] = 0.97  # a single column scoring this well alone is flagged; null: off


@dataclass
class KFoldConf:
    """Schema of the k-fold splitter options: types checked at composition (splitter.n_splits=abc fails there)."""

    _target_: str = MISSING
    n_splits: int = 5
    shuffle: bool = True
    random_state: Optional[int] = None
    groups: Optional[str] = None  # mlexp's: the column whose rows stay together (group_kfold, stratified_group_kfold)


@dataclass
class TimeSeriesConf:
    _target_: str = MISSING
    n_splits: int = 5
    gap: int = 0
    max_train_size: Optional[int] = None
    test_size: Optional[int] = None
    time_column: Optional[str] = None  # mlexp's: the datetime column that orders the rows (null: the only one)


@dataclass
class HoldOutConf:
    _target_: str = MISSING
    validation_size: float = 0.1
    test_size: float = 0.1
    shuffle: bool = True
    random_state: Optional[int] = None


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
    processes: int = 1  # data-parallel processes for PyTorch models (DistributedDataParallel)


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
    # Reuse an earlier run's directory (hydra.run.dir=<it>), deleting its files first (mlexp.rundir).
    overwrite: bool = False
    # The tracking group (conf/tracking/*.yaml): the tracker's _target_ and its options.
    tracking: Any = None
    # Binds a run to an Optuna trial by hand (storage, study_name, number); the tuner hands each job
    # its trial through hydra.job.env_set.MLEXP_TRIAL instead (docs/tuner.md).
    # Typed Any: OmegaConf 2.3 cannot merge a mapping into a None Optional[Dict] node.
    trial: Any = None
    # The tuner group (conf/tuner/*.yaml): sampler, pruner, n_trials, storage; read by the sweeper.
    tuner: Any = None
    # Decision threshold of binary classifiers, and the regression target's transform (docs/threshold.md,
    # docs/target_transform.md); `_target_: null` options leave the model as it is.
    threshold: Any = None
    target_transform: Any = None
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
    store = ConfigStore.instance()
    store.store(name="mlexp_schema", node=MlexpConfig)
    # Schemas of the built-in splitter options: each YAML lists one first in its defaults
    # (`- /mlexp_splitter_kfold@_here_`), so its keys are typed at composition. Not a config group: no option to pick.
    for name, node in (("kfold", KFoldConf), ("time_series", TimeSeriesConf), ("holdout", HoldOutConf)):
        store.store(name=f"mlexp_splitter_{name}", node=node)
