"""Small reference Flax nnx implementations of Hugging Face model families, for parity tests.

Written from the papers, with HF's module names so ``jaxinit.hf.rules`` finds them:
Llama (https://arxiv.org/abs/2302.13971): RMSNorm, rotary position embeddings in the
rotate-half layout, grouped-query attention, a SwiGLU MLP and a causal mask.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class RMSNorm(nnx.Module):
    """:math:`y = x / \\sqrt{\\mathrm{mean}(x^2) + \\epsilon} \\cdot g` (https://arxiv.org/abs/1910.07467)."""

    def __init__(self, dim: int, eps: float):
        self.scale = nnx.Param(jnp.ones((dim,)))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        var = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
        scale = self.scale[...].reshape((1,) * (x.ndim - 1) + (-1,))
        return x * jax.lax.rsqrt(var + self.eps) * scale


def rope(x: jax.Array, theta: float) -> jax.Array:
    """Rotary embedding of x (B, H, T, D), rotate-half layout: feature i pairs with i + D/2,
    rotated by angle :math:`t \\cdot \\theta^{-2i/D}` (https://arxiv.org/abs/2104.09864)."""
    d = x.shape[-1]
    t = jnp.arange(x.shape[-2], dtype=jnp.float32)
    freq = theta ** (-jnp.arange(0, d // 2, dtype=jnp.float32) * 2 / d)
    ang = t[:, None] * freq[None, :]  # (T, D/2)
    cos, sin = jnp.cos(ang)[None, None], jnp.sin(ang)[None, None]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


class Attention(nnx.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, theta: float, bias: bool,
                 rngs: nnx.Rngs):
        self.heads, self.kv_heads, self.d, self.theta = heads, kv_heads, hidden // heads, theta
        self.q_proj = nnx.Linear(hidden, heads * self.d, use_bias=bias, rngs=rngs)
        self.k_proj = nnx.Linear(hidden, kv_heads * self.d, use_bias=bias, rngs=rngs)
        self.v_proj = nnx.Linear(hidden, kv_heads * self.d, use_bias=bias, rngs=rngs)
        self.o_proj = nnx.Linear(heads * self.d, hidden, use_bias=bias, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, _ = x.shape

        def split(y: jax.Array, h: int) -> jax.Array:
            return y.reshape(b, t, h, self.d).transpose(0, 2, 1, 3)

        q = rope(split(self.q_proj(x), self.heads), self.theta)
        k = rope(split(self.k_proj(x), self.kv_heads), self.theta)
        v = split(self.v_proj(x), self.kv_heads)
        group = self.heads // self.kv_heads  # each kv head serves `group` query heads
        k, v = jnp.repeat(k, group, axis=1), jnp.repeat(v, group, axis=1)
        scores = q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(self.d)
        causal = jnp.tril(jnp.ones((t, t), bool))
        scores = jnp.where(causal[None, None], scores, -jnp.inf)
        out = jax.nn.softmax(scores, axis=-1) @ v
        return self.o_proj(out.transpose(0, 2, 1, 3).reshape(b, t, -1))


class MLP(nnx.Module):
    """SwiGLU: :math:`W_d(\\mathrm{silu}(W_g x) \\odot W_u x)` (https://arxiv.org/abs/2002.05202)."""

    def __init__(self, hidden: int, inter: int, rngs: nnx.Rngs):
        self.gate_proj = nnx.Linear(hidden, inter, use_bias=False, rngs=rngs)
        self.up_proj = nnx.Linear(hidden, inter, use_bias=False, rngs=rngs)
        self.down_proj = nnx.Linear(inter, hidden, use_bias=False, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nnx.Module):
    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.input_layernorm = RMSNorm(c["hidden"], c["eps"])
        self.self_attn = Attention(c["hidden"], c["heads"], c["kv_heads"], c["theta"],
                                   c.get("bias", False), rngs)
        self.post_attention_layernorm = RMSNorm(c["hidden"], c["eps"])
        self.mlp = MLP(c["hidden"], c["inter"], rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nnx.Module):
    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.embed_tokens = nnx.Embed(c["vocab"], c["hidden"], rngs=rngs)
        self.layers = nnx.List([Block(c, rngs) for _ in range(c["layers"])])
        self.norm = RMSNorm(c["hidden"], c["eps"])

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class LlamaForCausalLM(nnx.Module):
    """Logits (B, T, vocab); with ``tied=True`` the output reuses the embedding table."""

    def __init__(self, c: dict, *, tied: bool = False, rngs: nnx.Rngs):
        self.model = LlamaModel(c, rngs)
        self.tied = tied
        if not tied:
            self.lm_head = nnx.Linear(c["hidden"], c["vocab"], use_bias=False, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        h = self.model(tokens)
        return self.model.embed_tokens.attend(h) if self.tied else self.lm_head(h)


class GPT2Attention(nnx.Module):
    """Causal multi-head attention with q/k/v as separate (E, E) kernels (HF fuses them)."""

    def __init__(self, hidden: int, heads: int, rngs: nnx.Rngs):
        self.heads, self.d = heads, hidden // heads
        self.q_proj = nnx.Linear(hidden, hidden, rngs=rngs)
        self.k_proj = nnx.Linear(hidden, hidden, rngs=rngs)
        self.v_proj = nnx.Linear(hidden, hidden, rngs=rngs)
        self.c_proj = nnx.Linear(hidden, hidden, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, _ = x.shape

        def split(y: jax.Array) -> jax.Array:
            return y.reshape(b, t, self.heads, self.d).transpose(0, 2, 1, 3)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        scores = q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(self.d)
        scores = jnp.where(jnp.tril(jnp.ones((t, t), bool))[None, None], scores, -jnp.inf)
        out = jax.nn.softmax(scores, axis=-1) @ v
        return self.c_proj(out.transpose(0, 2, 1, 3).reshape(b, t, -1))


class GPT2MLP(nnx.Module):
    """:math:`W_2\\,\\mathrm{gelu}_{tanh}(W_1 x + b_1) + b_2` (https://arxiv.org/abs/1606.08415)."""

    def __init__(self, hidden: int, inter: int, rngs: nnx.Rngs):
        self.c_fc = nnx.Linear(hidden, inter, rngs=rngs)
        self.c_proj = nnx.Linear(inter, hidden, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.c_proj(jax.nn.gelu(self.c_fc(x), approximate=True))


class GPT2Block(nnx.Module):
    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.ln_1 = nnx.LayerNorm(c["hidden"], epsilon=c["eps"], rngs=rngs)
        self.attn = GPT2Attention(c["hidden"], c["heads"], rngs)
        self.ln_2 = nnx.LayerNorm(c["hidden"], epsilon=c["eps"], rngs=rngs)
        self.mlp = GPT2MLP(c["hidden"], 4 * c["hidden"], rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nnx.Module):
    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.wte = nnx.Embed(c["vocab"], c["hidden"], rngs=rngs)
        self.wpe = nnx.Embed(c["positions"], c["hidden"], rngs=rngs)
        self.h = nnx.List([GPT2Block(c, rngs) for _ in range(c["layers"])])
        self.ln_f = nnx.LayerNorm(c["hidden"], epsilon=c["eps"], rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = self.wte(tokens) + self.wpe(jnp.arange(tokens.shape[1]))[None]
        for block in self.h:
            x = block(x)
        return self.ln_f(x)


class GPT2LMHeadModel(nnx.Module):
    """GPT-2 (https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf):
    pre-norm blocks, learned positions, output tied to the token embedding."""

    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.transformer = GPT2Model(c, rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        return self.transformer.wte.attend(self.transformer(tokens))
