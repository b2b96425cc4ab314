"""scaled, stacked, blocks and einsum_axes; four commonly mis-scaled layer shapes.

Tolerances: the sample std of n i.i.d. draws has relative standard error
sqrt((kurtosis - 1) / (4 n)) <= sqrt(2 / (4 n)) for the normal (kurtosis 3), truncated
normal (2.36) and uniform (1.8) schemes used here. Every std check below uses
n >= 65536 elements, so the relative SE is <= 0.28% and the 3% tolerance used below is
more than 10 standard errors: false-failure probability < 1e-20 per check.
"""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit
from jaxinit._src.core.base import InitializerBase

KEY = jax.random.key(0)


def rel_std(w, target):
    return float(jnp.std(w.astype(jnp.float32))) / target


# --- four commonly mis-scaled layer shapes ---------------------------------------------


def test_scan_stacked_kernel_per_slice_std():
    """A scan-stacked (24, 1024, 1024) kernel: each layer gets 1/sqrt(1024)."""

    class Stack(nn.Module):
        kernel_init: object

        @nn.compact
        def __call__(self, x):
            w = self.param("kernel", self.kernel_init, (24, 1024, 1024))
            return jax.lax.scan(lambda h, wi: (h @ wi, None), x, w)[0]

    x = jnp.ones((1, 1024))
    target = 1 / math.sqrt(1024)
    w = Stack(jaxinit.stacked(jaxinit.lecun_normal())).init(KEY, x)["params"]["kernel"]
    stds = [rel_std(w[i], target) for i in range(24)]
    assert all(abs(s - 1) < 0.03 for s in stds), stds
    # The same scheme drawn as one array (jax.nn.initializers' default) is off by 1/sqrt(24).
    w0 = Stack(jax.nn.initializers.lecun_normal()).init(KEY, x)["params"]["kernel"]
    assert rel_std(w0[0], target) == pytest.approx(1 / math.sqrt(24), rel=0.03)


def test_dense_general_batch_dims_std():
    """linen DenseGeneral with 8 batch dims flattens the kernel to (8 * in, out)."""
    batch, d_in, d_out = 8, 512, 256
    x = jnp.ones((batch, 2, d_in))
    target = 1 / math.sqrt(d_in)
    good = nn.DenseGeneral(d_out, batch_dims=(0,),
                           kernel_init=jaxinit.blocks(jaxinit.lecun_normal(), batch, axis=-2))
    w = good.init(KEY, x)["params"]["kernel"]
    assert w.shape == (batch, d_in, d_out)
    stds = [rel_std(w[b], target) for b in range(batch)]
    assert all(abs(s - 1) < 0.03 for s in stds), stds
    w0 = nn.DenseGeneral(d_out, batch_dims=(0,)).init(KEY, x)["params"]["kernel"]
    assert rel_std(w0[0], target) == pytest.approx(1 / math.sqrt(batch), rel=0.03)


def test_nnx_linear_general_batch_axis_std():
    batch, d_in, d_out = 8, 512, 256
    target = 1 / math.sqrt(d_in)
    layer = nnx.LinearGeneral(d_in, d_out, batch_axis={0: batch}, rngs=nnx.Rngs(0),
                              kernel_init=jaxinit.blocks(jaxinit.lecun_normal(), batch, axis=-2))
    w = layer.kernel[...]
    assert all(abs(rel_std(w[b], target) - 1) < 0.03 for b in range(batch))


def test_nnx_einsum_std():
    """nnx.Einsum 'bd,dhk->bhk': fan_in is d, not h * d."""
    d, h, k = 1024, 16, 64
    target = 1 / math.sqrt(d)
    init = jaxinit.lecun_normal(**jaxinit.einsum_axes("bd,dhk->bhk"))
    layer = nnx.Einsum("bd,dhk->bhk", (d, h, k), kernel_init=init, rngs=nnx.Rngs(0))
    assert abs(rel_std(layer.kernel[...], target) - 1) < 0.03
    default = nnx.Einsum("bd,dhk->bhk", (d, h, k), rngs=nnx.Rngs(0))
    assert rel_std(default.kernel[...], target) == pytest.approx(1 / math.sqrt(h), rel=0.03)


def test_fused_qkv_std():
    """A fused (d, 3d) QKV kernel: glorot per (d, d) block gives 1/sqrt(d), not 1/sqrt(2d)."""
    d = 512
    target = 1 / math.sqrt(d)   # glorot on (d, d): Var = 2 / (d + d)
    dense = nn.Dense(3 * d, kernel_init=jaxinit.blocks(jaxinit.glorot_normal(), 3))
    w = dense.init(KEY, jnp.ones((1, d)))["params"]["kernel"]
    for q in range(3):
        assert abs(rel_std(w[:, q * d:(q + 1) * d], target) - 1) < 0.03
    w0 = nn.Dense(3 * d, kernel_init=jax.nn.initializers.glorot_normal()).init(
        KEY, jnp.ones((1, d)))["params"]["kernel"]
    assert rel_std(w0[:, :d], target) == pytest.approx(1 / math.sqrt(2), rel=0.03)


