"""SageMaker Clarify's bias metrics, with its documented names, signs and formulas, computed from boolean masks.

Facet ``d`` is the group analysed (``d`` True), facet ``a`` the rest. A label or a prediction is
True for the positive outcome. The confusion counts of each facet come from one fairlearn
``MetricFrame`` over the facet column; every rate and difference is Clarify's formula on those
counts (signed, a minus d or d minus a as Clarify defines each). The label-distribution distances
use scipy (entropy, Jensen-Shannon); CDD, the flip test and GE are written here. Division
follows Clarify: 0/0 is 0, x/0 is +-Infinity.
"""

from typing import Any, Callable, Dict, List, Optional

import numpy as np

__all__ = ["PRE_TRAINING", "POST_TRAINING", "DESCRIPTIONS", "pre_training", "post_training", "canonical_name",
           "confusion_by_value", "divide"]

DESCRIPTIONS = {
    "CI": "Class Imbalance (CI)",
    "DPL": "Difference in Proportions in Labels (DPL)",
    "KL": "Kullback-Leibler Divergence (KL)",
    "JS": "Jensen-Shannon Divergence (JS)",
    "LP": "Lp-norm (LP)",
    "TVD": "Total Variation Distance (TVD)",
    "KS": "Kolmogorov-Smirnov Distance (KS)",
    "CDDL": "Conditional Demographic Disparity in Labels (CDDL)",
    "DPPL": "Difference in Positive Proportions in Predicted Labels (DPPL)",
    "DI": "Disparate Impact (DI)",
    "DCAcc": "Difference in Conditional Acceptance (DCAcc)",
    "DCR": "Difference in Conditional Rejection (DCR)",
    "DAR": "Difference in Acceptance Rates (DAR)",
    "DRR": "Difference in Rejection Rates (DRR)",
    "RD": "Recall Difference (RD)",
    "AD": "Accuracy Difference (AD)",
    "SD": "Specificity Difference (SD)",
    "TE": "Treatment Equality (TE)",
    "FT": "Counterfactual Fliptest (FT)",
    "CDDPL": "Conditional Demographic Disparity in Predicted Labels (CDDPL)",
    "GE": "Generalized Entropy (GE)",
}
PRE_TRAINING = ("CI", "DPL", "KL", "JS", "LP", "TVD", "KS", "CDDL")
POST_TRAINING = ("DPPL", "DI", "DCAcc", "DCR", "DAR", "DRR", "RD", "AD", "SD", "TE", "FT", "CDDPL", "GE")
# Other spellings in use: the docs' "Lp", smclarify's "DCA".
_ALIASES = {"LP": "LP", "DCA": "DCAcc", **{name.upper(): name for name in DESCRIPTIONS}}
FT_NEIGHBOURS, FT_FEW_NEIGHBOURS, FT_FEW_ROWS = 5, 1, 9  # Clarify: 5 neighbours, 1 when facet a has <= 9 rows
GE_ALPHA = 2


def canonical_name(name: str) -> Optional[str]:
    """Clarify's name for ``name`` in any case or spelling (``lp``, ``DCA``), or None."""
    return _ALIASES.get(str(name).upper())


def divide(numerator: float, denominator: float) -> float:
    """Clarify's division: 0/0 = 0, x/0 = +-Infinity."""
    if denominator == 0:
        return 0.0 if numerator == 0 else float(np.copysign(np.inf, numerator))
    return numerator / denominator


def _difference(first: float, second: float) -> float:
    # Clarify reports 0 where both sides are infinite (e.g. no false positives in either facet).
    if np.isinf(first) and first == second:
        return 0.0
    return first - second


def confusion_by_value(keys: np.ndarray, label: np.ndarray, predicted: np.ndarray) -> Dict[str, np.ndarray]:
    """{facet value: [TN, FP, FN, TP]}: one fairlearn MetricFrame over the facet, confusion counts per value."""
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import confusion_matrix

    frame = MetricFrame(
        metrics=lambda y, p: confusion_matrix(y, p, labels=[0, 1]).ravel(),
        y_true=np.asarray(label, int), y_pred=np.asarray(predicted, int),
        sensitive_features=np.asarray(keys).astype(str),
    )
    return {str(key): np.asarray(counts, dtype=float) for key, counts in frame.by_group.items()}


