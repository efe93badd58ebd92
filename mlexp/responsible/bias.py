"""The `bias` post-training step: Clarify's pre- and post-training bias metrics of a facet, as bias.json + a report section.

Pre-training metrics use the development rows and their labels; post-training metrics use the
out-of-fold predictions (every development row, predicted by a model that did not see it) and
again the test split's predictions. The format of bias.json is documented in docs/bias.md.
"""

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError
from mlexp.posttrain import PostTrainStep, Section, TrainedRun
from mlexp.responsible import clarify

__all__ = ["BiasStep", "BiasSettings", "resolve_settings", "BIAS_FILE"]

log = logging.getLogger("mlexp")

BIAS_FILE = "bias.json"
MAX_VALUES = 20  # a facet with more distinct values than this needs facet_values or facet_threshold


@dataclass
class BiasSettings:
    """The `bias` option checked against the data: which rows form each facet d, what is positive."""

    facet: str
    groups: List[List[Any]]  # each entry: the facet values of one facet d (Clarify's value_or_threshold)
    facet_threshold: Optional[float]
    positive_codes: Optional[List[int]]  # classification: encoded classes that count as positive
    label_threshold: Optional[float]  # regression: positive = value > threshold
    label_description: str
    group: Optional[str]
    methods: Optional[List[str]]
    thresholds: Dict[str, Any] = field(default_factory=dict)
    flip_test_rows: Optional[int] = None

    def facet_keys(self, facet: pd.Series) -> tuple:
        """(key per row, {value_or_threshold: the keys of that facet d}): the facet as strings, or, with a
        threshold, 'True' above it."""
        if self.facet_threshold is not None:
            return (facet > self.facet_threshold).astype(str).to_numpy(), {f"({self.facet_threshold:g}, max]": ["True"]}
        return facet.astype(str).to_numpy(), {",".join(map(str, v)): [str(x) for x in v] for v in self.groups}

    def positive(self, y: np.ndarray) -> np.ndarray:
        if self.label_threshold is not None:
            return np.asarray(y, dtype=float) > self.label_threshold
        return np.isin(np.asarray(y), self.positive_codes)


def resolve_settings(node: DictConfig, dataset: Any, y_dev: Optional[pd.Series] = None) -> BiasSettings:
    """Check the `bias` option against the loaded data; every problem is an MlexpError with the fix."""
    X = dataset.features
    facet = node.get("facet")
    if facet is None:
        raise MlexpError("bias=clarify needs a facet column: set bias.facet=<column> (or data.roles.facet), "
                         "or turn bias metrics off with bias=none.")
    _check_column(facet, X, "bias.facet")
    group = node.get("group")
    if group is not None:
        _check_column(group, X, "bias.group")
    values = _plain_list(node.get("facet_values"))
    threshold = node.get("facet_threshold")
    column = X[facet]
    if values and threshold is not None:
        raise MlexpError("set bias.facet_values (categories) or bias.facet_threshold (a numeric cut), not both.")
    present = sorted({str(v) for v in column.dropna().unique()})
    if values:
        missing = [v for v in values if str(v) not in present]
        if missing:
            raise MlexpError(f"bias.facet_values: {', '.join(map(repr, missing))} does not occur in column {facet!r}; "
                             f"its values are: {', '.join(present[:30])}. Fix bias.facet_values.")
        groups = [values]
    elif threshold is not None:
        if not pd.api.types.is_numeric_dtype(column):
            raise MlexpError(f"bias.facet_threshold needs a numeric facet, but {facet!r} holds {column.dtype} values; "
                             "use bias.facet_values=[...] instead.")
        groups = []
    else:
        if pd.api.types.is_numeric_dtype(column) and len(present) > MAX_VALUES:
            raise MlexpError(f"bias.facet={facet!r} is numeric with {len(present)} distinct values: set "
                             f"bias.facet_threshold=<cut> (facet d: values above it) or bias.facet_values=[...].")
        groups = [[v] for v in present]
    positive_codes, label_threshold, label_text = _label_settings(node, dataset, y_dev)
    cap = node.get("flip_test_rows")
    if cap is not None and (not isinstance(cap, int) or cap < 1):
        raise MlexpError(f"bias.flip_test_rows={cap!r}: give a positive number of facet-d rows, or null for all.")
    return BiasSettings(facet, groups, None if threshold is None else float(threshold), positive_codes,
                        label_threshold, label_text, group, _methods(node.get("methods")),
                        _thresholds(node.get("thresholds")), cap)


