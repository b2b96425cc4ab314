"""Mamba A_log against the float64 NumPy formula log(1..N) per channel."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import jaxinit


@pytest.mark.parametrize("dtype", [np.float32, np.float16, jax.numpy.bfloat16])
def test_mamba_a_log_formula(dtype):
    out = np.asarray(jaxinit.mamba_a_log()(jax.random.key(0), (3, 5), dtype)).astype(np.float64)
    expected = np.tile(np.log([1.0, 2.0, 3.0, 4.0, 5.0]), (3, 1))
    tol = {np.float32: 1e-7, np.float16: 1e-3}.get(dtype, 1e-2)
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    assert -np.exp(out[0, 1]) == pytest.approx(-2.0, rel=tol)


def test_mamba_a_log_describe_and_bad_shape():
    assert "log" in str(jaxinit.describe(jaxinit.mamba_a_log(), (2, 4)))
    with pytest.raises(ValueError, match="mamba_a_log"):
        jaxinit.mamba_a_log()(jax.random.key(0), (2, 0))


def test_s4d_lin_formula():
    out = np.asarray(jaxinit.s4d_lin()(jax.random.key(0), (2, 4)))
    assert out.dtype == np.complex64
    expected = np.tile(-0.5 + 1j * np.pi * np.arange(4.0), (2, 1))
    np.testing.assert_allclose(out, expected, rtol=1e-7, atol=1e-7)


# KS tests below: n = 4096 draws from a fixed key, rejected at p < 1e-3, so a correct
# sampler fails with probability 1e-3 per check (and, with a fixed key, deterministically
# never once it has passed); a mis-scaled log range or missing inverse softplus gives p ~ 0.
KS_ALPHA = 1e-3


@pytest.mark.parametrize(
    "dt_min, dt_max, dtype", [(1e-3, 1e-1, np.float32), (1e-2, 0.5, np.float64)]
)
def test_mamba_dt_bias_log_uniform(dt_min, dt_max, dtype):
    with jax.enable_x64(dtype == np.float64):
        out = jaxinit.mamba_dt_bias(dt_min, dt_max, dt_floor=0.0)(
            jax.random.key(1), (64, 64), dtype
        )
    assert out.dtype == dtype
    b = np.asarray(out, np.float64).ravel()
    dt = np.logaddexp(0.0, b)  # float64 softplus
    assert dt.min() >= dt_min * (1 - 1e-5) and dt.max() <= dt_max * (1 + 1e-5)
    lo, hi = np.log(dt_min), np.log(dt_max)
    assert scipy.stats.kstest(np.log(dt), scipy.stats.uniform(lo, hi - lo).cdf).pvalue > KS_ALPHA


def test_mamba_dt_bias_floor_and_low_precision():
    # dt_floor above dt_min: every dt is at least the floor, and the share at the floor is
    # P(dt < floor) = log(floor / dt_min) / log(dt_max / dt_min) = 1/2 here (binomial,
    # n = 4096: the +-0.05 band is > 6 standard deviations).
    b = jaxinit.mamba_dt_bias(1e-3, 1e-1, dt_floor=1e-2)(jax.random.key(2), (4096,), jnp.bfloat16)
    assert b.dtype == jnp.bfloat16
    dt = np.logaddexp(0.0, np.asarray(b, np.float64))
    assert dt.min() >= 1e-2 * (1 - 2e-2) and dt.max() <= 1e-1 * (1 + 2e-2)
    assert abs(np.mean(dt < 1.05e-2) - 0.5) < 0.05


def test_mamba_dt_bias_describe_and_errors():
    d = jaxinit.describe(jaxinit.mamba_dt_bias(), (4,))
    assert "softplus" in d.distribution
    # Oracle: the same moments from a float64 NumPy Monte Carlo over 10**6 draws
    # (standard error of the mean ~ 1e-3 of the std; tolerance 1e-2 relative).
    dt = np.exp(np.random.default_rng(0).uniform(np.log(1e-3), np.log(1e-1), 10**6))
    bias = dt + np.log(-np.expm1(-dt))
    assert d.mean == pytest.approx(bias.mean(), rel=1e-2)
    assert d.std == pytest.approx(bias.std(), rel=1e-2)
    assert d.bounds == pytest.approx(
        (1e-3 + np.log(-np.expm1(-1e-3)), 0.1 + np.log(-np.expm1(-0.1)))
    )
    with pytest.raises(ValueError, match=r"mamba_dt_bias.*dt_min"):
        jaxinit.mamba_dt_bias(dt_min=0.1, dt_max=0.1)
    with pytest.raises(ValueError, match=r"mamba_dt_bias.*dt_min"):
        jaxinit.mamba_dt_bias(dt_min=0.0)
    with pytest.raises(ValueError, match=r"mamba_dt_bias.*dt_floor"):
        jaxinit.mamba_dt_bias(dt_floor=-1e-4)
