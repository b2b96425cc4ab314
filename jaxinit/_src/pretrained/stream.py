r"""`stream_pretrained`: load a checkpoint straight into sharded arrays, slice by slice.

For an abstract target (``jax.eval_shape`` / ``nnx.eval_shape`` output whose
``jax.ShapeDtypeStruct`` leaves carry a ``.sharding``) every leaf is built with
``jax.make_array_from_callback``: for each device this process addresses, only the part
of the tensor that device holds is read from the file (``Weights.read_slice``), cast and
placed. Host memory therefore peaks near the largest slice, not the checkpoint, and in a
multi-process run (``jax.distributed``) each process reads only its own devices' slices.

Layout transforms that are axis permutations (``jaxinit.layout.linear``, :math:`K =
W^\top`; ``layout.conv``) are applied to the slice: the target index
:math:`(s_0, \dots, s_{n-1})` of :math:`K = W.\mathrm{transpose}(p)` reads
:math:`W[t]` with :math:`t_{p_j} = s_j`, then transposes it by :math:`p`. Any other
transform (a reshape, a split returning a mapping) needs the whole tensor: it is read
once, converted on the host, and sliced from there (listed in ``report.full_reads``).

References:
  https://docs.jax.dev/en/latest/_autosummary/jax.make_array_from_callback.html
  https://docs.jax.dev/en/latest/multi_process.html
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit._src.core.base import check_choice
from jaxinit._src.pretrained.errors import PretrainedError
from jaxinit._src.pretrained.formats import Format, Weights, open_weights
from jaxinit._src.pretrained.initializer import CastInfo, cast
from jaxinit._src.pretrained.layout import layout_hint
from jaxinit._src.pretrained.merge import (
    Policy,
    Rule,
    _apply,
    _compile,
    _enforce,
    _flatten_target,
    _outputs,
)
from jaxinit._src.pretrained.report import LoadReport, Mismatch

_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19)


@dataclasses.dataclass
class StreamReport(LoadReport):
    """A :class:`LoadReport` with what this process read.

    Attributes:
      bytes_read: checkpoint bytes this process read (each distinct slice once).
      full_reads: checkpoint keys read whole: their transform is not an axis
        permutation, or the format cannot read a slice alone (anything but safetensors).
    """

    bytes_read: int = 0
    full_reads: list[str] = dataclasses.field(default_factory=list)


def axis_permutation(transform: Callable[[Any], Any] | None,
                     shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The permutation `p` with ``transform(x) == x.transpose(p)`` for arrays of `shape`'s
    rank, or None when `transform` is not one (found on a probe ``arange`` whose axes have
    distinct prime sizes, then checked against the real shape)."""
    rank = len(shape)
    if transform is None:
        return tuple(range(rank))
    if rank > len(_PRIMES):
        return None
    probe = np.arange(math.prod(_PRIMES[:rank])).reshape(_PRIMES[:rank])
    try:
        out = transform(probe)
        if isinstance(out, Mapping):
            return None
        out = np.asarray(out)
        perm = tuple(_PRIMES[:rank].index(n) for n in out.shape)
        real = jax.eval_shape(transform, jax.ShapeDtypeStruct(shape, np.float32)).shape
    except Exception:  # not shape-polymorphic, not an array, sizes not a permutation
        return None
    if sorted(perm) != list(range(rank)) or not np.array_equal(out, probe.transpose(perm)):
        return None
    return perm if tuple(real) == tuple(shape[p] for p in perm) else None


def _concrete(index: tuple[Any, ...], shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(*s.indices(n)[:2]) for s, n in zip(index, shape, strict=True))


