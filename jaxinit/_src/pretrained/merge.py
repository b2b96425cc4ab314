"""`load_pretrained`: merge a checkpoint into fresh (or abstract) parameters, atomically."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.pretrained.errors import PretrainedError
from jaxinit._src.pretrained.formats import Format
from jaxinit._src.pretrained.initializer import cast
from jaxinit._src.pretrained.plan import OnMissing, Policy, Rule, apply, plan_load, slice_label
from jaxinit._src.pretrained.report import LoadReport


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
    plan = plan_load("load_pretrained", target, source, rules=rules, ignore=ignore,
                     reinit=reinit, on_missing=on_missing, on_unexpected=on_unexpected,
                     on_mismatch=on_mismatch, format=format, trusted=trusted, sha256=sha256,
                     allow_nonfinite=allow_nonfinite)
    weights, values, report = plan.weights, plan.target.values, plan.report

    # --- Execute: read, convert, cast, place; still nothing written into the target -----
    new: dict[str, Any] = {}
    stacks: dict[str, np.ndarray] = {}  # stacked leaves being filled, on the host
    left = {path: len(slots) for path, slots in plan.stacks.items()}
    for key, outs in plan.outputs.items():
        out = plan.converted.pop(key, None) or apply(weights, key, plan.transforms[key])
        for name, path, index in outs:
            array = np.asarray(out[name])
            leaf = values[path]
            shape = tuple(leaf.shape)[len(index or ()):]
            label = slice_label(path, index)
            if array.shape != shape:  # a transform that lied to eval_shape
                raise PretrainedError(f"{weights.name}: key {key!r} -> {label}: shape "
                                      f"{array.shape} != target {shape}")
            array, info = cast(f"{weights.name}: key {key!r} -> {label}", array,
                               np.dtype(leaf.dtype))
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
                source = plan.stack_source(path)
            else:
                source = key
            sharding = getattr(leaf, "sharding", None)
            new[path] = (jax.device_put(array, sharding) if sharding is not None
                         else jnp.asarray(array))
            report.loaded[path] = source
    report.loaded = {p: report.loaded[p] for p in values if p in report.loaded}
    return plan.target.rebuild(new), report
