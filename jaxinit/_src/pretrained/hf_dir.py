"""Hugging Face model directories: ``model.safetensors`` or a sharded index.

A directory holding ``model.safetensors.index.json`` maps each tensor name to one shard
file (``{"weight_map": {key: shard}}``). :func:`open_hf_dir` reads the index and, per
shard, only the safetensors header (to check it against the index); a tensor's bytes are
read only when that key is indexed, one tensor at a time.

References:
  https://huggingface.co/docs/safetensors/index
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from jaxinit._src.pretrained.errors import PretrainedError

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def is_hf_dir(path: pathlib.Path) -> bool:
    """True for a directory holding an HF safetensors index or ``model.safetensors``."""
    return path.is_dir() and ((path / INDEX).is_file() or (path / SINGLE).is_file())


def read_config(path: pathlib.Path) -> dict[str, Any]:
    """The parsed ``config.json`` of an HF directory ({} when there is none)."""
    file = path / "config.json"
    if not file.is_file():
        return {}
    try:
        config = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PretrainedError(f"{file}: not JSON ({e})") from e
    if not isinstance(config, dict):
        raise PretrainedError(f"{file}: not a JSON object")
    return config


def open_hf_dir(path: pathlib.Path, allow_nonfinite: bool) -> Any:
    """Opens an HF safetensors directory as one lazy :class:`Weights`.

    Tensor bytes are read on first use; ``metadata["config"]`` holds ``config.json``.
    Raises PretrainedError naming the file and key for an index naming a missing shard.
    """
    from jaxinit._src.pretrained import formats

    config = read_config(path)
    if not (path / INDEX).is_file():
        single = formats._open_safetensors(path / SINGLE, allow_nonfinite)
        return formats.Weights(
            name=str(path), fmt="safetensors", identity=single._identity,
            specs=single._specs, reader=single._reader,
            metadata={**single.metadata, "config": config}, allow_nonfinite=allow_nonfinite)
    index_file = path / INDEX
    try:
        index = json.loads(index_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PretrainedError(f"{index_file}: not JSON ({e})") from e
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise PretrainedError(f"{index_file}: no 'weight_map' object of key -> shard file")
    for key, shard in weight_map.items():
        file = path / shard
        if pathlib.Path(shard).name != shard or not file.is_file():
            raise PretrainedError(f"{index_file}: key {key!r} names shard {shard!r}, "
                                  f"which is not a file in {path}")
    opened: dict[str, Any] = {}
    for shard in sorted(set(weight_map.values())):  # headers only; tensor bytes stay on disk
        w = formats._open_safetensors(path / shard, allow_nonfinite)
        for key in w:
            if weight_map.get(key) != shard:
                where = (f"maps it to {weight_map[key]!r}" if key in weight_map
                         else "does not list it")
                raise PretrainedError(f"{path / shard}: key {key!r} is in this shard but "
                                      f"{index_file} {where}")
        opened[shard] = w
    specs = {}
    for key, shard in weight_map.items():
        if key not in opened[shard]:
            raise PretrainedError(f"{path / shard}: key {key!r} is in {index_file} but not "
                                  "in the shard's header")
        specs[key] = opened[shard]._specs[key]

    def read(key: str) -> np.ndarray:
        return opened[weight_map[key]]._reader(key)

    identity = ("hf", str(path.resolve()),
                *(formats.file_identity(path / s, "safetensors") for s in sorted(
                    set(weight_map.values()))))
    return formats.Weights(name=str(path), fmt="safetensors", identity=identity,
                           specs=specs, reader=read,
                           metadata={**index.get("metadata", {}), "config": config},
                           allow_nonfinite=allow_nonfinite)
