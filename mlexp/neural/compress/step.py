"""The `compress` post-training step: a train run compresses the model it just fitted (files in compressed/)."""

import logging
from typing import Any, Optional

from omegaconf import DictConfig

from mlexp.errors import MlexpError
from mlexp.posttrain import PostTrainStep, Section, TrainedRun

__all__ = ["CompressStep", "COMPRESSED_DIR"]

log = logging.getLogger("mlexp")

COMPRESSED_DIR = "compressed"


class CompressStep(PostTrainStep):
    """compress=prune|prune_structured|quantize|distill in a train run: compress.json in the run directory,
    the compressed model in ``compressed/`` (mode=predict mode.run_dir=<run>/compressed)."""

    name = "compress"

    def enabled(self, cfg: DictConfig) -> bool:
        return cfg.get("compress") is not None and cfg.mode.name == "train"

    def check(self, cfg: DictConfig, dataset: Any) -> None:
        from mlexp.neural.compress.settings import check_settings, is_torch_option

        settings = check_settings(cfg.compress)
        if settings.get("from") is not None:
            raise MlexpError(f"compress.from={settings['from']} names a saved run, which mode=compress compresses. "
                             "A train run compresses its own model: drop compress.from, or add mode=compress.")
        if settings["method"] != "distill" and (not is_torch_option(cfg.model) or (cfg.get("ensemble") or {}).get("_target_")):
            raise MlexpError(f"compress={settings['method']} works on PyTorch models, and model "
                             f"{cfg.model.get('_target_')} is not one. Use model=mlp or model=torch_linear "
                             "(ensemble=none), or compress=distill to teach a small MLP from this model.")

    def run(self, trained: TrainedRun) -> Optional[Section]:
        from mlexp.neural.compress.apply import COMPRESS_JSON, Source, compress
        from mlexp.neural.compress.report import summary_lines
        from mlexp.neural.compress.settings import check_settings
        from mlexp.runrecord import write_json

        card = {"task": trained.task, "target": trained.cfg.data.target, "classes": trained.dataset.class_names,
                "features": list(trained.dataset.features.columns), "roles": trained.dataset.roles.as_dict(),
                "objective": {"metric": trained.reporter.metric, "direction": trained.reporter.direction}}
        source = Source(trained.cfg, trained.dataset, trained.dev, trained.test, trained.model, card)
        n_jobs = int(trained.cfg.model.get("n_jobs") or 1)
        content = compress(check_settings(trained.cfg.compress), source, trained.run_dir / COMPRESSED_DIR, n_jobs)
        content["objective"] = card["objective"]
        write_json(trained.run_dir / COMPRESS_JSON, content)
        lines = summary_lines(content)
        lines += ["", f"The compressed model is in `{COMPRESSED_DIR}/`: "
                  f"`mlexp mode=predict mode.run_dir={trained.run_dir / COMPRESSED_DIR} mode.input=...`."]
        return Section(title=f"Compression ({content['method']})", lines=lines, warnings=_warnings(content))


def _warnings(content: dict) -> list:
    metric = content["objective"]["metric"]
    delta = content["change"]["metrics"].get(metric)
    if delta is not None and abs(delta) > 0.05 and content["method"] != "distill":
        return [f"compression changed test {metric} by {delta:+.4f}"]
    return []
