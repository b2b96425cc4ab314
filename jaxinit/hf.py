r"""Start a Flax model from a Hugging Face checkpoint directory.

``jaxinit.load_pretrained`` reads a Hugging Face directory (``model.safetensors`` or a
sharded ``model.safetensors.index.json``) one tensor at a time; :func:`rules` maps its
names onto the user's own Flax model (families ``llama`` with Mistral, Qwen2 and Qwen3,
``gemma`` with Gemma 2 and Gemma 3 text, ``mixtral``, ``gpt2``, ``bert``, ``vit``;
per-layer or scanned layers), :func:`with_interleaved_rope` converts q/k for a model
whose RoPE pairs features (2i, 2i+1) instead of HF's (i, i + D/2), and
:func:`parity_check` compares the model's logits with ``transformers``' on the same
tokens.

Example:
  >>> import jaxinit
  >>> rules = jaxinit.hf.rules("llama")
  >>> rules[0][:2]
  ('model\\.embed_tokens\\.weight', 'model/embed_tokens/embedding')
"""

from jaxinit._src.pretrained.hf_parity import ParityReport as ParityReport
from jaxinit._src.pretrained.hf_parity import parity_check as parity_check
from jaxinit._src.pretrained.hf_rope import rope_interleaved as rope_interleaved
from jaxinit._src.pretrained.hf_rope import with_interleaved_rope as with_interleaved_rope
from jaxinit._src.pretrained.hf_rules import FAMILIES as FAMILIES
from jaxinit._src.pretrained.hf_rules import rules as rules

__all__ = ["FAMILIES", "ParityReport", "parity_check", "rope_interleaved", "rules",
           "with_interleaved_rope"]
