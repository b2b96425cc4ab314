"""jaxinit.torch against torch.nn.init: same distributions (two-sample KS) and same fans.

PyTorch draws on its (out, in, *k) layout, jaxinit.torch on Flax's (*k, in, out) for the
same layer. A two-sample Kolmogorov-Smirnov test with p > 1e-4 passes a correct scheme
with probability 1 - 1e-4 (p is uniform under the null), and each test also shows a
deliberately wrong scheme failing the same check, so the check has power.
"""

import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import stats

import jaxinit
import jaxinit.torch as jt

KEY = jax.random.key(0)
P_MIN = 1e-4


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def torch_draw(fn, shape, **kwargs):
    w = torch.empty(shape)
    fn(w, **kwargs)
    return w.numpy()


def flax_shape(torch_shape):
    """(out, in, *k) -> (*k, in, out)."""
    out, inp, *k = torch_shape
    return (*k, inp, out)


def ks(a, b):
    return stats.ks_2samp(np.ravel(a), np.ravel(np.asarray(b, np.float32))).pvalue


def fans_match(init, torch_shape):
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(torch_shape))
    d = jaxinit.describe(init, flax_shape(torch_shape))
    return (d.fan_in, d.fan_out) == (fan_in, fan_out)


LINEAR = (256, 512)            # nn.Linear(512, 256): 131072 weights
CONV = (64, 32, 3, 3)          # nn.Conv2d(32, 64, 3): 18432 weights


@pytest.mark.parametrize("torch_shape", [LINEAR, CONV], ids=["linear", "conv"])
@pytest.mark.parametrize(("ours", "theirs", "kwargs"), [
    (jt.kaiming_uniform(), torch.nn.init.kaiming_uniform_, {}),
    (jt.kaiming_uniform(a=0.2, mode="fan_out"), torch.nn.init.kaiming_uniform_,
     {"a": 0.2, "mode": "fan_out"}),
    (jt.kaiming_normal(nonlinearity="relu"), torch.nn.init.kaiming_normal_,
     {"nonlinearity": "relu"}),
    (jt.kaiming_normal(mode="fan_out", nonlinearity="tanh"), torch.nn.init.kaiming_normal_,
     {"mode": "fan_out", "nonlinearity": "tanh"}),
    (jt.xavier_uniform(gain=jt.calculate_gain("tanh")), torch.nn.init.xavier_uniform_,
     {"gain": 5 / 3}),
    (jt.xavier_normal(), torch.nn.init.xavier_normal_, {}),
], ids=["kaiming_uniform", "kaiming_uniform_a", "kaiming_normal", "kaiming_normal_out",
        "xavier_uniform", "xavier_normal"])
def test_fan_schemes(ours, theirs, kwargs, torch_shape):
    theirs_w = torch_draw(theirs, torch_shape, **kwargs)
    w = ours(KEY, flax_shape(torch_shape))
    assert ks(theirs_w, w) > P_MIN
    assert fans_match(ours, torch_shape)


def test_kaiming_normal_is_untruncated():
    """PyTorch's normal has full tails; jaxinit.he_normal (jax.nn's truncated one) differs."""
    theirs_w = torch_draw(torch.nn.init.kaiming_normal_, LINEAR, nonlinearity="relu")
    assert ks(theirs_w, jt.kaiming_normal(nonlinearity="relu")(KEY, (512, 256))) > P_MIN
    assert ks(theirs_w, jaxinit.he_normal()(KEY, (512, 256))) < P_MIN


def test_default_linear_and_conv_modules():
    lin = torch.nn.Linear(512, 256)
    conv = torch.nn.Conv2d(32, 64, 3)
    assert ks(lin.weight.detach().numpy(), jt.linear()(KEY, (512, 256))) > P_MIN
    assert ks(conv.weight.detach().numpy(), jt.linear()(KEY, (3, 3, 32, 64))) > P_MIN
    assert fans_match(jt.linear(), LINEAR) and fans_match(jt.linear(), CONV)
    # Wrong scheme: lecun_uniform has 3x PyTorch's variance.
    assert ks(lin.weight.detach().numpy(), jaxinit.lecun_uniform()(KEY, (512, 256))) < P_MIN
    # Bias: nn.Linear(16, 65536) has 65536 biases U(+-1/4).
    bias = torch.nn.Linear(16, 65536).bias.detach().numpy()
    assert ks(bias, jt.linear_bias(16)(KEY, (65536,))) > P_MIN
    assert ks(bias, jt.linear_bias(32)(KEY, (65536,))) < P_MIN


