"""Parquet ↔ ``(X, y, columns)``: pyarrow reading, feature-column detection, image decoding, atomic writes.

Features are streamed record batch by record batch into one preallocated float32 array,
with no pandas round trip, so reading needs little more memory than the feature matrix
itself. Outputs are written to a temporary file beside the target and renamed into place.

Examples
--------
>>> import numpy as np, pyarrow as pa
>>> from labelclean.io import plan_features, read_features
>>> table = pa.table({"x": [1.0, 2.0, 3.0], "emb": [[0, 1], [1, 0], [1, 1]],
...                   "color": ["red", "blue", "red"], "label": ["a", "b", "a"]})
>>> plan = plan_features(table, label="label")
>>> [(c.name, c.kind, c.width) for c in plan.columns]
[('x', 'numeric', 1), ('emb', 'embedding', 2), ('color', 'onehot', 2)]
>>> read_features(table, plan)
array([[1., 0., 1., 0., 1.],
       [2., 1., 0., 1., 0.],
       [3., 1., 1., 0., 1.]], dtype=float32)
"""

from __future__ import annotations

import contextlib
import ctypes
import io as _stdio
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: Names of the columns labelclean adds to its outputs.
OUTPUT_COLUMNS = ("is_clean", "pseudo_label", "label_quality")
#: String / categorical columns with at most this many distinct values are one-hot encoded.
MAX_CATEGORIES = 50
#: Rows per record batch when streaming.
BATCH_ROWS = 65_536

_READ_BUFFER = 8 << 20
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}

#: ``progress(stage, done, total)``: called as rows are read or written (``total`` may be None).
ProgressFn = Callable[[str, int, "int | None"], None]
Source = "pa.Table | pq.ParquetFile"


class DataError(ValueError):
    """The data cannot be used as they are (the command line exits with status 1)."""


class OptionError(ValueError):
    """An argument names something that does not exist or is not allowed (the command line exits with status 2)."""


# ---------------------------------------------------------------------------
# Opening
# ---------------------------------------------------------------------------


def open_parquet(path: str | os.PathLike) -> pq.ParquetFile:
    """Open a parquet file for streaming, with errors that say what is wrong and what to do.

    Raises
    ------
    FileNotFoundError
        No such file.
    DataError
        Not a parquet file, a truncated or damaged one.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"input file '{p}' does not exist; check the path.")
    if p.is_dir():
        raise OptionError(f"input '{p}' is a folder; pass a single parquet file.")
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head != b"PAR1":
        raise DataError(
            f"'{p}' is not a parquet file (it does not start with the PAR1 marker); "
            "convert it first, e.g. pandas.read_csv(...).to_parquet(...)."
        )
    try:
        # A read buffer streams each column chunk page by page instead of loading a whole row group.
        return pq.ParquetFile(p, buffer_size=_READ_BUFFER, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(
            f"'{p}' looks truncated or damaged ({_first_line(exc)}); write or copy the file again."
        ) from exc


def as_source(data: Any) -> pa.Table | pq.ParquetFile:
    """A pyarrow Table, a pandas DataFrame or a path → a Table or an open :class:`pyarrow.parquet.ParquetFile`."""
    if isinstance(data, (pa.Table, pq.ParquetFile)):
        return data
    if isinstance(data, (str, os.PathLike)):
        return open_parquet(data)
    if hasattr(data, "columns") and hasattr(data, "dtypes"):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(f"data must be a pandas DataFrame, a pyarrow Table or a parquet path, not {type(data).__name__}.")


def source_schema(source: pa.Table | pq.ParquetFile) -> pa.Schema:
    return source.schema if isinstance(source, pa.Table) else source.schema_arrow


def source_rows(source: pa.Table | pq.ParquetFile) -> int:
    return source.num_rows if isinstance(source, pa.Table) else source.metadata.num_rows


def iter_batches(
    source: pa.Table | pq.ParquetFile, columns: Sequence[str] | None = None, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` (all when None), in row order."""
    try:
        if isinstance(source, pa.Table):
            table = source if columns is None else source.select(list(columns))
            yield from table.to_batches(max_chunksize=batch_rows)
        else:
            yield from source.iter_batches(batch_size=batch_rows, columns=None if columns is None else list(columns))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"could not read the data ({_first_line(exc)}); the file may be damaged.") from exc


