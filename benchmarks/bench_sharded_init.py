"""Initializing the 1.2B-parameter tree directly sharded over 8 devices.

The tree of bench_large_init.py (``--layers`` blocks of width d: (d, 3d) QKV, (d, d)
output, (d, 4d) up and (4d, d) down kernels; he_normal, float32) is drawn straight into
its sharding, never materialized whole on one device:

* ``fully sharded``: a mesh ("fsdp",) of 8 devices, every kernel split on its rows;
* ``2x4 mesh``: a mesh ("data", "model") of 2 x 4 devices, Megatron style: QKV and up
  kernels P("data", "model"), output and down kernels P("model", "data").

Each is produced two ways: one ``jax.jit(make, out_shardings=...)`` over the whole tree
(the initializers do not know about the mesh; XLA's SPMD partitioner gives each device
its indices), and, for jaxinit, one eager call per leaf with ``out_sharding=`` (one cached
executable per (configuration, shape, sharding)). Checks: per-device bytes (the largest
device's share of all leaves over total / 8: 1.00 is a perfect split), XLA's per-device
temporary buffers, a position-sensitive integer hash of every leaf's bits (uint32 sums
wrap, so the hash is exact whatever the reduction order or sharding) against the
single-device draw, and the time against the single-device draw.

Without 8 accelerators the script simulates 8 CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``, set before jax is imported); on
CPU they share the host's cores, so the time column shows the partitioning overhead, not
a speed-up.

    python benchmarks/bench_sharded_init.py            # 6 x 4096: 1.2B parameters
    python benchmarks/bench_sharded_init.py --quick    # 2 x 1024
"""

from __future__ import annotations

import os

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()

import argparse
import platform
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from timing import median_seconds

import jaxinit

KINDS = ("qkv", "out", "up", "down")


def shapes(layers: int, d: int) -> dict[str, tuple[int, int]]:
    per = {"qkv": (d, 3 * d), "out": (d, d), "up": (d, 4 * d), "down": (4 * d, d)}
    return {f"layer_{i}/{k}": per[k] for i in range(layers) for k in KINDS}


def make_fn(init: Callable, tree_shapes: dict[str, tuple[int, int]]) -> Callable:
    def make(key: jax.Array) -> dict[str, jax.Array]:
        return {
            name: init(jax.random.fold_in(key, i), shape, jnp.float32)
            for i, (name, shape) in enumerate(tree_shapes.items())
        }

    return make


def spec_tree(mesh_kind: str, tree_shapes: dict[str, tuple[int, int]]) -> dict[str, P]:
    if mesh_kind == "fully sharded":
        return {name: P("fsdp", None) for name in tree_shapes}
    column_parallel = {"qkv", "up"}
    return {
        name: P("data", "model") if name.split("/")[1] in column_parallel else P("model", "data")
        for name in tree_shapes
    }


def make_mesh(mesh_kind: str, devices: list) -> jax.sharding.Mesh:
    if mesh_kind == "fully sharded":
        return jax.sharding.Mesh(np.array(devices[:8]), ("fsdp",))
    return jax.sharding.Mesh(np.array(devices[:8]).reshape(2, 4), ("data", "model"))


@jax.jit
def bit_hash(x: jax.Array) -> jax.Array:
    """sum(bits(x)[i] * (2 i + 1)) mod 2**32: exact, order-free, position-sensitive."""
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32).reshape(-1)
    weights = jax.lax.iota(jnp.uint32, bits.size) * jnp.uint32(2) + jnp.uint32(1)
    return jnp.sum(bits * weights, dtype=jnp.uint32)


def tree_hash(tree: dict[str, jax.Array]) -> list[int]:
    return [int(bit_hash(tree[name])) for name in sorted(tree)]


