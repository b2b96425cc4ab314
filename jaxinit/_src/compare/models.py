"""The built-in architectures of `jaxinit compare` (linen modules): an MLP, a CNN, a
ResNet and a ViT on the digits, and a small causal transformer (GPT) on bytes of text."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxinit._src.compare.config import CompareConfig
from jaxinit._src.core.gain import ACTIVATIONS


def make_model(config: CompareConfig, kernel_init: Any) -> Any:
    """The linen model of ``config`` with ``kernel_init`` on every kernel (biases zero).

    ``model.apply(variables, x, hidden=True)`` returns the last hidden activation
    (for the Jacobian spectrum of the hidden stack).
    """
    from flax import linen as nn

    act = ACTIVATIONS[config.activation]

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array, hidden: bool = False) -> jax.Array:
            x = x.reshape(x.shape[0], -1)
            for i in range(config.depth):
                x = act(nn.Dense(config.width, kernel_init=kernel_init, name=f"layer{i}")(x))
            if hidden:
                return x
            return nn.Dense(10, kernel_init=kernel_init, name="head")(x)

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array, hidden: bool = False) -> jax.Array:
            for i in range(config.depth):
                conv = nn.Conv(config.width, (3, 3), padding="SAME", kernel_init=kernel_init,
                               name=f"layer{i}")
                x = act(conv(x))
            if hidden:
                return x
            x = x.reshape(x.shape[0], -1)
            return nn.Dense(10, kernel_init=kernel_init, name="head")(x)

    class Residual(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            conv = lambda name: nn.Conv(config.width, (3, 3), padding="SAME",
                                        kernel_init=kernel_init, name=name)
            return x + conv("conv2")(act(conv("conv1")(act(x))))

    class ResNet(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array, hidden: bool = False) -> jax.Array:
            x = nn.Conv(config.width, (3, 3), padding="SAME", kernel_init=kernel_init,
                        name="stem")(x)
            for i in range(config.depth):
                x = Residual(name=f"layer{i}")(x)
            x = act(x)
            if hidden:
                return x
            return nn.Dense(10, kernel_init=kernel_init, name="head")(x.mean(axis=(1, 2)))

    if config.arch in ("vit", "gpt"):
        return make_transformer(config, kernel_init)
    return {"mlp": MLP, "cnn": CNN, "resnet": ResNet}[config.arch]()


def _heads(width: int) -> int:
    """Attention heads: 4 when ``width`` divides, else 1."""
    return 4 if width % 4 == 0 else 1


def _block(nn: Any, width: int, act: Any, causal: bool) -> Any:
    """A pre-LayerNorm transformer block: x + attn(LN(x)), then x + MLP(LN(x)), the MLP
    of hidden width 4 * ``width``, separate query/key/value Dense layers (so every kernel
    is a plain (fan_in, fan_out) matrix)."""

    class Block(nn.Module):
        kernel_init: Any

        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            b, t, _ = x.shape
            h = _heads(width)
            dense = lambda n, nm: nn.Dense(n, kernel_init=self.kernel_init, name=nm)
            y = nn.LayerNorm(name="ln1")(x)
            q, k, v = (dense(width, nm)(y).reshape(b, t, h, width // h)
                       for nm in ("query", "key", "value"))
            logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(
                jnp.asarray(width // h, x.dtype))
            if causal:
                mask = jnp.tril(jnp.ones((t, t), bool))
                logits = jnp.where(mask, logits, jnp.asarray(-1e9, logits.dtype))
            att = jax.nn.softmax(logits, axis=-1)
            y = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, t, width)
            x = x + dense(width, "out")(y)
            y = act(dense(4 * width, "mlp_in")(nn.LayerNorm(name="ln2")(x)))
            return x + dense(width, "mlp_out")(y)

    return Block


def make_transformer(config: CompareConfig, kernel_init: Any, vocab: int = 256) -> Any:
    """``vit``: the 8x8 digits as 16 patches of 2x2 pixels, a Dense patch embedding plus a
    learned position embedding, ``depth`` transformer blocks of width ``width``, mean
    pooling and a Dense head to the 10 classes. ``gpt``: byte tokens (``vocab`` 256), an
    embedding plus a learned position embedding, ``depth`` causal blocks and a Dense head
    to the next byte's logits at every position."""
    from flax import linen as nn

    act = ACTIVATIONS[config.activation]
    w = config.width
    causal = config.arch == "gpt"
    Block = _block(nn, w, act, causal)

    class PosEmbed(nn.Module):  # a layer of its own: the top module owns no parameter
        @nn.compact
        def __call__(self, h: jax.Array) -> jax.Array:
            pos = self.param("pos_embedding", nn.initializers.normal(0.02),
                             (1, h.shape[1], h.shape[2]))
            return h + pos.astype(h.dtype)

    class Transformer(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array, hidden: bool = False) -> jax.Array:
            if causal:
                h = nn.Embed(vocab, w, embedding_init=kernel_init, name="embed")(x)
            else:  # (n, 8, 8, 1) -> (n, 16, 4): 2x2 patches
                p = x.reshape(x.shape[0], 4, 2, 4, 2).transpose(0, 1, 3, 2, 4)
                h = nn.Dense(w, kernel_init=kernel_init, name="embed")(
                    p.reshape(x.shape[0], 16, 4))
            h = PosEmbed(name="pos")(h)
            for i in range(config.depth):
                h = Block(kernel_init, name=f"layer{i}")(h)
            h = nn.LayerNorm(name="ln_f")(h)
            if hidden:
                return h
            if not causal:
                h = h.mean(axis=1)
            return nn.Dense(vocab if causal else 10, kernel_init=kernel_init, name="head")(h)

    return Transformer()
