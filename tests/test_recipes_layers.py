"""LLM-stack presets with a per-layer-index rule, on unrolled and on scan-stacked trees.

The same Llama-like stack of L = 3 blocks is written twice: unrolled (``layers/i/...``,
one leaf per block) and stacked (``layers/...`` leaves with a leading layer axis, as
``nn.scan``/``nnx.scan`` store them). For every block l and every kernel, the drawn
values (a leaf, or slice l of the stacked leaf) must have the law of the preset's
formula, computed here in float64 with scipy: the sample mean and variance within 5
standard errors of the exact truncated-normal moments (``statcheck.assert_moments``;
a correct sampler fails one such check with probability 5.7e-7, and there are
208 of them, so < 1.2e-4 in all). The unrolled and stacked draws of a block must also
agree with each other (two-sample KS, p > 1e-5 each, 48 comparisons: < 4.8e-4).
``test_wrong_layer_index_fails`` shows the check failing on sigma with l in place of
l + 1.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import jaxinit
from tests import statcheck

L, D, H, V = 3, 64, 128, 128
#: kernel name -> (fan_in, fan_out)
# (gate_proj has q_proj's law in every preset here, so it is left out.)
KERNELS = {"self_attn/q_proj": (D, D), "self_attn/o_proj": (D, D),
           "mlp/up_proj": (D, H), "mlp/down_proj": (H, D)}
OUTPUTS = {"self_attn/o_proj", "mlp/down_proj"}   # residual output projections


def _unrolled() -> dict:
    layers = {str(i): {} for i in range(L)}
    for i in range(L):
        for name, shape in KERNELS.items():
            mod, leaf = name.split("/")
            layers[str(i)].setdefault(mod, {})[leaf] = {"kernel": jnp.zeros(shape)}
        layers[str(i)]["norm"] = {"scale": jnp.zeros(D)}
    return {"embed_tokens": {"embedding": jnp.zeros((V, D))}, "layers": layers,
            "lm_head": {"kernel": jnp.zeros((D, V))}}


def _stacked() -> dict:
    layers: dict = {}
    for name, shape in KERNELS.items():
        mod, leaf = name.split("/")
        layers.setdefault(mod, {})[leaf] = {"kernel": jnp.zeros((L, *shape))}
    layers["norm"] = {"scale": jnp.zeros((L, D))}
    return {"embed_tokens": {"embedding": jnp.zeros((V, D))}, "layers": layers,
            "lm_head": {"kernel": jnp.zeros((D, V))}}


def _law(recipe: str, kernel: str, layer: int, index_shift: int = 1):
    """(std, truncation in sigma units) of block `layer`'s kernel, from the formulas."""
    fan_in = KERNELS[kernel][0]
    l1 = layer + index_shift          # l + 1 (a wrong variant passes another shift)
    if recipe == "olmo":              # OLMo mitchell: 1/sqrt(d), outputs 1/sqrt(2 d (l+1))
        std = 1 / math.sqrt(fan_in * (2 * l1 if kernel in OUTPUTS else 1))
        return std, 3.0
    if recipe == "torchtitan":        # 0.02; wo, w2, w3: 0.02/sqrt(2 (l+1)); bounds +-2
        std = 0.02 / math.sqrt(2 * l1) if kernel in OUTPUTS | {"mlp/up_proj"} else 0.02
        return std, 2.0 / std
    if recipe == "olmo_full_megatron":  # 0.02, outputs 0.02/sqrt(2 L), +-3 sigma
        return (0.02 / math.sqrt(2 * L) if kernel in OUTPUTS else 0.02), 3.0
    assert recipe == "megatron"       # 0.02, outputs 0.02/sqrt(2 L), untruncated
    return (0.02 / math.sqrt(2 * L) if kernel in OUTPUTS else 0.02), math.inf


def _dist(std: float, cut: float):
    return scipy.stats.truncnorm(-cut, cut, scale=std)


def _draw(recipe: str, tree: dict, **kw) -> dict:
    rules = jaxinit.recipe(recipe, tree, **kw)
    return jaxinit.reinit(tree, jax.random.key(7), rules)


def _slices(unrolled: dict, stacked: dict, kernel: str):
    mod, leaf = kernel.split("/")
    for i in range(L):
        yield (i, np.asarray(unrolled["layers"][str(i)][mod][leaf]["kernel"], np.float64),
               np.asarray(stacked["layers"][mod][leaf]["kernel"][i], np.float64))


PRESETS = ["olmo", "torchtitan", "olmo_full_megatron", "megatron"]


@functools.cache
def _drawn(recipe: str) -> tuple[dict, dict]:
    return _draw(recipe, _unrolled()), _draw(recipe, _stacked(), stacked=r"layers/.*")


@pytest.mark.parametrize("recipe", PRESETS)
def test_per_layer_std_unrolled_and_stacked(recipe):
    unrolled, stacked = _drawn(recipe)
    for kernel in KERNELS:
        for layer, a, b in _slices(unrolled, stacked, kernel):
            dist = _dist(*_law(recipe, kernel, layer))
            for x in (a, b):
                statcheck.assert_moments(x, dist)
                assert np.abs(x).max() <= dist.support()[1]
            assert scipy.stats.ks_2samp(a.ravel(), b.ravel()).pvalue > 1e-5, (kernel, layer)
    # Stacked slices are independent draws, not copies.
    o = np.asarray(stacked["layers"]["self_attn"]["q_proj"]["kernel"])
    assert not np.array_equal(o[0], o[1])
    np.testing.assert_array_equal(stacked["layers"]["norm"]["scale"], 1.0)
    np.testing.assert_array_equal(unrolled["layers"]["2"]["norm"]["scale"], 1.0)


