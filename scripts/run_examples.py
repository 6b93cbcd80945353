"""Run every script in examples/ and print (or, with --write, save) what each printed.

    python scripts/run_examples.py            # run them all, show output and seconds
    python scripts/run_examples.py --write    # also save the output to docs/outputs/NAME.txt
    python scripts/run_examples.py pipeline   # only the named examples

The documentation shows each example's code (included from examples/) next to its saved
output; rerun with --write after a change that moves the figures (a new default, say).
Each script runs in a fresh process with torch on one thread, against this checkout.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
OUTPUTS = ROOT / "docs" / "outputs"


def example_env() -> dict[str, str]:
    """The environment examples run in: this checkout first on the path, one thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    return env


def run_example(path: Path, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(path)], cwd=ROOT, env=example_env(), capture_output=True, text=True, timeout=timeout
    )
    return proc, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="example names (file names without .py); default: all")
    parser.add_argument("--write", action="store_true", help="save each output to docs/outputs/NAME.txt")
    args = parser.parse_args()
    paths = sorted(EXAMPLES.glob("*.py"))
    if args.names:
        paths = [p for p in paths if p.stem in args.names]
    failed = 0
    for path in paths:
        proc, seconds = run_example(path)
        print(f"== {path.name} ({seconds:.1f} s, exit {proc.returncode})")
        print(proc.stdout, end="")
        if proc.returncode != 0:
            failed += 1
            print(proc.stderr, file=sys.stderr)
        elif args.write:
            OUTPUTS.mkdir(parents=True, exist_ok=True)
            (OUTPUTS / f"{path.stem}.txt").write_text(proc.stdout)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
