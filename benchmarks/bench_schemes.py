"""How fast is each scheme, jitted and eager, against jax.nn.initializers and torch.nn.init?

Jitted: one (size x size) kernel per call, float32 and bfloat16 (jaxinit samples bfloat16
in float32 and casts; jax samples it directly, with the statistics defects that causes).
Elementwise schemes also report the bytes they write per second and that rate as a
fraction of a jitted fill of the same array (write-only, so the device's practical write
bandwidth). Eager: the latency of one call outside jit at small sizes, where dispatch
dominates.
Every time is the median of `--repeats` runs after a warm-up call, each ended with
`block_until_ready`; ratios compare numbers measured in this same run.

    python benchmarks/bench_schemes.py            # 4096x4096, the table in README.md
    python benchmarks/bench_schemes.py --size 512 --repeats 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

import jaxinit

SCHEMES = [
    "normal",
    "uniform",
    "truncated_normal",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
]


def medians(fns: list[Callable[[], object] | None], repeats: int) -> list[float | None]:
    """Median wall time of each `fn()` after a warm-up call, the calls interleaved round by
    round so that a change in machine load hits every contender alike. None for a missing
    `fn` or one that fails (jax.nn.initializers.orthogonal has no bfloat16 QR on CPU)."""
    live: list[Callable[[], object] | None] = []
    for fn in fns:
        try:
            if fn is not None:
                jax.block_until_ready(fn())  # warm-up: compile, fill caches
            live.append(fn)
        except Exception as error:  # a baseline that cannot run is reported, not fatal
            print(f"  ({error.__class__.__name__}: {str(error).splitlines()[0][:80]})")
            live.append(None)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, spent in zip(live, times, strict=True):
            if fn is not None:
                start = time.perf_counter()
                jax.block_until_ready(fn())
                spent.append(time.perf_counter() - start)
    return [statistics.median(t) if t else None for t in times]


def cell(seconds: float | None, unit: float) -> str:
    return "fails" if seconds is None else f"{seconds * unit:.1f}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None else f"{a / b:.2f}"


def torch_init(name: str, size: int, dtype: str) -> Callable[[], object] | None:
    try:
        import torch
    except ImportError:
        return None
    w = torch.empty(size, size, dtype={"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype])
    nn = torch.nn.init
    fns: dict[str, Callable[[], object]] = {
        "normal": lambda: nn.normal_(w, 0, 0.02),
        "uniform": lambda: nn.uniform_(w, 0, 0.1),
        "truncated_normal": lambda: nn.trunc_normal_(w, 0, 0.02, -0.04, 0.04),
        "glorot_uniform": lambda: nn.xavier_uniform_(w),
        "glorot_normal": lambda: nn.xavier_normal_(w),
        "he_uniform": lambda: nn.kaiming_uniform_(w, nonlinearity="relu"),
        "he_normal": lambda: nn.kaiming_normal_(w, nonlinearity="relu"),
        # torch has no LeCun preset: Kaiming with gain 1 is Var = 1 / fan_in, untruncated.
        "lecun_uniform": lambda: nn.kaiming_uniform_(w, nonlinearity="linear"),
        "lecun_normal": lambda: nn.kaiming_normal_(w, nonlinearity="linear"),
        "orthogonal": lambda: nn.orthogonal_(w),
    }
    return fns[name]


def jitted_call(init: Callable, shape: tuple[int, ...], dtype: str) -> Callable[[], object]:
    fn, key = jax.jit(lambda k: init(k, shape, dtype)), jax.random.key(0)
    return lambda: fn(key)


def eager_call(init: Callable, shape: tuple[int, ...]) -> Callable[[], object]:
    key = jax.random.key(1)
    return lambda: init(key, shape, jnp.float32)


def pair(name: str) -> tuple[Callable, Callable]:
    args = {"normal": (0.02,), "uniform": (0.1,), "truncated_normal": (0.02,)}.get(name, ())
    return getattr(jaxinit, name)(*args), getattr(jax.nn.initializers, name)(*args)


def fill_call(shape: tuple[int, ...], dtype: str) -> Callable[[], object]:
    """The bandwidth reference: a jitted fill of the same array with a runtime scalar, which
    only writes the output, as an initializer does."""
    fn, value = jax.jit(lambda c: jnp.full(shape, c, dtype)), jnp.float32(0.5)
    return lambda: fn(value)


def bandwidth(nbytes: int, seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{nbytes / seconds / 1e9:.1f}"


def jitted_table(size: int, repeats: int) -> list[str]:
    rows = [
        "| scheme | dtype | jaxinit (ms) | jax (ms) | jaxinit / jax | torch (ms) "
        "| jaxinit / torch | jaxinit GB/s | of fill |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for dtype in ("float32", "bfloat16"):
        nbytes = size * size * jnp.dtype(dtype).itemsize
        (t_fill,) = medians([fill_call((size, size), dtype)], repeats)
        rows.append(
            f"| fill (reference) | {dtype} | {cell(t_fill, 1e3)} | | | | "
            f"| {bandwidth(nbytes, t_fill)} | 1.00 |"
        )
        for name in SCHEMES:
            ours, theirs = pair(name)
            # Orthogonal QR is O(n^3): fewer repeats keep the run short.
            n = max(1, repeats // 3) if name == "orthogonal" else repeats
            t_ours, t_jax, t_torch = medians(
                [
                    jitted_call(ours, (size, size), dtype),
                    jitted_call(theirs, (size, size), dtype),
                    torch_init(name, size, dtype),
                ],
                n,
            )
            rows.append(
                f"| {name} | {dtype} | {cell(t_ours, 1e3)} | {cell(t_jax, 1e3)} | "
                f"{ratio(t_ours, t_jax)} | {cell(t_torch, 1e3)} | {ratio(t_ours, t_torch)} "
                # Orthogonal is compute-bound (QR): bytes per second say nothing about it.
                + (
                    "| n/a | n/a |"
                    if name == "orthogonal"
                    else f"| {bandwidth(nbytes, t_ours)} | {ratio(t_fill, t_ours)} |"
                )
            )
    return rows


def eager_table(repeats: int) -> list[str]:
    rows = [
        "| scheme | shape | jaxinit eager (us) | jax eager (us) | jaxinit / jax |",
        "|---|---|---:|---:|---:|",
    ]
    cases = [
        ("he_normal", (64, 64)),
        ("glorot_uniform", (64, 64)),
        ("normal", (64, 64)),
        ("orthogonal", (64, 64)),
        ("he_normal", (512, 512)),
        ("orthogonal", (512, 512)),
    ]
    for name, shape in cases:
        ours, theirs = pair(name)
        t_ours, t_jax = medians([eager_call(ours, shape), eager_call(theirs, shape)], repeats * 10)
        rows.append(
            f"| {name} | {shape} | {cell(t_ours, 1e6)} | {cell(t_jax, 1e6)} | "
            f"{ratio(t_ours, t_jax)} |"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="kernel is size x size")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per median")
    args = parser.parse_args(argv)
    print(
        f"# jax {jax.__version__} on {jax.default_backend()} "
        f"({jax.devices()[0].device_kind}), {platform.processor() or platform.machine()}"
    )
    print(f"\n## Jitted, {args.size}x{args.size}, median of {args.repeats}\n")
    print("\n".join(jitted_table(args.size, args.repeats)))
    print(f"\n## Eager call latency, median of {args.repeats * 10}\n")
    print("\n".join(eager_table(args.repeats)))


if __name__ == "__main__":
    main()
