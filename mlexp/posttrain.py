"""Post-training steps of a train run (bias, explanations, training rules, monitoring baseline, compression).

A step is checked before any model is fitted (a bad facet column or an unknown option fails
in seconds, not after the cross-validation), and run once the final model is fitted and
scored: it writes its own files in the run directory and may give ``report.md`` a section.
Steps are listed in ``STEPS`` as ``module:attribute`` and imported only when a run reaches them,
so a run that turns a step off never imports its libraries.
"""

import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from omegaconf import DictConfig

__all__ = ["TrainedRun", "Section", "PostTrainStep", "STEPS", "load_steps", "check_steps", "run_steps"]

log = logging.getLogger("mlexp")

# In the order they run: a later step may read the files of an earlier one (the monitoring
# baseline keeps the attribution ranking of explain.json and the bias values of bias.json).
STEPS: List[str] = [
    "mlexp.data.checks:DataChecks",  # ID-like columns, integer codes, one-column leaks: checked before training
    "mlexp.evaluation.diagnostics:FitCheck",  # a model that does not fit its own training folds
    "mlexp.evaluation.diagnostics:ThresholdReport",  # threshold=tuned: metrics at 0.5 and at the tuned threshold
    "mlexp.responsible.bias:BiasStep",  # Clarify's pre- and post-training bias metrics (docs/bias.md)
    "mlexp.responsible.explain:ExplainStep",  # permutation importance / SHAP per input column (docs/explain.md)
    "mlexp.neural.diagnostics:DiagnosticsStep",  # what the training rules found (docs/rules.md)
    "mlexp.monitor.baseline:BaselineStep",  # baseline/ for mode=monitor: after bias and explain (reads their files)
    "mlexp.neural.compress.step:CompressStep",  # compress=prune|quantize|distill after training (docs/compress.md)
]


@dataclass
class TrainedRun:
    """Everything a post-training step may read about a finished train run.

    Row positions (``dev``, ``test``) index ``dataset.features``; the out-of-fold predictions
    (``cv.predictions``) carry ``index``, positions within the development rows.
    """

    cfg: DictConfig
    run_dir: Path
    dataset: Any  # mlexp.data.Dataset
    dev: np.ndarray
    test: np.ndarray
    pipeline: Any  # the unfitted pipeline (clone it to refit)
    model: Any  # the pipeline fitted on all development rows
    splitter: Any
    cv: Any  # mlexp.evaluation.CVResult
    test_predictions: Any  # mlexp.evaluation.Predictions on the test rows, or None
    metrics: Dict[str, Any]
    reporter: Any  # the run's Reporter (per-epoch values of PyTorch models in .epochs)

    @property
    def task(self) -> str:
        return self.dataset.task

    @property
    def X_dev(self) -> Any:
        return self.dataset.features.iloc[self.dev]

    @property
    def y_dev(self) -> Any:
        return self.dataset.target.iloc[self.dev]

    @property
    def X_test(self) -> Any:
        return self.dataset.features.iloc[self.test]

    @property
    def y_test(self) -> Any:
        return self.dataset.target.iloc[self.test]


@dataclass
class Section:
    """A section of report.md: a title, Markdown lines (tables, ``![...](plots/x.png)``), and warnings that
    also go to the report's Warnings list and the log."""

    title: str
    lines: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    logged: bool = False  # the warnings went to the log when found (before training): not logged again


class PostTrainStep:
    """Base of a post-training step; override what applies.

    ``enabled`` decides from the config alone; ``check`` validates against the loaded data
    before training (raise MlexpError); ``run`` writes the step's files and returns a Section.
    """

    name = "step"

    def enabled(self, cfg: DictConfig) -> bool:
        return True

    def check(self, cfg: DictConfig, dataset: Any) -> None:
        pass

    def run(self, trained: TrainedRun) -> Optional[Section]:
        return None


def load_steps(cfg: DictConfig) -> List[PostTrainStep]:
    """The enabled steps for this run, in order."""
    steps = []
    for reference in STEPS:
        module, attribute = reference.split(":")
        step = getattr(importlib.import_module(module), attribute)
        step = step() if isinstance(step, type) else step
        if step.enabled(cfg):
            steps.append(step)
    return steps


def check_steps(steps: List[PostTrainStep], cfg: DictConfig, dataset: Any) -> None:
    for step in steps:
        step.check(cfg, dataset)


def run_steps(steps: List[PostTrainStep], trained: TrainedRun, timings: Dict[str, float]) -> List[Section]:
    """Run each step; its seconds go to ``timings[<name>_seconds]``; returns the report sections."""
    sections = []
    for step in steps:
        start = time.perf_counter()
        section = step.run(trained)
        timings[f"{step.name}_seconds"] = time.perf_counter() - start
        if section is not None:
            for warning in [] if section.logged else section.warnings:
                log.warning("%s: %s", step.name, warning)
            sections.append(section)
    return sections
