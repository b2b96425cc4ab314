r"""Small reference Flax nnx implementations of Hugging Face model families, for parity tests.

Written from the papers, with HF's module names so ``jaxinit.hf.rules`` finds them.
Llama (https://arxiv.org/abs/2302.13971): RMSNorm, rotary position embeddings (RoPE) in
the rotate-half layout, grouped-query attention, a SwiGLU MLP and a causal mask. The
config dict ``c`` switches on the relatives: Qwen2's q/k/v biases (``qkv_bias``),
Qwen3's per-head q/k RMSNorm (``qk_norm``), an explicit ``head_dim``, Gemma's
:math:`(1 + w)` norms, GELU-tanh MLP and :math:`\sqrt{E}`-scaled embedding (``gemma``),
Mixtral's top-k mixture of experts (``experts``, ``top_k``), Gemma 2's extras
(``gemma2``, https://arxiv.org/abs/2408.00118: norms after attention and around the MLP,
tanh soft-capping of the attention scores and final logits, a query scale set by
``query_pre_attn_scalar``, sliding-window attention of ``window`` tokens on the
``layer_types`` that say so; Mistral: every layer sliding), Gemma 3's RoPE base
``local_theta`` on its sliding layers (``theta`` on the full ones) and :math:`(1 + w)`
q/k norms (``gemma`` with ``qk_norm``), interleaved RoPE (``rope="interleaved"``), and a
``dtype`` for the activations. Norms and softmax run in float32 and cast back, as the
PyTorch models do. With ``scan=True`` each layer's window and RoPE base are arrays
scanned with the layers, not Python attributes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx


class RMSNorm(nnx.Module):
    """:math:`y = x / \\sqrt{\\mathrm{mean}(x^2) + \\epsilon} \\cdot g` (https://arxiv.org/abs/1910.07467);
    with ``offset=True`` (Gemma) the gain is :math:`1 + g`, applied in float32."""

    def __init__(self, dim: int, eps: float, offset: bool = False):
        self.scale = nnx.Param(jnp.ones((dim,)))
        self.eps, self.offset = eps, offset

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        var = jnp.mean(jnp.square(xf), axis=-1, keepdims=True)
        normed = xf * jax.lax.rsqrt(var + self.eps)
        scale = self.scale[...].reshape((1,) * (x.ndim - 1) + (-1,))
        if self.offset:
            return (normed * (1.0 + scale.astype(jnp.float32))).astype(x.dtype)
        return scale.astype(x.dtype) * normed.astype(x.dtype)


class LayerNorm(nnx.Module):
    """:math:`y = (x - \\mu) / \\sqrt{\\sigma^2 + \\epsilon} \\cdot g + b` over the last axis
    (https://arxiv.org/abs/1607.06450), computed in float32 and cast back to x's dtype,
    as PyTorch's ``LayerNorm`` does for bfloat16 inputs."""

    def __init__(self, dim: int, eps: float):
        self.scale = nnx.Param(jnp.ones((dim,)))
        self.bias = nnx.Param(jnp.zeros((dim,)))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        mean = jnp.mean(xf, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
        y = (xf - mean) * jax.lax.rsqrt(var + self.eps)
        shape = (1,) * (x.ndim - 1) + (-1,)
        g = self.scale[...].astype(jnp.float32).reshape(shape)
        b = self.bias[...].astype(jnp.float32).reshape(shape)
        return (y * g + b).astype(x.dtype)


def rope(x: jax.Array, theta: float | jax.Array, interleaved: bool = False) -> jax.Array:
    """Rotary embedding of x (B, H, T, D) by angle :math:`t \\cdot \\theta^{-2i/D}` for pair i
    (https://arxiv.org/abs/2104.09864), the base :math:`\\theta` a number or a traced scalar.
    Rotate-half layout (HF's): feature i pairs with i + D/2; interleaved layout (the
    paper's, Meta's original Llama): 2i pairs with 2i+1."""
    d = x.shape[-1]
    t = jnp.arange(x.shape[-2], dtype=jnp.float32)
    freq = theta ** (-jnp.arange(0, d // 2, dtype=jnp.float32) * 2 / d)
    ang = t[:, None] * freq[None, :]  # (T, D/2)
    cos, sin = jnp.cos(ang)[None, None], jnp.sin(ang)[None, None]
    xf = x.astype(jnp.float32)
    if interleaved:
        x1, x2 = xf[..., 0::2], xf[..., 1::2]
        out = jnp.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
        return out.reshape(x.shape).astype(x.dtype)
    x1, x2 = xf[..., : d // 2], xf[..., d // 2:]
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def softcap(x: jax.Array, cap: float | None) -> jax.Array:
    """Gemma 2's soft-capping :math:`c \\tanh(x / c)`: smooth, odd, bounded by c (identity
    for ``cap=None``)."""
    return x if cap is None else cap * jnp.tanh(x / cap)


def attend(q: jax.Array, k: jax.Array, v: jax.Array, causal: bool, *,
           scale: float | None = None, cap: float | None = None,
           window: int | jax.Array | None = None) -> jax.Array:
    """softmax(softcap(s q k^T)) v over (B, H, T, D), :math:`s = 1/\\sqrt{D}` unless given,
    the softmax in float32; with `window` (a number or a traced scalar), query i sees keys
    j with :math:`0 \\le i - j <` `window` (sliding-window attention,
    https://arxiv.org/abs/2004.05150)."""
    s = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = softcap((q @ k.transpose(0, 1, 3, 2)).astype(jnp.float32) * s, cap)
    if causal:
        t = q.shape[-2]
        i, j = jnp.arange(t)[:, None], jnp.arange(t)[None, :]
        keep = (j <= i) if window is None else (j <= i) & (i - j < window)
        scores = jnp.where(keep[None, None], scores, -jnp.inf)
    return jax.nn.softmax(scores, axis=-1).astype(v.dtype) @ v


def _linear(n_in: int, n_out: int, bias: bool, c: dict, rngs: nnx.Rngs) -> nnx.Linear:
    dtype = c.get("dtype", jnp.float32)
    return nnx.Linear(n_in, n_out, use_bias=bias, dtype=dtype, param_dtype=dtype, rngs=rngs)


class Attention(nnx.Module):
    """Grouped-query attention; `window` and the RoPE base `theta` (``c["theta"]`` unless
    given) are this layer's, or come per call as ``kind=(window, theta)`` arrays (scanned
    layers, where a full-attention layer's window is the sequence length)."""

    def __init__(self, c: dict, rngs: nnx.Rngs, window: int | None = None,
                 theta: float | None = None):
        hidden, self.heads, self.kv_heads = c["hidden"], c["heads"], c["kv_heads"]
        self.d = c.get("head_dim", hidden // self.heads)
        self.theta = c["theta"] if theta is None else theta
        self.interleaved = c.get("rope", "half") == "interleaved"
        bias = c.get("bias", False)  # Llama's attention_bias: all four projections
        qkv_bias = bias or c.get("qkv_bias", False)  # Qwen2: q, k and v only
        self.q_proj = _linear(hidden, self.heads * self.d, qkv_bias, c, rngs)
        self.k_proj = _linear(hidden, self.kv_heads * self.d, qkv_bias, c, rngs)
        self.v_proj = _linear(hidden, self.kv_heads * self.d, qkv_bias, c, rngs)
        self.o_proj = _linear(self.heads * self.d, hidden, bias, c, rngs)
        self.qk_norm = c.get("qk_norm", False)
        # Gemma 2: scores scaled by query_pre_attn_scalar^-1/2 and soft-capped.
        pre = c.get("query_pre_attn_scalar")
        self.scale = None if pre is None else pre ** -0.5
        self.cap, self.window = c.get("attn_softcap"), window
        if self.qk_norm:  # Qwen3: RMSNorm over each head's features, before RoPE
            gemma = c.get("gemma", False)  # Gemma 3: (1 + w) gains
            self.q_norm = RMSNorm(self.d, c["eps"], gemma)
            self.k_norm = RMSNorm(self.d, c["eps"], gemma)

    def __call__(self, x: jax.Array, kind: tuple[jax.Array, jax.Array] | None = None
                 ) -> jax.Array:
        b, t, _ = x.shape
        window, theta = (self.window, self.theta) if kind is None else kind

        def split(y: jax.Array, h: int) -> jax.Array:
            return y.reshape(b, t, h, self.d).transpose(0, 2, 1, 3)

        q, k = split(self.q_proj(x), self.heads), split(self.k_proj(x), self.kv_heads)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = rope(q, theta, self.interleaved), rope(k, theta, self.interleaved)
        v = split(self.v_proj(x), self.kv_heads)
        group = self.heads // self.kv_heads  # each kv head serves `group` query heads
        k, v = jnp.repeat(k, group, axis=1), jnp.repeat(v, group, axis=1)
        out = attend(q, k, v, causal=True, scale=self.scale, cap=self.cap, window=window)
        return self.o_proj(out.transpose(0, 2, 1, 3).reshape(b, t, -1))


class MLP(nnx.Module):
    """SwiGLU: :math:`W_d(\\mathrm{silu}(W_g x) \\odot W_u x)` (https://arxiv.org/abs/2002.05202);
    Gemma's GeGLU uses the tanh-approximated GELU instead of SiLU."""

    def __init__(self, c: dict, rngs: nnx.Rngs):
        hidden, inter = c["hidden"], c["inter"]
        self.gate_proj = _linear(hidden, inter, False, c, rngs)
        self.up_proj = _linear(hidden, inter, False, c, rngs)
        self.down_proj = _linear(inter, hidden, False, c, rngs)
        self.gelu = c.get("gemma", False)

    def __call__(self, x: jax.Array) -> jax.Array:
        g = self.gate_proj(x)
        act = jax.nn.gelu(g, approximate=True) if self.gelu else jax.nn.silu(g)
        return self.down_proj(act * self.up_proj(x))


class Experts(nnx.Module):
    """Per-expert SwiGLU weights stacked on axis 0: w1 (gate) and w3 (up) of shape
    (experts, hidden, inter), w2 (down) of shape (experts, inter, hidden)."""

    def __init__(self, c: dict, rngs: nnx.Rngs):
        e, h, i, dtype = c["experts"], c["hidden"], c["inter"], c.get("dtype", jnp.float32)
        init = jax.nn.initializers.normal(0.02)
        self.w1 = nnx.Param(init(rngs.params(), (e, h, i), dtype))
        self.w3 = nnx.Param(init(rngs.params(), (e, h, i), dtype))
        self.w2 = nnx.Param(init(rngs.params(), (e, i, h), dtype))


class SparseMoE(nnx.Module):
    """Mixtral's sparse MoE (https://arxiv.org/abs/2401.04088): router probabilities
    :math:`p = \\mathrm{softmax}(W_r x)`, the top-k experts' weights renormalized to sum to 1,
    :math:`y = \\sum_{e \\in \\mathrm{top}k} \\tilde p_e \\, \\mathrm{SwiGLU}_e(x)`. Every expert is
    evaluated densely (tiny models), the unselected ones with weight 0."""

    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.gate = _linear(c["hidden"], c["experts"], False, c, rngs)
        self.experts = Experts(c, rngs)
        self.top_k, self.n = c["top_k"], c["experts"]

    def __call__(self, x: jax.Array) -> jax.Array:
        probs = jax.nn.softmax(self.gate(x).astype(jnp.float32), axis=-1)
        top, idx = jax.lax.top_k(probs, self.top_k)
        top = top / top.sum(axis=-1, keepdims=True)
        weights = (jax.nn.one_hot(idx, self.n) * top[..., None]).sum(-2).astype(x.dtype)
        w1, w2, w3 = self.experts.w1[...], self.experts.w2[...], self.experts.w3[...]
        h = jax.nn.silu(jnp.einsum("bth,ehi->btei", x, w1)) * jnp.einsum("bth,ehi->btei", x, w3)
        y = jnp.einsum("btei,eih->bteh", h, w2)
        return jnp.einsum("bte,bteh->bth", weights, y)


class Block(nnx.Module):
    """Pre-norm: :math:`h = x + \\mathrm{Attn}(N_1 x)`, :math:`y = h + \\mathrm{MLP}(N_2 h)`.
    Gemma 2 (``gemma2``) also normalizes each branch's output:
    :math:`h = x + N_2\\,\\mathrm{Attn}(N_1 x)`, :math:`y = h + N_4\\,\\mathrm{MLP}(N_3 h)`
    (``post_attention_layernorm``, ``pre_feedforward_layernorm``,
    ``post_feedforward_layernorm``), as Gemma 3 does."""

    def __init__(self, c: dict, rngs: nnx.Rngs, window: int | None = None,
                 theta: float | None = None):
        gemma, self.gemma2 = c.get("gemma", False), c.get("gemma2", False)
        self.input_layernorm = RMSNorm(c["hidden"], c["eps"], gemma)
        self.self_attn = Attention(c, rngs, window, theta)
        self.post_attention_layernorm = RMSNorm(c["hidden"], c["eps"], gemma)
        if self.gemma2:
            self.pre_feedforward_layernorm = RMSNorm(c["hidden"], c["eps"], gemma)
            self.post_feedforward_layernorm = RMSNorm(c["hidden"], c["eps"], gemma)
        self.moe = "experts" in c
        if self.moe:
            self.block_sparse_moe = SparseMoE(c, rngs)
        else:
            self.mlp = MLP(c, rngs)

    def __call__(self, x: jax.Array, kind: tuple[jax.Array, jax.Array] | None = None
                 ) -> jax.Array:
        if self.gemma2:
            x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), kind))
            return x + self.post_feedforward_layernorm(
                self.mlp(self.pre_feedforward_layernorm(x)))
        x = x + self.self_attn(self.input_layernorm(x), kind)
        h = self.post_attention_layernorm(x)
        return x + (self.block_sparse_moe(h) if self.moe else self.mlp(h))


class LlamaModel(nnx.Module):
    """Embedding, decoder layers and the final norm; ``scan=True`` stacks the layers on
    a leading axis (``nnx.vmap`` at init) and runs them with ``nnx.scan``, each layer's
    window and RoPE base scanned along as arrays."""

    def __init__(self, c: dict, rngs: nnx.Rngs, scan: bool = False):
        dtype = c.get("dtype", jnp.float32)
        self.embed_tokens = nnx.Embed(c["vocab"], c["hidden"], dtype=dtype, param_dtype=dtype,
                                      rngs=rngs)
        self.scan, self.gemma = scan, c.get("gemma", False)
        # layer_types[i] == "sliding_attention": a window of c["window"] tokens and (Gemma 3)
        # the RoPE base c["local_theta"]; "full_attention": no window, base c["theta"].
        kinds = c.get("layer_types", ["full_attention"] * c["layers"])
        sliding = [kind == "sliding_attention" for kind in kinds]
        self.windows = tuple(c["window"] if s else None for s in sliding)
        self.thetas = tuple(float(c.get("local_theta", c["theta"]) if s else c["theta"])
                            for s in sliding)
        if scan:
            @nnx.split_rngs(splits=c["layers"])
            @nnx.vmap(in_axes=(0,), out_axes=0)
            def make(rngs: nnx.Rngs) -> Block:
                return Block(c, rngs)

            self.layers = make(rngs)
        else:
            self.layers = nnx.List([Block(c, rngs, w, theta) for w, theta
                                    in zip(self.windows, self.thetas, strict=True)])
        self.norm = RMSNorm(c["hidden"], c["eps"], self.gemma)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = self.embed_tokens(tokens)
        if self.gemma:  # Gemma scales the embedding by sqrt(hidden), rounded to its dtype
            x = x * jnp.asarray(math.sqrt(x.shape[-1]), x.dtype)
        if self.scan:  # a full-attention layer's window: the whole sequence
            t = tokens.shape[1]
            windows = jnp.asarray([t if w is None else w for w in self.windows], jnp.int32)
            thetas = jnp.asarray(self.thetas, jnp.float32)

            @nnx.scan(in_axes=(nnx.Carry, 0, 0), out_axes=nnx.Carry)
            def step(x: jax.Array, layer: Block, kind: tuple[jax.Array, jax.Array]
                     ) -> jax.Array:
                return layer(x, kind)

            x = step(x, self.layers, (windows, thetas))
        else:
            for layer in self.layers:
                x = layer(x)
        return self.norm(x)


class LlamaForCausalLM(nnx.Module):
    """Logits (B, T, vocab); with ``tied=True`` the output reuses the embedding table;
    Gemma 2 soft-caps them, :math:`c \\tanh(z / c)` with ``final_softcap`` c."""

    def __init__(self, c: dict, *, tied: bool = False, scan: bool = False, rngs: nnx.Rngs):
        self.model = LlamaModel(c, rngs, scan)
        self.tied, self.cap = tied, c.get("final_softcap")  # Gemma 2 soft-caps the logits
        if not tied:
            self.lm_head = _linear(c["hidden"], c["vocab"], False, c, rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        h = self.model(tokens)
        logits = self.model.embed_tokens.attend(h) if self.tied else self.lm_head(h)
        return softcap(logits, self.cap)


def cast_params(model: nnx.Module, dtype: jnp.dtype) -> nnx.Module:
    """`model` (in place) with every ``nnx.Param`` cast to `dtype` and every Flax layer
    (``nnx.Linear``, ``Embed``, ``Conv``) computing in `dtype`, so ``load_pretrained`` casts a
    float32 checkpoint to match."""
    for _, module in nnx.iter_modules(model):
        if isinstance(module, nnx.Linear | nnx.Embed | nnx.Conv):
            module.dtype, module.param_dtype = dtype, dtype
    state = nnx.state(model, nnx.Param)
    nnx.update(model, jax.tree.map(lambda x: x.astype(dtype), state))
    return model


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
        out = attend(q, k, v, causal=True)
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
        self.ln_1 = LayerNorm(c["hidden"], c["eps"])
        self.attn = GPT2Attention(c["hidden"], c["heads"], rngs)
        self.ln_2 = LayerNorm(c["hidden"], c["eps"])
        self.mlp = GPT2MLP(c["hidden"], 4 * c["hidden"], rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nnx.Module):
    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.wte = nnx.Embed(c["vocab"], c["hidden"], rngs=rngs)
        self.wpe = nnx.Embed(c["positions"], c["hidden"], rngs=rngs)
        self.h = nnx.List([GPT2Block(c, rngs) for _ in range(c["layers"])])
        self.ln_f = LayerNorm(c["hidden"], c["eps"])

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


class SelfAttention(nnx.Module):
    """Bidirectional multi-head attention with biased query/key/value (BERT, ViT)."""

    def __init__(self, hidden: int, heads: int, rngs: nnx.Rngs):
        self.heads = heads
        self.query = nnx.Linear(hidden, hidden, rngs=rngs)
        self.key = nnx.Linear(hidden, hidden, rngs=rngs)
        self.value = nnx.Linear(hidden, hidden, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, e = x.shape

        def split(y: jax.Array) -> jax.Array:
            return y.reshape(b, t, self.heads, e // self.heads).transpose(0, 2, 1, 3)

        out = attend(split(self.query(x)), split(self.key(x)), split(self.value(x)), False)
        return out.transpose(0, 2, 1, 3).reshape(b, t, e)


class DenseNorm(nnx.Module):
    """``dense`` then (for BERT's post-norm residual) ``LayerNorm(dense(x) + residual)``."""

    def __init__(self, n_in: int, n_out: int, eps: float | None, rngs: nnx.Rngs):
        self.dense = nnx.Linear(n_in, n_out, rngs=rngs)
        if eps is not None:
            self.LayerNorm = LayerNorm(n_out, eps)

    def __call__(self, x: jax.Array, residual: jax.Array | None = None) -> jax.Array:
        y = self.dense(x)
        return y if residual is None else self.LayerNorm(y + residual)


class EncoderAttention(nnx.Module):
    """HF's ``attention`` block: ``self`` (BERT) or ``attention`` (ViT), then ``output``."""

    def __init__(self, c: dict, inner: str, rngs: nnx.Rngs):
        self.inner = inner
        setattr(self, inner, SelfAttention(c["hidden"], c["heads"], rngs))
        self.output = DenseNorm(c["hidden"], c["hidden"], c["eps"] if inner == "self" else None,
                                rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        a = getattr(self, self.inner)(x)
        return self.output(a, x) if self.inner == "self" else self.output(a)


class BertLayer(nnx.Module):
    """Post-norm: :math:`h = \\mathrm{LN}(x + \\mathrm{Attn}(x))`,
    :math:`y = \\mathrm{LN}(h + W_2\\,\\mathrm{gelu}(W_1 h))` (https://arxiv.org/abs/1810.04805)."""

    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.attention = EncoderAttention(c, "self", rngs)
        self.intermediate = DenseNorm(c["hidden"], c["inter"], None, rngs)
        self.output = DenseNorm(c["inter"], c["hidden"], c["eps"], rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.attention(x)
        return self.output(jax.nn.gelu(self.intermediate(h), approximate=False), h)


class Layers(nnx.Module):
    def __init__(self, layers: list[nnx.Module]):
        self.layer = nnx.List(layers)

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layer:
            x = layer(x)
        return x


class BertEmbeddings(nnx.Module):
    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.word_embeddings = nnx.Embed(c["vocab"], c["hidden"], rngs=rngs)
        self.position_embeddings = nnx.Embed(c["positions"], c["hidden"], rngs=rngs)
        self.token_type_embeddings = nnx.Embed(2, c["hidden"], rngs=rngs)
        self.LayerNorm = LayerNorm(c["hidden"], c["eps"])

    def __call__(self, tokens: jax.Array) -> jax.Array:
        t = tokens.shape[1]
        x = (self.word_embeddings(tokens) + self.position_embeddings(jnp.arange(t))[None]
             + self.token_type_embeddings(jnp.zeros_like(tokens)))
        return self.LayerNorm(x)


class BertModel(nnx.Module):
    """Last hidden state (B, T, E); token type 0 everywhere, no padding mask."""

    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.embeddings = BertEmbeddings(c, rngs)
        self.encoder = Layers([BertLayer(c, rngs) for _ in range(c["layers"])])

    def __call__(self, tokens: jax.Array) -> jax.Array:
        return self.encoder(self.embeddings(tokens))


class MLMTransform(nnx.Module):
    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.dense = nnx.Linear(c["hidden"], c["hidden"], rngs=rngs)
        self.LayerNorm = LayerNorm(c["hidden"], c["eps"])


class MLMPredictions(nnx.Module):
    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.transform = MLMTransform(c, rngs)
        self.bias = nnx.Param(jnp.zeros((c["vocab"],)))


class MLMHead(nnx.Module):
    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.predictions = MLMPredictions(c, rngs)


class BertForMaskedLM(nnx.Module):
    """MLM logits :math:`\\mathrm{LN}(\\mathrm{gelu}(W h))\\,E^\\top + b`, decoder tied to the
    word embedding E."""

    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.bert = BertModel(c, rngs)
        self.cls = MLMHead(c, rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        p = self.cls.predictions
        h = jax.nn.gelu(p.transform.dense(self.bert(tokens)), approximate=False)
        h = p.transform.LayerNorm(h)
        return self.bert.embeddings.word_embeddings.attend(h) + p.bias[...][None, None]


class ViTLayer(nnx.Module):
    """Pre-norm: :math:`h = x + \\mathrm{Attn}(\\mathrm{LN}(x))`,
    :math:`y = h + W_2\\,\\mathrm{gelu}(W_1 \\mathrm{LN}(h))` (https://arxiv.org/abs/2010.11929)."""

    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.layernorm_before = LayerNorm(c["hidden"], c["eps"])
        self.attention = EncoderAttention(c, "attention", rngs)
        self.layernorm_after = LayerNorm(c["hidden"], c["eps"])
        self.intermediate = DenseNorm(c["hidden"], c["inter"], None, rngs)
        self.output = DenseNorm(c["inter"], c["hidden"], None, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x + self.attention(self.layernorm_before(x))
        mlp = self.output(jax.nn.gelu(self.intermediate(self.layernorm_after(h)),
                                      approximate=False))
        return h + mlp


class PatchEmbeddings(nnx.Module):
    def __init__(self, c: dict, rngs: nnx.Rngs):
        p = c["patch"]
        self.projection = nnx.Conv(c["channels"], c["hidden"], (p, p), strides=(p, p),
                                   padding="VALID", rngs=rngs)


class ViTEmbeddings(nnx.Module):
    """Patches (row-major) projected by a stride-p conv, a class token first, plus learned
    positions."""

    def __init__(self, c: dict, rngs: nnx.Rngs):
        n = (c["image"] // c["patch"]) ** 2
        self.cls_token = nnx.Param(jnp.zeros((1, 1, c["hidden"])))
        self.position_embeddings = nnx.Param(jnp.zeros((1, n + 1, c["hidden"])))
        self.patch_embeddings = PatchEmbeddings(c, rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = self.patch_embeddings.projection(images)  # NHWC -> (B, h, w, E)
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        cls = jnp.broadcast_to(self.cls_token[...], (x.shape[0], 1, x.shape[-1]))
        return jnp.concatenate([cls, x], axis=1) + self.position_embeddings[...]


class ViTModel(nnx.Module):
    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.embeddings = ViTEmbeddings(c, rngs)
        self.encoder = Layers([ViTLayer(c, rngs) for _ in range(c["layers"])])
        self.layernorm = LayerNorm(c["hidden"], c["eps"])

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.layernorm(self.encoder(self.embeddings(images)))


class ViTForImageClassification(nnx.Module):
    """Class logits from the final-norm class token; images NHWC (HF takes NCHW)."""

    def __init__(self, c: dict, rngs: nnx.Rngs):
        self.vit = ViTModel(c, rngs)
        self.classifier = nnx.Linear(c["hidden"], c["labels"], rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.classifier(self.vit(images)[:, 0])
