"""`load_pretrained`: merge a checkpoint into fresh (or abstract) parameters, atomically."""

from __future__ import annotations

import dataclasses
import itertools
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.compose.paths import path_str
from jaxinit._src.core.base import check_choice
from jaxinit._src.pretrained.errors import PretrainedError
from jaxinit._src.pretrained.formats import Format, Weights, open_weights
from jaxinit._src.pretrained.initializer import cast
from jaxinit._src.pretrained.layout import layout_hint
from jaxinit._src.pretrained.report import LoadReport, Mismatch

Rule = tuple[str, str | None, Callable[[Any], Any] | None]
OnMissing = Literal["keep_init", "warn", "error"]
Policy = Literal["ignore", "warn", "error"]


class LoadWarning(UserWarning):
    """Emitted by :func:`load_pretrained` for ``on_*="warn"`` problems."""


@dataclasses.dataclass
class _Target:
    """A flattened target: '/'-joined path -> leaf value, and how to rebuild it."""

    kind: str  # "nnx_module", "nnx_state" or "tree"
    original: Any
    values: dict[str, Any]  # path -> array or jax.ShapeDtypeStruct
    entries: list[tuple[Any, Any]]  # nnx: (path tuple, Variable); tree: (path, leaf)
    treedef: Any = None
    collections: tuple[str, ...] = ()

    def rebuild(self, new: dict[str, Any]) -> Any:
        if self.kind == "tree":
            leaves = [new.get(path_str(p), leaf) for p, leaf in self.entries]
            return jax.tree_util.tree_unflatten(self.treedef, leaves)
        from flax import nnx

        paths = [path_str(p) for p, _ in self.entries]
        if self.kind == "nnx_state":
            return nnx.from_flat_state([(p, v.replace(new[s]) if s in new else v)
                                        for (p, v), s in zip(self.entries, paths, strict=True)])
        update = [(p, v.replace(new[s])) for (p, v), s in zip(self.entries, paths, strict=True)
                  if s in new]
        if update:
            nnx.update(self.original, nnx.from_flat_state(update))
        return self.original


def _flatten_target(target: Any) -> _Target:
    try:
        from flax import nnx
    except ImportError:  # flax is optional: plain pytrees still work
        is_nnx = False
    else:
        is_nnx = isinstance(target, nnx.Module | nnx.State)
    if is_nnx:
        state = nnx.state(target) if isinstance(target, nnx.Module) else target
        entries = list(nnx.to_flat_state(state))
        values = {path_str(p): v.get_value() for p, v in entries}
        kind = "nnx_module" if isinstance(target, nnx.Module) else "nnx_state"
        return _Target(kind, target, values, entries)
    entries, treedef = jax.tree_util.tree_flatten_with_path(target)
    values = {}
    for path, leaf in entries:
        if not isinstance(leaf, jax.Array | np.ndarray | jax.ShapeDtypeStruct):
            raise TypeError(f"load_pretrained: target leaf {path_str(path)!r} is a "
                            f"{type(leaf).__name__}, not an array or jax.ShapeDtypeStruct")
        values[path_str(path)] = leaf
    collections = tuple(map(str, target)) if isinstance(target, Mapping) and "params" in target \
        else ()
    return _Target("tree", target, values, entries, treedef, collections)


def _compile(name: str, patterns: Sequence[str] | str) -> list[re.Pattern[str]]:
    if isinstance(patterns, str):
        patterns = (patterns,)
    try:
        return [re.compile(p) for p in patterns]
    except re.error as e:
        raise ValueError(f"load_pretrained: {name} pattern is not a valid regex: {e}") from e


def _outputs(weights: Weights, key: str, transform: Callable[[Any], Any] | None
             ) -> dict[str, jax.ShapeDtypeStruct] | None:
    """Shapes a transform produces for `key`, computed abstractly (None if it cannot be)."""
    spec = jax.ShapeDtypeStruct(weights.shape(key), weights.dtype(key))
    if transform is None:
        return {"": spec}
    try:
        out = jax.eval_shape(transform, spec)
    except Exception:  # a transform that needs concrete NumPy data: shapes come at load time
        return None
    return dict(out) if isinstance(out, Mapping) else {"": out}


