"""`jaxinit.hf.rules`: Hugging Face checkpoint names -> a Flax target's paths."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from jaxinit._src.pretrained import layout
from jaxinit._src.pretrained.plan import Rule, flatten_target

FAMILIES: tuple[str, ...] = ("llama", "gemma", "mixtral", "gpt2", "bert", "vit")

# (HF module under the layer, HF leaf, Flax leaf, transform) for one Llama decoder layer.
_LLAMA_LAYER = (
    ("self_attn.q_proj", "weight", "kernel", layout.linear),
    ("self_attn.k_proj", "weight", "kernel", layout.linear),
    ("self_attn.v_proj", "weight", "kernel", layout.linear),
    ("self_attn.o_proj", "weight", "kernel", layout.linear),
    ("self_attn.q_proj", "bias", "bias", None),  # Qwen2; Llama's attention_bias
    ("self_attn.k_proj", "bias", "bias", None),
    ("self_attn.v_proj", "bias", "bias", None),
    ("self_attn.o_proj", "bias", "bias", None),  # Llama's attention_bias
    ("self_attn.q_norm", "weight", "scale", None),  # Qwen3
    ("self_attn.k_norm", "weight", "scale", None),
    ("input_layernorm", "weight", "scale", None),
    ("post_attention_layernorm", "weight", "scale", None),
)
_LLAMA_MLP = (
    ("mlp.gate_proj", "weight", "kernel", layout.linear),
    ("mlp.up_proj", "weight", "kernel", layout.linear),
    ("mlp.down_proj", "weight", "kernel", layout.linear),
    ("mlp.gate_proj", "bias", "bias", None),  # Llama's mlp_bias
    ("mlp.up_proj", "bias", "bias", None),
    ("mlp.down_proj", "bias", "bias", None),
)
# Gemma 2's norms around the MLP (its post_attention_layernorm normalizes the attention
# output, with Llama's name).
_GEMMA2_LAYER = (
    ("pre_feedforward_layernorm", "weight", "scale", None),
    ("post_feedforward_layernorm", "weight", "scale", None),
)
# Mixtral's sparse MoE block: a router and per-expert SwiGLU weights w1 (gate), w3 (up),
# w2 (down); experts.E.wN.weight stack into one experts/wN leaf of shape (experts, in, out).
_MIXTRAL_MOE = (("block_sparse_moe.gate", "weight", "kernel", layout.linear),)


def experts_linear(weight: Any) -> Any:
    """Stacked PyTorch Linear weights (experts, out, in) -> Flax kernels (experts, in, out):
    each expert's matrix transposed, :math:`K_e = W_e^\top`."""
    if len(weight.shape) != 3:
        raise ValueError(f"experts_linear: expected a rank-3 (experts, out, in) array, got "
                         f"shape {tuple(weight.shape)}")
    return weight.transpose(0, 2, 1)


@dataclasses.dataclass(frozen=True)
class split_gate_up:
    """A fused ``mlp.experts.gate_up_proj`` (experts, 2 inter, hidden), as ``transformers``
    holds Mixtral's experts in memory (its ``MixtralExperts``): the first ``inter`` rows of
    each expert are the gate (w1), the rest the up projection (w3), each transposed to
    ``{"w1": (experts, hidden, inter), "w3": ...}``."""

    def __call__(self, x: Any) -> dict[str, Any]:
        if len(x.shape) != 3 or x.shape[1] % 2:
            raise ValueError(f"split_gate_up: expected (experts, 2 * inter, hidden), got "
                             f"shape {tuple(x.shape)}")
        n = x.shape[1] // 2
        return {"w1": x[:, :n].transpose(0, 2, 1), "w3": x[:, n:].transpose(0, 2, 1)}


@dataclasses.dataclass(frozen=True)
class split_qkv:
    """GPT-2's fused ``c_attn`` (E, 3E) kernel or (3E,) bias -> equal thirds along the last
    axis, ``{"q_proj/<leaf>": ..., "k_proj/<leaf>": ..., "v_proj/<leaf>": ...}``.

    Conv1D weights are already (in, out), so nothing is transposed."""

    leaf: str  # "kernel" or "bias"

    def __call__(self, x: Any) -> dict[str, Any]:
        n = x.shape[-1] // 3
        return {f"{p}/{self.leaf}": x[..., i * n:(i + 1) * n]
                for i, p in enumerate(("q_proj", "k_proj", "v_proj"))}


