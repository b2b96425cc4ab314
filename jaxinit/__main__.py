"""`python -m jaxinit`: activation std through a deep MLP under each scheme."""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp

import jaxinit

SCHEMES = {
    "random N(0, 0.01^2)": jaxinit.normal(0.01),
    "uniform U(+-1/sqrt(n))": None,  # needs the width: built below
    "glorot_normal": jaxinit.glorot_normal(),
    "he_normal": jaxinit.he_normal(),
    "lecun_normal": jaxinit.lecun_normal(),
    "orthogonal": jaxinit.orthogonal(),
}


def depth_profile(init, activation, depth: int, width: int, batch: int, key) -> list[float]:
    """Std of the activations after each layer of a bias-free MLP on Gaussian input."""
    x_key, *layer_keys = jax.random.split(key, depth + 1)
    x = jax.random.normal(x_key, (batch, width))
    stds = []
    for k in layer_keys:
        x = activation(x @ init(k, (width, width)))
        stds.append(float(jnp.std(x)))
    return stds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jaxinit", description=__doc__)
    parser.add_argument("--depth", type=int, default=30, help="number of layers (default 30)")
    parser.add_argument("--width", type=int, default=256, help="layer width (default 256)")
    parser.add_argument("--batch", type=int, default=512, help="batch size (default 512)")
    parser.add_argument(
        "--activation", default="relu", choices=["relu", "tanh"], help="default relu"
    )
    args = parser.parse_args(argv)
    if min(args.depth, args.width, args.batch) < 1:
        parser.error("--depth, --width and --batch must be positive")
    activation = {"relu": jax.nn.relu, "tanh": jnp.tanh}[args.activation]
    bound = args.width**-0.5
    schemes = dict(SCHEMES, **{"uniform U(+-1/sqrt(n))": jaxinit.uniform_range(-bound, bound)})
    marks = sorted({1, args.depth // 2, args.depth})
    print(
        f"activation std after layer l: {args.depth}-layer {args.activation} MLP, "
        f"width {args.width}"
    )
    print(f"{'scheme':<26}" + "".join(f"{'l=' + str(m):>12}" for m in marks))
    for name, init in schemes.items():
        stds = depth_profile(
            init, activation, args.depth, args.width, args.batch, jax.random.key(0)
        )
        print(f"{name:<26}" + "".join(f"{stds[m - 1]:>12.3e}" for m in marks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
