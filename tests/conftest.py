"""Test-wide JAX settings: strict dtype promotion and no implicit rank promotion.

Accidental upcasting (a float32 constant turning bfloat16 weights into float32) or
broadcasting across ranks fails loudly instead of passing silently.
"""

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(params=["typed", "legacy"])
def key_kind(request):
    return request.param


def make_key(seed: int, kind: str = "typed"):
    return jax.random.key(seed) if kind == "typed" else jax.random.PRNGKey(seed)
