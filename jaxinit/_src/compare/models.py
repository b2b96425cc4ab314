"""The built-in architectures of `jaxinit compare` (linen modules)."""

from __future__ import annotations

from typing import Any

import jax

from jaxinit._src.compare.config import CompareConfig
from jaxinit._src.gain import ACTIVATIONS


def make_model(config: CompareConfig, kernel_init: Any) -> Any:
    """The linen model of ``config`` with ``kernel_init`` on every kernel (biases zero).

    ``model.apply(variables, x, hidden=True)`` returns the last hidden activation
    (for the Jacobian spectrum of the hidden stack).
    """
    from flax import linen as nn

    act = ACTIVATIONS[config.activation]

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array, hidden: bool = False) -> jax.Array:
            x = x.reshape(x.shape[0], -1)
            for i in range(config.depth):
                x = act(nn.Dense(config.width, kernel_init=kernel_init, name=f"layer{i}")(x))
            if hidden:
                return x
            return nn.Dense(10, kernel_init=kernel_init, name="head")(x)

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array, hidden: bool = False) -> jax.Array:
            for i in range(config.depth):
                conv = nn.Conv(config.width, (3, 3), padding="SAME", kernel_init=kernel_init,
                               name=f"layer{i}")
                x = act(conv(x))
            if hidden:
                return x
            x = x.reshape(x.shape[0], -1)
            return nn.Dense(10, kernel_init=kernel_init, name="head")(x)

    return MLP() if config.arch == "mlp" else CNN()