def _groups(d: np.ndarray, label: np.ndarray, predicted: np.ndarray,
            confusion: Optional[Dict[str, np.ndarray]] = None, d_keys: Optional[List[str]] = None
            ) -> Dict[str, Dict[str, float]]:
    """Counts and rates of facets 'a' and 'd': n, q (positive labels), q_hat (positive predictions), TP, FP, ...

    ``confusion`` (confusion_by_value over the facet's values, with ``d_keys`` the values of d)
    saves a frame per facet d; without it the counts come from a frame over ``d`` itself.
    """
    if confusion is None:
        confusion, d_keys = confusion_by_value(d, label, predicted), ["True"]
    zero = np.zeros(4)
    counts = {"d": sum((v for k, v in confusion.items() if k in d_keys), zero),
              "a": sum((v for k, v in confusion.items() if k not in d_keys), zero)}
    out = {}
    for side, (tn, fp, fn, tp) in counts.items():
        n = tn + fp + fn + tp
        if n == 0:
            raise ValueError(f"facet {side} has no rows here" + (" (every row is in facet d)" if side == "a" else ""))
        out[side] = {"n": n, "TN": tn, "FP": fp, "FN": fn, "TP": tp, "q": (tp + fn) / n, "q_hat": (tp + fp) / n,
                     "TPR": divide(tp, tp + fn), "TNR": divide(tn, tn + fp), "ACC": (tp + tn) / n,
                     "PPV": divide(tp, tp + fp)}
    return out


def _label_distributions(groups: Dict[str, Dict[str, float]]) -> tuple:
    """(Pa, Pd): each facet's share of negative and positive labels."""
    return tuple(np.array([1 - groups[side]["q"], groups[side]["q"]]) for side in ("a", "d"))


def _conditional_disparity(d: np.ndarray, positive: np.ndarray, group: Optional[np.ndarray]) -> float:
    """CDD = (1/n) sum_i n_i DD_i, DD_i = n_d(0)/n(0) - n_d(1)/n(1) within group i (a side without rows counts 0)."""
    import pandas as pd

    if group is None:
        raise ValueError("needs a group column: set bias.group=<column> (e.g. an age band or occupation)")
    if not positive.any():
        raise ValueError("no positive outcomes in these rows")
    if positive.all():
        raise ValueError("no negative outcomes in these rows")
    frame = pd.DataFrame({"group": pd.Series(group).astype(str).to_numpy(), "d": d, "positive": positive})
    total = 0.0
    for _, rows in frame.groupby("group", sort=True):
        accepted, rejected = rows[rows.positive], rows[~rows.positive]
        share_accepted = accepted.d.mean() if len(accepted) else 0.0
        share_rejected = rejected.d.mean() if len(rejected) else 0.0
        total += len(rows) * (share_rejected - share_accepted)
    return total / len(frame)


def _flip_test(d: np.ndarray, predicted: np.ndarray, features: Optional[np.ndarray],
               max_rows: Optional[int] = None, seed: int = 0) -> float:
    """FT = (F+ - F-) / n_d: F+ counts d rows predicted negative whose nearest facet-a neighbours are
    predicted positive (majority of k), F- the reverse (Clarify's documented definition).

    With ``max_rows``, at most that many d rows (a seeded sample) are compared, against every a row.
    """
    from sklearn.neighbors import KNeighborsClassifier

    if features is None:
        raise ValueError("needs the feature rows")
    n_a = int((~d).sum())
    k = FT_NEIGHBOURS if n_a > FT_FEW_ROWS else FT_FEW_NEIGHBOURS
    rows = np.flatnonzero(d)
    if max_rows is not None and len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))
    # Brute force: exact, and the same tie-breaking among equidistant neighbours on every run.
    knn = KNeighborsClassifier(n_neighbors=k, weights="uniform", p=2, algorithm="brute")
    counterfactual = knn.fit(features[~d], predicted[~d]).predict(features[rows]).astype(bool)
    own = predicted[rows]
    flipped_favourable = int(np.sum(~own & counterfactual))
    flipped_unfavourable = int(np.sum(own & ~counterfactual))
    return divide(flipped_favourable - flipped_unfavourable, len(rows))


def _generalized_entropy(label: np.ndarray, predicted: np.ndarray) -> float:
    """GE(2) over all rows: benefit b_i = y'_i - y_i + 1; GE = sum((b_i/mean b)^2 - 1) / (n * 2 * 1)."""
    benefit = predicted.astype(float) - label.astype(float) + 1
    mean = benefit.mean()
    if mean == 0:
        raise ValueError("every prediction is a false negative")
    return float(np.sum((benefit / mean) ** GE_ALPHA - 1) / (len(benefit) * GE_ALPHA * (GE_ALPHA - 1)))


