"""`open_weights`: a read-only, lazy mapping from checkpoint key to NumPy array.

Every format is read without unpickling anything: safetensors through its JSON header
(validated here, then each tensor read on demand from its byte range), ``.npz`` with
``allow_pickle=False``, Flax msgpack through ``flax.serialization.msgpack_restore``,
orbax checkpoints through their metadata first, in-memory mappings and pytrees as they
are, and PyTorch ``.pt``/``.bin`` files only with ``trusted=True`` and then only through
``torch.load(..., weights_only=True)``. Errors from the format libraries are wrapped in
:class:`PretrainedError` naming the file and, where there is one, the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import pathlib
import pickletools
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.compose.paths import path_str
from jaxinit._src.pretrained.errors import PretrainedError

Format = Literal["auto", "safetensors", "npz", "msgpack", "orbax", "torch", "hf", "memory"]
FORMATS: tuple[str, ...] = ("auto", "safetensors", "npz", "msgpack", "orbax", "torch", "hf",
                            "memory")

# safetensors' own reader refuses headers over 100 MB (100_000_000 bytes); a real header
# is about 100 bytes per tensor, so this admits a million tensors.
MAX_SAFETENSORS_HEADER = 100_000_000

SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16), "I16": np.dtype(np.int16),
    "U32": np.dtype(np.uint32), "I32": np.dtype(np.int32),
    "U64": np.dtype(np.uint64), "I64": np.dtype(np.int64),
    "F16": np.dtype(np.float16), "BF16": np.dtype(jnp.bfloat16),
    "F32": np.dtype(np.float32), "F64": np.dtype(np.float64),
    "C64": np.dtype(np.complex64),
    "F8_E4M3": np.dtype(jnp.float8_e4m3fn), "F8_E5M2": np.dtype(jnp.float8_e5m2),
}


class MissingKeyError(PretrainedError, KeyError):
    """A key that is not in the checkpoint: both a ``ValueError`` and a ``KeyError``."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype of one stored array, read from the file header."""

    shape: tuple[int, ...]
    dtype: np.dtype


def is_numeric(dtype: np.dtype) -> bool:
    """Bool, integer, float (bfloat16 and float8 included) or complex."""
    return dtype.kind in "biufc" or bool(jax.dtypes.issubdtype(dtype, np.floating))


