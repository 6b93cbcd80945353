"""How long a command-line run takes, per data kind and size: the table users plan with.

``python -m benchmarks.cli_timing [--sizes 1000,10000,100000] [--doc]`` makes synthetic parquet
files of three kinds — a table (20 numbers and 3 text categories, 5 % nulls), vector rows (a
128-float embedding column) and images (28×28 PNG bytes) — runs ``labelclean filter`` and
``labelclean selftrain`` (10 % of the labels kept) on each in a fresh process with the
defaults and ``--seed 0``, and records the wall-clock seconds, the reading and training
seconds the command reports and the peak memory of the process. Labels have 20 % flipped
(filter) on a learnable rule, so the run does real work. Results are appended as JSON lines
to ``benchmarks/raw/cli_timing_<date>.jsonl``; ``--doc`` writes the table into
``docs/benchmarks.md`` between ``<!-- timing:begin -->`` and ``<!-- timing:end -->``.

The run holds the machine's benchmark lock (:func:`benchmarks.real_suite.bench_lock`) and
records the load average before and after each command.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.real_suite import REPO, bench_lock

BEGIN, END = "<!-- timing:begin -->", "<!-- timing:end -->"
KINDS = ("table", "vectors", "images")
#: Images stop at this many rows by default: a CPU run of the image networks beyond it is long.
IMAGE_MAX_ROWS = 10_000


def make_table(kind: str, n: int, *, labeled: float = 1.0, seed: int = 0) -> pa.Table:
    """``n`` rows of ``kind`` with a learnable 5-class label, 20 % flipped (or ``1 - labeled`` null)."""
    rng = np.random.default_rng(seed)
    k = 5
    y = rng.integers(0, k, n)
    centers = rng.normal(size=(k, 128)).astype(np.float32)
    z = centers[y] + rng.normal(scale=1.5, size=(n, 128)).astype(np.float32)
    cols: dict[str, Any] = {"id": np.arange(n)}
    if kind == "table":
        for j in range(20):
            col = z[:, j]
            cols[f"x{j}"] = pa.array(col, mask=rng.random(n) < 0.05)
        for j in range(3):
            cats = np.array(["a", "b", "c", "d"])[np.clip(((z[:, 20 + j] + 2) // 1).astype(int), 0, 3)]
            cols[f"c{j}"] = pa.array(cats.tolist(), type=pa.string())
    elif kind == "vectors":
        cols["emb"] = pa.FixedSizeListArray.from_arrays(pa.array(z.ravel()), 128)
    else:
        from PIL import Image

        pics = np.clip(z[:, :49].reshape(n, 7, 7) * 40 + 128, 0, 255).astype(np.uint8)

        def png(a: np.ndarray) -> bytes:
            buf = io.BytesIO()
            Image.fromarray(np.kron(a, np.ones((4, 4), dtype=np.uint8)), mode="L").save(buf, format="PNG")
            return buf.getvalue()

        cols["image"] = pa.array([png(a) for a in pics], type=pa.binary())
    flip = rng.random(n) < 0.2
    given = np.where(flip, (y + rng.integers(1, k, n)) % k, y)
    keep = rng.random(n) < labeled
    cols["label"] = pa.array(given, mask=~keep) if labeled < 1.0 else pa.array(given)
    return pa.table(cols)


#: Runs ``labelclean`` as its only child, so its peak RSS is the command's own.
WRAPPER = (
    "import resource, subprocess, sys\n"
    "p = subprocess.run([sys.executable, '-m', 'labelclean', *sys.argv[1:]], capture_output=True, text=True)\n"
    "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr)\n"
    "print('@@rss', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(p.returncode)\n"
)


def run_command(args: list[str]) -> dict[str, Any]:
    """Run ``labelclean ARGS --json -q`` in a fresh process: seconds, peak memory and the summary's figures."""
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *args, "--json", "-q"], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"labelclean {' '.join(args)} failed: {proc.stderr.strip()}")
    lines = proc.stdout.strip().splitlines()
    rss_kb = int(next(x for x in lines if x.startswith("@@rss")).split()[1])
    summary = json.loads(next(x for x in reversed(lines) if x.startswith("{")))
    return {
        "seconds": seconds,
        "peak_rss_mb": rss_kb / 1024,
        "read_seconds": summary.get("read_seconds"),
        "fit_seconds": summary.get("fit_seconds"),
        "flagged_fraction": summary.get("flagged_fraction"),
        "loadavg_before_after": [load, os.getloadavg()[0]],
    }


def measure(kinds: list[str], sizes: list[int], out: Path, workdir: Path) -> list[dict[str, Any]]:
    records = []
    for kind in kinds:
        for n in sizes:
            if kind == "images" and n > IMAGE_MAX_ROWS:
                continue
            for command, labeled in (("filter", 1.0), ("selftrain", 0.1)):
                src = workdir / f"{kind}_{n}_{command}.parquet"
                pq.write_table(make_table(kind, n, labeled=labeled), src)
                args = [command, str(src), "--seed", "0", "--force", "-o", str(workdir / "out.parquet")]
                rec = run_command(args)
                rec.update(kind=kind, rows=n, command=command, file_mb=src.stat().st_size / 2**20)
                print(
                    f"{kind:8s} {n:>8,d} {command:9s} {rec['seconds']:7.1f} s  {rec['peak_rss_mb']:7.0f} MB  "
                    f"load {rec['loadavg_before_after'][0]:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
                records.append(rec)
                with out.open("a") as fh:
                    fh.write(json.dumps(rec) + "\n")
    return records


def table_markdown(records: list[dict[str, Any]]) -> str:
    cores = os.cpu_count()
    loads = [r["loadavg_before_after"][0] for r in records if r.get("loadavg_before_after")]
    lines = [
        f"Wall-clock seconds of one `labelclean` run with the defaults and `--seed 0` on this {cores}-core "
        "CPU machine (fresh process, so the import of PyTorch is included), and the peak memory of the "
        "process. Written by `python -m benchmarks.cli_timing --doc`"
        + (f"; load average before each run {min(loads):.2f}–{max(loads):.2f}." if loads else "."),
        "",
        "| data | rows | command | seconds | of which training | peak memory |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    names = {"table": "table (20 numbers, 3 categories)", "vectors": "vectors (128 floats)", "images": "images 28×28"}
    for r in records:
        lines.append(
            f"| {names[r['kind']]} | {r['rows']:,} | `{r['command']}` | {r['seconds']:.0f} | "
            f"{r['fit_seconds']:.0f} | {r['peak_rss_mb']:,.0f} MB |"
        )
    return "\n".join(lines)


def write_doc(text: str, doc: Path) -> None:
    from benchmarks.tables import replace_region_at_end

    doc.write_text(replace_region_at_end(doc.read_text(), text, BEGIN, END, heading="## How long a run takes"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--doc", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    out = args.out or REPO / "benchmarks" / "raw" / f"cli_timing_{time.strftime('%Y-%m-%d')}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with bench_lock(), tempfile.TemporaryDirectory() as tmp:
        records = measure(args.kinds.split(","), sizes, out, Path(tmp))
    text = table_markdown(records)
    print(text)
    if args.doc:
        write_doc(text, REPO / "docs" / "benchmarks.md")


if __name__ == "__main__":
    main()
