"""jaxinit.layout's converters against torch.nn.functional, and their error messages and hints.

These tests kill mutants of jaxinit/_src/pretrained/layout.py (see docs/mutants.md). Each
converted weight is used by the Flax layer it is for and compared with PyTorch's functional
op on the original weight, so the oracle is PyTorch itself.
"""

import re

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jaxinit import layout
from jaxinit._src.pretrained.layout import layout_hint

TOL = {"rtol": 1e-5, "atol": 1e-5}


# Converters take NumPy or JAX arrays: both must give PyTorch's result.
ARRAYS = pytest.mark.parametrize("xp", [np, jnp], ids=["numpy", "jax"])


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def t(x):
    return torch.from_numpy(np.ascontiguousarray(x))


def test_embedding_is_unchanged_and_looks_up_as_torch_does():
    w = data(11, 6)
    ids = np.array([[0, 3, 10], [7, 7, 1]])
    out = layout.embedding(w)
    assert out is w
    got = nn.Embed(11, 6).apply({"params": {"embedding": out}}, ids)
    np.testing.assert_allclose(got, F.embedding(t(ids), t(w)).numpy(), **TOL)


RANK_ERRORS = [
    ("linear", layout.linear, (4,), "2"),
    ("linear", layout.linear, (2, 3, 4), "2"),
    ("conv", layout.conv, (2, 3), "3 or 4 or 5"),
    ("conv", layout.conv, (1, 1, 1, 1, 1, 1), "3 or 4 or 5"),
    ("conv_transpose", layout.conv_transpose, (2, 3), "3 or 4 or 5"),
    ("conv_transpose", layout.conv_transpose, (1, 1, 1, 1, 1, 1), "3 or 4 or 5"),
    ("embedding", layout.embedding, (4,), "2"),
    ("embedding", layout.embedding, (2, 3, 4), "2"),
    ("linear_after_flatten", layout.linear_after_flatten((2, 3)), (6,), "2"),
    ("attention_heads", layout.attention_heads(2), (2, 2, 2), "1 or 2"),
    ("attention_qkv", layout.attention_qkv(2), (6, 2, 2), "1 or 2"),
    ("attention_out", layout.attention_out(2), (1, 2, 3), "1 or 2"),
]


@pytest.mark.parametrize("name, convert, shape, ranks", RANK_ERRORS)
def test_rank_errors_name_the_converter_the_shape_and_every_allowed_rank(name, convert, shape,
                                                                          ranks):
    msg = (f"layout.{name}: weight of shape {shape} has rank {len(shape)}; "
           f"expected rank {ranks}")
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        convert(np.zeros(shape, np.float32))


def test_layer_norm_with_and_without_bias_against_torch():
    w, b, x = data(8, seed=1), data(8, seed=2), data(3, 8, seed=3)
    out = layout.layer_norm(w, b)
    assert set(out) == {"scale", "bias"} and out["scale"] is w and out["bias"] is b
    got = nn.LayerNorm(epsilon=1e-5).apply({"params": out}, x)
    np.testing.assert_allclose(got, F.layer_norm(t(x), (8,), t(w), t(b), 1e-5).numpy(), **TOL)
    out = layout.layer_norm(w)
    assert set(out) == {"scale"} and out["scale"] is w
    got = nn.LayerNorm(epsilon=1e-5, use_bias=False).apply({"params": out}, x)
    np.testing.assert_allclose(got, F.layer_norm(t(x), (8,), t(w), None, 1e-5).numpy(), **TOL)


def test_group_norm_against_torch():
    w, b, x = data(8, seed=4), data(8, seed=5), data(2, 8, 3, 3, seed=6)  # NCHW
    assert layout.group_norm is layout.layer_norm
    got = nn.GroupNorm(num_groups=2, epsilon=1e-5).apply(
        {"params": layout.group_norm(w, b)}, x.transpose(0, 2, 3, 1))
    want = F.group_norm(t(x), 2, t(w), t(b), 1e-5).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, want, **TOL)


def test_batch_norm_against_torch_eval():
    w, b, mean, x = data(5, seed=7), data(5, seed=8), data(5, seed=9), data(4, 5, seed=10)
    var = np.abs(data(5, seed=11)) + 0.5
    state = {"weight": w, "bias": b, "running_mean": mean, "running_var": var,
             "num_batches_tracked": np.array(3)}
    out = layout.batch_norm(state)
    assert out == {"params": {"scale": w, "bias": b}, "batch_stats": {"mean": mean, "var": var}}
    got = nn.BatchNorm(use_running_average=True, epsilon=1e-5).apply(out, x)
    want = F.batch_norm(t(x), t(mean), t(var), t(w), t(b), training=False, eps=1e-5).numpy()
    np.testing.assert_allclose(got, want, **TOL)