class Weights(Mapping[str, np.ndarray]):
    """A read-only, lazy mapping checkpoint key -> NumPy array (see :func:`open_weights`).

    ``keys()``, :meth:`shape`, :meth:`dtype` and :attr:`specs` come from the header and
    read no tensor data; ``weights[key]`` reads and validates one array. Two ``Weights``
    over the same unchanged file (same path, size and modification time) compare and hash
    equal; in-memory sources compare by object identity.
    """

    def __init__(
        self,
        *,
        name: str,
        fmt: str,
        identity: tuple[Any, ...],
        specs: dict[str, TensorSpec],
        reader: Callable[[str], np.ndarray],
        metadata: Mapping[str, Any] | None = None,
        allow_nonfinite: bool = False,
        keepalive: Any = None,
        slicer: Callable[[str, tuple[slice, ...]], np.ndarray] | None = None,
    ) -> None:
        self.name = name
        self.format = fmt
        self._identity = identity
        self._specs = specs
        self._reader = reader
        self._metadata = dict(metadata or {})
        self.allow_nonfinite = allow_nonfinite
        self._keepalive = keepalive  # keeps an in-memory source alive while id() names it
        self._slicer = slicer

    # --- Mapping -----------------------------------------------------------------
    def __getitem__(self, key: str) -> np.ndarray:
        spec = self.spec(key)
        try:
            array = np.asarray(self._reader(key))
        except PretrainedError:
            raise
        except Exception as e:  # a format library's error, wrapped with the key
            raise PretrainedError(
                f"{self.name}: cannot read key {key!r}: {type(e).__name__}: {e}"
            ) from e
        if array.shape != spec.shape or array.dtype != spec.dtype:
            raise PretrainedError(
                f"{self.name}: key {key!r} holds {array.dtype}{list(array.shape)} but its "
                f"header says {spec.dtype}{list(spec.shape)}; the file is corrupted"
            )
        check_finite(self.name, key, array, self.allow_nonfinite)
        if array.flags.writeable:
            array = array.view()
            array.flags.writeable = False
        return array

    @property
    def can_slice(self) -> bool:
        """Whether :meth:`read_slice` reads only the slice (safetensors) or the whole array."""
        return self._slicer is not None

    def read_slice(self, key: str, index: tuple[slice, ...]) -> np.ndarray:
        """``weights[key][index]``, reading only those bytes where the format allows it.

        `index` holds one ``slice`` (step None or 1) per axis. Safetensors files and
        Hugging Face safetensors directories read just the slice (the tensor's byte
        range is memory-mapped for this read only); other formats read the whole array
        and slice it. The slice is
        checked like a whole array (shape, dtype, finiteness).
        """
        spec = self.spec(key)
        if (not isinstance(index, tuple) or len(index) != len(spec.shape)
                or not all(isinstance(s, slice) and s.step in (None, 1) for s in index)):
            raise ValueError(f"Weights.read_slice: index={index!r} for key {key!r} must hold "
                             f"{len(spec.shape)} slices with step 1 (one per axis)")
        want = tuple(len(range(*s.indices(n))) for s, n in zip(index, spec.shape, strict=True))
        if self._slicer is None:
            return self[key][index]
        try:
            array = np.asarray(self._slicer(key, index))
        except PretrainedError:
            raise
        except Exception as e:  # a format library's error, wrapped with the key
            raise PretrainedError(
                f"{self.name}: cannot read key {key!r}{list(index)}: {type(e).__name__}: {e}"
            ) from e
        if array.shape != want or array.dtype != spec.dtype:
            raise PretrainedError(
                f"{self.name}: key {key!r}{list(index)} read as {array.dtype}"
                f"{list(array.shape)}, expected {spec.dtype}{list(want)}; the file is corrupted"
            )
        check_finite(self.name, key, array, self.allow_nonfinite)
        return array

    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    # --- Header information --------------------------------------------------------
    def spec(self, key: str) -> TensorSpec:
        """Shape and dtype of `key` from the header, or an error suggesting close keys."""
        try:
            return self._specs[key]
        except KeyError:
            close = difflib.get_close_matches(str(key), list(self._specs), n=3)
            hint = f"; close matches: {close}" if close else ""
            raise MissingKeyError(
                f"{self.name}: no key {key!r} among its {len(self._specs)} keys{hint}"
            ) from None

    def shape(self, key: str) -> tuple[int, ...]:
        """The stored shape of `key`, read from the header (no data is loaded)."""
        return self.spec(key).shape

    def dtype(self, key: str) -> np.dtype:
        """The stored dtype of `key`, read from the header (no data is loaded)."""
        return self.spec(key).dtype

    @property
    def specs(self) -> dict[str, jax.ShapeDtypeStruct]:
        """Every key's shape and dtype as ``jax.ShapeDtypeStruct`` (no data is loaded)."""
        return {k: jax.ShapeDtypeStruct(s.shape, s.dtype) for k, s in self._specs.items()}

    @property
    def metadata(self) -> dict[str, Any]:
        """The file's free-form metadata (safetensors ``__metadata__``, orbax custom data)."""
        return dict(self._metadata)

    @property
    def nbytes(self) -> int:
        """Total bytes of all arrays, from the header."""
        return sum(math.prod(s.shape) * s.dtype.itemsize for s in self._specs.values())

    # --- Identity ------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Weights):
            return NotImplemented
        return self._identity == other._identity and self.allow_nonfinite == other.allow_nonfinite

    def __hash__(self) -> int:
        return hash((self._identity, self.allow_nonfinite))

    def __repr__(self) -> str:
        return f"Weights({self.name!r}, format={self.format!r}, keys={len(self)})"


# Exponent masks of the 16-bit float formats: inf and NaN are those with every exponent bit
# set (IEEE 754 binary16; bfloat16 keeps float32's 8-bit exponent).
_EXPONENT_BITS = {np.dtype(np.float16): np.uint16(0x7C00),
                  np.dtype(jnp.bfloat16): np.uint16(0x7F80)}


