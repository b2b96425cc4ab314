r"""The plan of a load: every checkpoint key mapped to target leaves, every shape checked.

:func:`jaxinit.load_pretrained` and :func:`jaxinit.stream_pretrained` share one planner,
:func:`plan_load`, and differ only in how they carry a plan out (whole tensors on the
host; each device's slice from the file). A plan maps each checkpoint key to its outputs
(one, or the entries of a transform returning a mapping), each output to a target leaf
or, for a template ending in ``[i]`` (``[i,j]``), to slice :math:`i` (:math:`(i, j)`) of
the leading axes of a stacked (scanned) leaf. Nothing is read but the files' headers,
except the tensors of a transform ``jax.eval_shape`` cannot trace (only where the caller
allows it), so a plan that fails leaves everything untouched.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import jax
import numpy as np

from jaxinit._src.compose.paths import path_str
from jaxinit._src.core.base import check_choice
from jaxinit._src.pretrained.errors import PretrainedError
from jaxinit._src.pretrained.formats import Format, Weights, open_weights
from jaxinit._src.pretrained.layout import layout_hint
from jaxinit._src.pretrained.report import LoadReport, Mismatch

Transform = Callable[[Any], Any]
Rule = tuple[str, str | None, Transform | None]
OnMissing = Literal["keep_init", "warn", "error"]
Policy = Literal["ignore", "warn", "error"]
Index = tuple[int, ...]
# One output of a checkpoint key: (output name, "" for the array itself; target path;
# the slice of a stacked target, or None for the whole leaf).
Output = tuple[str, str, Index | None]

_SLICE = re.compile(r"(.*)\[(\d+(?:,\d+)*)\]")


class LoadWarning(UserWarning):
    """Emitted by :func:`load_pretrained` for ``on_*="warn"`` problems."""


@dataclasses.dataclass
class Target:
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


def flatten_target(target: Any, caller: str = "load_pretrained") -> Target:
    """The leaves of linen variables, an nnx module or state, or a pytree of arrays."""
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
        return Target(kind, target, values, entries)
    entries, treedef = jax.tree_util.tree_flatten_with_path(target)
    values = {}
    for path, leaf in entries:
        if not isinstance(leaf, jax.Array | np.ndarray | jax.ShapeDtypeStruct):
            raise TypeError(f"{caller}: target leaf {path_str(path)!r} is a "
                            f"{type(leaf).__name__}, not an array or jax.ShapeDtypeStruct")
        values[path_str(path)] = leaf
    collections = tuple(map(str, target)) if isinstance(target, Mapping) and "params" in target \
        else ()
    return Target("tree", target, values, entries, treedef, collections)


@dataclasses.dataclass
class Plan:
    """What a load will do, checked: see :func:`plan_load`.

    Attributes:
      weights: the opened checkpoint.
      target: the flattened target.
      report: the report so far (everything but ``loaded`` and ``cast``).
      outputs: checkpoint key -> its outputs to load, in checkpoint order.
      transforms: checkpoint key -> its rule's transform (None: the array as stored).
      stacks: stacked target path -> slice index -> (checkpoint key, output name).
      converted: outputs of the transforms applied while planning (their shapes needed
        the data), by checkpoint key.
    """

    weights: Weights
    target: Target
    report: LoadReport
    outputs: dict[str, list[Output]]
    transforms: dict[str, Transform | None]
    stacks: dict[str, dict[Index, tuple[str, str]]]
    converted: dict[str, dict[str, Any]]

    def stack_source(self, path: str) -> str:
        """The checkpoint keys of a stacked leaf's slices, in index order."""
        slots = self.stacks[path]
        return ", ".join(slots[i][0] for i in sorted(slots))


