"""Parquet ↔ ``(X, y, columns)``: pyarrow reading, feature-column detection, image decoding, atomic writes.

Features are streamed record batch by record batch into one preallocated float32 array,
with no pandas round trip, so reading needs little more memory than the feature matrix
itself. Outputs are written to a temporary file beside the target and renamed into place.

An input is one parquet file, a CSV file, or a dataset of several files read as one table
with :mod:`pyarrow.dataset` (see :func:`open_dataset`): a folder (hive-style ``key=value``
subfolders become columns; hidden and ``_``-prefixed side files such as ``_SUCCESS`` are
ignored), a glob, or a list of paths. The rows of a dataset come file by file, the files in
sorted path order, each file's rows in its own order.

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
import glob as _glob
import io as _stdio
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if TYPE_CHECKING:  # pyarrow.dataset loads pandas: imported where a dataset is opened, not at start-up
    import pyarrow.dataset as ds

#: Names of the columns labelclean adds to its outputs.
OUTPUT_COLUMNS = ("is_clean", "pseudo_label", "label_quality")
#: String / categorical columns with at most this many distinct values are one-hot encoded.
MAX_CATEGORIES = 50
#: Rows per record batch when streaming.
BATCH_ROWS = 65_536

#: File endings a folder or a glob contributes to a dataset (other files are ignored).
PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
CSV_SUFFIXES = (".csv",)
#: Text read as missing when a text column holds numbers (pyarrow's CSV null markers).
TEXT_NULLS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN")
TEXT_NULLS += ("N/A", "NA", "NULL", "NaN", "n/a", "nan", "null")

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


def _check_parquet_file(p: Path) -> None:
    """Raise a clear error unless ``p`` is a file that starts like a parquet file."""
    if not p.exists():
        raise FileNotFoundError(f"input file '{p}' does not exist; check the path.")
    if p.is_dir():
        raise OptionError(f"input '{p}' is a folder; pass a parquet file, or the folder itself as a dataset.")
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head != b"PAR1":
        raise DataError(
            f"'{p}' is not a parquet file (it does not start with the PAR1 marker); "
            "convert it first, e.g. pandas.read_csv(...).to_parquet(...), or name it .csv to read it as CSV."
        )


def open_parquet(path: str | os.PathLike) -> pq.ParquetFile:
    """Open a parquet file for streaming, with errors that say what is wrong and what to do.

    Raises
    ------
    FileNotFoundError
        No such file.
    OptionError
        The path is a folder.
    DataError
        Not a parquet file, a truncated or damaged one.
    """
    p = Path(path)
    _check_parquet_file(p)
    try:
        # A read buffer streams each column chunk page by page instead of loading a whole row group.
        return pq.ParquetFile(p, buffer_size=_READ_BUFFER, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(
            f"'{p}' looks truncated or damaged ({_first_line(exc)}); write or copy the file again."
        ) from exc


@dataclass(frozen=True)
class Part:
    """One file of a dataset: its path, its name below the dataset's root and its number of rows."""

    path: Path
    name: str
    rows: int


