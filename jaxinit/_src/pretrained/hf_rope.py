r"""RoPE layouts: HF's rotate-half q/k feature order against the interleaved one.

Rotary position embeddings rotate pairs of a head's features by :math:`t\,\theta_i`,
:math:`\theta_i = \theta^{-2i/D}` for pair :math:`i < D/2` of a head of size :math:`D`.
Hugging Face checkpoints (and ``transformers``' ``rotate_half``) pair feature :math:`i`
with :math:`i + D/2`; the paper, Meta's original Llama code and many JAX models pair
:math:`2i` with :math:`2i + 1` (*interleaved*). The two are the same model up to a
permutation of each head's q and k features: interleaved position :math:`2i` holds
rotate-half feature :math:`i` and :math:`2i + 1` holds :math:`i + D/2`. Permuting q and k
the same way leaves every :math:`q \cdot k` score, hence the logits, unchanged; v and
the output projection are not touched.

References:
  RoFormer: https://arxiv.org/abs/2104.09864 ; ``transformers``' Llama conversion
  script, which applies the inverse permutation:
  https://github.com/huggingface/transformers/blob/main/src/transformers/models/llama/convert_llama_weights_to_hf.py
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxinit._src.core.base import check_int
from jaxinit._src.pretrained.plan import Rule

# Source regexes of the q/k projections (weight, bias) and Qwen3's per-head q/k norms.
_QK = re.compile(r"(?:q|k)_(?:proj|norm)")


@dataclasses.dataclass(frozen=True)
class rope_interleaved:
    r"""Permutes the rows of a q/k projection (HF layout: weight (heads * D, in), bias or
    per-head norm weight) from rotate-half to interleaved RoPE order, head by head.

    Row :math:`hD + 2i` of the result is row :math:`hD + i` of the input and row
    :math:`hD + 2i + 1` is row :math:`hD + i + D/2`; ``inverse=True`` maps back
    (interleaved to rotate-half, as when exporting to HF).

    Args:
      head_dim: the head size :math:`D`, a positive even int.
      inverse: permute from interleaved to rotate-half instead.

    Raises:
      ValueError: `head_dim` not a positive even int; at call time, a leading axis that
        is not a multiple of `head_dim`.

    Example:
      >>> import numpy as np, jaxinit
      >>> jaxinit.hf.rope_interleaved(4)(np.arange(8)).tolist()
      [0, 2, 1, 3, 4, 6, 5, 7]
    """

    head_dim: int
    inverse: bool = False

    def __post_init__(self) -> None:
        d = check_int("jaxinit.hf.rope_interleaved", "head_dim", self.head_dim, minimum=2)
        if d % 2:
            raise ValueError(f"jaxinit.hf.rope_interleaved: head_dim={d!r}; expected a "
                             "positive even int (the size of one attention head)")

    def __call__(self, x: Any) -> Any:
        d = self.head_dim
        if x.ndim < 1 or x.shape[0] % d:
            raise ValueError(f"jaxinit.hf.rope_interleaved: leading axis of shape "
                             f"{tuple(x.shape)} is not a multiple of head_dim={d}")
        perm = np.stack([np.arange(d // 2), np.arange(d // 2) + d // 2], axis=-1).reshape(-1)
        if self.inverse:
            perm = np.argsort(perm)
        rows = (np.arange(x.shape[0] // d)[:, None] * d + perm[None]).reshape(-1)
        return x[rows]


@dataclasses.dataclass(frozen=True)
class _Then:
    """``second(first(x))``, hashable and printable like the converters it chains."""

    first: Callable[[Any], Any]
    second: Callable[[Any], Any] | None

    def __call__(self, x: Any) -> Any:
        y = self.first(x)
        return y if self.second is None else self.second(y)


def with_interleaved_rope(rules: Sequence[Rule], head_dim: int) -> list[Rule]:
    r"""`rules` (from :func:`jaxinit.hf.rules`) for a target whose RoPE is interleaved.

    Every rule whose source regex names ``q_proj``, ``k_proj``, ``q_norm`` or ``k_norm``
    first permutes the checkpoint rows with :class:`rope_interleaved`, then applies its
    own transform (the transpose to Flax's (in, out)); other rules are kept as they are.

    Args:
      rules: ``(source_regex, target_template, transform)`` rules.
      head_dim: the attention head size :math:`D`.

    Returns:
      A new list of rules.

    Example:
      >>> import jaxinit
      >>> rules = jaxinit.hf.with_interleaved_rope(jaxinit.hf.rules("llama"), 64)
      >>> rules[1][2].first
      rope_interleaved(head_dim=64, inverse=False)
    """
    permute = rope_interleaved(head_dim)
    return [(regex, template, _Then(permute, transform))
            if template is not None and _QK.search(regex) else (regex, template, transform)
            for regex, template, transform in map(operator.itemgetter(0, 1, 2), rules)]
