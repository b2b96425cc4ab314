"""The transformers-equal recipes give every parameter the law transformers gives it.

Each model is built offline by transformers from a tiny config (``_init_weights`` draws
its parameters, seeded); a Flax target of the same parameters, named as a Flax port of
the model names them (``a.b.weight`` -> ``a/b/kernel`` for ``nn.Linear``/``Conv``,
``embedding`` for ``nn.Embedding``, ``scale`` for norms; Linear weights transposed to
(in, out), Conv2d to (kh, kw, in, out)), is re-drawn with ``jaxinit.recipe(name, ...)``.
Then, parameter by parameter: a parameter that transformers sets to one constant (zero
biases, unit norms, T5's ``factor`` gains) must be that constant exactly, every other
one must pass a two-sample Kolmogorov-Smirnov test against transformers' draw.

KS: p > ALPHA = 1e-5 per parameter. 103 parameters of the five models are KS-tested (95
more are exact constants), so a correct recipe fails with probability < 103 * 1e-5 ~ 1e-3
for a random seed; the seeds are fixed, so the outcome is deterministic (smallest p-value
measured: 0.02). Hidden sizes 64-128 give 4096+ draws per kernel:
a std off by 25% gives p < 1e-10 there (``test_wrong_std_fails`` shows GPT-2 without
its c_proj scaling failing).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jaxinit  # noqa: E402
from jaxinit._src.compose.paths import float_leaves, path_str  # noqa: E402

ALPHA = 1e-5


def _configs() -> dict:
    t = transformers
    return {
        "gpt2": (lambda: t.GPT2LMHeadModel(t.GPT2Config(
            vocab_size=128, n_positions=64, n_embd=64, n_layer=3, n_head=4,
            initializer_range=0.03, bos_token_id=0, eos_token_id=0)), {"std": 0.03}),
        "llama": (lambda: t.LlamaForCausalLM(t.LlamaConfig(
            vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, pad_token_id=3, bos_token_id=0,
            eos_token_id=1)), {"padding_idx": 3}),
        "bert": (lambda: t.BertForPreTraining(t.BertConfig(
            vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, max_position_embeddings=64, initializer_range=0.05)),
            {"initializer_range": 0.05}),
        "vit": (lambda: t.ViTForImageClassification(t.ViTConfig(
            image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=128, num_labels=10,
            initializer_range=0.04)), {"initializer_range": 0.04}),
        "t5": (lambda: t.T5ForConditionalGeneration(t.T5Config(
            vocab_size=128, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
            feed_forward_proj="gated-gelu", tie_word_embeddings=False,
            initializer_factor=0.7, decoder_start_token_id=0)),
            {"initializer_factor": 0.7}),
    }


def _flax_params(model) -> dict[str, np.ndarray]:
    """transformers' parameters by Flax path, in Flax layout."""
    modules = dict(model.named_modules())
    out = {}
    for name, p in model.named_parameters():
        owner, leaf = name.rsplit(".", 1)
        module = modules[owner]
        w = p.detach().numpy().astype(np.float64)
        if leaf == "weight":
            kind = type(module).__name__
            if isinstance(module, torch.nn.Embedding):
                leaf = "embedding"
            elif isinstance(module, torch.nn.Linear):
                leaf, w = "kernel", w.T
            elif isinstance(module, torch.nn.Conv2d):
                leaf, w = "kernel", w.transpose(2, 3, 1, 0)
            elif kind == "Conv1D":  # GPT-2's, already (in, out)
                leaf = "kernel"
            elif "Norm" in kind:
                leaf = "scale"
            else:
                raise AssertionError(f"unmapped {name} ({kind})")
        out["/".join([*owner.split("."), leaf])] = w
    return out