class DatasetSource:
    """Several parquet files, or CSV files, read as one table (built by :func:`open_dataset`).

    Rows come part by part in the order of :attr:`parts` (sorted path order), each part's
    rows in file order. Parquet parts are streamed with :mod:`pyarrow.dataset`, record batch
    by record batch, cast to the unified :attr:`schema`; CSV parts are parsed once, whole,
    and kept in memory as Arrow columns.

    Attributes
    ----------
    parts : list of Part
    schema : pyarrow.Schema
        Every column of every part (types unified), then the hive partition columns.
    file_schema : pyarrow.Schema
        :attr:`schema` without the partition columns (what each part's file holds).
    format : {"parquet", "csv"}
    num_rows : int
    """

    def __init__(
        self,
        parts: list[Part],
        schema: pa.Schema,
        file_schema: pa.Schema,
        format: str,
        *,
        dataset: ds.Dataset | None = None,
        tables: list[pa.Table] | None = None,
    ) -> None:
        self.parts = parts
        self.schema = schema
        self.file_schema = file_schema
        self.format = format
        self.num_rows = sum(p.rows for p in parts)
        self._dataset = dataset
        self._fragments = None if dataset is None else list(dataset.get_fragments())
        self._tables = tables

    def __repr__(self) -> str:
        return f"DatasetSource({self.format}, {len(self.parts)} parts, {self.num_rows} rows)"

    def part(self, i: int, *, file_columns: bool = False) -> DatasetSource:
        """Part ``i`` alone, as a source of its own (``file_columns``: without the partition columns)."""
        schema = self.file_schema if file_columns else self.schema
        sub = DatasetSource([self.parts[i]], schema, self.file_schema, self.format)
        sub._dataset = self._dataset
        sub._fragments = None if self._fragments is None else [self._fragments[i]]
        sub._tables = None if self._tables is None else [self._tables[i]]
        return sub

    def iter_batches(
        self, columns: Sequence[str] | None = None, batch_rows: int = BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of ``columns`` (all when None), part after part, in row order."""
        names = list(self.schema.names if columns is None else columns)
        if self._tables is not None:
            for table in self._tables:
                yield from table.select(names).to_batches(max_chunksize=batch_rows)
            return
        import pyarrow.dataset as ds

        for part, fragment in zip(self.parts, self._fragments, strict=True):
            scanner = ds.Scanner.from_fragment(
                fragment, schema=self._dataset.schema, columns=names, batch_size=batch_rows, batch_readahead=2
            )
            try:
                yield from scanner.to_batches()
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
                raise DataError(
                    f"could not read '{part.path}' ({_first_line(exc)}); the file may be damaged or its "
                    "columns may not match the other parts."
                ) from exc

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """The whole table (or ``columns``) in memory."""
        names = list(self.schema.names if columns is None else columns)
        schema = pa.schema([self.schema.field(n) for n in names], metadata=self.schema.metadata)
        return pa.Table.from_batches(list(self.iter_batches(names)), schema=schema)


def _is_side_file(name: str) -> bool:
    """Hidden or ``_``-prefixed files and folders (``_SUCCESS``, ``.part-0.crc``, ``_temporary``): not data."""
    return name.startswith((".", "_"))


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def _data_files(paths: Sequence[Path], where: str) -> list[Path]:
    """The parquet files among ``paths``, else the CSV files; an error when there are none or both."""
    parquet = [p for p in paths if p.name.lower().endswith(PARQUET_SUFFIXES)]
    csv = [p for p in paths if p.name.lower().endswith(CSV_SUFFIXES)]
    if parquet and csv:
        raise OptionError(
            f"{where} holds both parquet and CSV files; a dataset is one or the other. "
            "Pass the files of one kind (a glob such as 'DIR/*.parquet')."
        )
    return parquet or csv


def _folder_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _is_side_file(d))
        found += [Path(dirpath) / f for f in filenames if not _is_side_file(f)]
    files = _data_files(found, f"folder '{folder}'")
    if not files:
        raise OptionError(
            f"input '{folder}' is a folder with no parquet or CSV files in it (files ending in "
            f"{', '.join(PARQUET_SUFFIXES + CSV_SUFFIXES)}; hidden and '_' files are ignored); check the path."
        )
    return files


def resolve_inputs(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[Path], Path | None]:
    """The files an input names, in sorted path order, and the folder that partitions are relative to.

    ``inputs`` is one path (a file or a folder), a glob (``'data/part-*.parquet'``) or a
    sequence of those. A folder contributes every parquet (else CSV) file below it, hidden
    and ``_``-prefixed files and folders left out; a folder alone is the root of its hive
    partitions (``key=value`` subfolders). The files of several paths keep the order given
    (each folder's and glob's files sorted).

    Raises
    ------
    FileNotFoundError
        A path that does not exist, or a glob that matches no file.
    OptionError
        An empty folder, or parquet and CSV files mixed.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise OptionError("no input given; pass a parquet or CSV file, a folder or a glob.")
    files: list[Path] = []
    for item in items:
        text = os.fspath(item)
        p = Path(text)
        if p.is_dir():
            files += sorted(_folder_files(p))
        elif not p.exists() and _is_glob(text):
            matched = [Path(m) for m in _glob.glob(text, recursive=True)]
            matched = [m for m in matched if m.is_file() and not _is_side_file(m.name)]
            matched = sorted(_data_files(matched, f"glob '{text}'"))
            if not matched:
                raise FileNotFoundError(
                    f"glob '{text}' matches no parquet or CSV file; check the pattern (quote it so that "
                    "labelclean, not the shell, expands it)."
                )
            files += matched
        elif not p.exists():
            raise FileNotFoundError(f"input file '{p}' does not exist; check the path.")
        else:
            files.append(p)
    seen: set[Path] = set()
    for f in files:
        key = f.resolve()
        if key in seen:
            raise OptionError(f"input '{f}' is given twice; pass each file once.")
        seen.add(key)
    root = Path(os.fspath(items[0])) if len(items) == 1 and Path(os.fspath(items[0])).is_dir() else None
    return files, root


def part_names(files: list[Path], root: Path | None) -> list[str]:
    """Names of the parts below ``root`` (else below the folder the files share): what ``--output-dir`` writes."""
    if root is None:
        parents = [os.path.abspath(f.parent) for f in files]
        root = Path(os.path.commonpath(parents))
    return [Path(os.path.abspath(f)).relative_to(os.path.abspath(root)).as_posix() for f in files]


def _unify(schemas: list[pa.Schema], files: list[Path]) -> pa.Schema:
    """One schema for every part: columns in order of appearance, types widened where they can be.

    A column whose types cannot be unified (``int64`` and ``string``, say) is a :class:`DataError`
    naming it, its two types and the two files.
    """
    unified = schemas[0]
    origin = {name: files[0] for name in unified.names}
    for schema, f in zip(schemas[1:], files[1:], strict=True):
        try:
            unified = pa.unify_schemas([unified, schema], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            for field_ in schema:
                if field_.name not in unified.names:
                    continue
                known = unified.field(field_.name)
                try:
                    pa.unify_schemas([pa.schema([known]), pa.schema([field_])], promote_options="permissive")
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                    raise DataError(
                        f"column '{field_.name}' is {known.type} in '{origin[field_.name]}' but {field_.type} "
                        f"in '{f}'; the parts cannot be read as one table. Write '{field_.name}' with one type "
                        "in every part, or leave the odd part out."
                    ) from exc
            raise DataError(f"the schema of '{f}' cannot be merged with the others ({_first_line(exc)}).") from exc
        for name in schema.names:
            origin.setdefault(name, f)
    return unified


def _read_csv(path: Path) -> pa.Table:
    from pyarrow import csv

    try:
        return csv.read_csv(path)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"'{path}' cannot be read as CSV ({_first_line(exc)}); check its delimiter, quoting and column count."
        ) from exc


def open_dataset(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> DatasetSource:
    """Open a folder, a glob, a CSV file or several paths as one table.

    Parquet parts are checked (marker and footer) and streamed later; the schemas of all
    parts are unified (a column missing from a part reads as nulls there; ``int32`` and
    ``int64`` become ``int64``, integers and floats ``double``). The hive ``key=value``
    subfolders of a folder become columns after the files' own. CSV parts are read with
    pyarrow's CSV reader, column types inferred from the whole file.

    Raises
    ------
    FileNotFoundError, OptionError
        See :func:`resolve_inputs`.
    DataError
        A part that is damaged or not parquet, or a column whose types clash between parts.
    """
    files, root = resolve_inputs(inputs)
    names = part_names(files, root)
    if all(f.name.lower().endswith(CSV_SUFFIXES) for f in files):
        tables = [_read_csv(f) for f in files]
        schema = _unify([t.schema for t in tables], files)
        tables = [_conform(t, schema, f) for t, f in zip(tables, files, strict=True)]
        parts = [Part(f, n, t.num_rows) for f, n, t in zip(files, names, tables, strict=True)]
        return DatasetSource(parts, schema, schema, "csv", tables=tables)
    if any(f.name.lower().endswith(CSV_SUFFIXES) for f in files):
        raise OptionError("the inputs mix parquet and CSV files; a dataset is one or the other.")
    metas = []
    for f in files:
        _check_parquet_file(f)
        try:
            metas.append(pq.read_metadata(f))
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(
                f"'{f}' looks truncated or damaged ({_first_line(exc)}); write or copy the file again."
            ) from exc
    file_schema = _unify([m.schema.to_arrow_schema() for m in metas], files)
    import pyarrow.dataset as ds

    fmt = ds.ParquetFileFormat(
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(
            use_buffered_stream=True, buffer_size=_READ_BUFFER, pre_buffer=False
        )
    )
    paths = [os.fspath(f) for f in files]
    schema = file_schema
    partitioning = None
    if root is not None and any("=" in n for n in names):
        probe = ds.dataset(paths, format=fmt, partitioning="hive", partition_base_dir=os.fspath(root))
        partitioning = probe.partitioning
        extra = [f for f in partitioning.schema if f.name not in file_schema.names]
        schema = pa.schema(list(file_schema) + extra, metadata=file_schema.metadata)
    dataset = ds.dataset(
        paths,
        schema=schema,
        format=fmt,
        partitioning=partitioning,
        partition_base_dir=None if partitioning is None else os.fspath(root),
    )
    parts = [Part(f, n, m.num_rows) for f, n, m in zip(files, names, metas, strict=True)]
    return DatasetSource(parts, schema, file_schema, "parquet", dataset=dataset)


def _conform(table: pa.Table, schema: pa.Schema, path: Path) -> pa.Table:
    """``table`` with the columns and types of ``schema`` (missing columns as nulls)."""
    arrays = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            try:
                arrays.append(col if col.type == f.type else col.cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(
                    f"column '{f.name}' of '{path}' cannot be read as {f.type} ({_first_line(exc)})."
                ) from exc
        else:
            arrays.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def is_dataset_input(data: Any) -> bool:
    """Whether ``data`` names a dataset rather than one parquet file: a folder, a glob, a CSV file or several paths."""
    if isinstance(data, (list, tuple)):
        return len(data) != 1 or is_dataset_input(data[0])
    if not isinstance(data, (str, os.PathLike)):
        return False
    text = os.fspath(data)
    p = Path(text)
    return p.is_dir() or (not p.exists() and _is_glob(text)) or p.name.lower().endswith(CSV_SUFFIXES)


def as_source(data: Any) -> pa.Table | pq.ParquetFile | DatasetSource:
    """A Table, a pandas DataFrame or paths → a Table, an open :class:`pyarrow.parquet.ParquetFile` or a dataset.

    One parquet file opens as a ``ParquetFile``; a folder, a glob, a CSV file or a list of
    paths as a :class:`DatasetSource` (see :func:`open_dataset`).
    """
    if isinstance(data, (pa.Table, pq.ParquetFile, DatasetSource)):
        return data
    if isinstance(data, (str, os.PathLike)) or (
        isinstance(data, (list, tuple)) and all(isinstance(d, (str, os.PathLike)) for d in data)
    ):
        if is_dataset_input(data):
            return open_dataset(data)
        return open_parquet(data[0] if isinstance(data, (list, tuple)) else data)
    if hasattr(data, "columns") and hasattr(data, "dtypes"):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(
        "data must be a pandas DataFrame, a pyarrow Table or a parquet path (a file, a folder, a glob, a CSV "
        f"file or a list of paths), not {type(data).__name__}."
    )


def source_schema(source: pa.Table | pq.ParquetFile | DatasetSource) -> pa.Schema:
    if isinstance(source, pq.ParquetFile):
        return source.schema_arrow
    return source.schema


def source_rows(source: pa.Table | pq.ParquetFile | DatasetSource) -> int:
    return source.metadata.num_rows if isinstance(source, pq.ParquetFile) else source.num_rows


def iter_batches(
    source: pa.Table | pq.ParquetFile | DatasetSource,
    columns: Sequence[str] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` (all when None), in row order."""
    try:
        if isinstance(source, pa.Table):
            table = source if columns is None else source.select(list(columns))
            yield from table.to_batches(max_chunksize=batch_rows)
        elif isinstance(source, DatasetSource):
            yield from source.iter_batches(columns, batch_rows)
        else:
            yield from source.iter_batches(batch_size=batch_rows, columns=None if columns is None else list(columns))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"could not read the data ({_first_line(exc)}); the file may be damaged.") from exc


def read_column(source: pa.Table | pq.ParquetFile | DatasetSource, name: str) -> pa.ChunkedArray:
    """One whole column."""
    if isinstance(source, pa.Table):
        return source.column(name)
    if isinstance(source, DatasetSource):
        return source.read([name]).column(0)
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
    from_text: bool = False  # a text column whose values are all numbers, parsed as it is read


@dataclass
class FeaturePlan:
    """The feature columns chosen, the columns skipped (with why), and the shape of ``X``.

    ``include`` maps a skipped column that could be used to the feature list that would use
    it (pass it as ``--features``, ``features=`` in Python).
    """

    columns: list[FeatureColumn]
    skipped: dict[str, str] = field(default_factory=dict)
    n_rows: int = 0
    include: dict[str, list[str]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def read_as_numbers(self) -> list[str]:
        """The text columns whose values are all numbers, used as numeric features."""
        return [c.name for c in self.columns if c.from_text]

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


def _first_valid(source: pa.Table | pq.ParquetFile | DatasetSource, name: str) -> Any:
    """The first non-null value of a column, reading as little as possible."""
    if isinstance(source, pa.Table):
        col = source.column(name)
        valid = pc.drop_null(col)
        return valid[0].as_py() if len(valid) else None
    for batch in iter_batches(source, [name], 1024):
        col = batch.column(0)
        if col.null_count < len(col):
            return col.filter(pc.is_valid(col))[0].as_py()
    return None


def _list_width_from_metadata(source: pa.Table | pq.ParquetFile, name: str) -> int | None:
    """Width of a list column from the parquet footer alone (first row group, no nulls), else None.

    Without nulls a list column's leaf holds ``rows × width`` values when every list has
    ``width`` items; the read pass checks every row's length anyway.
    """
    if not isinstance(source, pq.ParquetFile) or source.metadata.num_row_groups == 0:
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


def _text_numbers(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """A text column as float64 when every value is a number (blanks and ``NA``-style markers are nulls), else None."""
    trimmed = pc.utf8_trim_whitespace(col)
    trimmed = pc.if_else(pc.is_in(trimmed, value_set=pa.array(TEXT_NULLS)), pa.scalar(None, trimmed.type), trimmed)
    if trimmed.null_count == len(trimmed):
        return None
    try:
        return pc.cast(trimmed, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _all_blank(col: pa.Array | pa.ChunkedArray) -> bool:
    """Whether every value of a text column is null, blank or an ``NA``-style marker."""
    trimmed = pc.utf8_trim_whitespace(col)
    return bool(pc.all(pc.or_kleene(pc.is_null(trimmed), pc.is_in(trimmed, value_set=pa.array(TEXT_NULLS)))).as_py())


def _whole_distinct(values: pa.Array | pa.ChunkedArray) -> bool:
    """Whether numbers have no nulls, are whole and all differ (an identifier written as text)."""
    if values.null_count:
        return False
    v = values.to_numpy() if isinstance(values, pa.ChunkedArray) else values.to_numpy(zero_copy_only=False)
    if not np.all(np.isfinite(v)) or not np.all(v == np.floor(v)):
        return False
    v = np.sort(v)
    return bool(np.all(v[1:] != v[:-1]))


def _image_info(data: bytes) -> tuple[str, tuple[int, int, int]]:
    from PIL import Image

    with Image.open(_stdio.BytesIO(data)) as img:
        mode = "L" if img.mode in _GRAY_MODES else "RGB"
        w, h = img.size
    return mode, (1 if mode == "L" else 3, h, w)


@dataclass(frozen=True)
class _Skip:
    """Why a column is not a feature; ``usable``: naming it in ``--features`` would use it."""

    reason: str
    usable: bool = False


def _describe_column(
    source: pa.Table | pq.ParquetFile | DatasetSource, f: pa.Field, n_rows: int, explicit: bool
) -> FeatureColumn | _Skip:
    """How ``f`` becomes features, or why it cannot."""
    t = f.type
    if f.name.startswith("__index_level_"):
        return _Skip("pandas index")
    if f.name in OUTPUT_COLUMNS:
        return _Skip("a labelclean output column (replaced in the output)")
    if _is_numeric(t):
        if pa.types.is_integer(t) and not explicit and n_rows > 1 and _all_distinct(read_column(source, f.name)):
            return _Skip("all values distinct: looks like an identifier", usable=True)
        return FeatureColumn(f.name, "numeric", 1)
    if _is_list(t):
        if not _is_numeric(t.value_type):
            return _Skip(f"list of {t.value_type}, not of numbers")
        if pa.types.is_fixed_size_list(t):
            return FeatureColumn(f.name, "embedding", t.list_size)
        width = _list_width_from_metadata(source, f.name)
        if width is not None:
            return FeatureColumn(f.name, "embedding", width)
        first = _first_valid(source, f.name)
        if first is None:
            return _Skip("all values are null")
        return FeatureColumn(f.name, "embedding", len(first))
    if _is_binary(t):
        first = _first_valid(source, f.name)
        if first is None:
            return _Skip("all values are null")
        if not (first.startswith(_PNG_MAGIC) or first.startswith(_JPEG_MAGIC)):
            return _Skip("binary data that is not PNG or JPEG")
        try:
            mode, shape = _image_info(first)
        except ImportError:
            return _Skip("PNG/JPEG images need Pillow: pip install pillow")
        except Exception as exc:  # noqa: BLE001 - any decoder error means "not an image we can read"
            return _Skip(f"first image cannot be decoded ({_first_line(exc)})")
        return FeatureColumn(f.name, "image", int(np.prod(shape)), image_shape=shape, image_mode=mode)
    if _is_stringish(t):
        col = read_column(source, f.name)
        if pa.types.is_dictionary(t):
            col = col.cast(t.value_type)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            numbers = _text_numbers(col)
            if numbers is not None:
                if not explicit and n_rows > 1 and _whole_distinct(numbers):
                    return _Skip("whole numbers stored as text, all distinct: looks like an identifier", usable=True)
                return FeatureColumn(f.name, "numeric", 1, from_text=True)
        cats = pc.drop_null(pc.unique(col))
        limit = MAX_CATEGORIES if explicit else min(MAX_CATEGORIES, max(2, n_rows // 2))
        if len(cats) > limit:
            reason = f"{len(cats)} distinct values: too many to one-hot encode (limit {limit})"
            return _Skip(reason, usable=len(cats) <= MAX_CATEGORIES)
        if len(cats) == 0:
            return _Skip("all values are null")
        cats = cats.take(pc.array_sort_indices(cats))
        return FeatureColumn(f.name, "onehot", len(cats), categories=cats)
    return _Skip(f"type {t} is not usable as a feature")


def plan_features(
    source: pa.Table | pq.ParquetFile | DatasetSource,
    label: str | None = "label",
    features: Sequence[str] | None = None,
) -> FeaturePlan:
    """Choose the feature columns by type.

    Numeric scalars are used as they are; list and fixed-size-list columns of numbers are
    embeddings (all rows of one column must have the same length); binary columns of PNG
    or JPEG bytes are images (decoded to ``N×C×H×W``, used alone); text columns whose
    non-null values all parse as numbers are numbers (blanks and ``NA``-style markers are
    missing); other string or categorical columns with few distinct values are one-hot
    encoded. By default every other usable column except ``label`` is used; integer
    columns (or whole numbers stored as text) whose values are all distinct look like
    identifiers and are skipped.

    Parameters
    ----------
    source : pyarrow.Table, pyarrow.parquet.ParquetFile or DatasetSource
    label : str or None
        The label column, never a feature.
    features : sequence of str or None
        Use exactly these columns; an unknown or unusable name is an error.

    Returns
    -------
    FeaturePlan
        With the reason each column was skipped, and for those that naming them would
        include, the feature list that does (:attr:`FeaturePlan.include`).

    Raises
    ------
    OptionError
        ``features`` names a column that does not exist, or the label column.
    DataError
        No usable feature column, or a named column that cannot be used.
    """
    schema = source_schema(source)
    n_rows = source_rows(source)
    explicit = features is not None
    candidates = _candidate_fields(schema, label, features)
    columns, skipped, usable = _describe_candidates(source, candidates, n_rows, explicit)
    include: dict[str, list[str]] = {}
    images = [c for c in columns if c.kind == "image"]
    if images and len(columns) > 1:
        columns = _image_alone(columns, images[0], skipped, include, explicit)
    if not columns:
        why = "; ".join(f"'{k}': {v}" for k, v in skipped.items()) or "the table has no other columns"
        raise DataError(
            f"no usable feature column ({why}); add numeric, embedding (list of numbers), "
            "PNG/JPEG or low-cardinality text columns, or name them with --features."
        )
    chosen = [c.name for c in columns]
    for name in usable:
        include[name] = [*chosen, name] if not images else [name]
    return FeaturePlan(columns, skipped, n_rows, {k: include[k] for k in skipped if k in include})


def _candidate_fields(schema: pa.Schema, label: str | None, features: Sequence[str] | None) -> list[pa.Field]:
    """The fields :func:`plan_features` considers: those named in ``features`` (checked), else all but the label."""
    if features is None:
        return [f for f in schema if f.name != label]
    names = list(schema.names)
    features = list(features)
    unknown = [c for c in features if c not in names]
    if unknown:
        raise OptionError(
            f"unknown feature column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the columns are: {', '.join(names)}. Fix --features (features= in Python)."
        )
    if label in features:
        raise OptionError(f"the label column '{label}' cannot also be a feature; remove it from --features.")
    return [schema.field(c) for c in features]


def _describe_candidates(
    source: pa.Table | pq.ParquetFile | DatasetSource, candidates: list[pa.Field], n_rows: int, explicit: bool
) -> tuple[list[FeatureColumn], dict[str, str], list[str]]:
    """Each candidate described (:func:`_describe_column`): the feature columns, the skipped ones with why, and the
    skipped ones naming them would use; a named column that cannot be used is an error."""
    columns: list[FeatureColumn] = []
    skipped: dict[str, str] = {}
    usable: list[str] = []
    for f in candidates:
        described = _describe_column(source, f, n_rows, explicit)
        if isinstance(described, _Skip):
            if explicit:
                raise DataError(f"column '{f.name}' cannot be used as a feature: {described.reason}.")
            skipped[f.name] = described.reason
            if described.usable:
                usable.append(f.name)
        else:
            columns.append(described)
    return columns, skipped, usable


def _image_alone(
    columns: list[FeatureColumn],
    image: FeatureColumn,
    skipped: dict[str, str],
    include: dict[str, list[str]],
    explicit: bool,
) -> list[FeatureColumn]:
    """An image column is used alone: the other columns join ``skipped`` (and ``include``); named together, an error."""
    if explicit:
        raise OptionError(
            f"image column '{image.name}' cannot be combined with other feature columns; pass it alone in --features."
        )
    others = [c.name for c in columns if c is not image]
    for name in others:
        skipped[name] = f"the image column '{image.name}' is used alone"
        include[name] = others  # the other columns, without the image
    return [image]


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
    """Write a numeric column into ``out`` (1-D view); return whether it had nulls (left as NaN).

    A text column (numbers stored as text, see :func:`plan_features`) is parsed first.
    """
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        parsed = _text_numbers(col)
        if parsed is None and col.null_count < len(col) and not _all_blank(col):
            raise DataError(f"column '{name}' holds text that is not a number near row {start}; fix or drop it.")
        col = pa.nulls(len(col), pa.float64()) if parsed is None else parsed
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
    source: pa.Table | pq.ParquetFile | DatasetSource,
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
    with atomic_path(output) as tmp:
        return _write_columns(source, tmp, added, keep=keep, batch_rows=batch_rows, progress=progress)


def _write_columns(
    source: pa.Table | pq.ParquetFile | DatasetSource,
    path: Path,
    added: pa.Table,
    *,
    keep: np.ndarray | None,
    batch_rows: int,
    progress: ProgressFn | None,
    done: int = 0,
    total: int | None = None,
) -> int:
    """Write ``source`` plus ``added`` to ``path`` (no renaming); progress counts from ``done`` of ``total``."""
    schema = source_schema(source)
    kept_names = [n for n in schema.names if n not in added.column_names]
    fields = [schema.field(n) for n in kept_names] + list(added.schema)
    out_schema = pa.schema(fields, metadata=schema.metadata)
    n = source_rows(source)
    total = n if total is None else total
    written = 0
    with pq.ParquetWriter(path, out_schema) as writer:
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
                progress("writing", done + start, total)
        if n == 0:
            writer.write_table(out_schema.empty_table())
    return written


def part_output_name(name: str) -> str:
    """The name ``--output-dir`` gives a part: the same, with a CSV part's ending made ``.parquet``.

    Examples
    --------
    >>> part_output_name("year=2024/part-0.parquet"), part_output_name("b.csv")
    ('year=2024/part-0.parquet', 'b.parquet')
    """
    lower = name.lower()
    for suffix in CSV_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)] + ".parquet"
    return name


def write_parts(
    source: DatasetSource,
    output_dir: str | os.PathLike,
    added: pa.Table,
    *,
    keep: np.ndarray | None = None,
    batch_rows: int = 16_384,
    progress: ProgressFn | None = None,
) -> list[tuple[Path, int]]:
    """Write one file per part of ``source`` below ``output_dir``, with the part's name and rows.

    Each file holds the part's own columns (the hive partition columns stay in the folder
    names, as in the input), unchanged, plus its rows of ``added``. All files are written
    to temporary files first and renamed into place only when every one is complete, so a
    failure leaves none of them (and no folder this call made). Returns ``(path, rows
    written)`` for each part.
    """
    root = Path(output_dir)
    targets = [root / part_output_name(p.name) for p in source.parts]
    made: list[Path] = []
    results: list[tuple[Path, int]] = []
    try:
        for target in targets:
            missing = [d for d in [target.parent, *target.parent.parents] if not d.exists()]
            for d in reversed(missing):
                d.mkdir()
                made.append(d)
        with contextlib.ExitStack() as stack:
            start = 0
            for i, (part, target) in enumerate(zip(source.parts, targets, strict=True)):
                tmp = stack.enter_context(atomic_path(target))
                rows = slice(start, start + part.rows)
                written = _write_columns(
                    source.part(i, file_columns=True),
                    tmp,
                    added.slice(start, part.rows),
                    keep=None if keep is None else keep[rows],
                    batch_rows=batch_rows,
                    progress=progress,
                    done=start,
                    total=source.num_rows,
                )
                results.append((target, written))
                start += part.rows
    except BaseException:
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    return results
