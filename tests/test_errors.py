"""Bad input fails early and clearly (the 'Clear errors' design principle): one table
of bad calls.

Each row is (call, exception type, words the message must contain). The message must name
the offending argument or value, so a user can fix the call without reading the source.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit

KEY = jax.random.key(0)

BAD_CALLS = [
    # shapes
    ("rank too small for fans", lambda: jaxinit.he_normal()(KEY, (10,)), ValueError, "rank 1"),
    (
        "negative dimension",
        lambda: jaxinit.glorot_uniform()(KEY, (4, -2)),
        ValueError,
        "negative dimension",
    ),
    ("float dimension", lambda: jaxinit.normal()(KEY, (2.5, 3)), TypeError, "shape"),
    ("shape not a sequence", lambda: jaxinit.normal()(KEY, "ab"), TypeError, "shape"),
    (
        "orthogonal unknown method",
        lambda: jaxinit.orthogonal(method="svd"),
        ValueError,
        "method='svd'",
    ),
    (
        "orthogonal on rank 1",
        lambda: jaxinit.orthogonal()(KEY, (8,)),
        ValueError,
        "expected rank >= 2",
    ),
    (
        "orthogonal column_axis out of range",
        lambda: jaxinit.orthogonal(column_axis=2)(KEY, (4, 4)),
        ValueError,
        "column_axis=2",
    ),
    (
        "delta_orthogonal in > out",
        lambda: jaxinit.delta_orthogonal()(KEY, (3, 3, 8, 4)),
        ValueError,
        "in <= out",
    ),
    (
        "delta_orthogonal rank 2",
        lambda: jaxinit.delta_orthogonal()(KEY, (8, 8)),
        ValueError,
        "expected rank >= 3",
    ),
    (
        "delta_orthogonal rank 6",
        lambda: jaxinit.delta_orthogonal()(KEY, (3,) * 4 + (2, 2)),
        ValueError,
        "rank 3, 4 or 5",
    ),
    (
        "dirac groups do not divide",
        lambda: jaxinit.dirac(groups=4)(KEY, (3, 3, 2, 6)),
        ValueError,
        "groups=4",
    ),
    (
        "in_axis out of range",
        lambda: jaxinit.he_normal(in_axis=5)(KEY, (3, 4)),
        ValueError,
        "in_axis=5",
    ),
    (
        "overlapping axes",
        lambda: jaxinit.he_normal(batch_axis=-1)(KEY, (3, 4)),
        ValueError,
        "overlap",
    ),
    # dtypes
    ("int dtype", lambda: jaxinit.normal()(KEY, (2, 2), jnp.int32), TypeError, "int32"),
    ("bool dtype", lambda: jaxinit.he_uniform()(KEY, (2, 2), jnp.bool_), TypeError, "bool"),
    ("uint dtype", lambda: jaxinit.orthogonal()(KEY, (2, 2), jnp.uint8), TypeError, "uint8"),
    (
        "complex uniform",
        lambda: jaxinit.uniform()(KEY, (2, 2), jnp.complex64),
        TypeError,
        "complex64",
    ),
    ("not a dtype", lambda: jaxinit.normal()(KEY, (2, 2), "floatish"), TypeError, "floatish"),
    (
        "constant overflows float16",
        lambda: jaxinit.constant(1e6)(KEY, (2,), jnp.float16),
        ValueError,
        "float16",
    ),
    (
        "constant fraction into int",
        lambda: jaxinit.constant(0.5)(KEY, (2,), jnp.int32),
        ValueError,
        "int32",
    ),
    # modes and distributions
    (
        "unknown mode",
        lambda: jaxinit.variance_scaling(1.0, "fan_inn", "normal"),
        ValueError,
        "mode='fan_inn'",
    ),
    (
        "unknown distribution",
        lambda: jaxinit.variance_scaling(1.0, "fan_in", "gaussian"),
        ValueError,
        "distribution='gaussian'",
    ),
    ("axes not ints", lambda: jaxinit.he_normal(in_axis="0"), TypeError, "in_axis"),
    # scales
    (
        "negative scale",
        lambda: jaxinit.variance_scaling(-1.0, "fan_in", "normal"),
        ValueError,
        "scale=-1.0",
    ),
    (
        "nan scale",
        lambda: jaxinit.variance_scaling(float("nan"), "fan_in", "normal"),
        ValueError,
        "scale=nan",
    ),
    ("inf stddev", lambda: jaxinit.normal(float("inf")), ValueError, "stddev=inf"),
    ("negative stddev", lambda: jaxinit.truncated_normal(-0.1), ValueError, "stddev=-0.1"),
    ("stddev not a number", lambda: jaxinit.normal("big"), TypeError, "stddev='big'"),
    (
        "truncation bounds reversed",
        lambda: jaxinit.truncated_normal(1.0, lower=2.0, upper=-2.0),
        ValueError,
        "lower=2.0",
    ),
    ("uniform_range empty", lambda: jaxinit.uniform_range(1.0, 1.0), ValueError, "low=1.0"),
    ("uniform_range infinite", lambda: jaxinit.uniform_range(-np.inf, 0.0), ValueError, "low=-inf"),
    ("orthogonal nan scale", lambda: jaxinit.orthogonal(float("nan")), ValueError, "scale=nan"),
    ("constant nan", lambda: jaxinit.constant(float("nan")), ValueError, "value=nan"),
    ("constant array", lambda: jaxinit.constant([1.0, 2.0]), TypeError, "value="),
    # sparse
    ("sparsity 1", lambda: jaxinit.sparse(1.0), ValueError, "sparsity=1.0"),
    ("sparsity negative", lambda: jaxinit.sparse(-0.1), ValueError, "sparsity=-0.1"),
    ("sparse rank 1", lambda: jaxinit.sparse(0.5)(KEY, (8,)), ValueError, "expected rank >= 2"),
    # keys
    ("int key", lambda: jaxinit.normal()(0, (2, 2)), TypeError, "key"),
    ("float array key", lambda: jaxinit.normal()(jnp.zeros(2), (2, 2)), TypeError, "key"),
    (
        "batch of keys",
        lambda: jaxinit.normal()(jax.random.split(KEY, 3), (2, 2)),
        ValueError,
        "jax.vmap",
    ),
    (
        "uint32 matrix key",
        lambda: jaxinit.normal()(jnp.zeros((2, 2), jnp.uint32), (2, 2)),
        TypeError,
        "key",
    ),
    # gains, fans, describe
    ("unknown activation", lambda: jaxinit.gain("relu7"), ValueError, "activation='relu7'"),
    ("gain mode", lambda: jaxinit.gain("relu", mode="sideways"), ValueError, "mode='sideways'"),
    ("gain params on callable", lambda: jaxinit.gain(jnp.tanh, slope=2), TypeError, "slope"),
    ("gain of zero function", lambda: jaxinit.gain(lambda x: 0 * x), ValueError, "zero"),
    ("compute_fans rank 1", lambda: jaxinit.compute_fans((5,)), ValueError, "rank 1"),
    (
        "describe non-initializer",
        lambda: jaxinit.describe(lambda k, s: 0, (2, 2)),
        TypeError,
        "init=",
    ),
    (
        "sharding of wrong type",
        lambda: jaxinit.normal()(KEY, (2, 2), out_sharding="x"),
        TypeError,
        "out_sharding",
    ),
]


def test_table_is_large_enough():
    assert len(BAD_CALLS) >= 30


@pytest.mark.parametrize(
    ("call", "error", "words"), [row[1:] for row in BAD_CALLS], ids=[row[0] for row in BAD_CALLS]
)
def test_bad_call_raises_clearly(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value), str(info.value)


def test_errors_raise_before_tracing_under_jit():
    """Inside jit the same precise error appears (no opaque XLA error)."""
    with pytest.raises(ValueError, match="rank 1"):
        jax.jit(lambda k: jaxinit.he_normal()(k, (10,)))(KEY)
