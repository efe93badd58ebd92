"""SHAP values per input column: TreeExplainer / LinearExplainer on the encoded columns, else a sampled explainer.

Tree and linear models are explained on the column transforms' output, and the parts of one
source column (one-hot indicators, target-encoded classes) are summed back to it: SHAP values
add up, so the sum is that column's attribution. Any other model (MLP, SVM, kNN, ensembles), or
a pipeline whose steps mix columns (PCA, polynomial features), gets shap's KernelExplainer over the
raw input columns: each column is swapped for background rows' values as a whole.
"""

import logging
from dataclasses import dataclass
from typing import Any, List, Optional

import numpy as np
import pandas as pd

from mlexp.errors import MlexpError

__all__ = ["ShapResult", "explain_shap", "source_columns", "import_shap"]

log = logging.getLogger("mlexp")

# scikit-learn's tree models that shap's TreeExplainer reads ("...Classifier" / "...Regressor" follow).
TREE_MODELS = tuple(f"{base}{task}" for base in ("DecisionTree", "ExtraTree", "RandomForest", "ExtraTrees",
                                                 "GradientBoosting", "HistGradientBoosting")
                    for task in ("Classifier", "Regressor"))


@dataclass
class ShapResult:
    """values: rows x input columns (x outputs), in the explainer's output units; base: per row (x outputs)."""

    explainer: str
    output: str
    values: np.ndarray
    base: np.ndarray
    columns: List[str]


def import_shap() -> Any:
    try:
        import shap
    except ImportError as err:
        raise MlexpError(
            f"explain=shap needs the shap package, which is not installed ({err}). Install the extra: "
            "pip install 'mlexp[explain]', or use explain=permutation (scikit-learn's permutation importance)."
        ) from err
    return shap


def explain_shap(model: Any, X: pd.DataFrame, background: pd.DataFrame, task: str, seed: int,
                 explainer: str = "auto", max_evals: Any = "auto") -> ShapResult:
    """SHAP values of the fitted pipeline ``model`` for the rows ``X``, per input column."""
    shap = import_shap()
    columns, rest = model[0], model[1:]
    final = model.steps[-1][1]
    kind = explainer if explainer != "auto" else _kind(final)
    direct = all(hasattr(step, "fit_resample") for _, step in rest.steps[:-1])  # only samplers in between
    sources = source_columns(columns, list(X.columns)) if direct and kind in ("tree", "linear") else None
    if kind in ("tree", "linear") and sources is None:
        if explainer != "auto":
            log.warning("explain: %s explainer needs the encoded columns fed straight to the model; using the "
                        "sampled explainer", explainer)
        kind = "sampled"
    if kind == "tree":
        Z = _dense(columns.transform(X))
        explanation = shap.TreeExplainer(final)(Z, check_additivity=False)
        output = "margin (log-odds for classifiers)" if task == "classification" else "target units"
        return _summed(explanation, sources, list(X.columns), "TreeExplainer", output)
    if kind == "linear":
        Z, Zb = _dense(columns.transform(X)), _dense(columns.transform(background))
        explanation = shap.LinearExplainer(final, shap.maskers.Independent(Zb, max_samples=len(Zb)))(Z)
        output = "margin (log-odds for classifiers)" if task == "classification" else "target units"
        return _summed(explanation, sources, list(X.columns), "LinearExplainer", output)
    if kind != "sampled":
        raise MlexpError(f"explain.shap.explainer={explainer!r}: use auto, tree, linear or sampled.")
    return _sampled(shap, model, X, background, task, seed, max_evals)


def _kind(final: Any) -> str:
    name = type(final).__name__
    if type(final).__module__.startswith(("sklearn.ensemble", "sklearn.tree")) and name.endswith(TREE_MODELS):
        return "tree"
    if type(final).__module__.startswith("sklearn.linear_model") and hasattr(final, "coef_"):
        return "linear"
    return "sampled"


