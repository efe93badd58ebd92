"""What an endpoint serves: models by name, A/B variants, limits and capture, resolved and checked before it starts."""

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

from mlexp.errors import MlexpError
from mlexp.lineage import file_fingerprint
from mlexp.serve.config import ServerConf

__all__ = ["EndpointSpec", "Variant", "resolve_models", "spec_from_config"]

MODEL_FILE = "model.skops"  # mlexp.artifacts.MODEL_FILE, named here to keep this module free of heavy imports


@dataclass
class Variant:
    name: str
    model: str
    weight: float


@dataclass
class EndpointSpec(ServerConf):
    """Everything a worker process needs to serve; written to endpoint.json and read back by each worker."""

    models: Dict[str, str] = field(default_factory=dict)  # name -> train run directory
    sha256: Dict[str, str] = field(default_factory=dict)  # name -> model file hash when checked
    variants: List[Variant] = field(default_factory=list)
    capture: Optional[Dict[str, Any]] = None  # {"folder", "sampling_percentage"}
    seed: Optional[int] = None

    def dump(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> "EndpointSpec":
        raw = json.loads(Path(path).read_text())
        raw["variants"] = [Variant(**v) for v in raw.get("variants", [])]
        return cls(**raw)

    def check(self) -> "EndpointSpec":
        """Refuse, before serving, any model file that is missing, unreadable or holds an untrusted type."""
        from mlexp.artifacts import check_model_file

        for name, run_dir in self.models.items():
            try:
                check_model_file(Path(run_dir))
            except MlexpError as err:
                raise MlexpError(f"model {name!r} cannot be served: {err}") from err
            self.sha256[name] = file_sha256(Path(run_dir) / MODEL_FILE)
        return self


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in chunks (lineage's fingerprint)."""
    return file_fingerprint(path)["sha256"]


def resolve_models(models: Any) -> Dict[str, str]:
    """``serve.models`` as {name: run dir}: a run dir (named after its folder), a folder of run dirs (named by
    their path inside it), a list of those, or a mapping of names to run dirs."""
    from hydra.utils import to_absolute_path

    if models is None or models == "" or models == []:
        return {}
    if isinstance(models, dict):
        named = {}
        for name, run_dir in models.items():
            path = Path(to_absolute_path(str(run_dir)))
            if not (path / MODEL_FILE).is_file():
                raise MlexpError(f"serve.models.{name}={run_dir} is not a train run's directory (no {MODEL_FILE}).")
            named[_name(str(name))] = str(path)
        return named
    resolved: Dict[str, str] = {}
    for entry in [models] if isinstance(models, str) else list(models):
        path = Path(to_absolute_path(str(entry)))
        if (path / MODEL_FILE).is_file():
            found = {path.name: path}
        elif path.is_dir():
            found = {p.parent.relative_to(path).as_posix(): p.parent for p in sorted(path.rglob(MODEL_FILE))}
            if not found:
                raise MlexpError(f"serve.models: {entry} holds no train run (no {MODEL_FILE} below it).")
        else:
            raise MlexpError(f"serve.models: {entry} does not exist: name a train run's directory or a folder of them.")
        for name, run_dir in found.items():
            if name in resolved and resolved[name] != str(run_dir):
                raise MlexpError(f"serve.models: two runs are both named {name!r} ({resolved[name]}, {run_dir}); "
                                 "name them with a mapping: serve.models={a: <run dir>, b: <run dir>}.")
            resolved[_name(name)] = str(run_dir)
    return resolved


def spec_from_config(serve: Any, capture: Any, seed: Optional[int], run_dir: Path) -> EndpointSpec:
    """The checked endpoint of ``serve.*`` and ``capture.*`` (capture folder default: ``<run dir>/capture``)."""
    from hydra.utils import to_absolute_path
    from omegaconf import OmegaConf

    plain = OmegaConf.to_container(serve, resolve=True) if not isinstance(serve, dict) else serve
    models = resolve_models(plain.get("models"))
    variants = _variants(plain.get("variants") or [], models)
    if not models:
        raise MlexpError("mode=serve needs serve.models=<a train run's directory>, a folder of them, or a list: "
                         "mlexp mode=serve 'serve.models=[outputs/2026-01-01/12-00-00]'")
    if plain.get("max_loaded", 1) < 1 or plain.get("workers", 1) < 1:
        raise MlexpError("serve.max_loaded and serve.workers must be at least 1.")
    if plain.get("max_body_bytes", 1) < 1:
        raise MlexpError("serve.max_body_bytes must be at least 1.")
    capture_spec = None
    if capture is not None and capture.get("enabled"):
        folder = Path(to_absolute_path(capture.folder)) if capture.get("folder") else run_dir / "capture"
        percentage = float(capture.get("sampling_percentage", 100.0))
        if not 0.0 <= percentage <= 100.0:
            raise MlexpError(f"capture.sampling_percentage={percentage} must be between 0 and 100.")
        capture_spec = {"folder": str(folder), "sampling_percentage": percentage}
    keys = [f.name for f in fields(ServerConf)]
    spec = EndpointSpec(models=models, variants=variants, capture=capture_spec, seed=seed,
                        **{k: plain[k] for k in keys if k in plain})
    return spec.check()


def _variants(entries: List[Dict[str, Any]], models: Dict[str, str]) -> List[Variant]:
    """Variants by name; a variant's model is a name from serve.models or a run dir (then served under the variant's name)."""
    from hydra.utils import to_absolute_path

    variants, seen = [], set()
    for entry in entries:
        name, model, weight = str(entry["name"]), str(entry["model"]), float(entry.get("weight", 1.0))
        if name in seen:
            raise MlexpError(f"serve.variants: the name {name!r} is used twice; give each variant its own name.")
        if weight < 0:
            raise MlexpError(f"serve.variants: variant {name!r} has weight {weight}; weights must be 0 or more.")
        seen.add(name)
        if model not in models:
            path = Path(to_absolute_path(model))
            if not (path / MODEL_FILE).is_file():
                raise MlexpError(f"serve.variants: variant {name!r} names model {model!r}, which is neither a name in "
                                 f"serve.models ({', '.join(models) or 'none'}) nor a train run's directory.")
            model = next((n for n, d in models.items() if d == str(path)), _name(name))
            models.setdefault(model, str(path))
        variants.append(Variant(_name(name), model, weight))
    if variants and sum(v.weight for v in variants) <= 0:
        raise MlexpError("serve.variants: the weights add up to 0; give at least one variant a positive weight.")
    return variants


def _name(name: str) -> str:
    if not name or name.startswith("/") or ".." in name.split("/") or any(c in name for c in "\\?#% "):
        raise MlexpError(f"{name!r} cannot name a model or variant: use letters, digits, '-', '_', '.' and '/'.")
    return name
