"""`jaxinit.diagnose` and `jaxinit diagnose` on user models defined here (linen, nnx, Equinox).

Every flag test pairs a deliberately bad init, which must raise the flag, with the same
model under a healthy init, which must raise none: a check that could not fail would
pass both. Expected numbers come from float64 NumPy formulas written out in the tests.
Keys are fixed, so every number is deterministic.
"""

import json
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import safetensors.numpy
from flax import linen as nn
from flax import nnx

import jaxinit
from jaxinit.__main__ import main

WIDTH, DEPTH, CLASSES, BATCH = 32, 10, 10, 64
# The Jacobian spectrum costs a second compiled program: computed where it is checked.
FAST = {"jacobian": False}
HE = jaxinit.he_normal()
X = jax.random.normal(jax.random.key(0), (BATCH, WIDTH))
Y = jax.random.randint(jax.random.key(1), (BATCH,), 0, CLASSES)


class MLP(nn.Module):
    kernel_init: jaxinit.Initializer = jaxinit.he_normal()
    bias_init: jaxinit.Initializer = jaxinit.zeros
    act: str = "relu"
    depth: int = DEPTH

    @nn.compact
    def __call__(self, x):
        act = getattr(jnp, self.act) if self.act == "tanh" else nn.relu
        for _ in range(self.depth):
            x = act(nn.Dense(WIDTH, kernel_init=self.kernel_init, bias_init=self.bias_init)(x))
        return nn.Dense(CLASSES, kernel_init=jaxinit.lecun_normal(), name="head")(x)


def hidden(prefix, first=0):
    return [f"{prefix}{i}" for i in range(first, DEPTH)]


# --------------------------------------------------------------------------------------
# Flags: the bad init raises its flag on the right layers, the healthy init raises none.


def test_healthy_he_mlp_raises_no_flag():
    d = jaxinit.diagnose(MLP(), (X, Y))
    assert d.flags == (), d
    assert [layer.path for layer in d.layers] == [*hidden("Dense_"), "head"]
    assert "no flags" in str(d)


def test_tiny_std_vanishes_in_the_deep_layers():
    d = jaxinit.diagnose(MLP(kernel_init=jaxinit.normal(1e-3)), (X, Y))
    # Each layer multiplies the std by about 1e-3 * sqrt(32 / 2) = 4e-3.
    assert set(hidden("Dense_", 3)) <= set(d.flagged("vanishing"))
    flag = next(f for f in d.flags if f.path == "Dense_9")
    assert "he_normal" in flag.suggestion and "output std" in flag.message
    assert d.flagged("dead") == d.flagged("saturated") == d.flagged("exploding") == []


def test_huge_std_with_tanh_saturates():
    healthy = jaxinit.diagnose(MLP(kernel_init=jaxinit.glorot_normal(), act="tanh", depth=4),
                               (X, Y), **FAST)
    assert healthy.flags == (), healthy
    # std 1: pre-activations of std sqrt(32) ~ 5.7, |tanh| >= 0.99 for |h| >= 2.65.
    d = jaxinit.diagnose(MLP(kernel_init=jaxinit.normal(1.0), act="tanh", depth=4), (X, Y),
                         **FAST)
    assert d.flagged("saturated") == ["Dense_0", "Dense_1", "Dense_2", "Dense_3"]
    assert "tanh" in next(f for f in d.flags if f.kind == "saturated").suggestion


def test_relu_with_negative_bias_is_dead():
    # First layer: pre-activations ~ N(-5, 2), positive on an example with p = 2e-4, so a
    # unit is dead on all 64 examples with p = 0.987; the later layers see all-zero inputs.
    d = jaxinit.diagnose(MLP(bias_init=jaxinit.constant(-5.0), depth=4), (X, Y), **FAST)
    # The head then sees zeros: its outputs are the same (zero) for every example.
    assert d.flagged("dead") == ["Dense_0", "Dense_1", "Dense_2", "Dense_3", "head"]
    dead = {layer.path: layer.activation.dead for layer in d.layers}
    assert dead["Dense_0"] > 0.9 and dead["Dense_3"] == 1.0


def test_exploding_std():
    d = jaxinit.diagnose(MLP(kernel_init=jaxinit.normal(1.0), depth=6), (X, Y), **FAST)
    # Each ReLU layer multiplies the std by about sqrt(32 / 2) = 4 (4^4 > 100) forward,
    # and the gradient by about as much backward.
    messages = {f.path: f.message for f in d.flags if f.kind == "exploding"}
    assert {"Dense_3", "Dense_4", "Dense_5"} <= set(messages)
    assert "output std" in messages["Dense_5"] and "gradient std" in messages["Dense_0"]
    # (The same MLP under He's scheme raises no flag: test_healthy_he_mlp_raises_no_flag.)
    assert "head" in d.flagged("loss")  # logits ~4^10: confidently wrong


