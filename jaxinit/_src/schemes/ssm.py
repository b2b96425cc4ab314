"""State-space model initializers.

Mamba (Gu & Dao, 2023, https://arxiv.org/abs/2312.00752): ``A_log`` and the ``dt`` bias;
Mamba-2's scalar ``A_log`` (https://arxiv.org/abs/2405.21060);
S4D-Lin and S4D-Inv (https://arxiv.org/abs/2206.11893); HiPPO-LegS A and B
(https://arxiv.org/abs/2008.07669); the LRU's ``nu_log`` and ``theta_log``
(https://arxiv.org/abs/2303.06349); Griffin's RG-LRU Λ (https://arxiv.org/abs/2402.19427).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core import sampling
from jaxinit._src.core.base import InitializerBase, Shape, check_representable, check_scalar


def _complex_stats(distribution: str, values: np.ndarray) -> dict[str, Any]:
    """describe() fields of deterministic complex values: the complex mean, the real
    standard deviation sqrt(E|z - mean|^2), and no real bounds."""
    return {
        "distribution": distribution,
        "mean": complex(values.mean()),
        "std": float(np.sqrt(np.mean(np.abs(values - values.mean()) ** 2))),
        "bounds": None,
    }


@dataclasses.dataclass(frozen=True)
class MambaALog(InitializerBase):
    """Mamba's ``A_log`` for a ``(channels, d_state)`` parameter; the key is ignored.

    .. math:: A_{\\log}[c, n] = \\log(n + 1), \\quad n = 0, \\dots, N - 1,

    so that :math:`A = -\\exp(A_{\\log})` holds the S4D-Real values :math:`-(n+1)` in every
    channel. The state size is the last axis.

    Example:
        >>> import jax, jaxinit
        >>> a_log = jaxinit.mamba_a_log()(jax.random.key(0), (4, 16))
        >>> a_log.shape
        (4, 16)

    Reference: https://arxiv.org/abs/2312.00752 (Section 3.6, S4D-Real initialization).
    """

    dtype: DTypeLike | None = None
    name = "mamba_a_log"
    min_rank = 1

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        n = jnp.arange(1, shape[-1] + 1, dtype=dtype)
        return jnp.broadcast_to(jnp.log(n), shape).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        values = np.log(np.arange(1, shape[-1] + 1, dtype=np.float64))
        return {
            "distribution": "deterministic log(1..N) along the last axis",
            "mean": float(values.mean()),
            "std": float(values.std()),
            "bounds": (0.0, float(values[-1])),
        }


def mamba_a_log(dtype: DTypeLike | None = None) -> MambaALog:
    """Mamba A_log: :math:`A_{\\log}[c, n] = \\log(n + 1)`; see :class:`MambaALog`.

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.mamba_a_log()(jax.random.key(0), (2, 3))[0].tolist()  # doctest: +ELLIPSIS
        [0.0, 0.69314..., 1.09861...]

    Reference: https://arxiv.org/abs/2312.00752
    """
    return MambaALog(dtype=dtype)


@dataclasses.dataclass(frozen=True)
class _S4DDiagonal(InitializerBase):
    """A complex diagonal state matrix :math:`A_n = -1/2 + i\\,\\mathrm{imag}(n, N)` on the
    last axis (size N), the same for every leading index; the key is ignored. Needs a
    complex dtype (default complex64)."""

    dtype: DTypeLike | None = None
    min_rank = 1
    kinds = "c"
    formula = ""

    @staticmethod
    def imag(n: Any, size: int) -> Any:
        raise NotImplementedError

    def resolve(self, shape: Shape, dtype: np.dtype) -> np.dtype:
        if dtype.kind == "f" and self.dtype is None:
            dtype = np.dtype(np.complex64)
        return super().resolve(shape, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        imag = self.imag(jnp.arange(shape[-1], dtype=jnp.finfo(dtype).dtype), shape[-1])
        values = jax.lax.complex(jnp.full_like(imag, -0.5), imag).astype(dtype)
        return jnp.broadcast_to(values, shape)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        n = np.arange(shape[-1], dtype=np.float64)
        return _complex_stats(
            f"deterministic {self.formula} along the last axis",
            -0.5 + 1j * self.imag(n, shape[-1]),
        )


@dataclasses.dataclass(frozen=True)
class S4DLin(_S4DDiagonal):
    """S4D-Lin diagonal state matrix on the last axis (size N); the key is ignored.

    .. math:: A_n = -\\tfrac12 + i \\pi n, \\quad n = 0, \\dots, N - 1.

    Needs a complex dtype (default complex64).

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.s4d_lin()(jax.random.key(0), (2,)).tolist()  # doctest: +ELLIPSIS
        [(-0.5+0j), (-0.5+3.14159...j)]

    Reference: https://arxiv.org/abs/2206.11893 (Gu et al. 2022, Section 4.1).
    """

    name = "s4d_lin"
    formula = "-1/2 + i*pi*n"

    @staticmethod
    def imag(n: Any, size: int) -> Any:
        return np.pi * n


def s4d_lin(dtype: DTypeLike | None = None) -> S4DLin:
    """S4D-Lin: :math:`A_n = -1/2 + i \\pi n`; see :class:`S4DLin`.

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.s4d_lin()(jax.random.key(0), (3,)).shape
        (3,)

    Reference: https://arxiv.org/abs/2206.11893
    """
    return S4DLin(dtype=dtype)


def _check_range(name: str, low_arg: str, low: float, high_arg: str, high: float) -> None:
    if not low < high:
        raise ValueError(f"{name}: {low_arg}={low!r} must be < {high_arg}={high!r}")


@dataclasses.dataclass(frozen=True)
class MambaDtBias(InitializerBase):
    """Mamba's ``dt_proj.bias``: the inverse softplus of a log-uniform time step.

    .. math::
        \\Delta = \\max\\bigl(\\exp(u (\\log \\Delta_{\\max} - \\log \\Delta_{\\min})
        + \\log \\Delta_{\\min}),\\ \\Delta_{\\text{floor}}\\bigr), \\quad u \\sim U(0, 1),

    .. math:: b = \\Delta + \\log(-\\operatorname{expm1}(-\\Delta)),

    so that :math:`\\operatorname{softplus}(b) = \\Delta`. Sampled in float32 (float64 for
    float64) and then cast.

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.mamba_dt_bias()(jax.random.key(0), (8,)).shape
        (8,)

    Reference: https://arxiv.org/abs/2312.00752 (Section 3.6 and Appendix, the
    :math:`\\Delta` initialization).
    """

    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_floor: float = 1e-4
    dtype: DTypeLike | None = None
    name = "mamba_dt_bias"
    min_rank = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        dt_min = check_scalar(self.name, "dt_min", self.dt_min, positive=True)
        dt_max = check_scalar(self.name, "dt_max", self.dt_max, positive=True)
        floor = check_scalar(self.name, "dt_floor", self.dt_floor, nonnegative=True)
        _check_range(self.name, "dt_min", dt_min, "dt_max", dt_max)
        object.__setattr__(self, "dt_min", dt_min)
        object.__setattr__(self, "dt_max", dt_max)
        object.__setattr__(self, "dt_floor", floor)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        # The bias of a large step is the step itself (log(-expm1(-dt)) -> 0): the
        # largest bias is max(dt_max, dt_floor), computed in the sampling dtype.
        arg = "dt_max" if self.dt_max >= self.dt_floor else "dt_floor"
        biggest = max(self.dt_max, self.dt_floor)
        for target in (sampling.real_dtype(dtype), dtype):
            check_representable(self.name, arg, getattr(self, arg), biggest, target)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        u = sampling.uniform(key, shape, dtype)
        lo, hi = math.log(self.dt_min), math.log(self.dt_max)
        dt = jnp.maximum(jnp.exp(u * (hi - lo) + lo), self.dt_floor)
        return (dt + jnp.log(-jnp.expm1(-dt))).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        # The bias is a monotone function of u ~ U(0, 1): its moments by the midpoint
        # rule on 2**16 cells (float64), exact to ~1e-9 relative for these smooth maps.
        u = (np.arange(2**16, dtype=np.float64) + 0.5) / 2**16
        lo, hi = math.log(self.dt_min), math.log(self.dt_max)
        dt = np.maximum(np.exp(u * (hi - lo) + lo), self.dt_floor)
        bias = dt + np.log(-np.expm1(-dt))
        floor = max(self.dt_min, self.dt_floor)
        ends = np.array([floor, max(self.dt_max, floor)])
        low, high = ends + np.log(-np.expm1(-ends))
        return {
            "distribution": "inverse softplus of a log-uniform dt on [dt_min, dt_max]",
            "mean": float(bias.mean()),
            "std": float(bias.std()),
            "bounds": (float(low), float(high)),
        }


def mamba_dt_bias(
    dt_min: float = 1e-3,
    dt_max: float = 1e-1,
    dt_floor: float = 1e-4,
    dtype: DTypeLike | None = None,
) -> MambaDtBias:
    """Mamba ``dt`` bias: softplus(bias) log-uniform on [dt_min, dt_max]; see :class:`MambaDtBias`.

    Example:
        >>> import jax, jaxinit
        >>> b = jaxinit.mamba_dt_bias()(jax.random.key(0), (4,))
        >>> bool((jax.nn.softplus(b) >= 1e-3).all())
        True

    Reference: https://arxiv.org/abs/2312.00752
    """
    return MambaDtBias(dt_min=dt_min, dt_max=dt_max, dt_floor=dt_floor, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class Mamba2ALog(InitializerBase):
    """Mamba-2's per-head scalar ``A_log``: the log of a uniform draw on ``[a_min, a_max]``.

    .. math:: A_{\\log}[h] = \\log a_h, \\quad a_h \\sim U(a_{\\min}, a_{\\max}),

    so that the per-head decay :math:`A = -\\exp(A_{\\log})` lies in
    :math:`[-a_{\\max}, -a_{\\min}]` (the reference implementation's ``A_init_range``,
    default (1, 16)). transformers' ``Mamba2`` instead sets the deterministic
    :math:`\\log(1..H)`, which is :func:`mamba_a_log` on an ``(H,)`` shape. Sampled in
    float32 (float64 for float64) and then cast.

    Example:
        >>> import jax, jaxinit
        >>> a = jax.numpy.exp(jaxinit.mamba2_a_log()(jax.random.key(0), (8,)))
        >>> bool(((a >= 1) & (a <= 16)).all())
        True

    Reference: Dao & Gu (2024), https://arxiv.org/abs/2405.21060 (Mamba-2, the SSD layer's
    scalar A).
    """

    a_min: float = 1.0
    a_max: float = 16.0
    dtype: DTypeLike | None = None
    name = "mamba2_a_log"
    min_rank = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        a_min = check_scalar(self.name, "a_min", self.a_min, positive=True)
        a_max = check_scalar(self.name, "a_max", self.a_max, positive=True)
        _check_range(self.name, "a_min", a_min, "a_max", a_max)
        object.__setattr__(self, "a_min", a_min)
        object.__setattr__(self, "a_max", a_max)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        u = sampling.uniform(key, shape, dtype)
        return jnp.log(self.a_min + u * (self.a_max - self.a_min)).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        # E[log a] and E[log^2 a] for a ~ U(lo, hi), from the antiderivatives
        # a (log a - 1) and a (log^2 a - 2 log a + 2).
        lo, hi = self.a_min, self.a_max
        m1 = (hi * (math.log(hi) - 1) - lo * (math.log(lo) - 1)) / (hi - lo)
        m2 = (hi * (math.log(hi) ** 2 - 2 * math.log(hi) + 2)
              - lo * (math.log(lo) ** 2 - 2 * math.log(lo) + 2)) / (hi - lo)
        return {
            "distribution": "log of uniform(a_min, a_max)",
            "mean": m1,
            "std": math.sqrt(max(m2 - m1 * m1, 0.0)),
            "bounds": (math.log(lo), math.log(hi)),
        }


def mamba2_a_log(
    a_min: float = 1.0, a_max: float = 16.0, dtype: DTypeLike | None = None
) -> Mamba2ALog:
    """Mamba-2 scalar A_log, :math:`\\log U(a_{\\min}, a_{\\max})`; see :class:`Mamba2ALog`.

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.mamba2_a_log(1.0, 4.0)(jax.random.key(0), (3,)).shape
        (3,)

    Reference: https://arxiv.org/abs/2405.21060
    """
    return Mamba2ALog(a_min=a_min, a_max=a_max, dtype=dtype)


def _tiny_log(x: jax.Array) -> jax.Array:
    """``log(x)``, with ``x`` first raised to the smallest normal number so that the
    probability-2^-23 draw u = 0 gives a large finite value instead of -inf."""
    return jnp.log(jnp.maximum(x, jnp.finfo(x.dtype).tiny))


@dataclasses.dataclass(frozen=True)
class LRUNuLog(InitializerBase):
    """The LRU's ``nu_log``: eigenvalue magnitudes uniform on the ring ``r_min <= |λ| <= r_max``.

    .. math::
        \\nu_{\\log} = \\log\\bigl(-\\tfrac12 \\log(u (r_{\\max}^2 - r_{\\min}^2)
        + r_{\\min}^2)\\bigr), \\quad u \\sim U(0, 1),

    so :math:`|\\lambda| = \\exp(-\\exp(\\nu_{\\log}))` has :math:`|\\lambda|^2 \\sim
    U(r_{\\min}^2, r_{\\max}^2)`: with a phase from :class:`LRUThetaLog` at
    ``max_phase = 2π``, λ is uniform (by area) on the ring. Both logs are taken of values
    raised to the smallest normal float, so the boundary draws stay finite.

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.lru_nu_log(0.9, 0.999)(jax.random.key(0), (16,)).shape
        (16,)

    Reference: https://arxiv.org/abs/2303.06349 (Orvieto et al. 2023, Lemma 3.2).
    """

    r_min: float = 0.0
    r_max: float = 1.0
    dtype: DTypeLike | None = None
    name = "lru_nu_log"
    min_rank = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        r_min = check_scalar(self.name, "r_min", self.r_min, nonnegative=True)
        r_max = check_scalar(self.name, "r_max", self.r_max, positive=True)
        if r_min >= 1:
            raise ValueError(f"{self.name}: r_min={self.r_min!r} must be in [0, 1)")
        if r_max > 1:
            raise ValueError(f"{self.name}: r_max={self.r_max!r} must be in (0, 1]")
        _check_range(self.name, "r_min", r_min, "r_max", r_max)
        object.__setattr__(self, "r_min", r_min)
        object.__setattr__(self, "r_max", r_max)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        # |λ|^2 is drawn in the sampling precision: an r_max whose square underflows there
        # would make every draw the clamped value, not the law.
        real = sampling.real_dtype(dtype)
        smallest = math.sqrt(float(np.finfo(real).tiny))
        if self.r_max < smallest:
            raise ValueError(
                f"{self.name}: r_max={self.r_max!r} has a square below the smallest normal "
                f"{real} (the sampling precision of {dtype}); expected r_max >= {smallest:.4g}"
            )

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        u = sampling.uniform(key, shape, dtype)
        radius2 = u * (self.r_max**2 - self.r_min**2) + self.r_min**2
        return _tiny_log(-0.5 * _tiny_log(radius2)).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        # A monotone function of u ~ U(0, 1): moments by the float64 midpoint rule.
        u = (np.arange(2**16, dtype=np.float64) + 0.5) / 2**16
        values = np.log(-0.5 * np.log(u * (self.r_max**2 - self.r_min**2) + self.r_min**2))
        return {
            "distribution": "log(-log r) with r^2 ~ U(r_min^2, r_max^2)",
            "mean": float(values.mean()),
            "std": float(values.std()),
            "bounds": (
                -math.inf if self.r_max == 1 else math.log(-math.log(self.r_max)),
                math.inf if self.r_min == 0 else math.log(-math.log(self.r_min)),
            ),
        }


def lru_nu_log(r_min: float = 0.0, r_max: float = 1.0, dtype: DTypeLike | None = None) -> LRUNuLog:
    """LRU ``nu_log``: :math:`|\\lambda|^2 \\sim U(r_{\\min}^2, r_{\\max}^2)`; see
    :class:`LRUNuLog`.

    Example:
        >>> import jax, jaxinit
        >>> nu_log = jaxinit.lru_nu_log(0.5, 0.9)(jax.random.key(0), (8,))
        >>> r = jax.numpy.exp(-jax.numpy.exp(nu_log))
        >>> bool(((r >= 0.5) & (r <= 0.9)).all())
        True

    Reference: https://arxiv.org/abs/2303.06349
    """
    return LRUNuLog(r_min=r_min, r_max=r_max, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class LRUThetaLog(InitializerBase):
    """The LRU's ``theta_log``: eigenvalue phases uniform on [0, max_phase].

    .. math:: \\theta_{\\log} = \\log(\\theta_{\\max} u), \\quad u \\sim U(0, 1),

    so the phase :math:`\\exp(\\theta_{\\log}) \\sim U(0, \\theta_{\\max})` (the log is of
    a value raised to the smallest normal float, so u = 0 stays finite).

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.lru_theta_log()(jax.random.key(0), (16,)).shape
        (16,)

    Reference: https://arxiv.org/abs/2303.06349 (Orvieto et al. 2023, Section 3.3).
    """

    max_phase: float = 2 * math.pi
    dtype: DTypeLike | None = None
    name = "lru_theta_log"
    min_rank = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        phase = check_scalar(self.name, "max_phase", self.max_phase, positive=True)
        object.__setattr__(self, "max_phase", phase)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        # The phase u * max_phase is drawn in the sampling precision before the log, and
        # its log, up to log(max_phase), must fit the weights' dtype (float8: 15.5 to 30).
        check_representable(
            self.name, "max_phase", self.max_phase, self.max_phase, sampling.real_dtype(dtype)
        )
        check_representable(
            self.name, "max_phase", self.max_phase, math.log(self.max_phase), dtype
        )

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        u = sampling.uniform(key, shape, dtype)
        return _tiny_log(sampling.times(u, self.max_phase)).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        # log of U(0, m): mean log(m) - 1, variance 1 (log U(0, 1) is minus Exp(1)).
        return {
            "distribution": "log of U(0, max_phase)",
            "mean": math.log(self.max_phase) - 1.0,
            "std": 1.0,
            "bounds": (-math.inf, math.log(self.max_phase)),
        }


def lru_theta_log(max_phase: float = 2 * math.pi, dtype: DTypeLike | None = None) -> LRUThetaLog:
    """LRU ``theta_log``: phase :math:`\\sim U(0, \\theta_{\\max})`; see :class:`LRUThetaLog`.

    Example:
        >>> import jax, jaxinit
        >>> theta = jax.numpy.exp(jaxinit.lru_theta_log(3.14)(jax.random.key(0), (8,)))
        >>> bool((theta <= 3.14).all())
        True

    Reference: https://arxiv.org/abs/2303.06349
    """
    return LRUThetaLog(max_phase=max_phase, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class RGLRUA(InitializerBase):
    """Griffin's RG-LRU recurrence parameter Λ, with :math:`a = \\sigma(\\Lambda)`.

    The paper initializes Λ so that :math:`a^c` is uniform on [min_rad, max_rad]
    (c = 8, [0.9, 0.999]); this follows that text:

    .. math::
        a^c = u \\sim U(r_{\\min}, r_{\\max}), \\quad
        \\Lambda = \\operatorname{logit}(u^{1/c})
        = \\tfrac1c \\log u - \\log\\bigl(-\\operatorname{expm1}(\\tfrac1c \\log u)\\bigr).

    Griffin's released code instead draws :math:`a^2 \\sim U(r_{\\min}^2, r_{\\max}^2)` (the
    LRU convention, see :class:`LRUNuLog`) and stores the parameter through a softplus
    with the opposite sign; that variant is not provided here. Sampled in float32 (float64
    for float64) and then cast.

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.rg_lru_a()(jax.random.key(0), (16,)).shape
        (16,)

    Reference: https://arxiv.org/abs/2402.19427 (De et al. 2024, Section 2.4).
    """

    min_rad: float = 0.9
    max_rad: float = 0.999
    c: float = 8.0
    dtype: DTypeLike | None = None
    name = "rg_lru_a"
    min_rank = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        low = check_scalar(self.name, "min_rad", self.min_rad, positive=True)
        high = check_scalar(self.name, "max_rad", self.max_rad, positive=True)
        c = check_scalar(self.name, "c", self.c, positive=True)
        if high >= 1:
            raise ValueError(f"{self.name}: max_rad={self.max_rad!r} must be in (0, 1)")
        _check_range(self.name, "min_rad", low, "max_rad", high)
        object.__setattr__(self, "min_rad", low)
        object.__setattr__(self, "max_rad", high)
        object.__setattr__(self, "c", c)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        # Lambda is monotone in u: its ends are Lambda(min_rad) and Lambda(max_rad). log(a)
        # = log(u) / c is formed in the sampling dtype and must not underflow to 0 (then
        # Lambda = +inf) nor overflow (a tiny c).
        real = sampling.real_dtype(dtype)
        check_representable(self.name, "c", self.c, self.c, real)
        smallest = -math.log(self.max_rad) / self.c
        tiny = float(np.finfo(real).tiny)
        if smallest < tiny:
            raise ValueError(
                f"{self.name}: c={self.c!r} makes log(a) = log(max_rad) / c = {-smallest:.3g} "
                f"underflow in {real}; expected c <= {-math.log(self.max_rad) / tiny:.3g}"
            )
        ends = []
        for r in (self.min_rad, self.max_rad):
            log_a = math.log(r) / self.c
            ends.append(abs(log_a - math.log(-math.expm1(log_a))))
        for target in (real, dtype):
            check_representable(self.name, "c", self.c, max(ends), target)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        u = sampling.uniform(key, shape, dtype, self.min_rad, self.max_rad)
        log_a = jnp.log(u) / self.c
        return (log_a - jnp.log(-jnp.expm1(log_a))).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        # A monotone function of u: moments by the float64 midpoint rule on 2**16 cells.
        cells = (np.arange(2**16, dtype=np.float64) + 0.5) / 2**16
        log_a = np.log(self.min_rad + cells * (self.max_rad - self.min_rad)) / self.c
        values = log_a - np.log(-np.expm1(log_a))
        ends = np.log([self.min_rad, self.max_rad]) / self.c
        low, high = ends - np.log(-np.expm1(ends))
        return {
            "distribution": "logit(u^(1/c)), u ~ U(min_rad, max_rad)",
            "mean": float(values.mean()),
            "std": float(values.std()),
            "bounds": (float(low), float(high)),
        }


def rg_lru_a(
    min_rad: float = 0.9, max_rad: float = 0.999, c: float = 8.0, dtype: DTypeLike | None = None
) -> RGLRUA:
    """Griffin RG-LRU Λ: :math:`\\sigma(\\Lambda)^c \\sim U(r_{\\min}, r_{\\max})`; see
    :class:`RGLRUA`.

    Example:
        >>> import jax, jaxinit
        >>> a = jax.nn.sigmoid(jaxinit.rg_lru_a()(jax.random.key(0), (8,)))
        >>> bool(((a**8 >= 0.89) & (a**8 <= 0.9995)).all())
        True

    Reference: https://arxiv.org/abs/2402.19427
    """
    return RGLRUA(min_rad=min_rad, max_rad=max_rad, c=c, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class S4DInv(_S4DDiagonal):
    """S4D-Inv diagonal state matrix on the last axis (size N); the key is ignored.

    .. math:: A_n = -\\tfrac12 + i \\frac{N}{\\pi} \\Bigl(\\frac{N}{2n + 1} - 1\\Bigr),
        \\quad n = 0, \\dots, N - 1.

    Needs a complex dtype (default complex64).

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.s4d_inv()(jax.random.key(0), (2,)).tolist()  # doctest: +ELLIPSIS
        [(-0.5+0.63661...j), (-0.5-0.21220...j)]

    Reference: https://arxiv.org/abs/2206.11893 (Gu et al. 2022, Section 4.1).
    """

    name = "s4d_inv"
    formula = "-1/2 + i*N/pi*(N/(2n+1) - 1)"

    @staticmethod
    def imag(n: Any, size: int) -> Any:
        return size / np.pi * (size / (2 * n + 1) - 1)


def s4d_inv(dtype: DTypeLike | None = None) -> S4DInv:
    """S4D-Inv: :math:`A_n = -1/2 + i \\tfrac{N}{\\pi}(\\tfrac{N}{2n+1} - 1)`; see
    :class:`S4DInv`.

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.s4d_inv()(jax.random.key(0), (3,)).shape
        (3,)

    Reference: https://arxiv.org/abs/2206.11893
    """
    return S4DInv(dtype=dtype)


@dataclasses.dataclass(frozen=True)
class HiPPOLegSA(InitializerBase):
    """The HiPPO-LegS state matrix on the last two axes (N x N); the key is ignored.

    .. math::
        A_{nk} = -\\begin{cases} \\sqrt{2n+1}\\sqrt{2k+1} & n > k \\\\ n + 1 & n = k \\\\
        0 & n < k \\end{cases}

    for the dynamics :math:`x' = A x + B u` (the input vector is :class:`HiPPOLegSB`).

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.hippo_legs_a()(jax.random.key(0), (2, 2)).tolist()  # doctest: +ELLIPSIS
        [[-1.0, 0.0], [-1.73205..., -2.0]]

    Reference: https://arxiv.org/abs/2008.07669 (Gu et al. 2020, Section 3 and Appendix D).
    """

    dtype: DTypeLike | None = None
    name = "hippo_legs_a"
    min_rank = 2

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        if shape[-1] != shape[-2]:
            raise ValueError(
                f"{self.name}: shape={shape} must be square in its last two axes (N, N)"
            )

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        real = sampling.real_dtype(dtype)
        n = jnp.arange(shape[-1], dtype=real)
        root = jnp.sqrt(2 * n + 1)
        below = jnp.tril(root[:, None] * root[None, :], -1)
        values = jnp.diag(-(n + 1)) - below  # zeros stay +0.0
        return jnp.broadcast_to(values, shape).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        root = np.sqrt(2 * np.arange(shape[-1], dtype=np.float64) + 1)
        values = np.diag(-np.arange(1.0, shape[-1] + 1)) - np.tril(np.outer(root, root), -1)
        return {
            "distribution": "deterministic HiPPO-LegS matrix on the last two axes",
            "mean": float(values.mean()),
            "std": float(values.std()),
            "bounds": (float(values.min()), float(values.max())),
        }


def hippo_legs_a(dtype: DTypeLike | None = None) -> HiPPOLegSA:
    """HiPPO-LegS A (lower triangular, diagonal -(n+1)); see :class:`HiPPOLegSA`.

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.hippo_legs_a()(jax.random.key(0), (4, 4)).shape
        (4, 4)

    Reference: https://arxiv.org/abs/2008.07669
    """
    return HiPPOLegSA(dtype=dtype)


@dataclasses.dataclass(frozen=True)
class HiPPOLegSB(InitializerBase):
    """The HiPPO-LegS input vector on the last axis (size N); the key is ignored.

    .. math:: B_n = \\sqrt{2n + 1}, \\quad n = 0, \\dots, N - 1.

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.hippo_legs_b()(jax.random.key(0), (3,)).tolist()  # doctest: +ELLIPSIS
        [1.0, 1.73205..., 2.23606...]

    Reference: https://arxiv.org/abs/2008.07669 (Gu et al. 2020, Section 3 and Appendix D).
    """

    dtype: DTypeLike | None = None
    name = "hippo_legs_b"
    min_rank = 1

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        n = jnp.arange(shape[-1], dtype=sampling.real_dtype(dtype))
        return jnp.broadcast_to(jnp.sqrt(2 * n + 1), shape).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        values = np.sqrt(2 * np.arange(shape[-1], dtype=np.float64) + 1)
        return {
            "distribution": "deterministic sqrt(2n+1) along the last axis",
            "mean": float(values.mean()),
            "std": float(values.std()),
            "bounds": (1.0, float(values[-1])),
        }


def hippo_legs_b(dtype: DTypeLike | None = None) -> HiPPOLegSB:
    """HiPPO-LegS B: :math:`B_n = \\sqrt{2n+1}`; see :class:`HiPPOLegSB`.

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.hippo_legs_b()(jax.random.key(0), (4,)).shape
        (4,)

    Reference: https://arxiv.org/abs/2008.07669
    """
    return HiPPOLegSB(dtype=dtype)
