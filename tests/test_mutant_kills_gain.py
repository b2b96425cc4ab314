"""Gains at default parameters and the errors of jaxinit.gain, against closed forms and SciPy.

These tests kill mutants of jaxinit/_src/core/gain.py (see docs/mutants.md).
"""

import math

import jax.numpy as jnp
import pytest
import scipy.integrate

import jaxinit
from jaxinit._src.core import gain as gain_mod


def test_leaky_relu_default_slope_is_001():
    # E[leaky(z)^2] = (1 + a^2) / 2 with PyTorch's and JAX's default a = 0.01.
    want = math.sqrt(2 / (1 + 0.01**2))
    assert jaxinit.gain("leaky_relu") == pytest.approx(want, rel=1e-12)
    assert jaxinit.gain("leaky_relu", mode="backward") == pytest.approx(want, rel=1e-12)


def _quad_second_moment(fn):
    density = lambda z: fn(z) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return sum(
        scipy.integrate.quad(density, a, b, epsabs=1e-14, epsrel=1e-13)[0]
        for a, b in [(-40.0, -1.0), (-1.0, 0.0), (0.0, 1.0), (1.0, 40.0)]
    )


@pytest.mark.parametrize("alpha", [0.5, 1.7])
def test_elu_alpha(alpha):
    fn = lambda z: z if z > 0 else alpha * math.expm1(z)
    want = 1 / math.sqrt(_quad_second_moment(fn))
    assert jaxinit.gain("elu", alpha=alpha) == pytest.approx(want, rel=1e-9)


def test_gaussian_expectation_is_exact_for_polynomials():
    # E[z^2] = 1, E[z^4] = 3, E[z^6] = 15 (double factorials), E[z^3] = 0.
    assert gain_mod.gaussian_expectation(lambda x: x**2) == pytest.approx(1.0, rel=1e-13)
    assert gain_mod.gaussian_expectation(lambda x: x**4) == pytest.approx(3.0, rel=1e-13)
    assert gain_mod.gaussian_expectation(lambda x: x**6) == pytest.approx(15.0, rel=1e-12)
    assert abs(gain_mod.gaussian_expectation(lambda x: x**3)) < 1e-13
    # The normal density's mass on [-12, 12] is 1 to double precision.
    assert gain_mod.gaussian_expectation(jnp.ones_like) == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize(
    "fn", [lambda x: jnp.sum(x), lambda x: jnp.where(x > 3, jnp.inf, x), lambda x: x / 0.0]
)
def test_gaussian_expectation_rejects_non_elementwise_or_infinite(fn):
    msg = r"^gain: the activation must map arrays elementwise to finite values$"
    with pytest.raises(ValueError, match=msg):
        gain_mod.gaussian_expectation(fn)


def test_error_messages():
    with pytest.raises(ValueError, match=r"^gain: activation='relu7' is unknown; known names: .*"):
        jaxinit.gain("relu7")
    with pytest.raises(ValueError, match=r"known names: celu, cos, elu, gelu, gelu_tanh,"):
        jaxinit.gain("relu7")  # sorted, comma-separated
    with pytest.raises(TypeError, match=r"^gain: activation=3 must be a name or a callable$"):
        jaxinit.gain(3)
    with pytest.raises(
        TypeError, match=r"^gain: parameters \['a', 'slope'\] apply only to named activations$"
    ):
        jaxinit.gain(jnp.tanh, slope=2, a=1)
    with pytest.raises(
        ValueError, match=r"^gain: mode='sideways' is not one of 'forward', 'backward'$"
    ):
        jaxinit.gain("relu", mode="sideways")
    zero = r"^gain: activation=<function .*> is zero almost everywhere$"
    with pytest.raises(ValueError, match=zero):
        jaxinit.gain(lambda x: 0 * x)
    with pytest.raises(ValueError, match=zero):
        jaxinit.gain(lambda x: 0 * x + 1, mode="backward")  # a constant: zero gradients


def test_resolve_activation_returns_the_callable_itself():
    assert gain_mod.resolve_activation(jnp.tanh) is jnp.tanh