def load_pretrained(
    target: Any,
    source: Any,
    *,
    rules: Sequence[Rule] = (),
    ignore: Sequence[str] | str = (),
    reinit: Sequence[str] | str = (),
    on_missing: OnMissing = "keep_init",
    on_unexpected: Policy = "warn",
    on_mismatch: Policy = "error",
    format: Format = "auto",
    trusted: bool = False,
    sha256: str | None = None,
    allow_nonfinite: bool = False,
) -> tuple[Any, LoadReport]:
    """Merges a checkpoint into fresh parameters and reports what happened.

    Every checkpoint key is mapped to a target path: the first rule whose regex
    ``re.fullmatch``-es the key wins and its template (``re.Match.expand`` syntax, so
    ``\\1`` refers to groups) gives the '/'-joined target path; a key no rule matches maps
    to itself. A rule's transform (a :mod:`jaxinit.layout` converter) converts the array;
    a transform returning a mapping (``layout.attention_qkv``) writes each entry under
    ``template/<entry>``; a rule with template None drops the key.

    A template ending in ``[i]`` (or ``[i,j]``) writes slice ``i`` (``[i, j]``) of the
    leading axes of the target leaf: per-layer keys ``model.layers.N.mlp.up_proj.weight``
    stack into one scanned leaf of shape ``(layers, ...)`` with the template
    ``model/layers/mlp/up_proj/kernel[\\1]``, in index order. Every slice must be filled
    exactly once: a missing index is an error naming the key that would fill it.

    Everything (keys, shapes, dtypes, casts, finiteness) is validated before anything is
    written, so a load that fails leaves the target exactly as it was.

    Target paths are '/'-joined: ``params/Dense_0/kernel`` and ``batch_stats/...`` for
    linen variables, ``linear/kernel`` for nnx modules and states. For an abstract target
    (``jax.eval_shape``/``nnx.eval_shape``) only the loaded leaves are created, each
    directly in the target leaf's sharding; a leaf left abstract is an error.

    Args:
      target: linen variables (``{"params": ..., "batch_stats": ...}``), an nnx module
        (updated in place on success) or ``nnx.State``, or an abstract tree of
        ``jax.ShapeDtypeStruct``.
      source: anything :func:`open_weights` accepts.
      rules: ordered ``(source_regex, target_template, transform_or_None)`` triples,
        e.g. from ``jaxinit.torch.rules(target)``.
      ignore: regexes of checkpoint keys to drop.
      reinit: regexes of target paths to keep at their fresh init (a new head).
      on_missing: "keep_init" (report), "warn" or "error" for unfilled target leaves.
      on_unexpected: "ignore", "warn" or "error" for checkpoint keys with no target.
      on_mismatch: "error", "warn" or "ignore" (keep the init) for shape mismatches.
      format, trusted, sha256, allow_nonfinite: as in :func:`open_weights`.

    Returns:
      ``(result, report)``: the target with the checkpoint merged in (same type), and a
      :class:`LoadReport`.

    Raises:
      PretrainedError: on a refused file, a shape mismatch (by default), an overflowing
        cast, a non-finite value, two keys mapped to one target (or one slice of it), a
        stacked leaf with a missing or out-of-range index, or a policy set to "error";
        the target is left untouched.

    Example:
      >>> import jax, numpy as np, jaxinit
      >>> fresh = {"params": {"fc": {"kernel": np.zeros((3, 2), np.float32),
      ...                            "bias": np.zeros(2, np.float32)}}}
      >>> torch_sd = {"fc.weight": np.ones((2, 3), np.float32),
      ...             "fc.bias": np.ones(2, np.float32)}
      >>> rules = [(r"fc\\.weight", "params/fc/kernel", jaxinit.layout.linear),
      ...          (r"fc\\.bias", "params/fc/bias", None)]
      >>> params, report = jaxinit.load_pretrained(fresh, torch_sd, rules=rules)
      >>> params["params"]["fc"]["kernel"].shape, len(report.loaded)
      ((3, 2), 2)
    """
    check_choice("load_pretrained", "on_missing", on_missing, ("keep_init", "warn", "error"))
    check_choice("load_pretrained", "on_unexpected", on_unexpected, ("ignore", "warn", "error"))
    check_choice("load_pretrained", "on_mismatch", on_mismatch, ("ignore", "warn", "error"))
    compiled_rules = []
    for i, rule in enumerate(rules):
        if not (isinstance(rule, tuple | list) and len(rule) == 3):
            raise TypeError(f"load_pretrained: rules[{i}]={rule!r} is not a "
                            "(source_regex, target_template, transform_or_None) triple")
        regex, template, transform = rule
        if transform is not None and not callable(transform):
            raise TypeError(f"load_pretrained: rules[{i}] transform {transform!r} is not callable")
        compiled_rules.append((_compile(f"rules[{i}]", regex)[0], template, transform))
    ignore_res = _compile("ignore", ignore)
    reinit_res = _compile("reinit", reinit)

    weights = open_weights(source, format=format, trusted=trusted, sha256=sha256,
                           allow_nonfinite=allow_nonfinite)
    tgt = _flatten_target(target)
    report = LoadReport(source=weights.name, collections=tgt.collections)
    report.reinit = [p for p in tgt.values if any(r.fullmatch(p) for r in reinit_res)]
    reinit_set = set(report.reinit)

    # --- Plan: map every key, check every shape, before reading any data ----------------
    plan: dict[str, list[_Out]] = {}  # source key -> [(output name, target path, slice)]
    transforms: dict[str, Callable[[Any], Any] | None] = {}
    claimed: dict[str, str] = {}
    slots: dict[str, dict[tuple[int, ...], str]] = {}  # stacked target -> {index: key}
    deferred: list[tuple[str, str]] = []  # transforms whose shapes need the data
    for key in weights:
        if any(r.fullmatch(key) for r in ignore_res):
            report.ignored.append(key)
            continue
        path: str | None = key
        transform = None
        for pattern, template, rule_transform in compiled_rules:
            match = pattern.fullmatch(key)
            if match:
                if template is None:
                    path = None
                else:
                    try:
                        path = match.expand(template)
                    except (re.error, IndexError) as e:
                        raise ValueError(f"load_pretrained: template {template!r} for key "
                                         f"{key!r}: {e}") from e
                transform = rule_transform
                break
        if path is None:
            report.ignored.append(key)
            continue
        outputs = _outputs(weights, key, transform)
        if outputs is None:
            deferred.append((key, path))
            transforms[key] = transform
            continue
        _plan_outputs(key, path, outputs, tgt, report, reinit_set, plan, claimed, slots)
        transforms[key] = transform

    # Transforms that need concrete data: apply them now (still nothing written).
    converted: dict[str, Any] = {}
    for key, path in deferred:
        out = _apply(weights, key, transforms[key])
        converted[key] = out
        structs = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in out.items()}
        _plan_outputs(key, path, structs, tgt, report, reinit_set, plan, claimed, slots)

    bad = {m.target.partition("[")[0] for m in report.mismatched}
    for full, filled in slots.items():
        if full not in bad:
            _check_stack(weights.name, full, tuple(tgt.values[full].shape), filled)
        claimed.setdefault(full, next(iter(filled.values())))
    report.missing = [p for p in tgt.values if p not in claimed and p not in reinit_set]
    _enforce(report, on_missing, on_unexpected, on_mismatch)
    planned = {path for outs in plan.values() for _, path, _ in outs}
    abstract = [p for p in tgt.values
                if isinstance(tgt.values[p], jax.ShapeDtypeStruct) and p not in planned]
    if abstract:
        raise PretrainedError(
            f"{weights.name}: {len(abstract)} abstract target leaves would stay unfilled "
            f"(first: {abstract[:5]}); load them too, or build those parameters concretely\n"
            f"{report}")

    # --- Execute: read, convert, cast, place; still nothing written into the target -----
    new: dict[str, Any] = {}
    stacks: dict[str, np.ndarray] = {}  # stacked leaves being filled, on the host
    left = {full: len(filled) for full, filled in slots.items() if full not in bad}
    for key, outs in plan.items():
        out = converted.pop(key, None) or _apply(weights, key, transforms[key])
        for name, path, index in outs:
            if path in bad:
                continue
            array = np.asarray(out[name])
            leaf = tgt.values[path]
            shape = tuple(leaf.shape)[len(index or ()):]
            label = path if index is None else f"{path}[{','.join(map(str, index))}]"
            if array.shape != shape:  # a transform that lied to eval_shape
                raise PretrainedError(f"{weights.name}: key {key!r} -> {label}: shape "
                                      f"{array.shape} != target {shape}")
            where = f"{weights.name}: key {key!r} -> {label}"
            array, info = cast(where, array, np.dtype(leaf.dtype))
            if info is not None:
                report.cast.append(dataclasses.replace(info, key=label))
            if index is not None:
                if path not in stacks:
                    stacks[path] = np.empty(tuple(leaf.shape), np.dtype(leaf.dtype))
                stacks[path][index] = array
                left[path] -= 1
                if left[path]:
                    continue
                array = stacks.pop(path)
                source = ", ".join(slots[path][i] for i in sorted(slots[path]))
            else:
                source = key
            sharding = getattr(leaf, "sharding", None)
            new[path] = (jax.device_put(array, sharding) if sharding is not None
                         else jnp.asarray(array))
            report.loaded[path] = source
    report.loaded = {p: report.loaded[p] for p in tgt.values if p in report.loaded}
    return tgt.rebuild(new), report


