"""PyTorch twins: a state_dict saved as safetensors, loaded with jaxinit.torch rules into
Flax (linen and nnx), computes what PyTorch computes (float32, rtol = atol = 1e-5).
"""

import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.torch
import torch
from conftest import missing, require
from flax import nnx

import jaxinit
from jaxinit._src.pretrained.torch_rules import rules as torch_rules

TOL = {"rtol": 1e-5, "atol": 1e-5}


def save(module, path):
    safetensors.torch.save_file({k: v.contiguous() for k, v in module.state_dict().items()},
                                str(path))
    return path


def torch_out(module, x):
    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def load(target, path, **rule_kwargs):
    result, report = jaxinit.load_pretrained(target, path, rules=torch_rules(target, **rule_kwargs),
                                             on_unexpected="error", on_missing="error")
    return result, report


def data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --- MLP ---------------------------------------------------------------------------------


class TorchMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(5, 16), torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3, name="fc2")(jnp.tanh(nn.Dense(16, name="fc1")(x)))


class NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.fc1, self.fc2 = nnx.Linear(5, 16, rngs=rngs), nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        return self.fc2(jnp.tanh(self.fc1(x)))


def test_mlp_twin(tmp_path):
    torch.manual_seed(0)
    net, x = TorchMLP(), data(4, 5)
    path = save(net, tmp_path / "mlp.safetensors")
    variables, report = load(LinenMLP().init(jax.random.key(0), x), path)
    assert len(report.loaded) == 4
    np.testing.assert_allclose(LinenMLP().apply(variables, x), torch_out(net, x), **TOL)
    model, _ = load(NnxMLP(nnx.Rngs(0)), path)
    np.testing.assert_allclose(model(x), torch_out(net, x), **TOL)


# --- CNN with BatchNorm, GroupNorm, grouped and depthwise convs, flatten + Linear -----------


class TorchCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.gn = torch.nn.GroupNorm(2, 8)
        self.conv3 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.fc = torch.nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):  # x: NCHW
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.gn(self.conv2(x)))
        return self.fc(self.conv3(x).flatten(1))


class NnxCNN(nnx.Module):
    def __init__(self, rngs):
        self.conv1 = nnx.Conv(3, 8, (3, 3), padding=1, rngs=rngs)
        self.bn1 = nnx.BatchNorm(8, epsilon=1e-5, use_running_average=True, rngs=rngs)
        self.conv2 = nnx.Conv(8, 8, (3, 3), padding=1, feature_group_count=2, rngs=rngs)
        self.gn = nnx.GroupNorm(8, num_groups=2, epsilon=1e-5, rngs=rngs)
        self.conv3 = nnx.Conv(8, 8, (3, 3), strides=2, padding=1, feature_group_count=8,
                              use_bias=False, rngs=rngs)
        self.fc = nnx.Linear(8 * 4 * 4, 5, rngs=rngs)

    def __call__(self, x):  # x: NHWC
        x = nnx.relu(self.bn1(self.conv1(x)))
        x = nnx.relu(self.gn(self.conv2(x)))
        x = self.conv3(x)
        return self.fc(x.reshape(x.shape[0], -1))


class LinenCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(8, (3, 3), padding=1, name="conv1")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True, epsilon=1e-5, name="bn1")(x))
        x = nn.Conv(8, (3, 3), padding=1, feature_group_count=2, name="conv2")(x)
        x = nn.relu(nn.GroupNorm(num_groups=2, epsilon=1e-5, name="gn")(x))
        x = nn.Conv(8, (3, 3), strides=2, padding=1, feature_group_count=8, use_bias=False,
                    name="conv3")(x)
        return nn.Dense(5, name="fc")(x.reshape(x.shape[0], -1))


def trained_cnn():
    torch.manual_seed(0)
    net = TorchCNN()
    net.train()
    with torch.no_grad():  # non-trivial running statistics and norm affine parameters
        for seed in range(3):
            net(torch.from_numpy(data(4, 3, 8, 8, seed=seed)) * 2 + 1)
        for p in (net.bn1.weight, net.bn1.bias, net.gn.weight, net.gn.bias):
            p.add_(torch.randn_like(p) * 0.3)
    return net


@pytest.mark.slow
def test_cnn_batchnorm_twin(tmp_path):
    net = trained_cnn()
    path = save(net, tmp_path / "cnn.safetensors")
    assert "bn1.num_batches_tracked" in jaxinit.open_weights(path)
    x = data(2, 3, 8, 8, seed=9)
    expected = torch_out(net, x)
    x_nhwc = x.transpose(0, 2, 3, 1)
    flatten = {"fc": (8, 4, 4)}
    model, report = load(NnxCNN(nnx.Rngs(0)), path, flatten=flatten)
    assert report.ignored == ["bn1.num_batches_tracked"]
    assert report.loaded["bn1/mean"] == "bn1.running_mean"
    np.testing.assert_allclose(model(x_nhwc), expected, **TOL)
    variables, report = load(LinenCNN().init(jax.random.key(0), x_nhwc), path, flatten=flatten)
    assert report.loaded["batch_stats/bn1/var"] == "bn1.running_var"
    np.testing.assert_allclose(LinenCNN().apply(variables, x_nhwc), expected, **TOL)
    # Without the flatten fix the same weights give a different function.
    wrong, _ = load(NnxCNN(nnx.Rngs(0)), path)
    assert not np.allclose(wrong(x_nhwc), expected, **TOL)