# (HF module under the block, HF leaf, Flax leaf, transform) for one GPT-2 block.
_GPT2_LAYER = (
    ("ln_1", "weight", "scale", None), ("ln_1", "bias", "bias", None),
    ("attn.c_proj", "weight", "kernel", None), ("attn.c_proj", "bias", "bias", None),
    ("ln_2", "weight", "scale", None), ("ln_2", "bias", "bias", None),
    ("mlp.c_fc", "weight", "kernel", None), ("mlp.c_fc", "bias", "bias", None),
    ("mlp.c_proj", "weight", "kernel", None), ("mlp.c_proj", "bias", "bias", None),
)


_W, _B = r"(?:weight|gamma)", r"(?:bias|beta)"  # old BERT checkpoints: LayerNorm.gamma/beta


def _dense(module: str) -> tuple[tuple[str, str, str, Any], ...]:
    return ((module, "weight", "kernel", layout.linear), (module, "bias", "bias", None))


def _norm(module: str) -> tuple[tuple[str, str, str, Any], ...]:
    return ((module, _W, "scale", None), (module, _B, "bias", None))


# One BERT encoder layer, and one ViT encoder layer (pre-norm, HF's ViT names).
_BERT_LAYER = (*_dense("attention.self.query"), *_dense("attention.self.key"),
               *_dense("attention.self.value"), *_dense("attention.output.dense"),
               *_norm("attention.output.LayerNorm"), *_dense("intermediate.dense"),
               *_dense("output.dense"), *_norm("output.LayerNorm"))
_VIT_LAYER = (*_dense("attention.attention.query"), *_dense("attention.attention.key"),
              *_dense("attention.attention.value"), *_dense("attention.output.dense"),
              *_dense("intermediate.dense"), *_dense("output.dense"),
              *_norm("layernorm_before"), *_norm("layernorm_after"))


def _rename(module: str, overrides: Mapping[str, str]) -> str:
    """HF dotted module path -> the target's '/'-joined path, with `overrides` applied per
    component (``{"self_attn": "attn"}``) or to the whole path (``{"model.norm": "ln_f"}``)."""
    if module in overrides:
        return overrides[module]
    return "/".join(overrides.get(c, c) for c in module.split("."))


@dataclasses.dataclass(frozen=True)
class _Names:
    """How the target spells things: its collection prefix, its layer-list style
    ("/" for nnx's ``layers/N``, "_" for linen's ``layers_N``, "scan" for one stacked
    leaf per parameter) and which optional modules it has."""

    overrides: Mapping[str, str]
    paths: tuple[str, ...] | None  # None: no target given
    lead: str = ""

    def has(self, module: str) -> bool:
        """Whether the target has `module` (True when no target was given)."""
        if self.paths is None:
            return True
        head = self.lead + _rename(module, self.overrides) + "/"
        return any(p.startswith(head) for p in self.paths)

    def flax(self, module: str, leaf: str) -> str:
        return self.lead + _rename(module, self.overrides) + "/" + leaf

    def style(self, layers: str) -> str:
        if self.paths is None:
            return "/"
        name = re.escape(self.lead + _rename(layers, self.overrides))
        if any(re.match(rf"{name}/\d+/", p) for p in self.paths):
            return "/"
        if any(re.match(rf"{name}_\d+/", p) for p in self.paths):
            return "_"
        if any(re.match(rf"{name}/[^/]+/", p) for p in self.paths):
            return "scan"
        return "/"

    def layer(self, layers: str, module: str, leaf: str, *, inner: bool = False) -> str:
        """Template for a per-layer key whose regex captures the layer number as group 1
        (and, with `inner`, an expert number as group 2, stacked on the leaf's axis 0)."""
        base = self.lead + _rename(layers, self.overrides)
        tail = "/".join(x for x in (_rename(module, self.overrides), leaf) if x)
        if self.style(layers) == "scan":
            return f"{base}/{tail}" + ("[\\1,\\2]" if inner else "[\\1]")
        return f"{base}{self.style(layers)}\\1/{tail}" + ("[\\2]" if inner else "")


