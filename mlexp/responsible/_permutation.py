"""Permutation importance per input column, shuffling the encoded columns of each input column together.

Shuffling an input column and then encoding it gives the same matrix as encoding once and
shuffling that column's encoded parts with one row permutation (the column transforms work row
by row), so the column transforms run once instead of once per shuffle: for small data they cost
more than the model itself. Where the parts cannot be traced to one input column (PCA inside the
column branches, polynomial features, sparse text matrices), scikit-learn's
``permutation_importance`` shuffles the raw columns instead.
"""

from typing import Any, Dict

import numpy as np
import pandas as pd

__all__ = ["permutation_by_column"]


def permutation_by_column(model: Any, X: pd.DataFrame, y: np.ndarray, scoring: str, n_repeats: int,
                          seed: int) -> Dict[str, Any]:
    """{"importances": columns x repeats (drop in score when the column is shuffled), "baseline": score}."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import check_scoring

    from mlexp.responsible._shap import source_columns

    inputs = list(X.columns)
    columns, rest = model[0], model[1:]
    Z = columns.transform(X)
    sources = None if hasattr(Z, "toarray") else source_columns(columns, inputs)
    if sources is None:
        result = permutation_importance(model, X, y, scoring=scoring, n_repeats=n_repeats, random_state=seed)
        return {"importances": result.importances, "baseline": None}
    Z = np.asarray(Z)
    scorer = check_scoring(rest, scoring=scoring)
    baseline = scorer(rest, Z, y)
    rng = np.random.RandomState(seed)
    importances = np.zeros((len(inputs), n_repeats))
    shuffled = Z.copy()
    for i, column in enumerate(inputs):
        parts = [j for j, source in enumerate(sources) if source == column]
        for r in range(n_repeats):
            shuffled[:, parts] = Z[np.ix_(rng.permutation(len(Z)), parts)]
            importances[i, r] = baseline - scorer(rest, shuffled, y)
        shuffled[:, parts] = Z[:, parts]
    return {"importances": importances, "baseline": float(baseline)}
