"""labelclean.api: DataFrame / Table / path / folder in, DataFrame out with is_clean, pseudo_label, label_quality.

Also the adapter that turns the fits' progress phases into the stages of a plain progress function.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from labelclean.api import (
    decode_labels,
    default_output,
    encode_labels,
    filter_labels,
    pu_labels,
    run_labeling,
    selftrain_labels,
)
from labelclean.coteaching import CoTeachingFilter
from labelclean.io import DataError, OptionError
from tests.helpers import FAST_PARAMS, embedding_table, partitioned, tabular_table, write
from tests.helpers import noisy_binary as data

ADDED = ["is_clean", "pseudo_label", "label_quality"]


def test_encode_decode_round_trip_with_nulls_and_dictionaries():
    labels = pa.chunked_array([pa.array(["b", None, "a", "b"]).dictionary_encode()])
    codes, classes = encode_labels(labels)
    assert codes.tolist() == [1, -1, 0, 1] and classes.to_pylist() == ["a", "b"]
    back = decode_labels(codes, classes, labels.type)
    assert back.type == labels.type and back.to_pylist() == ["b", None, "a", "b"]
    codes, classes = encode_labels(pa.chunked_array([[3, -1, 5, None]]), minus_one_unlabeled=True)
    assert codes.tolist() == [0, -1, 1, -1] and classes.to_pylist() == [3, 5]


def test_filter_labels_on_a_dataframe_keeps_index_columns_and_label_dtype():
    df = tabular_table(150).to_pandas()
    df.index = np.arange(150) * 10 + 7
    out = filter_labels(df, **FAST_PARAMS)
    assert list(out.columns) == list(df.columns) + ADDED
    pd.testing.assert_frame_equal(out[df.columns], df)
    assert out.index.equals(df.index)
    assert out.pseudo_label.dtype == df.label.dtype and set(out.pseudo_label) <= {"bird", "cat", "dog"}
    assert out.is_clean.dtype == bool and out.label_quality.dtype == np.float32
    assert (out.pseudo_label[out.is_clean] == out.label[out.is_clean]).all()


def test_filter_labels_on_a_table_and_a_path_agree(tmp_path):
    table = embedding_table(80)
    a = filter_labels(table, **FAST_PARAMS)
    b = filter_labels(write(table, tmp_path / "e.parquet"), **FAST_PARAMS)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == table.column_names + ADDED and a.pseudo_label.dtype == np.int64


def test_filter_labels_reads_a_folder(tmp_path):
    root, table, _ = partitioned(tmp_path, 90)
    out = filter_labels(root, features=["f0", "f1", "f2"], max_epochs=1, forget_rate=0.1, random_state=0)
    assert list(out.columns) == [*table.column_names, "split", *ADDED] and len(out) == 90


def test_categorical_labels_keep_their_dtype():
    df = tabular_table(90).to_pandas()
    df["label"] = df["label"].astype("category")
    out = filter_labels(df, features=["f0", "f1", "f2"], **FAST_PARAMS)
    assert out.pseudo_label.dtype == df.label.dtype


def test_null_labels_are_not_trained_on_but_get_a_prediction():
    table = tabular_table(120)
    labels = table["label"].to_pylist()
    labels[:10] = [None] * 10
    table = table.set_column(6, "label", pa.array(labels))
    result = run_labeling("filter", table, params=FAST_PARAMS)
    added = result.added.to_pandas()
    assert not added.is_clean[:10].any() and (added.label_quality[:10] == 0).all()
    assert added.pseudo_label.notna().all() and result.summary["unlabeled"] == 10


def test_summary_and_errors():
    table = tabular_table(60)
    s = run_labeling("filter", table, params=FAST_PARAMS).summary
    assert s["rows"] == 60 and s["noise_rate"] == pytest.approx(0.1) and s["features"] == ["f0", "f1", "f2", "color"]
    with pytest.raises(OptionError, match="label column 'y' not found"):
        filter_labels(table, label="y")
    with pytest.raises(OptionError, match="CoTeachingFilter has no parameter epochs"):
        filter_labels(table, epochs=3)
    with pytest.raises(DataError, match="all labels"):
        filter_labels(table.set_column(6, "label", pa.nulls(60, pa.string())))
    with pytest.raises(TypeError, match="DataFrame, a pyarrow Table or a parquet path"):
        filter_labels([[1, 2]])
    assert default_output("x/data.parquet").as_posix() == "x/data.clean.parquet"


def test_selftrain_labels_fills_nulls_and_minus_one():
    pytest.importorskip("labelclean.self_training")
    table = embedding_table(120)
    y = table["label"].to_numpy().copy()
    y[40:] = -1
    table = table.set_column(2, "label", pa.array(y))
    from labelclean import NoisyStudent

    strategy = NoisyStudent(max_iter=1)
    out = selftrain_labels(table, max_epochs=2, strategy=strategy, min_steps=5, hidden_dims=(32,), random_state=0)
    assert list(out.columns) == table.column_names + ADDED
    assert (out.pseudo_label[:40] == y[:40]).all() and set(out.pseudo_label[40:]) <= {0, 1}


def test_pu_labels_maps_back_to_the_label_values():
    pytest.importorskip("labelclean.pu")
    table = embedding_table(160)
    y = np.where(table["label"].to_numpy() == 1, "spam", None).astype(object)
    y[1::2] = None  # half of the positives unlabeled
    table = table.set_column(2, "label", pa.array(list(y), pa.string()))
    out = pu_labels(table, positive="spam", negative="ham", max_epochs=2, prior_epochs=1, hidden_dims=(32,))
    assert set(out.pseudo_label) <= {"spam", "ham"}
    assert (out.pseudo_label[y == "spam"] == "spam").all()
    with pytest.raises(DataError, match="no row of column 'label' has the positive label 'eggs'"):
        pu_labels(table, positive="eggs")
    with pytest.raises(OptionError, match="not a valid value"):
        pu_labels(embedding_table(20), positive="spam")


def test_a_plain_progress_function_gets_one_stage_per_phase():
    from labelclean.api import _report_phases

    calls = []
    X, y = data(120)
    with _report_phases(lambda stage, done, total: calls.append((stage, done, total))):
        CoTeachingFilter(estimator="network", max_epochs=1, forget_rate=0.1, refine_epochs=0).fit(X, y)
    assert calls[0] == ("training: co-teaching", 0, calls[-1][2]) and calls[-1][1] == calls[-1][2] > 0