def check_finite(name: str, key: str, array: np.ndarray, allow_nonfinite: bool) -> None:
    """Rejects NaN/inf in a float or complex array unless `allow_nonfinite`."""
    inexact = array.dtype.kind in "fc" or jax.dtypes.issubdtype(array.dtype, np.floating)
    if allow_nonfinite or not inexact:
        return
    exponent = _EXPONENT_BITS.get(array.dtype)
    if exponent is not None:  # all-ones exponent is inf/NaN: an integer test, much faster
        bits = np.ascontiguousarray(array).reshape(-1).view(np.uint16)
        # Masked values are at most the mask, which only an all-ones exponent reaches.
        # In chunks through one small buffer: no allocation the size of the array.
        buffer = np.empty(min(bits.size, 1 << 20), np.uint16)
        flagged = False
        for i in range(0, bits.size, 1 << 20):
            chunk = bits[i:i + (1 << 20)]
            masked = np.bitwise_and(chunk, exponent, out=buffer[:chunk.size])
            if masked.max() == exponent:
                flagged = True
                break
        if not flagged:
            return
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(array.size - np.count_nonzero(finite))
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise PretrainedError(
            f"{name}: key {key!r} has {bad} non-finite value(s) (first at index {first}); "
            "pass allow_nonfinite=True to accept them"
        )


def open_weights(
    source: Any,
    *,
    format: Format = "auto",
    trusted: bool = False,
    sha256: str | None = None,
    allow_nonfinite: bool = False,
) -> Weights:
    """Opens a checkpoint as a read-only, lazy mapping name -> NumPy array.

    Keys, shapes and dtypes come from the file header before any tensor is read;
    each ``weights[key]`` reads one array and checks it is numeric (bool, integer,
    float incl. bfloat16/float8, complex), has the header's shape and dtype and is
    finite. Keys of nested sources (msgpack, orbax, pytrees) are '/'-joined; flat keys
    (a PyTorch state dict's ``"layer.0.weight"``) are kept as they are.

    Nothing is ever unpickled unless ``trusted=True``, and then only through
    ``torch.load(..., weights_only=True)``; ``.npz`` files are read with
    ``allow_pickle=False``.

    Args:
      source: a path (a file, an orbax checkpoint directory, or a Hugging Face model
        directory with ``model.safetensors`` or ``model.safetensors.index.json`` and its
        shards, or with ``trusted=True`` ``pytorch_model.bin`` or its sharded index; shards
        are opened only when one of their keys is needed and its ``config.json`` is in
        ``metadata["config"]``), a mapping or pytree of
        arrays, or an existing :class:`Weights` (returned as is).
      format: "auto" (from the suffix, else the file's magic bytes), "safetensors",
        "npz", "msgpack" (Flax), "orbax", "torch" (``.pt``/``.bin``), "hf" (a Hugging
        Face safetensors directory) or "memory".
      trusted: allow PyTorch pickles (read with ``weights_only=True`` only).
      sha256: optional hex digest the file (or, for a directory, its files in sorted
        order with their relative paths) must have; checked before parsing.
      allow_nonfinite: accept NaN and inf values (rejected by default).

    Returns:
      A :class:`Weights` mapping.

    Raises:
      PretrainedError: (a ``ValueError``) naming the file or key and what is wrong:
        truncated or corrupted files, absurd headers, non-numeric dtypes, pickles
        without ``trusted=True``, a wrong sha256, non-finite values.

    Example:
      >>> import numpy as np, jaxinit
      >>> w = jaxinit.open_weights({"dense": {"kernel": np.ones((2, 3), np.float32)}})
      >>> list(w), w.shape("dense/kernel"), w.dtype("dense/kernel")
      (['dense/kernel'], (2, 3), dtype('float32'))
      >>> w["dense/kernel"].sum()
      np.float32(6.0)

    References:
      safetensors format: https://github.com/huggingface/safetensors#format
    """
    if isinstance(source, Weights):
        if sha256 is not None:
            raise TypeError("open_weights: sha256= needs a path, not an opened Weights")
        return source
    if format not in FORMATS:
        raise ValueError(f"open_weights: format={format!r} is not one of {FORMATS}")
    if isinstance(source, str | os.PathLike):
        path = pathlib.Path(source)
        if not path.exists():
            raise PretrainedError(f"{path}: no such file or directory")
        if sha256 is not None:
            check_sha256(path, sha256)
        fmt = detect_format(path) if format == "auto" else format
        if fmt == "torch" and not trusted:
            raise PretrainedError(
                f"{path}: PyTorch checkpoints are pickles, which can run arbitrary code when "
                "loaded; refusing without trusted=True (even then only "
                "torch.load(weights_only=True) is used). Prefer converting it to safetensors."
            )
        if fmt == "hf":
            from jaxinit._src.pretrained.hf_dir import open_hf_dir
            return open_hf_dir(path, allow_nonfinite, trusted)
        opener = {"safetensors": _open_safetensors, "npz": _open_npz,
                  "msgpack": _open_msgpack, "orbax": _open_orbax, "torch": _open_torch}
        if fmt not in opener:
            raise ValueError(f"open_weights: format={fmt!r} needs a path to a file")
        return opener[fmt](path, allow_nonfinite)
    if sha256 is not None:
        raise TypeError("open_weights: sha256= needs a path, not an in-memory source")
    if format not in ("auto", "memory"):
        raise TypeError(f"open_weights: format={format!r} needs a path, got {type(source)}")
    return _open_memory(source, allow_nonfinite)


