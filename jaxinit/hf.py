r"""Start a Flax model from a Hugging Face checkpoint directory.

``jaxinit.load_pretrained`` reads a Hugging Face directory (``model.safetensors`` or a
sharded ``model.safetensors.index.json``) one tensor at a time; :func:`rules` maps its
names onto the user's own Flax model, and :func:`parity_check` compares the model's
logits with ``transformers``' on the same tokens.

Example:
  >>> import jaxinit
  >>> rules = jaxinit.hf.rules("llama")
  >>> rules[0][:2]
  ('model\\.embed_tokens\\.weight', 'model/embed_tokens/embedding')
"""

from jaxinit._src.pretrained.hf_parity import ParityReport as ParityReport
from jaxinit._src.pretrained.hf_parity import parity_check as parity_check
from jaxinit._src.pretrained.hf_rules import FAMILIES as FAMILIES
from jaxinit._src.pretrained.hf_rules import rules as rules

__all__ = ["FAMILIES", "ParityReport", "parity_check", "rules"]
