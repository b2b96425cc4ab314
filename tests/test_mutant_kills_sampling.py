"""The standard samplers and their moment formulas, against SciPy and hand-computed values.

These tests kill mutants of jaxinit/_src/core/sampling.py (see docs/mutants.md). Statistical
checks use fixed keys (deterministic outcomes); each states its false-failure probability
under a correct sampler. The mutation run shows each failing on wrong variants (a changed
constant, sign or distribution).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from jaxinit._src.core import sampling

KEY = jax.random.key(11)
N = 20_000
# KS tests reject at p < 1e-3: a false failure with probability 1e-3 each under the null.
KS_ALPHA = 1e-3


@pytest.mark.parametrize(
    "dtype, real, sample",
    [
        (np.float64, np.float64, np.float64),
        (np.complex128, np.float64, np.complex128),
        (np.float32, np.float32, np.float32),
        (jnp.bfloat16, np.float32, np.float32),
        (np.float16, np.float32, np.float32),
        (np.complex64, np.float32, np.complex64),
    ],
)
def test_dtypes(dtype, real, sample):
    dtype = np.dtype(dtype)
    assert sampling.real_dtype(dtype) == np.dtype(real)
    assert sampling.sample_dtype(dtype) == np.dtype(sample)
    assert sampling.is_complex(dtype) is (np.dtype(sample).kind == "c")


def test_times_rounds_the_factor_to_the_real_precision():
    z = jnp.ones(2, jnp.float32)
    out = sampling.times(z, 0.1)
    assert out.dtype == jnp.float32
    assert float(out[0]) == float(np.float32(0.1))
    c = sampling.times(jnp.ones(2, jnp.complex64), 3.0)
    assert c.dtype == jnp.complex64 and complex(c[1]) == 3.0
    with jax.enable_x64(True):
        wide = sampling.times(jnp.ones(2, jnp.float64), 0.1)
        assert wide.dtype == jnp.float64 and float(wide[0]) == 0.1  # not rounded to float32


def test_largest_draw():
    # -Phi^-1(2**-(p + 2)) with p = 24 (float32) and 53 (float64) mantissa bits.
    f32 = scipy.stats.norm.isf(2.0**-26)
    f64 = scipy.stats.norm.isf(2.0**-55)
    assert sampling.largest_draw("normal", np.dtype(np.float32)) == pytest.approx(f32, rel=1e-9)
    assert sampling.largest_draw("normal", np.dtype(jnp.bfloat16)) == pytest.approx(f32, rel=1e-9)
    assert sampling.largest_draw("normal", np.dtype(np.float64)) == pytest.approx(f64, rel=1e-9)
    assert 5.54 < f32 < 5.55 and 8.37 < f64 < 8.38
    assert sampling.largest_draw("uniform", np.dtype(np.float32)) == 1.0
    assert sampling.largest_draw("uniform", np.dtype(np.complex64)) == math.sqrt(2)
    assert sampling.largest_draw("truncated_normal", np.dtype(np.float32)) == 2.0


@pytest.mark.parametrize(
    "lower, upper", [(-2.0, 2.0), (-1.0, 3.0), (0.0, math.inf), (-math.inf, 1.5), (0.5, 0.75)]
)
def test_truncnorm_moments_match_scipy(lower, upper):
    ref = scipy.stats.truncnorm(lower, upper)
    mean, std = sampling.truncnorm_moments(lower, upper)
    assert mean == pytest.approx(ref.mean(), rel=1e-9, abs=1e-12)
    assert std == pytest.approx(ref.std(), rel=1e-9)


@pytest.mark.parametrize("upper", [0.5, 1.0, 2.0, 3.0])
def test_complex_truncnorm_std_matches_truncated_exponential(upper):
    # |z|^2 ~ Exp(1) truncated to [0, upper^2]: SciPy's truncexpon has exactly that law.
    want = math.sqrt(scipy.stats.truncexpon(upper**2).mean())
    assert sampling.complex_truncnorm_std(upper) == pytest.approx(want, rel=1e-12)


def test_pinned_truncation_constants():
    real, cplx = sampling.TRUNCATED_STD_2, sampling.COMPLEX_TRUNCATED_STD_2
    assert real == pytest.approx(0.87962566103423978, rel=1e-15)
    # E|z|^2 = (1 - (1 + s) e^-s) / (1 - e^-s) at s = 4.
    assert cplx == pytest.approx(math.sqrt((1 - 5 * math.exp(-4)) / (1 - math.exp(-4))), rel=1e-15)


def _ks(sample, cdf):
    return scipy.stats.kstest(np.asarray(sample, np.float64).ravel(), cdf).pvalue


@pytest.mark.parametrize("dtype", [np.float32, jnp.bfloat16, np.complex64])
def test_normal(dtype):
    z = sampling.normal(KEY, (N,), np.dtype(dtype))
    assert z.dtype == sampling.sample_dtype(np.dtype(dtype))
    if np.dtype(dtype).kind == "c":
        # E|z|^2 = 1: |z|^2 ~ Exp(1), and each part is N(0, 1/2).
        assert _ks(np.abs(np.asarray(z)) ** 2, scipy.stats.expon.cdf) > KS_ALPHA
        assert _ks(np.asarray(z).real, scipy.stats.norm(scale=math.sqrt(0.5)).cdf) > KS_ALPHA
    else:
        assert _ks(z, scipy.stats.norm.cdf) > KS_ALPHA


def test_uniform_bounds_and_law():
    z = sampling.uniform(KEY, (N,), np.dtype(jnp.bfloat16), -3.0, 5.0)
    assert z.dtype == jnp.float32
    assert float(z.min()) >= -3.0 and float(z.max()) < 5.0
    assert _ks(z, scipy.stats.uniform(-3.0, 8.0).cdf) > KS_ALPHA
    default = sampling.uniform(KEY, (N,), np.dtype(np.float32))
    assert _ks(default, scipy.stats.uniform(0.0, 1.0).cdf) > KS_ALPHA


def test_truncated_normal_bounds_and_law():
    z = sampling.truncated_normal(KEY, (N,), np.dtype(jnp.float16), -1.0, 2.5)
    assert z.dtype == jnp.float32
    assert float(z.min()) > -1.0 and float(z.max()) < 2.5
    assert _ks(z, scipy.stats.truncnorm(-1.0, 2.5).cdf) > KS_ALPHA


def test_complex_uniform_is_uniform_on_the_disk_of_radius_sqrt2():
    z = np.asarray(sampling.complex_uniform(KEY, (N,), np.dtype(np.complex64)))
    assert z.dtype == np.complex64
    r2 = np.abs(z.astype(np.complex128)) ** 2
    assert r2.max() <= 2.0 + 1e-6
    # Uniform on the disk: |z|^2 uniform on [0, 2], the angle uniform on (-pi, pi].
    assert _ks(r2, scipy.stats.uniform(0.0, 2.0).cdf) > KS_ALPHA
    assert _ks(np.angle(z), scipy.stats.uniform(-math.pi, 2 * math.pi).cdf) > KS_ALPHA


@pytest.mark.parametrize("upper", [1.0, 2.0])
def test_complex_truncated_normal_law(upper):
    z = np.asarray(sampling.complex_truncated_normal(KEY, (N,), np.dtype(np.complex64), upper))
    assert z.dtype == np.complex64
    r2 = np.abs(z.astype(np.complex128)) ** 2
    assert r2.max() <= upper**2 * (1 + 1e-6)
    assert _ks(r2, scipy.stats.truncexpon(upper**2).cdf) > KS_ALPHA
    assert _ks(np.angle(z), scipy.stats.uniform(-math.pi, 2 * math.pi).cdf) > KS_ALPHA


def test_complex128_draws_in_float64():
    with jax.enable_x64(True):
        for draw in (sampling.complex_uniform, sampling.normal):
            z = draw(KEY, (8,), np.dtype(np.complex128))
            assert z.dtype == jnp.complex128
        t = sampling.complex_truncated_normal(KEY, (8,), np.dtype(np.complex128), 2.0)
        assert t.dtype == jnp.complex128


def test_32_bit_draws_stay_32_bit_under_x64():
    # With x64 on, JAX's default float is float64: every draw must name its dtype.
    with jax.enable_x64(True):
        f32, c64 = np.dtype(np.float32), np.dtype(np.complex64)
        assert sampling.normal(KEY, (4,), f32).dtype == jnp.float32
        assert sampling.normal(KEY, (4,), c64).dtype == jnp.complex64
        assert sampling.uniform(KEY, (4,), f32).dtype == jnp.float32
        assert sampling.truncated_normal(KEY, (4,), f32, -2.0, 2.0).dtype == jnp.float32
        assert sampling.complex_uniform(KEY, (4,), c64).dtype == jnp.complex64
        assert sampling.complex_truncated_normal(KEY, (4,), c64, 2.0).dtype == jnp.complex64
