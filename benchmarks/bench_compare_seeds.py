"""How much faster are seeds vectorized than run one after another?

The default `jaxinit compare` MLP (30 ReLU layers of width 64, He normal kernels) on
scikit-learn's digits, SGD with momentum 0.9 at lr 1e-3, minibatches of 128: the
programs `jaxinit.compare_model` compiles (parameters drawn by a small program, then one
``jax.jit(jax.vmap(...))`` of a ``lax.scan`` over the steps, then the final metrics).

Rows:

* vectorized: all seeds in one call of those programs;
* sequential, same scan: the same kind of programs for one seed, called once per seed
  (one compile, then one call per seed: the strongest sequential baseline);
* sequential, step loop: a Python loop calling ``jax.jit(step)`` once per step and seed,
  as a hand-written training loop does (one dispatch per step);
* vectorized, sharded: the seed axis sharded over all devices (only with
  ``--host-devices N``, which simulates N CPU devices; each runs on its own thread).

"cold" is the first call, compilation included; "warm" the median of ``--repeats``
further calls, each ended with ``block_until_ready``. The last lines time the cold run
of ``--schemes`` schemes: the programs compiled once and shared by every scheme, as
``compare_model`` does, against compiling them again for every scheme.

    python benchmarks/bench_compare_seeds.py                  # the rows in README.md
    python benchmarks/bench_compare_seeds.py --host-devices 2
    python benchmarks/bench_compare_seeds.py --steps 50 --repeats 2
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--schemes", type=int, default=3)
    parser.add_argument("--host-devices", type=int, default=1)
    return parser.parse_args()


ARGS = parse() if __name__ == "__main__" else None
if ARGS is not None and ARGS.host_devices > 1:  # before jax is imported
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={ARGS.host_devices}")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

import jaxinit  # noqa: E402
from jaxinit._src.compare import CompareConfig, load_digits, make_model  # noqa: E402
from jaxinit._src.compare.api import (  # noqa: E402
    _check_data,
    _programs,
    _seed_sharding,
    default_rules,
    run_seeds,
)
from jaxinit._src.diagnose import probe  # noqa: E402
from jaxinit._src.diagnose.at_init import _default_loss  # noqa: E402


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def cold_warm(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    cold = timed(fn)
    return cold, statistics.median(timed(fn) for _ in range(repeats))


def main(args: argparse.Namespace) -> None:
    config = CompareConfig()
    d = load_digits()
    arrays = (d.x_train, d.y_train, d.x_test, d.y_test)
    model = make_model(config, jaxinit.he_normal())
    variables = model.init(jax.random.key(0), jnp.asarray(d.x_train[:1]))
    adapter = probe.adapt("bench", model, variables=variables)
    opt = optax.sgd(config.lr, momentum=config.momentum)
    data = _check_data(arrays, None, args.steps, config.batch_size, jax.random.key(0))
    rules = default_rules(adapter.trainable, jaxinit.he_normal())

    def draw(k: jax.Array) -> Any:
        return jaxinit.reinit(adapter.trainable, k, rules)

    keys = jax.random.split(jax.random.key(0), args.seeds)

    def fresh() -> Any:  # new jit objects: the next call compiles again
        return _programs(adapter, data, _default_loss, opt, args.steps, args.steps)

    vec = fresh()
    rows = {}
    rows["vectorized"] = cold_warm(
        lambda: run_seeds(vec, draw, keys, None, args.steps), args.repeats)
    one = fresh()
    rows["sequential, same scan"] = cold_warm(
        lambda: [run_seeds(one, draw, keys[i:i + 1], None, args.steps)
                 for i in range(args.seeds)], args.repeats)

    # A hand-written loop: one jitted step per call.
    def objective(p: Any, batch: Any) -> jax.Array:
        return _default_loss(lambda v: adapter.apply(p, v), batch)

    @jax.jit
    def step(p: Any, s: Any, i: jax.Array) -> tuple[Any, Any, jax.Array]:
        value, grads = jax.value_and_grad(objective)(p, data.batch(i, jax.random.key(0)))
        with jax.numpy_dtype_promotion("standard"):
            updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    init_one = jax.jit(draw)

    def loop() -> list[Any]:
        out = []
        for i in range(args.seeds):
            p = init_one(keys[i])
            s = opt.init(p)
            curve = []
            for t in range(args.steps):
                p, s, value = step(p, s, jnp.int32(t))
                curve.append(value)
            out.append(jnp.stack(curve))
        return out

    rows["sequential, step loop"] = cold_warm(loop, args.repeats)
    if len(jax.devices()) > 1:
        sharding, padded = _seed_sharding(None, args.seeds)
        shard_keys = jnp.concatenate([keys, keys[: padded - args.seeds]])
        sh = fresh()
        rows[f"vectorized, sharded over {len(jax.devices())} devices"] = cold_warm(
            lambda: run_seeds(sh, draw, shard_keys, sharding, args.steps), args.repeats)

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax "
          f"{jax.__version__}, {len(jax.devices())} {jax.devices()[0].platform} device(s), "
          f"{args.seeds} seeds x {args.steps} steps, python {sys.version.split()[0]}")
    print("| run | cold (s), compile included | warm median (s) | cold - warm (s) |")
    print("|---|---:|---:|---:|")
    for name, (cold, warm) in rows.items():
        print(f"| {args.seeds} seeds {name} | {cold:.2f} | {warm:.2f} | {cold - warm:.2f} |")
    v_cold, v_warm = rows["vectorized"]
    for name, (cold, warm) in rows.items():
        if name != "vectorized":
            print(f"vectorized vs {name}: {warm / v_warm:.2f}x warm, {cold / v_cold:.2f}x cold")

    # Several schemes: one compile shared (compare_model) vs a compile per scheme.
    inits = [jaxinit.he_normal(), jaxinit.lecun_normal(), jaxinit.xavier_normal(),
             jaxinit.he_uniform()][: args.schemes]
    draws = [functools.partial(jaxinit.reinit, adapter.trainable,
                               rules=default_rules(adapter.trainable, i)) for i in inits]
    shared = fresh()
    t_shared = timed(lambda: [run_seeds(shared, f, keys, None, args.steps) for f in draws])
    t_each = timed(lambda: [run_seeds(fresh(), f, keys, None, args.steps) for f in draws])
    print(f"{len(draws)} schemes x {args.seeds} seeds, cold: {t_shared:.2f} s with one shared "
          f"compile, {t_each:.2f} s with a compile per scheme ({t_each / t_shared:.2f}x)")


if __name__ == "__main__":
    assert ARGS is not None
    main(ARGS)
