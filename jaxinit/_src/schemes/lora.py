"""LoRA adapter initializers: random A / zero B, rsLoRA scaling, PiSSA and OLoRA.

Layouts. Flax kernels are ``(in, out)`` and ``flax.nnx.LoRA`` holds ``lora_a`` of shape
``(in, r)`` and ``lora_b`` of shape ``(r, out)`` (``y = x @ lora_a @ lora_b``). PyTorch /
peft store the transposes: ``nn.Linear.weight`` is ``(out, in)``, ``lora_A.weight`` is
``(r, in)`` and ``lora_B.weight`` is ``(out, r)``. Everything here takes and returns the
Flax layout: ``kernel = weight.T``, ``lora_a = lora_A.weight.T``, ``lora_b = lora_B.weight.T``.

References:
  LoRA, Hu et al. (2021), https://arxiv.org/abs/2106.09685;
  rsLoRA, Kalajdzievski (2023), https://arxiv.org/abs/2312.03732;
  PiSSA, Meng et al. (2024), https://arxiv.org/abs/2404.02948;
  OLoRA, Büyükakyüz (2024), https://arxiv.org/abs/2406.01775.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core import sampling
from jaxinit._src.core.base import (
    InitializerBase,
    Shape,
    check_choice,
    check_int,
    check_key,
    check_scalar,
)
from jaxinit._src.schemes.standard import Constant, zeros
from jaxinit._src.schemes.torch_init import kaiming_uniform

LoRAVariant = Literal["kaiming", "gaussian"]


@dataclasses.dataclass(frozen=True)
class LoRAGaussianA(InitializerBase):
    """LoRA's ``gaussian`` A for a ``(..., in, r)`` kernel: :math:`N(0, (1/r)^2)`, :math:`r` the
    last axis.

    .. math:: A_{ij} \\sim \\mathcal{N}(0, \\sigma^2), \\quad \\sigma = 1 / r

    (the standard deviation is ``1/r``, as peft's ``init_lora_weights="gaussian"``).

    Example:
      >>> import jax, jaxinit
      >>> a = jaxinit.LoRAGaussianA()(jax.random.key(0), (512, 4))
      >>> round(float(a.std()), 2)   # 1/r
      0.25

    Reference: https://arxiv.org/abs/2106.09685
    """

    dtype: DTypeLike | None = None
    name = "lora_a"
    min_rank = 2

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        z = sampling.normal(key, shape, dtype)
        return sampling.times(z, 1.0 / shape[-1]).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        return {"distribution": "normal", "mean": 0.0, "std": 1.0 / shape[-1], "bounds": None}


def lora_a(variant: LoRAVariant = "kaiming") -> InitializerBase:
    """Initializer for LoRA's down-projection ``lora_a`` of shape ``(in, r)``.

    * ``"kaiming"`` (peft's default, ``init_lora_weights=True``): PyTorch's
      ``kaiming_uniform_`` with ``a = sqrt(5)`` over ``fan_in = in``. The leaky-ReLU gain is
      :math:`g = \\sqrt{2 / (1 + a^2)} = \\sqrt{1/3}`, so the bound is

      .. math:: b = g \\sqrt{3 / \\text{fan\\_in}} = 1 / \\sqrt{\\text{fan\\_in}},
         \\qquad A_{ij} \\sim U(-b, b).

    * ``"gaussian"``: :math:`A_{ij} \\sim \\mathcal{N}(0, 1/r^2)` (standard deviation
      ``1/r``, as peft), ``r`` the last axis.

    ``lora_b`` starts at zero (:func:`lora_b`), so the adapter starts as the identity update.

    Example:
      >>> import jax, jaxinit
      >>> a = jaxinit.lora_a()(jax.random.key(0), (64, 8))
      >>> bool(abs(a).max() <= 1 / 8)   # 1/sqrt(64)
      True

    Reference: https://arxiv.org/abs/2106.09685
    """
    check_choice("lora_a", "variant", variant, ("kaiming", "gaussian"))
    if variant == "gaussian":
        return LoRAGaussianA()
    return kaiming_uniform(a=math.sqrt(5))


def lora_b() -> Constant:
    """Initializer for LoRA's up-projection ``lora_b`` ``(r, out)``: zeros (``jaxinit.zeros``).

    Example:
      >>> import jax, jaxinit
      >>> float(jaxinit.lora_b()(jax.random.key(0), (8, 32)).sum())
      0.0

    Reference: https://arxiv.org/abs/2106.09685
    """
    return zeros


def _check_r(name: str, r: Any, bound: int | None = None) -> int:
    rank = check_int(name, "r", r, minimum=1)
    if bound is not None and rank > bound:
        raise ValueError(
            f"{name}: r={r!r} must be <= min(fan_in, fan_out) = {bound} for this kernel"
        )
    return rank


def lora_scaling(alpha: float, r: int, *, rslora: bool = False) -> float:
    r"""The LoRA update multiplier: :math:`\alpha / r`, or :math:`\alpha / \sqrt{r}` for rsLoRA.

    .. math:: s = \\alpha / r \\quad\\text{(LoRA)}, \\qquad s = \\alpha / \\sqrt{r}
       \\quad\\text{(rsLoRA)}; \\qquad y = x W + s\\, x A B.

    Example:
      >>> import jaxinit
      >>> jaxinit.lora_scaling(16, 4), jaxinit.lora_scaling(16, 4, rslora=True)
      (4.0, 8.0)

    References: https://arxiv.org/abs/2106.09685, https://arxiv.org/abs/2312.03732
    """
    alpha = check_scalar("lora_scaling", "alpha", alpha)
    r = _check_r("lora_scaling", r)
    return alpha / math.sqrt(r) if rslora else alpha / r


@dataclasses.dataclass(frozen=True)
class LoRAWeights:
    """An adapter in Flax layout: ``kernel ≈ base + scaling * a @ b``.

    Attributes:
      a: ``(in, r)``, for ``nnx.LoRA.lora_a`` (peft's ``lora_A.weight.T``).
      b: ``(r, out)``, for ``nnx.LoRA.lora_b`` (peft's ``lora_B.weight.T``).
      base: ``(in, out)``, the residual base kernel that replaces the original one.

    Example:
      >>> import jax, jaxinit
      >>> w = jaxinit.olora(jax.random.normal(jax.random.key(0), (6, 4)), 2)
      >>> w.a.shape, w.b.shape, w.base.shape
      ((6, 2), (2, 4), (6, 4))
    """

    a: jax.Array
    b: jax.Array
    base: jax.Array


def _check_kernel(name: str, kernel: Any, r: Any, scaling: Any) -> tuple[jax.Array, int, float]:
    kernel = jnp.asarray(kernel)
    if kernel.ndim != 2 or not jnp.issubdtype(kernel.dtype, jnp.floating):
        raise ValueError(
            f"{name}: kernel must be a 2-D float (in, out) array, got shape "
            f"{kernel.shape} dtype {kernel.dtype}"
        )
    r = _check_r(name, r, min(kernel.shape))
    scaling = check_scalar(name, "scaling", scaling)
    if scaling == 0:
        raise ValueError(f"{name}: scaling={scaling!r} must be non-zero")
    return kernel, r, scaling


def _finish(
    kernel: jax.Array, a: jax.Array, b: jax.Array, w: jax.Array, scaling: float
) -> LoRAWeights:
    base = w - scaling * (b @ a)
    dtype = kernel.dtype
    return LoRAWeights(a=a.T.astype(dtype), b=b.T.astype(dtype), base=base.T.astype(dtype))


def _work(kernel: jax.Array) -> jax.Array:
    # Factorizations run in at least float32 (LAPACK has no bfloat16/float16); results are
    # cast back to the kernel's dtype.
    work = jnp.float64 if kernel.dtype == jnp.float64 else jnp.float32
    return kernel.T.astype(work)


def _randomized_svd(
    w: jax.Array, r: int, niter: int, key: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Top-``r`` SVD by a randomized range finder with ``niter`` power iterations."""
    omega = jax.random.normal(key, (w.shape[1], r), w.dtype)
    q, _ = jnp.linalg.qr(w @ omega)
    for _ in range(niter):  # re-orthogonalized subspace iteration
        q, _ = jnp.linalg.qr(w.T @ q)
        q, _ = jnp.linalg.qr(w @ q)
    u, s, vh = jnp.linalg.svd(q.T @ w, full_matrices=False)
    return q @ u, s, vh


def pissa(
    kernel: Any,
    r: int,
    *,
    scaling: float = 1.0,
    niter: int | None = None,
    key: jax.Array | None = None,
) -> LoRAWeights:
    """PiSSA: the adapter holds the top-``r`` singular triplets of the kernel.

    With the PyTorch-layout weight :math:`W = K^\\top = U \\operatorname{diag}(S) V^\\top`
    (``(out, in)``) and :math:`S_r' = S_{:r} / s` (``s`` the LoRA scaling),

    .. math:: B = U_{:, :r} \\sqrt{S_r'}, \\quad A = \\sqrt{S_r'}\\, V^\\top_{:r},
       \\quad W_\\text{res} = W - s\\, B A,

    so that :math:`W_\\text{res} + s B A = W` and the adapter is the principal part.
    Returned in Flax layout: ``a = A.T``, ``b = B.T``, ``base = W_res.T``. Computed in float32
    (float64 for float64) and cast to the kernel's dtype. Singular vectors are defined only
    up to a sign per triplet: LAPACK builds may flip ``a[:, i]`` and ``b[i]`` together
    relative to PyTorch's, which leaves ``a @ b`` and ``base`` unchanged. ``nnx.LoRA`` applies
    no scaling, so leave ``scaling=1`` there.

    Example:
      >>> import jax, jax.numpy as jnp, jaxinit
      >>> k = jax.random.normal(jax.random.key(0), (16, 8))
      >>> w = jaxinit.pissa(k, 2)
      >>> bool(jnp.allclose(w.base + w.a @ w.b, k, atol=1e-5))
      True

    Reference: https://arxiv.org/abs/2404.02948
    """
    kernel, r, scaling = _check_kernel("pissa", kernel, r, scaling)
    w = _work(kernel)
    if niter is None:
        if key is not None:
            raise ValueError("pissa: key is only used with niter (the randomized SVD)")
        u, s, vh = jnp.linalg.svd(w, full_matrices=False)
    else:
        check_int("pissa", "niter", niter, minimum=0)
        if key is None:
            raise ValueError(f"pissa: niter={niter} needs a PRNG key (key=None)")
        check_key("pissa", key)
        u, s, vh = _randomized_svd(w, r, int(niter), key)
    root = jnp.sqrt(s[:r] / scaling)
    return _finish(kernel, root[:, None] * vh[:r], u[:, :r] * root[None, :], w, scaling)


def olora(kernel: Any, r: int, *, scaling: float = 1.0) -> LoRAWeights:
    """OLoRA: the adapter holds the first ``r`` columns of a QR factorization of the weight.

    With the PyTorch-layout weight :math:`W = K^\\top = Q R` (``(out, in)``, reduced
    Householder QR),

    .. math:: B = Q_{:, :r}, \\quad A = R_{:r, :}, \\quad W_\\text{res} = W - s\\, B A.

    Returned in Flax layout: ``a = A.T`` ``(in, r)``, ``b = B.T`` ``(r, out)``,
    ``base = W_res.T``; computed in float32 (float64 for float64), cast to the kernel's dtype.
    Householder QR is unique given LAPACK's sign convention, so ``a`` and ``b`` match
    PyTorch's factors, not only their product.

    Example:
      >>> import jax, jax.numpy as jnp, jaxinit
      >>> k = jax.random.normal(jax.random.key(0), (16, 8))
      >>> w = jaxinit.olora(k, 2)
      >>> bool(jnp.allclose(w.b @ w.b.T, jnp.eye(2), atol=1e-5))   # orthonormal rows
      True

    Reference: https://arxiv.org/abs/2406.01775
    """
    kernel, r, scaling = _check_kernel("olora", kernel, r, scaling)
    w = _work(kernel)
    q, rr = jnp.linalg.qr(w, mode="reduced")
    return _finish(kernel, rr[:r], q[:, :r], w, scaling)
