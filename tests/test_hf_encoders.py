"""Parity: tiny random transformers BERT (masked-LM head) and ViT (image classifier), saved
as sharded HF directories, loaded into reference nnx encoders (tests/hf_models.py) through
``jaxinit.hf.rules("bert")`` and ``("vit")``, give the same outputs in float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flax import nnx  # noqa: E402

import jaxinit  # noqa: E402
from tests.hf_checkpoints import build, save  # noqa: E402
from tests.hf_models import (  # noqa: E402
    BertForMaskedLM,
    BertModel,
    ViTForImageClassification,
    cast_params,
)

TOKENS = np.array([[1, 5, 9, 63, 0, 17, 42, 8], [3, 3, 7, 11, 60, 2, 31, 19]])
BERT = dict(vocab=64, hidden=32, layers=2, heads=4, inter=64, positions=16, eps=1e-12)
VIT = dict(hidden=32, layers=2, heads=4, inter=64, image=16, patch=4, channels=3, labels=5,
           eps=1e-12)
BF16_TORCH_ERR: dict[str, float] = {}  # transformers' own bfloat16 error, for scale
# Measured bfloat16 max |diff| against transformers' float32 outputs: BERT MLM logits 0.051
# (up to 4.6), ViT logits 0.025 (up to 2.8); transformers' own bfloat16 models: 0.066,
# 0.032 (ratios 0.77, 0.77). The bounds are about twice the measurement.
BF16_ATOL = {"bert": 0.1, "vit": 0.05}
IMAGES = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)  # NHWC


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    cfg = transformers.BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=16, initializer_range=0.2,
        dtype="float32")
    model = build(lambda: transformers.BertForMaskedLM(cfg))
    with torch.no_grad():
        out = model(torch.tensor(TOKENS), output_hidden_states=True)
    path = save(model, tmp_path_factory.mktemp("bert"), shard="10KB")
    with torch.no_grad():
        bf16 = model.to(torch.bfloat16)(torch.tensor(TOKENS)).logits.float().numpy()
    BF16_TORCH_ERR["bert"] = float(np.abs(bf16 - out.logits.numpy()).max())
    return path, out.logits.numpy(), out.hidden_states[-1].numpy()


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    cfg = transformers.ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        image_size=16, patch_size=4, num_channels=3, num_labels=5, initializer_range=0.2,
        dtype="float32")
    model = build(lambda: transformers.ViTForImageClassification(cfg))
    images = torch.tensor(IMAGES.transpose(0, 3, 1, 2))  # PyTorch takes NCHW
    with torch.no_grad():
        logits = model(images).logits.numpy()
    path = save(model, tmp_path_factory.mktemp("vit"), shard="10KB")
    with torch.no_grad():
        bf16 = model.to(torch.bfloat16)(images.to(torch.bfloat16)).logits.float().numpy()
    BF16_TORCH_ERR["vit"] = float(np.abs(bf16 - logits).max())
    return path, logits


@nnx.jit
def _apply(model: nnx.Module, x: jax.Array) -> jax.Array:
    return model(x)


def test_bert_mlm_logits_match_transformers(bert_dir):
    path, logits, _ = bert_dir
    model = BertForMaskedLM(BERT, rngs=nnx.Rngs(1))
    model, report = jaxinit.load_pretrained(model, path, rules=jaxinit.hf.rules("bert", model),
                                            on_missing="error", on_unexpected="error")
    assert report.loaded["bert/encoder/layer/1/attention/self/query/kernel"] == (
        "bert.encoder.layer.1.attention.self.query.weight")
    assert report.loaded["cls/predictions/bias"] == "cls.predictions.bias"
    got = np.asarray(_apply(model, jnp.asarray(TOKENS)))
    # Measured max abs diff: 1.9e-6 on logits up to 4.6 in magnitude, float32.
    np.testing.assert_allclose(got, logits, rtol=0, atol=1e-4)


def test_bert_body_alone_from_a_masked_lm_checkpoint(bert_dir):
    """A BertModel target (no ``bert/`` prefix, no head) takes the body of a
    BertForMaskedLM checkpoint; the head's keys are reported as unexpected."""
    path, _, hidden = bert_dir
    model = BertModel(BERT, rngs=nnx.Rngs(1))
    model, report = jaxinit.load_pretrained(model, path, rules=jaxinit.hf.rules("bert", model),
                                            on_missing="error", on_unexpected="ignore")
    assert report.unexpected and all(k.startswith("cls.") for k in report.unexpected)
    got = np.asarray(_apply(model, jnp.asarray(TOKENS)))
    # Measured max abs diff: 1.7e-6 on hidden states up to 4.6 in magnitude, float32.
    np.testing.assert_allclose(got, hidden, rtol=0, atol=1e-4)


