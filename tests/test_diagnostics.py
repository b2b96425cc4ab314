"""jaxinit.diagnostics: per-layer statistics, Jacobian spectrum, and the literature's
depth and isometry observations."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require
from flax import linen as nn
from flax import nnx

import jaxinit
from jaxinit.diagnostics import jacobian_spectrum, signal_stats, tap

# Mean-field recursions below use NumPy's Gauss-Hermite rule (probabilists' weight), a
# quadrature independent of the one inside jaxinit.
_HZ, _HW = np.polynomial.hermite_e.hermegauss(120)
_HW = _HW / _HW.sum()


def _gauss(f):
    return float(_HW @ f(_HZ))


def meanfield_activation_std(phi, weight_var, depth, q_in=1.0):
    """Std of phi(h^l) for l = 1..depth from the mean-field length map (no bias)."""
    q, out = weight_var * q_in, []
    for _ in range(depth):
        s = math.sqrt(q)
        m1 = _gauss(lambda z, s=s: phi(s * z))
        m2 = _gauss(lambda z, s=s: phi(s * z) ** 2)
        out.append(math.sqrt(m2 - m1**2))
        q = weight_var * m2
    return np.asarray(out)


class MLP(nn.Module):
    kinit: jax.nn.initializers.Initializer
    act: str = "tanh"
    depth: int = 50
    width: int = 512
    use_bias: bool = False
    binit: jax.nn.initializers.Initializer = jax.nn.initializers.zeros

    @nn.compact
    def __call__(self, x):
        phi = {"tanh": jnp.tanh, "relu": nn.relu, "linear": lambda v: v}[self.act]
        for _ in range(self.depth):
            x = phi(nn.Dense(self.width, use_bias=self.use_bias, kernel_init=self.kinit,
                             bias_init=self.binit)(x))
        return x


# ---------------------------------------------------------------------------------------
# Acceptance: Glorot & Bengio (2010) / He et al. (2015) depth observations.

N, BATCH, DEPTH = 512, 1024, 50
SEEDS = (0, 1, 2)


def _activation_std(kinit, act, seed):
    model = MLP(kinit, act)
    x = jax.random.normal(jax.random.key(1000 + seed), (BATCH, N))
    variables = model.init(jax.random.key(seed), x[:1])
    report = signal_stats(model, x, variables=variables, backward=False)
    return report.activations_std(), report.inputs.std


@pytest.mark.slow
@pytest.mark.parametrize(
    "label, kinit, act, weight_var, lo, hi",
    [
        # U(+-1/sqrt n): Var W = 1/(3n); theory (1/sqrt 3)^50 = 1.2e-12 for small signals.
        ("standard-tanh", jaxinit.uniform_range(-N**-0.5, N**-0.5), "tanh", 1 / 3, 1e-13, 1e-11),
        # Glorot on square layers is Var W = 1/n, as is LeCun: q_l ~ 1/(2l) -> std ~ 0.1.
        ("glorot-tanh", jaxinit.glorot_uniform(), "tanh", 1.0, 0.07, 0.14),
        ("lecun-tanh", jaxinit.lecun_normal(), "tanh", 1.0, 0.07, 0.14),
        # ReLU with Var W = 1/n halves the second moment per layer: 2^-25 * 0.83 = 2.5e-8.
        ("glorot-relu", jaxinit.glorot_uniform(), "relu", 1.0, 5e-9, 1e-7),
        # He: second moment preserved, std of relu(N(0, 2)) = 0.83.
        ("he-relu", jaxinit.he_normal(), "relu", 2.0, 0.2, 5.0),
    ],
)
def test_depth_observations(label, kinit, act, weight_var, lo, hi):
    phi = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0)}[act]
    theory = meanfield_activation_std(phi, weight_var, DEPTH)
    logs = np.mean([np.log(_activation_std(kinit, act, s)[0]) for s in SEEDS], axis=0)
    measured = np.exp(logs)
    # The literature's coarse claims at layer 50 (the bands in the table above).
    assert lo < measured[-1] < hi, (label, measured[-1])
    # Agreement with mean-field theory at every layer. tanh: near-linear regime, the
    # batch stays spread over many directions, so the per-layer gain averages over them
    # and finite-width noise is ~1/n per layer; 10% covers the O(1/n) corrections over
    # 50 layers (~50/512). ReLU: inputs become correlated, the gain of each layer has
    # relative variance 5/n (chi-square of rectified Gaussians), so log std after 50
    # layers has sd sqrt(50 * 5/512) / 2 = 0.35 per seed, 0.2 over 3 seeds; we allow 5 sd.
    tol = 0.1 if act == "tanh" else 1.0
    np.testing.assert_allclose(np.log(measured), np.log(theory), atol=tol, err_msg=label)


@pytest.mark.slow
def test_depth_orthogonal_linear_net_preserves_std_exactly():
    # Exactness needs no averaging over seeds: one network.
    for seed in SEEDS[:1]:
        stds, input_std = _activation_std(jaxinit.orthogonal(), "linear", seed)
        # Orthogonal W preserves every row norm: the second moment is preserved up to
        # float32 rounding (50 layers * ~1e-7); the std moves only with the mean, which is
        # O(1/sqrt(batch * n)) = 1e-3 -> a squared-mean effect of 1e-6.
        np.testing.assert_allclose(stds / input_std, 1.0, atol=5e-4)
        assert f"{stds[-1] / input_std:.3f}" == "1.000"
    # And the check can fail: Gaussian weights of the same variance drift.
    stds, input_std = _activation_std(jaxinit.lecun_normal(), "linear", 0)
    assert np.abs(stds / input_std - 1).max() > 5e-3


# ---------------------------------------------------------------------------------------
# Unit checks of the statistics against hand computations.


def _weights(seed, sizes):
    keys = jax.random.split(jax.random.key(seed), len(sizes) - 1)
    return [jax.random.normal(k, (a, b)) / math.sqrt(a)
            for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def _manual(ws, bs, x, cot):
    """NumPy forward/backward of x -> tanh(x W + b) ..., for loss sum(y * cot)."""
    hs, acts = [], [np.asarray(x, np.float64)]
    for w, b in zip(ws, bs, strict=True):
        hs.append(acts[-1] @ np.asarray(w, np.float64) + np.asarray(b, np.float64))
        acts.append(np.tanh(hs[-1]))
    g = np.asarray(cot, np.float64)
    grads_h, grads_w = [], []
    for i in reversed(range(len(ws))):
        gh = g * (1 - np.tanh(hs[i]) ** 2)
        grads_h.insert(0, gh)
        grads_w.insert(0, acts[i].T @ gh)
        g = gh @ np.asarray(ws[i], np.float64).T
    return hs, acts, grads_h, grads_w


class LinenTanh(nn.Module):
    sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, x):
        for s in self.sizes:
            x = jnp.tanh(nn.Dense(s)(x))
        return x


class NnxTanh(nnx.Module):
    def __init__(self, sizes, rngs):
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs)
                                for a, b in itertools.pairwise(sizes)])

    def __call__(self, x):
        for layer in self.layers:
            x = jnp.tanh(layer(x))
        return x


def _three_frontends(ws, bs):
    sizes = [ws[0].shape[0]] + [w.shape[1] for w in ws]
    linen_model = LinenTanh(tuple(sizes[1:]))
    linen_vars = {"params": {f"Dense_{i}": {"kernel": w, "bias": b}
                             for i, (w, b) in enumerate(zip(ws, bs, strict=True))}}
    nnx_model = NnxTanh(sizes, nnx.Rngs(0))
    for layer, w, b in zip(nnx_model.layers, ws, bs, strict=True):
        layer.kernel[...], layer.bias[...] = w, b

    def plain(params, x):
        for i, (w, b) in enumerate(params):
            x = jnp.tanh(tap(x @ w + b[None, :], f"dense{i}"))
        return x

    return [
        ("linen", linen_model, {"variables": linen_vars}),
        ("nnx", nnx_model, {}),
        ("function", plain, {"params": list(zip(ws, bs, strict=True))}),
    ]


@pytest.mark.parametrize("frontend", ["linen", "nnx", "function"])
def test_stats_match_manual_forward_and_backward(frontend):
    ws = _weights(0, [16, 24, 24, 8])
    bs = [0.1 * jax.random.normal(jax.random.key(10 + i), (w.shape[1],))
          for i, w in enumerate(ws)]
    x = jax.random.normal(jax.random.key(1), (64, 16))
    cot = jax.random.normal(jax.random.key(2), (64, 8))
    _, model, kwargs = next(f for f in _three_frontends(ws, bs) if f[0] == frontend)
    report = signal_stats(model, x, loss=lambda y: jnp.sum(y * cot), **kwargs)
    hs, acts, grads_h, grads_w = _manual(ws, bs, x, cot)
    assert len(report.layers) == 3
    for layer, h, a_in, gh, gw in zip(report.layers, hs, acts[:-1], grads_h, grads_w,
                                      strict=True):
        # float32 forward/backward vs float64 NumPy: relative error ~1e-6.
        np.testing.assert_allclose(layer.outputs.mean, h.mean(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(layer.outputs.std, h.std(), rtol=1e-5)
        np.testing.assert_allclose(layer.outputs.second_moment, (h**2).mean(), rtol=1e-5)
        np.testing.assert_allclose(layer.grad_outputs.std, gh.std(), rtol=1e-5)
        if frontend == "function":
            assert layer.inputs is None and layer.grad_kernel is None
        else:
            np.testing.assert_allclose(layer.inputs.std, a_in.std(), rtol=1e-5)
            np.testing.assert_allclose(layer.grad_kernel.std, gw.std(), rtol=1e-5)
    np.testing.assert_allclose(report.output.std, acts[-1].std(), rtol=1e-5)
    np.testing.assert_allclose(report.grad_inputs.std,
                               (grads_h[0] @ np.asarray(ws[0], np.float64).T).std(), rtol=1e-5)


def test_layer_names_and_order():
    ws = _weights(0, [4, 4, 4])
    bs = [jnp.zeros(4), jnp.zeros(4)]
    names = {f: [layer.name for layer in signal_stats(m, jnp.ones((2, 4)), **kw).layers]
             for f, m, kw in _three_frontends(ws, bs)}
    assert names == {"linen": ["Dense_0", "Dense_1"], "nnx": ["layers/0", "layers/1"],
                     "function": ["dense0", "dense1"]}


def test_dead_and_saturated_fractions():
    width = 8
    # Unit 0 gets bias -100: its output is <= 0 on every example (a dead ReLU unit).
    w = jnp.eye(width)
    b = jnp.zeros(width).at[0].set(-100.0)
    x = jax.random.normal(jax.random.key(0), (256, width))

    def net(params, x):
        w, b, scale = params
        h = tap(x @ w + b[None, :], "pre")
        return tap(jnp.tanh(scale * h), "act")

    report = signal_stats(net, x, params=(w, b, jnp.float32(1.0)), backward=False)
    assert report.layers[0].outputs.dead == pytest.approx(1 / width)
    # tanh(100 h) is saturated unless |h| < atanh(0.99) / 100 = 0.026: unit 0 always is,
    # the other 7 with probability 1 - P(|z| < 0.026) = 0.979 each. Expected fraction
    # 0.125 + 0.875 * 0.979 = 0.982; over 2048 entries the sd is 0.003; 5 sd: 0.015.
    hot = signal_stats(net, x, params=(w, b, jnp.float32(100.0)), backward=False)
    assert hot.layers[1].outputs.saturated == pytest.approx(0.982, abs=0.015)
    # At scale 1, |tanh(h)| >= 0.99 needs |h| > 2.65: P = 0.008 for the 7 live units.
    assert report.layers[1].outputs.saturated == pytest.approx(0.125 + 0.875 * 0.008, abs=0.01)


def test_unit_cotangent_gradient_std_is_the_backward_gain():
    # A linear net x W with orthogonal W: d(sum y*g)/dx = g W^T has the std of g (1).
    w = jaxinit.orthogonal()(jax.random.key(0), (256, 256))

    def net(w, x):
        return tap(x @ w, "dense")

    report = signal_stats(net, jnp.ones((512, 256)), params=w)
    # The unit cotangent is N(0, 1): its sample std over 131072 entries is 1 +- 0.002.
    assert report.layers[0].grad_outputs.std == pytest.approx(1.0, abs=0.01)
    # Row norms are preserved exactly; the std moves only through the (1e-3) mean.
    assert report.grad_inputs.std == pytest.approx(report.layers[0].grad_outputs.std, rel=1e-3)


def test_table_column_and_plot(tmp_path):
    require("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    ws = _weights(0, [8, 8, 8])
    _, model, kwargs = _three_frontends(ws, [jnp.zeros(8), jnp.zeros(8)])[0]
    report = signal_stats(model, jnp.ones((4, 8)), **kwargs)
    text = str(report)
    assert "Dense_0" in text and "Dense_1" in text and "grad std" in text
    assert report.column("outputs.std").shape == (2,)
    ax = report.plot(label="tanh")
    assert len(ax.get_lines()) == 2
    ax.figure.savefig(tmp_path / "depth.png")
    with pytest.raises(ValueError, match=r"field='outputs\.variance'"):
        report.column("outputs.variance")


def test_nnx_batchnorm_and_residual_model_runs_and_leaves_model_unchanged():
    class Block(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(8, 8, (3, 3), rngs=rngs)
            self.norm = nnx.BatchNorm(8, rngs=rngs)

        def __call__(self, x):
            return x + nnx.relu(self.norm(self.conv(x)))

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.blocks = nnx.List([Block(rngs) for _ in range(2)])

        def __call__(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    model = Net(nnx.Rngs(0))
    before = jax.tree.map(np.asarray, nnx.state(model))
    report = signal_stats(model, jax.random.normal(jax.random.key(0), (4, 6, 6, 8)))
    assert [layer.name for layer in report.layers] == [
        "blocks/0/conv", "blocks/0/norm", "blocks/1/conv", "blocks/1/norm"]
    # BatchNorm in training mode normalizes each channel over the batch: std 1.
    np.testing.assert_allclose(report.layers[1].outputs.std, 1.0, rtol=1e-3)
    after = jax.tree.map(np.asarray, nnx.state(model))
    jax.tree.map(np.testing.assert_array_equal, before, after)
    # The class patch is removed afterwards.
    assert "__call__" not in nnx.Conv.__dict__ or nnx.Conv.__call__.__name__ == "__call__"


def test_tap_is_identity_outside_diagnostics():
    x = jnp.arange(3.0)
    assert tap(x, "a") is x
    with pytest.raises(TypeError, match="name=3"):
        tap(x, 3)


def test_bad_input_errors():
    model = LinenTanh((4,))
    x = jnp.ones((2, 4))
    with pytest.raises(ValueError, match="variables"):
        signal_stats(model, x)
    with pytest.raises(ValueError, match="params"):
        signal_stats(lambda p, x: x, x)
    with pytest.raises(TypeError, match="x has dtype int32"):
        signal_stats(lambda p, x: x, jnp.ones((2, 4), jnp.int32), params=())
    with pytest.raises(TypeError, match="model=int"):
        signal_stats(3, x)
    with pytest.raises(ValueError, match="saturation"):
        signal_stats(lambda p, x: x, x, params=(), saturation=-1)
    with pytest.raises(ValueError, match="method='svd'"):
        jacobian_spectrum(lambda p, x: x, x, params=(), method="svd")
    with pytest.raises(ValueError, match="num_iters=0"):
        jacobian_spectrum(lambda p, x: x, x, params=(), num_iters=0)
    with pytest.raises(ValueError, match="do not pass variables"):
        signal_stats(NnxTanh([4, 4], nnx.Rngs(0)), x, variables={})


# ---------------------------------------------------------------------------------------
# Jacobian spectrum.


def test_exact_spectrum_matches_numpy_svd_of_the_weight_product():
    ws = _weights(3, [32, 48, 40, 32])

    def linear(ws, x):
        for w in ws:
            x = x @ w
        return x

    spec = jacobian_spectrum(linear, jnp.ones((1, 32)), params=ws, method="exact")
    prod = np.linalg.multi_dot([np.asarray(w, np.float64) for w in ws])
    expected = np.linalg.svd(prod, compute_uv=False)
    np.testing.assert_allclose(spec.singular_values, expected, rtol=1e-4)
    assert spec.mean_sq == pytest.approx(np.mean(expected**2), rel=1e-4)
    assert spec.std_sq == pytest.approx(np.std(expected**2), rel=1e-4)


@pytest.mark.parametrize("n_out", [200, 120])  # J^T J and J J^T branches
def test_lanczos_estimates_extremes_and_moments(n_out):
    rng = np.random.default_rng(0)
    u = np.linalg.qr(rng.normal(size=(200, 200)))[0]
    v = np.linalg.qr(rng.normal(size=(n_out, n_out)))[0]
    k = min(200, n_out)
    s = np.linspace(0.2, 2.0, k)
    mat = jnp.asarray(u[:, :k] @ np.diag(s) @ v[:, :k].T, jnp.float32)
    spec = jacobian_spectrum(lambda m, x: x @ m, jnp.ones((1, 200)), params=mat,
                             method="lanczos", num_iters=40, num_probes=16)
    # Extreme Ritz values of 40 Lanczos steps on a spectrum with equispaced s^2 converge
    # to ~1e-3 relative (Kaniel-Paige bound; float32 with full reorthogonalization).
    assert spec.max == pytest.approx(2.0, rel=1e-3)
    assert spec.min == pytest.approx(0.2, rel=2e-2)
    # SLQ moment estimates: for Gaussian probes v^T f(A) v / |v|^2 has relative sd
    # ~ sqrt(2 / k) * std(f) / mean(f) per probe; 16 probes -> ~0.03 for s^2. 5 sd: 0.15.
    assert spec.mean_sq == pytest.approx(np.mean(s**2), rel=0.15)
    assert spec.std_sq == pytest.approx(np.std(s**2), rel=0.2)
    assert spec.weights.sum() == pytest.approx(1.0)


class CriticalMLP(nn.Module):
    weight_std: float
    bias_std: float
    orthogonal: bool
    act: str
    depth: int = 32
    width: int = 256

    @nn.compact
    def __call__(self, x):
        if self.orthogonal:
            kinit = jaxinit.orthogonal(self.weight_std)
        else:
            kinit = jaxinit.variance_scaling(self.weight_std**2, "fan_in", "normal")
        binit = jaxinit.normal(self.bias_std) if self.bias_std > 0 else jaxinit.zeros
        phi = jnp.tanh if self.act == "tanh" else nn.relu
        for _ in range(self.depth):
            x = phi(nn.Dense(self.width, kernel_init=kinit, bias_init=binit)(x))
        return x


@pytest.mark.slow
def test_dynamical_isometry_mlp():
    """Pennington, Schoenholz & Ganguli (2017): orthogonal tanh at criticality."""
    q = 1 / 64  # the small fixed point of their Figure 1: near-linear tanh
    sw, sb = jaxinit.critical_point("tanh", q)
    nets = {
        "orthogonal-tanh": CriticalMLP(sw, sb, True, "tanh"),
        "gaussian-tanh": CriticalMLP(sw, sb, False, "tanh"),
        "orthogonal-relu": CriticalMLP(math.sqrt(2), 0.0, True, "relu"),
    }
    std_sq = {}
    for label, model in nets.items():
        values = []
        # One network each: std(s^2) pools 256 singular values; over seeds 0-2 it varied
        # by 1% (orthogonal tanh, 0.233-0.236) and 4-6 (the others), far from 0.5 and 2.
        for seed in (0,):
            x = math.sqrt(q) * jax.random.normal(jax.random.key(100 + seed), (1, 256))
            variables = model.init(jax.random.key(seed), x)
            spec = jacobian_spectrum(model, x, variables=variables, method="exact")
            values.append(spec.std_sq)
            # chi_1 = 1 at criticality: the mean of s^2 is 1 on average over networks;
            # its sd for L = 32 Gaussian/ReLU layers is ~ sqrt(L / n) = 0.35 -> within 1.
            assert 0.3 < spec.mean_sq < 2.0, (label, spec.mean_sq)
        std_sq[label] = np.mean(values)
    # Theory (free probability): var(s^2) ~ L (mu_2 - 1) with mu_2 the second moment of
    # sigma_w^2 phi'(h)^2. Orthogonal tanh at q* = 1/64: mu_2 - 1 ~ 8 q^2 -> std ~ 0.25.
    # Gaussian weights add L (var of Marchenko-Pastur = 1) -> std ~ sqrt(32) = 5.7;
    # orthogonal ReLU: sigma_w^2 phi'^2 in {0, 2}, mu_2 = 2 -> std ~ 5.7. Thresholds
    # halve the gap on a log scale either way.
    assert std_sq["orthogonal-tanh"] < 0.5, std_sq
    assert std_sq["gaussian-tanh"] > 2.0, std_sq
    assert std_sq["orthogonal-relu"] > 2.0, std_sq


class LinearCNN(nn.Module):
    kinit: jax.nn.initializers.Initializer
    depth: int = 50

    @nn.compact
    def __call__(self, x):
        for _ in range(self.depth):
            x = nn.Conv(32, (3, 3), padding="CIRCULAR", use_bias=False,
                        kernel_init=self.kinit)(x)
        return x


@pytest.mark.slow
def test_dynamical_isometry_delta_orthogonal_cnn():
    """Xiao et al. (2018): delta-orthogonal kernels make a deep linear CNN an isometry."""
    x = jax.random.normal(jax.random.key(0), (1, 4, 4, 32))  # J is 512 x 512
    model = LinearCNN(jaxinit.delta_orthogonal())
    spec = jacobian_spectrum(model, x, variables=model.init(jax.random.key(1), x))
    assert spec.singular_values.size == 512
    # Exact isometry up to float32 rounding: 50 products of 32x32 orthogonal matrices,
    # error ~ 50 * 1e-7 * a few.
    np.testing.assert_allclose(spec.singular_values, 1.0, atol=1e-4)
    model = LinearCNN(jaxinit.he_normal())
    spec = jacobian_spectrum(model, x, variables=model.init(jax.random.key(1), x))
    # A product of 50 random matrices: Lyapunov exponents spread the singular values
    # exponentially in depth; "many orders of magnitude" = more than 4 here.
    assert spec.max / spec.min > 1e4, str(spec)
