"""muP and the spectral parametrization: classification, initial variances, optax
learning-rate multipliers, and the coordinate check on digits. The learning-rate transfer
experiment (muP's best learning rate stays put across widths, SP's moves) is asserted by
notebooks/06_mup, which the suite runs."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from sklearn.datasets import load_digits

import jaxinit

BASE = 128


def mlp(width):
    return nn.Sequential([nn.Dense(width), nn.relu, nn.Dense(width), nn.relu, nn.Dense(10)])


def shapes(width):
    return jax.eval_shape(mlp(width).init, jax.random.key(0), jnp.ones((1, 64)))


# --- Classification ------------------------------------------------------------------------


def test_classify_mlp_against_base_tree_and_width_map():
    params = shapes(1024)
    by_tree = jaxinit.mup_classify(params, shapes(BASE))
    by_map = jaxinit.mup_classify(params, {1024: BASE})
    kinds = {p: c.kind for p, c in by_tree.items()}
    assert kinds == {
        "params/layers_0/bias": "vector",
        "params/layers_0/kernel": "input",
        "params/layers_2/bias": "vector",
        "params/layers_2/kernel": "hidden",
        "params/layers_4/bias": "finite",
        "params/layers_4/kernel": "output",
    }
    assert by_map == by_tree
    hidden = by_tree["params/layers_2/kernel"]
    assert (hidden.fan_in, hidden.base_fan_in) == (1024, 128)


def test_classify_at_base_width_keeps_classes_with_delta():
    """At the base width nothing differs from base: `delta` (another width) or a width map
    still tells which dimensions are infinite, so the base model gets the muP readout."""
    base = shapes(BASE)
    plain = jaxinit.mup_classify(base, base)
    assert {c.kind for c in plain.values()} == {"finite"}
    with_delta = jaxinit.mup_classify(base, base, delta=shapes(256))
    assert with_delta["params/layers_4/kernel"].kind == "output"
    assert with_delta == jaxinit.mup_classify(base, {BASE: BASE})


def test_classify_attention_kernels_nnx():
    def model(d):
        return nnx.MultiHeadAttention(
            num_heads=4, in_features=d, qkv_features=d, decode=False, rngs=nnx.Rngs(0)
        )

    infos = jaxinit.mup_classify(model(256), nnx.eval_shape(lambda: model(64)))
    assert infos["query/kernel"].kind == "hidden"  # (d, heads, d / heads)
    assert infos["query/kernel"].fan_in == 256 and infos["out/kernel"].fan_in == 256
    assert infos["out/kernel"].kind == "hidden"
    assert infos["out/bias"].kind == "vector"


def test_classify_errors():
    with pytest.raises(ValueError, match="no counterpart in base"):
        jaxinit.mup_classify(shapes(256), {"params": {}} | {"x": jnp.ones(3)})
    with pytest.raises(ValueError, match="base="):
        jaxinit.mup_classify(shapes(256), {256: -1})
    with pytest.raises(ValueError, match="optimizer='adamw'"):
        jaxinit.mup_lr_scale(shapes(256), {256: 128}, optimizer="adamw")
    with pytest.raises(ValueError, match="only input and output axes"):
        jaxinit.mup_classify({"w": jnp.ones((8, 256, 4))}, {256: 128}, axes=[("w", (0, 2))])


# --- Initialization --------------------------------------------------------------------


def test_mup_rules_variances():
    params = shapes(1024)
    rules = dict(jaxinit.mup_rules(params, {1024: BASE}, scale=2.0, output_scale=1.0))
    hidden = jaxinit.describe(rules["params/layers_2/kernel"], (1024, 1024))
    assert math.isclose(hidden.std, math.sqrt(2 / 1024))
    out = jaxinit.describe(rules["params/layers_4/kernel"], (1024, 10))
    assert math.isclose(out.std, math.sqrt(BASE / 1024**2))  # base_fan_in / fan_in^2
    zero = dict(jaxinit.mup_rules(params, {1024: BASE}, output_scale=0.0))
    assert zero["params/layers_4/kernel"] is jaxinit.zeros
    assert "params/layers_2/bias" not in rules  # vectors keep their init


def test_mup_output_equals_standard_at_base_width():
    key = jax.random.key(3)
    a = jaxinit.mup_output(BASE, 1.0, "truncated_normal")(key, (BASE, 10))
    b = jaxinit.lecun_normal()(key, (BASE, 10))
    np.testing.assert_array_equal(a, b)


def test_mup_output_statistics():
    w = jaxinit.mup_output(64)(jax.random.key(0), (1024, 512))
    target = math.sqrt(64) / 1024
    # n = 524288 normal samples: the sample std has relative s.e. 1/sqrt(2n) ~ 0.001;
    # 5 s.e. (false failure ~ 6e-7).
    assert abs(float(w.std()) / target - 1) < 5 / math.sqrt(2 * w.size)


def test_spectral_singular_values_and_conv_view():
    w = jaxinit.spectral()(jax.random.key(0), (512, 128))
    s = jnp.linalg.svd(w, compute_uv=False)
    np.testing.assert_allclose(s, math.sqrt(128 / 512), rtol=1e-4)
    k = jaxinit.spectral(2.0)(jax.random.key(1), (3, 3, 16, 32))
    s = jnp.linalg.svd(k.reshape(144, 32), compute_uv=False)
    np.testing.assert_allclose(s, 2.0 * math.sqrt(32 / 144), rtol=1e-4)
    q = jaxinit.spectral(in_axis=0, out_axis=(1, 2))(jax.random.key(2), (64, 4, 32))
    s = jnp.linalg.svd(q.reshape(64, 128), compute_uv=False)
    np.testing.assert_allclose(s, math.sqrt(128 / 64), rtol=1e-4)
    w16 = jaxinit.spectral()(jax.random.key(0), (512, 128), jnp.bfloat16)
    assert w16.dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="rank"):
        jaxinit.spectral()(jax.random.key(0), (8,))


# --- Optax multipliers ---------------------------------------------------------------


def _updates(tx, params):
    grads = jax.tree.map(jnp.ones_like, params)
    return tx.update(grads, tx.init(params), params)[0]


def test_mup_lr_scale_adam_and_sgd_multipliers():
    params = mlp(512).init(jax.random.key(0), jnp.ones((1, 64)))
    m = 512 / BASE
    expected = {
        "adam": {"layers_0": (1, 1), "layers_2": (1 / m, 1), "layers_4": (1 / m, 1)},
        "sgd": {"layers_0": (m, m), "layers_2": (1, m), "layers_4": (1 / m, 1)},
    }
    for opt, table in expected.items():
        tx = optax.chain(optax.sgd(1.0), jaxinit.mup_lr_scale(params, {512: BASE}, optimizer=opt))
        u = _updates(tx, params)["params"]
        for layer, (k, b) in table.items():
            np.testing.assert_allclose(u[layer]["kernel"], -k, rtol=1e-6, err_msg=(opt, layer))
            np.testing.assert_allclose(u[layer]["bias"], -b, rtol=1e-6, err_msg=(opt, layer))


def test_mup_lr_scale_with_nnx_optimizer():
    class MLP(nnx.Module):
        def __init__(self, w, rngs):
            self.l1 = nnx.Linear(64, w, rngs=rngs)
            self.l2 = nnx.Linear(w, w, rngs=rngs)
            self.l3 = nnx.Linear(w, 10, rngs=rngs)

        def __call__(self, x):
            return self.l3(nnx.relu(self.l2(nnx.relu(self.l1(x)))))

    model = MLP(512, nnx.Rngs(0))
    base = nnx.eval_shape(lambda: MLP(BASE, nnx.Rngs(0)))
    before = nnx.state(model, nnx.Param)
    before = jax.tree.map(jnp.copy, before)
    tx = optax.chain(optax.sgd(1.0), jaxinit.mup_lr_scale(model, base))
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    grads = jax.tree.map(jnp.ones_like, nnx.state(model, nnx.Param))
    opt.update(model, grads)
    step = jax.tree.map(lambda a, b: b - a, before, nnx.state(model, nnx.Param))
    np.testing.assert_allclose(step["l2"]["kernel"].get_value(), -BASE / 512, rtol=1e-6)
    np.testing.assert_allclose(step["l1"]["kernel"].get_value(), -1.0, rtol=1e-6)


def test_spectral_lr_scale_multipliers():
    params = nn.Dense(256).init(jax.random.key(0), jnp.ones((1, 64)))
    u = _updates(optax.chain(optax.sgd(1.0), jaxinit.spectral_lr_scale(params)), params)
    np.testing.assert_allclose(u["params"]["kernel"], -1 / 64)
    np.testing.assert_allclose(u["params"]["bias"], -1.0)
    u = _updates(
        optax.chain(optax.sgd(1.0), jaxinit.spectral_lr_scale(params, optimizer="sgd")), params
    )
    np.testing.assert_allclose(u["params"]["kernel"], -256 / 64)


def test_attention_scale():
    assert jaxinit.mup_attention_scale(128) == 1 / 128
    assert math.isclose(jaxinit.mup_attention_scale(256, 64), 8 / 256)
    with pytest.raises(ValueError, match="head_dim"):
        jaxinit.mup_attention_scale(0)


# --- Acceptance: coordinate check and learning-rate transfer on digits --------------------

_digits = load_digits()
X = jnp.asarray(_digits.data / 16.0, jnp.float32)
Y = jnp.asarray(_digits.target)


class MLP(nn.Module):
    """``depth`` hidden ReLU layers; returns the logits and the activations of the first two
    hidden layers and the output."""

    width: int
    depth: int = 2

    @nn.compact
    def __call__(self, x):
        hidden = []
        for _ in range(self.depth):
            x = nn.relu(nn.Dense(self.width)(x))
            hidden.append(x)
        out = nn.Dense(10)(x)
        return out, (*hidden[:2], out)


def setup(width, param, depth=2):
    """The model, an init function of a key and an optimizer factory of the learning rate:
    standard parametrization (He hidden, LeCun readout, plain Adam) or muP relative to
    width 128 (identical at 128)."""
    model = MLP(width, depth)
    abstract = jax.eval_shape(model.init, jax.random.key(0), X[:1])
    if param == "sp":
        rules = (
            (f"params/Dense_{depth}/kernel", jaxinit.lecun_normal()),
            (r"params/Dense_\d+/kernel", jaxinit.he_normal()),
        )
        make_tx = optax.adam
    else:
        rules = jaxinit.mup_rules(
            abstract, {width: BASE}, scale=2.0, output_scale=1.0, distribution="truncated_normal"
        )
        scale = jaxinit.mup_lr_scale(abstract, {width: BASE})
        make_tx = lambda lr: optax.chain(optax.adam(lr), scale)
    def init(key):
        return jaxinit.reinit(model.init(key, X[:1]), key, rules)

    return model, init, make_tx


def train(width, param, lrs, keys, steps=100, batch=64, probe=False, depth=2):
    """Adam on digits minibatches, one jitted scan vmapped over pairs of learning rates and
    keys. Returns the loss per step, and with ``probe`` the mean |h1|, |h2|, |logits| per
    step on a fixed 64-sample probe, each with a leading (lr, key) axis."""
    model, init, make_tx = setup(width, param, depth)

    def run(lr, key):
        params = init(key)
        tx = make_tx(lr)
        state = tx.init(params)
        order = jax.random.randint(jax.random.fold_in(key, 1), (steps, batch), 0, X.shape[0])

        def step(carry, idx):
            params, state = carry

            def loss_fn(p):
                logits, _ = model.apply(p, X[idx])
                return optax.softmax_cross_entropy_with_integer_labels(logits, Y[idx]).mean()

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            if not probe:
                return (params, state), loss
            _, acts = model.apply(params, X[:64])
            return (params, state), jnp.stack([jnp.abs(a).mean() for a in acts])

        _, out = jax.lax.scan(step, (params, state), order)
        return out

    with jax.numpy_dtype_promotion("standard"):  # optax's Adam mixes Python floats and int32
        return np.asarray(jax.jit(jax.vmap(run))(jnp.asarray(lrs, jnp.float32), keys))


WIDTHS = (128, 256, 512, 1024, 2048)


def slopes(param, steps=10, lr=2.0**-8, seeds=2):
    """Slope of log mean |activation| against log width, per step and layer (seed-averaged)."""
    keys = jax.random.split(jax.random.key(0), seeds)
    acts = np.stack([
        train(w, param, [lr] * seeds, keys, steps, probe=True).mean(axis=0) for w in WIDTHS
    ])  # (widths, steps, layers)
    logw = np.log(WIDTHS)
    return np.array([[np.polyfit(logw, np.log(acts[:, t, k]), 1)[0] for k in range(3)]
                     for t in range(steps)])


@pytest.mark.slow
def test_coordinate_check():
    """Acceptance: under muP the activations of the hidden and output layers keep their size
    as the width grows 16x (|slope| < 0.15 from step 5 on); under the standard
    parametrization the output grows with width."""
    mup = slopes("mup")
    sp = slopes("sp")
    print("muP slopes (h1, h2, out) per step:\n", np.round(mup, 3))
    print("SP slopes (h1, h2, out) per step:\n", np.round(sp, 3))
    assert np.all(np.abs(mup[4:]) < 0.15), mup
    assert np.all(sp[:5, 2] > 0.5), sp


def test_mup_rules_through_reinit_nnx_module():
    class MLP(nnx.Module):
        def __init__(self, w, rngs):
            self.l1 = nnx.Linear(64, w, rngs=rngs)
            self.l2 = nnx.Linear(w, 10, rngs=rngs)

    model = MLP(1024, nnx.Rngs(0))
    base = nnx.eval_shape(lambda: MLP(BASE, nnx.Rngs(0)))
    rules = jaxinit.mup_rules(model, base, output_scale=0.0)
    jaxinit.reinit(model, jax.random.key(1), rules)
    assert np.all(np.asarray(model.l2.kernel.get_value()) == 0)
    spec = jaxinit.reinit(model, jax.random.key(2), jaxinit.spectral_rules(model))
    s = jnp.linalg.svd(spec.l1.kernel.get_value(), compute_uv=False)
    np.testing.assert_allclose(s, 4.0, rtol=1e-4)   # sqrt(1024 / 64)


def test_mup_rules_leave_nnx_attention_biases_alone():
    # Regression: q/k/v biases of nnx MultiHeadAttention are (heads, head_dim); they are
    # vectors, so they must stay exactly zero (their Flax init) after muP reinit.
    from flax import nnx

    def make(d):
        return nnx.MultiHeadAttention(num_heads=4, in_features=d, qkv_features=d,
                                      decode=False, rngs=nnx.Rngs(0))

    m, b = make(256), make(64)
    _, params = nnx.split(m, nnx.Param)
    _, bparams = nnx.split(b, nnx.Param)
    params, bparams = nnx.to_pure_dict(params), nnx.to_pure_dict(bparams)
    rules = jaxinit.mup_rules(params, bparams)
    out = jaxinit.reinit(params, jax.random.key(0), rules)
    for name in ("query", "key", "value", "out"):
        assert float(jnp.abs(out[name]["bias"]).max()) == 0.0
    assert not any("bias" in r for r, _ in rules)


def test_mup_rules_leave_linen_attention_biases_alone():
    # Same regression on linen MultiHeadDotProductAttention: biases are (heads, head_dim).
    import flax.linen as nn

    def params_at(d):
        m = nn.MultiHeadDotProductAttention(num_heads=4, qkv_features=d)
        x = jnp.ones((1, 2, d))
        return m.init(jax.random.key(0), x, x)

    params, bparams = params_at(256), params_at(64)
    rules = jaxinit.mup_rules(params, bparams)
    out = jaxinit.reinit(params, jax.random.key(1), rules)
    for name in ("query", "key", "value", "out"):
        assert float(jnp.abs(out["params"][name]["bias"]).max()) == 0.0
    assert not any("bias" in r for r, _ in rules)


@pytest.mark.parametrize("flavor", ["nnx", "linen"])
def test_mup_rules_attention_kernels_use_their_in_out_axes(flavor):
    # Regression: q/k/v kernels are (d, heads, head_dim) with input axis 0, the out kernel
    # is (heads, head_dim, d) with input axes (0, 1); both have fan_in = d. Oracle: muP's
    # hidden init Var = scale / d in float64. Initializing the kernels as 2-D over their
    # last two axes (in -2, out -1, the rest a receptive field) was shown to fail this test:
    # q/k/v then get fan_in = heads * d = 1024, relative error -0.75. (For the out kernel
    # that variant happens to give the same fan_in, head_dim * heads = d.)
    d, heads, scale = 256, 4, 2.0
    if flavor == "nnx":
        def make(w):
            return nnx.MultiHeadAttention(num_heads=heads, in_features=w, qkv_features=w,
                                          decode=False, rngs=nnx.Rngs(0))
        params = nnx.to_pure_dict(nnx.split(make(d), nnx.Param)[1])
        base = nnx.to_pure_dict(nnx.split(make(64), nnx.Param)[1])
        get = lambda p, n: p[n]["kernel"]
    else:
        def make(w):
            m = nn.MultiHeadDotProductAttention(num_heads=heads, qkv_features=w)
            x = jnp.ones((1, 2, w))
            return m.init(jax.random.key(0), x, x)
        params, base = make(d), make(64)
        get = lambda p, n: p["params"][n]["kernel"]
    rules = jaxinit.mup_rules(params, base, scale=scale)
    out = jaxinit.reinit(params, jax.random.key(7), rules)
    expected = np.float64(scale) / np.float64(d)
    for name in ("query", "key", "value", "out"):
        w = np.asarray(get(out, name), np.float64)
        assert w.size == d * d
        # n = 65536 normal draws (mean known to be 0): the sample variance has relative
        # s.e. sqrt(2/n) ~ 0.0055; tolerance 5 s.e. (false failure ~ 6e-7 per kernel).
        rel = float(np.mean(w**2)) / expected - 1
        assert abs(rel) < 5 * math.sqrt(2 / w.size), (name, rel)


# --- Parity with the reference `mup` package (PyTorch) -------------------------------------


def test_parity_with_mup_package_on_mlp():
    """The same 3-layer MLP at width 256 over base 64 in torch with ``mup.MuReadout`` and
    ``mup.set_base_shapes``: MuAdam's per-parameter learning rates and mup's default init
    (torch's Linear init, readout rescaled by set_base_shapes) against ``mup_lr_scale`` and
    ``mup_rules``. mup keeps the readout weight's lr and divides its *input* by width_mult
    in the forward pass; under Adam (invariant to gradient scale) that is the same as the
    effective weight W / width_mult getting lr / width_mult, which is what jaxinit scales."""
    import mup
    import torch

    def torch_mlp(w):
        return torch.nn.Sequential(
            torch.nn.Linear(64, w), torch.nn.ReLU(), torch.nn.Linear(w, w), torch.nn.ReLU(),
            mup.MuReadout(w, 10),
        )

    torch.manual_seed(0)
    model = torch_mlp(256)
    mup.set_base_shapes(model, torch_mlp(64))
    readout = model[4]
    width_mult = readout.width_mult()
    assert width_mult == 4
    lr = 1e-3
    opt = mup.MuAdam(model.parameters(), lr=lr)
    group_lr = {id(p): g["lr"] / lr for g in opt.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    # The readout weight's effective lr also carries the forward's 1 / width_mult.
    forward_mult = {"4.weight": 1 / width_mult}
    mup_lr = {n: group_lr[id(p)] * forward_mult.get(n, 1.0) for n, p in names.items()}

    params = mlp(256).init(jax.random.key(0), jnp.ones((1, 64)))
    tx = jaxinit.mup_lr_scale(params, shapes(64))
    ones = jax.tree.map(jnp.ones_like, params)
    scaled, _ = tx.update(ones, tx.init(params), params)
    ours = {f"{i}.{kind}": float(scaled["params"][f"layers_{i}"][leaf].reshape(-1)[0])
            for i in (0, 2, 4) for kind, leaf in (("weight", "kernel"), ("bias", "bias"))}
    assert ours == pytest.approx(mup_lr, rel=1e-12)
    assert mup_lr["2.weight"] == 1 / 4 and mup_lr["0.weight"] == 1.0  # not all trivially 1

    # Init: torch's Linear default is U(+-1/sqrt(fan_in)), Var = 1/(3 fan_in); the readout
    # weight is then multiplied by sqrt(width_mult) and its input divided by width_mult, so
    # the effective readout Var = (1/(3 fan_in)) / width_mult = (1/3) base_fan_in / fan_in^2.
    # jaxinit's equivalent: mup_rules(scale=1/3, distribution="uniform").
    effective = {
        0: names["0.weight"].detach().double().numpy(),
        2: names["2.weight"].detach().double().numpy(),
        4: names["4.weight"].detach().double().numpy() / width_mult,
    }
    formula = {0: 1 / (3 * 64), 2: 1 / (3 * 256), 4: (1 / 3) * 64 / 256**2}
    rules = jaxinit.mup_rules(params, shapes(64), scale=1 / 3, distribution="uniform")
    drawn = jaxinit.reinit(params, jax.random.key(5), rules)
    for i, var in formula.items():
        ours_w = np.asarray(drawn["params"][f"layers_{i}"]["kernel"], np.float64)
        rule = dict(rules)[f"params/layers_{i}/kernel"]
        assert math.isclose(jaxinit.describe(rule, ours_w.shape).std ** 2, var, rel_tol=1e-6)
        # Uniform draws (mean 0 known): the sample variance has relative s.e.
        # sqrt(0.8 / n) (excess kurtosis -1.2); n >= 2560 gives s.e. <= 0.018, tolerance
        # 5 s.e. (false failure ~ 6e-7 per check).
        for w in (effective[i], ours_w):
            rel = float(np.mean(w**2)) / var - 1
            assert abs(rel) < 5 * math.sqrt(0.8 / w.size), (i, rel)


# --- mup_coord_check ------------------------------------------------------------------------


def coord_check(param, lr=2.0**-5):
    def make(width):
        model, init, make_tx = setup(width, param)

        def loss_fn(p, batch):
            x, y = batch
            logits, acts = model.apply(p, x)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return loss, acts

        return init(jax.random.key(0)), loss_fn, make_tx(lr)

    with jax.numpy_dtype_promotion("standard"):  # optax's Adam mixes Python floats and int32
        return jaxinit.mup_coord_check(make, (32, 64, 128), (X[:128], Y[:128]), steps=3)


def test_mup_coord_check_readout_flat_under_mup_grows_under_sp():
    """After the first Adam steps the readout's mean |logit| keeps its size across widths
    32/64/128 under muP (base 128) and grows about linearly with width under SP."""
    mup, sp = coord_check("mup"), coord_check("sp")
    assert mup.shape == sp.shape == (3, 3, 3)  # widths, steps, (h1, h2, logits)
    logw = np.log([32, 64, 128])
    slope = lambda a, t: np.polyfit(logw, np.log(a[:, t, 2]), 1)[0]
    mup_slopes = [slope(mup, t) for t in (1, 2)]
    sp_slopes = [slope(sp, t) for t in (1, 2)]
    # Measured (deterministic keys): muP 0.12, 0.12; SP 1.05, 0.92 (SP's logits grow ~ width
    # once Adam has moved the readout). At step 0 muP's logits shrink as width^-1/2, as intended.
    assert all(abs(s) < 0.3 for s in mup_slopes), mup_slopes
    assert all(s > 0.7 for s in sp_slopes), sp_slopes


def test_mup_coord_check_errors():
    with pytest.raises(ValueError, match=r"mup_coord_check: widths=\(64, 32\)"):
        jaxinit.mup_coord_check(lambda w: None, [64, 32], None)
    with pytest.raises(ValueError, match=r"widths=.*strictly grow"):
        jaxinit.mup_coord_check(lambda w: None, [64, 64], None)
    with pytest.raises(ValueError, match="steps=0"):
        jaxinit.mup_coord_check(lambda w: None, [32, 64], None, steps=0)
    with pytest.raises(TypeError, match=r"make_model\(32\) returned NoneType"):
        jaxinit.mup_coord_check(lambda w: None, [32, 64], None)
