"""jaxinit: weight initialization for JAX and Flax, exact in every dtype.

Every scheme is a frozen, hashable initializer ``init(key, shape, dtype=None,
out_sharding=None) -> jax.Array``, a drop-in for ``jax.nn.initializers``.
"""

from importlib import metadata as _metadata

from jaxinit import diagnostics as diagnostics
from jaxinit import hf as hf
from jaxinit import layout as layout
from jaxinit import recipes as recipes
from jaxinit._src.compare.api import ModelComparison as ModelComparison
from jaxinit._src.compare.api import compare_model as compare_model
from jaxinit._src.compose.combinators import ChannelsFirst as ChannelsFirst
from jaxinit._src.compose.combinators import blocks as blocks
from jaxinit._src.compose.combinators import channels_first as channels_first
from jaxinit._src.compose.combinators import scaled as scaled
from jaxinit._src.compose.combinators import stacked as stacked
from jaxinit._src.compose.frameworks import equinox_init as equinox_init
from jaxinit._src.compose.frameworks import keras_initializer as keras_initializer
from jaxinit._src.compose.tree import reinit as reinit
from jaxinit._src.core.base import Initializer as Initializer
from jaxinit._src.core.describe import Description as Description
from jaxinit._src.core.describe import describe as describe
from jaxinit._src.core.fans import compute_fans as compute_fans
from jaxinit._src.core.fans import einsum_axes as einsum_axes
from jaxinit._src.core.gain import gain as gain
from jaxinit._src.diagnose.at_init import Diagnosis as Diagnosis
from jaxinit._src.diagnose.at_init import diagnose as diagnose
from jaxinit._src.diagnose.lsuv import LSUVLayer as LSUVLayer
from jaxinit._src.diagnose.lsuv import LSUVReport as LSUVReport
from jaxinit._src.diagnose.lsuv import lsuv as lsuv
from jaxinit._src.diagnose.meanfield import chi as chi
from jaxinit._src.diagnose.meanfield import critical_point as critical_point
from jaxinit._src.diagnose.meanfield import critical_weight_std as critical_weight_std
from jaxinit._src.diagnose.meanfield import depth_scales as depth_scales
from jaxinit._src.diagnose.meanfield import q_star as q_star
from jaxinit._src.params.coord_check import mup_coord_check as mup_coord_check
from jaxinit._src.params.coord_check import plot_coord_check as plot_coord_check

