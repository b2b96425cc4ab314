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


def test_bad_family_and_overrides():
    with pytest.raises(ValueError, match=r"jaxinit.hf.rules: family='bert'"):
        jaxinit.hf.rules("bert")
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
    with pytest.raises(ValueError, match=r"parity_check: tokens must be a 2-D integer"):
        jaxinit.hf.parity_check(path, lambda t: t, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"parity_check: forward returned logits of shape"):
        jaxinit.hf.parity_check(path, lambda t: np.zeros((2, 8, 3)), TOKENS)
