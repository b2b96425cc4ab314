"""State-space model initializers.

Currently: Mamba's ``A_log`` (Gu & Dao, 2023, https://arxiv.org/abs/2312.00752).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.base import InitializerBase, Shape


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
