"""PyTorch -> Flax weight-layout converters (see :mod:`jaxinit._src.pretrained.layout`).

Example:
  >>> import numpy as np, jaxinit
  >>> jaxinit.layout.conv(np.zeros((16, 3, 3, 3))).shape
  (3, 3, 3, 16)
"""

from jaxinit._src.pretrained.layout import attention_heads as attention_heads
from jaxinit._src.pretrained.layout import attention_out as attention_out
from jaxinit._src.pretrained.layout import attention_qkv as attention_qkv
from jaxinit._src.pretrained.layout import batch_norm as batch_norm
from jaxinit._src.pretrained.layout import conv as conv
from jaxinit._src.pretrained.layout import conv_transpose as conv_transpose
from jaxinit._src.pretrained.layout import embedding as embedding
from jaxinit._src.pretrained.layout import group_norm as group_norm
from jaxinit._src.pretrained.layout import layer_norm as layer_norm
from jaxinit._src.pretrained.layout import linear as linear
from jaxinit._src.pretrained.layout import linear_after_flatten as linear_after_flatten

__all__ = [
    "attention_heads",
    "attention_out",
    "attention_qkv",
    "batch_norm",
    "conv",
    "conv_transpose",
    "embedding",
    "group_norm",
    "layer_norm",
    "linear",
    "linear_after_flatten",
]
