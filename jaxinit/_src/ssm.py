"""State-space model initializers.

Mamba (Gu & Dao, 2023, https://arxiv.org/abs/2312.00752): ``A_log`` and the ``dt`` bias;
S4D-Lin (https://arxiv.org/abs/2206.11893).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src import sampling
from jaxinit._src.base import InitializerBase, Shape, check_scalar


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
class S4DLin(InitializerBase):
    """S4D-Lin diagonal state matrix on the last axis (size N); the key is ignored.

    .. math:: A_n = -\\tfrac12 + i \\pi n, \\quad n = 0, \\dots, N - 1.

    Needs a complex dtype (default complex64).

    Example:
        >>> import jax, jaxinit
        >>> jaxinit.s4d_lin()(jax.random.key(0), (2,)).tolist()  # doctest: +ELLIPSIS
        [(-0.5+0j), (-0.5+3.14159...j)]

    Reference: https://arxiv.org/abs/2206.11893 (Gu et al. 2022, Section 4.1).
    """

    dtype: DTypeLike | None = None
    name = "s4d_lin"
    min_rank = 1
    kinds = "c"

    def resolve(self, shape: Shape, dtype: np.dtype) -> np.dtype:
        if dtype.kind == "f" and self.dtype is None:
            dtype = np.dtype(np.complex64)
        return super().resolve(shape, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        real = jnp.finfo(dtype).dtype
        imag = np.pi * jnp.arange(shape[-1], dtype=real)
        values = jax.lax.complex(jnp.full_like(imag, -0.5), imag).astype(dtype)
        return jnp.broadcast_to(values, shape)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        return {"distribution": "deterministic -1/2 + i*pi*n along the last axis"}


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