@pytest.mark.parametrize("recipe", PRESETS)
def test_embedding_and_head(recipe):
    unrolled, _ = _drawn(recipe)
    emb = np.asarray(unrolled["embed_tokens"]["embedding"], np.float64)
    head = np.asarray(unrolled["lm_head"]["kernel"], np.float64)
    law = {  # (embedding std, cut), (head std, cut), from each source's formulas
        "olmo": ((D**-0.5, 3.0), (D**-0.5, 3.0)),
        "torchtitan": ((1.0, math.inf), (D**-0.5, 3.0)),
        "olmo_full_megatron": ((0.02, 3.0), (D**-0.5, 3.0)),
        "megatron": ((0.02, math.inf), (0.02, math.inf)),
    }[recipe]
    statcheck.assert_moments(emb, _dist(*law[0]))
    statcheck.assert_moments(head, _dist(*law[1]))


@pytest.mark.parametrize("recipe", ["olmo", "torchtitan"])
def test_wrong_layer_index_fails(recipe):
    """sigma with l in place of l + 1 (layers 1, 2) is rejected by the same check."""
    unrolled, stacked = _drawn(recipe)
    for layer, a, b in _slices(unrolled, stacked, "self_attn/o_proj"):
        if layer == 0:
            continue
        for x in (a, b):
            with pytest.raises(AssertionError, match="variance"):
                statcheck.assert_moments(x, _dist(*_law(recipe, "self_attn/o_proj", layer, 0)))


def test_truncation_in_sigma_units():
    """torchtitan's absolute +-2 bounds are +-2/s sigma: at s = 0.02/sqrt(2(l+1)) that is
    over 100 sigma, drawn untruncated (an inverse-CDF draw at 690 sigma can return the
    bound itself, +-2.0); at a std of 0.5 they cut at 4 sigma and stay truncated."""
    assert jaxinit.torchtitan_init(23) == jaxinit.normal(0.02 / math.sqrt(48))
    wide = jaxinit.torchtitan_init(0, std=0.5 * math.sqrt(2))
    assert wide == jaxinit.truncated_normal(0.5, lower=-4.0, upper=4.0)
    w = np.asarray(wide(jax.random.key(0), (256, 256)), np.float64)
    statcheck.assert_moments(w, _dist(0.5, 4.0))


def test_per_layer_offset_and_errors():
    init = jaxinit.per_layer(jaxinit.torchtitan_init, offset=2)
    w = np.asarray(init(jax.random.key(0), (2, 128, 128)), np.float64)
    for i in range(2):   # slices are layers 2 and 3
        std = 0.02 / math.sqrt(2 * (i + 3))
        statcheck.assert_moments(w[i], _dist(std, 2 / std))
    w = jaxinit.per_layer(jaxinit.torchtitan_init, axis=1)(jax.random.key(0), (8, 3, 8),
                                                          jnp.bfloat16)
    assert w.shape == (8, 3, 8) and w.dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="per_layer: offset=-1"):
        jaxinit.per_layer(jaxinit.torchtitan_init, offset=-1)
    with pytest.raises(TypeError, match="per_layer: init_for=3"):
        jaxinit.per_layer(3)
    with pytest.raises(TypeError, match="torchtitan_init: pass exactly one"):
        jaxinit.torchtitan_init()
    with pytest.raises(ValueError, match=r"recipe\('torchtitan'\): residual 'x/wo/kernel'"):
        jaxinit.recipe("torchtitan", {"x": {"wo": {"kernel": jnp.zeros((4, 4))}}})
    with pytest.raises(ValueError, match=r"stacked leaf 'layers/b' has shape \(4,\)"):
        jaxinit.recipe("olmo", {"layers": {"b": jnp.zeros(4)}}, stacked=r"layers/.*")


def test_torchtitan_on_an_nnx_scanned_model():
    """A real nnx stack (blocks made by nnx.vmap, applied by nnx.scan): the recipe updates
    the module in place and slice l of the stacked ``wo`` gets 0.02/sqrt(2(l+1)), ``wq``
    0.02, the norm gains one (moments within 5 s.e., 12 checks: false failure < 1e-5)."""
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.wq = nnx.Linear(D, D, use_bias=False, rngs=rngs)
            self.wo = nnx.Linear(D, D, use_bias=False, rngs=rngs)
            self.norm = nnx.RMSNorm(D, rngs=rngs)

    class Stack(nnx.Module):
        def __init__(self, rngs):
            @nnx.split_rngs(splits=L)
            @nnx.vmap(in_axes=(0,), out_axes=0)
            def make(rngs):
                return Block(rngs)

            self.layers = make(rngs)

        def __call__(self, x):
            @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
            def step(x, block):
                return x + block.wo(block.wq(block.norm(x)))

            return step(x, self.layers)

    model = Stack(nnx.Rngs(0))
    jaxinit.reinit(model, jax.random.key(1),
                   jaxinit.recipe("torchtitan", model, stacked=r"layers/.*"))
    wo = np.asarray(model.layers.wo.kernel[...], np.float64)
    wq = np.asarray(model.layers.wq.kernel[...], np.float64)
    for layer in range(L):
        std = 0.02 / math.sqrt(2 * (layer + 1))
        statcheck.assert_moments(wo[layer], _dist(std, 2 / std))
        statcheck.assert_moments(wq[layer], _dist(0.02, 100.0))
    np.testing.assert_array_equal(model.layers.norm.scale[...], 1.0)
    assert model(jnp.ones((2, D))).shape == (2, D)
