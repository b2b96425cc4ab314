"""The fusible threefry key: bit-identical draws, no full-size temporaries.

jaxinit draws through ``jaxinit._src.core.threefry.fusible(key)``; these tests check, on the
backend the suite runs on, that every jax.random sampler jaxinit uses gives exactly the
bits of the plain key (so jaxinit's values are jax's), and that a jitted initializer
no longer needs temporaries of the output's size (compile-time memory analysis, not a
timing).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_key

import jaxinit
from jaxinit._src.core import threefry

SAMPLERS = {
    "bits8": lambda k, s: jax.random.bits(k, s, jnp.uint8),
    "bits16": lambda k, s: jax.random.bits(k, s, jnp.uint16),
    "bits32": lambda k, s: jax.random.bits(k, s, jnp.uint32),
    "uniform": lambda k, s: jax.random.uniform(k, s, jnp.float32, -1.0, 1.0),
    "normal": lambda k, s: jax.random.normal(k, s, jnp.float32),
    "truncated_normal": lambda k, s: jax.random.truncated_normal(k, -2.0, 2.0, s),
    "complex_normal": lambda k, s: jax.random.normal(k, s, jnp.complex64),
    "bfloat16_normal": lambda k, s: jax.random.normal(k, s, jnp.bfloat16),
    "split_then_uniform": lambda k, s: jax.random.uniform(jax.random.split(k)[1], s),
    "fold_in_then_normal": lambda k, s: jax.random.normal(jax.random.fold_in(k, 7), s),
}
SHAPES = [(), (1,), (5,), (33, 17), (2, 3, 5, 7)]


def bits(x):
    x = np.asarray(x)
    if x.dtype.kind == "c":
        x = np.stack([x.real, x.imag])
    return x.view(f"u{x.dtype.itemsize}")


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_fusible_key_gives_the_same_bits(name):
    sample = SAMPLERS[name]
    key = make_key(3)
    # One program per side for all the shapes, to keep compilation short.
    expected = jax.jit(lambda k: [sample(k, s) for s in SHAPES])(key)
    fused = jax.jit(lambda k: [sample(threefry.fusible(k), s) for s in SHAPES])(key)
    for a, b in zip(fused, expected, strict=True):
        np.testing.assert_array_equal(bits(a), bits(b))
    # Eager (op by op) too.
    np.testing.assert_array_equal(
        bits(sample(threefry.fusible(key), (9, 4))), bits(sample(key, (9, 4)))
    )


def test_legacy_keys(key_kind):
    key = make_key(3, key_kind)
    for name in ("bits32", "truncated_normal"):
        expected = jax.jit(lambda k, n=name: SAMPLERS[n](k, (33, 17)))(key)
        fused = jax.jit(lambda k, n=name: SAMPLERS[n](threefry.fusible(k), (33, 17)))(key)
        np.testing.assert_array_equal(bits(fused), bits(expected))


def test_fusible_key_under_vmap_and_float64():
    keys = jax.random.split(jax.random.key(4), 3)
    expected = jax.vmap(lambda k: jax.random.normal(k, (16, 8)))(keys)
    fused = jax.vmap(lambda k: jax.random.normal(threefry.fusible(k), (16, 8)))(keys)
    np.testing.assert_array_equal(fused, expected)
    with jax.enable_x64(True):  # 64-bit draws use both threefry output words
        key = jax.random.key(5)
        np.testing.assert_array_equal(
            jax.random.normal(threefry.fusible(key), (64, 3), jnp.float64),
            jax.random.normal(key, (64, 3), jnp.float64),
        )


def test_large_arrays_take_jax_bits(monkeypatch):
    """Past MAX_ELEMENTS (2**32 in use: too big to test), the counters' high word matters
    and jax's own random_bits is used: checked by lowering the limit."""
    monkeypatch.setattr(threefry, "MAX_ELEMENTS", 100)
    key = jax.random.key(6)
    np.testing.assert_array_equal(
        jax.random.normal(threefry.fusible(key), (20, 10)), jax.random.normal(key, (20, 10))
    )


def test_other_keys_are_left_alone():
    rbg = jax.random.key(0, impl="rbg")
    assert threefry.fusible(rbg) is rbg
    key = jax.random.key(0)
    with jax.threefry_partitionable(False):
        assert threefry.fusible(key) is key
        # jaxinit still gives jax's values when the bits are not index-addressable.
        np.testing.assert_array_equal(
            jax.jit(lambda k: jaxinit.he_normal()(k, (32, 16)))(key),
            jax.jit(lambda k: jax.nn.initializers.he_normal()(k, (32, 16)))(key),
        )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize(
    "init",
    [jaxinit.he_normal(), jaxinit.glorot_uniform(), jaxinit.normal(0.02), jaxinit.uniform()],
    ids=repr,
)
def test_jitted_draw_has_no_full_size_temporaries(init, dtype):
    """XLA's buffer assignment for one jitted draw: jax.random's CPU lowering needs 3x the
    output in float32 (8x in bfloat16) for threefry's loop state; the fused draw writes
    the output directly. Bound: a quarter of the output, whatever the backend."""
    shape = (512, 1024)
    compiled = jax.jit(lambda k: init(k, shape, dtype)).lower(jax.random.key(0)).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        pytest.skip("this backend reports no memory analysis")
    output_bytes = np.prod(shape) * jnp.dtype(dtype).itemsize
    assert analysis.output_size_in_bytes == output_bytes
    assert analysis.temp_size_in_bytes <= output_bytes / 4


@pytest.mark.sharded
def test_sharded_draw_equals_single_device_draw():
    """Each device computes only its own indices (broadcasted iotas partition), and the
    values are those of the unsharded draw ('Sharding-invariant values')."""
    assert jax.device_count() >= 8, "needs 8 simulated devices: run `make sharded`"
    mesh = jax.make_mesh((8,), ("x",), axis_types=(jax.sharding.AxisType.Explicit,))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x", None))
    init, shape, key = jaxinit.he_normal(), (1024, 256), jax.random.key(1)
    expected = jax.jit(lambda k: init(k, shape))(key)
    fn = jax.jit(lambda k: init(k, shape), out_shardings=sharding)
    sharded = fn(key)
    np.testing.assert_array_equal(np.asarray(sharded), np.asarray(expected))
    assert {s.data.shape for s in sharded.addressable_shards} == {(128, 256)}
    analysis = fn.lower(key).compile().memory_analysis()
    if analysis is not None:  # per-device program: its shard, no full-size buffers
        assert analysis.output_size_in_bytes == 128 * 256 * 4
        assert analysis.temp_size_in_bytes <= 128 * 256 * 4
