"""What the suite ran on: the machine, the library versions, and the machine's matrix-multiply peak."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

LIBRARIES = ("labelclean", "torch", "numpy", "scikit-learn", "cleanlab", "skorch", "pulearn")


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gib() -> float | None:
    """Total memory in GiB from ``/proc/meminfo``, or None where that file does not exist."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def git_revision(repo: Path) -> str:
    """``<short hash>`` of ``HEAD``, with ``+dirty`` when tracked files under ``labelclean/`` differ from it."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "labelclean"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def versions() -> dict[str, str]:
    """Installed version of each library the suite compares or runs on (``"not installed"`` if absent)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def describe(threads: int, repo: Path) -> dict:
    """The machine, as recorded next to every result: CPU, cores, memory, torch threads, GPU, versions."""
    import torch

    ram = ram_gib()
    return {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "ram_gib": None if ram is None else round(ram, 1),
        "torch_threads": threads,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
        "labelclean_revision": git_revision(repo),
    }


def matmul_peak_gflops(threads: int, sizes: tuple[int, ...] = (1024, 2048, 3072), repeats: int = 3) -> dict:
    """Best float32 ``torch.mm`` throughput of this machine on ``threads`` torch threads, in GFLOP/s.

    Each size ``n`` multiplies two random ``n × n`` float32 matrices (``2 n³`` floating-point
    operations) ``repeats`` times after one warm-up; the best single time over all sizes and
    repeats is the peak.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        best: dict[int, float] = {}
        gen = torch.Generator().manual_seed(0)
        for n in sizes:
            a = torch.randn(n, n, generator=gen)
            b = torch.randn(n, n, generator=gen)
            torch.mm(a, b)  # warm-up: thread pool, caches
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                torch.mm(a, b)
                times.append(time.perf_counter() - t0)
            best[n] = 2 * n**3 / min(times) / 1e9
    finally:
        torch.set_num_threads(previous)
    return {"gflops": max(best.values()), "by_size": {str(k): v for k, v in best.items()}, "threads": threads}
