"""The `explain` post-training step: permutation importance or SHAP per input column, PDP/ICE plots, local explanations.

Global importance is measured on the test split (the development rows when there is none) for
the final model; attributions are per input column, never per encoded part. Writes explain.json
(format in docs/explain.md: its ``global_ranking`` is what attribution-drift checks compare) and a
report section with plots in ``explain/``.
"""

import json
import logging
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from mlexp.errors import MlexpError
from mlexp.posttrain import PostTrainStep, Section, TrainedRun

__all__ = ["ExplainStep", "EXPLAIN_FILE", "EXPLAIN_DIR", "scorer_name"]

log = logging.getLogger("mlexp")

EXPLAIN_FILE = "explain.json"
EXPLAIN_DIR = "explain"
METHODS = ("permutation", "shap", "none")
_SCORERS = {"accuracy": "accuracy", "precision": "precision", "recall": "recall", "f1": "f1", "roc_auc": "roc_auc",
            "log_loss": "neg_log_loss", "rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error",
            "r2": "r2"}
_MULTICLASS = {"precision": "precision_macro", "recall": "recall_macro", "f1": "f1_macro", "roc_auc": "roc_auc_ovr"}


def scorer_name(metric: str, n_classes: Optional[int]) -> str:
    """scikit-learn's scorer for an mlexp metric (multi-class: macro averages, one-vs-rest ROC AUC)."""
    if n_classes is not None and n_classes > 2 and metric in _MULTICLASS:
        return _MULTICLASS[metric]
    return _SCORERS.get(metric, metric)


class ExplainStep(PostTrainStep):
    """explain=permutation|shap: global importance, PDP/ICE for the top features, local explanations (shap)."""

    name = "explain"

    def enabled(self, cfg: DictConfig) -> bool:
        node = cfg.get("explain")
        return node is not None and node.get("name") != "none"

    def check(self, cfg: DictConfig, dataset: Any) -> None:
        node = cfg.explain
        method = node.get("name")
        if method not in METHODS:
            raise MlexpError(f"explain={method!r} is not an option; use explain=permutation, shap or none.")
        if method == "shap":
            from mlexp.responsible._shap import import_shap

            import_shap()
        elif node.get("rows") not in (None, 0, []):
            raise MlexpError("explain.rows asks for local explanations, which come from SHAP values: use explain=shap "
                             "(pip install 'mlexp[explain]'), or drop explain.rows.")
        for key in ("n_repeats", "max_rows", "grid_resolution", "ice_lines"):
            value = node.get(key)
            if not isinstance(value, int) or value < 1:
                raise MlexpError(f"explain.{key}={value!r} must be a positive whole number.")
        if not isinstance(node.get("top_k"), int) or node.top_k < 0:
            raise MlexpError(f"explain.top_k={node.get('top_k')!r} must be 0 (no PDP plots) or a positive number.")
        _pairs(node, dataset)
        _rows(node, dataset)
        if node.get("pdp_class") is not None and dataset.class_names is not None:
            _class_index(node.pdp_class, dataset.class_names)
        if node.get("scoring") is not None:
            from sklearn.metrics import get_scorer

            try:
                get_scorer(node.scoring)
            except ValueError as err:
                raise MlexpError(f"explain.scoring={node.scoring!r} is not a scikit-learn scorer ({err}); null uses "
                                 "the run's objective metric.") from err

    def run(self, trained: TrainedRun) -> Optional[Section]:
        from mlexp.responsible._explain_report import explain_section, partial_dependence

        node, cfg = trained.cfg.explain, trained.cfg
        seed = int(cfg.seed)
        out_dir = trained.run_dir / EXPLAIN_DIR
        out_dir.mkdir(parents=True, exist_ok=True)
        split, X, y = ("test", trained.X_test, trained.y_test) if len(trained.test) else (
            "development", trained.X_dev, trained.y_dev)
        sample = _sample(len(X), node.max_rows, seed)
        report: Dict[str, Any] = {"version": 1, "method": node.name, "model": type(trained.model.steps[-1][1]).__name__,
                                  "task": trained.task, "target": str(trained.dataset.target.name),
                                  "features": list(X.columns)}
        report["permutation_importance"] = _permutation(trained, X.iloc[sample], y.iloc[sample], node, seed, split)
        ranking = [{"feature": c, "importance": v["mean"], "std": v["std"]}
                   for c, v in report["permutation_importance"]["features"].items()]
        if node.name == "shap":
            report["shap"], report["local"], shap_ranking = _shap(trained, node, X, seed, out_dir)
            ranking = shap_ranking
        ranking.sort(key=lambda r: (-r["importance"], r["feature"]))
        report["global_ranking"] = [{**r, "rank": i + 1} for i, r in enumerate(ranking)]
        report["global_ranking_measure"] = ("mean |SHAP value|" if node.name == "shap" else
                                            f"permutation importance ({report['permutation_importance']['scoring']})")
        report["partial_dependence"] = partial_dependence(trained, node, X.iloc[sample], ranking, out_dir, seed)
        section = explain_section(report, trained.run_dir)
        (trained.run_dir / EXPLAIN_FILE).write_text(json.dumps(report, indent=2, default=_plain))
        return section


