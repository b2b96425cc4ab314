"""How much faster are seeds vectorized than run one after another?

The default `jaxinit compare` MLP (30 ReLU layers of width 64, He normal kernels) on
scikit-learn's digits, SGD with momentum 0.9 at lr 1e-3, minibatches of 128. The
vectorized run is the program `jaxinit.compare_model` compiles for a scheme,
``jax.jit(jax.vmap(train))`` over 8 seed keys; the sequential run calls the same
``jax.jit(train)`` once per key. Both are compiled by a warm-up call first (its time, the
compile included, is reported as "cold"); every time is the median of `--repeats` runs,
each ended with `block_until_ready`.

    python benchmarks/bench_compare_seeds.py                 # the row in README.md
    python benchmarks/bench_compare_seeds.py --steps 50 --repeats 2
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

import jaxinit
from jaxinit._src import probe
from jaxinit._src.compare import CompareConfig, load_digits, make_model
from jaxinit._src.compare_user import make_train
from jaxinit._src.diagnose import _default_loss


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = CompareConfig()
    d = load_digits()
    data = tuple(jnp.asarray(a) for a in (d.x_train, d.y_train, d.x_test, d.y_test))
    model = make_model(config, jaxinit.he_normal())
    variables = model.init(jax.random.key(0), data[0][:1])
    adapter = probe.adapt("bench", model, variables=variables)
    opt = optax.sgd(config.lr, momentum=config.momentum)
    train = make_train(adapter, jaxinit.he_normal(), data, _default_loss, opt, args.steps,
                       config.batch_size)
    keys = jax.random.split(jax.random.key(0), args.seeds)

    vec = jax.jit(jax.vmap(train))
    one = jax.jit(train)

    def sequential() -> list[Any]:
        return [one(k) for k in keys]

    cold_vec = timed(lambda: vec(keys))
    cold_seq = timed(sequential)
    t_vec = statistics.median(timed(lambda: vec(keys)) for _ in range(args.repeats))
    t_seq = statistics.median(timed(sequential) for _ in range(args.repeats))
    print(f"# {platform.processor() or platform.machine()}, jax {jax.__version__}, "
          f"{jax.devices()[0].platform}, {args.seeds} seeds x {args.steps} steps")
    print("| run | cold (s) | warm median (s) |")
    print("|---|---:|---:|")
    print(f"| {args.seeds} seeds vectorized | {cold_vec:.2f} | {t_vec:.2f} |")
    print(f"| {args.seeds} seeds sequential | {cold_seq:.2f} | {t_seq:.2f} |")
    print(f"vectorized speed-up, warm: {t_seq / t_vec:.2f}x; cold: {cold_seq / cold_vec:.2f}x")


if __name__ == "__main__":
    main()
