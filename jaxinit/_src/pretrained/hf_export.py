r"""`save_hf`: write Flax parameters back as a Hugging Face safetensors directory.

The inverse of loading with rules: each target path is matched against the rules'
templates, the checkpoint key is rebuilt from the rule's regex with the captured values,
and the layout transform is undone; a stacked (scanned) leaf, loaded by a template
ending in ``[i]`` (``[i,j]``), is written one key per slice of its leading axes. Axis
permutations (``jaxinit.layout.linear``: :math:`W = K^\top`; ``layout.conv``) are
inverted; the outputs of a splitting transform (GPT-2's fused ``c_attn`` -> q, k, v)
are concatenated back along the axis, and in the order, for which the transform returns
each of them exactly. A path whose rule has another transform, or that no rule names,
is an error. Every rebuilt key is checked by loading it forward again
(``re.fullmatch`` plus ``Match.expand`` must give the path).

References:
  https://huggingface.co/docs/safetensors/index
  https://huggingface.co/docs/transformers/main_classes/model#transformers.PreTrainedModel.save_pretrained
"""

from __future__ import annotations

import itertools
import json
import math
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit._src.pretrained.errors import PretrainedError
from jaxinit._src.pretrained.formats import SAFETENSORS_DTYPES
from jaxinit._src.pretrained.hf_dir import INDEX, SINGLE
from jaxinit._src.pretrained.plan import Index, Rule, flatten_target, slice_label
from jaxinit._src.pretrained.stream import axis_permutation

_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20,
          "GIB": 2**30}
_CODES = {v: k for k, v in SAFETENSORS_DTYPES.items()}
# A stored tensor to write: (checkpoint key, inverse axis permutation or None, the
# parameter, the slice of it (() for all of a leaf, (i,) for layer i of a stacked one)).
_Entry = tuple[str, tuple[int, ...] | None, Any, Index]
_Part = tuple[str, Any, Index]  # one output of a split key: (label, parameter, slice)


def parse_size(name: str, size: int | str) -> int:
    """Bytes from an int or a string such as ``"5GB"``, ``"20KB"`` or ``"1GiB"``."""
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)\s*", str(size), re.IGNORECASE) \
        if isinstance(size, str) else None
    if match is None:
        raise ValueError(f"{name}: max_shard_size={size!r} is not a positive int of bytes or "
                         "a size such as '5GB', '200MB', '1GiB'")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _unregex(node: Any, groups: Mapping[int, str]) -> str | None:
    """A string the parsed regex matches, with capture group i replaced by ``groups[i]``
    (optional parts included once); None for a construct with no single such string."""
    from re import _constants as c  # type: ignore[attr-defined]

    out = []
    for op, av in node:
        if op is c.LITERAL:
            out.append(chr(av))
        elif op is c.SUBPATTERN:
            gid, sub = av[0], av[3]
            part = groups[gid] if gid in groups else _unregex(sub, groups)
            if part is None:
                return None
            out.append(part)
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT) and av[1] in (1, av[0]) and av[0] <= 1:
            part = _unregex(av[2], groups) if av[1] == 1 else ""
            if part is None:
                return None
            out.append(part)
        else:
            return None
    return "".join(out)


def _output_names(transform: Any, ndim: int) -> set[str]:
    """The names a mapping-returning transform gives, from a small probe of rank `ndim`."""
    try:
        out = transform(np.zeros((6,) * ndim, np.float32))
    except Exception:  # not a transform of this rank
        return set()
    return set(out) if isinstance(out, Mapping) else set()