# --- Helpers ----------------------------------------------------------------------------


def check_sha256(path: pathlib.Path, expected: str) -> None:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    if digest.hexdigest() != expected.lower():
        raise PretrainedError(
            f"{path}: sha256 is {digest.hexdigest()}, expected {expected}; the file is not "
            "the pinned checkpoint"
        )


def detect_format(path: pathlib.Path) -> str:
    """The format from the suffix, else from the magic bytes."""
    if path.is_dir():
        from jaxinit._src.pretrained.hf_dir import is_hf_dir
        return "hf" if is_hf_dir(path) else "orbax"
    suffix = path.suffix.lower()
    by_suffix = {".safetensors": "safetensors", ".npz": "npz", ".msgpack": "msgpack",
                 ".flax": "msgpack", ".pt": "torch", ".pth": "torch", ".bin": "torch",
                 ".ckpt": "torch"}
    if suffix in by_suffix:
        return by_suffix[suffix]
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:2] == b"PK":
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        return "torch" if any(n.endswith("data.pkl") for n in names) else "npz"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    if head[:1] == b"\x80":  # pickle protocol 2+ opcode: a legacy torch.save file
        return "torch"
    raise PretrainedError(f"{path}: cannot tell the checkpoint format; pass format=")


def file_identity(path: pathlib.Path, fmt: str) -> tuple[Any, ...]:
    stat = path.stat()
    return (fmt, str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def check_specs(name: str, specs: dict[str, TensorSpec]) -> None:
    for key, spec in specs.items():
        if not is_numeric(spec.dtype):
            raise PretrainedError(
                f"{name}: key {key!r} has dtype {spec.dtype}, which is not numeric; only bool, "
                "integer, float and complex arrays are accepted"
            )


def add_unique(name: str, flat: dict[str, Any], key: str, value: Any) -> None:
    """Adds `key` to `flat`, refusing a key two paths flatten to (``a/b`` and ``{a: {b}}``)."""
    if key in flat:
        raise PretrainedError(
            f"{name}: key {key!r} occurs twice once nested keys are '/'-joined (a flat "
            "'a/b' and a nested {'a': {'b': ...}}); rename one of them"
        )
    flat[key] = value


def leaf_to_numpy(name: str, key: str, leaf: Any) -> np.ndarray:
    """A numeric array from a NumPy/JAX array, a torch tensor or a Python number."""
    if type(leaf).__module__.startswith("torch"):
        return torch_to_numpy(name, key, leaf)
    if isinstance(leaf, bool | int | float | complex | np.generic | np.ndarray | jax.Array):
        array = np.asarray(leaf)
        if not is_numeric(array.dtype):
            raise PretrainedError(f"{name}: key {key!r} has non-numeric dtype {array.dtype}")
        return array
    raise PretrainedError(
        f"{name}: key {key!r} holds a {type(leaf).__name__}, not a numeric array"
    )


def torch_to_numpy(name: str, key: str, tensor: Any) -> np.ndarray:
    import torch

    if not isinstance(tensor, torch.Tensor):
        raise PretrainedError(f"{name}: key {key!r} holds a {type(tensor).__name__}, not a tensor")
    tensor = tensor.detach().cpu()
    special = {torch.bfloat16: (torch.int16, jnp.bfloat16),
               torch.float8_e4m3fn: (torch.uint8, jnp.float8_e4m3fn),
               torch.float8_e5m2: (torch.uint8, jnp.float8_e5m2)}
    if tensor.dtype in special:
        bits, dtype = special[tensor.dtype]
        return tensor.contiguous().view(bits).numpy().view(dtype)
    try:
        array = tensor.numpy()
    except TypeError as e:
        raise PretrainedError(
            f"{name}: key {key!r}: unsupported tensor dtype {tensor.dtype}") from e
    if not is_numeric(array.dtype):
        raise PretrainedError(f"{name}: key {key!r} has non-numeric dtype {array.dtype}")
    return array


# --- Formats --------------------------------------------------------------------------


def _open_safetensors(path: pathlib.Path, allow_nonfinite: bool) -> Weights:
    name = str(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise PretrainedError(
                f"{name}: truncated safetensors file ({size} bytes; the 8-byte header length "
                "alone needs 8)"
            )
        length = int.from_bytes(head, "little")
        if length > MAX_SAFETENSORS_HEADER:
            raise PretrainedError(
                f"{name}: safetensors header length {length} bytes is absurd (limit "
                f"{MAX_SAFETENSORS_HEADER}); the file is corrupted or hostile"
            )
        if 8 + length > size:
            raise PretrainedError(
                f"{name}: truncated safetensors file: the header claims {length} bytes but only "
                f"{size - 8} follow the length"
            )
        raw = f.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except RecursionError as e:  # nesting deeper than Python's recursion limit
        raise PretrainedError(
            f"{name}: corrupted safetensors header (JSON nested deeper than "
            f"{sys.getrecursionlimit()} levels); the file is corrupted or hostile"
        ) from e
    except ValueError as e:  # JSONDecodeError, bad UTF-8, an integer over Python's digit limit
        raise PretrainedError(f"{name}: corrupted safetensors header (not JSON: {e})") from e
    if not isinstance(header, dict):
        raise PretrainedError(f"{name}: corrupted safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise PretrainedError(f"{name}: safetensors __metadata__ is not a JSON object")
    data_start, data_size = 8 + length, size - 8 - length
    specs: dict[str, TensorSpec] = {}
    offsets: dict[str, tuple[int, int]] = {}
    for key, entry in header.items():
        bad = f"{name}: key {key!r} has a corrupted header entry {entry!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise PretrainedError(bad)
        dtype = SAFETENSORS_DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dtype is None:
            raise PretrainedError(
                f"{name}: key {key!r} has dtype {entry['dtype']!r}, which is not a supported "
                f"numeric dtype ({', '.join(SAFETENSORS_DTYPES)})"
            )
        shape, span = entry["shape"], entry["data_offsets"]
        ints = all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                   for d in [*shape, *span]) if isinstance(shape, list) and isinstance(
                       span, list) else False
        if not ints or len(span) != 2:
            raise PretrainedError(bad)
        begin, end = span
        if not begin <= end <= data_size:
            raise PretrainedError(
                f"{name}: key {key!r} spans bytes {begin}..{end} but the data section has "
                f"{data_size} bytes; the file is truncated or corrupted"
            )
        if end - begin != math.prod(shape) * dtype.itemsize:
            raise PretrainedError(
                f"{name}: key {key!r} is {entry['dtype']}{shape} "
                f"({math.prod(shape) * dtype.itemsize} bytes) but spans {end - begin} bytes; "
                "the file is corrupted"
            )
        specs[key] = TensorSpec(tuple(shape), dtype)
        offsets[key] = (begin, end)
    order = sorted(offsets, key=lambda k: offsets[k])
    position = 0
    for key in order:  # the format requires a contiguous, non-overlapping data section
        if offsets[key][0] != position:
            raise PretrainedError(
                f"{name}: key {key!r} starts at byte {offsets[key][0]}, expected {position}; "
                "tensors overlap or leave holes, so the file is corrupted"
            )
        position = offsets[key][1]
    specs = {k: specs[k] for k in order}
    check_specs(name, specs)

    def read(key: str) -> np.ndarray:
        begin, end = offsets[key]
        spec = specs[key]
        with open(path, "rb") as f:
            f.seek(data_start + begin)
            buffer = f.read(end - begin)
        if len(buffer) != end - begin:
            raise PretrainedError(f"{name}: key {key!r}: file truncated while reading")
        return np.frombuffer(buffer, dtype=spec.dtype.newbyteorder("<")).reshape(spec.shape)

    def read_slice(key: str, index: tuple[slice, ...]) -> np.ndarray:
        # Whole rows are one contiguous read; any other slice memory-maps the tensor's
        # byte range for this read only, touching just the pages holding tensor[index].
        begin, _ = offsets[key]
        spec = specs[key]
        if math.prod(spec.shape) == 0 or not spec.shape:
            return read(key)[index]
        bounds = [s.indices(n)[:2] for s, n in zip(index, spec.shape, strict=True)]
        if all(b == (0, n) for b, n in zip(bounds[1:], spec.shape[1:], strict=True)):
            # Whole rows: one contiguous byte range, read straight into the result.
            (start, stop), row = bounds[0], math.prod(spec.shape[1:]) * spec.dtype.itemsize
            out = np.empty((max(stop - start, 0), *spec.shape[1:]), spec.dtype)
            with open(path, "rb") as f:
                f.seek(data_start + begin + start * row)
                if f.readinto(out.reshape(-1).view(np.uint8).data) != out.nbytes:
                    raise PretrainedError(f"{name}: key {key!r}: file truncated while reading")
            return out
        mapped = np.memmap(path, dtype=spec.dtype.newbyteorder("<"), mode="r",
                           offset=data_start + begin, shape=spec.shape)
        try:
            return np.array(mapped[index])
        finally:
            del mapped

    return Weights(name=name, fmt="safetensors", identity=file_identity(path, "safetensors"),
                   specs=specs, reader=read, metadata=metadata, allow_nonfinite=allow_nonfinite,
                   slicer=read_slice)


def _open_npz(path: pathlib.Path, allow_nonfinite: bool) -> Weights:
    name = str(path)
    specs: dict[str, TensorSpec] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise PretrainedError(f"{name}: member {info.filename!r} is not a .npy array")
                key = info.filename[: -len(".npy")]
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                    else:
                        raise PretrainedError(f"{name}: key {key!r}: unsupported .npy {version}")
                    # The header's claim is checked against the member's size before NumPy
                    # allocates the array it declares.
                    payload = info.file_size - fh.tell()
                needed = math.prod(shape) * dtype.itemsize
                if not dtype.hasobject and needed != payload:
                    raise PretrainedError(
                        f"{name}: key {key!r} is {dtype}{list(shape)} ({needed} bytes) but its "
                        f".npy member holds {payload} data bytes; the file is corrupted"
                    )
                if dtype.hasobject:
                    raise PretrainedError(
                        f"{name}: key {key!r} is an object array, which needs pickle; refused"
                    )
                specs[key] = TensorSpec(tuple(shape), np.dtype(dtype))
    except PretrainedError:
        raise
    except Exception as e:  # BadZipFile, a corrupted .npy header, EOF
        raise PretrainedError(f"{name}: not a valid .npz file: {type(e).__name__}: {e}") from e
    check_specs(name, specs)

    def read(key: str) -> np.ndarray:
        with np.load(path, allow_pickle=False) as npz:
            return npz[key]

    return Weights(name=name, fmt="npz", identity=file_identity(path, "npz"), specs=specs,
                   reader=read, allow_nonfinite=allow_nonfinite)


def _flatten_tree(name: str, tree: Any) -> dict[str, np.ndarray]:
    """'/'-joined keys of a nested mapping/pytree (nnx Variables unwrapped) -> arrays."""
    is_leaf = None
    try:
        from flax import nnx

        def is_leaf(x: Any) -> bool:
            return isinstance(x, nnx.Variable)
    except ImportError:  # flax is optional
        pass
    flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]
    arrays: dict[str, np.ndarray] = {}
    for path, leaf in flat:
        key = path_str(path)
        if hasattr(leaf, "get_value"):
            leaf = leaf.get_value()
        add_unique(name, arrays, key, leaf_to_numpy(name, key, leaf))
    return arrays


def _from_arrays(name: str, fmt: str, identity: tuple[Any, ...], arrays: dict[str, np.ndarray],
                 allow_nonfinite: bool, keepalive: Any = None,
                 metadata: Mapping[str, Any] | None = None) -> Weights:
    specs = {k: TensorSpec(a.shape, a.dtype) for k, a in arrays.items()}
    check_specs(name, specs)
    return Weights(name=name, fmt=fmt, identity=identity, specs=specs, reader=arrays.__getitem__,
                   allow_nonfinite=allow_nonfinite, keepalive=keepalive, metadata=metadata)


def _open_msgpack(path: pathlib.Path, allow_nonfinite: bool) -> Weights:
    from flax.serialization import msgpack_restore

    name = str(path)
    try:  # msgpack is not seekable: the whole file is read (no pickle is involved)
        tree = msgpack_restore(path.read_bytes())
    except Exception as e:
        raise PretrainedError(
            f"{name}: not a valid Flax msgpack file (truncated or corrupted): "
            f"{type(e).__name__}: {e}"
        ) from e
    if not isinstance(tree, dict):
        raise PretrainedError(f"{name}: a Flax msgpack checkpoint must hold a mapping, "
                              f"got {type(tree).__name__}")
    try:
        arrays = _flatten_tree(name, tree)
    except PretrainedError:
        raise
    except (TypeError, ValueError) as e:  # e.g. int and str keys in one map: no order
        raise PretrainedError(
            f"{name}: the msgpack tree has keys that cannot be ordered (mixed types in one "
            f"map): {type(e).__name__}: {e}"
        ) from e
    return _from_arrays(name, "msgpack", file_identity(path, "msgpack"), arrays, allow_nonfinite)


def _open_orbax(path: pathlib.Path, allow_nonfinite: bool) -> Weights:
    import orbax.checkpoint as ocp

    name = str(path)
    checkpointer = ocp.StandardCheckpointer()
    try:
        tree = checkpointer.metadata(path.resolve()).item_metadata.tree
        flat = jax.tree_util.tree_flatten_with_path(tree)[0]
        specs: dict[str, TensorSpec] = {}
        for p, m in flat:
            add_unique(name, specs, path_str(p), TensorSpec(tuple(m.shape), np.dtype(m.dtype)))
    except PretrainedError:
        raise
    except Exception as e:
        raise PretrainedError(f"{name}: not a readable orbax checkpoint: "
                              f"{type(e).__name__}: {e}") from e
    check_specs(name, specs)
    cache: dict[str, np.ndarray] = {}

    def read(key: str) -> np.ndarray:
        if not cache:  # orbax restores a tree at once; the metadata came first
            # Restored as NumPy (restore_type=np.ndarray): no device copy, and int64 stays
            # int64 without x64.
            args = jax.tree.map(lambda m: ocp.RestoreArgs(restore_type=np.ndarray), tree)
            restored = ocp.PyTreeCheckpointer().restore(
                path.resolve(), args=ocp.args.PyTreeRestore(restore_args=args))
            flat_restored = jax.tree_util.tree_flatten_with_path(restored)[0]
            cache.update({path_str(p): np.asarray(a) for p, a in flat_restored})
        return cache[key]

    return Weights(name=name, fmt="orbax", identity=file_identity(path, "orbax"), specs=specs,
                   reader=read, allow_nonfinite=allow_nonfinite)


def torch_storage_sizes(name: str, pickle: bytes) -> dict[str, tuple[str, int, str]]:
    """Storage key -> (storage type, element count, state-dict key) from a ``.pt`` data.pkl.

    The pickle is only scanned (``pickletools.genops``), never run: each persistent id
    ``('storage', type, key, location, numel)`` is rebuilt from the opcodes that push it,
    and the state-dict key is the string just below the tensor's rebuild call (the
    innermost key; the storage key where there is none).
    """
    stack: list[Any] = []
    memo: dict[Any, Any] = {}
    mark = object()
    storages: dict[str, tuple[str, int, str]] = {}
    try:
        ops = list(pickletools.genops(pickle))
    except Exception as e:
        raise PretrainedError(f"{name}: corrupted data.pkl: {type(e).__name__}: {e}") from e
    for op, arg, _ in ops:
        if op.name == "MARK":
            stack.append(mark)
        elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = stack[-1] if stack else None
        elif op.name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo.get(arg))
        elif op.name == "GLOBAL":
            stack.append(str(arg))
        elif op.name == "TUPLE":
            at = len(stack) - 1 - stack[::-1].index(mark) if mark in stack else 0
            stack[at:] = [tuple(stack[at + 1:])]
        elif op.name == "BINPERSID":
            pid = stack.pop() if stack else None
            if (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                    and isinstance(pid[2], str) and isinstance(pid[4], int)):
                owner = stack[-3] if len(stack) >= 3 and isinstance(stack[-3], str) else pid[2]
                storages.setdefault(pid[2], (str(pid[1]), pid[4], owner))
            stack.append(None)
        elif op.stack_before and pickletools.markobject in op.stack_before:
            at = len(stack) - 1 - stack[::-1].index(mark) if mark in stack else 0
            del stack[at:]
            stack.extend([None] * len(op.stack_after))
        else:
            if op.stack_before:
                del stack[len(stack) - len(op.stack_before):]
            stack.extend([arg if op.arg is not None else None] * len(op.stack_after))
    return storages


