"""Tables as users have them (labelclean/tabular.py, labelclean/_tabular.py): the plan that turns them into numbers."""

import numpy as np
import pandas as pd
import pytest

from labelclean._tabular import TablePlan, needs_plan


def test_plan_encodes_text_categories_missing_values_and_numbers_stored_as_text():
    df = pd.DataFrame(
        {
            "x": [1.0, np.nan, 3.0, 4.0],
            "colour": ["red", None, "blue", "red"],
            "size": pd.Categorical(["S", "M", "S", "L"]),
            "price": ["1.5", "2", None, "4"],
            "empty": [np.nan] * 4,
        }
    )
    assert needs_plan(df) and not needs_plan(np.zeros((3, 2))) and needs_plan(np.array([[1.0, np.nan]]))
    plan = TablePlan.fit(df)
    assert plan.kinds == ["numeric", "categorical", "categorical", "numeric", "empty"]
    codes = plan.codes(df)
    assert codes.shape == (4, 4) and np.isnan(codes[1, 0]) and np.isnan(codes[1, 1])
    assert codes[:, 3].tolist()[:2] == [1.5, 2.0] and plan.categorical.tolist() == [False, True, True, False]
    dense = plan.dense(df)
    assert dense.shape == (4, plan.n_dense) and np.isfinite(dense).all()
    assert dense[1, 0] == pytest.approx((1 + 3 + 4) / 3)  # filled with the training mean
    assert TablePlan.from_dict(plan.to_dict()) == plan  # plain data: stored as JSON with the estimator
    unseen = plan.dense(df.assign(colour=["green"] * 4))
    assert np.isfinite(unseen).all()


def test_plan_refuses_free_text_and_changed_columns_with_the_fix():
    df = pd.DataFrame({"id": [f"row-{i}" for i in range(300)], "x": np.arange(300.0)})
    with pytest.raises(ValueError, match="column 'id'.*free text or ids"):
        TablePlan.fit(df)
    plan = TablePlan.fit(df[["x"]].assign(c=["a", "b", "c"] * 100))
    with pytest.raises(ValueError, match="columns"):
        plan.codes(df)