def test_batch_norm_without_affine_parameters():
    # nn.BatchNorm1d(affine=False) has running statistics only: no params.
    bn = torch.nn.BatchNorm1d(5, affine=False)
    with torch.no_grad():
        bn.running_mean.copy_(t(data(5, seed=12)))
        bn.running_var.copy_(t(np.abs(data(5, seed=13)) + 0.5))
    state = {k: v.numpy() for k, v in bn.state_dict().items()}
    assert "weight" not in state
    out = layout.batch_norm(state)
    assert set(out) == {"params", "batch_stats"} and out["params"] == {}
    x = data(4, 5, seed=14)
    got = nn.BatchNorm(use_running_average=True, use_scale=False, use_bias=False,
                       epsilon=1e-5).apply({"batch_stats": out["batch_stats"]}, x)
    np.testing.assert_allclose(got, bn.eval()(t(x)).detach().numpy(), **TOL)



@ARRAYS
def test_linear_after_flatten_against_torch(xp):
    # A (C, H, W) = (2, 3, 4) feature map: torch flattens channel-first, Flax channel-last.
    fmap, w, b = data(3, 2, 3, 4, seed=15), data(5, 24, seed=16), data(5, seed=17)
    want = F.linear(t(fmap).flatten(1), t(w), t(b)).numpy()
    kernel = np.asarray(layout.linear_after_flatten((2, 3, 4))(xp.asarray(w)))
    assert kernel.shape == (24, 5)
    got = fmap.transpose(0, 2, 3, 1).reshape(3, -1) @ kernel + b
    np.testing.assert_allclose(got, want, **TOL)
    # A 1-D feature map (C, L) = (4, 6).
    fmap, w = data(2, 4, 6, seed=18), data(3, 24, seed=19)
    kernel = np.asarray(layout.linear_after_flatten((4, 6))(xp.asarray(w)))
    got = fmap.transpose(0, 2, 1).reshape(2, -1) @ kernel
    np.testing.assert_allclose(got, F.linear(t(fmap).flatten(1), t(w)).numpy(), **TOL)


def test_linear_after_flatten_normalizes_chw_to_a_tuple_of_ints():
    convert = layout.linear_after_flatten([np.int64(2), 3, 4])
    assert convert.chw == (2, 3, 4) and type(convert.chw) is tuple
    assert all(type(d) is int for d in convert.chw)
    assert hash(convert) == hash(layout.linear_after_flatten((2, 3, 4)))
    assert repr(convert) == "linear_after_flatten(chw=(2, 3, 4))"


def test_linear_after_flatten_size_mismatch_message():
    msg = ("layout.linear_after_flatten: weight of shape (5, 20) has 20 inputs, but "
           "chw=(2, 3, 4) flattens to 24")
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        layout.linear_after_flatten((2, 3, 4))(np.zeros((5, 20)))


def heads_of(y, h):  # (..., H*D) -> (..., H, D), as Hugging Face splits heads
    return y.reshape(*y.shape[:-1], h, -1)


@ARRAYS
def test_attention_heads_against_torch_linear(xp):
    h, d, e = 3, 2, 5
    w, b, x = data(h * d, e, seed=20), data(h * d, seed=21), data(4, e, seed=22)
    want = heads_of(F.linear(t(x), t(w), t(b)).numpy(), h)
    kernel, bias = (np.asarray(layout.attention_heads(h)(xp.asarray(a))) for a in (w, b))
    assert kernel.shape == (e, h, d) and bias.shape == (h, d)
    np.testing.assert_allclose(np.einsum("ni,ihd->nhd", x, kernel) + bias, want, **TOL)


def test_attention_heads_split_message():
    msg = "layout.attention_heads: 10 features do not split into num_heads=4"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        layout.attention_heads(4)(np.zeros((10, 3)))
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        layout.attention_heads(4)(np.zeros(10))


