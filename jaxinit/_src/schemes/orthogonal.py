"""Orthogonal, delta-orthogonal, identity and Dirac (identity-convolution) kernels."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core import sampling, threefry
from jaxinit._src.core.base import (
    InitializerBase,
    Shape,
    check_axes,
    check_choice,
    check_int,
    check_scalar,
)

Method = Literal["qr", "cholesky_qr2"]
METHODS: tuple[str, ...] = ("qr", "cholesky_qr2")

#: CholeskyQR2 accepts its result when the Gram matrix of the first pass, Q1^H Q1, is
#: within 1/2 of the identity in Frobenius norm: then cond(Q1) <= sqrt(3), and the
#: second pass is in the regime where CholeskyQR is backward stable, so the final Q is
#: orthonormal to a small multiple of the unit roundoff (Yamamoto et al. 2015). Gaussian
#: draws past it (square float32 matrices from about 1500, cond ~ n) fall back to
#: Householder QR of the same draw.
CHOLESKY_QR2_TOLERANCE = 0.5


@dataclasses.dataclass(frozen=True)
class Orthogonal(InitializerBase):
    """scale * a Haar-random (semi-)orthogonal matrix (see :func:`orthogonal`)."""

    scale: float = 1.0
    column_axis: int = -1
    dtype: DTypeLike | None = None
    method: Method = "qr"
    name = "orthogonal"
    magnitude_arg = "scale"
    min_rank = 2
    kinds = "fc"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scale", check_scalar(self.name, "scale", self.scale))
        object.__setattr__(
            self, "column_axis", check_int(self.name, "column_axis", self.column_axis)
        )
        check_choice(self.name, "method", self.method, METHODS)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        check_axes(self.name, "column_axis", self.column_axis, len(shape))

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        axis = self.column_axis % len(shape)
        n_cols = shape[axis]
        n_rows = math.prod(shape) // n_cols
        # QR in float32 (float64 / complex for wide types): bfloat16 and float16 have no
        # QR, and their rounding would break orthogonality long before the cast does.
        sample = sampling.sample_dtype(dtype)
        key = threefry.fusible(key)  # the same Gaussian draw, fused
        if self.method == "qr":
            q = jax.random.orthogonal(key, n_rows, (), sample, n_cols)
        else:
            q = cholesky_qr2_orthogonal(key, n_rows, n_cols, sample)
        q = q.reshape((*shape[:axis], *shape[axis + 1 :], n_cols))
        q = jnp.moveaxis(q, -1, axis)
        return sampling.times(q, self.scale).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        n_cols = shape[self.column_axis % len(shape)]
        n_rows = math.prod(shape) // n_cols
        # Orthonormal rows or columns: the squared entries sum to min(n_rows, n_cols).
        std = abs(self.scale) * math.sqrt(min(n_rows, n_cols) / (n_rows * n_cols))
        return {
            "distribution": "orthogonal (Haar)",
            "mean": 0.0,
            "std": std,
            "bounds": (-abs(self.scale), abs(self.scale)),
            "rows": n_rows,
            "cols": n_cols,
        }


def _hermitian(a: jax.Array) -> jax.Array:
    return a.conj().mT if jnp.iscomplexobj(a) else a.mT


def _cholesky_qr_pass(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One CholeskyQR pass of a tall matrix: A = Q R with R = chol(A^H A)^H; (Q, A^H A)."""
    gram = jnp.matmul(_hermitian(a), a, precision=jax.lax.Precision.HIGHEST)
    lower = jnp.linalg.cholesky(gram)
    # Q = A R^-1 = A L^-H: solve X L^H = A.
    q = jax.lax.linalg.triangular_solve(
        lower, a, left_side=False, lower=True, transpose_a=True, conjugate_a=True
    )
    return q, gram


def householder_q(z: jax.Array) -> jax.Array:
    """Q of Householder QR of a tall `z` with the signs of R's diagonal made positive
    (exactly what ``jax.random.orthogonal`` computes from the same draw)."""
    q, r = jnp.linalg.qr(z)
    return q * jnp.expand_dims(jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1)), -2)