def hf_key(path: str, rules: Sequence[Rule], *, output_ndim: int | None = None
           ) -> tuple[str, Any, str] | None:
    """``(checkpoint key, transform, "")`` of the first rule that loads `path`, or None.

    With `output_ndim`, `path` is instead one output ``template/<name>`` (of that rank)
    of a rule whose transform returns a mapping; the last entry is that ``<name>``."""
    output = output_ndim is not None
    from re import _parser as p  # type: ignore[attr-defined]

    for regex, template, transform in rules:
        if template is None:
            continue
        pattern, seen, pos = "", set(), 0
        for ref in re.finditer(r"\\(\d+)|\\g<(\d+)>", template):  # \1 or \g<1>
            gid = ref.group(1) or ref.group(2)
            pattern += re.escape(template[pos:ref.start()])
            pattern += f"(?P=g{gid})" if gid in seen else f"(?P<g{gid}>.+?)"
            seen.add(gid)
            pos = ref.end()
        pattern += re.escape(template[pos:])
        if output:
            pattern += r"/(?P<output>.+)"
        match = re.fullmatch(pattern, path)
        if match is None:
            continue
        groups = {int(k[1:]): v for k, v in match.groupdict().items() if k != "output"}
        key = _unregex(p.parse(regex), groups)
        back = re.fullmatch(regex, key) if key is not None else None
        loaded = back.expand(template) if back is not None else None
        if output and loaded is not None:
            loaded += "/" + match.group("output")
        if output and (transform is None or match.group("output") not in _output_names(
                transform, output_ndim)):  # type: ignore[arg-type]
            continue
        if key is not None and loaded == path:
            return key, transform, match.group("output") if output else ""
    return None