# --------------------------------------------------------------------------------------
# Numbers against NumPy oracles.


def test_layer_statistics_against_a_float64_forward():
    """Output std, activation std, dead fraction and the model output, from a NumPy
    float64 forward of the same weights; includes a vanishing signal (std ~1e-20, whose
    squares underflow float32) to check that small stds are still measured."""
    for kernel_init, bias_init in ((jaxinit.normal(1e-3), jaxinit.zeros),
                                   (HE, jaxinit.constant(-0.5))):
        model = MLP(kernel_init=kernel_init, bias_init=bias_init)
        variables = model.init(jax.random.key(13), X)
        d = jaxinit.diagnose(model, (X, Y), variables=variables, **FAST)
        a = np.asarray(X, np.float64)
        p = variables["params"]
        for i, layer in enumerate(d.layers):
            name = f"Dense_{i}" if i < DEPTH else "head"
            h = a @ np.asarray(p[name]["kernel"], np.float64) + np.asarray(p[name]["bias"],
                                                                            np.float64)
            a = np.maximum(h, 0) if i < DEPTH else h
            assert layer.path == name and layer.activation_measured
            np.testing.assert_allclose(layer.output_std, h.std(), rtol=1e-4)
            np.testing.assert_allclose(layer.activation.std, a.std(), rtol=1e-4)
            assert layer.activation.dead == pytest.approx(np.mean(np.all(a <= 0, axis=0)))
        assert d.loss == pytest.approx(
            np.mean(np.log(np.exp(a).sum(1)) - a[np.arange(BATCH), np.asarray(Y)]), rel=1e-5)


class ConvNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (3, 3), kernel_init=jaxinit.he_normal())(x))
        return nn.Dense(CLASSES)(x.reshape(x.shape[0], -1))


