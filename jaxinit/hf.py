r"""Start a Flax model from a Hugging Face checkpoint directory.

``jaxinit.load_pretrained`` reads a Hugging Face directory (``model.safetensors`` or a
sharded ``model.safetensors.index.json``) one tensor at a time; :func:`rules` maps its
names onto the user's own Flax model.

Example:
  >>> import jaxinit
  >>> rules = jaxinit.hf.rules("llama")
  >>> rules[0][:2]
  ('model\\.embed_tokens\\.weight', 'model/embed_tokens/embedding')
"""

from jaxinit._src.pretrained.hf_rules import FAMILIES as FAMILIES
from jaxinit._src.pretrained.hf_rules import rules as rules

__all__ = ["FAMILIES", "rules"]