def save_hf(
    params: Any,
    path: str | os.PathLike[str],
    *,
    rules: Sequence[Rule],
    config: Mapping[str, Any],
    max_shard_size: int | str = "5GB",
) -> pathlib.Path:
    r"""Writes parameters as a Hugging Face directory that ``from_pretrained`` loads.

    Writes ``model-0000i-of-0000n.safetensors`` shards of at most `max_shard_size`
    bytes each (a larger tensor gets a shard of its own) with
    ``model.safetensors.index.json``, or a single ``model.safetensors`` when everything
    fits in one, and ``config.json``. Names and layouts are the inverse of `rules`
    (see the module docstring): ``K`` (in, out) is written as ``W = K^\top`` (out, in).
    Everything is written into a temporary directory next to `path`, which is renamed
    to `path` only when complete, so a failure leaves nothing behind.

    Args:
      params: an nnx module or state, linen variables, or a pytree of arrays (fully
        addressable: one process).
      path: the directory to create (it must not exist, or be empty).
      rules: the rules that load such a checkpoint, e.g. ``jaxinit.hf.rules("llama",
        model)``.
      config: the model's ``config.json`` contents, e.g. ``transformers``'
        ``config.to_dict()``.
      max_shard_size: bytes, or a size such as ``"5GB"`` or ``"200MB"``.

    Returns:
      The written directory.

    Raises:
      PretrainedError: a parameter no rule names (the error names its path), one whose
        transform cannot be undone, two parameters written to one key, or an existing
        non-empty `path`.
      TypeError: `config` is not a JSON-serializable mapping.

    Example:
      >>> import tempfile, numpy as np, jaxinit
      >>> params = {"fc": {"kernel": np.arange(6, dtype=np.float32).reshape(3, 2)}}
      >>> rules = [(r"fc\.weight", "fc/kernel", jaxinit.layout.linear)]
      >>> out = jaxinit.save_hf(params, tempfile.mkdtemp() + "/m", rules=rules, config={})
      >>> jaxinit.open_weights(out)["fc.weight"].tolist()
      [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]
    """
    out = pathlib.Path(path)
    limit = parse_size("save_hf", max_shard_size)
    if not isinstance(config, Mapping):
        raise TypeError(f"save_hf: config must be a mapping (config.json), got "
                        f"{type(config).__name__}")
    try:
        config_text = json.dumps(dict(config), indent=2, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_hf: config is not JSON-serializable: {e}") from e
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PretrainedError(f"{out}: exists and is not an empty directory; save_hf writes "
                              "a new directory")

    # --- Plan: every name, layout and shard before anything is written --------------
    tgt = flatten_target(params)
    entries: list[_Entry] = []
    owner: dict[str, str] = {}
    split: dict[str, tuple[Any, dict[str, _Part]]] = {}  # key -> transform, outputs
    for leaf_path, leaf in tgt.values.items():
        if isinstance(leaf, jax.ShapeDtypeStruct):
            raise PretrainedError(f"save_hf: parameter {leaf_path!r} is abstract "
                                  "(jax.ShapeDtypeStruct); there are no values to save")
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            raise PretrainedError(f"save_hf: parameter {leaf_path!r} is spread over several "
                                  "processes; gather it first (jax.experimental.multihost_utils"
                                  ".process_allgather) or save from one process")
        if np.dtype(leaf.dtype) not in _CODES:
            raise PretrainedError(f"save_hf: parameter {leaf_path!r} has dtype {leaf.dtype}, "
                                  "which safetensors cannot store")
        for index, key, transform, output in _sources(leaf_path, tuple(leaf.shape), rules):
            label = slice_label(leaf_path, index or None)
            if output:  # one output of a splitting rule
                split.setdefault(key, (transform, {}))[1][output] = (label, leaf, index)
                continue
            if key in owner:
                raise PretrainedError(f"save_hf: parameters {owner[key]!r} and {label!r} "
                                      f"would both be written to {key!r}")
            owner[key] = label
            perm = _inverse(label, key, transform, tuple(leaf.shape)[len(index):])
            entries.append((key, perm, leaf, index))
    for key, (transform, outputs) in split.items():
        first = next(iter(outputs.values()))[0]
        if key in owner:
            raise PretrainedError(f"save_hf: parameters {owner[key]!r} and {first!r} would "
                                  f"both be written to {key!r}")
        owner[key] = first
        entries.append((key, None, _join(key, transform, outputs), ()))
    shards: list[list[int]] = []
    size = 0
    for i, (_, _, leaf, index) in enumerate(entries):
        nbytes = math.prod(leaf.shape[len(index):]) * np.dtype(leaf.dtype).itemsize
        if not shards or (size + nbytes > limit and shards[-1]):
            shards.append([])
            size = 0
        shards[-1].append(i)
        size += nbytes
    names = ([SINGLE] if len(shards) == 1 else
             [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])

    # --- Write into a temporary sibling, then rename -------------------------------------
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        weight_map, total = {}, 0
        for name, members in zip(names, shards, strict=True):
            total += _write_shard(tmp / name, [entries[i] for i in members])
            weight_map.update({entries[i][0]: name for i in members})
        if len(shards) > 1:
            listing = {"metadata": {"total_size": total}, "weight_map": weight_map}
            (tmp / INDEX).write_text(json.dumps(listing, indent=2))
        (tmp / "config.json").write_text(config_text)
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _sources(path: str, shape: tuple[int, ...], rules: Sequence[Rule]
             ) -> list[tuple[Index, str, Any, str]]:
    """``(slice index, checkpoint key, transform, output name)`` for each stored tensor a
    parameter is written to, by the first rule that loads it: one for a leaf the rule
    loads whole (index ``()``, output ``""``), one output of a splitting rule, or, for a
    stacked (scanned) leaf whose template ends in ``[i]`` (``[i,j]``), one per slice of its
    leading axes."""
    for rule in rules:
        found = _rule_sources(path, shape, rule)
        if found is not None:
            return found
    raise PretrainedError(f"save_hf: parameter {path!r} has no Hugging Face name: "
                          "no rule's template gives this path")


def _rule_sources(path: str, shape: tuple[int, ...], rule: Rule
                  ) -> list[tuple[Index, str, Any, str]] | None:
    """`_sources` by `rule` alone, or None when it does not load `path`."""
    rules = [rule]
    found = hf_key(path, rules)
    if found is not None:
        return [((), found[0], found[1], "")]
    part = hf_key(path, rules, output_ndim=len(shape))
    if part is not None:
        return [((), *part)]
    parts = path.split("/")
    for depth in (1, 2):
        for cut in range(len(parts), 0, -1):  # where the template's `[i]` sits
            head, tail = "/".join(parts[:cut]), "/".join(parts[cut:])
            if len(shape) <= depth or _slice_key(head, tail, (0,) * depth, shape, rules) is None:
                continue
            out = []
            for index in itertools.product(*map(range, shape[:depth])):
                found = _slice_key(head, tail, index, shape, rules)
                if found is None:
                    raise PretrainedError(f"save_hf: parameter {path!r} is stacked, but slice "
                                          f"{list(index)} has no Hugging Face name")
                out.append((index, *found))
            return out
    return None


def _slice_key(head: str, tail: str, index: Index, shape: tuple[int, ...],
               rules: Sequence[Rule]) -> tuple[str, Any, str] | None:
    """`hf_key` of slice `index` of a stacked leaf ``head/tail`` whose template ends at
    `head` (`tail`: the output name of a splitting rule, or "")."""
    label = slice_label(head, index) + (f"/{tail}" if tail else "")
    return hf_key(label, rules, output_ndim=len(shape) - len(index) if tail else None)


def _inverse(label: str, key: str, transform: Any, shape: tuple[int, ...]
             ) -> tuple[int, ...] | None:
    """The permutation that undoes `transform` on a target array of `shape` (None: the
    array is stored as it is); an error if the transform is not an axis permutation."""
    if transform is None:
        return None
    probe = axis_permutation(transform, tuple(range(2, 2 + len(shape))))
    inverse = tuple(int(i) for i in np.argsort(probe)) if probe is not None else None
    stored = tuple(shape[i] for i in inverse) if inverse is not None else None
    if inverse is None or axis_permutation(transform, stored) is None:  # type: ignore[arg-type]
        raise PretrainedError(f"save_hf: parameter {label!r} is loaded from {key!r} through "
                              f"{transform!r}, which is not an axis permutation, so it "
                              "cannot be undone")
    return inverse


def _join(key: str, transform: Any, outputs: Mapping[str, _Part]) -> np.ndarray:
    """The stored tensor a splitting transform (GPT-2's fused ``c_attn`` -> q, k, v) was
    applied to: the outputs concatenated along the axis, and in the order, for which
    ``transform`` gives every output back exactly."""
    arrays = {name: _host(leaf, index) for name, (_, leaf, index) in outputs.items()}
    first = next(iter(arrays.values()))
    for axis in range(first.ndim):
        order = list(arrays)
        for _ in range(2):  # as listed, then in the order the transform returns them
            try:
                candidate = np.concatenate([arrays[n] for n in order], axis=axis)
                out = transform(candidate)
            except Exception:  # shapes that do not concatenate, or the transform refuses
                break
            if not isinstance(out, Mapping) or set(out) != set(arrays):
                break
            if all(np.asarray(out[n]).shape == arrays[n].shape
                   and np.array_equal(np.asarray(out[n]), arrays[n]) for n in arrays):
                return candidate
            order = list(out)
    paths = sorted(label for label, _, _ in outputs.values())
    raise PretrainedError(f"save_hf: parameters {paths} are loaded from {key!r} through "
                          f"{transform!r}, which cannot be undone: no concatenation of them "
                          "gives them back")


def _host(leaf: Any, index: Index) -> np.ndarray:
    """A parameter, or one slice of a stacked one, as a host array."""
    return np.asarray(jax.device_get(leaf[index] if index else leaf))


def _write_shard(file: pathlib.Path, entries: list[_Entry]) -> int:
    """One safetensors file, tensors in key order, each fetched to the host in turn."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    ordered = sorted(entries, key=lambda e: e[0])
    for key, perm, leaf, index in ordered:
        stacked = leaf.shape[len(index):]
        shape = list(stacked) if perm is None else [stacked[i] for i in perm]
        nbytes = math.prod(shape) * np.dtype(leaf.dtype).itemsize
        header[key] = {"dtype": _CODES[np.dtype(leaf.dtype)], "shape": shape,
                       "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data section starts 8-byte aligned
    with open(file, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for _, perm, leaf, index in ordered:
            array = _host(leaf, index)
            if perm is not None:
                array = array.transpose(perm)
            f.write(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    return offset
