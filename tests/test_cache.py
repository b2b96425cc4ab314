"""The eager compile cache under eager nnx construction ('Configuration is identity').

tests/test_api.py checks the cache with direct calls; here the keys, shapes and dtypes
come from Flax itself (nnx.Rngs streams, param_dtype), as in a real model: rebuilding a
model with fresh but equal initializers must not compile anything new.
"""

import itertools

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import jaxinit
from jaxinit._src.core import base


class MLP(nnx.Module):
    def __init__(self, widths, kernel_init, rngs, param_dtype=jnp.float32):
        self.layers = nnx.List(
            [
                nnx.Linear(
                    n_in,
                    n_out,
                    kernel_init=kernel_init(),  # a fresh instance per layer
                    bias_init=jaxinit.zeros,
                    param_dtype=param_dtype,
                    rngs=rngs,
                )
                for n_in, n_out in itertools.pairwise(widths)
            ]
        )


@pytest.mark.parametrize("scheme", ["orthogonal", "he_normal", "glorot_uniform"])
def test_rebuilding_an_nnx_model_does_not_recompile(scheme):
    widths = (16, 16, 16, 16, 8)  # 4 layers, 2 distinct kernel shapes, 2 bias shapes
    kernel_init = getattr(jaxinit, scheme)
    base.compiled.cache_clear()
    first = MLP(widths, kernel_init, nnx.Rngs(0))
    info = base.compiled.cache_info()
    # One executable per distinct (configuration, shape, dtype): kernels (16, 16) and
    # (16, 8), biases (16,) and (8,).
    assert info.misses == 4 and info.hits == 4
    for seed in range(3):
        MLP(widths, kernel_init, nnx.Rngs(seed + 1))
    again = base.compiled.cache_info()
    assert again.misses == info.misses  # nothing recompiled
    assert again.hits == info.hits + 3 * 8
    # The cache changes nothing about the values: the same seed, the same parameters.
    rebuilt = MLP(widths, kernel_init, nnx.Rngs(0))
    for a, b in zip(
        jax.tree.leaves(nnx.state(first)), jax.tree.leaves(nnx.state(rebuilt)), strict=True
    ):
        assert bool((a == b).all())


def test_a_new_dtype_compiles_once_more():
    base.compiled.cache_clear()
    MLP((16, 16), jaxinit.he_normal, nnx.Rngs(0))
    MLP((16, 16), jaxinit.he_normal, nnx.Rngs(0), param_dtype=jnp.bfloat16)
    MLP((16, 16), jaxinit.he_normal, nnx.Rngs(1), param_dtype=jnp.bfloat16)
    assert base.compiled.cache_info().misses == 4  # (kernel, bias) x (float32, bfloat16)
