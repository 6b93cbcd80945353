"""labelclean.io: column detection, streaming reads, image decoding, atomic writes.

Also datasets of several files (folders, globs, several paths), CSV input and numbers stored as text.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelclean import io as lio
from labelclean.io import DataError, OptionError, plan_features, read_features
from tests.helpers import embedding_table, image_table, partitioned, png_bytes, tabular_table, write


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


def test_streaming_read_and_write_with_tiny_batches(tmp_path):
    rng = np.random.default_rng(0)
    n = 53
    emb = rng.normal(size=(n, 3)).astype(np.float32)
    lists = pa.array([None if i % 11 == 4 else list(e) for i, e in enumerate(emb)], type=pa.list_(pa.float32()))
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 3)
    num = pa.array([None if i % 7 == 0 else float(i) for i in range(n)])
    table = pa.table({"emb": lists, "fixed": fixed, "num": num, "label": pa.array(np.arange(n) % 3)})
    path = tmp_path / "small.parquet"
    pq.write_table(table, path, row_group_size=10)
    pf = lio.open_parquet(path)
    plan = lio.plan_features(pf, label="label")
    streamed = lio.read_features(pf, plan, batch_rows=4)
    whole = lio.read_features(table, plan, batch_rows=n)
    np.testing.assert_array_equal(streamed, whole)
    np.testing.assert_array_equal(streamed[:, 3:6], emb)
    assert np.all(streamed[4, :3] == 0) and streamed[0, 6] == pytest.approx(np.nanmean(num.to_numpy(False)[1:]))
    # the row numbers in errors count across batches
    bad = table.set_column(2, "num", pa.array([1.0] * 41 + [np.nan] + [1.0] * 11))
    pq.write_table(bad, tmp_path / "bad.parquet", row_group_size=10)
    with pytest.raises(lio.DataError, match="holds nan at row 41"):
        lio.read_features(lio.open_parquet(tmp_path / "bad.parquet"), plan, batch_rows=4)
    added = pa.table({"is_clean": pa.array(np.arange(n) % 2 == 0)})
    written = lio.write_with_columns(pf, tmp_path / "out.parquet", added, keep=np.arange(n) % 2 == 0, batch_rows=3)
    out = pq.read_table(tmp_path / "out.parquet")
    assert written == out.num_rows == 27 and out.column_names == ["emb", "fixed", "num", "label", "is_clean"]
    assert out.column("label").to_pylist() == list(np.arange(0, n, 2) % 3)


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


def test_atomic_path_keeps_temporary_files_of_running_processes(tmp_path):
    target = tmp_path / "out.parquet"
    live = tmp_path / f".out.parquet.{os.getppid()}.abc.tmp"  # the parent process is alive
    dead = tmp_path / ".out.parquet.999999999.abc.tmp"  # no such process
    other = tmp_path / ".other.parquet.999999999.abc.tmp"  # another target
    longer = tmp_path / ".out.parquet.5.999999999.abc.tmp"  # the target out.parquet.5
    for p in (live, dead, other, longer):
        p.write_bytes(b"x")
    with lio.atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, longer.name, "out.parquet"])


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


def test_write_parts_is_all_or_nothing(tmp_path, monkeypatch):
    root, table, _ = partitioned(tmp_path, 30)
    source = lio.as_source(root)
    added = pa.table({"is_clean": pa.array([True] * 30)})
    real = lio._write_columns
    calls = []

    def fail_on_the_last(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(lio, "_write_columns", fail_on_the_last)
    with pytest.raises(OSError, match="disk full"):
        lio.write_parts(source, tmp_path / "out", added)
    assert not (tmp_path / "out").exists()  # no part, no temporary file, not even the folders


def test_folder_is_one_table_in_sorted_path_order_side_files_ignored(tmp_path):
    root, table, paths = partitioned(tmp_path)
    source = lio.as_source(root)
    assert isinstance(source, lio.DatasetSource) and source.format == "parquet"
    assert [p.name for p in source.parts] == [
        "split=a/part-0.parquet",
        "split=a/part-1.parquet",
        "split=b/part-2.parquet",
    ]
    assert source.num_rows == table.num_rows
    assert source.schema.names == [*table.column_names, "split"]  # the hive key comes after the file columns
    whole = source.read()
    assert whole.select(table.column_names).equals(table)
    assert whole["split"].to_pylist() == ["a"] * 100 + ["b"] * 50
    ids = np.concatenate([b.column(0).to_numpy() for b in lio.iter_batches(source, ["id"], batch_rows=7)])
    np.testing.assert_array_equal(ids, table["id"].to_numpy())


def test_glob_and_several_paths_keep_their_order(tmp_path):
    root, table, paths = partitioned(tmp_path)
    globbed = lio.as_source(str(root / "*" / "part-*.parquet"))
    assert [p.path for p in globbed.parts] == paths and globbed.read().select(table.column_names).equals(table)
    given = lio.as_source([paths[2], paths[0]])
    assert [p.name for p in given.parts] == ["split=b/part-2.parquet", "split=a/part-0.parquet"]
    assert given.read()["id"].to_pylist() == table["id"].to_pylist()[100:] + table["id"].to_pylist()[:50]
    assert isinstance(lio.as_source([paths[0]]), pq.ParquetFile)  # one file stays a plain parquet file
    with pytest.raises(FileNotFoundError, match="matches no parquet or CSV file"):
        lio.as_source(str(root / "nothing-*.parquet"))
    with pytest.raises(OptionError, match="given twice"):
        lio.as_source([paths[0], paths[0]])


def test_schemas_are_unified_and_a_clash_names_the_column_types_and_files(tmp_path):
    write(pa.table({"x": pa.array([1, 2], pa.int32()), "label": [0, 1]}), tmp_path / "a.parquet")
    write(pa.table({"x": pa.array([3.5], pa.float64()), "label": [1], "extra": ["e"]}), tmp_path / "b.parquet")
    source = lio.as_source(tmp_path)
    assert source.schema.field("x").type == pa.float64()
    assert source.read().to_pydict() == {"x": [1.0, 2.0, 3.5], "label": [0, 1, 1], "extra": [None, None, "e"]}
    write(pa.table({"x": ["text"], "label": [0]}), tmp_path / "c.parquet")
    with pytest.raises(DataError, match=r"column 'x' is double in '.*a.parquet' but string in '.*c.parquet'"):
        lio.as_source(tmp_path)


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(OptionError, match="is a folder with no parquet or CSV files"):
        lio.as_source(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write(tabular_table(10), mixed / "a.parquet")
    (mixed / "b.csv").write_text("x,label\n1,0\n")
    with pytest.raises(OptionError, match="both parquet and CSV"):
        lio.as_source(mixed)
    bad = tmp_path / "bad"
    bad.mkdir()
    write(tabular_table(10), bad / "a.parquet")
    (bad / "b.parquet").write_text("x,label\n1,0\n")
    with pytest.raises(DataError, match="b.parquet' is not a parquet file"):
        lio.as_source(bad)


def test_csv_types_are_inferred(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,color,label\n1.5,red,a\n2,blue,b\n,red,a\n")
    source = lio.as_source(path)
    assert source.format == "csv" and source.num_rows == 3
    assert source.schema.field("x").type == pa.float64()
    plan = lio.plan_features(source, "label")
    assert plan.names == ["x", "color"]
    np.testing.assert_array_equal(lio.read_features(source, plan), [[1.5, 0, 1], [2, 1, 0], [1.75, 0, 1]])


def test_numbers_stored_as_text_are_read_as_numbers():
    t = pa.table(
        {
            "income": [" 1200.5", "800", "", None, "NA", "1e3"],
            "zip": ["1001", "1002", "1003", "1004", "1005", "1006"],
            "city": ["x", "y", "x", "y", "x", "y"],
            "label": [0, 1, 0, 1, 0, 1],
        }
    )
    plan = lio.plan_features(t, "label")
    assert plan.names == ["income", "city"] and plan.read_as_numbers == ["income"]
    assert "identifier" in plan.skipped["zip"] and plan.include["zip"] == ["income", "city", "zip"]
    X = lio.read_features(t, plan, batch_rows=2)  # one batch holds only a blank and a null
    mean = (1200.5 + 800 + 1000) / 3
    np.testing.assert_allclose(X[:, 0], [1200.5, 800, mean, mean, mean, 1000], rtol=1e-6)
    assert lio.plan_features(t, "label", features=["zip"]).read_as_numbers == ["zip"]  # named: used
