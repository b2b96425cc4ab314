"""PyTorch -> Flax weight layouts (public as :mod:`jaxinit.layout`).

PyTorch stores a Linear weight as (out, in) and a conv weight as (out, in/groups, *kernel);
Flax stores kernels as (in, out) and (*kernel, in/groups, out), attention projections
with a separate heads axis, and BatchNorm running statistics in the ``batch_stats``
collection. Each converter takes a NumPy (or JAX) array in PyTorch layout and returns it
in Flax layout; those that need a parameter are small frozen dataclasses, so they are
hashable and print their configuration. Every converter is checked numerically against
PyTorch in tests/test_pretrained_torch.py.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any


def _check_ndim(name: str, weight: Any, ndims: tuple[int, ...]) -> None:
    if weight.ndim not in ndims:
        raise ValueError(
            f"layout.{name}: weight of shape {tuple(weight.shape)} has rank {weight.ndim}; "
            f"expected rank {' or '.join(map(str, ndims))}"
        )


def linear(weight: Any) -> Any:
    """PyTorch ``nn.Linear`` weight (out, in) -> Flax ``Dense``/``Linear`` kernel (in, out).

    Args:
      weight: a rank-2 array in PyTorch layout.

    Returns:
      The transpose, of shape (in, out).

    Example:
      >>> import numpy as np, jaxinit
      >>> jaxinit.layout.linear(np.zeros((4, 3))).shape
      (3, 4)
    """
    _check_ndim("linear", weight, (2,))
    return weight.T


def conv(weight: Any) -> Any:
    """PyTorch ``nn.Conv1d/2d/3d`` weight ``(out, in/groups, *k)`` -> Flax ``(*k, in/groups, out)``.

    Grouped and depthwise convolutions need no special case: both frameworks store the
    per-group input channels in the same axis (use ``feature_group_count=groups`` in Flax).

    Args:
      weight: a rank 3, 4 or 5 array in PyTorch layout.

    Returns:
      The permuted array.

    Example:
      >>> import numpy as np, jaxinit
      >>> jaxinit.layout.conv(np.zeros((8, 3, 5, 5))).shape
      (5, 5, 3, 8)
    """
    _check_ndim("conv", weight, (3, 4, 5))
    n = weight.ndim
    return weight.transpose((*range(2, n), 1, 0))


def conv_transpose(weight: Any) -> Any:
    """PyTorch ``nn.ConvTranspose*d`` weight ``(in, out, *k)`` -> Flax ``ConvTranspose`` kernel.

    PyTorch's transposed convolution is the gradient of a convolution, which equals a
    fractionally strided convolution with the kernel flipped in space; Flax's
    ``ConvTranspose`` (``transpose_kernel=False``, the default) does not flip, so the
    spatial axes are reversed here. The result has shape ``(*k, in, out)``. Only
    ``groups=1`` is supported (Flax's ``ConvTranspose`` has no groups). Match PyTorch's
    ``padding=p`` with Flax ``padding=[(k - 1 - p, k - 1 - p + output_padding)] * ndim``.

    Args:
      weight: a rank 3, 4 or 5 array in PyTorch layout.

    Returns:
      The permuted, spatially flipped array.

    Example:
      >>> import numpy as np, jaxinit
      >>> jaxinit.layout.conv_transpose(np.zeros((8, 3, 5, 5))).shape
      (5, 5, 8, 3)
    """
    _check_ndim("conv_transpose", weight, (3, 4, 5))
    n = weight.ndim
    flipped = weight[(slice(None), slice(None), *([slice(None, None, -1)] * (n - 2)))]
    return flipped.transpose((*range(2, n), 0, 1))


def embedding(weight: Any) -> Any:
    """PyTorch ``nn.Embedding`` weight (num, features) -> Flax ``embedding``: unchanged.

    Example:
      >>> import numpy as np, jaxinit
      >>> jaxinit.layout.embedding(np.zeros((10, 4))).shape
      (10, 4)
    """
    _check_ndim("embedding", weight, (2,))
    return weight


def layer_norm(weight: Any, bias: Any | None = None) -> dict[str, Any]:
    """PyTorch ``nn.LayerNorm``/``nn.GroupNorm`` weight and bias -> Flax ``scale`` and ``bias``.

    Example:
      >>> import numpy as np, jaxinit
      >>> sorted(jaxinit.layout.layer_norm(np.ones(4), np.zeros(4)))
      ['bias', 'scale']
    """
    out = {"scale": weight}
    if bias is not None:
        out["bias"] = bias
    return out


group_norm = layer_norm


def batch_norm(state: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A PyTorch ``nn.BatchNorm*d`` state dict -> Flax ``params`` and ``batch_stats``.

    ``weight``/``bias`` become ``params`` ``scale``/``bias``; ``running_mean`` and
    ``running_var`` become ``batch_stats`` ``mean``/``var``; ``num_batches_tracked`` is
    dropped (Flax uses a fixed momentum). Use ``epsilon=eps`` and
    ``momentum=1 - torch_momentum`` in Flax.

    Args:
      state: the module's state dict (keys without the module prefix).

    Returns:
      ``{"params": {...}, "batch_stats": {...}}``.

    Example:
      >>> import numpy as np, jaxinit
      >>> sd = {k: np.ones(3) for k in ("weight", "bias", "running_mean", "running_var")}
      >>> out = jaxinit.layout.batch_norm(sd)
      >>> sorted(out["params"]), sorted(out["batch_stats"])
      (['bias', 'scale'], ['mean', 'var'])
    """
    params = {"scale": state["weight"], "bias": state["bias"]} if "weight" in state else {}
    return {"params": params,
            "batch_stats": {"mean": state["running_mean"], "var": state["running_var"]}}


@dataclasses.dataclass(frozen=True)
class linear_after_flatten:  # a converter, called like a function
    """Fixes the flatten order of a Linear that follows a conv feature map.

    PyTorch flattens a (C, H, W) feature map channel-first, Flax flattens (H, W, C)
    channel-last; the Linear weight ``(out, C*H*W)`` is reordered to a Flax kernel
    ``(H*W*C, out)`` so both networks compute the same function.

    Args:
      chw: the PyTorch feature-map shape before flattening, channels first ``(C, *spatial)``.

    Example:
      >>> import numpy as np, jaxinit
      >>> jaxinit.layout.linear_after_flatten((2, 3, 3))(np.zeros((5, 18))).shape
      (18, 5)
    """

    chw: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "chw", tuple(int(d) for d in self.chw))

    def __call__(self, weight: Any) -> Any:
        _check_ndim("linear_after_flatten", weight, (2,))
        if weight.shape[1] != math.prod(self.chw):
            raise ValueError(
                f"layout.linear_after_flatten: weight of shape {tuple(weight.shape)} has "
                f"{weight.shape[1]} inputs, but chw={self.chw} flattens to {math.prod(self.chw)}"
            )
        n = len(self.chw)
        w = weight.reshape((weight.shape[0], *self.chw))
        w = w.transpose((0, *range(2, n + 1), 1))
        return w.reshape((weight.shape[0], -1)).T