def test_param_std_against_fans_numpy_oracle():
    x = jax.random.normal(jax.random.key(2), (16, 6, 6, 4))
    y = jax.random.randint(jax.random.key(3), (16,), 0, CLASSES)
    variables = ConvNet().init(jax.random.key(4), x)
    d = jaxinit.diagnose(ConvNet(), (x, y), variables=variables, **FAST)
    rows = {p.path: p for p in d.params}
    assert set(rows) == {"Conv_0/kernel", "Conv_0/bias", "Dense_0/kernel", "Dense_0/bias"}
    for path, fan_in, fan_out in (("Conv_0/kernel", 3 * 3 * 4, 3 * 3 * 8),
                                  ("Dense_0/kernel", 6 * 6 * 8, CLASSES)):
        w = np.asarray(variables["params"][path.split("/")[0]]["kernel"], np.float64)
        row = rows[path]
        assert (row.fan_in, row.fan_out) == (fan_in, fan_out)
        np.testing.assert_allclose(row.std, w.std(), rtol=1e-5)
        np.testing.assert_allclose(row.mean, w.mean(), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(row.lecun_std, (1 / fan_in) ** 0.5, rtol=1e-12)
        np.testing.assert_allclose(row.he_ratio, w.std() / (2 / fan_in) ** 0.5, rtol=1e-5)
    assert rows["Conv_0/bias"].fan_in is None and rows["Conv_0/bias"].lecun_ratio is None
    # He's scheme: std/he near 1. The sample std of n = 288 entries has a relative
    # standard error of 1/sqrt(2n) = 4.2%; 20% is 4.8 standard errors (a false failure
    # with p ~ 2e-6 over keys). The key is fixed, so the value is deterministic; LeCun's
    # scheme (ratio 0.71) fails the check, as it should.
    assert abs(rows["Conv_0/kernel"].he_ratio - 1) < 0.2


def test_chance_level_is_log_classes():
    zero_head = lambda c: nn.Dense(c, kernel_init=jaxinit.zeros)
    for classes in (3, 7):
        y = jax.random.randint(jax.random.key(5), (BATCH,), 0, classes)
        d = jaxinit.diagnose(zero_head(classes), (X, y), **FAST)
        # Zero logits: softmax is uniform and the cross-entropy is exactly log(C).
        assert d.chance_loss == pytest.approx(math.log(classes), rel=1e-12)
        assert d.loss == pytest.approx(math.log(classes), rel=1e-6)
        assert d.flags == ()  # a zero head is a deliberate init, not a vanishing layer
    # A custom loss has no chance level unless num_classes says so.
    sse = lambda apply, batch: jnp.sum(apply(batch[0]))
    assert jaxinit.diagnose(zero_head(7), (X, Y), sse, **FAST).chance_loss is None
    d = jaxinit.diagnose(zero_head(7), (X, Y), sse, num_classes=5, **FAST)
    assert d.chance_loss == pytest.approx(math.log(5), rel=1e-12)


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_update_ratio_matches_a_hand_computed_step(opt_name):
    dense = nn.Dense(3, bias_init=jaxinit.normal(0.5))
    x = jax.random.normal(jax.random.key(6), (8, 5))
    t = jax.random.normal(jax.random.key(7), (8, 3))
    variables = dense.init(jax.random.key(8), x)
    mse = lambda apply, batch: jnp.mean(jnp.square(apply(batch[0]) - batch[1]))
    lr = 0.1
    opt = optax.adam(lr) if opt_name == "adam" else optax.sgd(lr)
    d = jaxinit.diagnose(dense, (x, t), mse, variables=variables, optimizer=opt, **FAST)
    # float64 NumPy: r = xW + b - t, L = mean(r^2), dL/dW = 2 x^T r / (N out).
    x64, t64 = np.asarray(x, np.float64), np.asarray(t, np.float64)
    w = np.asarray(variables["params"]["kernel"], np.float64)
    b = np.asarray(variables["params"]["bias"], np.float64)
    r = x64 @ w + b - t64
    grads = {"kernel": 2 * x64.T @ r / r.size, "bias": 2 * r.sum(0) / r.size}
    weights = {"kernel": w, "bias": b}

    def step(g):
        if opt_name == "sgd":
            return -lr * g
        # Adam's first step: m = (1 - b1) g, v = (1 - b2) g^2; bias-corrected m / (1 - b1)
        # = g and v / (1 - b2) = g^2, so u = -lr g / (|g| + eps), eps = 1e-8.
        return -lr * g / (np.abs(g) + 1e-8)

    rows = {p.path: p for p in d.params}
    for name in ("kernel", "bias"):
        u = step(grads[name])
        np.testing.assert_allclose(rows[name].grad_norm, np.linalg.norm(grads[name]), rtol=1e-4)
        np.testing.assert_allclose(rows[name].update_ratio,
                                   np.linalg.norm(u) / np.linalg.norm(weights[name]), rtol=1e-4)
    layer_u = np.sqrt(sum(np.sum(step(grads[n]) ** 2) for n in grads))
    layer_w = np.sqrt(np.sum(w**2) + np.sum(b**2))
    np.testing.assert_allclose(d.layers[0].update_ratio, layer_u / layer_w, rtol=1e-4)
    assert d.loss == pytest.approx(np.mean(r**2), rel=1e-5)


class Residual(nn.Module):
    blocks: int

    @nn.compact
    def __call__(self, x):
        for i in range(self.blocks):
            x = Block(name=f"Block_{i}")(x)
        return nn.Dense(CLASSES, name="head")(x)


class Block(nn.Module):
    @nn.compact
    def __call__(self, x):  # x + x I = 2x: the stream's std doubles in every block
        return x + nn.Dense(x.shape[-1], kernel_init=jaxinit.identity())(x)


def test_residual_stream_growth_across_blocks():
    d = jaxinit.diagnose(Residual(6), (X, Y), **FAST)
    x_std = np.asarray(X, np.float64).std()
    assert [p for p, _ in d.residual] == [*(f"Block_{i}" for i in range(6)), "output"]
    np.testing.assert_allclose([s for _, s in d.residual], x_std * 2.0 ** np.arange(7),
                               rtol=1e-5)
    assert d.residual_growth == pytest.approx(64, rel=1e-5)
    assert "output" not in d.flagged("exploding")  # 2^6 = 64 < 100
    deep = jaxinit.diagnose(Residual(7), (X, Y), **FAST)  # 2^7 = 128 > 100
    assert "output" in deep.flagged("exploding")
    assert deep.residual_growth == pytest.approx(128, rel=1e-5)


def test_jacobian_spectrum_of_a_linear_model():
    w = np.asarray(jaxinit.orthogonal()(jax.random.key(9), (WIDTH, WIDTH)), np.float64)
    dense = nn.Dense(WIDTH, use_bias=False)
    variables = {"params": {"kernel": jnp.asarray(3.0 * w, jnp.float32)}}
    d = jaxinit.diagnose(dense, (X, X), variables=variables)
    # J = (3 W)^T for one example: every singular value is 3.
    np.testing.assert_allclose(d.jacobian.singular_values, 3.0, rtol=1e-5)


# --------------------------------------------------------------------------------------
# nnx, Equinox, pretrained.


class NnxMLP(nnx.Module):
    def __init__(self, rngs, kernel_init=HE):
        self.layers = nnx.List([nnx.Linear(WIDTH, WIDTH, kernel_init=kernel_init, rngs=rngs)
                                for _ in range(DEPTH)])
        self.head = nnx.Linear(WIDTH, CLASSES, rngs=rngs)

    def __call__(self, x):
        for layer in self.layers:
            x = nnx.relu(layer(x))
        return self.head(x)


def test_nnx_factory_and_module():
    d = jaxinit.diagnose(NnxMLP, (X, Y))
    assert d.model_kind == "nnx" and d.flags == (), d
    assert d.residual == ()  # a plain chain: no repeated blocks
    assert [layer.path for layer in d.layers] == [*hidden("layers/"), "head"]
    bad = jaxinit.diagnose(NnxMLP(nnx.Rngs(0), jaxinit.normal(1e-3)), (X, Y), **FAST)
    assert set(hidden("layers/", 3)) <= set(bad.flagged("vanishing"))


def test_equinox_default_init_vanishes_and_he_fixes_it():
    mlp = eqx.nn.MLP(WIDTH, CLASSES, WIDTH, DEPTH, use_bias=False, use_final_bias=False,
                     key=jax.random.key(10))
    d = jaxinit.diagnose(mlp, (X, Y))
    # PyTorch's default U(+-1/sqrt(fan_in)) has Var 1/(3 fan_in): a ReLU layer keeps
    # 1/6 of the variance, (1/6)^(10/2) ~ 1e-4 of the std after 10 layers.
    # (Equinox's default biases, drawn the same way, would hold the signal at their scale.)
    assert d.model_kind == "equinox"
    assert set(hidden("layers/", 5)) <= set(d.flagged("vanishing"))
    rows = {p.path: p for p in d.params}
    w = np.asarray(mlp.layers[1].weight, np.float64)  # Equinox layout (out, in)
    assert (rows["layers/1/weight"].fan_in, rows["layers/1/weight"].fan_out) == (WIDTH, WIDTH)
    assert (rows["layers/0/weight"].fan_in, rows["layers/10/weight"].fan_out) == (WIDTH, CLASSES)
    np.testing.assert_allclose(rows["layers/1/weight"].std, w.std(), rtol=1e-5)
    he = jaxinit.variance_scaling(2.0, "fan_in", "normal", in_axis=-1, out_axis=-2)
    fixed = jaxinit.reinit(mlp, jax.random.key(11), [(r"layers/\d+/weight", he)])
    healthy = jaxinit.diagnose(fixed, (X, Y), **FAST)
    assert healthy.flags == (), healthy


def test_model_fresh_from_load_pretrained(tmp_path):
    model = MLP(depth=3)
    fresh = model.init(jax.random.key(12), X)
    rng = np.random.default_rng(0)
    ckpt = {f"params/Dense_{i}/kernel": (rng.standard_normal((WIDTH, WIDTH)) * 1e-3
                                         ).astype(np.float32) for i in range(3)}
    safetensors.numpy.save_file(ckpt, tmp_path / "tiny.safetensors")
    loaded, report = jaxinit.load_pretrained(fresh, tmp_path / "tiny.safetensors")
    assert len(report.loaded) == 3
    d = jaxinit.diagnose(model, (X, Y), variables=loaded, **FAST)
    rows = {p.path: p for p in d.params}
    for i in range(3):
        np.testing.assert_allclose(rows[f"Dense_{i}/kernel"].std,
                                   ckpt[f"params/Dense_{i}/kernel"].astype(np.float64).std(),
                                   rtol=1e-5)
    assert {"Dense_1", "Dense_2"} <= set(d.flagged("vanishing"))
    # nnx: load_pretrained updates the module in place; diagnose takes it as is.
    net = NnxMLP(nnx.Rngs(0))
    state = {f"layers/{i}/kernel": np.asarray(net.layers[i].kernel[...]) * 1e-3
             for i in range(DEPTH)}
    safetensors.numpy.save_file(state, tmp_path / "nnx.safetensors")
    net, _ = jaxinit.load_pretrained(net, tmp_path / "nnx.safetensors")
    flagged = jaxinit.diagnose(net, (X, Y), **FAST).flagged("vanishing")
    assert set(hidden("layers/", 3)) <= set(flagged)


# --------------------------------------------------------------------------------------
# JSON, bad input, CLI.


def test_json_is_versioned_and_strict():
    d = jaxinit.diagnose(MLP(kernel_init=jaxinit.normal(1e-3)), (X, Y))
    data = json.loads(d.to_json())
    assert data["jacobian"]["method"] == "exact" and len(data["jacobian"]["singular_values"]) == 10
    assert (data["schema"], data["version"]) == ("jaxinit.diagnosis", 1)
    assert len(data["params"]) == 2 * (DEPTH + 1) and len(data["layers"]) == DEPTH + 1
    assert {f["kind"] for f in data["flags"]} == {"vanishing"}
    assert data["chance_loss"] == pytest.approx(math.log(CLASSES))
    assert set(data["layers"][0]["activation"]) == {"mean", "std", "second_moment", "dead",
                                                   "saturated"}
    bias = next(p for p in data["params"] if p["path"] == "Dense_0/bias")
    assert bias["update_ratio"] is None  # a zero bias with a nonzero update: inf


def two_args(a, b):
    return nn.Dense(2)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: jaxinit.diagnose(two_args, (X, Y)), TypeError, "model=.*make\\(rngs\\)"),
        (lambda: jaxinit.diagnose(42, (X, Y)), TypeError, "model=int"),
        (lambda: jaxinit.diagnose(NnxMLP, (X[:, :5], Y)), ValueError,
         "data: the model cannot be applied to inputs of shape \\(64, 5\\)"),
        (lambda: jaxinit.diagnose(MLP(), (X, Y[:10])), ValueError, "same leading"),
        (lambda: jaxinit.diagnose(MLP(), (X, Y[:, None])), ValueError, "data labels"),
        (lambda: jaxinit.diagnose(MLP(), X), ValueError, "default loss needs \\(x, y\\)"),
        (lambda: jaxinit.diagnose(MLP(), (X, Y), lambda apply, b: apply(b[0])), TypeError,
         "loss must return a float scalar; got shape \\(64, 10\\)"),
        (lambda: jaxinit.diagnose(MLP(), (X, Y), lambda apply, b: b[5]), ValueError,
         "loss=.*fails on the batch"),
        (lambda: jaxinit.diagnose(MLP(), "digits"), TypeError, "data of type str"),
        (lambda: jaxinit.diagnose(MLP(), iter([])), ValueError, "empty iterable"),
        (lambda: jaxinit.diagnose(MLP(), (X, Y), batch_size=0), ValueError, "batch_size"),
    ],
)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_data_callable_and_iterable():
    batch = lambda key, step: (X, Y)
    a = jaxinit.diagnose(MLP(depth=2), batch, **FAST)
    b = jaxinit.diagnose(MLP(depth=2), iter([(X, Y)]), **FAST)
    assert a.loss == b.loss and a.input_shape == (BATCH, WIDTH)


