"""`mode=compress`: compress a saved train run's model (compress.from); this run's directory holds the result."""

import logging
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from mlexp.errors import MlexpError

__all__ = ["run_compress"]

log = logging.getLogger("mlexp")


def run_compress(cfg: DictConfig, run_dir: Optional[Path] = None) -> float:
    """Load compress.from's model and data split, compress, and write the model files, compress.json,
    metrics.json (the compressed model's test scores), report.md and lineage.json here.

    Returns the compressed model's test score on the saved run's objective metric.
    """
    from threadpoolctl import threadpool_limits

    from mlexp.instance import resolve_resources
    from mlexp.lineage import data_fingerprint
    from mlexp.neural.compress.apply import COMPRESS_JSON, Source, compress
    from mlexp.neural.compress.report import summary_lines
    from mlexp.neural.compress.settings import check_settings
    from mlexp.runrecord import recorded_run, write_json
    from mlexp.neural.continual.source import load_run, load_run_data

    if cfg.get("compress") is None:
        raise MlexpError("mode=compress needs a compress option: compress=prune, prune_structured, quantize or "
                         "distill, with compress.from=<a train run's directory>.")
    settings = check_settings(cfg.compress)
    if settings.get("from") is None:
        raise MlexpError("mode=compress needs compress.from=<a train run's directory> (the model to compress; "
                         "for compress=distill, the teacher).")
    resources = resolve_resources(cfg.instance)
    with recorded_run(cfg, run_dir) as record, threadpool_limits(limits=resources.n_jobs):
        saved = load_run(settings["from"], "compress.from")
        if getattr(saved.estimator, "compression_", None):
            raise MlexpError(f"compress.from={settings['from']} holds an already compressed model "
                             f"({saved.estimator.compression_}); compress the run it came from.")
        dataset, dev, test = load_run_data(saved, "compress.from")
        record.lineage["data"] = {"name": dataset.name, "task": dataset.task,
                                  **data_fingerprint(dataset.features, dataset.target)}
        record.lineage["source"] = {"run_dir": str(saved.directory), "data": saved.lineage.get("data"),
                                    "config_hash": saved.lineage.get("config_hash")}
        card = dict(saved.card)
        objective = card.get("objective") or {"metric": "roc_auc" if dataset.task == "classification" else "rmse",
                                              "direction": "maximize" if dataset.task == "classification" else "minimize"}
        card["objective"] = objective
        source = Source(saved.cfg, dataset, dev, test, saved.model, card, saved.directory)
        n_jobs = int((saved.cfg.get("model") or {}).get("n_jobs") or 1)
        content = compress(settings, source, record.run_dir, n_jobs)
        content["objective"] = objective
        write_json(record.run_dir / COMPRESS_JSON, content)
        after = content["after"]["metrics"]
        value = after.get(objective["metric"])
        write_json(record.run_dir / "metrics.json", {
            "objective": value, "objective_metric": objective["metric"], "direction": objective["direction"],
            "test": after, "before": content["before"]["metrics"],
            "compress": {"method": content["method"], **{k: v for k, v in content["change"].items() if k != "metrics"}},
            "timings": {"total_seconds": record.seconds()},
        })
        title = " ".join(record.lineage["overrides"])
        lines = [f"# Compression run{': ' + title if title else ''}", "",
                 f"Compressed `{saved.directory}` with compress={content['method']}.", "", *summary_lines(content), "",
                 "Predict with it: `mlexp mode=predict mode.run_dir=<this directory> mode.input=...`.", ""]
        (record.run_dir / "report.md").write_text("\n".join(lines))
    print(f"compress ({content['method']}): test {objective['metric']} {_num(content['before']['metrics'].get(objective['metric']))}"
          f" -> {_num(value)}; {content['change'].get('size_measured_on')} {content['change'].get('size_ratio')}x smaller\n"
          f"run directory: {record.run_dir}")
    return value if value is not None else float("nan")


def _num(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"
