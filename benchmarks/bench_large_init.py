"""Initializing a ~1.2B-parameter tree under one jit: extra peak memory and time.

The tree: ``--layers`` blocks of width d = ``--width``, each with a (d, 3d) QKV kernel,
a (d, d) attention output, and (d, 4d), (4d, d) MLP kernels (12 d^2 parameters per
block: 6 x 12 x 4096^2 = 1.21e9 by default), all drawn with he_normal (a truncated
normal, the costliest elementwise sampler) inside one ``jax.jit``, once in float32 and
once in bfloat16, by

* ``jax.nn.initializers.he_normal()``,
* ``jaxinit.he_normal()`` with its fusible threefry bits disabled (jaxinit before this
  change: the same ``jax.random`` calls as jax, sampled in float32 and cast), and
* ``jaxinit.he_normal()``.

Each measurement runs alone in a fresh subprocess. Memory is the process's peak resident
set (VmHWM from /proc/self/status) minus its resident set after importing jax, building
the key and compiling the program, as a multiple of the parameter bytes: 1.00 is the
parameters themselves, anything above it is temporaries. XLA's own account of the
program (``compiled.memory_analysis()``: output and temporary buffer sizes) is shown
next to it. ``digest`` is a checksum of a strided subsample of every leaf: equal digests
for jax and jaxinit in float32 mean equal values (tests/test_threefry.py and
tests/test_parity.py check equality bit for bit at small sizes).

    python benchmarks/bench_large_init.py                  # 6 x 4096: 1.2B parameters
    python benchmarks/bench_large_init.py --quick          # 2 x 1024: 25M parameters
    python benchmarks/bench_large_init.py --layers 12 --width 8192   # e.g. a big GPU

On a GPU the subprocess reports the device's peak_bytes_in_use instead of host RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

CHILD = r"""
import json, sys, time
import jax, jax.numpy as jnp, numpy as np
import jaxinit
from jaxinit._src.core import threefry

library, dtype = sys.argv[1], jnp.dtype(sys.argv[2])
layers, width = int(sys.argv[3]), int(sys.argv[4])
if library == "jaxinit-unfused":
    threefry.fusible = lambda key: key
init = jax.nn.initializers.he_normal() if library == "jax" else jaxinit.he_normal()
d = width
shapes = {"qkv": (d, 3 * d), "out": (d, d), "up": (d, 4 * d), "down": (4 * d, d)}

def make(key):
    tree = {}
    for layer in range(layers):
        for i, (name, shape) in enumerate(shapes.items()):
            k = jax.random.fold_in(key, layer * len(shapes) + i)
            tree[f"layer_{layer}/{name}"] = init(k, shape, dtype)
    return tree

def vmhwm_bytes():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) * 1024

def rss_bytes():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) * 1024

key = jax.random.key(0)
start = time.perf_counter()
compiled = jax.jit(make).lower(key).compile()
compile_s = time.perf_counter() - start
analysis = compiled.memory_analysis()
device = jax.devices()[0]
gpu = device.platform != "cpu"
base = device.memory_stats()["peak_bytes_in_use"] if gpu else rss_bytes()
start = time.perf_counter()
tree = jax.block_until_ready(compiled(key))
run_s = time.perf_counter() - start
peak = device.memory_stats()["peak_bytes_in_use"] if gpu else vmhwm_bytes()
param_bytes = sum(x.nbytes for x in tree.values())
digest = sum(float(jnp.sum(x[::61, ::67].astype(jnp.float32), dtype=jnp.float32))
             for x in tree.values())
print(json.dumps({
    "params": sum(x.size for x in tree.values()), "param_bytes": param_bytes,
    "extra": (peak - base) / param_bytes, "peak_gb": peak / 1e9, "base_gb": base / 1e9,
    "xla_temp": analysis.temp_size_in_bytes / param_bytes if analysis else None,
    "xla_out": analysis.output_size_in_bytes / param_bytes if analysis else None,
    "compile_s": compile_s, "run_s": run_s, "digest": digest,
    "memory": "device" if gpu else "host RSS",
}))
"""

LIBRARIES = ["jax", "jaxinit-unfused", "jaxinit"]
LABELS = {
    "jax": "jax.nn.initializers",
    "jaxinit-unfused": "jaxinit, fused threefry off",
    "jaxinit": "jaxinit",
}


def run(library: str, dtype: str, layers: int, width: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, library, dtype, str(layers), str(width)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--quick", action="store_true", help="2 layers of width 1024")
    args = parser.parse_args(argv)
    if args.quick:
        args.layers, args.width = 2, 1024
    import jax

    n = args.layers * 12 * args.width**2
    print(
        f"# {n / 1e9:.3f}B parameters ({args.layers} blocks of d={args.width}) under one jit: "
        f"jax {jax.__version__} on {jax.default_backend()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    print(
        "| initializer | dtype | parameters (GB) | extra peak memory / parameter bytes "
        "| XLA temp buffers / parameter bytes | run (s) | compile (s) | digest |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for dtype in args.dtypes.split(","):
        for library in args.libraries.split(","):
            r = run(library, dtype, args.layers, args.width)
            temp = "n/a" if r["xla_temp"] is None else f"{r['xla_temp']:.2f}"
            print(
                f"| {LABELS[library]} | {dtype} | {r['param_bytes'] / 1e9:.2f} | "
                f"{r['extra']:.2f} | {temp} | {r['run_s']:.2f} | {r['compile_s']:.2f} | "
                f"{r['digest']:.6g} |",
                flush=True,
            )
    print(
        "\nextra peak memory: peak minus the level after imports, key and compilation "
        f"({r['memory']}); 1.00 = the parameters alone."
    )


if __name__ == "__main__":
    main()
