"""Loading a 1 GB safetensors checkpoint: time and peak memory.

Question: what does `jaxinit.load_pretrained` into an abstract target (only the loaded
leaves are created, each in its target sharding, validated first) cost against the usual
`safetensors.flax.load_file` + manual assignment into the parameter tree?

Each measurement runs in a fresh subprocess so its peak RSS (VmHWM from /proc on Linux,
else `resource.getrusage`) is its own; the table shows the median over repeats of wall
time and of peak RSS above the RSS after imports. The file (16 float32 tensors of
4096 x 4096 = 1 GiB) is written to /tmp once and read once before timing, so every run
reads from the page cache.

    python benchmarks/bench_pretrained_load.py [--repeats 3] [--path /tmp/jaxinit_1gb.safetensors]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys

N_TENSORS, ROWS, COLS = 16, 4096, 4096  # 16 * 4096 * 4096 * 4 bytes = 1 GiB

REPO = pathlib.Path(__file__).resolve().parent.parent
CHILD = r"""
import json, sys, time
import jax, numpy as np
method, path = sys.argv[1], sys.argv[2]
import jaxinit, safetensors.flax
names = [f"layer_{{i}}/kernel" for i in range({n})]
from benchmarks.timing import peak_rss_mb as rss_mb
abstract = {{name.split("/")[0]: {{"kernel": jax.ShapeDtypeStruct(({rows}, {cols}), np.float32)}}
            for name in names}}
base = rss_mb()
start = time.perf_counter()
if method == "jaxinit":
    params, report = jaxinit.load_pretrained(abstract, path, on_unexpected="error")
else:  # load everything, then assign each leaf by hand (checking shapes as one should)
    loaded = safetensors.flax.load_file(path)
    params = {{}}
    for name in names:
        layer = name.split("/")[0]
        assert loaded[name].shape == abstract[layer]["kernel"].shape
        params[layer] = {{"kernel": loaded[name]}}
    del loaded
jax.block_until_ready(params)
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "peak_mb": rss_mb(), "base_mb": base}}))
"""


def write_file(path: pathlib.Path) -> None:
    import numpy as np
    import safetensors.numpy

    if path.exists() and path.stat().st_size > N_TENSORS * ROWS * COLS * 4:
        return
    rng = np.random.default_rng(0)
    arrays = {f"layer_{i}/kernel": rng.standard_normal((ROWS, COLS), np.float32)
              for i in range(N_TENSORS)}
    safetensors.numpy.save_file(arrays, str(path))


def run(method: str, path: pathlib.Path) -> dict[str, float]:
    code = CHILD.format(n=N_TENSORS, rows=ROWS, cols=COLS)
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the child imports benchmarks.timing
    out = subprocess.run([sys.executable, "-c", code, method, str(path)], check=True,
                         capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--path", default="/tmp/jaxinit_1gb.safetensors")
    args = parser.parse_args()
    path = pathlib.Path(args.path)
    write_file(path)
    with open(path, "rb") as f:  # warm the page cache without growing this process
        while f.read(1 << 24):
            pass
    size_gb = path.stat().st_size / 2**30
    rows = {}
    for method in ("safetensors.flax.load_file + assign", "jaxinit.load_pretrained"):
        key = "jaxinit" if method.startswith("jaxinit") else "baseline"
        runs = [run(key, path) for _ in range(args.repeats)]
        rows[method] = (statistics.median(r["seconds"] for r in runs),
                        statistics.median(r["peak_mb"] - r["base_mb"] for r in runs),
                        statistics.median(r["peak_mb"] for r in runs))
    base_s, base_mb, _ = rows["safetensors.flax.load_file + assign"]
    print(f"{size_gb:.2f} GiB safetensors, {args.repeats} runs each (medians)\n")
    print("| method | time (s) | time ratio | peak RSS above imports (MB) | memory ratio "
          "| peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for method, (seconds, extra_mb, peak_mb) in rows.items():
        print(f"| {method} | {seconds:.2f} | {seconds / base_s:.2f} | {extra_mb:.0f} | "
              f"{extra_mb / base_mb:.2f} | {peak_mb:.0f} |")


if __name__ == "__main__":
    main()