def _check_column(column: str, X: pd.DataFrame, key: str) -> None:
    if column not in X.columns:
        raise MlexpError(f"{key}={column!r} is not a feature column of the data; columns: {', '.join(X.columns)}. "
                         f"Set {key} to one of them (the target cannot be a facet), or use bias=none.")


def _label_settings(node: DictConfig, dataset: Any, y_dev: Optional[pd.Series]) -> tuple:
    label_values = _plain_list(node.get("label_values"))
    threshold = node.get("label_threshold")
    if dataset.task == "regression":
        if label_values:
            raise MlexpError("bias.label_values names classes, but the target is numeric (regression): set "
                             "bias.label_threshold=<value> (positive outcome: target above it) instead.")
        if threshold is None:
            y = dataset.target if y_dev is None else y_dev
            threshold = float(np.median(y))
        return None, float(threshold), f"> {float(threshold):g}"
    if threshold is not None:
        raise MlexpError("bias.label_threshold is for a numeric (regression) target; this target has classes "
                         f"({', '.join(map(str, dataset.class_names))}): use bias.label_values=[...].")
    names = [str(c) for c in dataset.class_names]
    if not label_values:
        if len(names) > 2:
            raise MlexpError(f"bias needs the positive outcome of a multi-class target: set bias.label_values=[<class>] "
                             f"(classes: {', '.join(names)}).")
        label_values = [names[1]]
    unknown = [v for v in label_values if str(v) not in names]
    if unknown:
        raise MlexpError(f"bias.label_values: {', '.join(map(repr, unknown))} is not a class of target "
                         f"{dataset.target.name!r}; classes: {', '.join(names)}.")
    wanted = {str(v) for v in label_values}
    return [i for i, name in enumerate(names) if name in wanted], None, ",".join(map(str, label_values))


def _methods(methods: Any) -> Optional[List[str]]:
    if methods is None or methods == "all":
        return None
    names = _canonical(_plain_list(methods), "bias.methods")
    return names


def _thresholds(node: Any) -> Dict[str, Any]:
    limits = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})
    names = _canonical(list(limits), "bias.thresholds")
    out = {}
    for name, (key, limit) in zip(names, limits.items()):
        if limit is None:
            continue
        ok = isinstance(limit, (int, float)) or (isinstance(limit, list) and len(limit) == 2)
        if not ok:
            raise MlexpError(f"bias.thresholds.{key}={limit!r}: give a number (warn when |value| is above it) or "
                             "[low, high] (warn when the value is outside), e.g. bias.thresholds.DI=[0.8,1.25].")
        out[name] = limit
    return out


def _canonical(names: List[Any], key: str) -> List[str]:
    known = clarify.PRE_TRAINING + clarify.POST_TRAINING
    out = []
    for name in names:
        canonical = clarify.canonical_name(name)
        if canonical is None:
            raise MlexpError(f"{key}: {name!r} is not a Clarify bias metric; metrics: {', '.join(known)}.")
        out.append(canonical)
    return out


def _plain_list(value: Any) -> List[Any]:
    if value is None:
        return []
    value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return list(value) if isinstance(value, (list, tuple)) else [value]


def passes(value: Optional[float], limit: Any) -> bool:
    """True when ``value`` passes its threshold: |value| > limit, or value outside [low, high]."""
    if value is None:
        return False
    if isinstance(limit, list):
        return not limit[0] <= value <= limit[1]
    return abs(value) > limit