def _sample(n: int, cap: int, seed: int) -> np.ndarray:
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))


def _permutation(trained: TrainedRun, X: pd.DataFrame, y: pd.Series, node: DictConfig, seed: int,
                 split: str) -> Dict[str, Any]:
    """Permutation importance of each input column: the drop in score when it is shuffled."""
    from mlexp.responsible._permutation import permutation_by_column

    n_classes = len(trained.dataset.class_names) if trained.dataset.class_names else None
    scoring = node.get("scoring") or scorer_name(trained.reporter.metric, n_classes)
    try:
        result = permutation_by_column(trained.model, X, y.to_numpy(), scoring, node.n_repeats, seed)
    except (ValueError, AttributeError) as err:  # e.g. ROC AUC on a sample that lacks a class
        fallback = "accuracy" if trained.task == "classification" else "r2"
        log.warning("explain: scoring %s failed on the %s rows (%s); permutation importance uses %s",
                    scoring, split, err, fallback)
        scoring = fallback
        result = permutation_by_column(trained.model, X, y.to_numpy(), scoring, node.n_repeats, seed)
    values = result["importances"]
    features = {c: {"mean": float(values[j].mean()), "std": float(values[j].std()),
                    "values": [float(v) for v in values[j]]} for j, c in enumerate(X.columns)}
    return {"scoring": scoring, "split": split, "rows": len(X), "n_repeats": int(node.n_repeats),
            "baseline_score": result["baseline"], "features": features}