@dataclasses.dataclass(frozen=True)
class attention_heads:
    """A separate q/k/v Linear (H*D, in) -> Flax ``MultiHeadAttention`` kernel (in, H, D).

    For Hugging Face style attention with separate ``query``/``key``/``value`` Linears.
    A bias (H*D,) becomes (H, D).

    Args:
      num_heads: the number of heads H.

    Example:
      >>> import numpy as np, jaxinit
      >>> jaxinit.layout.attention_heads(4)(np.zeros((8, 6))).shape
      (6, 4, 2)
    """

    num_heads: int

    def __call__(self, weight: Any) -> Any:
        _check_ndim("attention_heads", weight, (1, 2))
        if weight.shape[0] % self.num_heads:
            raise ValueError(f"layout.attention_heads: {weight.shape[0]} features do not split "
                             f"into num_heads={self.num_heads}")
        if weight.ndim == 1:
            return weight.reshape((self.num_heads, -1))
        return weight.T.reshape((weight.shape[1], self.num_heads, -1))


@dataclasses.dataclass(frozen=True)
class attention_qkv:
    """``nn.MultiheadAttention.in_proj_weight`` (3E, E) / ``in_proj_bias`` -> query/key/value.

    Splits PyTorch's fused input projection into the three Flax
    ``MultiHeadDotProductAttention``/``nnx.MultiHeadAttention`` projections with a heads
    axis. Returns a mapping; used as a rule's transform, its entries land under the
    rule's target (``<target>/query/kernel`` and so on).

    Args:
      num_heads: the number of heads H (E = H * D).

    Example:
      >>> import numpy as np, jaxinit
      >>> out = jaxinit.layout.attention_qkv(2)(np.zeros((12, 4)))
      >>> {k: v.shape for k, v in out.items()}
      {'query/kernel': (4, 2, 2), 'key/kernel': (4, 2, 2), 'value/kernel': (4, 2, 2)}
    """

    num_heads: int

    def __call__(self, weight: Any) -> dict[str, Any]:
        _check_ndim("attention_qkv", weight, (1, 2))
        if weight.shape[0] % 3:
            raise ValueError(f"layout.attention_qkv: {weight.shape[0]} rows are not 3 * E")
        e = weight.shape[0] // 3
        heads = attention_heads(self.num_heads)
        leaf = "kernel" if weight.ndim == 2 else "bias"
        return {f"{part}/{leaf}": heads(weight[i * e:(i + 1) * e])
                for i, part in enumerate(("query", "key", "value"))}


