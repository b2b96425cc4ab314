"""save_hf round trip: a tiny random transformers Llama -> its HF directory -> streamed into
the reference nnx Llama (abstract target) -> save_hf -> transformers' from_pretrained gives
the original logits, and every written tensor equals the original state dict bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flax import nnx  # noqa: E402

import jaxinit  # noqa: E402
from jaxinit._src.pretrained.hf_rules import split_qkv  # noqa: E402
from tests.hf_models import GPT2LMHeadModel, LlamaForCausalLM  # noqa: E402

CONFIG = dict(vocab=64, hidden=32, layers=2, heads=4, kv_heads=2, inter=64, eps=1e-5,
              theta=10000.0)
TOKENS = np.array([[1, 5, 9, 63, 0, 17, 42, 8], [3, 3, 7, 11, 60, 2, 31, 19]])


def _torch_llama(tied: bool):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=CONFIG["vocab"], hidden_size=CONFIG["hidden"],
        num_hidden_layers=CONFIG["layers"], num_attention_heads=CONFIG["heads"],
        num_key_value_heads=CONFIG["kv_heads"], intermediate_size=CONFIG["inter"],
        rms_norm_eps=CONFIG["eps"], tie_word_embeddings=tied, max_position_embeddings=64,
        initializer_range=0.2, dtype="float32")
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # norms start at 1: make them matter
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1 + 0.5 * torch.randn_like(p))
    return cfg, model


def _logits(model, tokens):
    with torch.no_grad():
        return model(torch.tensor(tokens)).logits.numpy()


def _assert_reloads_as(out, original):
    """transformers loads the exported directory as `original`: the same state dict bit
    for bit, so the same logits."""
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    expected_sd, got_sd = original.state_dict(), reloaded.state_dict()
    assert sorted(got_sd) == sorted(expected_sd)
    for k, v in expected_sd.items():
        assert torch.equal(got_sd[k], v), k
    diff = np.abs(_logits(reloaded, TOKENS) - _logits(original, TOKENS)).max()
    assert diff <= 1e-5, diff  # measured 0.0: the weights are bit-identical


@pytest.mark.parametrize(("tied", "scan"), [(False, False), (True, False), (False, True)],
                         ids=["untied", "tied", "scanned"])
def test_round_trip_through_transformers(tmp_path, tied, scan):
    cfg, original = _torch_llama(tied)
    original.save_pretrained(tmp_path / "hf", max_shard_size="20KB")
    abstract = nnx.eval_shape(lambda: LlamaForCausalLM(CONFIG, tied=tied, scan=scan,
                                                       rngs=nnx.Rngs(0)))
    rules = jaxinit.hf.rules("llama", abstract)
    model, report = jaxinit.stream_pretrained(abstract, tmp_path / "hf", rules=rules,
                                              on_unexpected="error")
    assert not report.missing and not report.full_reads
    if scan:  # one leaf per projection, the layers stacked on axis 0
        assert model.model.layers.mlp.up_proj.kernel[...].shape == (2, 32, 64)

    out = jaxinit.save_hf(model, tmp_path / "export", rules=rules,
                          config=json.loads(cfg.to_json_string()), max_shard_size="20KB")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 3
    assert json.loads((out / "config.json").read_text())["tie_word_embeddings"] is tied
    assert not list(tmp_path.glob(".export.partial-*"))  # the temporary directory is gone

    _assert_reloads_as(out, original)


def test_scanned_mixtral_experts_on_two_leading_axes_round_trip(tmp_path):
    """Scanned Mixtral: each expert weight is one (layers, experts, in, out) leaf; export
    writes every layer's every expert back under its own key."""
    torch.manual_seed(0)
    cfg = transformers.MixtralConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=64, num_local_experts=4,
        num_experts_per_tok=2, initializer_range=0.2, dtype="float32")
    original = transformers.MixtralForCausalLM(cfg).eval()
    original.save_pretrained(tmp_path / "hf", max_shard_size="40KB")
    c = dict(CONFIG, eps=cfg.rms_norm_eps, experts=4, top_k=2)
    model = LlamaForCausalLM(c, scan=True, rngs=nnx.Rngs(0))
    rules = jaxinit.hf.rules("mixtral", model)
    model, _ = jaxinit.load_pretrained(model, tmp_path / "hf", rules=rules, on_missing="error",
                                       on_unexpected="error")
    assert model.model.layers.block_sparse_moe.experts.w1[...].shape == (2, 4, 32, 64)
    out = jaxinit.save_hf(model, tmp_path / "export", rules=rules,
                          config=json.loads(cfg.to_json_string()), max_shard_size="40KB")
    _assert_reloads_as(out, original)