def _shap(trained: TrainedRun, node: DictConfig, X: pd.DataFrame, seed: int, out_dir: Any) -> tuple:
    """(shap block, local explanations, ranking by mean |SHAP|) for the explained rows and the chosen rows."""
    from mlexp.responsible._explain_report import waterfall
    from mlexp.responsible._shap import explain_shap

    settings = node.get("shap") or {}
    rows = _sample(len(X), int(settings.get("max_rows", 200)), seed)
    chosen = _rows(node, trained.dataset, trained.test)
    background = trained.X_dev.iloc[_sample(len(trained.X_dev), int(settings.get("background", 100)), seed + 1)]
    features = trained.dataset.features
    explained = pd.concat([X.iloc[rows], features.iloc[chosen]], ignore_index=True)
    result = explain_shap(trained.model, explained, background, trained.task, seed,
                          settings.get("explainer", "auto"), settings.get("max_evals", "auto"))
    values = result.values[:len(rows)]
    magnitude = np.abs(values).mean(axis=0)
    if magnitude.ndim == 2:  # one column per output (class): averaged over the outputs
        magnitude = magnitude.mean(axis=1)
    spread = np.abs(values).std(axis=0)
    spread = spread.mean(axis=1) if spread.ndim == 2 else spread
    ranking = [{"feature": c, "importance": float(magnitude[j]), "std": float(spread[j])}
               for j, c in enumerate(result.columns)]
    block = {"explainer": result.explainer, "output": result.output, "rows": len(rows), "background": len(background),
             "split": "test" if len(trained.test) else "development",
             "mean_abs": {c: float(magnitude[j]) for j, c in enumerate(result.columns)}}
    local = []
    for k, position in enumerate(chosen):
        row_values, base = result.values[len(rows) + k], result.base[len(rows) + k]
        output = _explained_output(trained, features.iloc[[position]], row_values)
        if row_values.ndim == 2:
            row_values, base = row_values[:, output], np.atleast_1d(base)[output]
        names = trained.dataset.class_names
        entry = {"row": int(position), "split": "test" if position in set(trained.test) else "development",
                 "output": output, "class": None if output is None or not names else str(names[output]),
                 "base_value": float(np.ravel(base)[0]),
                 "prediction": float(np.ravel(base)[0] + row_values.sum()),
                 "attributions": {c: float(row_values[j]) for j, c in enumerate(result.columns)}}
        entry["plot"] = waterfall(entry, features.iloc[position], out_dir, result.output)
        local.append(entry)
    return block, local, ranking


def _explained_output(trained: TrainedRun, row: pd.DataFrame, values: np.ndarray) -> Optional[int]:
    """The output a local explanation shows: the predicted class of a multi-output explanation, else None."""
    if values.ndim < 2:
        return None
    if values.shape[1] == 2:
        return 1
    return int(np.asarray(trained.model.predict(row))[0])


def _pairs(node: DictConfig, dataset: Any) -> List[List[str]]:
    pairs = OmegaConf.to_container(node.get("pairs"), resolve=True) if node.get("pairs") else []
    skipped = set(dataset.roles.text) | set(dataset.roles.datetime)
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            raise MlexpError(f"explain.pairs: {pair!r} is not a pair; give pairs of columns: "
                             "'explain.pairs=[[age,prestg10]]'.")
        for column in pair:
            if column not in dataset.features.columns or column in skipped:
                raise MlexpError(f"explain.pairs: {column!r} is not a numeric or categorical input column; columns: "
                                 f"{', '.join(c for c in dataset.features.columns if c not in skipped)}.")
        if len({c in dataset.roles.categorical for c in pair}) == 2:
            raise MlexpError(f"explain.pairs: {pair} mixes a numeric and a categorical column; scikit-learn's two-way "
                             "partial dependence takes two numeric or two categorical columns.")
    return pairs


def _rows(node: DictConfig, dataset: Any, test: Optional[np.ndarray] = None) -> List[int]:
    """explain.rows: a count N (the first N test rows) or a list of row positions in the loaded data."""
    rows = node.get("rows")
    n = len(dataset.features)
    if rows in (None, 0):
        return []
    if isinstance(rows, int) and not isinstance(rows, bool):
        if rows < 0:
            raise MlexpError(f"explain.rows={rows}: give a count of test rows or a list of row positions.")
        pool = list(test) if test is not None and len(test) else list(range(n))
        return [int(r) for r in pool[:rows]]
    positions = OmegaConf.to_container(rows, resolve=True) if OmegaConf.is_config(rows) else rows
    bad = [r for r in positions if not isinstance(r, int) or not 0 <= r < n]
    if bad:
        raise MlexpError(f"explain.rows: {bad} are not row positions of the loaded data (0 to {n - 1}).")
    return [int(r) for r in positions]


def _class_index(name: Any, class_names: List[Any]) -> int:
    names = [str(c) for c in class_names]
    if str(name) not in names:
        raise MlexpError(f"explain.pdp_class={name!r} is not a class; classes: {', '.join(names)}.")
    return names.index(str(name))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