def plan_load(
    caller: str,
    target: Any,
    source: Any,
    *,
    rules: Sequence[Rule],
    ignore: Sequence[str] | str,
    reinit: Sequence[str] | str = (),
    on_missing: OnMissing = "keep_init",
    on_unexpected: Policy,
    on_mismatch: Policy,
    format: Format,
    trusted: bool,
    sha256: str | None,
    allow_nonfinite: bool,
    report_type: type[LoadReport] = LoadReport,
    read_to_plan: bool = True,
) -> Plan:
    """Opens `source`, maps every key to `target` and checks every shape, or raises.

    `caller` names the public function in error messages. With ``read_to_plan=False`` a
    transform that ``jax.eval_shape`` cannot trace is an error instead of being applied
    to the data while planning. Policies are enforced here (errors raised, warnings
    issued), and an abstract leaf the plan does not fill is an error.
    """
    check_choice(caller, "on_missing", on_missing, ("keep_init", "warn", "error"))
    check_choice(caller, "on_unexpected", on_unexpected, ("ignore", "warn", "error"))
    check_choice(caller, "on_mismatch", on_mismatch, ("ignore", "warn", "error"))
    compiled = _compile_rules(caller, rules)
    ignore_res = _compile(caller, "ignore", ignore)
    reinit_res = _compile(caller, "reinit", reinit)
    weights = open_weights(source, format=format, trusted=trusted, sha256=sha256,
                           allow_nonfinite=allow_nonfinite)
    tgt = flatten_target(target, caller)
    report = report_type(source=weights.name, collections=tgt.collections)
    report.reinit = [p for p in tgt.values if any(r.fullmatch(p) for r in reinit_res)]
    reinit_set = set(report.reinit)
    plan = Plan(weights, tgt, report, {}, {}, {}, {})
    claimed: dict[str, str] = {}
    slots: dict[str, dict[Index, str]] = {}  # stacked target -> {index: key}
    for key in weights:
        if any(r.fullmatch(key) for r in ignore_res):
            report.ignored.append(key)
            continue
        path, transform = _match(caller, key, compiled)
        if path is None:
            report.ignored.append(key)
            continue
        plan.transforms[key] = transform
        outputs = _output_shapes(weights, key, transform)
        if outputs is None:
            if not read_to_plan:
                raise PretrainedError(
                    f"{weights.name}: the transform {transform!r} for key {key!r} cannot be "
                    "traced by jax.eval_shape, so its output shapes are unknown before "
                    "reading; use jaxinit.load_pretrained for it")
            plan.converted[key] = apply(weights, key, transform)
            outputs = {k: jax.ShapeDtypeStruct(v.shape, v.dtype)
                       for k, v in plan.converted[key].items()}
        _plan_outputs(plan, key, path, outputs, reinit_set, claimed, slots)

    # A stacked leaf with a mismatched slice is not loaded at all (kept, or an error).
    bad = {m.target.partition("[")[0] for m in report.mismatched}
    for full, filled in slots.items():
        if full not in bad:
            _check_stack(weights.name, full, tuple(tgt.values[full].shape), filled)
        claimed.setdefault(full, next(iter(filled.values())))
    for key in list(plan.outputs):
        plan.outputs[key] = [o for o in plan.outputs[key] if o[1] not in bad]
        for name, path, index in plan.outputs[key]:
            if index is not None:
                plan.stacks.setdefault(path, {})[index] = (key, name)
        if not plan.outputs[key]:
            del plan.outputs[key]
    report.missing = [p for p in tgt.values if p not in claimed and p not in reinit_set]
    _enforce(report, on_missing, on_unexpected, on_mismatch)
    planned = {path for outs in plan.outputs.values() for _, path, _ in outs}
    abstract = [p for p, v in tgt.values.items()
                if isinstance(v, jax.ShapeDtypeStruct) and p not in planned]
    if abstract:
        raise PretrainedError(
            f"{weights.name}: {len(abstract)} abstract target leaves would stay unfilled "
            f"(first: {abstract[:5]}); the checkpoint must provide every abstract leaf, or "
            f"build those parameters concretely\n{report}")
    return plan