# Parametrizations
from jaxinit._src.params.depth import DeepNorm as DeepNorm
from jaxinit._src.params.depth import PerLayer as PerLayer
from jaxinit._src.params.depth import deepnorm_constants as deepnorm_constants
from jaxinit._src.params.depth import deepnorm_init as deepnorm_init
from jaxinit._src.params.depth import fixup_init as fixup_init
from jaxinit._src.params.depth import fixup_scale as fixup_scale
from jaxinit._src.params.depth import olmo_init as olmo_init
from jaxinit._src.params.depth import per_layer as per_layer
from jaxinit._src.params.depth import residual_normal as residual_normal
from jaxinit._src.params.depth import small_init as small_init
from jaxinit._src.params.depth import t_fixup_init as t_fixup_init
from jaxinit._src.params.depth import t_fixup_scale as t_fixup_scale
from jaxinit._src.params.depth import torchtitan_init as torchtitan_init
from jaxinit._src.params.depth import wang_init as wang_init
from jaxinit._src.params.depth import zero_init_rules as zero_init_rules
from jaxinit._src.params.mup import DepthMuP as DepthMuP
from jaxinit._src.params.mup import MuPParam as MuPParam
from jaxinit._src.params.mup import depth_mup as depth_mup
from jaxinit._src.params.mup import mup_attention_scale as mup_attention_scale
from jaxinit._src.params.mup import mup_classify as mup_classify
from jaxinit._src.params.mup import mup_lr_scale as mup_lr_scale
from jaxinit._src.params.mup import mup_output as mup_output
from jaxinit._src.params.mup import mup_readout_multiplier as mup_readout_multiplier
from jaxinit._src.params.mup import mup_rules as mup_rules
from jaxinit._src.params.recipes import recipe as recipe
from jaxinit._src.params.spectral import spectral as spectral
from jaxinit._src.params.spectral import spectral_lr_scale as spectral_lr_scale
from jaxinit._src.params.spectral import spectral_rules as spectral_rules
from jaxinit._src.pretrained.errors import PretrainedError as PretrainedError
from jaxinit._src.pretrained.formats import Weights as Weights
from jaxinit._src.pretrained.formats import open_weights as open_weights
from jaxinit._src.pretrained.hf_export import save_hf as save_hf
from jaxinit._src.pretrained.initializer import Pretrained as Pretrained
from jaxinit._src.pretrained.initializer import pretrained as pretrained
from jaxinit._src.pretrained.merge import load_pretrained as load_pretrained
from jaxinit._src.pretrained.plan import LoadWarning as LoadWarning
from jaxinit._src.pretrained.report import LoadReport as LoadReport
from jaxinit._src.pretrained.stream import StreamReport as StreamReport
from jaxinit._src.pretrained.stream import stream_pretrained as stream_pretrained
from jaxinit._src.schemes.lora import LoRAGaussianA as LoRAGaussianA
from jaxinit._src.schemes.lora import LoRAWeights as LoRAWeights
from jaxinit._src.schemes.lora import lora_a as lora_a
from jaxinit._src.schemes.lora import lora_b as lora_b
from jaxinit._src.schemes.lora import lora_scaling as lora_scaling
from jaxinit._src.schemes.lora import olora as olora
from jaxinit._src.schemes.lora import pissa as pissa
from jaxinit._src.schemes.orthogonal import delta_orthogonal as delta_orthogonal
from jaxinit._src.schemes.orthogonal import dirac as dirac
from jaxinit._src.schemes.orthogonal import identity as identity
from jaxinit._src.schemes.orthogonal import orthogonal as orthogonal
from jaxinit._src.schemes.ssm import RGLRUA as RGLRUA
from jaxinit._src.schemes.ssm import HiPPOLegSA as HiPPOLegSA
from jaxinit._src.schemes.ssm import HiPPOLegSB as HiPPOLegSB
from jaxinit._src.schemes.ssm import LRUNuLog as LRUNuLog
from jaxinit._src.schemes.ssm import LRUThetaLog as LRUThetaLog
from jaxinit._src.schemes.ssm import Mamba2ALog as Mamba2ALog
from jaxinit._src.schemes.ssm import MambaALog as MambaALog
from jaxinit._src.schemes.ssm import MambaDtBias as MambaDtBias
from jaxinit._src.schemes.ssm import S4DInv as S4DInv
from jaxinit._src.schemes.ssm import S4DLin as S4DLin
from jaxinit._src.schemes.ssm import hippo_legs_a as hippo_legs_a
from jaxinit._src.schemes.ssm import hippo_legs_b as hippo_legs_b
from jaxinit._src.schemes.ssm import lru_nu_log as lru_nu_log
from jaxinit._src.schemes.ssm import lru_theta_log as lru_theta_log
from jaxinit._src.schemes.ssm import mamba2_a_log as mamba2_a_log
from jaxinit._src.schemes.ssm import mamba_a_log as mamba_a_log
from jaxinit._src.schemes.ssm import mamba_dt_bias as mamba_dt_bias
from jaxinit._src.schemes.ssm import rg_lru_a as rg_lru_a
from jaxinit._src.schemes.ssm import s4d_inv as s4d_inv
from jaxinit._src.schemes.ssm import s4d_lin as s4d_lin
from jaxinit._src.schemes.standard import constant as constant
from jaxinit._src.schemes.standard import glorot_normal as glorot_normal
from jaxinit._src.schemes.standard import glorot_uniform as glorot_uniform
from jaxinit._src.schemes.standard import he_normal as he_normal
from jaxinit._src.schemes.standard import he_uniform as he_uniform
from jaxinit._src.schemes.standard import kaiming_normal as kaiming_normal
from jaxinit._src.schemes.standard import kaiming_uniform as kaiming_uniform
from jaxinit._src.schemes.standard import lecun_normal as lecun_normal
from jaxinit._src.schemes.standard import lecun_uniform as lecun_uniform
from jaxinit._src.schemes.standard import normal as normal
from jaxinit._src.schemes.standard import ones as ones
from jaxinit._src.schemes.standard import sparse as sparse
from jaxinit._src.schemes.standard import truncated_normal as truncated_normal
from jaxinit._src.schemes.standard import uniform as uniform
from jaxinit._src.schemes.standard import uniform_range as uniform_range
from jaxinit._src.schemes.standard import variance_scaling as variance_scaling
from jaxinit._src.schemes.standard import xavier_normal as xavier_normal
from jaxinit._src.schemes.standard import xavier_uniform as xavier_uniform
from jaxinit._src.schemes.standard import zeros as zeros

