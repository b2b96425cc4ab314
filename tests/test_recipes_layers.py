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
    # axis=1: slice w[:, i] is layer i (moments within 5 s.e., 6 checks: false failure
    # < 4e-6; bfloat16 rounding moves the variance by < 2^-9 relative, far below 5 s.e.).
    for dtype in (jnp.float32, jnp.bfloat16):
        w = jaxinit.per_layer(jaxinit.torchtitan_init, axis=1)(jax.random.key(0),
                                                              (128, 3, 128), dtype)
        assert w.shape == (128, 3, 128) and w.dtype == dtype
        for i in range(3):
            std = 0.02 / math.sqrt(2 * (i + 1))
            statcheck.assert_moments(np.asarray(w[:, i], np.float64), _dist(std, 2 / std))
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


def test_per_layer_stats_are_the_mixture_of_the_layers():
    """describe/stats of a stacked leaf: the mixture of its slices' laws, against the
    float64 formula mean = mean_i mu_i, var = mean_i (sigma_i^2 + mu_i^2) - mean^2."""
    init = jaxinit.per_layer(jaxinit.torchtitan_init, offset=1)
    sig = np.array([0.02 / math.sqrt(2 * (i + 2)) for i in range(4)], np.float64)
    stats = init.stats((4, 16, 16), np.dtype(np.float32))
    assert stats["mean"] == 0.0
    assert stats["std"] == pytest.approx(float(np.sqrt(np.mean(sig**2))), rel=1e-12)
    # Layers with nonzero means: constants 1, 2, 3 -> mean 2, var mean(1, 4, 9) - 4.
    consts = jaxinit.per_layer(lambda i: jaxinit.constant(float(i + 1)))
    stats = consts.stats((3, 4), np.dtype(np.float32))
    assert stats["mean"] == pytest.approx(2.0, rel=1e-12)
    assert stats["std"] == pytest.approx(math.sqrt(14 / 3 - 4), rel=1e-12)
    assert stats["bounds"] == (1.0, 3.0)
    # A layer of unknown law makes the leaf's law unknown.
    unknown = jaxinit.per_layer(lambda i: jax.nn.initializers.normal(0.1))
    assert unknown.stats((2, 4, 4), np.dtype(np.float32))["std"] is None


def _olmo_tree(stacked: bool) -> dict:
    """OLMo's own module names (blocks' att_proj, attn_out, ff_proj, ff_out; wte; the
    final, untied ff_out), unrolled ``blocks_i`` or stacked ``blocks`` (L, ...)."""
    shapes = {"att_proj": (D, D), "attn_out": (D, D), "ff_proj": (D, H), "ff_out": (H, D)}
    if stacked:
        blocks = {"blocks": {n: {"kernel": jnp.zeros((L, *s))} for n, s in shapes.items()}}
    else:
        blocks = {f"blocks_{i}": {n: {"kernel": jnp.zeros(s)} for n, s in shapes.items()}
                  for i in range(L)}
    return {"transformer": {"wte": {"embedding": jnp.zeros((V, D))}, **blocks,
                            "ff_out": {"kernel": jnp.zeros((D, V))}}}


@pytest.mark.parametrize("recipe", ["olmo", "olmo_full_megatron"])
def test_olmo_module_names_unrolled_and_stacked(recipe):
    """With OLMo's names and the default patterns, a block's attn_out/ff_out get the
    residual law, the final ff_out the head's (d_model^-1/2), not a residual law, and
    the stacked ff_out (which matches ``head``) the residual law of its slice. Moments
    within 5 s.e. (36 checks: false failure < 2.1e-5); cutoff=2.5 is a non-default."""
    kw = {} if recipe == "olmo" else {"cutoff": 2.5}
    cut = 3.0 if recipe == "olmo" else 2.5

    def law(name: str, layer: int) -> float:
        fan_in = H if name == "ff_out" else D
        if recipe == "olmo":   # mitchell: 1/sqrt(d), outputs 1/sqrt(2 d (l + 1))
            out = name in ("attn_out", "ff_out")
            return 1 / math.sqrt(fan_in * (2 * (layer + 1) if out else 1))
        return 0.02 / math.sqrt(2 * L) if name in ("attn_out", "ff_out") else 0.02

    for stacked in (False, True):
        extra = {"stacked": r"transformer/blocks/.*"} if stacked else {}
        tree = _olmo_tree(stacked)
        out = _draw(recipe, tree, **kw, **extra)["transformer"]
        for name in ("att_proj", "attn_out", "ff_proj", "ff_out"):
            for i in range(L):
                w = out["blocks"][name]["kernel"][i] if stacked else \
                    out[f"blocks_{i}"][name]["kernel"]
                statcheck.assert_moments(np.asarray(w, np.float64), _dist(law(name, i), cut))
        statcheck.assert_moments(np.asarray(out["ff_out"]["kernel"], np.float64),
                                 _dist(D**-0.5, cut))
        emb = D**-0.5 if recipe == "olmo" else 0.02
        statcheck.assert_moments(np.asarray(out["wte"]["embedding"], np.float64),
                                 _dist(emb, cut))


def test_torchtitan_without_depth_init_and_n_layers():
    """depth_init=False: wo/w2/w3 (o_proj, down_proj, up_proj) 0.02/sqrt(2 L) for every
    block, L = n_layers when given (5 here, not the tree's 3); torchtitan_init(n_layers=)
    alone likewise. Moments within 5 s.e. (16 checks: false failure < 1e-5)."""
    for n_layers, L_ in ((None, L), (5, 5)):
        kw = {} if n_layers is None else {"n_layers": n_layers}
        out = _draw("torchtitan", _unrolled(), depth_init=False, std=0.03, **kw)
        for kernel in ("self_attn/o_proj", "mlp/up_proj", "self_attn/q_proj"):
            mod, leaf = kernel.split("/")
            std = 0.03 if kernel == "self_attn/q_proj" else 0.03 / math.sqrt(2 * L_)
            for i in (0, 2):
                w = np.asarray(out["layers"][str(i)][mod][leaf]["kernel"], np.float64)
                statcheck.assert_moments(w, _dist(std, 2 / std))
    init = jaxinit.torchtitan_init(n_layers=4, std=0.05)
    w = np.asarray(init(jax.random.key(2), (128, 128)), np.float64)
    std = 0.05 / math.sqrt(8)
    statcheck.assert_moments(w, _dist(std, 2 / std))
    with pytest.raises(ValueError, match="torchtitan_init: n_layers=0 must be >= 1"):
        jaxinit.torchtitan_init(n_layers=0)
    with pytest.raises(TypeError, match=r"torchtitan_init: layer=1\.0 must be an int"):
        jaxinit.torchtitan_init(1.0)
