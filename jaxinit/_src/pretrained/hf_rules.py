"""`jaxinit.hf.rules`: Hugging Face checkpoint names -> a Flax target's paths."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from jaxinit._src.pretrained import layout
from jaxinit._src.pretrained.merge import Rule, _flatten_target

FAMILIES: tuple[str, ...] = ("llama", "gpt2")

# (HF module path under the layer, Flax leaf name, transform) for one Llama decoder layer.
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
    ("mlp.gate_proj", "weight", "kernel", layout.linear),
    ("mlp.up_proj", "weight", "kernel", layout.linear),
    ("mlp.down_proj", "weight", "kernel", layout.linear),
    ("mlp.gate_proj", "bias", "bias", None),  # Llama's mlp_bias
    ("mlp.up_proj", "bias", "bias", None),
    ("mlp.down_proj", "bias", "bias", None),
    ("input_layernorm", "weight", "scale", None),
    ("post_attention_layernorm", "weight", "scale", None),
)


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


def _rename(module: str, overrides: Mapping[str, str]) -> str:
    """HF dotted module path -> the target's '/'-joined path, with `overrides` applied per
    component (``{"self_attn": "attn"}``) or to the whole path (``{"model.norm": "ln_f"}``)."""
    if module in overrides:
        return overrides[module]
    return "/".join(overrides.get(c, c) for c in module.split("."))


def rules(
    family: str,
    target: Any = None,
    *,
    overrides: Mapping[str, str] | None = None,
) -> list[Rule]:
    r"""Rules mapping a Hugging Face checkpoint's names onto a Flax model, for `load_pretrained`.

    For ``family="llama"`` (Llama 2/3, Mistral; Qwen2's q/k/v biases and Qwen3's q/k
    norms when the checkpoint has them) the target is expected to mirror the HF module
    names, as an nnx model written after ``transformers``' ``LlamaForCausalLM`` does:

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

    Given a `target`, the rules follow its names: a linen tree's ``params/`` collection
    and ``layers_N`` auto-names (instead of nnx's ``layers/N``) are found, and with tied
    embeddings (a checkpoint written with ``tie_word_embeddings=True`` has no
    ``lm_head.weight``) a target without ``lm_head`` reuses the embedding table itself,
    e.g. through ``nnx.Embed.attend``. A target that has ``lm_head`` but a checkpoint that
    does not is reported as a missing key by ``load_pretrained``.

    For ``family="gpt2"`` (``GPT2LMHeadModel`` or ``GPT2Model`` keys) the target mirrors
    HF's names (``transformer/wte/embedding``, ``transformer/h/N/ln_1/scale``,
    ``.../attn/c_proj/kernel``, ``.../mlp/c_fc/kernel``, ``transformer/ln_f/bias``).
    GPT-2's ``Conv1D`` weights are already (in, out) and are copied as they are; the
    fused ``attn.c_attn`` (E, 3E) kernel and (3E,) bias are split by :class:`split_qkv`
    into ``.../attn/q_proj``, ``k_proj`` and ``v_proj`` (thirds in that order).

    RoPE: the rules keep HF's q/k output order, the *rotate-half* layout (feature ``i``
    is paired with ``i + D/2`` in each head of size ``D``); a model that rotates
    interleaved pairs (``2i``, ``2i+1``) must permute the q/k kernels' head features.

    Args:
      family: the checkpoint family; one of ``"llama"``, ``"gpt2"``.
      target: the Flax parameters the rules are for (an nnx module or state, linen
        variables, or an abstract tree), or None for nnx paths as in the table above.
      overrides: HF module name -> the target's name, per path component
        (``{"self_attn": "attn", "model": "backbone"}``) or for a whole dotted module path
        (``{"model.norm": "final_norm"}``).

    Returns:
      A list of ``(source_regex, target_template, transform)`` rules for
      ``jaxinit.load_pretrained(..., rules=...)``.

    Raises:
      ValueError: an unknown `family`, or `overrides` that is not a str -> str mapping.

    Example:
      >>> import jaxinit
      >>> regex, template, transform = jaxinit.hf.rules("llama")[1]
      >>> print(regex)
      model\.layers\.(\d+)\.self_attn\.q_proj\.weight
      >>> print(template, transform.__name__)
      model/layers/\1/self_attn/q_proj/kernel linear

    References:
      Llama in ``transformers``:
      https://huggingface.co/docs/transformers/model_doc/llama
    """
    if family not in FAMILIES:
        raise ValueError(f"jaxinit.hf.rules: family={family!r} is not one of {FAMILIES}")
    overrides = dict(overrides or {})
    for k, v in overrides.items():
        if not (isinstance(k, str) and isinstance(v, str)):
            raise ValueError(f"jaxinit.hf.rules: overrides must map str -> str, got {k!r}: {v!r}")
    lead, sep, has_lm_head = "", "/", True
    if target is not None:
        tgt = _flatten_target(target)
        paths = list(tgt.values)
        if "params" in tgt.collections:
            lead = "params/"
        layers = _rename("transformer.h" if family == "gpt2" else "model.layers", overrides)
        if not any(re.match(rf"(?:params/)?{re.escape(layers)}/\d+/", p) for p in paths) and \
                any(re.match(rf"(?:params/)?{re.escape(layers)}_\d+/", p) for p in paths):
            sep = "_"
        head = lead + _rename("lm_head", overrides) + "/"
        has_lm_head = any(p.startswith(head) for p in paths)

    def flax(module: str, leaf: str) -> str:
        return lead + _rename(module, overrides) + "/" + leaf

    if family == "gpt2":
        return _gpt2(flax, lead, sep, has_lm_head, overrides)
    out: list[Rule] = [(r"model\.embed_tokens\.weight", flax("model.embed_tokens", "embedding"),
                        None)]
    layers = lead + _rename("model.layers", overrides)
    for module, hf_leaf, leaf, transform in _LLAMA_LAYER:
        regex = rf"model\.layers\.(\d+)\.{re.escape(module)}\.{hf_leaf}"
        out.append((regex, f"{layers}{sep}\\1/{_rename(module, overrides)}/{leaf}", transform))
    out.append((r"model\.norm\.weight", flax("model.norm", "scale"), None))
    out.append((r"lm_head\.weight", flax("lm_head", "kernel") if has_lm_head else None,
                layout.linear))
    # Rotary inverse frequencies are computed, not learned (older checkpoints store them).
    out.append((r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq", None, None))
    return out


def _gpt2(flax: Callable[[str, str], str], lead: str, sep: str, has_lm_head: bool,
          overrides: Mapping[str, str]) -> list[Rule]:
    t = r"(?:transformer\.)?"  # GPT2LMHeadModel's keys start with "transformer.", GPT2Model's not
    out: list[Rule] = [
        (rf"{t}wte\.weight", flax("transformer.wte", "embedding"), None),
        (rf"{t}wpe\.weight", flax("transformer.wpe", "embedding"), None),
    ]
    blocks = lead + _rename("transformer.h", overrides)
    attn = _rename("attn", overrides)
    out.append((rf"{t}h\.(\d+)\.attn\.c_attn\.weight", f"{blocks}{sep}\\1/{attn}",
                split_qkv("kernel")))
    out.append((rf"{t}h\.(\d+)\.attn\.c_attn\.bias", f"{blocks}{sep}\\1/{attn}",
                split_qkv("bias")))
    for module, hf_leaf, leaf, transform in _GPT2_LAYER:
        regex = rf"{t}h\.(\d+)\.{re.escape(module)}\.{hf_leaf}"
        out.append((regex, f"{blocks}{sep}\\1/{_rename(module, overrides)}/{leaf}", transform))
    out.append((rf"{t}ln_f\.weight", flax("transformer.ln_f", "scale"), None))
    out.append((rf"{t}ln_f\.bias", flax("transformer.ln_f", "bias"), None))
    out.append((r"lm_head\.weight", flax("lm_head", "kernel") if has_lm_head else None,
                layout.linear))
    # The causal-mask buffers older versions saved are not weights.
    out.append((rf"{t}h\.\d+\.attn\.(?:masked_)?bias", None, None))
    return out
