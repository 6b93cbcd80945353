"""Tables as users have them: string and categorical columns and missing values, turned into numbers.

A :class:`TablePlan` is learnt from the training rows once (in ``fit``) and applied to every later
batch the same way. It has two views of a table:

- :meth:`TablePlan.dense` for the networks: numeric columns with missing values filled by the
  training mean plus one 0/1 "was missing" column each (where the training rows had any), and
  each categorical column one-hot encoded (nulls and unseen values: all zeros);
- :meth:`TablePlan.codes` for gradient-boosted trees, which handle both natively: numeric
  columns with NaN kept, categorical columns as integer codes (NaN for nulls and unseen values),
  with :attr:`TablePlan.categorical` marking them.

Only pandas and NumPy are needed (no pyarrow).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Categories kept per column, most frequent first (the rest count as unseen): the limit of
#: scikit-learn's ``HistGradientBoostingClassifier`` (255 bins, one kept for missing values).
MAX_CATEGORIES = 254
#: One-hot columns per categorical column in the networks' view (the most frequent categories).
MAX_ONEHOT = 64


def _is_numeric_dtype(dtype: Any) -> bool:
    return getattr(dtype, "kind", "O") in "biuf"


def _as_numbers(values: Any) -> np.ndarray | None:
    """A column of strings that all read as numbers (numbers stored as text), as float64; else None."""
    import pandas as pd

    converted = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    present = pd.notna(pd.Series(values)).to_numpy()
    if present.any() and np.isfinite(converted[present]).all():
        return converted
    return None


def _category_strings(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each cell as a string and a mask of the missing cells (None, NaN, pandas NA)."""
    import pandas as pd

    series = pd.Series(values)
    missing = series.isna().to_numpy()
    return series.astype(str).to_numpy(dtype=object), missing