# --- scaled ------------------------------------------------------------------------------


def test_scaled_values_and_single_rounding():
    inner = jaxinit.he_normal()
    init = jaxinit.scaled(inner, -0.25)
    w = init(KEY, (64, 32))
    np.testing.assert_array_equal(w, inner(KEY, (64, 32)) * np.float32(-0.25))
    # bfloat16: drawn in float32, scaled, rounded once.
    w16 = init(KEY, (64, 32), jnp.bfloat16)
    np.testing.assert_array_equal(w16, w.astype(jnp.bfloat16))


def test_scaled_statistics_and_describe():
    init = jaxinit.scaled(jaxinit.lecun_uniform(), 0.5)
    w = init(KEY, (512, 256))   # 131072 samples
    d = jaxinit.describe(init, (512, 256))
    assert d.std == pytest.approx(0.5 / math.sqrt(512))
    assert abs(rel_std(w, d.std) - 1) < 0.03
    assert d.bounds == pytest.approx((-0.5 * math.sqrt(3 / 512), 0.5 * math.sqrt(3 / 512)))
    neg = jaxinit.describe(jaxinit.scaled(jaxinit.uniform(1.0), -2.0), (4, 4))
    assert neg.bounds == (-2.0, 0.0) and neg.mean == pytest.approx(-1.0)


def test_scaled_jax_callable():
    plain = jaxinit.scaled(jax.nn.initializers.lecun_normal(), 3.0)
    np.testing.assert_allclose(plain(KEY, (16, 8)),
                               3 * jax.nn.initializers.lecun_normal()(KEY, (16, 8)), rtol=1e-6)


# --- stacked -----------------------------------------------------------------------------


def test_stacked_slices_are_independent_draws():
    inner = jaxinit.glorot_uniform()
    w = jaxinit.stacked(inner)(KEY, (5, 16, 8))
    keys = jax.random.split(KEY, 5)
    for i in range(5):
        np.testing.assert_array_equal(w[i], inner(keys[i], (16, 8)))
    assert not np.array_equal(w[0], w[1])


def test_stacked_other_axis_and_several_axes():
    inner = jaxinit.lecun_normal()
    w = jaxinit.stacked(inner, axis=1)(KEY, (16, 3, 8))
    keys = jax.random.split(KEY, 3)
    np.testing.assert_array_equal(w[:, 2, :], inner(keys[2], (16, 8)))
    w2 = jaxinit.stacked(inner, axis=(0, 2))(KEY, (2, 16, 3, 8))
    keys = jax.random.split(KEY, 6)   # row-major over (2, 3)
    np.testing.assert_array_equal(w2[1, :, 2, :], inner(keys[1 * 3 + 2], (16, 8)))


def test_stacked_orthogonal_each_slice_orthogonal():
    w = jaxinit.stacked(jaxinit.orthogonal())(KEY, (4, 32, 32))
    for i in range(4):
        np.testing.assert_allclose(w[i].T @ w[i], np.eye(32), atol=1e-5)


def test_stacked_describe():
    d = jaxinit.describe(jaxinit.stacked(jaxinit.he_normal()), (24, 1024, 1024))
    assert (d.fan_in, d.fan_out) == (1024, 1024)
    assert d.std == pytest.approx(math.sqrt(2 / 1024))


# --- blocks ------------------------------------------------------------------------------


def test_blocks_values_per_block():
    a, b = jaxinit.he_normal(), jaxinit.orthogonal()
    init = jaxinit.blocks([a, b], [24, 8])
    w = init(KEY, (16, 32))
    keys = jax.random.split(KEY, 2)
    np.testing.assert_array_equal(w[:, :24], a(keys[0], (16, 24)))
    np.testing.assert_array_equal(w[:, 24:], b(keys[1], (16, 8)))


def test_blocks_describe_mixture():
    init = jaxinit.blocks([jaxinit.zeros, jaxinit.ones], [1, 3])
    d = jaxinit.describe(init, (2, 4))
    assert d.mean == pytest.approx(0.75)
    assert d.std == pytest.approx(math.sqrt(0.75 - 0.75**2))   # Bernoulli(0.75)
    assert d.bounds == (0, 1)


def test_blocks_input_axis_fans():
    init = jaxinit.blocks(jaxinit.lecun_normal(), 4, axis=0)
    assert jaxinit.describe(init, (1024, 64)).std == pytest.approx(1 / math.sqrt(256))


# --- shared properties -------------------------------------------------------------------

COMBINATORS = [
    (jaxinit.scaled(jaxinit.he_normal(), 0.5), (32, 16)),
    (jaxinit.stacked(jaxinit.orthogonal()), (3, 16, 16)),
    (jaxinit.blocks(jaxinit.glorot_normal(), 3), (16, 48)),
    (jaxinit.stacked(jaxinit.blocks(jaxinit.lecun_normal(), 2)), (4, 16, 32)),
]