def stream_pretrained(
    target: Any,
    source: Any,
    *,
    rules: Sequence[Rule] = (),
    ignore: Sequence[str] | str = (),
    on_unexpected: Policy = "warn",
    on_mismatch: Policy = "error",
    format: Format = "auto",
    trusted: bool = False,
    sha256: str | None = None,
    allow_nonfinite: bool = False,
) -> tuple[Any, StreamReport]:
    r"""Loads a checkpoint into an abstract, sharded target, reading only local slices.

    Keys are mapped to target paths exactly as in :func:`jaxinit.load_pretrained`
    (first fully matching rule, ``re.Match.expand`` templates, transforms). Each abstract
    leaf (``jax.ShapeDtypeStruct``) becomes a ``jax.Array`` in the leaf's ``.sharding``
    (its first local device when it has none); each device's part is read straight from
    the file, so a fully sharded leaf costs each of :math:`n` devices
    :math:`\text{nbytes}/n` and no host ever holds the whole tensor. Concrete leaves the
    checkpoint does not provide are kept; an abstract leaf it does not provide is an
    error. Everything is planned and checked (keys, shapes) before anything is read.

    Args:
      target: an abstract tree of ``jax.ShapeDtypeStruct`` (with shardings), an nnx
        module or state from ``nnx.eval_shape``, or linen variables.
      source: anything :func:`jaxinit.open_weights` accepts; slices are read without
        the rest of the tensor from safetensors files and Hugging Face safetensors
        directories (other formats read each tensor whole).
      rules, ignore, on_unexpected, on_mismatch: as in :func:`jaxinit.load_pretrained`.
      format, trusted, sha256, allow_nonfinite: as in :func:`jaxinit.open_weights`.

    Returns:
      ``(result, report)``: the target with ``jax.Array`` leaves (an nnx module is
      updated in place) and a :class:`StreamReport` (``bytes_read`` by this process).

    Raises:
      PretrainedError: a refused file, a shape mismatch, an abstract leaf left unfilled,
        an overflowing cast or non-finite values; nothing is returned half-loaded.

    Example:
      >>> import jax, numpy as np, jaxinit
      >>> target = {"fc": {"kernel": jax.ShapeDtypeStruct((3, 2), np.float32)}}
      >>> ckpt = {"fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}
      >>> rules = [(r"fc\.weight", "fc/kernel", jaxinit.layout.linear)]
      >>> params, report = jaxinit.stream_pretrained(target, ckpt, rules=rules)
      >>> params["fc"]["kernel"].tolist(), report.bytes_read
      ([[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]], 24)
    """
    check_choice("stream_pretrained", "on_unexpected", on_unexpected, ("ignore", "warn", "error"))
    check_choice("stream_pretrained", "on_mismatch", on_mismatch, ("ignore", "warn", "error"))
    compiled = []
    for i, rule in enumerate(rules):
        if not (isinstance(rule, tuple | list) and len(rule) == 3):
            raise TypeError(f"stream_pretrained: rules[{i}]={rule!r} is not a "
                            "(source_regex, target_template, transform_or_None) triple")
        if rule[2] is not None and not callable(rule[2]):
            raise TypeError(f"stream_pretrained: rules[{i}] transform {rule[2]!r} is not "
                            "callable")
        compiled.append((_compile(f"rules[{i}]", rule[0])[0], rule[1], rule[2]))
    ignore_res = _compile("ignore", ignore)
    weights = open_weights(source, format=format, trusted=trusted, sha256=sha256,
                           allow_nonfinite=allow_nonfinite)
    tgt = _flatten_target(target)
    report = StreamReport(source=weights.name, collections=tgt.collections)

    # --- Plan: every key mapped and every shape checked before any data is read -----------
    plan: dict[str, list[tuple[str, str]]] = {}
    transforms: dict[str, Callable[[Any], Any] | None] = {}
    claimed: dict[str, str] = {}
    for key in weights:
        if any(r.fullmatch(key) for r in ignore_res):
            report.ignored.append(key)
            continue
        path, transform = _match(key, compiled)
        if path is None:
            report.ignored.append(key)
            continue
        outputs = _outputs(weights, key, transform)
        if outputs is None:
            raise PretrainedError(
                f"{weights.name}: the transform {transform!r} for key {key!r} cannot be "
                "traced by jax.eval_shape, so its output shapes are unknown before reading; "
                "use jaxinit.load_pretrained for it")
        transforms[key] = transform
        _plan(key, path, outputs, tgt.values, report, plan, claimed)
    report.missing = [p for p in tgt.values if p not in claimed]
    _enforce(report, "keep_init", on_unexpected, on_mismatch)
    planned = {p for outs in plan.values() for _, p in outs}
    abstract = [p for p, v in tgt.values.items()
                if isinstance(v, jax.ShapeDtypeStruct) and p not in planned]
    if abstract:
        raise PretrainedError(
            f"{weights.name}: {len(abstract)} abstract target leaves would stay unfilled "
            f"(first: {abstract[:5]}); the checkpoint must provide every abstract leaf\n"
            f"{report}")

    # --- Execute: one leaf at a time, each device's slice read straight from the file -----
    new: dict[str, Any] = {}
    for key, outs in plan.items():
        # Slices are read on their own only where the format can (safetensors); other
        # formats read each tensor whole, so it is read once and sliced on the host.
        perm = axis_permutation(transforms[key], weights.shape(key)) \
            if outs[0][0] == "" and weights.can_slice else None
        if perm is not None:
            path = outs[0][1]
            new[path] = _stream_leaf(weights, key, perm, tgt.values[path], path, report)
        else:
            report.full_reads.append(key)
            out = _apply(weights, key, transforms[key])
            report.bytes_read += weights.spec(key).dtype.itemsize * math.prod(weights.shape(key))
            for name, path in outs:
                host = np.asarray(out[name])
                new[path] = _place(host.shape, tgt.values[path], path, report,
                                   host.__getitem__, f"key {key!r}")
        report.loaded.update({p: key for _, p in outs})
    report.loaded = {p: report.loaded[p] for p in tgt.values if p in report.loaded}
    return tgt.rebuild(new), report