def check_torch_zip(name: str, path: pathlib.Path) -> None:
    """Every storage a ``.pt`` zip declares must fit in its ``data/<key>`` record."""
    import torch

    try:
        with zipfile.ZipFile(path) as zf:
            records = {i.filename: i.file_size for i in zf.infolist()}
            pkl = [f for f in records if f.endswith("data.pkl") and f.count("/") == 1]
            if len(pkl) != 1:
                raise PretrainedError(f"{name}: a PyTorch zip needs one <archive>/data.pkl")
            prefix = pkl[0][: -len("data.pkl")]
            storages = torch_storage_sizes(name, zf.read(pkl[0]))
    except PretrainedError:
        raise
    except Exception as e:  # a damaged zip: BadZipFile, OSError, a bad name or CRC, zlib
        raise PretrainedError(
            f"{name}: not a readable PyTorch zip (truncated or corrupted): "
            f"{type(e).__name__}: {e}"
        ) from e
    for storage, (kind, numel, key) in storages.items():
        cls = getattr(torch, kind.split(" ")[-1], None)
        dtype = getattr(cls, "_dtype", None)  # `.dtype` warns that TypedStorage is deprecated
        if not isinstance(dtype, torch.dtype):
            raise PretrainedError(f"{name}: key {key!r}: storage type {kind!r} is unknown")
        needed = numel * dtype.itemsize
        record = f"{prefix}data/{storage}"
        if records.get(record, -1) < needed:
            raise PretrainedError(
                f"{name}: key {key!r}: the pickle declares a {kind.split(' ')[-1]} of {numel} "
                f"elements ({needed} bytes) but record {record!r} holds "
                f"{records.get(record, 'no')} bytes; the file is truncated or corrupted"
            )