try:
    # The one version number lives in pyproject.toml; the installed metadata carries it.
    __version__ = _metadata.version("jaxinit")
except _metadata.PackageNotFoundError:  # a source tree on sys.path, never installed
    __version__ = "0+unknown"

__all__ = [
    "LoRAGaussianA",
    "LoRAWeights",
    "lora_a",
    "lora_b",
    "lora_scaling",
    "olora",
    "pissa",
    "Mamba2ALog",
    "mamba2_a_log",
    "MambaALog",
    "mamba_a_log",
    "MambaDtBias",
    "mamba_dt_bias",
    "S4DLin",
    "s4d_lin",
    "S4DInv",
    "s4d_inv",
    "HiPPOLegSA",
    "hippo_legs_a",
    "HiPPOLegSB",
    "hippo_legs_b",
    "LRUNuLog",
    "lru_nu_log",
    "LRUThetaLog",
    "lru_theta_log",
    "RGLRUA",
    "rg_lru_a",
    # Core
    "Initializer",
    "Description",
    "compute_fans",
    "describe",
    "gain",
    "zeros",
    "ones",
    "constant",
    "uniform",
    "uniform_range",
    "normal",
    "truncated_normal",
    "variance_scaling",
    "glorot_uniform",
    "glorot_normal",
    "xavier_uniform",
    "xavier_normal",
    "he_uniform",
    "he_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "delta_orthogonal",
    "identity",
    "dirac",
    "sparse",
    # Composition: combinators and tree surgery
    "scaled",
    "stacked",
    "blocks",
    "einsum_axes",
    "reinit",
    # Pretrained
    "open_weights",
    "Weights",
    "pretrained",
    "Pretrained",
    "load_pretrained",
    "LoadReport",
    "LoadWarning",
    "stream_pretrained",
    "StreamReport",
    "save_hf",
    "PretrainedError",
    "layout",
    "hf",
    # Data-dependent init, diagnostics and mean-field theory
    "diagnose",
    "Diagnosis",
    "compare_model",
    "ModelComparison",
    "lsuv",
    "LSUVLayer",
    "LSUVReport",
    "diagnostics",
    "q_star",
    "chi",
    "critical_weight_std",
    "critical_point",
    "depth_scales",
    # Parametrizations: muP, spectral, depth rules, recipes
    "mup_classify",
    "MuPParam",
    "mup_rules",
    "plot_coord_check",
    "channels_first",
    "ChannelsFirst",
    "equinox_init",
    "keras_initializer",
    "mup_readout_multiplier",
    "DepthMuP",
    "depth_mup",
    "mup_output",
    "mup_lr_scale",
    "mup_attention_scale",
    "mup_coord_check",
    "spectral",
    "spectral_rules",
    "spectral_lr_scale",
    "residual_normal",
    "small_init",
    "wang_init",
    "olmo_init",
    "fixup_scale",
    "fixup_init",
    "t_fixup_scale",
    "t_fixup_init",
    "deepnorm_constants",
    "DeepNorm",
    "deepnorm_init",
    "zero_init_rules",
    "torchtitan_init",
    "per_layer",
    "PerLayer",
    "recipe",
    "recipes",
]
