"""Threefry random bits that XLA can fuse: the same values, no full-size temporaries.

``jax.random.normal(key, shape)`` under ``jit`` on CPU lowers the threefry hash as a
``while`` loop over its 5 groups of rounds (``use_rolled_loops=True``, chosen to keep
compile times down). A loop cannot fuse with its producers or consumers, so XLA
materializes the counters and the loop state for the whole array: 3 float32-sized
temporaries per element (``compiled.memory_analysis().temp_size_in_bytes`` is 3x the
output in float32 and 8x in bfloat16, sampled in float32), live together with every
other array of a jitted model initialization.

With ``jax_threefry_partitionable`` (the default since jax 0.5), element ``i`` of
``jax.random.bits(key, shape)`` is ``threefry2x32(key, (i >> 32, i & 0xffffffff))``
(hi, lo of the row-major index), xor-folded to 32 bits: a function of the key and the
element's index alone. :func:`fusible` rewraps a threefry key as a key of a private PRNG
implementation (``jax.extend.random.define_prng_impl``) with the same key data, the same
``split``/``fold_in``/``seed`` (threefry's own), and ``random_bits`` written as the
unrolled threefry rounds over broadcasted iotas: elementwise from the index to the
sample, so XLA fuses counter, hash, float transform, scale and cast into one loop that
writes the output directly. ``jax.random.uniform`` / ``normal`` / ``truncated_normal``
run unchanged on it (the float transforms are jax's own code), and every value is
bit-identical to the plain key's (tests/test_threefry.py checks it on the backend the
suite runs on).

The rewrap applies when the key is threefry2x32 (typed, or a legacy ``uint32[2]`` key
under the default implementation) and partitionable threefry is on; otherwise the key is
returned unchanged. Arrays of 2**32 elements or more, and scalars, get jax's own bits.
Broadcasted iotas are what the SPMD partitioner expects (jax's ``iota_2x32_shape`` is
built the same way), so a sharded output is generated shard by shard, each device
computing only its own indices.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import define_prng_impl, threefry_prng_impl

from jaxinit._src.core.base import Shape

# Threefry-2x32 with 20 rounds (Salmon et al. 2011, "Parallel random numbers: as easy as
# 1, 2, 3", Table 4): rotation constants of the two alternating groups of 4 rounds, and
# the key-schedule parity constant.
ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
KEY_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jax.Array, d: int) -> jax.Array:
    return lax.shift_left(x, np.uint32(d)) | lax.shift_right_logical(x, np.uint32(32 - d))


def threefry2x32(
    k0: jax.Array, k1: jax.Array, x0: jax.Array, x1: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 hash, rounds unrolled (jax's non-CPU lowering, op for op)."""
    ks = (k0, k1, k0 ^ k1 ^ KEY_PARITY)
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for group in range(5):
        for r in ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = x0 ^ _rotate_left(x1, r)
        x0 = x0 + ks[(group + 1) % 3]
        x1 = x1 + ks[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


def _index(shape: Shape) -> jax.Array:
    """The row-major index of every element as uint32 (the caller ensures it fits)."""
    strides = [math.prod(shape[d + 1 :]) for d in range(len(shape))]
    parts = [
        lax.broadcasted_iota(np.uint32, shape, d) * np.uint32(stride)
        for d, stride in enumerate(strides)
    ]
    index = parts[0]
    for part in parts[1:]:
        index = index + part
    return index


def _random_bits(key: jax.Array, bit_width: int, shape: Shape) -> jax.Array:
    """jax's partitionable threefry ``random_bits``, fused. Arrays of 2**32 elements or
    more (whose counters need the high word) and scalars take jax's own implementation."""
    if not shape or math.prod(shape) >= MAX_ELEMENTS:
        return threefry_prng_impl.random_bits(key, bit_width, shape)
    lo = _index(shape)
    bits1, bits2 = threefry2x32(key[0], key[1], jnp.zeros_like(lo), lo)
    if bit_width == 64:
        wide = np.dtype(np.uint64)
        return (bits1.astype(wide) << np.array(32, wide)) | bits2.astype(wide)
    if bit_width == 32:
        return bits1 ^ bits2
    return (bits1 ^ bits2).astype({8: np.uint8, 16: np.uint16}[bit_width])


#: Arrays this large or larger keep jax's own bits (their counters need the high word).
MAX_ELEMENTS = 2**32

FUSIBLE_THREEFRY = define_prng_impl(
    key_shape=(2,),
    seed=threefry_prng_impl.seed,
    split=threefry_prng_impl.split,
    random_bits=_random_bits,
    fold_in=threefry_prng_impl.fold_in,
    name="jaxinit_fusible_threefry2x32",
    tag="jif",
)


def fusible(key: jax.Array) -> jax.Array:
    """`key` as a fusible threefry key if it is a threefry key and partitionable threefry
    is on (then the bits are the same), else `key` itself."""
    if not jax.config.jax_threefry_partitionable:  # type: ignore[attr-defined]
        return key
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if str(jax.random.key_impl(key)) != "threefry2x32":
            return key
        data = jax.random.key_data(key)
    elif jax.config.jax_default_prng_impl == "threefry2x32":  # type: ignore[attr-defined]
        data = key
    else:
        return key
    return jax.random.wrap_key_data(data, impl=FUSIBLE_THREEFRY)
