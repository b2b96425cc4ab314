"""Named initialization recipes, one function per recipe (``jaxinit.recipe(name, ...)``
looks them up by name).

Each takes the parameter tree (nnx module or State, linen variables, any pytree) and
keyword arguments, and returns ``(regex, initializer)`` rules for ``jaxinit.reinit``.
``jaxinit.recipes.DEFAULTS`` holds the default path patterns of those keywords, and
``jaxinit.recipes.RECIPES`` the recipe names.

Example:
  >>> import jax, jax.numpy as jnp, jaxinit
  >>> tree = {"transformer": {"h": {"0": {"attn": {"c_proj": {"kernel": jnp.zeros((64, 64))}}}}}}
  >>> round(jaxinit.recipes.gpt2(tree)[0][1].stddev, 6)          # 0.02 / sqrt(2 * 1)
  0.014142
"""

from jaxinit._src.params.recipes import DEFAULTS as DEFAULTS
from jaxinit._src.params.recipes import RECIPES as RECIPES
from jaxinit._src.params.recipes import deepnorm as deepnorm
from jaxinit._src.params.recipes import fixup as fixup
from jaxinit._src.params.recipes import gpt2 as gpt2
from jaxinit._src.params.recipes import megatron as megatron
from jaxinit._src.params.recipes import mup as mup
from jaxinit._src.params.recipes import olmo as olmo
from jaxinit._src.params.recipes import olmo_full_megatron as olmo_full_megatron
from jaxinit._src.params.recipes import torch_default as torch_default
from jaxinit._src.params.recipes import torchtitan as torchtitan
from jaxinit._src.params.recipes_hf import PaddedNormal as PaddedNormal
from jaxinit._src.params.recipes_hf import bert as bert
from jaxinit._src.params.recipes_hf import llama as llama
from jaxinit._src.params.recipes_hf import t5 as t5
from jaxinit._src.params.recipes_hf import vit as vit

# DEFAULTS and RECIPES are plain data, described in the module docstring above.
__all__ = [
    "PaddedNormal", "bert", "deepnorm", "fixup", "gpt2", "llama",
    "megatron", "mup", "olmo", "olmo_full_megatron", "t5", "torch_default", "torchtitan",
    "vit",
]