def rules(
    family: str,
    target: Any = None,
    *,
    overrides: Mapping[str, str] | None = None,
) -> list[Rule]:
    r"""Rules mapping a Hugging Face checkpoint's names onto a Flax model, for `load_pretrained`.

    The target is expected to mirror the HF module names (as an nnx model written after
    the ``transformers`` class does), with ``/`` for ``.``. For ``family="llama"``
    (Llama 2/3, Mistral, whose sliding window the target computes; Qwen2's q/k/v biases
    and Qwen3's q/k norms when the checkpoint has them):

    - ``model.embed_tokens.weight`` (V, E) -> ``model/embed_tokens/embedding`` (V, E);
    - ``model.layers.N.self_attn.q_proj.weight`` (out, in) ->
      ``model/layers/N/self_attn/q_proj/kernel`` (in, out), likewise ``k_proj``,
      ``v_proj``, ``o_proj`` and ``mlp.gate_proj``, ``up_proj``, ``down_proj``;
      each ``.bias`` (Qwen2's q/k/v, Llama's ``attention_bias``/``mlp_bias``) -> ``/bias``;
    - ``model.layers.N.input_layernorm.weight`` -> ``.../input_layernorm/scale``, likewise
      ``post_attention_layernorm``, ``self_attn.q_norm``/``k_norm`` and ``model.norm``;
    - ``lm_head.weight`` (V, E) -> ``lm_head/kernel`` (E, V).

    Linear weights are transposed from PyTorch's (out, in) to Flax's (in, out) by
    :func:`jaxinit.layout.linear`, :math:`K = W^\top`, so :math:`x K = x W^\top` as in
    ``torch.nn.Linear``. Norm weights and the embedding table are copied as they are.

    ``family="gemma"`` (Gemma 1) has Llama's names. Its norm weights are stored as an
    offset: the target's RMSNorm must compute :math:`x / \mathrm{rms}(x) \cdot (1 + w)`
    with the copied :math:`w`, and its embedding output is scaled by
    :math:`\sqrt{E}` (rounded to the activation dtype); the output is tied to the
    embedding. Gemma 2 checkpoints load with ``family="gemma"`` too: their extra
    ``model.layers.N.pre_feedforward_layernorm.weight`` and
    ``post_feedforward_layernorm.weight`` -> ``.../pre_feedforward_layernorm/scale``
    (likewise ``post_``), also offsets. The rules only map names: the target computes
    Gemma 2's forward, :math:`h = x + N_{post\,attn}(\mathrm{Attn}(N_{in} x))`,
    :math:`y = h + N_{post\,ff}(\mathrm{MLP}(N_{pre\,ff} h))`, attention scores scaled by
    :math:`a^{-1/2}` (:math:`a` = ``query_pre_attn_scalar``) and soft-capped
    :math:`c \tanh(s / c)` (``attn_logit_softcapping``), the logits soft-capped by
    ``final_logit_softcapping``, and sliding-window attention on the layers whose
    ``layer_types`` entry is ``"sliding_attention"``. Gemma 3 text checkpoints
    (``Gemma3ForCausalLM``) load with ``family="gemma"`` as well: Gemma 2's names plus
    ``self_attn.q_norm.weight``/``k_norm.weight`` -> ``.../self_attn/q_norm/scale``
    (likewise ``k_norm``), offsets too, applied per head before RoPE; the target rotates
    its sliding layers with the base ``rope_parameters["sliding_attention"]["rope_theta"]``
    (``rope_local_base_freq``) and its full layers with ``rope_theta``, and has no
    soft-caps. Multimodal Gemma 3 (``Gemma3ForConditionalGeneration``, its vision tower
    and projector) is not supported. ``family="mixtral"`` replaces
    the MLP with a sparse mixture of experts:
    ``block_sparse_moe.gate.weight`` -> ``.../block_sparse_moe/gate/kernel`` (E, experts)
    and each expert's ``block_sparse_moe.experts.X.w1.weight`` (likewise ``w2``, ``w3``)
    is transposed and stacked into one leaf ``.../block_sparse_moe/experts/w1`` of shape
    (experts, in, out), expert ``X`` at index ``X``. A state dict in the fused layout
    ``transformers`` holds in memory (``mlp.gate.weight``; ``mlp.experts.gate_up_proj`` of
    shape (experts, 2 inter, hidden), split by :class:`split_gate_up` into ``w1`` and
    ``w3``; ``mlp.experts.down_proj`` transposed per expert by :func:`experts_linear`)
    loads into the same leaves; :func:`jaxinit.save_hf` writes the per-expert names, as
    ``save_pretrained`` does.

    ``family="gpt2"`` (``GPT2LMHeadModel`` or ``GPT2Model`` keys): ``transformer/wte``,
    ``transformer/h/N/ln_1/scale``, ``.../attn/c_proj/kernel``, ``.../mlp/c_fc/kernel``,
    ``transformer/ln_f/bias``. GPT-2's ``Conv1D`` weights are already (in, out) and are
    copied; the fused ``attn.c_attn`` (E, 3E) kernel and (3E,) bias are split by
    :class:`split_qkv` into ``.../attn/q_proj``, ``k_proj`` and ``v_proj``.

    ``family="bert"`` (``BertModel``, or ``BertForMaskedLM`` whose keys start with
    ``bert.``): ``embeddings/word_embeddings/embedding`` (and ``position_embeddings``,
    ``token_type_embeddings``), ``embeddings/LayerNorm/scale``,
    ``encoder/layer/N/attention/self/query/kernel``, ``.../attention/output/dense``,
    ``.../attention/output/LayerNorm``, ``.../intermediate/dense``, ``.../output/dense``,
    ``.../output/LayerNorm``, ``pooler/dense``, and the MLM head
    ``cls/predictions/transform/dense``, ``.../transform/LayerNorm``,
    ``cls/predictions/bias``; old checkpoints' ``LayerNorm.gamma``/``beta`` are read as
    ``weight``/``bias``. ``family="vit"`` (``ViTModel``, or
    ``ViTForImageClassification`` with ``vit.`` keys and ``classifier``):
    ``embeddings/cls_token`` (1, 1, E) and ``embeddings/position_embeddings``
    (1, patches + 1, E) copied, ``embeddings/patch_embeddings/projection/kernel``
    converted by :func:`jaxinit.layout.conv` to (p, p, C, E) for an NHWC ``nnx.Conv``,
    ``encoder/layer/N/attention/attention/query`` (``key``, ``value``),
    ``.../attention/output/dense``, ``.../intermediate/dense``, ``.../output/dense``,
    ``.../layernorm_before``, ``.../layernorm_after``, ``layernorm``, ``pooler/dense``,
    ``classifier``. For a target with a ``bert/`` (``vit/``) submodule the body's paths
    start with it, as the HF head models' keys do.

    Given a `target`, the rules follow its names: a linen tree's ``params/`` collection
    and ``layers_N`` auto-names (instead of nnx's ``layers/N``) are found, and so are
    *scanned* layers (``nnx.scan``/``nn.scan`` over layers stacked by ``nnx.vmap``, one
    leaf ``model/layers/mlp/up_proj/kernel`` of shape (layers, in, out)): per-layer
    keys are then stacked along axis 0 in layer order (a missing layer is a
    ``PretrainedError`` naming its key; Mixtral's experts go on axis 1). With tied
    embeddings (a checkpoint written with ``tie_word_embeddings=True`` has no
    ``lm_head.weight``) a target without ``lm_head`` (``cls/predictions/decoder`` for
    BERT) reuses the embedding table, e.g. through ``nnx.Embed.attend``, and the
    checkpoint's copy, if any, is dropped. A target that has ``lm_head`` but a checkpoint
    that does not is reported as a missing key by ``load_pretrained``.

    RoPE: the rules keep HF's q/k output order, the *rotate-half* layout (feature ``i``
    is paired with ``i + D/2`` in each head of size ``D``); for a model that rotates
    interleaved pairs (``2i``, ``2i+1``) convert the q/k kernels with
    :func:`with_interleaved_rope` (it permutes the q/k rows with :class:`rope_interleaved`).

    Args:
      family: the checkpoint family; one of ``"llama"``, ``"gemma"``, ``"mixtral"``,
        ``"gpt2"``, ``"bert"``, ``"vit"``.
      target: the Flax parameters the rules are for (an nnx module or state, linen
        variables, or an abstract tree), or None for nnx paths as above.
      overrides: HF module name -> the target's name, per path component
        (``{"self_attn": "attn", "model": "backbone"}``) or for a whole dotted module path
        (``{"model.norm": "final_norm"}``).

    Returns:
      A list of ``(source_regex, target_template, transform)`` rules for
      ``jaxinit.load_pretrained(..., rules=...)``.

    Raises:
      ValueError: an unsupported `family` (the message lists the supported ones), or
        `overrides` that is not a str -> str mapping.

    Example:
      >>> import jaxinit
      >>> regex, template, transform = jaxinit.hf.rules("llama")[1]
      >>> print(regex)
      model\.layers\.(\d+)\.self_attn\.q_proj\.weight
      >>> print(template, transform.__name__)
      model/layers/\1/self_attn/q_proj/kernel linear

    References:
      Llama in ``transformers``:
      https://huggingface.co/docs/transformers/model_doc/llama ; Gemma:
      https://huggingface.co/docs/transformers/model_doc/gemma ; Gemma 2:
      https://huggingface.co/docs/transformers/model_doc/gemma2 ,
      https://arxiv.org/abs/2408.00118 ; Gemma 3:
      https://huggingface.co/docs/transformers/model_doc/gemma3 ,
      https://arxiv.org/abs/2503.19786 ; Mistral:
      https://huggingface.co/docs/transformers/model_doc/mistral ; Mixtral:
      https://huggingface.co/docs/transformers/model_doc/mixtral ; BERT:
      https://huggingface.co/docs/transformers/model_doc/bert ; ViT:
      https://huggingface.co/docs/transformers/model_doc/vit
    """
    if family not in FAMILIES:
        raise ValueError(f"jaxinit.hf.rules: family={family!r} is not supported; "
                              f"supported families: {', '.join(FAMILIES)}")
    overrides = dict(overrides or {})
    for k, v in overrides.items():
        if not (isinstance(k, str) and isinstance(v, str)):
            raise ValueError(f"jaxinit.hf.rules: overrides must map str -> str, got {k!r}: {v!r}")
    names = _Names(overrides, None)
    if target is not None:
        tgt = flatten_target(target)
        names = _Names(overrides, tuple(tgt.values),
                       "params/" if "params" in tgt.collections else "")
    if family == "gpt2":
        return _gpt2(names)
    if family in ("bert", "vit"):
        return _encoder(names, family)
    return _llama(names, family)