def _apply(weights: Weights, key: str, transform: Callable[[Any], Any] | None
           ) -> dict[str, Any]:
    array = weights[key]
    if transform is None:
        return {"": array}
    try:
        out = transform(array)
    except Exception as e:
        raise PretrainedError(f"{weights.name}: transform {transform!r} failed on key {key!r} "
                              f"of shape {array.shape}: {type(e).__name__}: {e}") from e
    return dict(out) if isinstance(out, Mapping) else {"": out}


_Out = tuple[str, str, tuple[int, ...] | None]
_SLICE = re.compile(r"(.*)\[(\d+(?:,\d+)*)\]")


def _plan_outputs(key: str, path: str, outputs: Mapping[str, Any], tgt: _Target,
                  report: LoadReport, reinit_set: set[str], plan: dict[str, list[_Out]],
                  claimed: dict[str, str], slots: dict[str, dict[tuple[int, ...], str]]
                  ) -> None:
    sliced = _SLICE.fullmatch(path)
    index = tuple(int(i) for i in sliced.group(2).split(",")) if sliced else None
    base = sliced.group(1) if sliced else path
    for name, struct in outputs.items():
        full = f"{base}/{name}" if name else base
        label = key if full == key else f"{key} -> {full}"
        if full not in tgt.values:
            report.unexpected.append(label if index is None else f"{label}{list(index)}")
            continue
        if full in reinit_set:
            continue
        wanted = tuple(tgt.values[full].shape)
        where = full if index is None else f"{full}[{','.join(map(str, index))}]"
        if index is None:
            if full in claimed or full in slots:
                other = claimed.get(full) or next(iter(slots[full].values()))
                raise PretrainedError(f"{report.source}: keys {other!r} and {key!r} both map "
                                      f"to target {full!r}; fix the rules")
        else:
            filled = slots.setdefault(full, {})
            if full in claimed or index in filled:
                other = claimed.get(full) or filled[index]
                raise PretrainedError(f"{report.source}: keys {other!r} and {key!r} both map "
                                      f"to target {where!r}; fix the rules")
            if len(index) > len(wanted) or any(
                    i >= n for i, n in zip(index, wanted, strict=False)):
                raise PretrainedError(f"{report.source}: key {key!r} -> {where}: index out of "
                                      f"range for the stacked target of shape {wanted}")
            filled[index] = key
            wanted = wanted[len(index):]
        if tuple(struct.shape) != wanted:
            report.mismatched.append(Mismatch(key, where, tuple(struct.shape), wanted,
                                              layout_hint(tuple(struct.shape), wanted)))
            if index is None:
                claimed[full] = key  # not missing: it is reported as a mismatch
            continue
        if index is None:
            claimed[full] = key
        plan.setdefault(key, []).append((name, full, index))