def pre_training(d: np.ndarray, label: np.ndarray, group: Optional[np.ndarray] = None,
                 methods: Optional[List[str]] = None, confusion: Optional[Dict[str, np.ndarray]] = None,
                 d_keys: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    """Clarify's pre-training metrics of facet ``d`` against the rest, on the observed labels.

    ``confusion`` and ``d_keys``: counts per facet value computed once for several facets d (see _groups).
    """
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import entropy

    d, label = np.asarray(d, bool), np.asarray(label, bool)
    cache: Dict[str, Any] = {}

    def g() -> Dict[str, Dict[str, float]]:
        if "groups" not in cache:
            cache["groups"] = _groups(d, label, label, confusion, d_keys)
        return cache["groups"]

    def difference() -> np.ndarray:  # Pa - Pd over the label values (negative, positive)
        return np.subtract(*_label_distributions(g()))

    formulas: Dict[str, Callable[[], float]] = {
        "CI": lambda: divide(g()["a"]["n"] - g()["d"]["n"], g()["a"]["n"] + g()["d"]["n"]),
        "DPL": lambda: g()["a"]["q"] - g()["d"]["q"],
        "KL": lambda: float(entropy(*_label_distributions(g()))),  # +Infinity: facet d lacks a label facet a has
        "JS": lambda: float(jensenshannon(*_label_distributions(g())) ** 2),
        "LP": lambda: float(np.linalg.norm(difference(), 2)),
        "TVD": lambda: float(0.5 * np.linalg.norm(difference(), 1)),
        "KS": lambda: float(np.max(np.abs(difference()))),
        "CDDL": lambda: _conditional_disparity(d, label, group),
    }
    return _evaluate(formulas, methods)


def post_training(d: np.ndarray, label: np.ndarray, predicted: np.ndarray, group: Optional[np.ndarray] = None,
                  features: Optional[np.ndarray] = None, methods: Optional[List[str]] = None,
                  confusion: Optional[Dict[str, np.ndarray]] = None, d_keys: Optional[List[str]] = None,
                  flip_test_rows: Optional[int] = None, seed: int = 0) -> List[Dict[str, Any]]:
    """Clarify's post-training metrics of facet ``d`` against the rest, on observed and predicted labels.

    ``features`` (numeric, one row per label; the facet left out) finds the flip test's neighbours;
    ``flip_test_rows`` caps the facet-d rows it compares (a sample drawn with ``seed``).
    """
    d, label, predicted = np.asarray(d, bool), np.asarray(label, bool), np.asarray(predicted, bool)
    cache: Dict[str, Any] = {}

    def g() -> Dict[str, Dict[str, float]]:
        if "groups" not in cache:
            cache["groups"] = _groups(d, label, predicted, confusion, d_keys)
        return cache["groups"]

    def ratio(side: str, numerators: tuple, denominators: tuple) -> float:
        return divide(sum(g()[side][k] for k in numerators), sum(g()[side][k] for k in denominators))

    def gap(first: str, second: str, numerators: tuple, denominators: tuple) -> float:
        return _difference(ratio(first, numerators, denominators), ratio(second, numerators, denominators))

    formulas: Dict[str, Callable[[], float]] = {
        "DPPL": lambda: g()["a"]["q_hat"] - g()["d"]["q_hat"],
        "DI": lambda: divide(g()["d"]["q_hat"], g()["a"]["q_hat"]),
        # c = n(1) / n'(1): observed over predicted acceptances; r = n(0) / n'(0), the same for rejections.
        "DCAcc": lambda: gap("a", "d", ("TP", "FN"), ("TP", "FP")),
        "DCR": lambda: gap("d", "a", ("TN", "FP"), ("TN", "FN")),
        "DAR": lambda: g()["a"]["PPV"] - g()["d"]["PPV"],
        "DRR": lambda: gap("d", "a", ("TN",), ("TN", "FN")),
        "RD": lambda: g()["a"]["TPR"] - g()["d"]["TPR"],
        "AD": lambda: g()["a"]["ACC"] - g()["d"]["ACC"],
        "SD": lambda: g()["d"]["TNR"] - g()["a"]["TNR"],
        "TE": lambda: gap("d", "a", ("FN",), ("FP",)),
        "FT": lambda: g() and _flip_test(d, predicted, features, flip_test_rows, seed),  # g(): empty-facet errors
        "CDDPL": lambda: _conditional_disparity(d, predicted, group),
        "GE": lambda: _generalized_entropy(label, predicted),
    }
    return _evaluate(formulas, methods)


def _evaluate(formulas: Dict[str, Callable[[], float]], methods: Optional[List[str]]) -> List[Dict[str, Any]]:
    """[{name, description, value}] in Clarify's order; a metric that cannot be computed gets value None + error."""
    results = []
    for name, formula in formulas.items():
        if methods is not None and name not in methods:
            continue
        entry: Dict[str, Any] = {"name": name, "description": DESCRIPTIONS[name]}
        try:
            entry["value"] = float(formula())
        except ValueError as err:
            entry.update(value=None, error=str(err))
        results.append(entry)
    return results
