"""Peak memory of reading a large parquet file (and optionally of a whole ``labelclean filter`` run).

Writes a parquet file of N rows (default 1,000,000) with a W-wide (default 128) float32
embedding column (``list<float>``, or ``fixed_size_list<float, W>`` with ``--fixed-size``),
an int64 ``id`` and an int64 ``label`` (10 classes); then, each in a fresh subprocess,
measures the peak resident memory (``ru_maxrss``) of

* ``baseline`` — importing labelclean (Python, NumPy, pyarrow, torch) and nothing else;
* ``read``     — opening the file, detecting the columns and streaming the features into
  the float32 matrix (``labelclean.io``);
* ``filter``   — ``labelclean filter FILE --epochs 1`` end to end (read, train, write), with ``--filter``.

and compares each with the size of the float32 feature matrix (N × 128 × 4 bytes).

Run (the CPU is shared, so take the lock):

    flock /tmp/labelclean-bench.lock python benchmarks/bench_io_memory.py --filter

The 2,000,000 × 64 run of ``docs/benchmarks.md`` (fixed-size-list column; ``labelclean filter``
with its defaults, noise-rate estimation included, apart from one epoch per stage and
batches of 2,048 rows, as in the 1,000,000-row run):

    flock /tmp/labelclean-bench.lock python benchmarks/bench_io_memory.py --rows 2000000 --width 64 \
        --fixed-size --filter --filter-args="--epochs 1 --seed 0 --param refine_epochs=1 --param batch_size=2048"
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

WIDTH = 128
#: Options of the measured ``labelclean filter`` run (``--filter-args`` replaces them).
FILTER_ARGS = "--epochs 1 --noise-rate 0.2 --seed 0 --param batch_size=2048"


def write_file(
    path: Path, n_rows: int, chunk: int = 100_000, row_group: int = 131_072, width: int = WIDTH, fixed: bool = False
) -> None:
    """Write the test file chunk by chunk (generation itself stays small in memory)."""
    rng = np.random.default_rng(0)
    emb_type = pa.list_(pa.float32(), width) if fixed else pa.list_(pa.float32())
    schema = pa.schema([("id", pa.int64()), ("emb", emb_type), ("label", pa.int64())])
    with pq.ParquetWriter(path, schema) as writer:
        buffered: list[pa.Table] = []
        rows = 0
        for start in range(0, n_rows, chunk):
            m = min(chunk, n_rows - start)
            y = rng.integers(0, 10, m)
            emb = rng.standard_normal((m, width), dtype=np.float32)
            emb[np.arange(m), y % width] += 3.0
            if fixed:
                lists = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), width)
            else:
                offsets = pa.array(np.arange(0, (m + 1) * width, width, dtype=np.int32))
                lists = pa.ListArray.from_arrays(offsets, pa.array(emb.ravel()))
            buffered.append(pa.table([pa.array(np.arange(start, start + m)), lists, pa.array(y)], schema=schema))
            rows += m
            if rows >= row_group or start + m >= n_rows:
                writer.write_table(pa.concat_tables(buffered), row_group_size=row_group)
                buffered, rows = [], 0


def child(mode: str, path: str, out: str, filter_args: str = FILTER_ARGS) -> None:
    """Runs in the measured subprocess; prints one JSON line."""
    import torch

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    info: dict = {}
    if mode == "read":
        from labelclean.io import open_parquet, plan_features, read_features

        pf = open_parquet(path)
        plan = plan_features(pf, label="label")
        X = read_features(pf, plan)
        info = {"shape": list(X.shape), "dtype": str(X.dtype), "features": plan.names}
    elif mode == "filter":
        from labelclean.cli import cli

        args = ["filter", path, "-o", out, "--force", "--quiet", *filter_args.split()]
        code = cli.main(args, standalone_mode=False)
        info = {"exit_code": code, "rows_written": pq.ParquetFile(out).metadata.num_rows}
    else:
        import labelclean.api  # noqa: F401
        import labelclean.cli  # noqa: F401
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"mode": mode, "peak_bytes": peak, "seconds": seconds, **info}))


def measure(mode: str, path: Path, out: Path, filter_args: str = FILTER_ARGS) -> dict:
    res = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), str(out), filter_args],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--width", type=int, default=WIDTH, help="embedding width")
    parser.add_argument("--fixed-size", action="store_true", help="fixed_size_list<float, W> instead of list<float>")
    parser.add_argument("--filter-args", default=FILTER_ARGS, help="options of the measured filter run")
    parser.add_argument("--filter", action="store_true", help="also measure a full `labelclean filter --epochs 1`")
    parser.add_argument("--keep", default=None, help="folder for the test file (default: a temporary one)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    folder = Path(args.keep or tempfile.mkdtemp(prefix="labelclean-bench-"))
    kind = "fixed" if args.fixed_size else "list"
    path, out = folder / f"emb_{args.rows}x{args.width}_{kind}.parquet", folder / "out.parquet"
    if not path.exists():
        t0 = time.perf_counter()
        write_file(path, args.rows, width=args.width, fixed=args.fixed_size)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s")
    matrix = args.rows * args.width * 4
    print(f"float32 feature matrix: {args.rows:,} x {args.width} = {matrix / 2**20:.0f} MiB")
    if args.filter:
        print(f"filter run: labelclean filter {path.name} -o out.parquet --force --quiet {args.filter_args}")
    modes = ["baseline", "read"] + (["filter"] if args.filter else [])
    results = {}
    for mode in modes:
        r = measure(mode, path, out, args.filter_args)
        results[mode] = r
        base = results["baseline"]["peak_bytes"]
        extra = "" if mode == "baseline" else f", above baseline {(r['peak_bytes'] - base) / matrix:.2f}x"
        print(
            f"{mode:9s} peak RSS {r['peak_bytes'] / 2**20:7.0f} MiB = {r['peak_bytes'] / matrix:.2f}x the matrix"
            f"{extra}; {r['seconds']:.1f} s"
        )
    print(json.dumps(results))
    if not args.keep:
        for p in (path, out):
            if p.exists():
                os.remove(p)
        os.rmdir(folder)


if __name__ == "__main__":
    main()
