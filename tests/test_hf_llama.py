"""Parity: a tiny random transformers Llama, saved as a sharded HF directory, loaded into a
reference Flax nnx Llama through ``jaxinit.hf.rules("llama")``, gives the same logits."""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require

require("torch")  # skipped locally when absent, a failure under CI
require("transformers")
import torch  # noqa: E402
import transformers  # noqa: E402
from flax import nnx  # noqa: E402

import jaxinit  # noqa: E402
from tests.hf_models import LlamaForCausalLM  # noqa: E402

CONFIG = dict(vocab=64, hidden=32, layers=2, heads=4, kv_heads=2, inter=64, eps=1e-5,
              theta=10000.0)
TOKENS = np.array([[1, 5, 9, 63, 0, 17, 42, 8], [3, 3, 7, 11, 60, 2, 31, 19]])
BF16_TORCH_ERR: dict[str, float] = {}


def _hf_dir(tmp_path_factory, name: str, *, tied: bool, bias: bool):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=CONFIG["vocab"], hidden_size=CONFIG["hidden"],
        num_hidden_layers=CONFIG["layers"], num_attention_heads=CONFIG["heads"],
        num_key_value_heads=CONFIG["kv_heads"], intermediate_size=CONFIG["inter"],
        rms_norm_eps=CONFIG["eps"], tie_word_embeddings=tied, attention_bias=bias,
        max_position_embeddings=64, initializer_range=0.2, dtype="float32")
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # norms start at 1 and biases at 0: make every weight matter
        for n, p in model.named_parameters():
            if n.endswith("norm.weight") or n.endswith(".bias"):
                p.copy_(1 + 0.5 * torch.randn_like(p) if "norm" in n else torch.randn_like(p))
    path = tmp_path_factory.mktemp(name)
    model.save_pretrained(path, max_shard_size="20KB")
    with torch.no_grad():
        logits = model(torch.tensor(TOKENS)).logits.numpy()
        bf16 = model.to(torch.bfloat16)(torch.tensor(TOKENS)).logits.float().numpy()
    BF16_TORCH_ERR[name] = float(np.abs(bf16 - logits).max())  # transformers' own, for scale
    return path, logits


@pytest.fixture(scope="module")
def untied(tmp_path_factory):
    return _hf_dir(tmp_path_factory, "llama", tied=False, bias=False)


@pytest.fixture(scope="module")
def tied_bias(tmp_path_factory):
    return _hf_dir(tmp_path_factory, "llama_tied", tied=True, bias=True)


@nnx.jit
def _logits(model: LlamaForCausalLM, tokens: jax.Array) -> jax.Array:
    return model(tokens)


def _load(path, *, tied: bool, bias: bool):
    model = LlamaForCausalLM(dict(CONFIG, bias=bias), tied=tied, rngs=nnx.Rngs(1))
    model, report = jaxinit.load_pretrained(model, path, rules=jaxinit.hf.rules("llama", model),
                                            on_missing="error", on_unexpected="error")
    return model, report


