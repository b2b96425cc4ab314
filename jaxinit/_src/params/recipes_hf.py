"""Recipes equal to transformers' ``_init_weights``, per parameter, for Flax trees named
after the Hugging Face modules (``model/layers/0/self_attn/q_proj/kernel``, linen's
``params/...`` and ``layers_0`` too).

Each rule reproduces the law transformers gives the parameter when it builds the PyTorch
model from a config (``PreTrainedModel._init_weights`` and the model's override):
``nn.Linear``/``Conv`` weights and ``nn.Embedding`` tables :math:`N(0, r^2)` (:math:`r` =
``initializer_range``),
biases zero, ``LayerNorm``/``RMSNorm`` weights one and biases zero, and the model's
special cases (BERT's padding row, ViT's tokens, T5's per-module stds).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core.base import InitializerBase, Shape, check_int, check_scalar
from jaxinit._src.params.depth import sigma_truncated
from jaxinit._src.params.recipes import DEFAULTS, Rules, _keep_used, _setup
from jaxinit._src.schemes.standard import Constant, Normal, ones, zeros


@dataclasses.dataclass(frozen=True)
class PaddedNormal(InitializerBase):
    r""":math:`N(0, \text{stddev}^2)` with row ``padding_idx`` zero:
    ``nn.Embedding(padding_idx=...)``."""

    stddev: float = 0.02
    padding_idx: int = 0
    dtype: DTypeLike | None = None
    name = "padded_normal"
    min_rank = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(
            self, "stddev", check_scalar(self.name, "stddev", self.stddev, nonnegative=True)
        )
        object.__setattr__(
            self, "padding_idx", check_int(self.name, "padding_idx", self.padding_idx)
        )

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        if not -shape[0] <= self.padding_idx < shape[0]:
            raise ValueError(
                f"{self.name}: padding_idx={self.padding_idx} is not a row of the "
                f"(vocab, dim) table of shape {shape}"
            )
        Normal(self.stddev).check(shape, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        w = Normal(self.stddev).generate(key, shape, dtype)
        return w.at[self.padding_idx].set(0)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        return {"distribution": f"normal, row {self.padding_idx} zero", "mean": 0.0,
                "std": self.stddev * ((shape[0] - 1) / shape[0]) ** 0.5}


def _common(std: float, padding_idx: int | None, word: str) -> list[tuple[str, Any]]:
    """The padded word-embedding rule, if the table has a padding row."""
    return [] if padding_idx is None else [(word, PaddedNormal(std, padding_idx))]


def llama(
    tree: Any,
    *,
    initializer_range: float = 0.02,
    padding_idx: int | None = None,
    embedding: str = DEFAULTS["embedding"],
    kernel: str = DEFAULTS["kernel"],
    bias: str = DEFAULTS["bias"],
    scale: str = DEFAULTS["scale"],
) -> Rules:
    r"""transformers' Llama (and Mistral, Qwen2) initialization.

    .. math:: W, E \sim \mathcal{N}(0, r^2), \qquad b = 0, \qquad g = 1

    r = ``initializer_range`` for every ``nn.Linear`` kernel (``q_proj`` ... ``down_proj``,
    ``lm_head``) and the ``embed_tokens`` table (row ``padding_idx`` zero when the config
    sets ``pad_token_id``; Llama's default has none); biases zero; RMSNorm gains one. No
    depth scaling.

    Example:
      >>> import jax.numpy as jnp, jaxinit
      >>> tree = {"model": {"norm": {"scale": jnp.zeros(8)}}}
      >>> jaxinit.recipe("llama", tree)[0][1] is jaxinit.ones
      True

    References:
      https://huggingface.co/docs/transformers/model_doc/llama
      (``PreTrainedModel._init_weights``).
    """
    check_scalar("recipe('llama')", "initializer_range", initializer_range, positive=True)
    _, paths = _setup("llama", tree, embedding=embedding, kernel=kernel, bias=bias, scale=scale)
    rules = _common(initializer_range, padding_idx, embedding)
    rules += [(embedding, Normal(initializer_range)), (kernel, Normal(initializer_range)),
              (bias, zeros), (scale, ones)]
    return _keep_used(rules, paths)


def bert(
    tree: Any,
    *,
    initializer_range: float = 0.02,
    padding_idx: int | None = 0,
    word_embeddings: str = r"(.*/)?word_embeddings/embedding",
    embedding: str = DEFAULTS["embedding"],
    kernel: str = DEFAULTS["kernel"],
    bias: str = DEFAULTS["bias"],
    scale: str = DEFAULTS["scale"],
) -> Rules:
    r"""transformers' BERT initialization.

    .. math:: W, E \sim \mathcal{N}(0, r^2), \qquad E_\text{word}[p] = 0, \qquad
       b = 0, \qquad \gamma = 1

    r = ``initializer_range`` for every kernel (attention ``query``/``key``/``value``,
    ``output/dense``, ``intermediate/dense``, the pooler and the MLM ``transform``) and
    the word, position and token-type embeddings; the word-embedding row
    ``padding_idx`` (``pad_token_id``, 0) zero; every bias zero (the MLM head's
    ``cls/predictions/bias`` too); LayerNorm gains one.

    Example:
      >>> import jax.numpy as jnp, jaxinit
      >>> tree = {"embeddings": {"word_embeddings": {"embedding": jnp.zeros((30, 8))}}}
      >>> jaxinit.recipe("bert", tree)[0][1]
      PaddedNormal(stddev=0.02, padding_idx=0, dtype=None)

    References:
      Devlin et al. (2019), BERT, https://arxiv.org/abs/1810.04805;
      https://huggingface.co/docs/transformers/model_doc/bert.
    """
    check_scalar("recipe('bert')", "initializer_range", initializer_range, positive=True)
    _, paths = _setup("bert", tree, word_embeddings=word_embeddings, embedding=embedding,
                      kernel=kernel, bias=bias, scale=scale)
    rules = _common(initializer_range, padding_idx, word_embeddings)
    rules += [(embedding, Normal(initializer_range)), (kernel, Normal(initializer_range)),
              (bias, zeros), (scale, ones)]
    return _keep_used(rules, paths)


def vit(
    tree: Any,
    *,
    initializer_range: float = 0.02,
    tokens: str = r"(.*/)?(cls_token|position_embeddings)",
    mask_token: str = r"(.*/)?mask_token",
    kernel: str = DEFAULTS["kernel"],
    bias: str = DEFAULTS["bias"],
    scale: str = DEFAULTS["scale"],
) -> Rules:
    r"""transformers' ViT initialization.

    .. math:: W \sim \mathcal{N}(0, r^2), \qquad
       \text{cls}, \text{pos} \sim \mathcal{N}(0, r^2) \text{ truncated to } [-2, 2]

    r = ``initializer_range`` for every kernel (the patch-embedding convolution, the
    attention and MLP projections, the classifier: transformers draws these
    ``nn.Linear``/``nn.Conv2d`` weights with ``trunc_normal_(std=r)`` and its absolute
    bounds +-2, the same law at these stds since the bounds truncate nothing); the
    ``cls_token`` and ``position_embeddings`` from ``trunc_normal_(std=r)`` with torch's
    default absolute bounds +-2 too, i.e. +-2/r standard deviations (100 at r = 0.02:
    nothing is cut, and the rule is ``jaxinit.normal(r)``, the same law to float
    precision); the ``mask_token`` zero; biases zero; LayerNorm gains one.

    Example:
      >>> import jax.numpy as jnp, jaxinit
      >>> tree = {"embeddings": {"cls_token": jnp.zeros((1, 1, 8))}}
      >>> jaxinit.recipe("vit", tree)[0][1]
      Normal(stddev=0.02, dtype=None)

    References:
      Dosovitskiy et al. (2021), ViT, https://arxiv.org/abs/2010.11929;
      https://huggingface.co/docs/transformers/model_doc/vit.
    """
    r = check_scalar("recipe('vit')", "initializer_range", initializer_range, positive=True)
    _, paths = _setup("vit", tree, tokens=tokens, mask_token=mask_token, kernel=kernel,
                      bias=bias, scale=scale)
    rules = [(tokens, sigma_truncated(r, 2.0 / r)), (mask_token, zeros),
             (kernel, Normal(r)), (bias, zeros), (scale, ones)]
    return _keep_used(rules, paths)


def _dims(leaves: dict[str, Any], pattern: str) -> int | None:
    """The input size (axis -2, so a scan-stacked (L, in, out) kernel too) of the first
    leaf matching pattern."""
    for p, v in leaves.items():
        if re.fullmatch(pattern, p):
            return int(v.shape[-2])
    return None


def t5(
    tree: Any,
    *,
    initializer_factor: float = 1.0,
    num_heads: int | None = None,
    d_kv: int | None = None,
    d_model: int | None = None,
    d_ff: int | None = None,
) -> Rules:
    r"""transformers' T5 initialization: per-module stds from the config (Mesh TensorFlow's).

    With c = ``initializer_factor`` (1.0), for Flax kernels (in, out):

    ==================================================  ==============================
    parameter                                           std
    ==================================================  ==============================
    ``shared``/``embed_tokens``, untied ``lm_head``     c
    attention ``q``                                     c (d_model d_kv)^(-1/2)
    attention ``k``, ``v``                              c d_model^(-1/2)
    attention ``o``                                     c (n_heads d_kv)^(-1/2)
    ``relative_attention_bias``                         c d_model^(-1/2)
    MLP ``wi`` (``wi_0``, ``wi_1``)                     c d_model^(-1/2)
    MLP ``wo``                                          c d_ff^(-1/2)
    ==================================================  ==============================

    all normal, layer-norm gains c, biases zero. d_model, n_heads d_kv and d_ff are read
    from the kernels' input sizes (axis -2 of ``k``, ``o``, ``wo``, so scan-stacked
    (L, in, out) kernels too) unless given; ``num_heads`` (needed for ``d_kv``) from the
    ``relative_attention_bias`` table (buckets, heads) unless given.

    Example:
      >>> import jax.numpy as jnp, jaxinit
      >>> attn = {"q": {"kernel": jnp.zeros((64, 64))}, "k": {"kernel": jnp.zeros((64, 64))}}
      >>> rules = jaxinit.recipe("t5", {"SelfAttention": attn}, num_heads=4)
      >>> [round(init.stddev, 4) for _, init in rules]       # k: 64^-1/2, q: (64 * 16)^-1/2
      [0.125, 0.0312]

    References:
      Raffel et al. (2020), T5, https://arxiv.org/abs/1910.10683;
      https://huggingface.co/docs/transformers/model_doc/t5.
    """
    name = "t5"
    c = check_scalar(f"recipe({name!r})", "initializer_factor", initializer_factor,
                     positive=True)
    given = {"d_model": d_model, "num_heads": num_heads, "d_kv": d_kv, "d_ff": d_ff}
    for arg, value in given.items():
        if value is not None:
            check_int(f"recipe({name!r})", arg, value, minimum=1)
    leaves, paths = _setup(name, tree)
    attn = r"(.*/)?(SelfAttention|EncDecAttention)/"
    if d_model is None:
        d_model = _dims(leaves, attn + r"k/kernel")
    inner = _dims(leaves, attn + r"o/kernel")
    if inner is None:
        q = [v for p, v in leaves.items() if re.fullmatch(attn + r"q/kernel", p)]
        inner = int(q[0].shape[-1]) if q else None
    if d_ff is None:
        d_ff = _dims(leaves, r"(.*/)?DenseReluDense/wo/kernel")
    if num_heads is None:
        rel = [v for p, v in leaves.items() if re.fullmatch(r".*/relative_attention_bias/\w+", p)]
        num_heads = int(rel[0].shape[-1]) if rel else None
    if d_kv is None and inner is not None and num_heads is not None:
        d_kv = inner // num_heads
    rules: list[tuple[str, Any]] = [
        (r"(.*/)?(shared|embed_tokens)/embedding", Normal(c)),
        (r"(.*/)?lm_head/kernel", Normal(c)),
        (r"(.*/)?(layer_norm|final_layer_norm)/scale", Constant(c)),
        (r"(.*/)?bias", zeros),
    ]
    need = {"d_model": d_model}
    if d_model is not None:
        rules += [(attn + r"(k|v)/kernel", Normal(c * d_model**-0.5)),
                  (r".*/relative_attention_bias/embedding", Normal(c * d_model**-0.5)),
                  (r"(.*/)?DenseReluDense/(wi|wi_0|wi_1)/kernel", Normal(c * d_model**-0.5))]
        if d_kv is not None:
            rules.append((attn + r"q/kernel", Normal(c * (d_model * d_kv) ** -0.5)))
    if inner is not None:
        rules.append((attn + r"o/kernel", Normal(c * inner**-0.5)))
    if d_ff is not None:
        rules.append((r"(.*/)?DenseReluDense/wo/kernel", Normal(c * d_ff**-0.5)))
    used = _keep_used(rules, paths)
    has_q = any(re.fullmatch(attn + r"q/kernel", p) for p in paths)
    if has_q and (d_model is None or d_kv is None):
        missing = [k for k, v in {**need, "d_kv": d_kv}.items() if v is None]
        raise ValueError(
            f"recipe({name!r}): cannot size the attention q kernels: {', '.join(missing)} "
            "not found (no k kernel or relative_attention_bias table); pass num_heads= "
            "(and d_model=)"
        )
    return used
