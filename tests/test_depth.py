"""Depth rules: constants against the papers' formulas, zero-initialized branches of real
Flax modules output exactly zero, recipes produce the documented rule sets."""

import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit

# --- Constants -----------------------------------------------------------------------------


def test_deepnorm_encoder_only_n12():
    c = jaxinit.deepnorm_constants(encoder_layers=12)["encoder"]
    assert round(c.alpha, 4) == 2.2134 and round(c.beta, 4) == 0.3195
    assert math.isclose(c.alpha, (2 * 12) ** 0.25) and math.isclose(c.beta, (8 * 12) ** -0.25)


def test_deepnorm_decoder_only_and_encoder_decoder():
    d = jaxinit.deepnorm_constants(decoder_layers=18)["decoder"]
    assert math.isclose(d.alpha, 36**0.25) and math.isclose(d.beta, 144**-0.25)
    both = jaxinit.deepnorm_constants(encoder_layers=6, decoder_layers=6)
    assert math.isclose(both["encoder"].alpha, 0.81 * (6**4 * 6) ** (1 / 16))
    assert math.isclose(both["encoder"].beta, 0.87 * (6**4 * 6) ** (-1 / 16))
    assert math.isclose(both["decoder"].alpha, 18**0.25)
    assert math.isclose(both["decoder"].beta, 72**-0.25)
    with pytest.raises(ValueError, match="encoder_layers"):
        jaxinit.deepnorm_constants()
    init = jaxinit.deepnorm_init(d.beta)
    assert math.isclose(jaxinit.describe(init, (256, 1024)).std, d.beta * math.sqrt(2 / 1280))


def test_residual_and_neox_constants():
    assert math.isclose(jaxinit.residual_normal(12).stddev, 0.02 / math.sqrt(24))
    assert math.isclose(jaxinit.residual_normal(24, 0.01, branches_per_layer=1).stddev,
                        0.01 / math.sqrt(24))
    assert math.isclose(jaxinit.small_init(768).stddev, math.sqrt(2 / (5 * 768)))
    assert math.isclose(jaxinit.wang_init(768, 12).stddev, 2 / (12 * math.sqrt(768)))
    with pytest.raises(ValueError, match="n_layers"):
        jaxinit.residual_normal(0)
    with pytest.raises(TypeError, match="d_model"):
        jaxinit.small_init(7.5)


def test_olmo_init_std_and_bounds():
    d = jaxinit.describe(jaxinit.olmo_init(layer=0), (512, 512))
    sigma = 1 / math.sqrt(2 * 512)
    assert math.isclose(d.bounds[1], 3 * sigma)
    w = jaxinit.olmo_init()(jax.random.key(0), (1024, 256))
    assert float(jnp.abs(w).max()) <= 3 / math.sqrt(1024)
    # std of N(0,1) truncated at +-3 is 0.98658; n = 262144, 5 s.e. of the sample std.
    assert abs(float(w.std()) * 32 / 0.98658 - 1) < 5 / math.sqrt(2 * w.size)
    assert math.isclose(jaxinit.describe(jaxinit.olmo_init(d=64), (50, 64)).bounds[1], 3 / 8)


def test_fixup_and_t_fixup_constants():
    assert math.isclose(jaxinit.fixup_scale(8, 2), 8**-0.5)
    assert math.isclose(jaxinit.fixup_scale(8, 3), 8**-0.25)
    assert math.isclose(jaxinit.fixup_init(8, 3).scale, 2 * 8**-0.5)
    with pytest.raises(ValueError, match="layers_per_branch"):
        jaxinit.fixup_scale(8, 1)
    assert math.isclose(jaxinit.t_fixup_scale(6, "encoder"), 0.67 * 6**-0.25)
    assert math.isclose(jaxinit.t_fixup_scale(6, "decoder"), (9 * 6) ** -0.25)
    with pytest.raises(ValueError, match="part"):
        jaxinit.t_fixup_scale(6, "middle")


# --- Zero-initialized branches output exactly zero ----------------------------------------


class BasicBlock(nn.Module):
    """ResNet basic block with BatchNorm (zero-gamma) or none (Fixup/SkipInit)."""

    features: int
    norm: bool = True
    gate: bool = False

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(self.features, (3, 3), use_bias=not self.norm)(x)
        if self.norm:
            y = nn.BatchNorm(use_running_average=True)(y)
        y = nn.relu(y)
        y = nn.Conv(self.features, (3, 3), use_bias=not self.norm)(y)
        if self.norm:
            y = nn.BatchNorm(use_running_average=True)(y)
        if self.gate:
            y = y * self.param("skipinit_alpha", nn.initializers.ones, ())
        return y