def test_vit_classifier_logits_match_transformers(vit_dir):
    path, logits = vit_dir
    model = ViTForImageClassification(VIT, rngs=nnx.Rngs(1))
    model, _ = jaxinit.load_pretrained(model, path, rules=jaxinit.hf.rules("vit", model),
                                            on_missing="error", on_unexpected="error")
    kernel = model.vit.embeddings.patch_embeddings.projection.kernel[...]
    assert kernel.shape == (4, 4, 3, 32)  # (p, p, C, E) from PyTorch's (E, C, p, p)
    got = np.asarray(_apply(model, jnp.asarray(IMAGES)))
    # Measured max abs diff: 7.2e-7 on logits up to 2.8 in magnitude, float32.
    np.testing.assert_allclose(got, logits, rtol=0, atol=1e-4)


def test_parity_check_masked_lm_and_image_classification(bert_dir, vit_dir):
    """parity_check runs transformers' masked-LM and image-classification auto classes:
    it passes on the loaded models and fails on unloaded ones (its numbers against the
    fixtures' own transformers logits)."""
    path, logits, _ = bert_dir
    bert = BertForMaskedLM(BERT, rngs=nnx.Rngs(1))
    fresh = np.asarray(_apply(bert, jnp.asarray(TOKENS)))
    bert, _ = jaxinit.load_pretrained(bert, path, rules=jaxinit.hf.rules("bert", bert))
    report = jaxinit.hf.parity_check(path, lambda t: _apply(bert, jnp.asarray(t)), TOKENS,
                                     task="masked-lm")
    assert report.passed and report.kl.shape == TOKENS.shape and report.top1.all()
    report = jaxinit.hf.parity_check(path, lambda t: fresh, TOKENS, task="masked-lm")
    assert not report.passed
    np.testing.assert_allclose(report.max_abs_diff, np.abs(fresh - logits).max(), rtol=1e-5)

    path, logits = vit_dir
    vit = ViTForImageClassification(VIT, rngs=nnx.Rngs(1))
    fresh = np.asarray(_apply(vit, jnp.asarray(IMAGES)))
    vit, _ = jaxinit.load_pretrained(vit, path, rules=jaxinit.hf.rules("vit", vit))
    pixels = IMAGES.transpose(0, 3, 1, 2)  # what the PyTorch model takes: NCHW

    def forward(x):  # the Flax ViT takes NHWC
        return _apply(vit, jnp.asarray(x.transpose(0, 2, 3, 1)))

    report = jaxinit.hf.parity_check(path, forward, pixels, task="image-classification")
    assert report.passed and report.kl.shape == (2,) and report.top1.all(), str(report)
    report = jaxinit.hf.parity_check(path, lambda x: fresh, pixels, task="image-classification")
    assert not report.passed
    np.testing.assert_allclose(report.max_abs_diff, np.abs(fresh - logits).max(), rtol=1e-5)
    with pytest.raises(ValueError, match=r"inputs for task='image-classification' must be "
                                         r"pixel values \(B, C, H, W\), float"):
        jaxinit.hf.parity_check(path, forward, TOKENS, task="image-classification")


@pytest.mark.parametrize("name", ["bert", "vit"])
def test_bfloat16_outputs_within_the_measured_bound(name, bert_dir, vit_dir):
    """Loaded in bfloat16 (weights cast by load_pretrained, bfloat16 activations and
    inputs, float32 LayerNorm statistics and softmax) against transformers' float32
    outputs."""
    if name == "bert":
        path, expected, _ = bert_dir
        model, x = BertForMaskedLM(BERT, rngs=nnx.Rngs(1)), jnp.asarray(TOKENS)
    else:
        path, expected = vit_dir
        model = ViTForImageClassification(VIT, rngs=nnx.Rngs(1))
        x = jnp.asarray(IMAGES, jnp.bfloat16)
    model = cast_params(model, jnp.bfloat16)
    model, report = jaxinit.load_pretrained(model, path, rules=jaxinit.hf.rules(name, model),
                                            on_missing="error", on_unexpected="error")
    assert report.cast  # float32 checkpoint weights cast to bfloat16
    out = _apply(model, x)
    assert out.dtype == jnp.bfloat16
    err = np.abs(np.asarray(out, np.float32) - expected).max()
    assert err <= BF16_ATOL[name]
    assert err <= 1.5 * BF16_TORCH_ERR[name]