def _plan(key: str, path: str, outputs: Mapping[str, Any], values: Mapping[str, Any],
          report: StreamReport, plan: dict[str, list[tuple[str, str]]],
          claimed: dict[str, str]) -> None:
    """Each output of `key` -> its target leaf, or reported unexpected / mismatched."""
    for name, struct in outputs.items():
        full = f"{path}/{name}" if name else path
        if full not in values:
            report.unexpected.append(key if full == key else f"{key} -> {full}")
            continue
        if full in claimed:
            raise PretrainedError(f"{report.source}: keys {claimed[full]!r} and {key!r} both map "
                                  f"to target {full!r}; fix the rules")
        claimed[full] = key
        stored, wanted = tuple(struct.shape), tuple(values[full].shape)
        if stored != wanted:
            report.mismatched.append(Mismatch(key, full, stored, wanted,
                                              layout_hint(stored, wanted)))
            continue
        plan.setdefault(key, []).append((name, full))


def _match(key: str, compiled: list[tuple[re.Pattern[str], str | None, Any]]
           ) -> tuple[str | None, Any]:
    for pattern, template, transform in compiled:
        match = pattern.fullmatch(key)
        if match:
            if template is None:
                return None, None
            try:
                return match.expand(template), transform
            except (re.error, IndexError) as e:
                raise ValueError(f"stream_pretrained: template {template!r} for key "
                                 f"{key!r}: {e}") from e
    return key, None


def _stream_leaf(weights: Weights, key: str, perm: tuple[int, ...], leaf: Any, path: str,
                 report: StreamReport) -> jax.Array:
    stored = weights.shape(key)
    itemsize = weights.spec(key).dtype.itemsize

    def read(index: tuple[slice, ...]) -> np.ndarray:
        source_index = [slice(None)] * len(stored)
        for j, p in enumerate(perm):
            source_index[p] = index[j]
        part = weights.read_slice(key, tuple(source_index))
        report.bytes_read += part.size * itemsize
        return part.transpose(perm)

    shape = tuple(stored[p] for p in perm)
    return _place(shape, leaf, path, report, read, f"key {key!r}")


def _place(shape: tuple[int, ...], leaf: Any, path: str, report: StreamReport,
           read: Callable[[tuple[slice, ...]], np.ndarray], what: str) -> jax.Array:
    """``make_array_from_callback`` in the leaf's sharding and dtype, each distinct slice
    read once (replicated devices share it), cast on the host."""
    sharding = getattr(leaf, "sharding", None)
    if sharding is None:
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    try:
        sharding.shard_shape(shape)
    except ValueError as e:
        raise ValueError(f"stream_pretrained: target leaf {path!r} of shape {shape} has "
                         f"sharding {sharding}, which does not divide it: {e}") from e
    dtype = np.dtype(leaf.dtype)
    where = f"{report.source}: {what} -> {path}"
    cache: dict[tuple[tuple[int, int], ...], np.ndarray] = {}
    underflow, source_dtype = 0, None

    def callback(index: tuple[slice, ...] | None) -> np.ndarray:
        nonlocal underflow, source_dtype
        assert index is not None  # jax passes one slice per axis
        index = _concrete(index, shape)
        spans = tuple((s.start, s.stop) for s in index)
        if spans not in cache:
            part, info = cast(where, read(index), dtype)
            if info is not None:
                underflow, source_dtype = underflow + info.underflow, info.source_dtype
            cache[spans] = part
        return cache[spans]

    array = jax.make_array_from_callback(shape, sharding, callback)
    if source_dtype is not None:
        report.cast.append(CastInfo(path, source_dtype, str(dtype), 0, underflow))
    return array