USER_FILE = '''
import jax, jax.numpy as jnp
from flax import linen as nn

class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        for _ in range(6):
            x = nn.relu(nn.Dense(16, kernel_init=nn.initializers.normal(1e-3))(x))
        return nn.Dense(4)(x)

def make():
    return Net()

def data():
    x = jax.random.normal(jax.random.key(0), (32, 16))
    return x, jax.random.randint(jax.random.key(1), (32,), 0, 4)

def vector_loss(apply, batch):
    return apply(batch[0])
'''


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["diagnose", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--model", "--data", "--loss", "--out", "--batch-size", "--seed"):
        assert option in text


def test_cli_writes_diagnosis_json(tmp_path, capsys):
    user = tmp_path / "user_model.py"
    user.write_text(USER_FILE)
    out = tmp_path / "out"
    assert main(["diagnose", "--model", f"{user}:make", "--data", f"{user}:data",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[vanishing] Dense_5" in text and "parameter" in text
    data = json.loads((out / "diagnosis.json").read_text())
    assert data["schema"] == "jaxinit.diagnosis" and "Dense_5" in [
        f["path"] for f in data["flags"]]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--model", "no_such_module_xyz:make", "--data", "{user}:data"],
         "--model='no_such_module_xyz:make': cannot import 'no_such_module_xyz'"),
        (["--model", "{user}:nothing", "--data", "{user}:data"], "has no attribute 'nothing'"),
        (["--model", "{user}", "--data", "{user}:data"], "--model=.*expected 'pkg.module:name'"),
        (["--model", "{user}:make", "--data", "{user}:make"], "data"),
        (["--model", "{user}:make", "--data", "{user}:data", "--loss", "{user}:vector_loss"],
         "loss must return a float scalar"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, args, match):
    user = tmp_path / "user_model.py"
    user.write_text(USER_FILE)
    out = tmp_path / "out"
    argv = ["diagnose", *(a.format(user=user) for a in args), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("jaxinit diagnose: error: ")
    assert __import__("re").search(match, err), err
    assert not out.exists()