@pytest.mark.parametrize(("init", "shape"), COMBINATORS, ids=lambda x: type(x).__name__)
def test_protocol(init, shape):
    key = jax.random.key(1)
    assert isinstance(init, jax.nn.initializers.Initializer)
    assert isinstance(init, InitializerBase)
    again = type(init)(**{f.name: getattr(init, f.name) for f in dataclasses.fields(init)})
    assert again == init and hash(again) == hash(init) and repr(again) == repr(init)
    eager = init(key, shape)
    np.testing.assert_array_equal(jax.jit(lambda k: init(k, shape))(key), eager)
    batch = jax.vmap(lambda k: init(k, shape))(jax.random.split(key, 2))
    # vmap may fuse differently from a single call (FMA contraction): float32 rounding.
    np.testing.assert_allclose(batch[0], init(jax.random.split(key, 2)[0], shape), rtol=1e-6,
                               atol=1e-7)
    assert jax.eval_shape(lambda k: init(k, shape), key).shape == shape
    assert init(key, shape, jnp.bfloat16).dtype == jnp.bfloat16


@pytest.mark.parametrize(("init", "shape"), COMBINATORS, ids=lambda x: type(x).__name__)
def test_legacy_keys(init, shape):
    np.testing.assert_array_equal(init(jax.random.PRNGKey(1), shape),
                                  init(jax.random.wrap_key_data(jax.random.PRNGKey(1)), shape))


def test_bad_input():
    with pytest.raises(TypeError, match="scaled: init="):
        jaxinit.scaled(3.0, 2.0)
    with pytest.raises(ValueError, match="scaled: factor=nan"):
        jaxinit.scaled(jaxinit.ones, float("nan"))
    with pytest.raises(ValueError, match="stacked: axis=3 is out of range"):
        jaxinit.stacked(jaxinit.ones, axis=3)(KEY, (2, 3))
    with pytest.raises(ValueError, match=r"stacked: axis=.* stacks every axis"):
        jaxinit.stacked(jaxinit.ones, axis=(0, 1))(KEY, (2, 3))
    with pytest.raises(ValueError, match="stacked: orthogonal needs rank >= 2"):
        jaxinit.stacked(jaxinit.orthogonal())(KEY, (2, 3))
    with pytest.raises(ValueError, match=r"blocks: sizes=\(2, 2\) sum to 4, but shape\[-1\]=5"):
        jaxinit.blocks(jaxinit.ones, [2, 2])(KEY, (3, 5))
    with pytest.raises(ValueError, match="blocks: sizes=3 equal blocks do not divide"):
        jaxinit.blocks(jaxinit.ones, 3)(KEY, (3, 5))
    with pytest.raises(ValueError, match="blocks: got 2 inits for 3 blocks"):
        jaxinit.blocks([jaxinit.ones, jaxinit.zeros], 3)
    with pytest.raises(ValueError, match="blocks: sizes=0 must be >= 1"):
        jaxinit.blocks(jaxinit.ones, 0)
    with pytest.raises(TypeError, match=r"blocks: sizes=2\.5 must be an int"):
        jaxinit.blocks(jaxinit.ones, 2.5)
    with pytest.raises(TypeError, match=r"blocks: inits\[1\]="):
        jaxinit.blocks([jaxinit.ones, "he"], 2)


# --- einsum_axes -------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "expected"), [
    ("bd,dhk->bhk", ((0,), (1, 2), ())),
    ("bhd,hdk->bhk", ((1,), (2,), (0,))),          # per-head kernels
    ("...d,df->...f", ((0,), (1,), ())),           # ellipsis in the input
    ("btd,ed->bte", ((1,), (0,), ())),             # (out, in) layout
    ("bed,edf->bef", ((1,), (2,), (0,))),          # experts as batch
    ("bd,dkr->bk", ((0,), (1,), ())),              # r summed over the kernel alone
    ("b d , d f -> b f", ((0,), (1,), ())),        # spaces are ignored
])
def test_einsum_axes_table(spec, expected):
    axes = jaxinit.einsum_axes(spec)
    assert (axes["in_axis"], axes["out_axis"], axes["batch_axis"]) == expected


def test_einsum_axes_operand_and_receptive_field():
    assert jaxinit.einsum_axes("dk,bd->bk", operand=0)["in_axis"] == (0,)
    # 'r' appears only in the kernel: receptive field, counted in both fans.
    init = jaxinit.lecun_normal(**jaxinit.einsum_axes("bd,dkr->bk"))
    assert jaxinit.compute_fans((8, 4, 3), **jaxinit.einsum_axes("bd,dkr->bk")) == (24, 12)
    assert jaxinit.describe(init, (8, 4, 3)).fan_in == 24


@pytest.mark.parametrize(("spec", "error", "match"), [
    (3, TypeError, "einsum_axes: spec=3 must be a string"),
    ("bd,dh", ValueError, "exactly one '->'"),
    ("dh->h", ValueError, "has one operand"),
    ("bd,d...->b", ValueError, "cannot use '...'"),
    ("bd,dd->b", ValueError, "repeats an index"),
    ("b1,dh->bh", ValueError, "invalid term 'b1'"),
    ("bd,dh->bz", ValueError, r"output indices \['z'\]"),
])
def test_einsum_axes_errors(spec, error, match):
    with pytest.raises(error, match=match):
        jaxinit.einsum_axes(spec)