def apply(weights: Weights, key: str, transform: Transform | None) -> dict[str, Any]:
    """The outputs of `transform` on the stored tensor `key` (``{"": array}`` without)."""
    array = weights[key]
    if transform is None:
        return {"": array}
    try:
        out = transform(array)
    except Exception as e:
        raise PretrainedError(f"{weights.name}: transform {transform!r} failed on key {key!r} "
                              f"of shape {array.shape}: {type(e).__name__}: {e}") from e
    return dict(out) if isinstance(out, Mapping) else {"": out}


def slice_label(path: str, index: Index | None) -> str:
    """``path`` or ``path[i,j]``: a target leaf or one slice of a stacked one."""
    return path if index is None else f"{path}[{','.join(map(str, index))}]"


def _compile_rules(caller: str, rules: Sequence[Rule]
                   ) -> list[tuple[re.Pattern[str], str | None, Transform | None]]:
    compiled = []
    for i, rule in enumerate(rules):
        if not (isinstance(rule, tuple | list) and len(rule) == 3):
            raise TypeError(f"{caller}: rules[{i}]={rule!r} is not a "
                            "(source_regex, target_template, transform_or_None) triple")
        regex, template, transform = rule
        if transform is not None and not callable(transform):
            raise TypeError(f"{caller}: rules[{i}] transform {transform!r} is not callable")
        compiled.append((_compile(caller, f"rules[{i}]", regex)[0], template, transform))
    return compiled


def _compile(caller: str, name: str, patterns: Sequence[str] | str) -> list[re.Pattern[str]]:
    if isinstance(patterns, str):
        patterns = (patterns,)
    try:
        return [re.compile(p) for p in patterns]
    except re.error as e:
        raise ValueError(f"{caller}: {name} pattern is not a valid regex: {e}") from e


def _match(caller: str, key: str,
           compiled: list[tuple[re.Pattern[str], str | None, Transform | None]]
           ) -> tuple[str | None, Transform | None]:
    """The target path (None: dropped) and transform of the first rule matching `key`;
    a key no rule matches maps to itself."""
    for pattern, template, transform in compiled:
        match = pattern.fullmatch(key)
        if match:
            if template is None:
                return None, None
            try:
                return match.expand(template), transform
            except (re.error, IndexError) as e:
                raise ValueError(f"{caller}: template {template!r} for key {key!r}: "
                                 f"{e}") from e
    return key, None


def _output_shapes(weights: Weights, key: str, transform: Transform | None
                   ) -> dict[str, jax.ShapeDtypeStruct] | None:
    """Shapes a transform produces for `key`, computed abstractly (None if it cannot be)."""
    spec = jax.ShapeDtypeStruct(weights.shape(key), weights.dtype(key))
    if transform is None:
        return {"": spec}
    try:
        out = jax.eval_shape(transform, spec)
    except Exception:  # a transform that needs concrete NumPy data: shapes come from it
        return None
    return dict(out) if isinstance(out, Mapping) else {"": out}


def _plan_outputs(plan: Plan, key: str, path: str, outputs: Mapping[str, Any],
                  reinit: set[str], claimed: dict[str, str],
                  slots: dict[str, dict[Index, str]]) -> None:
    """Each output of `key` -> its target leaf (or slice), or reported unexpected /
    mismatched; two keys for one leaf or slice is an error."""
    values, report = plan.target.values, plan.report
    sliced = _SLICE.fullmatch(path)
    index = tuple(int(i) for i in sliced.group(2).split(",")) if sliced else None
    base = sliced.group(1) if sliced else path
    for name, struct in outputs.items():
        full = f"{base}/{name}" if name else base
        label = key if full == key else f"{key} -> {full}"
        if full not in values:
            report.unexpected.append(label if index is None else f"{label}{list(index)}")
            continue
        if full in reinit:
            continue
        wanted = tuple(values[full].shape)
        where = slice_label(full, index)
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
        plan.outputs.setdefault(key, []).append((name, full, index))


def _check_stack(source: str, full: str, shape: tuple[int, ...],
                 filled: dict[Index, str]) -> None:
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


def _sibling(filled: dict[Index, str], index: Index) -> str:
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
                      stacklevel=4)
