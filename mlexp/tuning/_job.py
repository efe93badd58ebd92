"""Run one trial's job in this process: Hydra's run_job, less the per-job work that serves no one.

Same as ``hydra.core.utils.run_job`` for the user: the job directory, ``.hydra/config.yaml``,
``hydra.yaml`` and ``overrides.yaml``, the job's log file, ``HydraConfig`` and
``hydra.job.env_set`` while the task runs, the callbacks, the working-directory change when
``hydra.job.chdir`` is set, and the ``JobReturn``. Different underneath: the config was composed
for this job alone, so it is not deep-copied twice; ``HydraConfig`` is set once; the YAML files
are written by libyaml from plain containers (about ten times faster than OmegaConf.to_yaml).
"""

import copy
import os
from pathlib import Path
from typing import Any, Callable

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

__all__ = ["run_trial_job"]

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def run_trial_job(task_function: Callable, config: DictConfig, callbacks: Any, number: int) -> Any:
    """Run ``task_function`` as job ``number`` of the sweep, with ``config`` composed for it; the JobReturn."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import JobReturn, JobRuntime, JobStatus, _flush_loggers, configure_log, env_override

    old_cwd = os.getcwd()
    original = HydraConfig.instance().cfg
    with open_dict(config.hydra.job):
        config.hydra.job.id = number
        config.hydra.job.num = number
    # HydraConfig holds the job's own config (Hydra holds a copy of its hydra node): nothing else uses it.
    OmegaConf.set_readonly(config.hydra, True)
    HydraConfig.instance().cfg = config
    output_dir = str(OmegaConf.select(config, "hydra.sweep.dir"))
    subdir = OmegaConf.select(config, "hydra.sweep.subdir")
    if subdir is not None:
        output_dir = os.path.join(output_dir, str(subdir))
    output_dir = os.path.abspath(output_dir)
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = output_dir
    chdir = _chdir(config.hydra.job.chdir)
    try:
        ret = JobReturn()
        ret.cfg = task_cfg = _without_hydra(config)
        ret.hydra_cfg = config  # its .hydra is the job's hydra node (run_job gives a copy of that node alone)
        ret.overrides = OmegaConf.to_container(config.hydra.overrides.task)
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        if chdir:
            os.chdir(output_dir)
        ret.working_dir = output_dir if chdir else os.getcwd()
        configure_log(config.hydra.job_logging, config.hydra.verbose)
        if config.hydra.output_subdir is not None:
            record = Path(output_dir) / str(config.hydra.output_subdir)
            record.mkdir(parents=True, exist_ok=True)
            _save(task_cfg, record / "config.yaml")
            _save({"hydra": config.hydra}, record / "hydra.yaml")
            _save(config.hydra.overrides.task, record / "overrides.yaml")
        with env_override(dict(config.hydra.job.env_set)):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as err:  # noqa: BLE001 - a failed job is a JobReturn, as with run_job
                ret.return_value = err
                ret.status = JobStatus.FAILED
        ret.task_name = JobRuntime.instance().get("name")
        _flush_loggers()
        callbacks.on_job_end(config=config, job_return=ret)
        return ret
    finally:
        HydraConfig.instance().cfg = original
        if chdir:
            os.chdir(old_cwd)


def _without_hydra(config: DictConfig) -> DictConfig:
    """A deep copy of the job's config less its hydra node (what the task function gets), without
    copying the hydra node first only to delete it (Hydra's run_job does)."""
    content = config.__dict__.get("_content")
    if isinstance(content, dict) and "hydra" in content:
        hydra_node = content.pop("hydra")
        try:
            return copy.deepcopy(config)
        finally:
            content["hydra"] = hydra_node
    task_cfg = copy.deepcopy(config)  # pragma: no cover - an OmegaConf without _content
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg


def _chdir(setting: Any) -> bool:
    """hydra.job.chdir; unset: as Hydra decides for the application's version_base (changes before 1.2)."""
    if setting is not None:
        return bool(setting)
    from hydra import version

    return not version.base_at_least("1.2")


def _save(node: Any, path: Path) -> None:
    if isinstance(node, dict):
        content = {key: OmegaConf.to_container(value, resolve=False, enum_to_str=True) for key, value in node.items()}
    else:
        content = OmegaConf.to_container(node, resolve=False, enum_to_str=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.dump(content, handle, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True)
