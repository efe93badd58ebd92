"""Instance profiles mapped to local resources (threads, device, data-parallel processes) and to cost."""

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError

__all__ = ["Resources", "resolve_resources", "gpu_available", "estimated_cost"]

log = logging.getLogger(__name__)


@dataclass
class Resources:
    profile: Dict[str, Any]
    n_jobs: int
    device: str  # "cpu" or "cuda"
    fallback: bool = False  # a GPU profile running on CPU by request
    processes: int = 1  # data-parallel processes of a PyTorch model (one per GPU on CUDA)


def gpu_available() -> bool:
    """An NVIDIA GPU is visible, checked without importing torch."""
    return Path("/proc/driver/nvidia/gpus").is_dir() or shutil.which("nvidia-smi") is not None


def visible_gpus() -> Optional[int]:
    """How many NVIDIA GPUs the driver lists (None where it cannot say without importing torch)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else None


def resolve_resources(instance_cfg: DictConfig) -> Resources:
    """Threads capped at the profile's vCPUs (and this machine's cores); device from its GPUs."""
    profile = OmegaConf.to_container(instance_cfg, resolve=True)
    cores = os.cpu_count() or 1
    vcpus = profile.get("vcpus")
    if vcpus is not None and vcpus < 1:
        raise MlexpError(f"instance.vcpus must be at least 1; got {vcpus}.")
    n_jobs = min(vcpus, cores) if vcpus else cores
    if vcpus and vcpus > cores:
        log.info("instance %s has %d vCPUs; this machine has %d cores: using %d threads",
                 profile["name"], vcpus, cores, n_jobs)
    device, fallback = "cpu", False
    if profile.get("gpus", 0) > 0:
        if gpu_available():
            device = "cuda"
        elif profile.get("allow_cpu_fallback"):
            fallback = True
            log.warning("instance %s asks for %d GPU(s) but none is visible: running on CPU "
                        "(instance.allow_cpu_fallback=true)", profile["name"], profile["gpus"])
        else:
            raise MlexpError(
                f"instance={profile['name']} asks for {profile['gpus']} GPU ({profile.get('accelerator')}), "
                "but no GPU is visible on this machine. Choose a CPU profile (instance=local, "
                "instance=ml.m5.xlarge, instance=ml.c5.2xlarge) or set instance.allow_cpu_fallback=true."
            )
    processes = profile.get("processes", 1)
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise MlexpError(f"instance.processes must be a whole number of at least 1; got {processes!r}.")
    if device == "cuda" and processes > 1:
        gpus = min(profile["gpus"], visible_gpus() or profile["gpus"])
        if processes > gpus:
            raise MlexpError(
                f"instance.processes={processes} asks for one data-parallel process per GPU, but "
                f"{gpus} GPU(s) are available to instance={profile['name']}. Set instance.processes={gpus} or fewer."
            )
    return Resources(profile=profile, n_jobs=n_jobs, device=device, fallback=fallback, processes=processes)


def estimated_cost(price_per_hour: Optional[float], seconds: float) -> float:
    """List-price cost of ``seconds`` of wall time on the profile."""
    return round((price_per_hour or 0.0) * seconds / 3600.0, 6)