def _open_torch(path: pathlib.Path, allow_nonfinite: bool) -> Weights:
    import torch

    name = str(path)
    try:
        is_zip = zipfile.is_zipfile(path)
    except zipfile.BadZipFile as e:  # is_zipfile itself raises on some damaged end records
        raise PretrainedError(
            f"{name}: not a readable PyTorch zip (truncated or corrupted): {e}") from e
    if is_zip:
        check_torch_zip(name, path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as e:  # UnpicklingError for anything beyond tensors and containers
        raise PretrainedError(
            f"{name}: torch.load(weights_only=True) refused or failed (only tensors and plain "
            f"containers are allowed): {type(e).__name__}: {e}"
        ) from e
    if not isinstance(obj, Mapping):
        raise PretrainedError(f"{name}: expected a state dict, got {type(obj).__name__}")
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(f"{prefix}/{k}" if prefix else str(k), v)
        else:
            add_unique(name, flat, prefix, node)

    walk("", obj)
    specs: dict[str, TensorSpec] = {}
    for key, tensor in flat.items():
        if not isinstance(tensor, torch.Tensor):
            raise PretrainedError(
                f"{name}: key {key!r} holds a {type(tensor).__name__}, not a tensor")
        probe = torch_to_numpy(name, key, torch.empty(0, dtype=tensor.dtype))
        specs[key] = TensorSpec(tuple(tensor.shape), probe.dtype)
    check_specs(name, specs)
    return Weights(name=name, fmt="torch", identity=file_identity(path, "torch"), specs=specs,
                   reader=lambda key: torch_to_numpy(name, key, flat[key]),
                   allow_nonfinite=allow_nonfinite)


def _open_memory(source: Any, allow_nonfinite: bool) -> Weights:
    name = f"<in-memory {type(source).__name__}>"
    if isinstance(source, np.ndarray | jax.Array):
        raise TypeError(f"open_weights: got a bare array of shape {source.shape}; "
                        "pass a mapping of names to arrays")
    arrays = _flatten_tree(name, source)
    if not arrays:
        raise PretrainedError(f"{name}: the source holds no arrays")
    return _from_arrays(name, "memory", ("memory", id(source)), arrays, allow_nonfinite,
                        keepalive=source)
