"""PyTorch's initializers, with PyTorch's semantics, for Flax's weight layouts.

PyTorch stores a Linear weight as (out, in) and a convolution as ``(out, in, *k)``; Flax
stores (in, out) and ``(*k, in, out)`` (HWIO). The fans are the same numbers (fan_in =
in * prod(k), fan_out = out * prod(k)), so every scheme here is a core jaxinit scheme
with PyTorch's arguments: ``kaiming_normal`` is ``variance_scaling`` with an
*untruncated* normal, ``linear()`` is PyTorch's default ``nn.Linear``/``nn.ConvNd``
weight, and so on. Values are not bit-equal to PyTorch's (different generators), but
distributions and fans are. ``default_rules()`` makes a Flax model start as the
equivalent PyTorch model would. (The implementation is in ``jaxinit._src.schemes.torch_init``.)

Example:
  >>> import jax, jaxinit.torch as jt
  >>> init = jt.kaiming_normal(nonlinearity="relu")     # std = sqrt(2 / fan_in)
  >>> init(jax.random.key(0), (3, 3, 64, 128)).shape     # HWIO
  (3, 3, 64, 128)
"""

from jaxinit._src.pretrained.torch_rules import rules as rules
from jaxinit._src.schemes.torch_init import calculate_gain as calculate_gain
from jaxinit._src.schemes.torch_init import default_rules as default_rules
from jaxinit._src.schemes.torch_init import dirac as dirac
from jaxinit._src.schemes.torch_init import embedding as embedding
from jaxinit._src.schemes.torch_init import eye as eye
from jaxinit._src.schemes.torch_init import kaiming_normal as kaiming_normal
from jaxinit._src.schemes.torch_init import kaiming_uniform as kaiming_uniform
from jaxinit._src.schemes.torch_init import linear as linear
from jaxinit._src.schemes.torch_init import linear_bias as linear_bias
from jaxinit._src.schemes.torch_init import orthogonal as orthogonal
from jaxinit._src.schemes.torch_init import sparse as sparse
from jaxinit._src.schemes.torch_init import trunc_normal as trunc_normal
from jaxinit._src.schemes.torch_init import xavier_normal as xavier_normal
from jaxinit._src.schemes.torch_init import xavier_uniform as xavier_uniform

__all__ = [
    "calculate_gain",
    "default_rules",
    "dirac",
    "embedding",
    "eye",
    "kaiming_normal",
    "kaiming_uniform",
    "linear",
    "linear_bias",
    "orthogonal",
    "rules",
    "sparse",
    "trunc_normal",
    "xavier_normal",
    "xavier_uniform",
]