def test_calculate_gain_table():
    cases = [("linear", None), ("conv2d", None), ("conv_transpose3d", None),
             ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
             ("leaky_relu", 0.2), ("leaky_relu", 0), ("selu", None)]
    for name, param in cases:
        assert jt.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param), rel=1e-12), name


def test_trunc_normal_absolute_bounds():
    kw = {"mean": 0.5, "std": 2.0, "a": -1.0, "b": 3.0}
    theirs_w = torch_draw(torch.nn.init.trunc_normal_, (65536,), **kw)
    w = jt.trunc_normal(**kw)(KEY, (65536,))
    assert ks(theirs_w, w) > P_MIN
    assert float(w.min()) >= -1.0 and float(w.max()) <= 3.0
    d = jaxinit.describe(jt.trunc_normal(**kw), (65536,))
    assert d.mean == pytest.approx(theirs_w.mean(), abs=5 * float(theirs_w.std()) / 256)  # 5 SE
    # jaxinit.truncated_normal reads bounds in units of std and ignores the mean: differs.
    assert ks(theirs_w, jaxinit.truncated_normal(2.0, lower=-1.0, upper=3.0)(KEY, (65536,))) < P_MIN


def test_orthogonal():
    theirs_w = torch_draw(torch.nn.init.orthogonal_, (128, 256), gain=2.0)   # Linear(256, 128)
    w = jt.orthogonal(2.0)(KEY, (256, 128))
    np.testing.assert_allclose(theirs_w @ theirs_w.T, 4 * np.eye(128), atol=1e-4)
    np.testing.assert_allclose(np.asarray(w.T @ w), 4 * np.eye(128), atol=1e-4)
    assert ks(theirs_w, w) > P_MIN
    assert ks(theirs_w, jt.orthogonal(1.0)(KEY, (256, 128))) < P_MIN


def test_sparse():
    theirs_w = torch_draw(torch.nn.init.sparse_, (256, 512), sparsity=0.3, std=0.05)
    w = np.asarray(jt.sparse(0.3, std=0.05)(KEY, (512, 256)))
    zeros = math.ceil(0.3 * 256)   # per input unit: a column of PyTorch's (out, in)
    assert ((theirs_w == 0).sum(axis=0) == zeros).all()
    assert ((w == 0).sum(axis=1) == zeros).all()
    assert ks(theirs_w[theirs_w != 0], w[w != 0]) > P_MIN


def test_eye_and_dirac_exact():
    assert np.array_equal(torch_draw(torch.nn.init.eye_, (3, 5)).T, jt.eye()(KEY, (5, 3)))
    for torch_shape, groups in [((8, 4, 3, 3), 2), ((6, 6, 4), 1), ((4, 4, 2, 4, 3), 1),
                                ((6, 2, 5), 3)]:
        theirs_w = torch_draw(torch.nn.init.dirac_, torch_shape, groups=groups)
        rank = len(torch_shape)
        flax_w = np.transpose(theirs_w, (*range(2, rank), 1, 0))
        np.testing.assert_array_equal(jt.dirac(groups)(KEY, flax_shape(torch_shape)), flax_w)
    # jaxinit.dirac (Flax's SAME centre) differs from PyTorch for an even kernel.
    assert not np.array_equal(jaxinit.dirac()(KEY, (4, 6, 6)),
                              np.transpose(torch_draw(torch.nn.init.dirac_, (6, 6, 4)),
                                           (2, 1, 0)))


def test_embedding():
    theirs_w = torch.nn.Embedding(1000, 64).weight.detach().numpy()
    assert ks(theirs_w, jt.embedding()(KEY, (1000, 64))) > P_MIN
    assert ks(theirs_w, jaxinit.normal(0.9)(KEY, (1000, 64))) < P_MIN


# --- default_rules: a Flax model that starts like its PyTorch twin -------------------------


class FlaxNet(nn.Module):
    @nn.compact
    def __call__(self, tokens, image):
        x = nn.Embed(1000, 64)(tokens)
        x = nn.LayerNorm()(x)
        x = nn.MultiHeadDotProductAttention(num_heads=4)(x, x)
        x = nn.Dense(256)(x)
        y = nn.Conv(64, (3, 3))(image)
        y = nn.ConvTranspose(16, (3, 3))(y)
        return x, y


def torch_twin():
    return {
        "Embed_0/embedding": torch.nn.Embedding(1000, 64).weight,
        "Dense_0/kernel": torch.nn.Linear(64, 256).weight,
        "Dense_0/bias": torch.nn.Linear(64, 256).bias,
        "Conv_0/kernel": torch.nn.Conv2d(32, 64, 3).weight,
        "Conv_0/bias": torch.nn.Conv2d(32, 64, 3).bias,
        "ConvTranspose_0/kernel": torch.nn.ConvTranspose2d(64, 16, 3).weight,
        "ConvTranspose_0/bias": torch.nn.ConvTranspose2d(64, 16, 3).bias,
        # The attention projections as separate nn.Linear(64, 64) layers.
        "MultiHeadDotProductAttention_0/query/kernel": torch.nn.Linear(64, 64).weight,
        "MultiHeadDotProductAttention_0/out/kernel": torch.nn.Linear(64, 64).weight,
    }