def _reinit_by_rules(params, rules, key):
    return jaxinit.reinit(params, key, rules)


def test_zero_gamma_branch_outputs_zero():
    block = BasicBlock(8)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 8))
    params = block.init(jax.random.key(1), x)
    assert float(jnp.abs(block.apply(params, x)).max()) > 0
    rules = jaxinit.zero_init_rules(r"params/BatchNorm_1/scale")
    params = _reinit_by_rules(params, rules, jax.random.key(2))
    assert np.all(np.asarray(block.apply(params, x)) == 0)


def test_skipinit_and_fixup_branches_output_zero():
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 8))
    skip = BasicBlock(8, norm=False, gate=True)
    params = skip.init(jax.random.key(1), x)
    params = _reinit_by_rules(params, jaxinit.zero_init_rules(r".*/skipinit_alpha"),
                              jax.random.key(2))
    assert np.all(np.asarray(skip.apply(params, x)) == 0)

    fixup = BasicBlock(8, norm=False)
    params = fixup.init(jax.random.key(1), x)
    rules = jaxinit.recipe("fixup", params, n_layers=4)
    assert [p for p, _ in rules][:1] == [r".*/(Conv_1|conv2|Dense_1)/kernel"]
    params = _reinit_by_rules(params, rules, jax.random.key(2))
    assert np.all(np.asarray(fixup.apply(params, x)) == 0)
    assert float(jnp.abs(params["params"]["Conv_0"]["kernel"]).max()) > 0


class ReZeroLayer(nnx.Module):
    """x + alpha * MLP(x), alpha a learned scalar (ReZero)."""

    def __init__(self, d, rngs):
        self.fc1 = nnx.Linear(d, 4 * d, rngs=rngs)
        self.fc2 = nnx.Linear(4 * d, d, rngs=rngs)
        self.rezero_alpha = nnx.Param(jnp.ones(()))

    def __call__(self, x):
        return x + self.rezero_alpha * self.fc2(nnx.relu(self.fc1(x)))


def test_rezero_layer_is_identity_at_init():
    layer = ReZeroLayer(16, nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (4, 16))
    assert float(jnp.abs(layer(x) - x).max()) > 0
    jaxinit.reinit(layer, jax.random.key(1), jaxinit.zero_init_rules(r"(.*/)?rezero_alpha"))
    np.testing.assert_array_equal(layer(x), x)


def test_zero_init_rules_errors():
    with pytest.raises(ValueError, match="patterns"):
        jaxinit.zero_init_rules()
    with pytest.raises(ValueError, match="not a regex"):
        jaxinit.zero_init_rules("(")


# --- Recipes ---------------------------------------------------------------------------


class TinyGPT(nn.Module):
    n_layers: int = 3
    d: int = 32

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(100, self.d)(tokens)
        for i in range(self.n_layers):
            x = Block(self.d, name=f"Block_{i}")(x)
        return nn.Dense(100, name="head")(x)


class Block(nn.Module):
    d: int

    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=4)(h, h)
        h = nn.LayerNorm()(x)
        return x + nn.Dense(self.d, name="fc2")(nn.gelu(nn.Dense(4 * self.d, name="fc1")(h)))


def _params():
    return TinyGPT().init(jax.random.key(0), jnp.zeros((1, 4), jnp.int32))


def _first_match(rules, path):
    return next((init for p, init in rules if re.fullmatch(p, path)), None)


def test_gpt2_and_megatron_recipes():
    params = _params()
    for name in ("gpt2", "megatron"):
        rules = jaxinit.recipe(name, params)
        out = _first_match(rules, "params/Block_1/MultiHeadDotProductAttention_0/out/kernel")
        assert math.isclose(out.stddev, 0.02 / math.sqrt(6))
        assert math.isclose(_first_match(rules, "params/Block_0/fc2/kernel").stddev,
                            0.02 / math.sqrt(6))
        assert _first_match(rules, "params/Block_0/fc1/kernel").stddev == 0.02
        assert _first_match(rules, "params/Embed_0/embedding").stddev == 0.02
        assert _first_match(rules, "params/Block_0/fc1/bias") is jaxinit.zeros
    rules = jaxinit.recipe("megatron", params, std=0.006, n_layers=40)
    assert math.isclose(_first_match(rules, "params/Block_0/fc2/kernel").stddev,
                        0.006 / math.sqrt(80))