def read_column(source: pa.Table | pq.ParquetFile, name: str) -> pa.ChunkedArray:
    """One whole column."""
    if isinstance(source, pa.Table):
        return source.column(name)
    try:
        return source.read(columns=[name]).column(0)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"could not read column '{name}' ({_first_line(exc)}); the file may be damaged.") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------
# Feature detection
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureColumn:
    """One input column and how it becomes features."""

    name: str
    kind: str  # "numeric", "embedding", "onehot" or "image"
    width: int
    categories: pa.Array | None = None
    image_shape: tuple[int, int, int] | None = None  # (C, H, W)
    image_mode: str | None = None  # Pillow mode the images are converted to


@dataclass
class FeaturePlan:
    """The feature columns chosen, the columns skipped (with why), and the shape of ``X``."""

    columns: list[FeatureColumn]
    skipped: dict[str, str] = field(default_factory=dict)
    n_rows: int = 0

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def is_image(self) -> bool:
        return any(c.kind == "image" for c in self.columns)

    @property
    def row_shape(self) -> tuple[int, ...]:
        """Shape of one row of ``X``: ``(d,)`` for vectors, ``(C, H, W)`` for images."""
        if self.is_image:
            return self.columns[0].image_shape  # type: ignore[return-value]
        return (sum(c.width for c in self.columns),)

    @property
    def nbytes(self) -> int:
        """Size of the float32 feature matrix."""
        return 4 * self.n_rows * int(np.prod(self.row_shape))


