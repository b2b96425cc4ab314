"""Tiny random ``transformers`` models saved as Hugging Face directories, for parity tests.

Every norm weight and bias is redrawn (HF initializes them to 1 and 0, which would let a
test pass with those weights never loaded), then the model is saved with
``save_pretrained`` in several safetensors shards, as real checkpoints are.
"""

from __future__ import annotations

import pathlib
from typing import Any


def build(make: Any, *, seed: int = 0) -> Any:
    """``make()`` (a transformers model) under a fixed torch seed, with its norm weights
    redrawn as :math:`1 + 0.5 z` and biases (and class/position tokens) as :math:`0.5 z`,
    :math:`z \\sim N(0, 1)`; returns the model in eval mode."""
    import torch

    torch.manual_seed(seed)
    model = make()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1 + 0.5 * torch.randn_like(p))
            elif name.endswith("bias") or p.ndim == 1 or "token" in name or "position" in name:
                p.copy_(0.5 * torch.randn_like(p))
    return model.eval()


def save(model: Any, path: pathlib.Path, shard: str = "20KB") -> pathlib.Path:
    """``model.save_pretrained(path, max_shard_size=shard)``; returns `path`."""
    model.save_pretrained(path, max_shard_size=shard)
    return path
