"""What the benchmarks measure with: the median wall time of a JAX computation, and a
process's peak resident memory.

Imported as ``timing`` by the benchmark scripts (run as ``python benchmarks/NAME.py``,
their folder is on ``sys.path``) and as ``benchmarks.timing`` by the subprocesses they
start with the repository on ``PYTHONPATH``.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable

import jax


def median_seconds(fn: Callable[[], object], repeats: int, *, warmup: bool = True) -> float:
    """Median over `repeats` calls of ``fn()`` waited on with ``jax.block_until_ready``,
    after one warm-up call (compilation, caches) unless the caller has made it."""
    if warmup:
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb() -> float:
    """This process's peak RSS in MiB: VmHWM from /proc on Linux. (``ru_maxrss`` would do
    on a fresh process, but Linux carries it across fork+exec from the parent, which may
    have touched the benchmark's files; it is the fallback elsewhere.)"""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