# groups=4 is depthwise (in_channels == groups)
@pytest.mark.parametrize("ndim, groups", [(1, 1), (1, 4), (2, 2), (3, 1), (3, 4)])
def test_conv_layouts(tmp_path, ndim, groups):
    torch.manual_seed(ndim * 10 + groups)
    conv = getattr(torch.nn, f"Conv{ndim}d")(4, 8, 3, padding=1, groups=groups)
    x = data(2, 4, *([5] * ndim))
    flax_conv = nn.Conv(8, (3,) * ndim, padding=1, feature_group_count=groups)
    x_last = np.moveaxis(x, 1, -1)
    variables = flax_conv.init(jax.random.key(0), x_last)
    variables, _ = load(variables, save(conv, tmp_path / "c.safetensors"))
    np.testing.assert_allclose(flax_conv.apply(variables, x_last),
                               np.moveaxis(torch_out(conv, x), 1, -1), **TOL)


# --- Transposed convolution ----------------------------------------------------------------


class TorchUp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up = torch.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x):
        return self.up(x)


class NnxUp(nnx.Module):
    def __init__(self, rngs):
        # PyTorch padding p, output_padding q <-> Flax [(k - 1 - p, k - 1 - p + q)]
        self.up = nnx.ConvTranspose(4, 3, (3, 3), strides=2, padding=[(1, 2), (1, 2)],
                                    rngs=rngs)

    def __call__(self, x):
        return self.up(x)


class LinenUp(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.ConvTranspose(3, (3, 3), strides=2, padding=[(1, 2), (1, 2)], name="up")(x)


def test_conv_transpose_twin(tmp_path):
    torch.manual_seed(0)
    net, x = TorchUp(), data(2, 4, 5, 5)
    path = save(net, tmp_path / "up.safetensors")
    expected = torch_out(net, x).transpose(0, 2, 3, 1)
    x_nhwc = x.transpose(0, 2, 3, 1)
    model, _ = load(NnxUp(nnx.Rngs(0)), path)  # found automatically in nnx
    assert model(x_nhwc).shape == expected.shape == (2, 10, 10, 3)
    np.testing.assert_allclose(model(x_nhwc), expected, **TOL)
    variables, _ = load(LinenUp().init(jax.random.key(0), x_nhwc), path, transposed=["up"])
    np.testing.assert_allclose(LinenUp().apply(variables, x_nhwc), expected, **TOL)


# --- Transformer block: Embedding, LayerNorm, nn.MultiheadAttention, MLP --------------------

E, H, V = 16, 4, 11


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(V, E)
        self.ln1 = torch.nn.LayerNorm(E)
        self.attn = torch.nn.MultiheadAttention(E, H, batch_first=True)
        self.ln2 = torch.nn.LayerNorm(E)
        self.fc1, self.fc2 = torch.nn.Linear(E, 4 * E), torch.nn.Linear(4 * E, E)

    def forward(self, tokens):
        x = self.embed(tokens)
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))


