"""Parity: a tiny random transformers GPT-2 (Conv1D weights, fused c_attn), saved as a
sharded HF directory, loaded into a reference nnx GPT-2 through ``jaxinit.hf.rules("gpt2")``."""

from __future__ import annotations

import json

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
from jaxinit._src.pretrained.hf_rules import split_qkv  # noqa: E402
from tests.hf_models import GPT2LMHeadModel, cast_params  # noqa: E402

CONFIG = dict(vocab=64, positions=16, hidden=32, layers=2, heads=4, eps=1e-5)
TOKENS = np.array([[1, 5, 9, 63, 0, 17, 42, 8], [3, 3, 7, 11, 60, 2, 31, 19]])


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=CONFIG["vocab"], n_positions=CONFIG["positions"], n_embd=CONFIG["hidden"],
        n_layer=CONFIG["layers"], n_head=CONFIG["heads"], layer_norm_epsilon=CONFIG["eps"],
        initializer_range=0.2, bos_token_id=0, eos_token_id=0, dtype="float32")
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # LayerNorms start at (1, 0) and biases at 0: make every weight matter
        for n, p in model.named_parameters():
            if p.ndim == 1:
                p.copy_(1 + 0.5 * torch.randn_like(p) if n.endswith("ln_1.weight") or
                        n.endswith("ln_2.weight") or n.endswith("ln_f.weight")
                        else 0.5 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(path, max_shard_size="20KB")
    with torch.no_grad():
        logits = model(torch.tensor(TOKENS)).logits.numpy()
        bf16 = model.to(torch.bfloat16)(torch.tensor(TOKENS)).logits.float().numpy()
    return path, logits, float(np.abs(bf16 - logits).max())  # transformers' own bf16 error


@nnx.jit
def _logits(model: GPT2LMHeadModel, tokens: jax.Array) -> jax.Array:
    return model(tokens)


def test_gpt2_logits_match_transformers(gpt2_dir):
    path, expected, _ = gpt2_dir
    index = json.loads((path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 3
    model = GPT2LMHeadModel(CONFIG, rngs=nnx.Rngs(1))
    model, report = jaxinit.load_pretrained(model, path, rules=jaxinit.hf.rules("gpt2", model),
                                            on_missing="error", on_unexpected="error")
    assert not report.missing and not report.mismatched
    fused = "transformer.h.1.attn.c_attn.weight"
    assert report.loaded["transformer/h/1/attn/v_proj/kernel"] == fused
    got = np.asarray(_logits(model, jnp.asarray(TOKENS)))
    # Measured max abs diff: 1.4e-6 on logits up to 4.5 in magnitude, float32.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    report = jaxinit.hf.parity_check(path, lambda t: _logits(model, jnp.asarray(t)), TOKENS)
    assert report.passed and report.top1.all(), str(report)


def test_bfloat16_logits_within_the_measured_bound(gpt2_dir):
    """Loaded in bfloat16 (weights cast by load_pretrained, bfloat16 activations, float32
    LayerNorm statistics and softmax) against transformers' float32 logits."""
    path, expected, torch_err = gpt2_dir
    model = cast_params(GPT2LMHeadModel(CONFIG, rngs=nnx.Rngs(1)), jnp.bfloat16)
    model, report = jaxinit.load_pretrained(model, path, rules=jaxinit.hf.rules("gpt2", model),
                                            on_missing="error", on_unexpected="error")
    assert model.transformer.wte.embedding[...].dtype == jnp.bfloat16 and report.cast
    err = np.abs(np.asarray(_logits(model, jnp.asarray(TOKENS)), np.float32) - expected).max()
    # Measured: 0.038 (logits up to 4.5), transformers' own bfloat16 model 0.044 (ratio
    # 0.85); the bound is about twice the measurement.
    assert err <= 0.08
    assert err <= 1.5 * torch_err


def test_split_qkv_order_matters(gpt2_dir):
    """The parity test can fail: q and k swapped in the split load with the right shapes
    but give other logits."""
    path, expected, _ = gpt2_dir
    class Swapped(split_qkv):
        def __call__(self, x):
            out = super().__call__(x)
            leaf = self.leaf
            return {**out, f"q_proj/{leaf}": out[f"k_proj/{leaf}"],
                    f"k_proj/{leaf}": out[f"q_proj/{leaf}"]}

    rules = [(r, t, Swapped(f.leaf) if isinstance(f, split_qkv) else f)
             for r, t, f in jaxinit.hf.rules("gpt2")]
    model = GPT2LMHeadModel(CONFIG, rngs=nnx.Rngs(1))
    model, _ = jaxinit.load_pretrained(model, path, rules=rules, on_missing="error")
    assert np.abs(np.asarray(_logits(model, jnp.asarray(TOKENS))) - expected).max() > 1e-2


def test_scanned_gpt2_tree_takes_the_split_and_stacked_weights(gpt2_dir):
    """A plain tree with scanned blocks (``transformer/h/attn/q_proj/kernel`` of shape
    (layers, E, E)) gets, slice by slice, what the per-layer model (checked for logit
    parity above) gets: the fused c_attn split into thirds, then stacked."""
    path, _, _ = gpt2_dir
    per_layer = GPT2LMHeadModel(CONFIG, rngs=nnx.Rngs(1))
    per_layer, _ = jaxinit.load_pretrained(per_layer, path,
                                           rules=jaxinit.hf.rules("gpt2", per_layer))
    flat = {"/".join(map(str, p)): np.asarray(v.get_value())
            for p, v in nnx.to_flat_state(nnx.state(per_layer, nnx.Param))}
    stacked: dict[str, list] = {}
    for p, v in flat.items():
        parts = p.split("/")
        if parts[1] == "h":  # transformer/h/N/rest -> transformer/h/rest, layer N at N
            stacked.setdefault("/".join(parts[:2] + parts[3:]), []).append((int(parts[2]), v))
        else:
            stacked[p] = [(None, v)]
    want = {p: v[0][1] if v[0][0] is None else np.stack([a for _, a in sorted(v)])
            for p, v in stacked.items()}
    tree: dict = {}
    for p, v in want.items():
        node = tree
        *heads, leaf = p.split("/")
        for h in heads:
            node = node.setdefault(h, {})
        node[leaf] = np.zeros_like(v)
    out, report = jaxinit.load_pretrained(tree, path, rules=jaxinit.hf.rules("gpt2", tree),
                                          on_missing="error", on_unexpected="error")
    assert out["transformer"]["h"]["attn"]["k_proj"]["kernel"].shape == (2, 32, 32)
    assert report.loaded["transformer/h/attn/v_proj/bias"] == (
        "transformer.h.0.attn.c_attn.bias, transformer.h.1.attn.c_attn.bias")
    for p, v in want.items():
        node = out
        for h in p.split("/"):
            node = node[h]
        np.testing.assert_array_equal(np.asarray(node), v, err_msg=p)