def source_columns(columns: Any, inputs: List[str]) -> Optional[List[str]]:
    """For each output column of the fitted ColumnTransformer, the input column it comes from;
    None when some output mixes several inputs or cannot be traced (then only the sampled explainer applies)."""
    try:
        names = list(columns.get_feature_names_out())
    except Exception:  # noqa: BLE001 - a transformer without feature names: not traceable
        return None
    out: List[Optional[str]] = [None] * len(names)
    for branch, _, cols in columns.transformers_:
        if branch == "remainder" or branch not in columns.output_indices_:
            continue
        cols = [cols] if isinstance(cols, str) else [inputs[c] if isinstance(c, (int, np.integer)) else c for c in cols]
        part = columns.output_indices_[branch]
        for i in range(part.start, part.stop):
            name = names[i].split("__", 1)[-1]
            if len(cols) == 1:
                out[i] = cols[0]
                continue
            matches = [c for c in cols if name == c or name.startswith(f"{c}_")]
            out[i] = max(matches, key=len) if matches else None
    return None if any(s is None for s in out) else out  # type: ignore[return-value]


def _dense(Z: Any) -> np.ndarray:
    return np.asarray(Z.toarray() if hasattr(Z, "toarray") else Z, dtype=float)


def _summed(explanation: Any, sources: List[str], inputs: List[str], name: str, output: str) -> ShapResult:
    values = np.asarray(explanation.values, dtype=float)
    summed = np.zeros((values.shape[0], len(inputs)) + values.shape[2:])
    for j, source in enumerate(sources):
        summed[:, inputs.index(source)] += values[:, j]
    return ShapResult(name, output, summed, np.asarray(explanation.base_values, dtype=float), inputs)


def _sampled(shap: Any, model: Any, X: pd.DataFrame, background: pd.DataFrame, task: str, seed: int,
             max_evals: Any) -> ShapResult:
    """KernelExplainer over the raw columns, coded as integers (the explainer sees numbers; the model, the data)."""
    inputs = list(X.columns)
    both = pd.concat([X, background], ignore_index=True)
    tables, codes = [], np.empty((len(both), len(inputs)), dtype=np.int64)
    for j, column in enumerate(inputs):
        codes[:, j], uniques = pd.factorize(both[column], use_na_sentinel=False)
        tables.append(uniques)
    dtypes = X.dtypes

    def decoded(M: np.ndarray) -> pd.DataFrame:
        M = np.asarray(M, dtype=np.int64)
        frame = pd.DataFrame({c: np.asarray(tables[j].take(M[:, j])) for j, c in enumerate(inputs)})
        for column in inputs:
            try:
                frame[column] = frame[column].astype(dtypes[column])
            except (TypeError, ValueError):
                pass
        return frame

    if task == "classification" and hasattr(model, "predict_proba"):
        predict, output = model.predict_proba, "probability"
    elif task == "classification" and hasattr(model, "decision_function"):
        predict, output = model.decision_function, "decision function"
    else:
        predict, output = model.predict, "prediction" if task == "classification" else "target units"

    def f(M: np.ndarray) -> np.ndarray:
        return np.asarray(predict(decoded(M)), dtype=float)

    # KernelExplainer: sampled coalitions, numpy only (the permutation explainer compiles numba code on first
    # use, which costs more than the explanation itself); every coalition when 2^columns - 2 fit the budget.
    columns = len(inputs)
    budget = 2 * columns + 512 if max_evals in (None, "auto") else int(max_evals)
    nsamples = min(budget, 2 ** columns - 2) if columns < 31 else budget
    explainer = shap.KernelExplainer(f, codes[len(X):])
    state = np.random.get_state()  # KernelExplainer samples coalitions from numpy's global generator
    np.random.seed(seed)
    try:
        values = explainer.shap_values(codes[:len(X)], nsamples=max(nsamples, 1), l1_reg=False, silent=True)
    finally:
        np.random.set_state(state)
    values = np.asarray(values, dtype=float)
    base = np.broadcast_to(np.asarray(explainer.expected_value, dtype=float), (len(X),) + values.shape[2:])
    return ShapResult("KernelExplainer (sampled)", output, values, np.array(base), inputs)
