"""The plain scikit-learn script mlexp is compared against: the same work, no framework.

Same data (make_classification, same seed), same 10% stratified test split, same stratified
k-fold CV (--folds, 5 by default) of StandardScaler + RandomForest, the same six metrics per
fold, a final fit on the development rows, test scores, and the model saved with skops.
"""

import argparse
import json
import math
import os
import time

t0 = time.perf_counter()
import numpy as np  # noqa: E402
import skops.io as sio  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.model_selection import StratifiedKFold, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from _plain import scores  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="plain_run")
    args = parser.parse_args()
    X, y = make_classification(n_samples=args.rows, n_features=20, n_informative=8, n_redundant=2,
                               shuffle=False, random_state=args.seed)
    index = np.arange(len(y))
    dev, test = train_test_split(index, test_size=0.1, shuffle=True, random_state=args.seed, stratify=y)
    dev, test = np.sort(dev), np.sort(test)
    pipeline = Pipeline([("scale", StandardScaler()), ("model", RandomForestClassifier(
        n_estimators=args.trees, max_features="sqrt", n_jobs=os.cpu_count(), random_state=args.seed))])
    folds = []
    for train, valid in StratifiedKFold(args.folds, shuffle=True, random_state=args.seed).split(X[dev], y[dev]):
        model = clone(pipeline).fit(X[dev][train], y[dev][train])
        folds.append(scores(model, X[dev][valid], y[dev][valid]))
    final = clone(pipeline).fit(X[dev], y[dev])
    test_scores = scores(final, X[test], y[test])
    os.makedirs(args.out, exist_ok=True)
    sio.dump(final, os.path.join(args.out, "model.skops"))
    summary = {k: float(np.mean([f[k] for f in folds])) for k in folds[0]}
    with open(os.path.join(args.out, "metrics.json"), "w") as fh:
        json.dump({"cv_mean": summary, "test": test_scores, "seconds": time.perf_counter() - t0}, fh)
    assert math.isfinite(summary["roc_auc"])


if __name__ == "__main__":
    main()
