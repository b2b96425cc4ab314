"""Dtype-exact samplers: draw in float32 (float64 for float64), then cast.

``jax.random`` samples a bfloat16 normal from 8 random mantissa bits: 128 distinct
magnitudes per binade, a biased mean and no value beyond about 3 sigma. Drawing in the
sampling precision and casting once keeps the target dtype's mean, variance and tails
exact, and the same key gives the same weights, up to rounding, in every dtype. Under
``jit`` the final cast fuses into the sampler, so no float32 copy is materialized.

Every draw goes through :func:`jaxinit._src.core.threefry.fusible`: the same bits as the key's
own, computed so that XLA fuses hash, transform and cast with no full-size temporaries.
"""

from __future__ import annotations

import math
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.core import threefry
from jaxinit._src.core.base import Shape


def real_dtype(dtype: np.dtype) -> np.dtype:
    """The real precision samples are drawn in: float64 for 64-bit types, else float32."""
    wide = dtype in (np.dtype(np.float64), np.dtype(np.complex128))
    return np.dtype(np.float64 if wide else np.float32)


def sample_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype samples are drawn in: complex stays complex, at the matching precision."""
    real = real_dtype(dtype)
    return (
        np.dtype(np.complex128 if real == np.float64 else np.complex64)
        if is_complex(dtype)
        else real
    )


def is_complex(dtype: np.dtype) -> bool:
    return dtype.kind == "c"


def times(z: jax.Array, factor: float | np.generic) -> jax.Array:
    """`z * factor`, the factor first rounded to z's real precision (as jax does), and
    expressed in z's own dtype so that strict dtype promotion holds for complex `z` too."""
    return z * np.asarray(real_dtype(np.dtype(z.dtype)).type(factor), z.dtype)


def largest_draw(distribution: str, dtype: np.dtype) -> float:
    """An upper bound on |z| for the standard samplers below drawn for `dtype`.

    A uniform draw in the sampling precision (p mantissa bits) lies at least 2**-(p + 1)
    from the ends of (-1, 1), so a normal drawn by inverting the CDF stays below
    ``-Phi^-1(2**-(p + 2))``: 5.54 in float32, 8.37 in float64. Uniforms on (-1, 1) stay
    below 1, the complex uniform disk below sqrt(2), the 2-sigma truncations below 2.
    """
    if distribution == "normal":
        bits = np.finfo(real_dtype(dtype)).nmant + 1
        return -statistics.NormalDist().inv_cdf(2.0 ** -(bits + 2))
    if distribution == "uniform":
        return math.sqrt(2) if is_complex(dtype) else 1.0
    return 2.0  # truncated at 2 sigma


def normal(key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
    """Standard normal in the sampling dtype (complex: E|z|^2 = 1)."""
    return jax.random.normal(threefry.fusible(key), shape, sample_dtype(dtype))


def uniform(
    key: jax.Array, shape: Shape, dtype: np.dtype, low: float = 0.0, high: float = 1.0
) -> jax.Array:
    return jax.random.uniform(threefry.fusible(key), shape, real_dtype(dtype), low, high)


def truncated_normal(
    key: jax.Array, shape: Shape, dtype: np.dtype, lower: float, upper: float
) -> jax.Array:
    """Standard normal truncated to ``(lower, upper)`` by inverse-CDF sampling."""
    key = threefry.fusible(key)
    return jax.random.truncated_normal(key, lower, upper, shape, real_dtype(dtype))


def complex_uniform(key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
    """Uniform on the disk of radius sqrt(2): E|z|^2 = 1 (jax.nn.initializers' scheme)."""
    key_r, key_theta = jax.random.split(threefry.fusible(key))
    real = real_dtype(dtype)
    r = jnp.sqrt(times(jax.random.uniform(key_r, shape, real), 2.0))
    theta = times(jax.random.uniform(key_theta, shape, real), 2 * np.pi)
    return jax.lax.complex(r * jnp.cos(theta), r * jnp.sin(theta))


def complex_truncated_normal(
    key: jax.Array, shape: Shape, dtype: np.dtype, upper: float
) -> jax.Array:
    """Circular complex normal (E|z|^2 = 1 before truncation), modulus truncated to `upper`.

    |z|^2 ~ Exp(1), so |z|^2 truncated to upper^2 is drawn by inverting its CDF.
    """
    key_r, key_theta = jax.random.split(threefry.fusible(key))
    real = real_dtype(dtype)
    t = times(jax.random.uniform(key_r, shape, real), -math.expm1(-(upper**2)))
    r = jnp.sqrt(-jnp.log1p(-t))
    theta = times(jax.random.uniform(key_theta, shape, real), 2 * np.pi)
    return jax.lax.complex(r * jnp.cos(theta), r * jnp.sin(theta))


def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0


def _cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def truncnorm_moments(lower: float, upper: float) -> tuple[float, float]:
    """Mean and std of N(0, 1) truncated to ``(lower, upper)``.

    With Z = Phi(upper) - Phi(lower): mean = (phi(lower) - phi(upper)) / Z and
    var = 1 + (lower phi(lower) - upper phi(upper)) / Z - mean^2. An interval right of 0
    is mirrored to the left tail, where the CDF keeps its relative precision. Where Z
    underflows, the law is a sliver: uniform on an interval narrower than 1e-6, else the
    far-tail (exponential) limit, mean = upper - 1/|upper| and std = 1/|upper|.
    """
    if lower > 0:
        mean, std = truncnorm_moments(-upper, -lower)
        return -mean, std
    z = _cdf(upper) - _cdf(lower)
    if not z > 1e-300:
        if upper - lower < 1e-6:
            return (lower + upper) / 2, (upper - lower) / math.sqrt(12)
        return upper + 1 / upper, -1 / upper
    mean = (_pdf(lower) - _pdf(upper)) / z
    lo = lower * _pdf(lower) if math.isfinite(lower) else 0.0
    hi = upper * _pdf(upper) if math.isfinite(upper) else 0.0
    return mean, math.sqrt(max(1 + (lo - hi) / z - mean**2, 0.0))


def complex_truncnorm_std(upper: float) -> float:
    """Std of the circular complex normal with modulus truncated to `upper`.

    With s = upper^2 and |z|^2 ~ Exp(1) truncated to [0, s]:
    E|z|^2 = (1 - (1 + s) e^-s) / (1 - e^-s).
    """
    s = upper**2
    return math.sqrt(-(math.expm1(-s) + s * math.exp(-s)) / -math.expm1(-s))


#: Std of N(0, 1) truncated to (-2, 2): the correction variance_scaling divides by so
#: that its truncated normal has exactly the requested variance (0.87962566103423978).
TRUNCATED_STD_2 = truncnorm_moments(-2.0, 2.0)[1]
#: The complex counterpart (0.96196...). jax.nn.initializers uses 0.95311164380491208,
#: which omits the 1 / (1 - e^-4) normalization and leaves complex weights 0.93% too wide.
COMPLEX_TRUNCATED_STD_2 = complex_truncnorm_std(2.0)
