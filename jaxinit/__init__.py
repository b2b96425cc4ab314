"""jaxinit: weight initialization for JAX and Flax, exact in every dtype.

Every scheme is a frozen, hashable initializer ``init(key, shape, dtype=None,
out_sharding=None) -> jax.Array``, a drop-in for ``jax.nn.initializers``.
"""

from jaxinit._src.base import Initializer as Initializer
from jaxinit._src.describe import Description as Description
from jaxinit._src.describe import describe as describe
from jaxinit._src.fans import compute_fans as compute_fans
from jaxinit._src.gain import gain as gain
from jaxinit._src.orthogonal import delta_orthogonal as delta_orthogonal
from jaxinit._src.orthogonal import dirac as dirac
from jaxinit._src.orthogonal import identity as identity
from jaxinit._src.orthogonal import orthogonal as orthogonal
from jaxinit._src.schemes import constant as constant
from jaxinit._src.schemes import glorot_normal as glorot_normal
from jaxinit._src.schemes import glorot_uniform as glorot_uniform
from jaxinit._src.schemes import he_normal as he_normal
from jaxinit._src.schemes import he_uniform as he_uniform
from jaxinit._src.schemes import kaiming_normal as kaiming_normal
from jaxinit._src.schemes import kaiming_uniform as kaiming_uniform
from jaxinit._src.schemes import lecun_normal as lecun_normal
from jaxinit._src.schemes import lecun_uniform as lecun_uniform
from jaxinit._src.schemes import normal as normal
from jaxinit._src.schemes import ones as ones
from jaxinit._src.schemes import sparse as sparse
from jaxinit._src.schemes import truncated_normal as truncated_normal
from jaxinit._src.schemes import uniform as uniform
from jaxinit._src.schemes import uniform_range as uniform_range
from jaxinit._src.schemes import variance_scaling as variance_scaling
from jaxinit._src.schemes import xavier_normal as xavier_normal
from jaxinit._src.schemes import xavier_uniform as xavier_uniform
from jaxinit._src.schemes import zeros as zeros

# isort: split
# Composition (issue 3)
from jaxinit._src.combinators import blocks as blocks
from jaxinit._src.combinators import scaled as scaled
from jaxinit._src.combinators import stacked as stacked
from jaxinit._src.fans import einsum_axes as einsum_axes
from jaxinit._src.tree import reinit as reinit

__version__ = "0.1.0"

__all__ = [
    "Description",
    "Initializer",
    "compute_fans",
    "constant",
    "delta_orthogonal",
    "describe",
    "dirac",
    "gain",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "identity",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "ones",
    "orthogonal",
    "sparse",
    "truncated_normal",
    "uniform",
    "uniform_range",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
    # Composition (issue 3)
    "blocks",
    "einsum_axes",
    "reinit",
    "scaled",
    "stacked",
]