def _check_stack(source: str, full: str, shape: tuple[int, ...],
                 filled: dict[tuple[int, ...], str]) -> None:
    """Every slice of a stacked target leaf must come from some key."""
    depths = {len(i) for i in filled}
    if len(depths) > 1:
        raise PretrainedError(f"{source}: target {full!r} is indexed with both "
                              f"{sorted(depths)} leading axes; fix the rules")
    (depth,) = depths
    for index in itertools.product(*map(range, shape[:depth])):
        if index not in filled:
            raise PretrainedError(
                f"{source}: key {_sibling(filled, index)!r} is missing: target {full!r} of "
                f"shape {shape} stacks {shape[:depth]} slices and "
                f"[{','.join(map(str, index))}] has no key")


def _sibling(filled: dict[tuple[int, ...], str], index: tuple[int, ...]) -> str:
    """The key that would fill `index`: a filled slice's key with its index numbers, left
    to right, swapped for `index`'s (``model.layers.0.x`` -> ``model.layers.3.x``)."""
    have, key = next(iter(filled.items()))
    parts = re.split(r"(\d+)", key)  # the numbers in the key are at the odd positions
    pos = 1
    for old, want in zip(have, index, strict=True):
        while pos < len(parts) and parts[pos] != str(old):
            pos += 2
        if pos >= len(parts):
            return f"{key} at slice {list(index)}"
        parts[pos] = str(want)
        pos += 2
    return "".join(parts)


def _enforce(report: LoadReport, on_missing: str, on_unexpected: str, on_mismatch: str) -> None:
    errors, warns = [], []
    for items, policy, what in ((report.missing, on_missing, "missing"),
                                (report.unexpected, on_unexpected, "unexpected"),
                                (report.mismatched, on_mismatch, "shape-mismatched")):
        if not items:
            continue
        if policy == "error":
            errors.append(f"{len(items)} {what}")
        elif policy == "warn":
            warns.append(f"{len(items)} {what}")
    if errors:
        raise PretrainedError(f"{report.source}: {', '.join(errors)} entries; nothing was "
                              f"loaded\n{report}")
    if warns:
        warnings.warn(f"{report.source}: {', '.join(warns)} entries\n{report}", LoadWarning,
                      stacklevel=3)