class NnxBlock(nnx.Module):
    def __init__(self, rngs):
        self.embed = nnx.Embed(V, E, rngs=rngs)
        self.ln1 = nnx.LayerNorm(E, epsilon=1e-5, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(H, E, decode=False, rngs=rngs)
        self.ln2 = nnx.LayerNorm(E, epsilon=1e-5, rngs=rngs)
        self.fc1, self.fc2 = nnx.Linear(E, 4 * E, rngs=rngs), nnx.Linear(4 * E, E, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens)
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(nnx.gelu(self.fc1(self.ln2(x)), approximate=False))


class LinenBlock(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(V, E, name="embed")(tokens)
        h = nn.LayerNorm(epsilon=1e-5, name="ln1")(x)
        x = x + nn.MultiHeadDotProductAttention(H, name="attn")(h)
        h = nn.Dense(4 * E, name="fc1")(nn.LayerNorm(epsilon=1e-5, name="ln2")(x))
        return x + nn.Dense(E, name="fc2")(nn.gelu(h, approximate=False))


def test_transformer_block_twin(tmp_path):
    torch.manual_seed(0)
    net = TorchBlock()
    with torch.no_grad():
        for ln in (net.ln1, net.ln2):
            ln.weight.add_(torch.randn(E) * 0.2)
            ln.bias.add_(torch.randn(E) * 0.2)
        net.attn.in_proj_bias.add_(torch.randn(3 * E) * 0.2)
    tokens = np.random.default_rng(0).integers(0, V, (2, 7))
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(tokens)).numpy()
    path = save(net, tmp_path / "block.safetensors")
    model, report = load(NnxBlock(nnx.Rngs(0)), path)
    assert report.loaded["attn/query/kernel"] == "attn.in_proj_weight"
    assert report.loaded["attn/out/kernel"] == "attn.out_proj.weight"
    np.testing.assert_allclose(model(jnp.asarray(tokens)), expected, **TOL)
    variables, _ = load(LinenBlock().init(jax.random.key(0), tokens), path)
    np.testing.assert_allclose(LinenBlock().apply(variables, tokens), expected, **TOL)


def test_layout_converters_against_torch_functional():
    """Each converter alone: the Flax primitive on converted weights equals torch's."""
    rng = np.random.default_rng(3)
    w, b = rng.standard_normal((6, 5)).astype(np.float32), rng.standard_normal(6).astype(
        np.float32)
    x = rng.standard_normal((2, 5)).astype(np.float32)
    expected = torch.nn.functional.linear(torch.from_numpy(x), torch.from_numpy(w),
                                          torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(x @ jaxinit.layout.linear(w) + b, expected, **TOL)
    bn = jaxinit.layout.batch_norm({"weight": b, "bias": b, "running_mean": b,
                                    "running_var": b * b, "num_batches_tracked": 3})
    assert set(bn["batch_stats"]) == {"mean", "var"}
    with pytest.raises(ValueError, match=r"layout\.linear: weight of shape \(6,\) has rank 1"):
        jaxinit.layout.linear(b)
    with pytest.raises(ValueError, match=r"has 30 inputs, but chw=\(2, 2, 2\) flattens to 8"):
        jaxinit.layout.linear_after_flatten((2, 2, 2))(w.reshape(1, 30))


# --- A real PyTorch checkpoint: facenet-pytorch's MTCNN PNet -------------------------------


def facenet_file(name):
    path = require("facenet_pytorch",
                   "pip install facenet-pytorch==2.6.0 --no-deps, as make does") / "data" / name
    if not path.exists():
        missing(f"facenet-pytorch does not ship {name}")
    return path


def test_missing_asset_skips_locally_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no_such_pkg_xyz is not installed"):
        require("no_such_pkg_xyz")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no_such_pkg_xyz is not installed.*CI"):
        require("no_such_pkg_xyz")
    assert require("torch") == pathlib.Path(torch.__file__).parent  # present: its directory


class TorchPNet(torch.nn.Module):
    """MTCNN's proposal network (Zhang et al. 2016), the architecture of facenet's PNet.

    Written here because importing facenet_pytorch needs torchvision.
    """

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = torch.nn.Conv2d(3, 10, 3), torch.nn.PReLU(10)
        self.pool1 = torch.nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = torch.nn.Conv2d(10, 16, 3), torch.nn.PReLU(16)
        self.conv3, self.prelu3 = torch.nn.Conv2d(16, 32, 3), torch.nn.PReLU(32)
        self.conv4_1, self.conv4_2 = torch.nn.Conv2d(32, 2, 1), torch.nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class PReLU(nnx.Module):
    """Per-channel PReLU with PyTorch's parameter name ``weight``."""

    def __init__(self, channels):
        self.weight = nnx.Param(jnp.full((channels,), 0.25))

    def __call__(self, x):
        return jnp.where(x >= 0, x, self.weight[...][None, None, None, :] * x)


class NnxPNet(nnx.Module):
    def __init__(self, rngs):
        self.conv1, self.prelu1 = nnx.Conv(3, 10, (3, 3), padding="VALID", rngs=rngs), PReLU(10)
        self.conv2, self.prelu2 = nnx.Conv(10, 16, (3, 3), padding="VALID", rngs=rngs), PReLU(16)
        self.conv3, self.prelu3 = nnx.Conv(16, 32, (3, 3), padding="VALID", rngs=rngs), PReLU(32)
        self.conv4_1 = nnx.Conv(32, 2, (1, 1), rngs=rngs)
        self.conv4_2 = nnx.Conv(32, 4, (1, 1), rngs=rngs)

    def __call__(self, x):  # even spatial size before the pool: ceil_mode changes nothing
        x = nnx.max_pool(self.prelu1(self.conv1(x)), (2, 2), strides=(2, 2))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), jax.nn.softmax(self.conv4_1(x), axis=-1)


def test_facenet_pnet_state_dict():
    path = facenet_file("pnet.pt")
    with pytest.raises(jaxinit.PretrainedError, match="trusted=True"):
        jaxinit.open_weights(path)
    net = TorchPNet()
    state_dict = torch.load(path, weights_only=True)
    net.load_state_dict(state_dict)
    image = np.random.default_rng(0).uniform(-1, 1, (2, 3, 24, 24)).astype(np.float32)
    with torch.no_grad():
        boxes, probs = (o.numpy() for o in net.eval()(torch.from_numpy(image)))
    model = NnxPNet(nnx.Rngs(0))
    _, report = jaxinit.load_pretrained(model, path, trusted=True, rules=torch_rules(model),
                                        on_missing="error", on_unexpected="error")
    assert len(report.loaded) == len(state_dict) == 13  # 5 convs x (weight, bias) + 3 PReLUs
    got_boxes, got_probs = model(image.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(got_boxes, boxes.transpose(0, 2, 3, 1), **TOL)
    np.testing.assert_allclose(got_probs, probs.transpose(0, 2, 3, 1), **TOL)
