"""Transformers scikit-learn lacks: a log transform that refuses negative values by name."""

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["LogTransformer"]


class LogTransformer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """log(1 + x) per column; with ``signed=True``, sign(x) * log(1 + |x|).

    Without ``signed``, a negative value raises a ValueError naming the column, instead
    of numpy's silent NaN.

    Example:
        >>> LogTransformer().fit_transform([[0.0], [9.0]]).round(3).tolist()
        [[0.0], [2.303]]
    """

    _parameter_constraints: dict = {"signed": ["boolean"]}

    def __init__(self, signed: bool = False):
        self.signed = signed

    def fit(self, X, y=None):
        self._validate_params()
        X = validate_data(self, X, ensure_all_finite="allow-nan")
        self._check_sign(X)
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        self._check_sign(X)
        if self.signed:
            return np.sign(X) * np.log1p(np.abs(X))
        return np.log1p(X)

    def _check_sign(self, X: np.ndarray) -> None:
        if self.signed:
            return
        negative = np.nanmin(X, axis=0) < 0 if X.shape[0] else np.zeros(X.shape[1], bool)
        if negative.any():
            names = getattr(self, "feature_names_in_", None)
            cols = [str(names[i]) if names is not None else f"column {i}" for i in np.flatnonzero(negative)]
            raise ValueError(
                f"log transform of negative values in {', '.join(cols)}: log(1 + x) is undefined below -1 "
                "and misleading below 0. Use the signed variant (features.log.transformer.signed=true), "
                "drop 'log' from features, or apply it to non-negative columns only."
            )
