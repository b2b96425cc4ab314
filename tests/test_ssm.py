"""Mamba A_log against the float64 NumPy formula log(1..N) per channel."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from statcheck import assert_ks

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
    # A zero-size shape has no values to get wrong: the empty array, as every initializer.
    assert jaxinit.mamba_a_log()(jax.random.key(0), (2, 0)).shape == (2, 0)
    with pytest.raises(ValueError, match=r"mamba_a_log: shape=.* negative dimension"):
        jaxinit.mamba_a_log()(jax.random.key(0), (2, -1))


def test_s4d_lin_formula():
    out = np.asarray(jaxinit.s4d_lin()(jax.random.key(0), (2, 4)))
    assert out.dtype == np.complex64
    expected = np.tile(-0.5 + 1j * np.pi * np.arange(4.0), (2, 1))
    np.testing.assert_allclose(out, expected, rtol=1e-7, atol=1e-7)


# KS tests below (statcheck.assert_ks): n = 4096 draws from a fixed key, rejected at
# p <= 1e-4, so a correct sampler fails with probability 1e-4 per check (and, with a fixed
# key, deterministically never once it has passed); a wrong law gives p ~ 0.


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
    assert_ks(np.log(dt), scipy.stats.uniform(lo, hi - lo))


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


@pytest.mark.parametrize(
    "r_min, r_max, dtype",
    [(0.0, 1.0, np.float32), (0.9, 0.999, np.float64), (0.4, 0.8, np.float32)],
)
def test_lru_nu_log_ring_uniform(r_min, r_max, dtype):
    with jax.enable_x64(dtype == np.float64):
        out = jaxinit.lru_nu_log(r_min, r_max)(jax.random.key(3), (4096,), dtype)
    assert out.dtype == dtype
    r2 = np.exp(-2.0 * np.exp(np.asarray(out, np.float64)))  # |lambda|^2, float64 formula
    assert r2.min() >= r_min**2 * (1 - 1e-5) and r2.max() <= r_max**2 * (1 + 1e-6)
    lo, hi = r_min**2, r_max**2
    assert_ks(r2, scipy.stats.uniform(lo, hi - lo))


@pytest.mark.parametrize("max_phase, dtype", [(2 * np.pi, np.float32), (np.pi / 10, np.float64)])
def test_lru_theta_log_uniform_phase(max_phase, dtype):
    with jax.enable_x64(dtype == np.float64):
        out = jaxinit.lru_theta_log(max_phase)(jax.random.key(4), (4096,), dtype)
    assert out.dtype == dtype
    theta = np.exp(np.asarray(out, np.float64))
    assert theta.min() >= 0 and theta.max() <= max_phase * (1 + 1e-6)
    assert_ks(theta, scipy.stats.uniform(0, max_phase))


def test_lru_bfloat16_finite_and_describe():
    nu = jaxinit.lru_nu_log()(jax.random.key(5), (4096,), jnp.bfloat16)
    theta = jaxinit.lru_theta_log()(jax.random.key(5), (4096,), jnp.bfloat16)
    assert nu.dtype == theta.dtype == jnp.bfloat16
    assert np.isfinite(np.asarray(nu, np.float32)).all()
    assert np.isfinite(np.asarray(theta, np.float32)).all()
    # Oracles: log of U(0, m) has mean log m - 1 and std 1 (minus an Exp(1) variable);
    # nu_log's moments from a float64 NumPy Monte Carlo, 10**6 draws (tolerance 1e-2,
    # > 10 standard errors).
    d = jaxinit.describe(jaxinit.lru_theta_log(2.0), (8,))
    assert d.mean == pytest.approx(np.log(2.0) - 1) and d.std == pytest.approx(1.0)
    r2 = np.random.default_rng(0).uniform(0.25, 0.81, 10**6)
    nu64 = np.log(-0.5 * np.log(r2))
    d = jaxinit.describe(jaxinit.lru_nu_log(0.5, 0.9), (8,))
    assert d.mean == pytest.approx(nu64.mean(), rel=1e-2)
    assert d.std == pytest.approx(nu64.std(), rel=1e-2)
    assert d.bounds == pytest.approx((np.log(-np.log(0.9)), np.log(-np.log(0.5))))


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"r_min": 0.5, "r_max": 0.5}, "r_min"),
        ({"r_min": -0.1}, "r_min"),
        ({"r_min": 1.0}, "r_min"),
        ({"r_max": 1.5}, "r_max"),
        ({"r_max": 0.0}, "r_max"),
    ],
)
def test_lru_nu_log_errors(kwargs, arg):
    with pytest.raises(ValueError, match=rf"lru_nu_log.*{arg}"):
        jaxinit.lru_nu_log(**kwargs)


def test_lru_theta_log_errors():
    with pytest.raises(ValueError, match=r"lru_theta_log.*max_phase"):
        jaxinit.lru_theta_log(0.0)
    # The phase u * max_phase is drawn in float32 (float64 for float64): beyond float32's
    # largest value it overflowed (a bare RuntimeWarning, then inf) instead of a refusal.
    with pytest.raises(ValueError, match=r"lru_theta_log: max_phase=1e\+39 .*float32"):
        jaxinit.lru_theta_log(1e39)(jax.random.key(0), (4,), jnp.float16)
    # log(2**63) = 43.7 is beyond float8_e3m4's largest value (15.5): it gave inf.
    with pytest.raises(ValueError, match=r"lru_theta_log: max_phase=9.22\d+e\+18 .*float8_e3m4"):
        jaxinit.lru_theta_log(2.0**63)(jax.random.key(0), (4,), jnp.float8_e3m4)
    small = jaxinit.lru_theta_log(1e6)(jax.random.key(0), (256,), jnp.float8_e3m4)
    # log(1e6) = 13.8 fits; the largest of 256 uniform draws is near it.
    assert np.isfinite(np.asarray(small, np.float32)).all()
    assert 12.0 < float(np.asarray(small, np.float32).max()) <= 14.0
    with jax.enable_x64(True):
        out = np.asarray(jaxinit.lru_theta_log(1e39)(jax.random.key(0), (4096,), jnp.float64))
    # Oracle: log(u * 1e39) <= log(1e39) = 89.80; u ~ U(0, 1) puts the maximum near it.
    assert np.isfinite(out).all() and 89.0 < out.max() <= np.log(1e39)


def test_lru_nu_log_refuses_an_r_max_whose_square_underflows():
    # r_max = 1e-20: r_max**2 = 1e-40 is below float32's smallest normal (1.18e-38), so
    # every draw would be the clamped value (and the float64 statistics warned log(0)).
    with pytest.raises(ValueError, match=r"lru_nu_log: r_max=1e-20 .*float32"):
        jaxinit.lru_nu_log(r_max=1e-20)(jax.random.key(0), (4,))
    with pytest.raises(ValueError, match=r"lru_nu_log: r_max=1e-320"):
        jaxinit.describe(jaxinit.lru_nu_log(r_max=1e-320), (4,))
    with jax.enable_x64(True):  # float64 holds 1e-40: nu_log >= log(-log(1e-20)) = 3.83
        out = np.asarray(jaxinit.lru_nu_log(r_max=1e-20)(jax.random.key(0), (64,), jnp.float64))
    assert np.isfinite(out).all() and out.min() >= np.log(-np.log(1e-20)) - 1e-12


# n = 2**16 draws: the KS test then also separates a^c ~ U(0.9, 0.999) from the released
# code's a^2-uniform convention (CDF gap ~0.013 against a p = 1e-4 critical value of ~0.009).
@pytest.mark.parametrize(
    "min_rad, max_rad, c, dtype",
    [(0.9, 0.999, 8.0, np.float32), (0.5, 0.9, 4.0, np.float64), (0.9, 0.999, 1.0, np.float32)],
)
def test_rg_lru_a_uniform_power(min_rad, max_rad, c, dtype):
    with jax.enable_x64(dtype == np.float64):
        out = jaxinit.rg_lru_a(min_rad, max_rad, c)(jax.random.key(6), (2**16,), dtype)
    assert out.dtype == dtype
    lam = np.asarray(out, np.float64)
    a_c = (1.0 / (1.0 + np.exp(-lam))) ** c  # float64 sigmoid, then the power c
    assert a_c.min() >= min_rad * (1 - 1e-5) and a_c.max() <= max_rad * (1 + 1e-5)
    assert_ks(a_c, scipy.stats.uniform(min_rad, max_rad - min_rad))


def test_rg_lru_a_low_precision_describe_and_errors():
    out = jaxinit.rg_lru_a()(jax.random.key(7), (256,), jnp.bfloat16)
    assert out.dtype == jnp.bfloat16
    a8 = (1.0 / (1.0 + np.exp(-np.asarray(out, np.float64)))) ** 8
    assert a8.min() >= 0.9 * (1 - 2e-2) and a8.max() <= 1.0
    # Oracle: float64 NumPy Monte Carlo of logit(u^(1/8)), 10**6 draws, tolerance 1e-2.
    u = np.random.default_rng(0).uniform(0.9, 0.999, 10**6) ** (1 / 8)
    lam = np.log(u / (1 - u))
    d = jaxinit.describe(jaxinit.rg_lru_a(), (8,))
    assert d.mean == pytest.approx(lam.mean(), rel=1e-2)
    assert d.std == pytest.approx(lam.std(), rel=1e-2)
    for kwargs, arg in [
        ({"min_rad": 0.99, "max_rad": 0.9}, "min_rad"),
        ({"min_rad": 0.0}, "min_rad"),
        ({"max_rad": 1.0}, "max_rad"),
        ({"c": 0.0}, "c"),
    ]:
        with pytest.raises(ValueError, match=rf"rg_lru_a.*{arg}="):
            jaxinit.rg_lru_a(**kwargs)


@pytest.mark.parametrize("dtype, tol", [(np.complex64, 1e-6), (np.complex128, 1e-13)])
def test_s4d_inv_formula(dtype, tol):
    with jax.enable_x64(dtype == np.complex128):
        out = np.asarray(jaxinit.s4d_inv()(jax.random.key(0), (2, 6), dtype))
    assert out.dtype == dtype
    n, size = np.arange(6.0), 6.0
    expected = np.tile(-0.5 + 1j * size / np.pi * (size / (2 * n + 1) - 1), (2, 1))
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    assert np.asarray(jaxinit.s4d_inv()(jax.random.key(0), (3,))).dtype == np.complex64
    with pytest.raises(TypeError, match="s4d_inv"):
        jaxinit.s4d_inv()(jax.random.key(0), (3,), np.int32)


def _hippo_legs_numpy(size):
    """Float64 loops straight from the HiPPO-LegS formula (an independent oracle)."""
    a = np.zeros((size, size))
    for n in range(size):
        for k in range(size):
            if n > k:
                a[n, k] = -np.sqrt(2 * n + 1) * np.sqrt(2 * k + 1)
            elif n == k:
                a[n, k] = -(n + 1)
    return a, np.sqrt(2 * np.arange(size) + 1.0)


@pytest.mark.parametrize(
    "dtype, tol", [(np.float32, 1e-6), (np.float64, 1e-14), (jnp.bfloat16, 1e-2)]
)
def test_hippo_legs_formula(dtype, tol):
    a_ref, b_ref = _hippo_legs_numpy(5)
    with jax.enable_x64(dtype == np.float64):
        a = jaxinit.hippo_legs_a()(jax.random.key(0), (3, 5, 5), dtype)
        b = jaxinit.hippo_legs_b()(jax.random.key(0), (2, 5), dtype)
    assert a.dtype == b.dtype == dtype
    np.testing.assert_allclose(
        np.asarray(a, np.float64), np.broadcast_to(a_ref, (3, 5, 5)), rtol=tol
    )
    np.testing.assert_allclose(np.asarray(b, np.float64), np.tile(b_ref, (2, 1)), rtol=tol)


def test_hippo_legs_errors_and_describe():
    with pytest.raises(ValueError, match=r"hippo_legs_a.*square"):
        jaxinit.hippo_legs_a()(jax.random.key(0), (4, 5))
    with pytest.raises(ValueError, match="hippo_legs_a"):
        jaxinit.hippo_legs_a()(jax.random.key(0), (4,))
    a_ref, _ = _hippo_legs_numpy(4)
    d = jaxinit.describe(jaxinit.hippo_legs_a(), (4, 4))
    assert d.mean == pytest.approx(a_ref.mean()) and d.std == pytest.approx(a_ref.std())
    assert d.bounds == pytest.approx((a_ref.min(), 0.0))
    d = jaxinit.describe(jaxinit.hippo_legs_b(), (3,))
    values = np.sqrt([1.0, 3.0, 5.0])
    assert d.mean == pytest.approx(values.mean()) and d.std == pytest.approx(values.std())


def test_s4d_describe():
    # Oracle: NumPy mean and sqrt(E|z - mean|^2) of the float64 formula values.
    n = np.arange(6.0)
    for init, values in [
        (jaxinit.s4d_lin(), -0.5 + 1j * np.pi * n),
        (jaxinit.s4d_inv(), -0.5 + 1j * 6 / np.pi * (6 / (2 * n + 1) - 1)),
    ]:
        d = jaxinit.describe(init, (2, 6))
        assert d.mean == pytest.approx(values.mean())
        assert d.std == pytest.approx(np.sqrt(np.mean(np.abs(values - values.mean()) ** 2)))
        assert d.bounds is None and "deterministic" in str(d)
