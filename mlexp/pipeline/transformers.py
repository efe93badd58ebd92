"""Transformers scikit-learn lacks: a log transform that refuses negative values by name, calendar parts from dates."""

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["LogTransformer", "DatetimeFeatures", "ngram_vectorizer"]


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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN passes through, for an imputer or a NaN-aware model later
        tags.input_tags.positive_only = not self.signed  # log(1 + x) refuses negative values unless signed
        return tags

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


# --- text and temporal features (ensembles/text/temporal issue) ---------------------------------


def ngram_vectorizer(ngram_range=(1, 2), weighting: str = "tfidf", **params):
    """A scikit-learn TfidfVectorizer (``weighting="tfidf"``) or CountVectorizer (``"counts"``).

    Exists because YAML gives ``ngram_range`` as a list and the vectorizers accept only a
    tuple; every other keyword (min_df, max_df, max_features, sublinear_tf, stop_words, ...)
    goes to the vectorizer unchanged. Words unseen at fit time are ignored at predict time.

    Example:
        >>> ngram_vectorizer([1, 2], weighting="counts").fit(["a good dog"]).get_feature_names_out().tolist()
        ['dog', 'good', 'good dog']
    """
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    kinds = {"tfidf": TfidfVectorizer, "counts": CountVectorizer}
    if weighting not in kinds:
        raise ValueError(f"weighting={weighting!r}: use 'tfidf' or 'counts'.")
    return kinds[weighting](ngram_range=tuple(ngram_range), **params)


class DatetimeFeatures(TransformerMixin, BaseEstimator):
    """Expand each datetime column into calendar parts; the source column is not passed on.

    Strings are parsed with ``pandas.to_datetime`` (numbers are read as nanoseconds since
    1970, pandas' convention). Missing or unparseable dates give NaN in every part.

    Parameters:
        parts: which of ``year, quarter, month, week, day, dayofweek, dayofyear, hour,
            minute, weekend`` to emit; ``dayofweek`` is 0 for Monday, ``weekend`` is 1 on
            Saturday and Sunday.
        cyclical: replace the periodic parts (month, week, day, dayofweek, dayofyear, hour,
            minute) by their sine and cosine, so December sits next to January.
        timezone: an IANA zone (``America/Chicago``) the parts are read in. Timestamps that carry
            an offset (``2017-01-01T06:00:42Z`` is UTC) are converted to it; timestamps without one
            are taken as already local to it. None: each timestamp's own clock (UTC for ``Z``).

    Example:
        >>> import pandas as pd
        >>> X = pd.DataFrame({"d": ["2012-01-07 13:00"]})  # a Saturday
        >>> DatetimeFeatures(parts=["dayofweek", "hour", "weekend"]).fit_transform(X).tolist()
        [[5.0, 13.0, 1.0]]
    """

    PERIODS = {"month": 12, "week": 53, "day": 31, "dayofweek": 7, "dayofyear": 366, "hour": 24, "minute": 60}
    LINEAR = ("year", "quarter", "weekend")
    _parameter_constraints: dict = {"parts": [list, tuple], "cyclical": ["boolean"], "timezone": [str, None]}

    def __init__(self, parts=("year", "month", "dayofweek", "hour", "weekend"), cyclical: bool = False,
                 timezone=None):
        self.parts = parts
        self.cyclical = cyclical
        self.timezone = timezone

    def fit(self, X, y=None):
        self._validate_params()
        unknown = [p for p in self.parts if p not in self.PERIODS and p not in self.LINEAR]
        if unknown or not len(self.parts):
            raise ValueError(
                f"parts={list(self.parts)!r}: choose one or more of {', '.join((*self.LINEAR, *self.PERIODS))}."
            )
        if self.timezone is not None:
            import zoneinfo

            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
                raise ValueError(
                    f"timezone={self.timezone!r} is not a time zone name; use an IANA name such as "
                    "America/Chicago, Europe/Paris or UTC (features.temporal.transformer.timezone)."
                ) from err
        self._columns(validate_data(self, X, dtype=None, ensure_all_finite=False))
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        X = validate_data(self, X, dtype=None, ensure_all_finite=False, reset=False)
        out = []
        for dates in self._columns(X):
            dates = self._local(dates)
            for part in self.parts:
                values = self._part(dates, part)
                if self.cyclical and part in self.PERIODS:
                    angle = 2 * np.pi * values / self.PERIODS[part]
                    out += [np.sin(angle), np.cos(angle)]
                else:
                    out.append(values)
        return np.column_stack(out) if out else np.empty((len(X), 0))

    def get_feature_names_out(self, input_features=None):
        from sklearn.utils.validation import _check_feature_names_in

        check_is_fitted(self, "n_features_in_")
        names = []
        for column in _check_feature_names_in(self, input_features):
            for part in self.parts:
                if self.cyclical and part in self.PERIODS:
                    names += [f"{column}_{part}_sin", f"{column}_{part}_cos"]
                else:
                    names.append(f"{column}_{part}")
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaT / NaN dates become NaN parts
        tags.input_tags.string = True
        return tags

    @staticmethod
    def _columns(X: np.ndarray) -> list:
        import pandas as pd

        parsed = []
        for column in (pd.Series(X[:, i]) for i in range(X.shape[1])):
            if pd.api.types.is_datetime64_any_dtype(column):
                parsed.append(pd.DatetimeIndex(column))
            elif pd.api.types.is_numeric_dtype(column):
                parsed.append(pd.DatetimeIndex(pd.to_datetime(column.astype(float), unit="ns", errors="coerce")))
            else:
                parsed.append(pd.DatetimeIndex(pd.to_datetime(column, errors="coerce", format="mixed")))
        return parsed

    def _local(self, dates):
        """The timestamps on the clock of ``timezone`` (aware ones converted, naive ones taken as local)."""
        if self.timezone is None or dates.tz is None:
            return dates
        return dates.tz_convert(self.timezone)

    @staticmethod
    def _part(dates, part: str) -> np.ndarray:
        if part == "weekend":
            values = (dates.day_of_week >= 5).astype(float)
            return np.where(dates.isna(), np.nan, values)
        if part == "week":
            return dates.isocalendar().week.to_numpy(dtype=float, na_value=np.nan)
        attribute = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}.get(part, part)
        return np.asarray(getattr(dates, attribute), dtype=float)