def _per_layer(names: _Names, hf_layers: str, layers: str,
               table: tuple[tuple[str, str, str, Any], ...]) -> list[Rule]:
    """Rules for `table`'s entries under each layer ``<hf_layers>.N.`` (a regex prefix)."""
    return [(rf"{hf_layers}\.(\d+)\.{re.escape(module)}\.{hf_leaf}",
             names.layer(layers, module, leaf), transform)
            for module, hf_leaf, leaf, transform in table]


def _llama(names: _Names, family: str) -> list[Rule]:
    out: list[Rule] = [(r"model\.embed_tokens\.weight",
                        names.flax("model.embed_tokens", "embedding"), None)]
    out += _per_layer(names, r"model\.layers", "model.layers", _LLAMA_LAYER)
    if family == "mixtral":
        out += _per_layer(names, r"model\.layers", "model.layers", _MIXTRAL_MOE)
        for w in ("w1", "w2", "w3"):  # expert X of layer N -> slice X (scanned: [N, X])
            out.append((rf"model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.{w}\.weight",
                        names.layer("model.layers", "block_sparse_moe.experts", w, inner=True),
                        layout.linear))
        # The fused layout transformers holds in memory (a state_dict saved as it is): the
        # router under mlp.gate, all experts in one gate_up_proj and one down_proj.
        # Listed after the per-expert names, so save_hf writes those, as save_pretrained does.
        out += [(r"model\.layers\.(\d+)\.mlp\.gate\.weight",
                 names.layer("model.layers", "block_sparse_moe.gate", "kernel"), layout.linear),
                (r"model\.layers\.(\d+)\.mlp\.experts\.gate_up_proj",
                 names.layer("model.layers", "block_sparse_moe.experts", ""), split_gate_up()),
                (r"model\.layers\.(\d+)\.mlp\.experts\.down_proj",
                 names.layer("model.layers", "block_sparse_moe.experts", "w2"), experts_linear)]
    else:
        out += _per_layer(names, r"model\.layers", "model.layers", _LLAMA_MLP)
    if family == "gemma":
        out += _per_layer(names, r"model\.layers", "model.layers", _GEMMA2_LAYER)
    out.append((r"model\.norm\.weight", names.flax("model.norm", "scale"), None))
    out.append((r"lm_head\.weight",
                names.flax("lm_head", "kernel") if names.has("lm_head") else None,
                layout.linear))
    # Rotary inverse frequencies are computed, not learned (older checkpoints store them).
    out.append((r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq", None, None))
    return out


def _encoder(names: _Names, family: str) -> list[Rule]:
    body = family if names.paths is not None and names.has(family) else ""
    p = rf"(?:{family}\.)?"  # the head models' keys start with "bert." / "vit."

    def top(module: str) -> str:
        return f"{body}.{module}" if body else module

    out: list[Rule] = []
    if family == "bert":
        for emb in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            out.append((rf"{p}embeddings\.{emb}\.weight",
                        names.flax(top(f"embeddings.{emb}"), "embedding"), None))
        tops = (*_norm("embeddings.LayerNorm"), *_dense("pooler.dense"))
        table = _BERT_LAYER
    else:
        out.append((rf"{p}embeddings\.cls_token", names.flax(top("embeddings"), "cls_token"),
                    None))
        out.append((rf"{p}embeddings\.position_embeddings",
                    names.flax(top("embeddings"), "position_embeddings"), None))
        proj = "embeddings.patch_embeddings.projection"
        out.append((rf"{p}{re.escape(proj)}\.weight", names.flax(top(proj), "kernel"),
                    layout.conv))
        out.append((rf"{p}{re.escape(proj)}\.bias", names.flax(top(proj), "bias"), None))
        tops = (*_norm("layernorm"), *_dense("pooler.dense"))
        table = _VIT_LAYER
    for module, hf_leaf, leaf, transform in tops:
        out.append((rf"{p}{re.escape(module)}\.{hf_leaf}", names.flax(top(module), leaf),
                    transform))
    out += _per_layer(names, rf"{p}encoder\.layer", top("encoder.layer"), table)
    if family == "bert":
        head = (*_dense("cls.predictions.transform.dense"),
                *_norm("cls.predictions.transform.LayerNorm"),
                *_dense("cls.seq_relationship"))
        for module, hf_leaf, leaf, transform in head:
            out.append((rf"{re.escape(module)}\.{hf_leaf}", names.flax(module, leaf),
                        transform))
        out.append((r"cls\.predictions\.bias", names.flax("cls.predictions", "bias"), None))
        # The decoder is tied to word_embeddings, its bias to cls.predictions.bias.
        tied = not names.has("cls.predictions.decoder")
        out.append((r"cls\.predictions\.decoder\.weight",
                    None if tied else names.flax("cls.predictions.decoder", "kernel"),
                    layout.linear))
        out.append((r"cls\.predictions\.decoder\.bias",
                    None if tied else names.flax("cls.predictions.decoder", "bias"), None))
        out.append((rf"{p}embeddings\.position_ids", None, None))  # a buffer, not a weight
    else:
        out += [(rf"classifier\.{leaf}", names.flax("classifier", flax), t)
                for leaf, flax, t in (("weight", "kernel", layout.linear),
                                      ("bias", "bias", None))]
    return out


def _gpt2(names: _Names) -> list[Rule]:
    t = r"(?:transformer\.)?"  # GPT2LMHeadModel's keys start with "transformer.", GPT2Model's not
    out: list[Rule] = [
        (rf"{t}wte\.weight", names.flax("transformer.wte", "embedding"), None),
        (rf"{t}wpe\.weight", names.flax("transformer.wpe", "embedding"), None),
    ]
    out.append((rf"{t}h\.(\d+)\.attn\.c_attn\.weight",
                names.layer("transformer.h", "attn", ""), split_qkv("kernel")))
    out.append((rf"{t}h\.(\d+)\.attn\.c_attn\.bias",
                names.layer("transformer.h", "attn", ""), split_qkv("bias")))
    out += _per_layer(names, rf"{t}h", "transformer.h", _GPT2_LAYER)
    out.append((rf"{t}ln_f\.weight", names.flax("transformer.ln_f", "scale"), None))
    out.append((rf"{t}ln_f\.bias", names.flax("transformer.ln_f", "bias"), None))
    out.append((r"lm_head\.weight",
                names.flax("lm_head", "kernel") if names.has("lm_head") else None,
                layout.linear))
    # The causal-mask buffers older versions saved are not weights.
    out.append((rf"{t}h\.\d+\.attn\.(?:masked_)?bias", None, None))
    return out