@ARRAYS
def test_attention_qkv_against_torch_in_projection(xp):
    h, d = 2, 3
    e = h * d
    w, b, x = data(3 * e, e, seed=23), data(3 * e, seed=24), data(4, e, seed=25)
    q, k, v = (heads_of(y.numpy(), h) for y in F.linear(t(x), t(w), t(b)).chunk(3, dim=-1))
    kernels, biases = (layout.attention_qkv(h)(xp.asarray(a)) for a in (w, b))
    assert list(kernels) == ["query/kernel", "key/kernel", "value/kernel"]
    assert list(biases) == ["query/bias", "key/bias", "value/bias"]
    for part, want in zip(("query", "key", "value"), (q, k, v), strict=True):
        kernel, bias = np.asarray(kernels[f"{part}/kernel"]), np.asarray(biases[f"{part}/bias"])
        got = np.einsum("ni,ihd->nhd", x, kernel) + bias
        np.testing.assert_allclose(got, want, **TOL)


def test_attention_qkv_split_message():
    msg = "layout.attention_qkv: 10 rows are not 3 * E"
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        layout.attention_qkv(2)(np.zeros((10, 4)))


@ARRAYS
def test_attention_out_against_torch_linear(xp):
    h, d, e = 3, 2, 4
    w, b, o = data(e, h * d, seed=26), data(e, seed=27), data(5, h, d, seed=28)
    want = F.linear(t(o.reshape(5, -1)), t(w), t(b)).numpy()
    kernel = np.asarray(layout.attention_out(h)(xp.asarray(w)))
    assert kernel.shape == (h, d, e)
    assert layout.attention_out(h)(b) is b
    np.testing.assert_allclose(np.einsum("nhd,hde->ne", o, kernel) + b, want, **TOL)


LINEAR_HINT = (" It is the transpose: a PyTorch Linear weight (out, in)? Pass "
               "transform=jaxinit.layout.linear.")
CONV_HINT = (" It is in PyTorch conv layout (out, in, *kernel): pass "
             "transform=jaxinit.layout.conv.")
TCONV_HINT = (" It is in PyTorch transposed-conv layout (in, out, *kernel): pass "
              "transform=jaxinit.layout.conv_transpose.")
ORDER_HINT = " The same dimensions in another order: a layout difference (pass transform=)."


@pytest.mark.parametrize("stored, wanted, hint", [
    ((4, 3), (3, 4), LINEAR_HINT),
    ((8, 3, 5), (5, 3, 8), CONV_HINT),
    ((8, 3, 5, 6), (5, 6, 3, 8), CONV_HINT),
    ((8, 3, 5, 6, 7), (5, 6, 7, 3, 8), CONV_HINT),
    ((8, 3, 5), (5, 8, 3), TCONV_HINT),
    ((8, 3, 5, 6), (5, 6, 8, 3), TCONV_HINT),
    ((8, 3, 5, 6, 7), (5, 6, 7, 8, 3), TCONV_HINT),
    ((8, 6), (6, 4, 2), " It is a fused-heads projection: pass "
                        "transform=jaxinit.layout.attention_heads(4)."),
    ((2, 3, 4), (3, 2, 4), ORDER_HINT),
    ((8, 3, 5, 6, 7, 9), (5, 6, 7, 9, 3, 8), ORDER_HINT),  # rank 6: no conv has it
    ((4, 3, 2), (3, 4, 2), ORDER_HINT),
    ((4, 3), (3, 5), ""),
    ((8, 6), (6, 2, 3), ""),
    ((8, 6), (8, 4, 2), ""),
    ((8, 6), (6, 4, 2, 1), ""),
    ((3, 4, 5), (5, 4, 6), ""),
])
def test_layout_hint(stored, wanted, hint):
    assert layout_hint(stored, wanted) == hint


@pytest.mark.parametrize("ndim, stride, padding, output_padding, kernel",
                         [(1, 2, 1, 1, 3), (3, 1, 0, 0, 2)])
def test_conv_transpose_in_1d_and_3d_against_torch(ndim, stride, padding, output_padding, kernel):
    # Flax padding k - 1 - p on the left, k - 1 - p + output_padding on the right.
    w, b = data(4, 3, *([kernel] * ndim), seed=29), data(3, seed=30)
    x = data(2, 4, *([3] * ndim), seed=31)
    op = getattr(F, f"conv_transpose{ndim}d")
    want = op(t(x), t(w), t(b), stride=stride, padding=padding,
              output_padding=output_padding).numpy()
    lo = kernel - 1 - padding
    conv = nn.ConvTranspose(3, (kernel,) * ndim, strides=(stride,) * ndim,
                            padding=[(lo, lo + output_padding)] * ndim)
    got = conv.apply({"params": {"kernel": layout.conv_transpose(w), "bias": b}},
                     np.moveaxis(x, 1, -1))
    np.testing.assert_allclose(got, np.moveaxis(want, 1, -1), **TOL)
