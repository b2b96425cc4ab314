"""Constant, uniform, normal, truncated normal, variance scaling and its presets, sparse."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from jaxinit._src.core import sampling
from jaxinit._src.core.base import (
    Axes,
    InitializerBase,
    Shape,
    check_choice,
    check_representable,
    check_scalar,
    normalize_axes,
)
from jaxinit._src.core.fans import compute_fans

Mode = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
Distribution = Literal["truncated_normal", "normal", "uniform"]
MODES: tuple[str, ...] = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS: tuple[str, ...] = ("truncated_normal", "normal", "uniform")


# --- Constants ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Constant(InitializerBase):
    """Fills with a constant scalar; the key is ignored. Integer and bool dtypes allowed."""

    value: complex | float | int = 0
    dtype: DTypeLike | None = None
    name = "constant"
    kinds = "fciub"
    checks_range = True

    def __post_init__(self) -> None:
        super().__post_init__()
        value = np.asarray(self.value)
        if value.ndim != 0 or value.dtype.kind not in "biufc":
            raise TypeError(f"{self.name}: value={self.value!r} must be a number")
        if not np.isfinite(value):
            raise ValueError(f"{self.name}: value={self.value!r} must be finite")
        object.__setattr__(self, "value", value.item())

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        if dtype.kind != "c" and isinstance(self.value, complex):
            raise TypeError(f"{self.name}: complex value {self.value!r} needs a complex dtype")
        if jax.dtypes.issubdtype(dtype, np.inexact):  # rounding is fine, overflow is not
            value = complex(self.value)
            biggest = max(abs(value.real), abs(value.imag))
            check_representable(self.name, "value", self.value, biggest, dtype)
            return
        with np.errstate(over="ignore", invalid="ignore"):
            cast = np.asarray(self.value).astype(dtype)
        if cast.astype(np.complex128) != self.value:
            raise ValueError(
                f"{self.name}: value={self.value!r} is not representable in dtype {dtype}"
            )

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        return jnp.full(shape, np.asarray(self.value).astype(dtype), dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        return {
            "distribution": "constant",
            "mean": self.value,
            "std": 0.0,
            "bounds": (self.value, self.value),
        }


@dataclasses.dataclass(frozen=True)
class _Zeros(Constant):
    """An initializer that returns an array of zeros; the key is ignored.

    Example:
      >>> import jax, jaxinit
      >>> jaxinit.zeros(jax.random.key(0), (2, 3))
      Array([[0., 0., 0.],
             [0., 0., 0.]], dtype=float32)
    """

    name = "zeros"


@dataclasses.dataclass(frozen=True)
class _Ones(Constant):
    """An initializer that returns an array of ones; the key is ignored.

    Example:
      >>> import jax, jax.numpy as jnp, jaxinit
      >>> jaxinit.ones(jax.random.key(0), (3,), jnp.bfloat16)
      Array([1, 1, 1], dtype=bfloat16)
    """

    value: complex | float | int = 1
    name = "ones"


zeros = _Zeros()
ones = _Ones()


def constant(value: ArrayLike, dtype: DTypeLike | None = None) -> Constant:
    """Builds an initializer that fills arrays with a constant scalar ``value``.

    The key is ignored. Besides float and complex dtypes, integer and bool dtypes are
    accepted (a constant has no distribution to get wrong); a value that overflows the
    requested dtype is an error, never a silent ``inf``.

    Args:
      value: a finite real or complex scalar.
      dtype: the initializer's default dtype (None: JAX's default float at call time).

    Returns:
      A :class:`Constant` initializer.

    Example:
      >>> import jax, jaxinit
      >>> init = jaxinit.constant(-7.0)
      >>> init
      Constant(value=-7.0, dtype=None)
      >>> init(jax.random.key(0), (2, 2))
      Array([[-7., -7.],
             [-7., -7.]], dtype=float32)
    """
    return Constant(value, dtype)  # type: ignore[arg-type]


# --- Simple random schemes -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Uniform(InitializerBase):
    r""":math:`U[0, \text{scale})`, as ``jax.nn.initializers.uniform``."""

    scale: float = 1e-2
    dtype: DTypeLike | None = None
    name = "uniform"
    checks_range = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(
            self, "scale", check_scalar(self.name, "scale", self.scale, nonnegative=True)
        )

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        check_representable(self.name, "scale", self.scale, self.scale, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        u = sampling.uniform(key, shape, dtype)
        return sampling.times(u, self.scale).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        return {
            "distribution": "uniform",
            "mean": self.scale / 2,
            "std": self.scale / math.sqrt(12),
            "bounds": (0.0, self.scale),
        }


def uniform(scale: float = 1e-2, dtype: DTypeLike | None = None) -> Uniform:
    r"""Builds an initializer drawing from the uniform distribution :math:`U[0, \text{scale})`.

    :math:`\mathrm{Var}[w] = \text{scale}^2 / 12`. Same signature and float32 values as
    ``jax.nn.initializers.uniform``; see :func:`uniform_range` for an explicit range.

    Args:
      scale: the upper bound (>= 0).
      dtype: the initializer's default dtype.

    Returns:
      A :class:`Uniform` initializer.

    Example:
      >>> import jax, jax.numpy as jnp, jaxinit
      >>> w = jaxinit.uniform(0.5)(jax.random.key(0), (4, 4), jnp.bfloat16)
      >>> w.shape, w.dtype
      ((4, 4), dtype(bfloat16))
    """
    return Uniform(scale, dtype)


@dataclasses.dataclass(frozen=True)
class UniformRange(InitializerBase):
    r""":math:`U[\text{low}, \text{high})`."""

    low: float = -1.0
    high: float = 1.0
    dtype: DTypeLike | None = None
    name = "uniform_range"
    checks_range = True

    def __post_init__(self) -> None:
        super().__post_init__()
        low = check_scalar(self.name, "low", self.low)
        high = check_scalar(self.name, "high", self.high)
        if not low < high:
            raise ValueError(f"{self.name}: low={low!r} must be < high={high!r}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        # jax.random.uniform computes low + (high - low) * u in the sampling dtype.
        real = sampling.real_dtype(dtype)
        check_representable(self.name, "high", self.high, self.high - self.low, real)
        for arg in ("low", "high"):
            value = getattr(self, arg)
            check_representable(self.name, arg, value, abs(value), dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        return sampling.uniform(key, shape, dtype, self.low, self.high).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        return {
            "distribution": "uniform",
            "mean": (self.low + self.high) / 2,
            "std": (self.high - self.low) / math.sqrt(12),
            "bounds": (self.low, self.high),
        }


def uniform_range(low: float, high: float, dtype: DTypeLike | None = None) -> UniformRange:
    r"""Builds an initializer drawing from the uniform distribution
    :math:`U[\text{low}, \text{high})`.

    Mean :math:`(\text{low} + \text{high}) / 2`, :math:`\mathrm{Var}[w] = (\text{high} -
    \text{low})^2 / 12`: the seed's "uniform initialization"
    with its range written out, e.g. ``uniform_range(-1 / sqrt(n), 1 / sqrt(n))``.

    Args:
      low: inclusive lower bound (finite).
      high: exclusive upper bound (finite, > low).
      dtype: the initializer's default dtype.

    Returns:
      A :class:`UniformRange` initializer.

    Example:
      >>> import jax, jaxinit
      >>> w = jaxinit.uniform_range(-0.1, 0.1)(jax.random.key(0), (256, 256))
      >>> bool(w.min() >= -0.1), bool(w.max() < 0.1)
      (True, True)
    """
    return UniformRange(low, high, dtype)


@dataclasses.dataclass(frozen=True)
class Normal(InitializerBase):
    r""":math:`N(0, \text{stddev}^2)`, as ``jax.nn.initializers.normal``."""

    stddev: float = 1e-2
    dtype: DTypeLike | None = None
    name = "normal"
    kinds = "fc"
    checks_range = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(
            self, "stddev", check_scalar(self.name, "stddev", self.stddev, nonnegative=True)
        )

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        biggest = self.stddev * sampling.largest_draw("normal", dtype)
        check_representable(self.name, "stddev", self.stddev, biggest, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        z = sampling.normal(key, shape, dtype)
        return sampling.times(z, self.stddev).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        return {"distribution": "normal", "mean": 0.0, "std": self.stddev, "bounds": None}


def normal(stddev: float = 1e-2, dtype: DTypeLike | None = None) -> Normal:
    r"""Builds an initializer drawing from the normal distribution :math:`N(0, \text{stddev}^2)`.

    Sampled in float32 (float64 for float64) and cast, so a bfloat16 draw has an unbiased
    mean and full tails, unlike ``jax.random.normal(..., jnp.bfloat16)``. Complex dtypes
    draw a circular complex normal with :math:`E|w|^2 = \text{stddev}^2`.

    Args:
      stddev: the standard deviation (>= 0).
      dtype: the initializer's default dtype.

    Returns:
      A :class:`Normal` initializer.

    Example:
      >>> import jax, jax.numpy as jnp, jaxinit
      >>> w = jaxinit.normal(1.0)(jax.random.key(0), (1024, 1024), jnp.bfloat16)
      >>> bool(jnp.abs(w).max() > 4.5)   # bfloat16 from jax.random stops near 3 sigma
      True
    """
    return Normal(stddev, dtype)


@dataclasses.dataclass(frozen=True)
class TruncatedNormal(InitializerBase):
    r""":math:`\text{stddev} \cdot z`, :math:`z \sim N(0, 1)` truncated to :math:`(\text{lower},
    \text{upper})`, as in ``jax.nn.initializers``."""

    stddev: float = 1e-2
    dtype: DTypeLike | None = None
    lower: float = -2.0
    upper: float = 2.0
    name = "truncated_normal"
    checks_range = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(
            self, "stddev", check_scalar(self.name, "stddev", self.stddev, nonnegative=True)
        )
        lower = check_scalar(self.name, "lower", self.lower)
        upper = check_scalar(self.name, "upper", self.upper)
        if not lower < upper:
            raise ValueError(f"{self.name}: lower={lower!r} must be < upper={upper!r}")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        for arg in ("lower", "upper"):  # cast to the sampling dtype by jax.random
            value = getattr(self, arg)
            check_representable(self.name, arg, value, abs(value), sampling.real_dtype(dtype))
        reach = min(max(abs(self.lower), abs(self.upper)), sampling.largest_draw("normal", dtype))
        check_representable(self.name, "stddev", self.stddev, self.stddev * reach, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        z = sampling.truncated_normal(key, shape, dtype, self.lower, self.upper)
        return sampling.times(z, self.stddev).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        mean, std = sampling.truncnorm_moments(self.lower, self.upper)
        return {
            "distribution": "truncated_normal",
            "mean": mean * self.stddev,
            "std": std * self.stddev,
            "bounds": (self.lower * self.stddev, self.upper * self.stddev),
        }


def truncated_normal(
    stddev: float = 1e-2,
    dtype: DTypeLike | None = None,
    lower: float = -2.0,
    upper: float = 2.0,
) -> TruncatedNormal:
    r"""Builds an initializer drawing ``stddev * z``, :math:`z \sim N(0, 1)` truncated to (lower,
    upper).

    ``stddev`` is the std of the *untruncated* distribution, as in
    ``jax.nn.initializers.truncated_normal``; the result's std is
    ``stddev * std(z)`` (0.8796 * stddev for the default bounds). For a truncated normal
    with an exact target variance use :func:`variance_scaling`.

    Args:
      stddev: std of the untruncated normal (>= 0).
      dtype: the initializer's default dtype.
      lower: lower truncation bound, in units of stddev.
      upper: upper truncation bound, in units of stddev (> lower).

    Returns:
      A :class:`TruncatedNormal` initializer.

    Example:
      >>> import jax, jaxinit
      >>> w = jaxinit.truncated_normal(0.02)(jax.random.key(0), (512, 512))
      >>> bool(abs(w).max() < 0.04)
      True
    """
    return TruncatedNormal(stddev, dtype, lower, upper)


# --- Variance scaling --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VarianceScaling(InitializerBase):
    r""":math:`\mathrm{Var}[w] = \text{scale} / n`, :math:`n` a function of the fans (see
    :func:`variance_scaling`)."""

    scale: float
    mode: Mode
    distribution: Distribution
    in_axis: Axes = -2
    out_axis: Axes = -1
    batch_axis: Axes = ()
    dtype: DTypeLike | None = None
    name = "variance_scaling"
    kinds = "fc"
    checks_range = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(
            self, "scale", check_scalar(self.name, "scale", self.scale, nonnegative=True)
        )
        check_choice(self.name, "mode", self.mode, MODES)
        check_choice(self.name, "distribution", self.distribution, DISTRIBUTIONS)
        for arg in ("in_axis", "out_axis", "batch_axis"):
            object.__setattr__(self, arg, normalize_axes(self.name, arg, getattr(self, arg)))

    def fans(self, shape: Shape) -> tuple[int, int]:
        try:
            return compute_fans(shape, self.in_axis, self.out_axis, self.batch_axis)
        except ValueError as e:  # name the initializer the user called, then the cause
            raise ValueError(f"{self.name}: {e}") from None

    def variance(self, shape: Shape) -> float:
        fan_in, fan_out = self.fans(shape)
        n = {
            "fan_in": fan_in,
            "fan_out": fan_out,
            "fan_avg": (fan_in + fan_out) / 2,
            "fan_geo_avg": (fan_in * fan_out) ** 0.5,
        }[self.mode]
        return self.scale / n

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        # The variance (3 times it for a uniform) is formed in the sampling dtype, the
        # weights, std times the largest standard draw, in the target dtype.
        variance = self.variance(shape) * (3 if self.distribution == "uniform" else 1)
        check_representable(self.name, "scale", self.scale, variance, sampling.real_dtype(dtype))
        std = math.sqrt(variance)
        if self.distribution == "truncated_normal":
            std /= sampling.TRUNCATED_STD_2
        biggest = std * sampling.largest_draw(self.distribution, dtype)
        check_representable(self.name, "scale", self.scale, biggest, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        # The scale is rounded exactly as jax.nn.initializers does in the sampling dtype
        # (variance first, then its square root), so float32 results match bit for bit.
        f = sampling.real_dtype(dtype).type
        variance = f(self.variance(shape))
        complex_ = sampling.is_complex(dtype)
        if self.distribution == "truncated_normal":
            if complex_:
                z = sampling.complex_truncated_normal(key, shape, dtype, 2.0)
                std = np.sqrt(variance) / f(sampling.COMPLEX_TRUNCATED_STD_2)
            else:
                z = sampling.truncated_normal(key, shape, dtype, -2.0, 2.0)
                std = np.sqrt(variance) / f(sampling.TRUNCATED_STD_2)
        elif self.distribution == "normal":
            z, std = sampling.normal(key, shape, dtype), np.sqrt(variance)
        elif complex_:
            z, std = sampling.complex_uniform(key, shape, dtype), np.sqrt(variance)
        else:
            z = sampling.uniform(key, shape, dtype, -1.0, 1.0)
            std = np.sqrt(f(3) * variance)
        return sampling.times(z, std).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        fan_in, fan_out = self.fans(shape)
        std = math.sqrt(self.variance(shape))
        bounds: tuple[float, float] | None = None
        if self.distribution == "truncated_normal" and dtype.kind != "c":
            limit = 2 * std / sampling.TRUNCATED_STD_2
            bounds = (-limit, limit)
        elif self.distribution == "uniform" and dtype.kind != "c":
            bounds = (-math.sqrt(3) * std, math.sqrt(3) * std)
        return {
            "distribution": self.distribution,
            "mean": 0.0,
            "std": std,
            "bounds": bounds,
            "fan_in": fan_in,
            "fan_out": fan_out,
        }


def variance_scaling(
    scale: float,
    mode: Mode,
    distribution: Distribution,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> VarianceScaling:
    r"""Builds an initializer whose variance adapts to the kernel's fans.

    .. math:: \mathrm{Var}[w] = \frac{\text{scale}}{n}, \quad
       n = \text{fan\_in},\ \text{fan\_out},\ \tfrac{\text{fan\_in} + \text{fan\_out}}{2}
       \text{ or } \sqrt{\text{fan\_in}\cdot\text{fan\_out}}

    for ``mode`` ``"fan_in"``, ``"fan_out"``, ``"fan_avg"``, ``"fan_geo_avg"``. Fans come
    from :func:`compute_fans`: axes in none of ``in_axis``, ``out_axis``, ``batch_axis``
    form the receptive field. ``distribution`` is

    * ``"truncated_normal"``: :math:`N(0, 1)` truncated to :math:`(-2, 2)`, divided by its std
      0.8796 so
      the variance is exact (complex: the modulus is truncated at 2);
    * ``"normal"``: :math:`N(0, 1)`;
    * ``"uniform"``: :math:`U(-\sqrt{3}, \sqrt{3})` (complex: uniform on a disk).

    Same signature and float32 values as ``jax.nn.initializers.variance_scaling``.

    Args:
      scale: variance multiplier (>= 0), e.g. 2.0 for ReLU, or ``jaxinit.gain(f) ** 2``.
      mode: which fan sets the variance.
      distribution: the shape of the distribution.
      in_axis: axis or axes of the inputs.
      out_axis: axis or axes of the outputs.
      batch_axis: axes of independent kernels (stacked layers), ignored by the fans.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`VarianceScaling` initializer.

    Example:
      >>> import jax, jaxinit
      >>> init = jaxinit.variance_scaling(2.0, "fan_in", "normal", batch_axis=0)
      >>> w = init(jax.random.key(0), (8, 256, 128))   # 8 stacked 256 -> 128 layers
      >>> round(float(w.std()) * 256 ** 0.5, 1)        # sqrt(2 / fan_in) with fan_in = 256
      1.4

    References:
      Glorot & Bengio (2010), https://proceedings.mlr.press/v9/glorot10a.html;
      He et al. (2015), https://arxiv.org/abs/1502.01852.
    """
    return VarianceScaling(scale, mode, distribution, in_axis, out_axis, batch_axis, dtype)


def glorot_uniform(
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> VarianceScaling:
    r"""Builds a Glorot (Xavier) uniform initializer.

    ``variance_scaling(1.0, "fan_avg", "uniform", ...)``:
    :math:`w \sim U(-a, a)` with :math:`a = \sqrt{6 / (\text{fan\_in} + \text{fan\_out})}`, i.e.
    :math:`\mathrm{Var}[w] = 2 / (\text{fan\_in} + \text{fan\_out})`.

    Args:
      in_axis: axis or axes of the inputs.
      out_axis: axis or axes of the outputs.
      batch_axis: axes of independent kernels (stacked layers), ignored by the fans.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`VarianceScaling` initializer.

    Example:
      >>> import jax, jaxinit
      >>> jaxinit.glorot_uniform()(jax.random.key(0), (3, 3, 16, 32)).shape
      (3, 3, 16, 32)

    References:
      Glorot & Bengio (2010), https://proceedings.mlr.press/v9/glorot10a.html
    """
    return VarianceScaling(1.0, "fan_avg", "uniform", in_axis, out_axis, batch_axis, dtype)


def glorot_normal(
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> VarianceScaling:
    r"""Builds a Glorot (Xavier) normal initializer.

    ``variance_scaling(1.0, "fan_avg", "truncated_normal", ...)``:
    :math:`\mathrm{Var}[w] = 2 / (\text{fan\_in} + \text{fan\_out})`, a normal truncated at
    :math:`2\sigma` and rescaled to that variance.

    Args:
      in_axis: axis or axes of the inputs.
      out_axis: axis or axes of the outputs.
      batch_axis: axes of independent kernels (stacked layers), ignored by the fans.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`VarianceScaling` initializer.

    Example:
      >>> import jax, jaxinit
      >>> jaxinit.glorot_normal()(jax.random.key(0), (64, 32)).shape
      (64, 32)

    References:
      Glorot & Bengio (2010), https://proceedings.mlr.press/v9/glorot10a.html
    """
    return VarianceScaling(1.0, "fan_avg", "truncated_normal", in_axis, out_axis, batch_axis, dtype)


def he_uniform(
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> VarianceScaling:
    r"""Builds a He (Kaiming) uniform initializer.

    ``variance_scaling(2.0, "fan_in", "uniform", ...)``:
    :math:`w \sim U(-a, a)` with :math:`a = \sqrt{6 / \text{fan\_in}}`, i.e.
    :math:`\mathrm{Var}[w] = 2 / \text{fan\_in}`.

    Args:
      in_axis: axis or axes of the inputs.
      out_axis: axis or axes of the outputs.
      batch_axis: axes of independent kernels (stacked layers), ignored by the fans.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`VarianceScaling` initializer.

    Example:
      >>> import jax, jaxinit
      >>> jaxinit.he_uniform()(jax.random.key(0), (64, 32)).dtype
      dtype('float32')

    References:
      He et al. (2015), https://arxiv.org/abs/1502.01852
    """
    return VarianceScaling(2.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def he_normal(
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> VarianceScaling:
    r"""Builds a He (Kaiming) normal initializer.

    ``variance_scaling(2.0, "fan_in", "truncated_normal", ...)``:
    :math:`\mathrm{Var}[w] = 2 / \text{fan\_in}`, a normal truncated at :math:`2\sigma` and
    rescaled to that variance.

    Args:
      in_axis: axis or axes of the inputs.
      out_axis: axis or axes of the outputs.
      batch_axis: axes of independent kernels (stacked layers), ignored by the fans.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`VarianceScaling` initializer.

    Example:
      >>> import jax, jaxinit
      >>> jaxinit.he_normal()(jax.random.key(0), (64, 32), jax.numpy.bfloat16).dtype
      dtype(bfloat16)

    References:
      He et al. (2015), https://arxiv.org/abs/1502.01852
    """
    return VarianceScaling(2.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis, dtype)


def lecun_uniform(
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> VarianceScaling:
    r"""Builds a LeCun uniform initializer.

    ``variance_scaling(1.0, "fan_in", "uniform", ...)``:
    :math:`w \sim U(-a, a)` with :math:`a = \sqrt{3 / \text{fan\_in}}`, i.e.
    :math:`\mathrm{Var}[w] = 1 / \text{fan\_in}`.

    Args:
      in_axis: axis or axes of the inputs.
      out_axis: axis or axes of the outputs.
      batch_axis: axes of independent kernels (stacked layers), ignored by the fans.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`VarianceScaling` initializer.

    Example:
      >>> import jax, jaxinit
      >>> jaxinit.lecun_uniform()(jax.random.key(0), (64, 32)).shape
      (64, 32)

    References:
      LeCun et al. (1998), Efficient BackProp, https://doi.org/10.1007/3-540-49430-8_2;
      Klambauer et al. (2017), https://arxiv.org/abs/1706.02515
    """
    return VarianceScaling(1.0, "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype)


def lecun_normal(
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> VarianceScaling:
    r"""Builds a LeCun normal initializer.

    ``variance_scaling(1.0, "fan_in", "truncated_normal", ...)``:
    :math:`\mathrm{Var}[w] = 1 / \text{fan\_in}`, a normal truncated at :math:`2\sigma` and
    rescaled to that variance.

    Args:
      in_axis: axis or axes of the inputs.
      out_axis: axis or axes of the outputs.
      batch_axis: axes of independent kernels (stacked layers), ignored by the fans.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`VarianceScaling` initializer.

    Example:
      >>> import jax, jaxinit
      >>> jaxinit.lecun_normal()(jax.random.key(0), (64, 32)).shape
      (64, 32)

    References:
      LeCun et al. (1998), Efficient BackProp, https://doi.org/10.1007/3-540-49430-8_2;
      Klambauer et al. (2017), https://arxiv.org/abs/1706.02515
    """
    return VarianceScaling(1.0, "fan_in", "truncated_normal", in_axis, out_axis, batch_axis, dtype)


xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal


# --- Sparse ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sparse(InitializerBase):
    r"""Each output unit keeps a fixed number of :math:`N(0, \text{stddev}^2)` inputs; the rest
    are zero."""

    sparsity: float = 0.9
    stddev: float = 1e-2
    dtype: DTypeLike | None = None
    name = "sparse"
    checks_range = True
    min_rank = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        sparsity = check_scalar(self.name, "sparsity", self.sparsity)
        if not 0 <= sparsity < 1:
            raise ValueError(f"{self.name}: sparsity={self.sparsity!r} must be in [0, 1)")
        object.__setattr__(self, "sparsity", sparsity)
        object.__setattr__(
            self, "stddev", check_scalar(self.name, "stddev", self.stddev, nonnegative=True)
        )

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        biggest = self.stddev * sampling.largest_draw("normal", dtype)
        check_representable(self.name, "stddev", self.stddev, biggest, dtype)

    def zeros_per_column(self, shape: Shape) -> int:
        return math.ceil(self.sparsity * math.prod(shape[:-1]))

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        key_values, key_mask = jax.random.split(key)
        rows = math.prod(shape[:-1])
        values = sampling.times(sampling.normal(key_values, shape, dtype), self.stddev)
        # A uniformly random subset of `k` rows per column: the rows whose random
        # priority ranks below k.
        priority = jax.random.uniform(key_mask, (rows, shape[-1]))
        rank = jnp.argsort(jnp.argsort(priority, axis=0), axis=0)
        keep = (rank >= self.zeros_per_column(shape)).reshape(shape)
        return jnp.where(keep, values, jnp.zeros((), values.dtype)).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        rows = math.prod(shape[:-1])
        density = 1 - self.zeros_per_column(shape) / rows
        return {
            "distribution": "sparse normal",
            "mean": 0.0,
            "std": self.stddev * math.sqrt(density),
            "bounds": None,
            "density": density,
        }


def sparse(sparsity: float, stddev: float = 1e-2, dtype: DTypeLike | None = None) -> Sparse:
    r"""Builds a sparse initializer: each output unit has a fixed number of non-zero inputs.

    For a kernel (..., in, out) viewed as a (rows, out) matrix, each column (output unit)
    gets exactly ``ceil(sparsity * rows)`` zeros at uniformly random rows; the other
    weights are :math:`N(0, \text{stddev}^2)`, so :math:`\mathrm{Var}[w] = (1 - \text{zeros} /
    \text{rows})\,\text{stddev}^2`. This is Martens'
    scheme (fixed fan-in per unit); ``jaxinit.torch.sparse`` has PyTorch's transposed one.

    Args:
      sparsity: the fraction of zeros per column, in [0, 1).
      stddev: std of the non-zero weights.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`Sparse` initializer.

    Example:
      >>> import jax, jaxinit
      >>> w = jaxinit.sparse(0.75, stddev=0.1)(jax.random.key(0), (8, 4))
      >>> (w == 0).sum(axis=0).tolist()   # ceil(0.75 * 8) zeros in every column
      [6, 6, 6, 6]

    References:
      Martens (2010), Deep learning via Hessian-free optimization, ICML,
      https://www.cs.toronto.edu/~jmartens/docs/Deep_HessianFree.pdf.
    """
    return Sparse(sparsity, stddev, dtype)