def test_olmo_recipe_depth_scaled_outputs():
    rules = jaxinit.recipe("olmo", _params())
    out2 = _first_match(rules, "params/Block_2/fc2/kernel")
    assert out2 == jaxinit.olmo_init(2)
    assert math.isclose(out2.std((128, 32)), 1 / math.sqrt(2 * 128 * 3))
    assert _first_match(rules, "params/Embed_0/embedding") == jaxinit.olmo_init(d=32)
    assert _first_match(rules, "params/Block_0/fc1/kernel") == jaxinit.olmo_init()


def test_deepnorm_recipe_gains():
    rules = jaxinit.recipe("deepnorm", _params())
    beta = jaxinit.deepnorm_constants(decoder_layers=3)["decoder"].beta
    value = "params/Block_0/MultiHeadDotProductAttention_0/value/kernel"
    assert _first_match(rules, value) == jaxinit.deepnorm_init(beta)
    query = "params/Block_0/MultiHeadDotProductAttention_0/query/kernel"
    assert _first_match(rules, query) == jaxinit.deepnorm_init(1.0)
    enc = jaxinit.recipe("deepnorm", _params(), encoder_layers=12)
    assert _first_match(enc, "params/Block_0/fc1/kernel").scale == pytest.approx(0.3195**2, 1e-3)


def test_mup_recipe_and_errors():
    params = _params()
    rules = jaxinit.recipe("mup", params, base={32: 8, 128: 32})
    assert rules == jaxinit.mup_rules(params, {32: 8, 128: 32})
    # The recipe must pass `base` through: drawn through reinit, a hidden kernel has
    # Var = 1/fan_in and the output head Var = base_fan_in / fan_in^2 (Tensor Programs V,
    # Table 3) = 8 / 32^2. Sample std within 5 s.e. (sqrt(1 / (2n)) relative; false-failure
    # probability < 1e-6 per check). A recipe that ignored `base` fails the head check
    # (shown once: Var 32 / 32^2, twice the std).
    new = jaxinit.reinit(params, jax.random.key(3), rules)
    for leaf, var in ((new["params"]["Block_1"]["fc1"]["kernel"], 1 / 32),
                      (new["params"]["head"]["kernel"], 8 / 32**2)):
        w = np.asarray(leaf, np.float64)
        assert abs(w.std() / math.sqrt(var) - 1) < 5 / math.sqrt(2 * w.size), w.shape
    with pytest.raises(ValueError, match="name='gpt9'"):
        jaxinit.recipe("gpt9", params)
    with pytest.raises(TypeError, match="base="):
        jaxinit.recipe("mup", params)
    with pytest.raises(TypeError, match="recipe\\('gpt2'\\): unexpected keyword 'n_layer'"):
        jaxinit.recipe("gpt2", params, n_layer=3)


def test_recipes_through_reinit_and_torch_default():
    params = _params()
    new = jaxinit.reinit(params, jax.random.key(1), jaxinit.recipe("gpt2", params))
    w = new["params"]["Block_2"]["fc2"]["kernel"]
    # 128 * 32 normal samples: the sample std within 5 s.e. of 0.02 / sqrt(6).
    assert abs(float(w.std()) / (0.02 / math.sqrt(6)) - 1) < 5 / math.sqrt(2 * w.size)
    torch_rules = jaxinit.recipe("torch_default", params)
    assert torch_rules == tuple(jaxinit.torch.default_rules())
    jaxinit.reinit(params, jax.random.key(1), torch_rules, strict=False)


def test_t_fixup_embedding_with_scaled():
    init = jaxinit.scaled(jaxinit.normal(32**-0.5), jaxinit.t_fixup_scale(6, "decoder"))
    emb = nn.Embed(100, 32)
    params = emb.init(jax.random.key(0), jnp.zeros((1,), jnp.int32))
    params = jaxinit.reinit(params, jax.random.key(1), [(r".*/embedding", init)])
    assert math.isclose(jaxinit.describe(init, (100, 32)).std, 32**-0.5 * (54) ** -0.25)
    assert params["params"]["embedding"].shape == (100, 32)