class BiasStep(PostTrainStep):
    """bias=auto|clarify: Clarify's metrics for the facet; bias=none: off."""

    name = "bias"

    def enabled(self, cfg: DictConfig) -> bool:
        node = cfg.get("bias")
        if node is None or node.get("name") == "none":
            return False
        return node.get("name") != "auto" or node.get("facet") is not None

    def check(self, cfg: DictConfig, dataset: Any) -> None:
        resolve_settings(cfg.bias, dataset)

    def run(self, trained: TrainedRun) -> Optional[Section]:
        from mlexp.responsible._bias_report import bias_section, neighbour_features

        settings = resolve_settings(trained.cfg.bias, trained.dataset, trained.y_dev)
        X_dev, X_test = trained.X_dev, trained.X_test
        encode = neighbour_features(X_dev, settings.facet, trained.dataset.roles)
        report: Dict[str, Any] = {"version": 1, "facet": settings.facet, "label": str(trained.dataset.target.name),
                                  "label_value_or_threshold": settings.label_description, "group": settings.group}
        stage = _Stage(settings, int(trained.cfg.seed))
        report["pre_training_bias_metrics"] = _clarify_block(
            report, stage(X_dev, settings.positive(trained.y_dev.to_numpy())))
        rows = {"development": len(X_dev)}
        for key, predictions, X, name in (("post_training_bias_metrics", trained.cv.predictions, X_dev, "out_of_fold"),
                                          ("post_training_bias_metrics_test", trained.test_predictions, X_test, "test")):
            if predictions is None or not len(predictions.index):
                continue
            subset = X.iloc[predictions.index]
            report[key] = _clarify_block(report, stage(subset, settings.positive(predictions.y_true),
                                                       settings.positive(predictions.y_pred), lambda: encode(subset)))
            rows[name] = len(subset)
        report["rows"] = rows
        report["thresholds"] = settings.thresholds
        section = bias_section(report, settings.thresholds, trained.run_dir)
        report["warnings"] = section.warnings
        (trained.run_dir / BIAS_FILE).write_text(json.dumps(_infinity_as_text(report), indent=2))
        return section


class _Stage:
    """One stage's metrics for every facet d: pre-training when no predictions are given."""

    def __init__(self, settings: BiasSettings, seed: int):
        self.settings, self.seed = settings, seed

    def __call__(self, rows: pd.DataFrame, label: np.ndarray, predicted: Optional[np.ndarray] = None,
                 features: Any = None) -> List[Dict[str, Any]]:
        s = self.settings
        group = rows[s.group].to_numpy() if s.group else None
        keys, facets = s.facet_keys(rows[s.facet])
        # One MetricFrame over the facet per stage; each facet d sums its values' counts from it.
        confusion = clarify.confusion_by_value(keys, label, label if predicted is None else predicted)
        encoded = _encoded(features) if predicted is not None and (s.methods is None or "FT" in s.methods) else None
        out = []
        for value, d_keys in facets.items():
            d = np.isin(keys, d_keys)
            if predicted is None:
                metrics = clarify.pre_training(d, label, group, s.methods, confusion, d_keys)
            else:
                metrics = clarify.post_training(d, label, predicted, group, encoded, s.methods, confusion, d_keys,
                                                s.flip_test_rows, self.seed)
            out.append({"value_or_threshold": value, "metrics": metrics})
        return out


def _encoded(features: Any) -> Optional[np.ndarray]:
    if features is None:
        return None
    try:
        return features()
    except ValueError:  # no column besides the facet: FT reports that it needs feature rows
        return None


def _clarify_block(report: Dict[str, Any], facets: List[Dict[str, Any]]) -> Dict[str, Any]:
    # The layout of Clarify's analysis.json: label, its positive value(s), facets -> [per facet d].
    return {"label": report["label"], "label_value_or_threshold": report["label_value_or_threshold"],
            "facets": {report["facet"]: facets}}


def _infinity_as_text(value: Any) -> Any:
    """Clarify writes infinite values as "Infinity" / "-Infinity" (JSON has no infinity; float() reads them back)."""
    if isinstance(value, dict):
        return {k: _infinity_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_infinity_as_text(v) for v in value]
    if isinstance(value, float) and np.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