@dataclasses.dataclass(frozen=True)
class attention_out:
    """Attention output Linear (out, H*D) -> Flax ``out`` kernel (H, D, out); a bias is unchanged.

    Args:
      num_heads: the number of heads H.

    Example:
      >>> import numpy as np, jaxinit
      >>> jaxinit.layout.attention_out(2)(np.zeros((4, 4))).shape
      (2, 2, 4)
    """

    num_heads: int

    def __call__(self, weight: Any) -> Any:
        _check_ndim("attention_out", weight, (1, 2))
        if weight.ndim == 1:
            return weight
        return weight.T.reshape((self.num_heads, -1, weight.shape[0]))


def layout_hint(stored: tuple[int, ...], wanted: tuple[int, ...]) -> str:
    """A suggestion when `stored` is `wanted` in another layout, else ''."""
    if len(stored) == 2 and stored[::-1] == wanted:
        return (" It is the transpose: a PyTorch Linear weight (out, in)? Pass "
                "transform=jaxinit.layout.linear.")
    if len(stored) in (3, 4, 5) and (*stored[2:], stored[1], stored[0]) == wanted:
        return (" It is in PyTorch conv layout (out, in, *kernel): pass "
                "transform=jaxinit.layout.conv.")
    if len(stored) in (3, 4, 5) and (*stored[2:], stored[0], stored[1]) == wanted:
        return (" It is in PyTorch transposed-conv layout (in, out, *kernel): pass "
                "transform=jaxinit.layout.conv_transpose.")
    if len(stored) == 2 and len(wanted) == 3 and wanted[0] == stored[1] and (
            wanted[1] * wanted[2] == stored[0]):
        return (f" It is a fused-heads projection: pass "
                f"transform=jaxinit.layout.attention_heads({wanted[1]}).")
    if sorted(stored) == sorted(wanted):
        return " The same dimensions in another order: a layout difference (pass transform=)."
    return ""


__all__ = ["attention_heads", "attention_out", "attention_qkv", "batch_norm", "conv",
           "conv_transpose", "embedding", "group_norm", "layer_norm", "layout_hint", "linear",
           "linear_after_flatten"]
