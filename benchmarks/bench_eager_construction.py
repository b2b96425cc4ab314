"""How fast is eager nnx model construction with one fresh initializer per layer?

An nnx model is built eagerly by default: each ``nnx.Linear`` calls its ``kernel_init``
outside any jit. ``jax.nn.initializers`` runs the sampling code op by op each time; a
jaxinit initializer is a frozen, hashable value, so every call with an equal
configuration, shape and dtype dispatches one cached compiled executable
(``jaxinit._src.core.base.compiled``). The model: an MLP of ``--layers`` Linear layers of
``--width`` x ``--width``, each with a fresh ``jaxinit.orthogonal()`` (or ``he_normal()``)
instance, against the same model with ``jax.nn.initializers``.

Each (initializer, library) pair runs in a fresh subprocess, so the "cold" column (the
first construction in a new process: tracing, compiling, dispatch) is honest; "warm" is
the median of ``--repeats`` further constructions in that process, each ended with
``block_until_ready`` on every parameter. The compile-cache columns read
``compiled.cache_info()`` after the cold build and after all warm builds: misses must not
grow after the first build.

    python benchmarks/bench_eager_construction.py             # 48 layers of 256x256
    python benchmarks/bench_eager_construction.py --quick     # 8 layers, 1 repeat
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
CHILD = r"""
import json, statistics, sys, time
import jax
from flax import nnx
import jaxinit
from jaxinit._src.core import base

from benchmarks.timing import median_seconds

library, scheme, layers, width, repeats = sys.argv[1:6]
layers, width, repeats = int(layers), int(width), int(repeats)

def make_init():
    if library == "jaxinit":
        return getattr(jaxinit, scheme)()          # a fresh instance per layer
    return getattr(jax.nn.initializers, scheme)()

class MLP(nnx.Module):
    def __init__(self, rngs):
        self.layers = nnx.List(
            [nnx.Linear(width, width, kernel_init=make_init(), rngs=rngs) for _ in range(layers)]
        )

def build():
    start = time.perf_counter()
    model = MLP(nnx.Rngs(0))
    jax.block_until_ready(nnx.state(model))
    return time.perf_counter() - start, model

base.compiled.cache_clear()
cold, model = build()
after_cold = base.compiled.cache_info()
warm = [build()[0] for _ in range(repeats)]
after_warm = base.compiled.cache_info()
kernel = model.layers[0].kernel[...]

init, key, shape = make_init(), jax.random.key(1), (width, width)
jitted = jax.jit(lambda k: init(k, shape, jax.numpy.float32))
call_ms = median_seconds(lambda: init(key, shape, jax.numpy.float32), 20) * 1e3
jit_ms = median_seconds(lambda: jitted(key), 20) * 1e3
print(json.dumps({
    "call_ms": call_ms, "jit_ms": jit_ms,
    "cold": cold, "warm": statistics.median(warm),
    "misses_cold": after_cold.misses, "hits_cold": after_cold.hits,
    "misses_warm": after_warm.misses - after_cold.misses,
    "hits_warm": after_warm.hits - after_cold.hits,
    "shape": list(kernel.shape),
}))
"""


def run(
    library: str, scheme: str, layers: int, width: int, repeats: int, blas_threads: int | None
) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the child imports benchmarks.timing
    if blas_threads is not None:
        env["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, library, scheme, str(layers), str(width), str(repeats)],
        check=True, capture_output=True, text=True, env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=48)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="warm constructions per median")
    parser.add_argument("--schemes", default="orthogonal,he_normal")
    parser.add_argument("--quick", action="store_true", help="8 layers, 1 warm repeat")
    parser.add_argument(
        "--blas-threads", type=int, default=None,
        help="OPENBLAS_NUM_THREADS for the children (default: inherited); see README",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.layers, args.repeats = 8, 1
    import jax

    blas = args.blas_threads or os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(
        f"# Eager nnx construction: {args.layers} Linear layers of {args.width}x{args.width}, "
        f"jax {jax.__version__} on {jax.default_backend()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}, OPENBLAS_NUM_THREADS={blas}\n"
    )
    print(
        "| kernel_init | jax cold (s) | jaxinit cold (s) | cold speed-up | jax warm (s) "
        "| jaxinit warm (s) | warm speed-up | jaxinit compiles (cold / warm) "
        "| jaxinit cache hits (cold / warm) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = {}
    for scheme in args.schemes.split(","):
        theirs, ours = (
            run(lib, scheme, args.layers, args.width, args.repeats, args.blas_threads)
            for lib in ("jax", "jaxinit")
        )
        results[scheme] = theirs, ours
        print(
            f"| {scheme} | {theirs['cold']:.3f} | {ours['cold']:.3f} | "
            f"{theirs['cold'] / ours['cold']:.1f}x | {theirs['warm']:.3f} | {ours['warm']:.3f} | "
            f"{theirs['warm'] / ours['warm']:.1f}x | "
            f"{ours['misses_cold']} / {ours['misses_warm']} | "
            f"{ours['hits_cold']} / {ours['hits_warm']} |"
        )
    print(
        "\n| kernel_init | one eager call, jax (ms) | one eager call, jaxinit (ms) "
        "| jitted call, jax (ms) | jitted call, jaxinit (ms) |\n|---|---:|---:|---:|---:|"
    )
    for scheme, (theirs, ours) in results.items():
        print(
            f"| {scheme} {args.width}x{args.width} | {theirs['call_ms']:.2f} | "
            f"{ours['call_ms']:.2f} | {theirs['jit_ms']:.2f} | {ours['jit_ms']:.2f} |"
        )
    print(
        "\nspeed-up = jax.nn.initializers time / jaxinit time (higher is better). "
        "'compiles' are compile-cache misses of jaxinit's eager executables: one per "
        "(configuration, shape, dtype) on the cold build, none on the warm builds."
    )


if __name__ == "__main__":
    main()