def per_device_ratio(tree: dict[str, jax.Array], n_devices: int) -> float:
    per_device: dict[object, int] = {}
    for leaf in tree.values():
        for shard in leaf.addressable_shards:
            per_device[shard.device] = per_device.get(shard.device, 0) + shard.data.nbytes
    total = sum(leaf.nbytes for leaf in tree.values())
    return max(per_device.values()) / (total / n_devices)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 blocks of width 1024")
    args = parser.parse_args(argv)
    if args.quick:
        args.layers, args.width, args.repeats = 2, 1024, 2
    devices = jax.devices() if len(jax.devices()) >= 8 else jax.devices("cpu")
    tree_shapes = shapes(args.layers, args.width)
    n_params = sum(a * b for a, b in tree_shapes.values())
    print(
        f"# {n_params / 1e9:.3f}B float32 parameters ({args.layers} blocks of d={args.width}) "
        f"on 8 {devices[0].platform} devices ({devices[0].device_kind}): jax {jax.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    key = jax.random.key(0)
    inits = {"jaxinit": jaxinit.he_normal(), "jax.nn.initializers": jax.nn.initializers.he_normal()}

    # The single-device reference: its hashes, then free it.
    one_device = jax.sharding.SingleDeviceSharding(devices[0])
    single = jax.jit(make_fn(inits["jaxinit"], tree_shapes), out_shardings=one_device)
    reference = jax.block_until_ready(single(key))
    expected = tree_hash(reference)
    del reference
    t_single = median_seconds(lambda: single(key), args.repeats, warmup=False)

    print(
        "| mesh | initializer | how | time (s) | time / single device | max per-device bytes "
        "/ (total / 8) | XLA temp per device / its shard | values = single device |"
    )
    print("|---|---|---|---:|---:|---:|---:|---|")
    print(
        f"| 1 device | jaxinit | one jit | {t_single:.2f} | 1.00 | 8.00 | "
        f"{single.lower(key).compile().memory_analysis().temp_size_in_bytes / (4 * n_params):.2f}"
        " | (reference) |"
    )
    for mesh_kind in ("fully sharded", "2x4 mesh"):
        mesh = make_mesh(mesh_kind, devices)
        specs = spec_tree(mesh_kind, tree_shapes)
        shardings = {name: NamedSharding(mesh, spec) for name, spec in specs.items()}
        runs: list[tuple[str, str, Callable[[], dict[str, jax.Array]], float | None]] = []
        for label, init in inits.items():
            fn = jax.jit(make_fn(init, tree_shapes), out_shardings=shardings)
            analysis = fn.lower(key).compile().memory_analysis()
            temp = analysis.temp_size_in_bytes / (4 * n_params / 8) if analysis else None
            runs.append((label, "one jit, out_shardings", lambda fn=fn: fn(key), temp))

        def eager(
            init: Callable = inits["jaxinit"], shardings: dict = shardings
        ) -> dict[str, jax.Array]:
            return {
                name: init(
                    jax.random.fold_in(key, i), shape, jnp.float32, out_sharding=shardings[name]
                )
                for i, (name, shape) in enumerate(tree_shapes.items())
            }

        runs.append(("jaxinit", "eager per leaf, out_sharding=", eager, None))
        for label, how, fn, temp in runs:
            tree = jax.block_until_ready(fn())  # warm-up: compile
            ratio = per_device_ratio(tree, 8)
            same = tree_hash(tree) == expected
            del tree
            seconds = median_seconds(fn, args.repeats, warmup=False)
            temp_cell = "n/a" if temp is None else f"{temp:.2f}"
            print(
                f"| {mesh_kind} | {label} | {how} | {seconds:.2f} | {seconds / t_single:.2f} | "
                f"{ratio:.2f} | {temp_cell} | {'yes' if same else 'NO'} |",
                flush=True,
            )
    print(
        "\n'values = single device': the bit hash of every leaf equals the single-device "
        "jaxinit draw's (jax.nn.initializers draws the same float32 values)."
    )


if __name__ == "__main__":
    main()