def _nest(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for path, w in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = jnp.zeros(w.shape, jnp.float32)
    return tree


def _leaves(tree) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {path_str(p): np.asarray(v, np.float64) for p, v in flat}


@pytest.fixture(scope="module")
def hf_params() -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for name, (build, _) in _configs().items():
        torch.manual_seed(0)
        out[name] = _flax_params(build())
    return out


def _compare(theirs: np.ndarray, ours: np.ndarray, path: str) -> float | None:
    """None for an exactly equal constant, else the KS p-value (after exact padding rows)."""
    assert ours.shape == theirs.shape, path
    if np.all(theirs == theirs.flat[0]):
        np.testing.assert_array_equal(ours, theirs, err_msg=path)
        return None
    if theirs.ndim == 2:  # nn.Embedding's padding row: exactly zero in both, or in neither
        zero_rows = np.all(theirs == 0, axis=-1)
        np.testing.assert_array_equal(np.all(ours == 0, axis=-1), zero_rows, err_msg=path)
        theirs, ours = theirs[~zero_rows], ours[~zero_rows]
    return float(scipy.stats.ks_2samp(theirs.ravel(), ours.ravel()).pvalue)


def _draw(name: str, theirs: dict[str, np.ndarray], **config) -> dict[str, np.ndarray]:
    tree = _nest(theirs)
    rules = jaxinit.recipe(name, tree, **config)
    # Every parameter is covered by a rule of the recipe (reinit is strict about the rest).
    for path in theirs:
        assert any(re.fullmatch(p, path) for p, _ in rules), f"{name}: no rule for {path}"
    return _leaves(jaxinit.reinit(tree, jax.random.key(0), rules))


@pytest.mark.parametrize("name", ["gpt2", "llama", "bert", "vit", "t5"])
def test_recipe_matches_transformers_per_parameter(name, hf_params):
    theirs = hf_params[name]
    ours = _draw(name, theirs, **_configs()[name][1])
    assert set(ours) == set(theirs)
    pvalues = {p: _compare(theirs[p], ours[p], p) for p in theirs}
    failed = {p: v for p, v in pvalues.items() if v is not None and v <= ALPHA}
    assert not failed, f"{name}: KS p <= {ALPHA}: {failed}"
    tested = [v for v in pvalues.values() if v is not None]
    assert tested and len(tested) < len(pvalues)  # both kinds of check ran


def test_wrong_std_fails(hf_params):
    """The check can fail: GPT-2 without its 1/sqrt(2 L) c_proj scaling (a residual
    pattern that matches nothing) draws c_proj with std 0.03 instead of 0.03/sqrt(6)."""
    theirs = hf_params["gpt2"]
    ours = _draw("gpt2", theirs, std=0.03, residual=r"(?!)")
    for path in ("transformer/h/1/attn/c_proj/kernel", "transformer/h/2/mlp/c_proj/kernel"):
        assert _compare(theirs[path], ours[path], path) < 1e-20
    # And the right recipe passes on the same parameters.
    ours = _draw("gpt2", theirs, std=0.03)
    assert _compare(theirs[path], ours[path], path) > ALPHA


def test_missing_padding_row_fails(hf_params):
    """The padding-row check can fail: BERT's word embeddings without padding_idx."""
    path = "bert/embeddings/word_embeddings/embedding"
    theirs = {path: hf_params["bert"][path]}
    ours = _draw("bert", theirs, initializer_range=0.05)
    assert _compare(theirs[path], ours[path], path) > ALPHA
    ours = _draw("bert", theirs, initializer_range=0.05, padding_idx=None)
    with pytest.raises(AssertionError, match="word_embeddings"):
        _compare(theirs[path], ours[path], path)


def test_t5_per_module_stds_and_inferred_sizes(hf_params):
    """The T5 stds against the config's formula (float64), not only against the draw."""
    theirs = hf_params["t5"]
    rules = jaxinit.recipe("t5", _nest(theirs), initializer_factor=0.7)

    def std(path):
        return next(init for p, init in rules if re.fullmatch(p, path)).stddev

    c, d_model, d_kv, heads, d_ff = 0.7, 64, 16, 4, 128
    attn = "encoder/block/0/layer/0/SelfAttention"
    assert std(f"{attn}/q/kernel") == pytest.approx(c * (d_model * d_kv) ** -0.5, rel=1e-12)
    assert std(f"{attn}/k/kernel") == pytest.approx(c * d_model**-0.5, rel=1e-12)
    assert std(f"{attn}/o/kernel") == pytest.approx(c * (heads * d_kv) ** -0.5, rel=1e-12)
    assert std(f"{attn}/relative_attention_bias/embedding") == pytest.approx(
        c * d_model**-0.5, rel=1e-12)
    ff = "decoder/block/1/layer/2/DenseReluDense"
    assert std(f"{ff}/wi_1/kernel") == pytest.approx(c * d_model**-0.5, rel=1e-12)
    assert std(f"{ff}/wo/kernel") == pytest.approx(c * d_ff**-0.5, rel=1e-12)
    assert std("shared/embedding") == c
    # transformers 5 keeps lm_head tied to `shared` here; an untied head's rule: N(0, c^2).
    head = jaxinit.recipe("t5", {"lm_head": {"kernel": jnp.zeros((64, 128))}},
                          initializer_factor=c)
    assert head == ((r"(.*/)?lm_head/kernel", jaxinit.normal(c)),)
    with pytest.raises(ValueError, match=r"recipe\('t5'\).*num_heads="):
        jaxinit.recipe("t5", {"SelfAttention": {"q": {"kernel": jnp.zeros((64, 64))}}})


def test_padded_normal_dtypes_and_errors():
    init = jaxinit.recipes.PaddedNormal(0.5, padding_idx=-1)
    for dtype in (jnp.float32, jnp.bfloat16, jnp.float16):
        w = init(jax.random.key(1), (64, 128), dtype)
        assert w.dtype == dtype
        assert np.all(np.asarray(w[-1], np.float32) == 0)
        rest = np.asarray(w[:-1], np.float64).ravel()
        # 8064 N(0, 0.25) draws (rounded to the dtype): KS p > 1e-5 (false failure 1e-5).
        assert scipy.stats.kstest(rest, scipy.stats.norm(scale=0.5).cdf).pvalue > 1e-5
    with pytest.raises(ValueError, match="padded_normal: padding_idx=64"):
        jaxinit.recipes.PaddedNormal(0.5, padding_idx=64)(jax.random.key(0), (64, 8))
    with pytest.raises(TypeError, match=r"padded_normal: padding_idx=1\.0"):
        jaxinit.recipes.PaddedNormal(0.5, padding_idx=1.0)


@pytest.mark.parametrize("name", jaxinit.recipes.RECIPES)
def test_unknown_keyword_names_recipe_and_keyword(name):
    tree = {"h_0": {"c_proj": {"kernel": jnp.zeros((8, 8))}}}
    with pytest.raises(TypeError, match=rf"recipe\('{name}'\): unexpected keyword 'stdev'"):
        jaxinit.recipe(name, tree, stdev=0.02)


def test_gpt2_recipe_on_the_nnx_reference_model(hf_params):
    """On a real nnx GPT-2 (tests/hf_models.py, HF's names, c_attn split into q/k/v_proj)
    built with transformers' sizes (hidden 64, 3 blocks), reinit updates the module in place
    and every parameter gets transformers' law: q/k/v_proj KS-equal to c_attn, c_proj to
    c_proj (0.03/sqrt(6)), constants exact (KS p > 1e-5, 20 comparisons)."""
    from flax import nnx

    from tests.hf_models import GPT2LMHeadModel

    model = GPT2LMHeadModel(dict(vocab=128, positions=64, hidden=64, layers=3, heads=4,
                                 eps=1e-5), rngs=nnx.Rngs(0))
    jaxinit.reinit(model, jax.random.key(3), jaxinit.recipe("gpt2", model, std=0.03))
    theirs = hf_params["gpt2"]
    ours = float_leaves("test", "model", model)   # the paths reinit matches
    assert len(ours) == 52   # 16 per block, wte, wpe, ln_f
    for path, w in ours.items():
        w = np.asarray(w, np.float64)
        source = re.sub(r"attn/[qkv]_proj/(kernel|bias)", r"attn/c_attn/\1", path)
        ref = theirs[source]
        if source != path:   # one third of the fused (E, 3E) kernel or (3E,) bias
            ref = ref[..., : w.shape[-1]]
        p = _compare(ref, w, path)
        assert p is None or p > ALPHA, (path, p)


def test_t5_explicit_sizes_stacked_kernels_and_nested_block_index():
    """Sizes passed explicitly win over the tree's (float64 formula); a scan-stacked
    (L, in, out) tree is read on axis -2 (its input size, not L); T5's nested
    ``block/{i}/layer/{j}`` paths count the outer block index (gpt2 sees 3 blocks, not 2)."""
    c, d_model, d_kv, heads, d_ff = 0.5, 48, 8, 3, 96
    attn = {"q": {"kernel": jnp.zeros((64, 64))}, "k": {"kernel": jnp.zeros((64, 64))},
            "o": {"kernel": jnp.zeros((64, 64))}}
    tree = {"SelfAttention": attn,
            "DenseReluDense": {"wo": {"kernel": jnp.zeros((128, 64))}}}
    rules = jaxinit.recipe("t5", tree, initializer_factor=c, d_model=d_model, d_kv=d_kv,
                           num_heads=heads, d_ff=d_ff)
    std = {p.split("/")[-2].strip("()"): init.stddev for p, init in rules}
    assert std["k|v"] == pytest.approx(c * d_model**-0.5, rel=1e-12)
    assert std["q"] == pytest.approx(c * (d_model * d_kv) ** -0.5, rel=1e-12)
    assert std["o"] == pytest.approx(c * 64**-0.5, rel=1e-12)   # inner from the o kernel
    assert std["wo"] == pytest.approx(c * d_ff**-0.5, rel=1e-12)
    # Stacked: 6 layers of (64, 64) attention and a (6, 128, 64) wo; 4 heads.
    stacked = {"SelfAttention": {n: {"kernel": jnp.zeros((6, 64, 64))} for n in "qko"},
               "DenseReluDense": {"wo": {"kernel": jnp.zeros((6, 128, 64))}}}
    rules = jaxinit.recipe("t5", stacked, num_heads=4)
    std = {p.split("/")[-2].strip("()"): init.stddev for p, init in rules}
    assert std["k|v"] == pytest.approx(64**-0.5, rel=1e-12)
    assert std["q"] == pytest.approx((64 * 16) ** -0.5, rel=1e-12)
    assert std["wo"] == pytest.approx(128**-0.5, rel=1e-12)
    # Nested indices: 3 blocks of 2 layers each; residual wo of every block 0.02/sqrt(6).
    nested = {"encoder": {"block": {str(b): {"layer": {str(i): {
        "DenseReluDense": {"wo": {"kernel": jnp.zeros((16, 16))}}} for i in range(2)}}
        for b in range(3)}}}
    rules = jaxinit.recipe("gpt2", nested)
    assert rules[0][1].stddev == pytest.approx(0.02 / 6**0.5, rel=1e-12)


@pytest.mark.parametrize("arg, value, error, match", [
    ("d_model", 0, ValueError, "d_model=0 must be >= 1"),
    ("d_kv", 2.0, TypeError, r"d_kv=2\.0 must be an int"),
    ("num_heads", -1, ValueError, "num_heads=-1 must be >= 1"),
    ("d_ff", "8", TypeError, "d_ff='8' must be an int"),
])
def test_t5_size_errors(arg, value, error, match):
    tree = {"SelfAttention": {"q": {"kernel": jnp.zeros((8, 8))}}}
    with pytest.raises(error, match=rf"recipe\('t5'\): {match}"):
        jaxinit.recipe("t5", tree, **{arg: value})


@pytest.mark.parametrize("name, arg", [
    ("vit", "initializer_range"), ("llama", "initializer_range"),
    ("bert", "initializer_range"), ("gpt2", "std"), ("megatron", "std"),
    ("olmo_full_megatron", "std"), ("olmo_full_megatron", "cutoff"), ("torchtitan", "std"),
])
def test_std_and_cutoff_errors(name, arg):
    tree = {"layers_0": {"wo": {"kernel": jnp.zeros((8, 8))}}}
    for value in (0, -1.0):
        with pytest.raises(ValueError, match=rf"recipe\('{name}'\): {arg}={value} must be > 0"):
            jaxinit.recipe(name, tree, **{arg: value})
    with pytest.raises(TypeError, match=rf"recipe\('{name}'\): {arg}='x' must be a real"):
        jaxinit.recipe(name, tree, **{arg: "x"})
    with pytest.raises(ValueError, match=rf"recipe\('{name}'\): {arg}=nan must be finite"):
        jaxinit.recipe(name, tree, **{arg: float("nan")})