def cholesky_qr2(z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Q of the QR factorization of a tall `z` with R's diagonal positive, by CholeskyQR2.

    Two CholeskyQR passes: A = Q1 R1, Q1 = Q R2, so A = Q (R2 R1) and R2 R1 is upper
    triangular with a positive diagonal, which makes Q the same matrix as Householder QR
    with the sign fix, in exact arithmetic. Only matrix products, two Cholesky
    factorizations and two triangular solves: fast where matmul throughput dwarfs
    LAPACK-style panel factorizations (GPU, TPU). Returns ``(q, ok)``; ``ok`` is False
    when the first pass was too ill-conditioned for the second to be accurate
    (:data:`CHOLESKY_QR2_TOLERANCE`), and the caller must not use ``q``.
    """
    q1, _ = _cholesky_qr_pass(z)
    q, gram = _cholesky_qr_pass(q1)
    identity = jnp.eye(gram.shape[-1], dtype=gram.dtype)
    deviation = jnp.sqrt(jnp.sum(jnp.abs(gram - identity) ** 2))
    ok = jnp.all(jnp.isfinite(q)) & (deviation <= CHOLESKY_QR2_TOLERANCE)
    return q, ok


def cholesky_qr2_orthogonal(key: jax.Array, n: int, m: int, dtype: np.dtype) -> jax.Array:
    """``jax.random.orthogonal(key, n, (), dtype, m)`` computed by CholeskyQR2: the same
    Gaussian draw, the same Q up to rounding, Householder QR for draws it cannot take."""
    z = jax.random.normal(key, (max(n, m), min(n, m)), dtype)
    q, ok = cholesky_qr2(z)
    q = jax.lax.cond(ok, lambda: q, lambda: householder_q(z))
    return q.mT if n < m else q


def orthogonal(
    scale: float = 1.0,
    column_axis: int = -1,
    dtype: DTypeLike | None = None,
    *,
    method: Method = "qr",
) -> Orthogonal:
    """Builds an initializer of uniformly (Haar) distributed orthogonal matrices.

    The kernel is viewed as an (rows, cols) matrix with ``cols = shape[column_axis]``;
    the result has orthonormal columns if rows >= cols, orthonormal rows otherwise, times
    ``scale``. QR of a Gaussian matrix with the signs of R's diagonal fixed (Mezzadri
    2007) gives the Haar measure. Low-precision dtypes do the QR in float32 and cast.
    Same signature and float32 values as ``jax.nn.initializers.orthogonal``, plus
    ``out_sharding`` support.

    ``method`` chooses how the QR is computed; both give exactly the Haar distribution:

    * ``"qr"`` (default): Householder QR, as ``jax.nn.initializers.orthogonal`` (same
      values in float32).
    * ``"cholesky_qr2"``: CholeskyQR2 (Fukaya et al. 2014) of the same Gaussian draw.
      In exact arithmetic it is the same Q as ``"qr"``; in floating point the two differ
      by rounding (about 1e-5 in float32) and both are orthonormal to float32 precision.
      It uses only matrix products, Cholesky and triangular solves, which suits
      accelerators; on CPU it is slower than ``"qr"`` (see benchmarks/README.md). Draws
      too ill-conditioned for it (square float32 matrices of about 1500 and more, some
      of the time) are detected at no extra cost and fall back to Householder QR, so
      the result is never less orthogonal and never from another distribution.

    Args:
      scale: multiplier of the orthogonal matrix (a gain such as ``jaxinit.gain("relu")``).
      column_axis: the axis holding the columns.
      dtype: the initializer's default dtype.
      method: ``"qr"`` or ``"cholesky_qr2"``.

    Returns:
      An :class:`Orthogonal` initializer.

    Example:
      >>> import jax, jax.numpy as jnp, jaxinit
      >>> q = jaxinit.orthogonal()(jax.random.key(0), (256, 64))
      >>> bool(jnp.allclose(q.T @ q, jnp.eye(64), atol=1e-5))
      True
      >>> fast = jaxinit.orthogonal(method="cholesky_qr2")(jax.random.key(0), (256, 64))
      >>> bool(jnp.allclose(fast, q, atol=1e-4))   # the same matrix, up to rounding
      True

    References:
      Saxe et al. (2014), https://arxiv.org/abs/1312.6120;
      Mezzadri (2007), https://arxiv.org/abs/math-ph/0609050;
      Fukaya et al. (2014), CholeskyQR2, https://doi.org/10.1109/ScalA.2014.11;
      Yamamoto et al. (2015), https://doi.org/10.1553/etna_vol44s306.
    """
    return Orthogonal(scale, column_axis, dtype, method)


@dataclasses.dataclass(frozen=True)
class DeltaOrthogonal(Orthogonal):
    """A conv kernel that is zero except for an orthogonal centre tap."""

    name = "delta_orthogonal"
    min_rank = 3

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        if len(shape) > 5:
            raise ValueError(f"{self.name}: shape={shape} must have rank 3, 4 or 5")
        if shape[-2] > shape[-1]:
            raise ValueError(
                f"{self.name}: shape={shape} has more input channels ({shape[-2]}) than "
                f"output channels ({shape[-1]}); an orthogonal centre tap needs in <= out"
            )
        check_axes(self.name, "column_axis", self.column_axis, 2)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        centre = tuple((k - 1) // 2 for k in shape[:-2])  # the middle, or left of it
        tap = super().generate(key, shape[-2:], dtype)
        return jnp.zeros(shape, dtype).at[centre].set(tap)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        taps = math.prod(shape[:-2])
        std = abs(self.scale) * math.sqrt(1 / (shape[-1] * taps))
        return {
            "distribution": "delta orthogonal",
            "mean": 0.0,
            "std": std,
            "bounds": (-abs(self.scale), abs(self.scale)),
        }


def delta_orthogonal(
    scale: float = 1.0, column_axis: int = -1, dtype: DTypeLike | None = None
) -> DeltaOrthogonal:
    """Builds a delta-orthogonal initializer for 1D, 2D and 3D convolution kernels.

    The kernel (k..., in, out) is zero except its centre tap, an (in, out) orthogonal
    matrix times ``scale`` (orthonormal rows, since in <= out). A convolution with it is
    an isometry, so very deep CNNs keep their signal (dynamical isometry). The tap sits at
    index ``(k - 1) // 2`` of each spatial axis: the centre of an odd size, and the index
    left of the middle of an even one (as in ``jax.nn.initializers``).

    Args:
      scale: multiplier of the centre tap.
      column_axis: column axis of the (in, out) centre matrix.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`DeltaOrthogonal` initializer.

    Example:
      >>> import jax, jaxinit
      >>> w = jaxinit.delta_orthogonal()(jax.random.key(0), (3, 3, 16, 32))
      >>> int((w != 0).any(axis=(2, 3)).sum())   # one non-zero tap
      1

    References:
      Xiao et al. (2018), https://arxiv.org/abs/1806.05393.
    """
    return DeltaOrthogonal(scale, column_axis, dtype)


@dataclasses.dataclass(frozen=True)
class Identity(InitializerBase):
    """gain * eye over the last two axes, broadcast over leading axes."""

    gain: float = 1.0
    dtype: DTypeLike | None = None
    name = "identity"
    magnitude_arg = "gain"
    min_rank = 2
    kinds = "fc"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "gain", check_scalar(self.name, "gain", self.gain))

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        eye = jnp.eye(shape[-2], shape[-1], dtype=dtype) * np.asarray(self.gain, dtype)
        return jnp.broadcast_to(eye, shape)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        density = min(shape[-2:]) / (shape[-2] * shape[-1])
        return {
            "distribution": "identity",
            "mean": self.gain * density,
            "std": abs(self.gain) * math.sqrt(density - density**2),
            "bounds": (min(0.0, self.gain), max(0.0, self.gain)),
        }


def identity(gain: float = 1.0, dtype: DTypeLike | None = None) -> Identity:
    """Builds an initializer returning ``gain * eye(in, out)`` (batched over leading axes).

    A rectangular kernel gets the rectangular identity (ones on the main diagonal).
    The key is ignored. Useful for residual-friendly recurrent kernels (Le et al. 2015)
    and for starting a layer as a no-op.

    Args:
      gain: the diagonal value.
      dtype: the initializer's default dtype.

    Returns:
      An :class:`Identity` initializer.

    Example:
      >>> import jax, jaxinit
      >>> jaxinit.identity(2.0)(jax.random.key(0), (2, 3))
      Array([[2., 0., 0.],
             [0., 2., 0.]], dtype=float32)

    References:
      Le, Jaitly & Hinton (2015), https://arxiv.org/abs/1504.00941.
    """
    return Identity(gain, dtype)


@dataclasses.dataclass(frozen=True)
class Dirac(InitializerBase):
    """The convolution kernel that copies (the first) input channels to output channels."""

    groups: int = 1
    dtype: DTypeLike | None = None
    name = "dirac"
    min_rank = 3
    kinds = "fc"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(
            self, "groups", check_int(self.name, "groups", self.groups, minimum=1)
        )

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        if shape[-1] % self.groups:
            raise ValueError(
                f"{self.name}: output channels {shape[-1]} of shape={shape} are not divisible "
                f"by groups={self.groups}"
            )

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        # Flax's SAME padding puts (k - 1) // 2 of the padding before the input, so the
        # tap at (k - 1) // 2 is the identity for odd and even kernels alike.
        centre = tuple((k - 1) // 2 for k in shape[:-2])
        n_in, n_out = shape[-2:]
        per_group = n_out // self.groups
        tap = np.zeros((n_in, n_out), dtype)
        for g in range(self.groups):
            d = np.arange(min(per_group, n_in))
            tap[d, g * per_group + d] = 1
        return jnp.zeros(shape, dtype).at[centre].set(jnp.asarray(tap))

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        per_group = shape[-1] // self.groups
        density = self.groups * min(per_group, shape[-2]) / math.prod(shape)
        return {
            "distribution": "dirac",
            "mean": density,
            "std": math.sqrt(density - density**2),
            "bounds": (0.0, 1.0),
        }


def dirac(groups: int = 1, dtype: DTypeLike | None = None) -> Dirac:
    """Builds an identity-convolution initializer for kernels (k..., in, out).

    The centre tap maps input channel ``d`` to output channel ``g * out / groups + d``
    for each group ``g`` (PyTorch's ``dirac_`` in Flax's layout); a convolution with
    SAME padding then copies its input. The key is ignored.

    Args:
      groups: number of groups (for grouped convolutions ``in`` is per group).
      dtype: the initializer's default dtype.

    Returns:
      A :class:`Dirac` initializer.

    Example:
      >>> import jax, jaxinit
      >>> w = jaxinit.dirac()(jax.random.key(0), (3, 3, 4, 4))
      >>> w[1, 1].tolist() == jax.numpy.eye(4).tolist()
      True

    References:
      Zagoruyko & Komodakis (2017), DiracNets, https://arxiv.org/abs/1706.00388.
    """
    return Dirac(groups, dtype)
