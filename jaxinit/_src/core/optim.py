"""One optax update, under the dtype promotion optax needs."""

from __future__ import annotations

from typing import Any

import jax


def optax_update(tx: Any, grads: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
    """``tx.update(grads, state, params)`` under standard dtype promotion.

    optax mixes Python floats with its int32 step counts (Adam's bias correction), which
    strict dtype promotion (a user's or a test suite's setting) rejects; everything else
    keeps the caller's promotion rules.
    """
    with jax.numpy_dtype_promotion("standard"):
        return tx.update(grads, state, params)