def test_sharded_directory_is_real(untied):
    path, _ = untied
    index = json.loads((path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 3


def test_llama_logits_match_transformers(untied):
    path, expected = untied
    model, report = _load(path, tied=False, bias=False)
    assert not report.missing and not report.unexpected and not report.mismatched
    assert len(report.loaded) == 3 + 9 * CONFIG["layers"]
    got = np.asarray(_logits(model, jnp.asarray(TOKENS)))
    # Measured max abs diff: 6.6e-6 on logits up to 4.4 in magnitude, float32.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_tied_embeddings_and_qkv_bias_match_transformers(tied_bias):
    path, expected = tied_bias
    model, report = _load(path, tied=True, bias=True)
    assert not report.missing and not report.mismatched
    assert "model/layers/1/self_attn/k_proj/bias" in report.loaded
    got = np.asarray(_logits(model, jnp.asarray(TOKENS)))
    # Measured max abs diff: 1.3e-6 on logits up to 2.9 in magnitude, float32.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_bfloat16_logits_within_the_measured_bound(untied):
    """Loaded in bfloat16 (weights cast by load_pretrained, bfloat16 activations, float32
    norms, RoPE and softmax) against transformers' float32 logits."""
    path, expected = untied
    model = LlamaForCausalLM(dict(CONFIG, dtype=jnp.bfloat16), rngs=nnx.Rngs(1))
    model, report = jaxinit.load_pretrained(model, path, rules=jaxinit.hf.rules("llama", model),
                                            on_missing="error", on_unexpected="error")
    assert model.lm_head.kernel[...].dtype == jnp.bfloat16 and report.cast
    err = np.abs(np.asarray(_logits(model, jnp.asarray(TOKENS)), np.float32) - expected).max()
    # Measured: 0.095 (logits up to 4.4), transformers' own bfloat16 model 0.115 (ratio
    # 0.83); the bound is about twice the measurement.
    assert err <= 0.2
    assert err <= 1.5 * BF16_TORCH_ERR["llama"]


def test_wrong_transpose_is_caught(untied):
    """The parity check can fail: without the (out, in) -> (in, out) transpose the square
    q/o projections load with no shape error but the logits differ."""
    path, expected = untied
    model = LlamaForCausalLM(CONFIG, rngs=nnx.Rngs(1))
    wrong = [(r, t, None if "o_proj" in r else f) for r, t, f in jaxinit.hf.rules("llama")]
    model, _ = jaxinit.load_pretrained(model, path, rules=wrong, on_missing="error")
    assert np.max(np.abs(np.asarray(_logits(model, jnp.asarray(TOKENS))) - expected)) > 1e-2


def test_rules_follow_a_linen_target_and_overrides():
    shape = jax.ShapeDtypeStruct((2, 2), jnp.float32)
    target = {"params": {"backbone": {"layers_0": {"attn": {"q_proj": {"kernel": shape}}}}}}
    rules = jaxinit.hf.rules("llama", target, overrides={"model": "backbone", "self_attn": "attn"})
    key = "model.layers.0.self_attn.q_proj.weight"
    regex, template, _ = next(r for r in rules if re.fullmatch(r[0], key))
    match = re.fullmatch(regex, key)
    assert match and match.expand(template) == "params/backbone/layers_0/attn/q_proj/kernel"
    lm = next(r for r in rules if r[0] == r"lm_head\.weight")
    assert lm[1] is None  # no lm_head in the target: tied, the checkpoint's copy is dropped
    # A linen nn.scan target: one stacked leaf under params/, the layer number as slice.
    stacked = jax.ShapeDtypeStruct((2, 2, 2), jnp.float32)
    target = {"params": {"model": {"layers": {"self_attn": {"q_proj": {"kernel": stacked}}}}}}
    rules = jaxinit.hf.rules("llama", target)
    regex, template, _ = next(r for r in rules if re.fullmatch(r[0], key))
    match = re.fullmatch(regex, key)
    assert match and match.expand(template) == "params/model/layers/self_attn/q_proj/kernel[0]"


def test_bad_family_and_overrides():
    supported = "supported families: llama, gemma, mixtral, gpt2, bert, vit"
    # An argument, not a file: a ValueError (and not a PretrainedError).
    with pytest.raises(ValueError,
                       match=rf"jaxinit.hf.rules: family='t5' is not supported; {supported}"
                       ) as err:
        jaxinit.hf.rules("t5")
    assert not isinstance(err.value, jaxinit.PretrainedError)
    with pytest.raises(ValueError, match="overrides must map str -> str"):
        jaxinit.hf.rules("llama", overrides={"model": 3})


def test_parity_check_passes_on_the_loaded_model(untied):
    path, _ = untied
    model, _ = _load(path, tied=False, bias=False)
    report = jaxinit.hf.parity_check(path, lambda t: _logits(model, jnp.asarray(t)), TOKENS)
    assert report.passed and report.max_abs_diff <= 1e-4, str(report)
    assert report.kl.shape == TOKENS.shape and report.kl.max() < 1e-9
    assert report.top1.all()


def test_parity_check_fails_on_an_unloaded_model(untied):
    path, expected = untied
    model = LlamaForCausalLM(CONFIG, rngs=nnx.Rngs(7))  # random, never loaded
    got = np.asarray(_logits(model, jnp.asarray(TOKENS)))
    report = jaxinit.hf.parity_check(path, lambda t: got, TOKENS)
    assert not report.passed and "FAIL" in str(report)
    np.testing.assert_allclose(report.max_abs_diff, np.abs(got - expected).max(), rtol=1e-5)
    # KL oracle: torch.nn.functional.kl_div(log q, log p, log_target=True), summed over vocab.
    f = torch.nn.functional
    oracle = f.kl_div(f.log_softmax(torch.tensor(got, dtype=torch.float64), -1),
                      f.log_softmax(torch.tensor(expected, dtype=torch.float64), -1),
                      reduction="none", log_target=True).sum(-1).numpy()
    np.testing.assert_allclose(report.kl, oracle, rtol=1e-4, atol=1e-9)
    assert report.top1.mean() < 0.5


def test_parity_check_bad_input(untied, tmp_path):
    path, _ = untied
    no_config = r"parity_check: hf_dir=.* \(no config.json\)"
    with pytest.raises(jaxinit.PretrainedError, match=no_config):
        jaxinit.hf.parity_check(tmp_path, lambda t: t, TOKENS)
    with pytest.raises(ValueError, match=r"parity_check: inputs for task='causal-lm' must be "
                                         r"token ids \(B, T\), integer; got shape \(2, 3\)"):
        jaxinit.hf.parity_check(path, lambda t: t, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"parity_check: task='seq2seq' is not one of"):
        jaxinit.hf.parity_check(path, lambda t: t, TOKENS, task="seq2seq")
    with pytest.raises(ValueError, match=r"parity_check: forward returned logits of shape"):
        jaxinit.hf.parity_check(path, lambda t: np.zeros((2, 8, 3)), TOKENS)


def _scanned():
    return LlamaForCausalLM(CONFIG, scan=True, rngs=nnx.Rngs(1))


def test_scanned_llama_stacks_layers_and_matches_transformers(untied):
    path, expected = untied
    model = _scanned()
    rules = jaxinit.hf.rules("llama", model)
    model, report = jaxinit.load_pretrained(model, path, rules=rules, on_missing="error",
                                            on_unexpected="error")
    kernel = model.model.layers.self_attn.q_proj.kernel[...]
    assert kernel.shape == (CONFIG["layers"], CONFIG["hidden"], CONFIG["hidden"])
    assert report.loaded["model/layers/self_attn/q_proj/kernel"] == (
        "model.layers.0.self_attn.q_proj.weight, model.layers.1.self_attn.q_proj.weight")
    assert len(report.loaded) == 3 + 9  # one stacked leaf per layer parameter
    # Layer 1's slice is layer 1's weight, transposed (oracle: the file itself).
    w = jaxinit.open_weights(path)
    np.testing.assert_array_equal(kernel[1], w["model.layers.1.self_attn.q_proj.weight"].T)
    got = np.asarray(_logits(model, jnp.asarray(TOKENS)))
    # Measured max abs diff: 4.1e-6 on logits up to 4.4 in magnitude, float32.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_scanned_stacking_errors(untied):
    """Every failure (a missing slice, an index out of range, two keys on one slice)
    leaves the whole target as it was: no leaf written."""
    path, _ = untied
    w = jaxinit.open_weights(path)
    state = {k: w[k] for k in w}
    rules = jaxinit.hf.rules("llama", _scanned())

    def snapshot(model) -> dict:
        return {k: np.array(v.get_value()) for k, v in nnx.to_flat_state(nnx.state(model))}

    def unchanged(model, before) -> None:
        after = snapshot(model)
        assert after.keys() == before.keys()
        for k, v in before.items():
            np.testing.assert_array_equal(after[k], v, err_msg=str(k))

    missing = {k: v for k, v in state.items() if k != "model.layers.1.mlp.up_proj.weight"}
    model = _scanned()
    before = snapshot(model)
    with pytest.raises(jaxinit.PretrainedError,
                       match=r"key 'model.layers.1.mlp.up_proj.weight' is missing: target "
                             r"'model/layers/mlp/up_proj/kernel' of shape \(2, 32, 64\)"):
        jaxinit.load_pretrained(model, missing, rules=rules)
    unchanged(model, before)

    extra = dict(state, **{"model.layers.2.mlp.up_proj.weight": state[
        "model.layers.0.mlp.up_proj.weight"]})
    model = _scanned()
    before = snapshot(model)
    with pytest.raises(jaxinit.PretrainedError, match=r"'model.layers.2.mlp.up_proj.weight' -> "
                       r"model/layers/mlp/up_proj/kernel\[2\]: index out of range"):
        jaxinit.load_pretrained(model, extra, rules=rules)
    unchanged(model, before)

    two = [(r"model\.layers\.(\d+)\.mlp\.gate_proj\.weight",
            r"model/layers/mlp/up_proj/kernel[\1]", jaxinit.layout.linear), *rules]
    model = _scanned()
    before = snapshot(model)
    with pytest.raises(jaxinit.PretrainedError, match=r"keys 'model.layers.0.mlp.(up|gate)_proj"
                       r".weight' and 'model.layers.0.mlp.(up|gate)_proj.weight' both map to "
                       r"target 'model/layers/mlp/up_proj/kernel\[0\]'"):
        jaxinit.load_pretrained(model, state, rules=two)
    unchanged(model, before)


def test_interleaved_rope_reference_matches_after_conversion(untied):
    """A reference whose RoPE pairs features (2i, 2i+1) gives transformers' logits once the
    q/k rows are permuted; loaded without the permutation it does not."""
    path, expected = untied
    c = dict(CONFIG, rope="interleaved")
    head_dim = CONFIG["hidden"] // CONFIG["heads"]
    rules = jaxinit.hf.with_interleaved_rope(jaxinit.hf.rules("llama"), head_dim)
    model, _ = jaxinit.load_pretrained(LlamaForCausalLM(c, rngs=nnx.Rngs(1)), path,
                                       rules=rules, on_missing="error", on_unexpected="error")
    got = np.asarray(_logits(model, jnp.asarray(TOKENS)))
    # Measured max abs diff: 4.2e-6, float32.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    plain, _ = jaxinit.load_pretrained(LlamaForCausalLM(c, rngs=nnx.Rngs(1)), path,
                                       rules=jaxinit.hf.rules("llama"), on_missing="error")
    assert np.abs(np.asarray(_logits(plain, jnp.asarray(TOKENS))) - expected).max() > 1e-2
    # The converter itself, against an independently written permutation (D = 8).
    w = jaxinit.open_weights(path)["model.layers.0.self_attn.k_proj.weight"]  # (2 * 8, 32)
    order = [0, 4, 1, 5, 2, 6, 3, 7]
    np.testing.assert_array_equal(jaxinit.hf.rope_interleaved(8)(w),
                                  w[order + [8 + i for i in order]])
    np.testing.assert_array_equal(
        jaxinit.hf.rope_interleaved(8, inverse=True)(jaxinit.hf.rope_interleaved(8)(w)), w)


def test_rope_interleaved_bad_input():
    with pytest.raises(ValueError, match=r"rope_interleaved: head_dim=7; expected "
                       "a positive even int"):
        jaxinit.hf.rope_interleaved(7)
    for bad in (0, -2):
        with pytest.raises(ValueError, match=rf"rope_interleaved: head_dim={bad} must be >= 2"):
            jaxinit.hf.rope_interleaved(bad)
    for bad in (2.0, True):
        with pytest.raises(TypeError, match=rf"rope_interleaved: head_dim={bad!r} must be an int"):
            jaxinit.hf.rope_interleaved(bad)
    with pytest.raises(ValueError, match=r"leading axis of shape \(12, 3\) is not a multiple "
                       "of head_dim=8"):
        jaxinit.hf.rope_interleaved(8)(np.zeros((12, 3)))