def _is_numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def _is_stringish(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_stringish(t.value_type) or _is_numeric(t.value_type)
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _first_valid(source: pa.Table | pq.ParquetFile, name: str) -> Any:
    """The first non-null value of a column, reading as little as possible."""
    if isinstance(source, pa.Table):
        col = source.column(name)
        valid = pc.drop_null(col)
        return valid[0].as_py() if len(valid) else None
    for batch in source.iter_batches(batch_size=1024, columns=[name]):
        col = batch.column(0)
        if col.null_count < len(col):
            return col.filter(pc.is_valid(col))[0].as_py()
    return None


def _list_width_from_metadata(source: pa.Table | pq.ParquetFile, name: str) -> int | None:
    """Width of a list column from the parquet footer alone (first row group, no nulls), else None.

    Without nulls a list column's leaf holds ``rows × width`` values when every list has
    ``width`` items; the read pass checks every row's length anyway.
    """
    if isinstance(source, pa.Table) or source.metadata.num_row_groups == 0:
        return None
    meta = source.metadata
    leaves = [i for i in range(meta.num_columns) if meta.schema.column(i).path.split(".")[0] == name]
    if len(leaves) != 1:
        return None
    rg = meta.row_group(0)
    chunk = rg.column(leaves[0])
    stats = chunk.statistics
    if rg.num_rows == 0 or stats is None or not stats.has_null_count or stats.null_count != 0:
        return None
    width, rest = divmod(chunk.num_values, rg.num_rows)
    return width if rest == 0 and width > 0 else None


def _all_distinct(col: pa.ChunkedArray) -> bool:
    """Whether an integer column has no nulls and no repeated value.

    Sorting a NumPy copy needs about twice the column's size; pyarrow's hash-based
    ``count_distinct`` needed some 30 times that (444 MiB for 2,000,000 int64 values).
    """
    if col.null_count:
        return False
    values = np.sort(col.to_numpy())
    return bool(np.all(values[1:] != values[:-1]))


def _image_info(data: bytes) -> tuple[str, tuple[int, int, int]]:
    from PIL import Image

    with Image.open(_stdio.BytesIO(data)) as img:
        mode = "L" if img.mode in _GRAY_MODES else "RGB"
        w, h = img.size
    return mode, (1 if mode == "L" else 3, h, w)


def _describe_column(
    source: pa.Table | pq.ParquetFile, f: pa.Field, n_rows: int, explicit: bool
) -> FeatureColumn | str:
    """How ``f`` becomes features, or a string saying why it cannot."""
    t = f.type
    if f.name.startswith("__index_level_"):
        return "pandas index"
    if f.name in OUTPUT_COLUMNS:
        return "a labelclean output column (replaced in the output)"
    if _is_numeric(t):
        if pa.types.is_integer(t) and not explicit and n_rows > 1 and _all_distinct(read_column(source, f.name)):
            return "all values distinct: looks like an identifier (name it in --features to use it)"
        return FeatureColumn(f.name, "numeric", 1)
    if _is_list(t):
        if not _is_numeric(t.value_type):
            return f"list of {t.value_type}, not of numbers"
        if pa.types.is_fixed_size_list(t):
            return FeatureColumn(f.name, "embedding", t.list_size)
        width = _list_width_from_metadata(source, f.name)
        if width is not None:
            return FeatureColumn(f.name, "embedding", width)
        first = _first_valid(source, f.name)
        if first is None:
            return "all values are null"
        return FeatureColumn(f.name, "embedding", len(first))
    if _is_binary(t):
        first = _first_valid(source, f.name)
        if first is None:
            return "all values are null"
        if not (first.startswith(_PNG_MAGIC) or first.startswith(_JPEG_MAGIC)):
            return "binary data that is not PNG or JPEG"
        try:
            mode, shape = _image_info(first)
        except ImportError:
            return "PNG/JPEG images need Pillow: pip install pillow"
        except Exception as exc:  # noqa: BLE001 - any decoder error means "not an image we can read"
            return f"first image cannot be decoded ({_first_line(exc)})"
        return FeatureColumn(f.name, "image", int(np.prod(shape)), image_shape=shape, image_mode=mode)
    if _is_stringish(t):
        col = read_column(source, f.name)
        if pa.types.is_dictionary(t):
            col = col.cast(t.value_type)
        cats = pc.drop_null(pc.unique(col))
        limit = MAX_CATEGORIES if explicit else min(MAX_CATEGORIES, max(2, n_rows // 2))
        if len(cats) > limit:
            return f"{len(cats)} distinct values: too many to one-hot encode (limit {limit})"
        if len(cats) == 0:
            return "all values are null"
        cats = cats.take(pc.array_sort_indices(cats))
        return FeatureColumn(f.name, "onehot", len(cats), categories=cats)
    return f"type {t} is not usable as a feature"


def plan_features(
    source: pa.Table | pq.ParquetFile, label: str | None = "label", features: Sequence[str] | None = None
) -> FeaturePlan:
    """Choose the feature columns by type.

    Numeric scalars are used as they are; list and fixed-size-list columns of numbers are
    embeddings (all rows of one column must have the same length); binary columns of PNG
    or JPEG bytes are images (decoded to ``N×C×H×W``, used alone); string or categorical
    columns with few distinct values are one-hot encoded. By default every other usable
    column except ``label`` is used; integer columns whose values are all distinct look
    like identifiers and are skipped.

    Parameters
    ----------
    source : pyarrow.Table or pyarrow.parquet.ParquetFile
    label : str or None
        The label column, never a feature.
    features : sequence of str or None
        Use exactly these columns; an unknown or unusable name is an error.

    Returns
    -------
    FeaturePlan

    Raises
    ------
    OptionError
        ``features`` names a column that does not exist, or the label column.
    DataError
        No usable feature column, or a named column that cannot be used.
    """
    schema = source_schema(source)
    n_rows = source_rows(source)
    names = list(schema.names)
    explicit = features is not None
    if explicit:
        features = list(features)
        unknown = [c for c in features if c not in names]
        if unknown:
            raise OptionError(
                f"unknown feature column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"the columns are: {', '.join(names)}. Fix --features (features= in Python)."
            )
        if label in features:
            raise OptionError(f"the label column '{label}' cannot also be a feature; remove it from --features.")
        candidates = [schema.field(c) for c in features]
    else:
        candidates = [f for f in schema if f.name != label]
    columns: list[FeatureColumn] = []
    skipped: dict[str, str] = {}
    for f in candidates:
        described = _describe_column(source, f, n_rows, explicit)
        if isinstance(described, str):
            if explicit:
                raise DataError(f"column '{f.name}' cannot be used as a feature: {described}.")
            skipped[f.name] = described
        else:
            columns.append(described)
    images = [c for c in columns if c.kind == "image"]
    if images and len(columns) > 1:
        if explicit:
            raise OptionError(
                f"image column '{images[0].name}' cannot be combined with other feature columns; "
                "pass it alone in --features."
            )
        for c in columns:
            if c is not images[0]:
                skipped[c.name] = f"the image column '{images[0].name}' is used alone"
        columns = [images[0]]
    if not columns:
        why = "; ".join(f"'{k}': {v}" for k, v in skipped.items()) or "the table has no other columns"
        raise DataError(
            f"no usable feature column ({why}); add numeric, embedding (list of numbers), "
            "PNG/JPEG or low-cardinality text columns, or name them with --features."
        )
    return FeaturePlan(columns, skipped, n_rows)


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def _check_finite(values: pa.Array, name: str, row_of: Callable[[int], int]) -> None:
    """Raise :class:`DataError` naming the column and row of the first NaN or infinite number (nulls are fine).

    ``row_of`` maps the position of a value in ``values`` to its row in the table.
    """
    if not pa.types.is_floating(values.type):
        return
    finite = pc.is_finite(values)
    if pc.all(finite).as_py() is False:
        first = int(np.argmin(finite.fill_null(True).to_numpy(zero_copy_only=False)))
        raise DataError(
            f"column '{name}' holds {values[first].as_py()} at row {row_of(first)}; labelclean needs finite "
            "numbers. Replace NaN and infinity with null (missing numbers are then filled in) or drop those rows."
        )


def _fill_numeric(out: np.ndarray, col: pa.Array, name: str = "", start: int = 0) -> bool:
    """Write a numeric column into ``out`` (1-D view); return whether it had nulls (left as NaN)."""
    t = col.type
    _check_finite(col, name, lambda i: start + i)
    if pa.types.is_decimal(t):
        col = col.cast(pa.float64())
    elif pa.types.is_boolean(t):
        col = col.cast(pa.uint8())
    has_null = col.null_count > 0
    if has_null:
        col = col.cast(pa.float64()) if not pa.types.is_floating(t) else col
        col = col.fill_null(float("nan"))
    out[:] = col.to_numpy(zero_copy_only=False)
    return has_null


def _fill_embedding(out: np.ndarray, col: pa.Array, name: str, start: int) -> None:
    """Write a list column into ``out`` (2-D view, rows × width); null lists become zeros."""
    width = out.shape[1]
    if col.null_count:
        valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
        out[~valid] = 0.0
        rows = np.flatnonzero(valid)
        col = col.filter(pc.is_valid(col))
    else:
        rows = None
    if not pa.types.is_fixed_size_list(col.type):
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(lengths != width)
        if bad.size:
            r = int(bad[0] if rows is None else rows[bad[0]]) + start
            raise DataError(
                f"column '{name}' holds lists of different lengths ({width} and {int(lengths[bad[0]])} at row {r}); "
                "embeddings must all have the same length."
            )
    values = col.flatten()
    _check_finite(values, name, lambda i: start + int(i // width if rows is None else rows[i // width]))
    if values.null_count:
        values = values.fill_null(0)
    values = values.to_numpy(zero_copy_only=False).reshape(-1, width)
    if rows is None:
        out[:] = values
    else:
        out[rows] = values


def _fill_onehot(out: np.ndarray, col: pa.Array, categories: pa.Array) -> None:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    codes = pc.index_in(col, value_set=categories)
    valid = pc.is_valid(codes).to_numpy(zero_copy_only=False)
    out[:] = 0.0
    rows = np.flatnonzero(valid)
    out[rows, codes.filter(pc.is_valid(codes)).to_numpy(zero_copy_only=False)] = 1.0


def _fill_images(out: np.ndarray, col: pa.Array, fc: FeatureColumn, start: int) -> int:
    """Decode PNG/JPEG bytes into ``out`` (rows × C × H × W, 0–255); return how many were resized."""
    from PIL import Image

    c, h, w = fc.image_shape  # type: ignore[misc]
    resized = 0
    for i, data in enumerate(col.to_pylist()):  # one decode per row is unavoidable
        if data is None:
            out[i] = 0.0
            continue
        try:
            with Image.open(_stdio.BytesIO(data)) as img:
                img = img.convert(fc.image_mode)
                if img.size != (w, h):
                    img = img.resize((w, h))
                    resized += 1
                arr = np.asarray(img, dtype=np.float32)
        except Exception as exc:  # noqa: BLE001
            raise DataError(
                f"row {start + i} of column '{fc.name}' is not a readable image ({_first_line(exc)})."
            ) from exc
        out[i] = arr[None] if c == 1 else arr.transpose(2, 0, 1)
    return resized


def batch_rows_for(plan: FeaturePlan, target_bytes: int = 8 << 20) -> int:
    """Rows per record batch so that one batch of features is about ``target_bytes`` (1,024 to 65,536 rows)."""
    row_bytes = 4 * int(np.prod(plan.row_shape))
    return int(min(BATCH_ROWS, max(1024, target_bytes // max(row_bytes, 1))))


def _release_arrow_memory() -> None:
    """Hand memory that pyarrow's allocator keeps cached back to the system (keeps the peak near the matrix)."""
    with contextlib.suppress(AttributeError, NotImplementedError):
        pa.default_memory_pool().release_unused()


def release_free_memory() -> None:
    """Hand memory that was freed but is still held by the allocators back to the system.

    pyarrow's pool and glibc's ``malloc`` keep freed blocks for reuse; after reading a large
    file that is tens of MiB per million rows, which would otherwise add to the peak of the
    training that follows. Only free memory is returned: nothing else changes.
    """
    _release_arrow_memory()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # not glibc (e.g. musl): nothing to do
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def read_features(
    source: pa.Table | pq.ParquetFile,
    plan: FeaturePlan,
    *,
    batch_rows: int | None = None,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Stream the planned columns into one preallocated float32 array.

    Shape ``(n_rows, n_features)`` for vectors, ``(n_rows, C, H, W)`` for images (pixel
    values scaled to [0, 1]). Null numbers are replaced by the column mean, null lists and
    images by zeros, null categories by an all-zero one-hot block.
    """
    n = plan.n_rows
    batch_rows = batch_rows or batch_rows_for(plan)
    _release_arrow_memory()
    X = np.empty((n, *plan.row_shape), dtype=np.float32)
    offsets = np.cumsum([0] + [c.width for c in plan.columns])
    with_nulls: list[int] = []
    start = 0
    for batch in iter_batches(source, plan.names, batch_rows):
        stop = start + batch.num_rows
        for j, fc in enumerate(plan.columns):
            col = batch.column(j)
            if fc.kind == "image":
                _fill_images(X[start:stop], col, fc, start)
                continue
            block = X[start:stop, offsets[j] : offsets[j + 1]]
            if fc.kind == "numeric":
                if _fill_numeric(block[:, 0], col, fc.name, start) and j not in with_nulls:
                    with_nulls.append(j)
            elif fc.kind == "embedding":
                _fill_embedding(block, col, fc.name, start)
            else:
                _fill_onehot(block, col, fc.categories)
        start = stop
        del batch
        _release_arrow_memory()
        if progress is not None:
            progress("reading", start, n)
    for j in with_nulls:
        view = X[:, offsets[j]]
        mean = np.nanmean(view) if not np.all(np.isnan(view)) else 0.0
        view[np.isnan(view)] = mean
    if plan.is_image:
        X *= np.float32(1.0 / 255.0)
    return X


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    On any failure (an exception, ``KeyboardInterrupt``) the temporary file is removed and
    ``target`` — or an earlier file of that name — is left as it was. The finished file is
    flushed to disk (``fsync``) before the rename, and the folder after it, so a crash or a
    power cut leaves the old file or the whole new one. A process killed outright
    (``SIGKILL``) cannot clean up: its temporary file (``.NAME.PID.*.tmp``, hidden) is removed
    by the next ``atomic_path`` on the same target once that process is gone.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> target = os.path.join(folder, "out.txt")
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> open(target).read(), os.listdir(folder)
    ('done', ['out.txt'])
    """
    target = Path(target)
    _remove_stale_temps(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _target_mode(target))  # mkstemp makes 0600 files; give the usual permissions
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # not every platform can open a folder
        _fsync(target.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_temps(target: Path) -> None:
    """Remove temporary files of ``target`` left by processes that no longer run (killed by ``SIGKILL``)."""
    prefix = f".{target.name}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
                continue
            parts = entry.name[len(prefix) : -len(".tmp")].split(".")  # PID and mkstemp's random name
            if len(parts) == 2 and parts[0].isdigit() and not _process_alive(int(parts[0])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # on Windows os.kill(pid, 0) would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


def _target_mode(target: Path) -> int:
    """The mode of an existing ``target``, else ``0o666`` less the umask."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_with_columns(
    source: pa.Table | pq.ParquetFile,
    output: str | os.PathLike,
    added: pa.Table,
    *,
    keep: np.ndarray | None = None,
    batch_rows: int = 16_384,
    progress: ProgressFn | None = None,
) -> int:
    """Write every column of ``source`` (unchanged, same order) plus ``added``, atomically.

    The input is streamed batch by batch, so writing needs memory for one batch only.
    Columns of ``source`` with the names of ``added`` are dropped (their new values are
    appended at the end). ``keep`` (bool per row) writes only those rows. Returns the
    number of rows written.
    """
    schema = source_schema(source)
    kept_names = [n for n in schema.names if n not in added.column_names]
    fields = [schema.field(n) for n in kept_names] + list(added.schema)
    out_schema = pa.schema(fields, metadata=schema.metadata)
    n = source_rows(source)
    written = 0
    with atomic_path(output) as tmp:
        with pq.ParquetWriter(tmp, out_schema) as writer:
            start = 0
            for batch in iter_batches(source, kept_names, batch_rows):
                stop = start + batch.num_rows
                extra = added.slice(start, batch.num_rows)
                arrays = list(batch.columns) + [extra.column(i).combine_chunks() for i in range(extra.num_columns)]
                piece = pa.RecordBatch.from_arrays(arrays, schema=out_schema)
                if keep is not None:
                    piece = piece.filter(pa.array(keep[start:stop]))
                if piece.num_rows:
                    writer.write_batch(piece)
                written += piece.num_rows
                start = stop
                del batch, piece, arrays
                _release_arrow_memory()
                if progress is not None:
                    progress("writing", start, n)
            if n == 0:
                writer.write_table(out_schema.empty_table())
    return written