@dataclass
class TablePlan:
    """How each training column becomes numbers (plain lists, so it is saved as JSON with the estimator)."""

    columns: list[str]
    kinds: list[str]  # per column: "numeric", "categorical" or "empty" (never observed in fit: left out)
    fill: list[float]  # numeric columns: training mean (0.0 when never observed)
    missing: list[bool]  # numeric columns: the training rows had missing values (a "was missing" column)
    categories: list[list[str]]  # categorical columns: kept categories, most frequent first

    # ------------------------------------------------------------------ learn
    @classmethod
    def fit(cls, X: Any) -> TablePlan:
        """Learn the plan from a DataFrame or a 2-D array (columns named by position)."""
        columns, kinds, fill, missing, categories = [], [], [], [], []
        n_rows = len(X)
        for name, values in _iter_columns(X):
            numbers = _column_numbers(values)
            if numbers is not None:
                observed = np.isfinite(numbers)
                columns.append(name)
                if not observed.any():  # never observed: carries nothing (and breaks the trees' binning)
                    kinds.append("empty")
                    continue
                kinds.append("numeric")
                fill.append(float(numbers[observed].mean()) if observed.any() else 0.0)
                missing.append(bool((~observed).any()))
                continue
            _check_cell_types(name, values)
            text, absent = _category_strings(values)
            uniq, counts = np.unique(text[~absent], return_counts=True)
            if len(uniq) > max(MAX_ONEHOT, n_rows // 2):
                raise ValueError(
                    f"column {name!r} holds {len(uniq)} distinct non-numeric values in {n_rows} rows: free text or "
                    "ids, which cannot be used as a category. Drop it, or turn it into numeric features first "
                    "(e.g. sklearn.feature_extraction.text.TfidfVectorizer, or an embedding)."
                )
            order = np.argsort(-counts, kind="stable")[:MAX_CATEGORIES]
            columns.append(name)
            kinds.append("categorical")
            categories.append([str(v) for v in uniq[order]])
        if columns and all(k == "empty" for k in kinds):
            raise ValueError(
                "every column of X is missing (NaN / null) in every row, so there is nothing to learn from; "
                "check how the features were read."
            )
        return cls(columns, kinds, fill, missing, categories)

    @classmethod
    def from_dict(cls, state: dict) -> TablePlan:
        return cls(**state)

    def to_dict(self) -> dict:
        return asdict(self)

    # ------------------------------------------------------------------ views
    @property
    def categorical(self) -> np.ndarray:
        """Mask over the columns of :meth:`codes`: True for categorical columns."""
        return np.array([k == "categorical" for k in self.kinds if k != "empty"], dtype=bool)

    @property
    def n_dense(self) -> int:
        """Width of :meth:`dense`."""
        numeric = sum(1 for k in self.kinds if k == "numeric")
        onehot = sum(min(len(c), MAX_ONEHOT) for c in self.categories)
        return numeric + sum(self.missing) + onehot

    def codes(self, X: Any) -> np.ndarray:
        """The trees' view: float32 ``(n, n_columns)``, NaN for missing or unseen values."""
        used = [k for k in self.kinds if k != "empty"]
        out = np.empty((len(X), len(used)), dtype=np.float32)
        cat = iter(self.categories)
        j = 0
        for kind, (name, values) in zip(self.kinds, self._columns_of(X)):
            if kind == "empty":
                continue
            out[:, j] = self._numbers(name, values) if kind == "numeric" else _lookup(values, next(cat))
            j += 1
        return out

    def dense(self, X: Any) -> np.ndarray:
        """The networks' view: float32 ``(n, n_dense)``, no missing values."""
        blocks: list[np.ndarray] = []
        indicators: list[np.ndarray] = []
        cat = iter(self.categories)
        numeric = iter(zip(self.fill, self.missing))
        for kind, (name, values) in zip(self.kinds, self._columns_of(X)):
            if kind == "empty":
                continue
            if kind == "numeric":
                fill, had_missing = next(numeric)
                numbers = self._numbers(name, values)
                absent = ~np.isfinite(numbers)
                numbers[absent] = fill
                blocks.append(numbers[:, None])
                if had_missing:
                    indicators.append(absent.astype(np.float32)[:, None])
            else:
                cats = next(cat)[:MAX_ONEHOT]
                code = _lookup(values, cats)
                onehot = np.zeros((len(code), len(cats)), dtype=np.float32)
                seen = np.isfinite(code)
                onehot[np.flatnonzero(seen), code[seen].astype(np.int64)] = 1.0
                blocks.append(onehot)
        parts = blocks + indicators
        if not parts:
            return np.zeros((len(X), 0), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)

    # ---------------------------------------------------------------- helpers
    def _columns_of(self, X: Any):
        if hasattr(X, "columns"):
            names = [str(c) for c in X.columns]
            if names != self.columns:
                raise ValueError(
                    f"X has columns {names[:6]}, but the estimator was fitted on {self.columns[:6]}; pass the same "
                    "columns in the same order."
                )
        elif np.shape(X)[1] != len(self.columns):
            raise ValueError(
                f"X has {np.shape(X)[1]} columns, but the estimator was fitted on {len(self.columns)}; pass data "
                "shaped like the training data."
            )
        return _iter_columns(X)

    @staticmethod
    def _numbers(name: str, values: Any) -> np.ndarray:
        numbers = _column_numbers(values)
        if numbers is None:
            raise ValueError(
                f"column {name!r} held numbers when the estimator was fitted, but now holds text that does not "
                "read as numbers; pass the same kind of values as in fit."
            )
        if np.isinf(numbers).any():
            row = int(np.flatnonzero(np.isinf(numbers))[0])
            raise ValueError(
                f"column {name!r} holds infinity (first at row {row}); clip or rescale it, or drop those rows."
            )
        return numbers.astype(np.float32)


def _iter_columns(X: Any):
    """``(name, values)`` per column of a DataFrame (names as strings) or of a 2-D array (names ``"0"``, ...)."""
    if hasattr(X, "columns") and hasattr(X, "iloc"):
        for i, name in enumerate(X.columns):
            yield str(name), X.iloc[:, i]
        return
    arr = np.asarray(X)
    for j in range(arr.shape[1]):
        yield str(j), arr[:, j]


def _column_numbers(values: Any) -> np.ndarray | None:
    """A column as float64 numbers (missing values as NaN), or None when it holds categories."""
    dtype = getattr(values, "dtype", None)
    if dtype is not None and str(dtype) == "category":
        return None
    if dtype is not None and _is_numeric_dtype(dtype):
        return np.asarray(values, dtype=np.float64)
    if dtype is not None and getattr(dtype, "kind", "") in "mM":
        raise ValueError(
            "a column holds dates or times; turn them into numbers first (e.g. days since a reference date, or "
            "the weekday and hour as separate columns)."
        )
    try:  # nullable numbers (pandas Int64, Float64, boolean)
        import pandas as pd

        if dtype is not None and pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
            return pd.Series(values).to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        pass
    return _as_numbers(values)


def _check_cell_types(name: str, values: Any) -> None:
    """Refuse cells that are neither text, numbers nor missing (dicts, lists, objects) with a TypeError."""
    import pandas as pd

    if pd.api.types.infer_dtype(values, skipna=True) not in ("mixed", "mixed-integer"):
        return
    plain = (str, bytes, int, float, bool, np.generic)
    bad = next((v for v in np.asarray(values, dtype=object) if v is not None and not isinstance(v, plain)), None)
    if bad is not None:
        raise TypeError(
            f"column {name!r} holds a {type(bad).__name__} value ({bad!r:.40}); the argument must be a string or "
            "a number (or missing) in every feature cell: flatten or drop that column."
        )


def _lookup(values: Any, categories: list[str]) -> np.ndarray:
    """Position of each cell's string in ``categories`` as float32; NaN for missing or unseen values."""
    import pandas as pd

    text, absent = _category_strings(values)
    codes = pd.Index(categories).get_indexer(text).astype(np.float32)  # -1 for values not in categories
    codes[absent | (codes < 0)] = np.nan
    return codes


def needs_plan(X: Any) -> bool:
    """True for a DataFrame with a non-numeric column, or 2-D data holding missing values."""
    if hasattr(X, "dtypes") and hasattr(X, "columns"):
        if any(not _is_numeric_dtype(dt) for dt in X.dtypes):
            return True
        try:
            return bool(X.isna().to_numpy().any())
        except (TypeError, ValueError):
            return True
    if isinstance(X, np.ndarray) and X.ndim == 2:
        if X.dtype.kind == "O":
            return True
        return X.dtype.kind == "f" and bool(np.isnan(X).any())
    return False