def test_a_parameter_with_no_hf_name_is_named_and_nothing_is_written(tmp_path):
    params = {"model": {"embed_tokens": {"embedding": np.ones((8, 4), np.float32)}},
              "lm_head": {"kernel": np.ones((4, 8), np.float32)}}
    rules = [r for r in jaxinit.hf.rules("llama") if "lm_head" not in r[0]]
    with pytest.raises(jaxinit.PretrainedError, match=r"save_hf: parameter 'lm_head/kernel' "
                                                     r"has no Hugging Face name"):
        jaxinit.save_hf(params, tmp_path / "out", rules=rules, config={"model_type": "llama"})
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path):
    params = {"fc": {"kernel": np.ones((3, 2), np.float32)}}
    rules = [(r"fc\.weight", "fc/kernel", jaxinit.layout.linear)]
    with pytest.raises(ValueError, match=r"save_hf: max_shard_size='5 parsecs'"):
        jaxinit.save_hf(params, tmp_path / "a", rules=rules, config={},
                        max_shard_size="5 parsecs")
    with pytest.raises(TypeError, match=r"save_hf: config is not JSON-serializable"):
        jaxinit.save_hf(params, tmp_path / "a", rules=rules, config={"x": object()})
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(jaxinit.PretrainedError, match=r"full: exists and is not an empty"):
        jaxinit.save_hf(params, tmp_path / "full", rules=rules, config={})
    split = [(r"h\.0\.c_attn\.weight", "attn", lambda w: {"q/kernel": 2 * w[:, :2]})]
    with pytest.raises(jaxinit.PretrainedError, match=r"\['attn/q/kernel'\].*cannot be undone"):
        jaxinit.save_hf({"attn": {"q": {"kernel": np.ones((2, 2))}}}, tmp_path / "b",
                        rules=split, config={})
    flip = [(r"fc\.weight", "fc/kernel", lambda w: w[::-1])]
    with pytest.raises(jaxinit.PretrainedError, match=r"'fc/kernel'.*not an axis permutation"):
        jaxinit.save_hf(params, tmp_path / "c", rules=flip, config={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_single_shard_and_sizes(tmp_path):
    params = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)},
              "b": {"kernel": np.arange(4, dtype=np.int32)}}
    rules = [(r"(\w)\.weight", r"\1/kernel", None)]
    out = jaxinit.save_hf(params, tmp_path / "one", rules=rules, config={"k": 1})
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    from safetensors.numpy import load_file

    back = load_file(out / "model.safetensors")  # the reference reader is the oracle
    np.testing.assert_array_equal(back["a.weight"], params["a"]["kernel"])
    np.testing.assert_array_equal(back["b.weight"], params["b"]["kernel"])
    out = jaxinit.save_hf(params, tmp_path / "two", rules=rules, config={}, max_shard_size=24)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == {"a.weight": "model-00001-of-00002.safetensors",
                                   "b.weight": "model-00002-of-00002.safetensors"}
    assert index["metadata"]["total_size"] == 24 + 16


def test_gpt2_fused_qkv_is_joined_back(tmp_path):
    """GPT-2's c_attn (E, 3E) is split into q/k/v on load; export concatenates them back."""
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2,
                                  n_head=4, initializer_range=0.2, dtype="float32")
    original = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # biases start at 0: make them matter
        for p in original.parameters():
            if p.ndim == 1:
                p.copy_(0.5 * torch.randn_like(p))
    original.save_pretrained(tmp_path / "hf", max_shard_size="20KB")
    c = dict(vocab=64, positions=16, hidden=32, layers=2, heads=4, eps=cfg.layer_norm_epsilon)
    model = GPT2LMHeadModel(c, rngs=nnx.Rngs(0))
    rules = jaxinit.hf.rules("gpt2", model)
    model, _ = jaxinit.load_pretrained(model, tmp_path / "hf", rules=rules, on_missing="error")
    out = jaxinit.save_hf(model, tmp_path / "export", rules=rules,
                          config=json.loads(cfg.to_json_string()), max_shard_size="20KB")
    _assert_reloads_as(out, original)


def test_stacked_split_outputs_are_joined_per_layer(tmp_path):
    """A scanned fused c_attn: q, k, v leaves of shape (layers, E, E) -> one (E, 3E) key
    per layer, each the concatenation of that layer's slices."""
    rng = np.random.default_rng(0)
    qkv = {p: rng.standard_normal((3, 4, 4)).astype(np.float32) for p in ("q", "k", "v")}
    params = {"attn": {f"{p}_proj": {"kernel": a} for p, a in qkv.items()}}
    rules = [(r"h\.(\d+)\.attn\.c_attn\.weight", r"attn[\1]", split_qkv("kernel"))]
    out = jaxinit.save_hf(params, tmp_path / "m", rules=rules, config={})
    written = jaxinit.open_weights(out)
    assert sorted(written) == [f"h.{i}.attn.c_attn.weight" for i in range(3)]
    for i in range(3):
        np.testing.assert_array_equal(written[f"h.{i}.attn.c_attn.weight"],
                                      np.concatenate([qkv[p][i] for p in "qkv"], axis=1))
    loaded, _ = jaxinit.load_pretrained(params, out, rules=rules, on_unexpected="error")
    for p in "qkv":
        np.testing.assert_array_equal(np.asarray(loaded["attn"][f"{p}_proj"]["kernel"]), qkv[p])


def test_a_stacked_slice_with_no_key_is_named(tmp_path):
    params = {"w": np.ones((3, 2), np.float32)}
    rules = [(r"l\.([01])\.w", r"w[\1]", None)]  # the regex knows layers 0 and 1 only
    with pytest.raises(jaxinit.PretrainedError, match=r"parameter 'w' is stacked, but slice "
                                                      r"\[2\] has no Hugging Face name"):
        jaxinit.save_hf(params, tmp_path / "m", rules=rules, config={})
    assert not (tmp_path / "m").exists()
