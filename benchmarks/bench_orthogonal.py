"""What does an orthogonal kernel cost as it grows, and what does method="cholesky_qr2" buy?

For square (n, n) and tall (4n, n) float32 kernels (an MLP's (4d, d) down-projection is
tall; its (d, 4d) up-projection is the transpose, the same cost): the jitted time of
``jax.nn.initializers.orthogonal``, ``jaxinit.orthogonal()`` (Householder QR, the same
values as jax), ``jaxinit.orthogonal(method="cholesky_qr2")`` and ``torch.nn.init
.orthogonal_``; the orthogonality error max|Q^T Q - I| of both jaxinit methods; and how
often CholeskyQR2 had to fall back to Householder QR over ``--draws`` keys (square
float32 draws are ill-conditioned, cond ~ n, so large ones sometimes do).

Medians of ``--repeats`` timed calls after a warm-up, each ended with block_until_ready.
QR on CPU runs in LAPACK (OpenBLAS): see benchmarks/README.md on OPENBLAS_NUM_THREADS.

    python benchmarks/bench_orthogonal.py                  # n = 128 ... 4096
    python benchmarks/bench_orthogonal.py --quick          # n = 128 ... 1024
    python benchmarks/bench_orthogonal.py --sizes 1024,8192,16384   # e.g. on a GPU
"""

from __future__ import annotations

import argparse
import os
import platform

import jax
import jax.numpy as jnp
import numpy as np
from timing import median_seconds

import jaxinit
from jaxinit._src.schemes.orthogonal import cholesky_qr2


def torch_seconds(shape: tuple[int, int], repeats: int) -> float | None:
    try:
        import torch
    except ImportError:
        return None
    w = torch.empty(shape[1], shape[0])  # torch's (out, in) layout of a Flax (in, out) kernel
    return median_seconds(lambda: torch.nn.init.orthogonal_(w), repeats)


def orthogonality_error(q: jax.Array) -> float:
    q64 = np.asarray(q, np.float64)
    rows, cols = q64.shape
    gram = q64.T @ q64 if rows >= cols else q64 @ q64.T
    return float(np.abs(gram - np.eye(min(rows, cols))).max())


def fallback_rate(shape: tuple[int, int], draws: int) -> str:
    tall = (max(shape), min(shape))
    ok = jax.jit(lambda k: cholesky_qr2(jax.random.normal(k, tall, jnp.float32))[1])
    flags = [bool(ok(jax.random.key(seed))) for seed in range(draws)]
    return f"{flags.count(False)}/{draws}"


def row(shape: tuple[int, int], repeats: int, draws: int) -> str:
    key = jax.random.key(0)
    inits = {
        "jax": jax.nn.initializers.orthogonal(),
        "qr": jaxinit.orthogonal(),
        "cholesky_qr2": jaxinit.orthogonal(method="cholesky_qr2"),
    }
    fns = {n: jax.jit(lambda k, i=init: i(k, shape, jnp.float32)) for n, init in inits.items()}
    # Big QRs take seconds on CPU: fewer repeats there.
    n = max(1, repeats // 3) if max(shape) >= 2048 else repeats
    t = {name: median_seconds(lambda f=fn: f(key), n) for name, fn in fns.items()}
    t_torch = torch_seconds(shape, n)
    err_qr = orthogonality_error(fns["qr"](key))
    err_cq = orthogonality_error(fns["cholesky_qr2"](key))
    torch_cell = "n/a" if t_torch is None else f"{t_torch * 1e3:.1f}"
    return (
        f"| {shape} | {t['jax'] * 1e3:.1f} | {t['qr'] * 1e3:.1f} | "
        f"{t['cholesky_qr2'] * 1e3:.1f} | {t['qr'] / t['jax']:.2f} | "
        f"{t['cholesky_qr2'] / t['qr']:.2f} | {torch_cell} | {err_qr:.1e} | {err_cq:.1e} | "
        f"{fallback_rate(shape, draws)} |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,256,512,1024,2048,4096")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--draws", type=int, default=8, help="keys for the fallback rate")
    parser.add_argument("--quick", action="store_true", help="sizes up to 1024, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.draws = "128,256,512,1024", 3, 4
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"# Orthogonal float32, jitted: jax {jax.__version__} on {jax.default_backend()} "
        f"({jax.devices()[0].device_kind}), {platform.processor() or platform.machine()}, "
        f"load average {os.getloadavg()[0]:.2f}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}\n"
    )
    print(
        "| shape | jax (ms) | jaxinit qr (ms) | jaxinit cholesky_qr2 (ms) | qr / jax "
        "| cholesky_qr2 / qr | torch (ms) | max abs(QᵀQ - I), qr | same, cholesky_qr2 "
        "| cholesky_qr2 fallbacks |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for shape in ((n, n), (4 * n, n)):
            print(row(shape, args.repeats, args.draws), flush=True)


if __name__ == "__main__":
    main()
