"""labelclean.io: column detection, streaming reads, image decoding, atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelclean import io as lio
from labelclean.io import DataError, OptionError, plan_features, read_features
from tests.helpers import embedding_table, image_table, png_bytes, tabular_table, write


def test_detects_column_kinds_and_skips_the_unusable():
    plan = plan_features(tabular_table(), label="label")
    assert [(c.name, c.kind, c.width) for c in plan.columns] == [
        ("f0", "numeric", 1),
        ("f1", "numeric", 1),
        ("f2", "numeric", 1),
        ("color", "onehot", 2),
    ]
    assert set(plan.skipped) == {"id", "note"}
    assert "identifier" in plan.skipped["id"] and "distinct values" in plan.skipped["note"]
    assert plan.row_shape == (5,)


def test_reads_tabular_values_exactly_and_streaming_does_not_change_them():
    table = tabular_table(50)
    plan = plan_features(table, label="label")
    X = read_features(table, plan)
    assert X.dtype == np.float32 and X.shape == (50, 5)
    np.testing.assert_array_equal(X[:, 0], table["f0"].to_numpy().astype(np.float32))
    np.testing.assert_array_equal(X[:, 2], table["f2"].to_numpy().astype(np.float32))
    colors = np.array(table["color"].to_pylist())
    np.testing.assert_array_equal(X[:, 3:], np.stack([colors == "green", colors == "red"], 1))
    np.testing.assert_array_equal(read_features(table, plan, batch_rows=7), X)


def test_reads_from_a_parquet_file_in_record_batches(tmp_path):
    table = embedding_table(100)
    pf = lio.open_parquet(write(table, tmp_path / "e.parquet"))
    plan = plan_features(pf, label="label")
    assert [(c.name, c.kind, c.width) for c in plan.columns] == [("emb", "embedding", 8)]
    assert plan.skipped == {"key": "100 distinct values: too many to one-hot encode (limit 50)"}
    seen = []
    X = read_features(pf, plan, batch_rows=30, progress=lambda stage, done, total: seen.append((stage, done, total)))
    np.testing.assert_array_equal(X, np.stack(table["emb"].to_pylist()).astype(np.float32))
    assert seen == [("reading", 30, 100), ("reading", 60, 100), ("reading", 90, 100), ("reading", 100, 100)]


def test_fixed_size_lists_nulls_and_ragged_lists():
    fsl = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, dtype=np.float64)), 2)
    t = pa.table({"e": fsl, "x": pa.array([1.0, None, 3.0]), "label": [0, 1, 0]})
    plan = plan_features(t, "label")
    X = read_features(t, plan)
    np.testing.assert_array_equal(X, [[0, 1, 1], [2, 3, 2], [4, 5, 3]])  # null → column mean
    t2 = pa.table({"e": pa.array([[1, 2], None, [3, 4]]), "label": [0, 1, 0]})
    np.testing.assert_array_equal(read_features(t2, plan_features(t2, "label")), [[1, 2], [0, 0], [3, 4]])
    ragged = pa.table({"e": pa.array([[1.0, 2.0], [3.0], [4.0, 5.0]]), "label": [0, 1, 0]})
    with pytest.raises(DataError, match="different lengths"):
        read_features(ragged, plan_features(ragged, "label"))


def test_decodes_png_images_to_nchw_in_unit_range():
    pytest.importorskip("PIL")
    table = image_table(10)
    plan = plan_features(table, "label")
    assert plan.is_image and plan.row_shape == (1, 8, 8) and plan.skipped == {"name": plan.skipped["name"]}
    X = read_features(table, plan)
    from PIL import Image

    first = np.asarray(Image.open(__import__("io").BytesIO(table["image"][0].as_py())), dtype=np.float32) / 255
    assert X.shape == (10, 1, 8, 8) and X.dtype == np.float32
    np.testing.assert_allclose(X[0, 0], first, rtol=1e-6)
    rgb = image_table(4, rgb=True)
    Xr = read_features(rgb, plan_features(rgb, "label"))
    assert Xr.shape == (4, 3, 8, 8)
    np.testing.assert_allclose(Xr[:, 0], Xr[:, 2])


def test_images_of_other_sizes_are_resized_and_images_are_used_alone():
    pytest.importorskip("PIL")
    imgs = [png_bytes(np.zeros((8, 8), np.uint8)), png_bytes(np.full((4, 6), 255, np.uint8))]
    t = pa.table({"image": pa.array(imgs, type=pa.binary()), "x": [1.0, 2.0], "label": [0, 1]})
    plan = plan_features(t, "label")
    assert plan.names == ["image"] and "used alone" in plan.skipped["x"]
    X = read_features(t, plan)
    assert X.shape == (2, 1, 8, 8) and X[1].min() == 1.0
    with pytest.raises(OptionError, match="cannot be combined"):
        plan_features(t, "label", features=["image", "x"])


def test_feature_errors():
    t = tabular_table(20)
    with pytest.raises(OptionError, match="unknown feature column 'nope'.*the columns are: id, f0"):
        plan_features(t, "label", features=["f0", "nope"])
    with pytest.raises(OptionError, match="cannot also be a feature"):
        plan_features(t, "label", features=["label"])
    with pytest.raises(DataError, match="no usable feature column"):
        plan_features(t.select(["note", "label"]), "label")
    with pytest.raises(DataError, match="'note' cannot be used as a feature"):
        plan_features(tabular_table(60), "label", features=["note"])  # 60 distinct texts
    assert plan_features(t, "label", features=["id"]).names == ["id"]  # named → used even if all distinct


def test_open_parquet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lio.open_parquet(tmp_path / "missing.parquet")
    (tmp_path / "a.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not a parquet file"):
        lio.open_parquet(tmp_path / "a.csv")
    good = write(tabular_table(20), tmp_path / "good.parquet")
    (tmp_path / "cut.parquet").write_bytes(good.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated or damaged"):
        lio.open_parquet(tmp_path / "cut.parquet")


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), lio.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]
    with lio.atomic_path(tmp_path / "new.txt") as tmp:
        tmp.write_text("new")
    assert (tmp_path / "new.txt").read_text() == "new"
    assert oct((tmp_path / "new.txt").stat().st_mode & 0o777) != oct(0o600)


def test_write_with_columns_preserves_every_input_column(tmp_path):
    table = tabular_table(50)
    src = lio.open_parquet(write(table, tmp_path / "in.parquet"))
    added = pa.table(
        {
            "is_clean": pa.array(np.arange(50) % 2 == 0),
            "pseudo_label": table["label"],
            "label_quality": pa.array(np.linspace(0, 1, 50, dtype=np.float32)),
        }
    )
    n = lio.write_with_columns(src, tmp_path / "out.parquet", added, batch_rows=16)
    out = pq.read_table(tmp_path / "out.parquet")
    assert n == 50 and out.column_names == table.column_names + list(lio.OUTPUT_COLUMNS)
    assert out.select(table.column_names).equals(table)
    assert out.schema.field("label_quality").type == pa.float32()
    kept = lio.write_with_columns(src, tmp_path / "kept.parquet", added, keep=np.arange(50) % 2 == 0)
    assert kept == 25 and pq.read_table(tmp_path / "kept.parquet").equals(out.filter(added["is_clean"]))


def test_failed_write_leaves_no_output_and_no_temp_file(tmp_path, monkeypatch):
    table = tabular_table(30)
    src = write(table, tmp_path / "in.parquet")
    added = pa.table({"is_clean": pa.array([True] * 30)})

    def broken_replace(a, b):
        raise OSError("disk full")

    monkeypatch.setattr(lio.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        lio.write_with_columns(lio.open_parquet(src), tmp_path / "out.parquet", added)
    assert sorted(os.listdir(tmp_path)) == ["in.parquet"]


def test_list_width_from_the_footer_and_with_nulls(tmp_path):
    t = pa.table({"e": pa.array([[1.0, 2.0, 3.0]] * 5), "label": [0, 1, 0, 1, 0]})
    pf = lio.open_parquet(write(t, tmp_path / "a.parquet"))
    assert lio._list_width_from_metadata(pf, "e") == 3
    t2 = pa.table({"e": pa.array([None, [1.0, 2.0], [3.0, 4.0]]), "label": [0, 1, 0]})
    pf2 = lio.open_parquet(write(t2, tmp_path / "b.parquet"))
    assert lio._list_width_from_metadata(pf2, "e") is None
    plan = plan_features(pf2, "label")
    assert plan.columns[0].width == 2
    np.testing.assert_array_equal(read_features(pf2, plan), [[0, 0], [1, 2], [3, 4]])


def test_text_numbers_null_markers_and_text_that_is_not_numbers():
    t = pa.table(
        {
            "n": ["1", "N/A", " 2.5 ", "null", "", "-4"],
            "mixed": ["1", "2", "x", "1", "2", "x"],
            "label": [0, 1, 0, 1, 0, 1],
        }
    )
    plan = plan_features(t, "label")
    assert [(c.name, c.kind, c.from_text) for c in plan.columns] == [("n", "numeric", True), ("mixed", "onehot", False)]
    X = read_features(t, plan)
    np.testing.assert_allclose(X[:, 0], [1, -1 / 6, 2.5, -1 / 6, -1 / 6, -4], rtol=1e-6)  # missing: the mean


def test_skipped_columns_carry_the_features_that_would_include_them():
    pytest.importorskip("PIL")
    plan = plan_features(tabular_table(), label="label")
    assert plan.include == {"id": ["f0", "f1", "f2", "color", "id"]}  # 'note' has too many values for any option
    images = image_table(10).append_column("x", pa.array(np.arange(10.0)))
    plan = plan_features(images, "label")
    assert plan.include["x"] == ["x"]  # the image is used alone; naming x uses it instead


def test_write_parts_with_keep_writes_each_parts_kept_rows(tmp_path):
    t = tabular_table(30)
    (tmp_path / "in").mkdir()
    write(t.slice(0, 10), tmp_path / "in" / "a.parquet")
    write(t.slice(10), tmp_path / "in" / "b.parquet")
    source = lio.as_source(tmp_path / "in")
    keep = np.arange(30) % 3 == 0
    added = pa.table({"is_clean": pa.array(keep)})
    out = lio.write_parts(source, tmp_path / "out", added, keep=keep)
    assert [(p.name, n) for p, n in out] == [("a.parquet", 4), ("b.parquet", 6)]
    b = pq.read_table(tmp_path / "out" / "b.parquet")
    assert b.select(t.column_names).equals(t.slice(10).filter(pa.array(keep[10:])))
