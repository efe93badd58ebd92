"""What the plain scripts share: the six binary-classification metrics mlexp reports per fold."""

from sklearn import metrics as m


def scores(model, X, y) -> dict:
    proba = model.predict_proba(X)
    predicted = proba.argmax(axis=1)
    return {
        "accuracy": m.accuracy_score(y, predicted), "precision": m.precision_score(y, predicted),
        "recall": m.recall_score(y, predicted), "f1": m.f1_score(y, predicted),
        "roc_auc": m.roc_auc_score(y, proba[:, 1]), "log_loss": m.log_loss(y, proba),
    }
