"""Tables as users have them (text and categorical columns, missing values), turned into numbers.

A :class:`TablePlan` is learnt from the training rows once and applied to later rows the same
way; it gives the two views every estimator uses on a table: :meth:`TablePlan.dense` (numbers
with means filled in, "was missing" columns, one-hot categories) for networks and linear models,
and :meth:`TablePlan.codes` (NaN kept, categories as integer codes, marked by
:attr:`TablePlan.categorical`) for gradient-boosted trees. :func:`needs_plan` says whether an
input needs one (a DataFrame with a non-numeric column, or 2-D data holding missing values).

Examples
--------
>>> import pandas as pd
>>> X = pd.DataFrame({"size": [1.0, None, 3.0], "colour": ["red", "blue", "red"]})
>>> needs_plan(X)
True
>>> plan = TablePlan.fit(X)
>>> plan.dense(X).shape, plan.categorical.tolist()
((3, 4), [False, True])
"""

from __future__ import annotations

from ._tabular import MAX_CATEGORIES, MAX_ONEHOT, TablePlan, needs_plan

__all__ = ["MAX_CATEGORIES", "MAX_ONEHOT", "TablePlan", "needs_plan"]
