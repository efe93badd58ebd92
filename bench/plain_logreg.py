"""The plain script mlexp's default run is compared against: the same work, no framework.

What `mlexp` does with no argument: breast cancer (as a DataFrame, as scikit-learn gives it),
the same 10% stratified test split (seed 42), stratified 5-fold CV (shuffled, seed 42) of
StandardScaler + LogisticRegression(max_iter=1000), the same six metrics per fold, a final fit
on the development rows and the test scores. It writes its numbers, not a model or a report.
"""

import argparse
import json
import math
import os
import time

t0 = time.perf_counter()
import numpy as np  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import StratifiedKFold, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from _plain import scores  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="plain_run")
    args = parser.parse_args()
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    y = y.to_numpy()
    index = np.arange(len(y))
    dev, test = train_test_split(index, test_size=0.1, shuffle=True, random_state=args.seed, stratify=y)
    dev, test = np.sort(dev), np.sort(test)
    pipeline = Pipeline([("scale", StandardScaler()),
                         ("model", LogisticRegression(max_iter=1000, random_state=args.seed))])
    X_dev, y_dev = X.iloc[dev], y[dev]
    folds = []
    for train, valid in StratifiedKFold(5, shuffle=True, random_state=args.seed).split(X_dev, y_dev):
        model = clone(pipeline).fit(X_dev.iloc[train], y_dev[train])
        folds.append(scores(model, X_dev.iloc[valid], y_dev[valid]))
    final = clone(pipeline).fit(X_dev, y_dev)
    test_scores = scores(final, X.iloc[test], y[test])
    summary = {k: float(np.mean([f[k] for f in folds])) for k in folds[0]}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "metrics.json"), "w") as fh:
        json.dump({"cv_mean": summary, "test": test_scores, "seconds": time.perf_counter() - t0}, fh)
    assert math.isfinite(summary["roc_auc"])


if __name__ == "__main__":
    main()