def test_default_rules_match_pytorch_model():
    net = FlaxNet()
    v = net.init(jax.random.key(1), jnp.zeros((1, 4), jnp.int32), jnp.ones((1, 8, 8, 32)))
    v = jaxinit.reinit(v, KEY, jt.default_rules())
    p = v["params"]
    twin = torch_twin()

    def leaf(path):
        node = p
        for part in path.split("/"):
            node = node[part]
        return np.asarray(node)

    for path, tensor in twin.items():
        theirs_w = tensor.detach().numpy()
        ours = leaf(path)
        assert ours.size == theirs_w.size, path
        assert ks(theirs_w, ours) > P_MIN, path
    np.testing.assert_array_equal(p["LayerNorm_0"]["scale"], np.ones(64))
    np.testing.assert_array_equal(p["LayerNorm_0"]["bias"], np.zeros(64))
    # Bounds from PyTorch's own fan computation, per layer: within U(+-1/sqrt(fan_in)) and
    # reaching past 0.9 of it (P(max |w| < 0.9 b) = 0.9^n < 1e-11 for n >= 256 weights).
    for path, tensor in twin.items():
        if path.endswith("kernel"):
            fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(tensor)
            top = np.abs(leaf(path)).max() * math.sqrt(fan_in)
            assert 0.9 < top <= 1, path
    # ConvTranspose bias: PyTorch's fan_in is out * k * k = 144, not in * k * k = 576
    # (16 biases: P(max |b| <= 1/24 under the right scheme) = 0.5^16 = 1.5e-5).
    assert np.abs(p["ConvTranspose_0"]["bias"]).max() <= 1 / math.sqrt(144)
    assert np.abs(p["ConvTranspose_0"]["bias"]).max() > 1 / math.sqrt(576)
    # The wrong fan for the attention query kernel (64, 4, 16) (jt.linear's in_axis=-2:
    # fan_in = 4 * 64, not 64) fails the same check.
    query = jt.linear()(KEY, (64, 4, 16))
    assert np.abs(np.asarray(query)).max() * math.sqrt(64) < 0.9


@pytest.mark.parametrize("shape", [(3,), (2, 3, 4), ()], ids=str)
def test_eye_refuses_what_torch_refuses(shape):
    with pytest.raises(ValueError, match="2 dimensions"):
        torch.nn.init.eye_(torch.empty(shape))
    message = f"eye: shape={shape} has rank {len(shape)}; expected"
    with pytest.raises(ValueError, match=re.escape(message)):
        jt.eye()(KEY, shape)


@pytest.mark.parametrize(("ours", "theirs"), [
    (jt.kaiming_uniform(), torch.nn.init.kaiming_uniform_),
    (jt.kaiming_normal(mode="fan_out"), torch.nn.init.kaiming_normal_),
], ids=["kaiming_uniform", "kaiming_normal"])
@pytest.mark.parametrize("torch_shape", [(0, 3), (3, 0), (0,), (4, 0, 3, 3)], ids=str)
def test_kaiming_zero_element_weight_warns_and_returns_it(ours, theirs, torch_shape):
    with pytest.warns(UserWarning, match="zero-element"):
        w = theirs(torch.empty(torch_shape))
    shape = flax_shape(torch_shape) if len(torch_shape) > 1 else torch_shape
    with pytest.warns(UserWarning, match=rf"{ours.name}: shape=.* has no elements"):
        out = ours(KEY, shape)
    assert out.shape == shape and out.dtype == jnp.float32 and w.numel() == out.size == 0


@pytest.mark.parametrize("init", [jt.xavier_uniform(), jt.xavier_normal(), jt.eye()],
                         ids=["xavier_uniform", "xavier_normal", "eye"])
@pytest.mark.parametrize("torch_shape", [(0, 3), (3, 0)], ids=str)
def test_zero_element_weight_without_warning_like_torch(init, torch_shape):
    fn = {"eye": torch.nn.init.eye_}.get(init.name, torch.nn.init.xavier_uniform_)
    assert fn(torch.empty(torch_shape)).numel() == 0   # no warning: filterwarnings=error
    out = init(KEY, torch_shape[::-1])
    assert out.shape == torch_shape[::-1] and out.size == 0
