"""Hugging Face model directories, read lazily: index first, a shard only when needed.

A directory holds one of (in this order of preference) ``model.safetensors.index.json``
with its shards, ``model.safetensors``, ``pytorch_model.bin.index.json`` with its shards,
or ``pytorch_model.bin``. An index maps each tensor name to one shard file
(``{"weight_map": {key: shard}}``). :func:`open_hf_dir` reads only the index (and
``config.json``); a shard's header is read, and checked against the index, the first time
one of its keys is looked at, and a tensor's bytes are read when that key is indexed, one
tensor at a time, through ``safetensors.safe_open`` (memory-mapped while the read lasts,
then closed). A shard none of whose keys is touched is never opened.

PyTorch ``.bin`` shards are pickles: they are read only with ``trusted=True`` and then
only through ``torch.load(..., weights_only=True)``.

References:
  https://huggingface.co/docs/safetensors/index
  https://huggingface.co/docs/transformers/main_classes/model#transformers.PreTrainedModel.save_pretrained
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from jaxinit._src.pretrained.errors import PretrainedError

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
TORCH_INDEX = "pytorch_model.bin.index.json"
TORCH_SINGLE = "pytorch_model.bin"
LAYOUTS = (INDEX, SINGLE, TORCH_INDEX, TORCH_SINGLE)



def hf_layout(path: pathlib.Path) -> str | None:
    """The file an HF directory is read from (one of :data:`LAYOUTS`), or None."""
    if not path.is_dir():
        return None
    return next((name for name in LAYOUTS if (path / name).is_file()), None)


def is_hf_dir(path: pathlib.Path) -> bool:
    """True for a directory holding an HF safetensors or PyTorch checkpoint."""
    return hf_layout(path) is not None


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


class _Shards(Mapping[str, Any]):
    """key -> TensorSpec, opening a shard (header only) the first time one of its keys is
    looked up; ``shard(key)`` gives the opened shard's ``Weights``."""

    def __init__(self, path: pathlib.Path, index_file: pathlib.Path,
                 weight_map: dict[str, str], opener: Callable[[pathlib.Path], Any]) -> None:
        self._path, self._index_file, self._map = path, index_file, weight_map
        self._opener = opener
        self._opened: dict[str, Any] = {}

    def shard(self, key: str) -> Any:
        name = self._map[key]
        if name not in self._opened:
            w = self._opener(self._path / name)
            for k in w:
                if self._map.get(k) != name:
                    where = (f"maps it to {self._map[k]!r}" if k in self._map
                             else "does not list it")
                    raise PretrainedError(f"{self._path / name}: key {k!r} is in this shard "
                                          f"but {self._index_file} {where}")
            for k, v in self._map.items():
                if v == name and k not in w:
                    raise PretrainedError(f"{self._path / name}: key {k!r} is in "
                                          f"{self._index_file} but not in the shard's header")
            self._opened[name] = w
        return self._opened[name]

    @property
    def opened(self) -> list[str]:
        """Shard files whose header has been read so far."""
        return sorted(self._opened)

    def __getitem__(self, key: str) -> Any:
        if key not in self._map:
            raise KeyError(key)
        return self.shard(key)._specs[key]

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)


def _read_index(path: pathlib.Path, index_file: pathlib.Path
                ) -> tuple[dict[str, str], dict[str, Any]]:
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
    metadata = index.get("metadata", {})
    return weight_map, metadata if isinstance(metadata, dict) else {}


def open_hf_dir(path: pathlib.Path, allow_nonfinite: bool, trusted: bool = False) -> Any:
    """Opens an HF directory as one lazy :class:`Weights` (see the module docstring).

    ``metadata["config"]`` holds the parsed ``config.json``; ``weights.read_slice(key,
    index)`` reads only ``tensor[index]`` from a safetensors shard.

    Raises:
      PretrainedError: an index naming a missing shard or disagreeing with a shard's
        header (raised when that shard is first opened), or a PyTorch checkpoint without
        ``trusted=True``.
    """
    from jaxinit._src.pretrained import formats

    layout = hf_layout(path)
    config = read_config(path)
    torch = layout in (TORCH_INDEX, TORCH_SINGLE)
    if torch and not trusted:
        raise PretrainedError(
            f"{path / str(layout)}: this Hugging Face directory has only PyTorch weights, "
            "which are pickles and can run arbitrary code when loaded; refusing without "
            "trusted=True (even then only torch.load(weights_only=True) is used). Prefer "
            "a directory with model.safetensors.")
    if layout in (SINGLE, TORCH_SINGLE):
        file = path / str(layout)
        one = (formats._open_torch if torch else formats._open_safetensors)(
            file, allow_nonfinite)
        return formats.Weights(
            name=str(path), fmt=one.format, identity=("hf", *one._identity),
            specs=one._specs, reader=one._reader,
            slicer=one._slicer,
            metadata={**one.metadata, "config": config}, allow_nonfinite=allow_nonfinite)
    index_file = path / str(layout)
    weight_map, metadata = _read_index(path, index_file)
    opener = formats._open_torch if torch else formats._open_safetensors
    shards = _Shards(path, index_file, weight_map,
                     lambda file: opener(file, allow_nonfinite))

    def read(key: str) -> np.ndarray:
        return shards.shard(key)._reader(key)

    def read_slice(key: str, index: tuple[slice, ...]) -> np.ndarray:
        return shards.shard(key)._slicer(key, index)

    files = sorted(set(weight_map.values()))
    identity = ("hf", str(path.resolve()),
                *(formats.file_identity(path / s, "torch" if torch else "safetensors")
                  for s in files))
    return formats.Weights(name=str(path), fmt="torch" if torch else "safetensors",
                           identity=identity, specs=shards, reader=read,  # type: ignore[arg-type]
                           slicer=None if torch else read_slice,
                           metadata={**metadata, "config": config},
                           allow_nonfinite=allow_nonfinite)
