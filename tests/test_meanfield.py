"""Mean-field solvers against closed forms, an independent quadrature, and simulation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit
from jaxinit.diagnostics import signal_stats, tap

# An independent quadrature (NumPy's Gauss-Hermite, probabilists'), not gain's.
_Z, _W = np.polynomial.hermite_e.hermegauss(160)
_W = _W / _W.sum()


def E(f):
    return float(_W @ f(_Z))


def E2(f, c):
    """E[f(z1, z2)] for standard normals with correlation c (2D tensor rule)."""
    z1, z2 = np.meshgrid(_Z, _Z, indexing="ij")
    u2 = c * z1 + math.sqrt(1 - c * c) * z2
    return float(_W @ f(z1, u2) @ _W)


def dtanh(x):
    return 1 / np.cosh(x) ** 2


def test_relu_closed_forms():
    # He et al.: chi_1 = sigma_w^2 / 2 for any q, so the critical point is sigma_w^2 = 2.
    assert jaxinit.critical_weight_std("relu") ** 2 == pytest.approx(2.0, abs=1e-10)
    assert jaxinit.critical_weight_std("relu", bias_std=0.5) ** 2 == pytest.approx(2.0, abs=1e-8)
    assert jaxinit.chi("relu", 1.2) == pytest.approx(1.44 / 2, abs=1e-12)
    # Length map q = sigma_w^2 q / 2 + sigma_b^2 -> q* = sigma_b^2 / (1 - sigma_w^2 / 2).
    assert jaxinit.q_star("relu", 1.0, 0.5) == pytest.approx(0.25 / 0.5, rel=1e-10)
    assert jaxinit.q_star("relu", 1.2, 0.3) == pytest.approx(0.09 / (1 - 0.72), rel=1e-10)
    assert jaxinit.q_star("relu", 1.5, 0.1) == math.inf   # sigma_w^2 > 2 diverges
    # Ordered phase: c* = 1 and xi_c = -1 / log chi_1.
    _, xi_c = jaxinit.depth_scales("relu", 1.2, 0.3)
    assert xi_c == pytest.approx(-1 / math.log(0.72), rel=1e-10)


def test_tanh_closed_forms():
    # sigma_b = 0: q* -> 0 and chi_1 -> sigma_w^2 tanh'(0)^2, critical at sigma_w = 1.
    assert jaxinit.critical_weight_std("tanh") == pytest.approx(1.0, abs=1e-9)
    assert jaxinit.q_star("tanh", 0.8) < 1e-6
    assert jaxinit.chi("tanh", 0.8) == pytest.approx(0.64, abs=1e-6)
    # A linear network: q* marginal, chi_1 = sigma_w^2.
    assert jaxinit.chi("linear", 1.3, q=2.0) == pytest.approx(1.69, rel=1e-12)


@pytest.mark.parametrize("bias_std", [0.05, 0.3, 1.0])
def test_critical_tanh_against_independent_quadrature(bias_std):
    sw = jaxinit.critical_weight_std("tanh", bias_std=bias_std)
    # Solve q* by iterating the length map with the independent rule, then chi_1.
    q = 1.0
    for _ in range(5000):
        q = sw**2 * E(lambda z, q=q: np.tanh(math.sqrt(q) * z) ** 2) + bias_std**2
    chi_1 = sw**2 * E(lambda z: dtanh(math.sqrt(q) * z) ** 2)
    # Both quadratures are accurate to ~1e-12 for these smooth integrands; the fixed
    # point iteration converges geometrically away from sigma_b = 0.
    assert chi_1 == pytest.approx(1.0, abs=1e-6)
    assert jaxinit.q_star("tanh", sw, bias_std) == pytest.approx(q, rel=1e-6)
    # Schoenholz et al. (2017), Fig. 1: the critical line rises from (sigma_b^2, sigma_w^2)
    # = (0, 1); at sigma_b = 0.3 it is near sigma_w^2 ~ 1.76 (we check monotonicity).
    assert sw > 1.0


def test_critical_point_definition():
    q = 1 / 64
    sw, sb = jaxinit.critical_point("tanh", q)
    assert sw**2 * E(lambda z: dtanh(math.sqrt(q) * z) ** 2) == pytest.approx(1.0, abs=1e-10)
    assert sw**2 * E(lambda z: np.tanh(math.sqrt(q) * z) ** 2) + sb**2 == pytest.approx(
        q, rel=1e-9)
    with pytest.raises(ValueError, match="sigma_b"):
        jaxinit.critical_point("sigmoid", 1.0)   # sigmoid(0) = 1/2: needs negative bias var


@pytest.mark.parametrize("sw, sb", [(1.3, 0.2), (2.5, 0.3)])   # ordered-ish and chaotic
def test_depth_scales_against_finite_differences_of_the_maps(sw, sb):
    q = jaxinit.q_star("tanh", sw, sb)
    xi_q, xi_c = jaxinit.depth_scales("tanh", sw, sb)

    def length(v):
        return sw**2 * E(lambda z: np.tanh(math.sqrt(v) * z) ** 2) + sb**2

    # xi_q^-1 = -log L'(q*): central difference, error O(h^2) ~ 1e-8.
    h = 1e-4 * q
    slope_q = (length(q + h) - length(q - h)) / (2 * h)
    assert xi_q == pytest.approx(-1 / math.log(slope_q), rel=1e-5)

    def corr(c):
        return (sw**2 * E2(
            lambda a, b: np.tanh(math.sqrt(q) * a) * np.tanh(math.sqrt(q) * b), c) + sb**2) / q

    chi_1 = sw**2 * E(lambda z: dtanh(math.sqrt(q) * z) ** 2)
    if chi_1 < 1:   # ordered: c* = 1, slope of the correlation map at 1 is chi_1
        assert xi_c == pytest.approx(-1 / math.log(chi_1), rel=1e-6)
    else:           # chaotic: find c* < 1 independently and differentiate there
        lo, hi = 0.0, 1 - 1e-6
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if corr(mid) - mid > 0 else (lo, mid)
        c = (lo + hi) / 2
        slope_c = (corr(c + 1e-5) - corr(c - 1e-5)) / 2e-5
        # 160-point tensor rule on a smooth integrand, difference step 1e-5: ~1e-6.
        assert xi_c == pytest.approx(-1 / math.log(slope_c), rel=1e-4)


@pytest.mark.slow
def test_q_star_and_chi_against_simulation():
    """A wide random tanh network: the simulated variance and gradient growth per layer
    match q* and chi_1."""
    sw, sb, width, depth, batch = 1.5, 0.3, 1024, 24, 256
    keys = jax.random.split(jax.random.key(0), 2 * depth)
    params = [(sw * jax.random.normal(keys[2 * i], (width, width)) / math.sqrt(width),
               sb * jax.random.normal(keys[2 * i + 1], (width,))) for i in range(depth)]

    def net(params, x):
        for i, (w, b) in enumerate(params):
            x = jnp.tanh(tap(x @ w + b[None, :], f"h{i}"))
        return x

    x = jax.random.normal(jax.random.key(1), (batch, width))
    report = signal_stats(net, x, params=params)
    q_sim = report.column("outputs.second_moment")[depth // 2:]
    q = jaxinit.q_star("tanh", sw, sb)
    # Each layer's second moment averages batch * width = 262144 entries, but layers share
    # one random W: relative fluctuation ~ sqrt(2 / width) / (coupling) ~ 4%; 10% = 2.5 sd.
    np.testing.assert_allclose(q_sim, q, rtol=0.1)
    assert abs(np.mean(q_sim) / q - 1) < 0.03
    # Backward: the gradient second moment grows by chi_1 per layer (mean field with the
    # gradient-independence assumption); geometric mean over the middle layers.
    g = report.column("grad_outputs.second_moment")
    rates = g[4:depth - 4][:-1] / g[4:depth - 4][1:]
    chi_1 = jaxinit.chi("tanh", sw, sb)
    assert chi_1 > 1   # chaotic phase: gradients explode going backward
    assert np.exp(np.mean(np.log(rates))) == pytest.approx(chi_1, rel=0.05)
    # And the check can fail: the ordered-phase value of chi_1 is far outside.
    assert abs(jaxinit.chi("tanh", 0.8, sb) - np.exp(np.mean(np.log(rates)))) > 0.3


def test_bad_arguments():
    with pytest.raises(ValueError, match="q_star: activation='nope'"):
        jaxinit.q_star("nope", 1.0)
    with pytest.raises(ValueError, match="weight_std=0"):
        jaxinit.chi("tanh", 0.0)
    with pytest.raises(ValueError, match="bias_std=-1"):
        jaxinit.critical_weight_std("tanh", bias_std=-1)
    with pytest.raises(ValueError, match="q=0"):
        jaxinit.critical_point("tanh", 0.0)
    with pytest.raises(ValueError, match="diverges"):
        jaxinit.depth_scales("relu", 1.5, 0.1)
