"""Parameter paths: the '/'-joined names that ``reinit`` rules and the parametrizations use.

A path joins the entries of a leaf's JAX key path with '/': ``params/Dense_0/kernel``
for linen variables, ``layers/0/kernel`` for an nnx module or ``nnx.State`` (Variables
are unboxed, so the path does not end in ``/value``), exactly as ``jaxinit.reinit``
matches them (:func:`path_str`). The same strings are produced for parameters, gradients
and optimizer updates of the same model, and by every part of jaxinit that names a leaf
(reinit, the diagnostics, LSUV, load_pretrained and its reports).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np


def _entry(entry: Any) -> str:
    if isinstance(entry, jax.tree_util.DictKey | jax.tree_util.FlattenedIndexKey):
        return str(entry.key)
    if isinstance(entry, jax.tree_util.SequenceKey):
        return str(entry.idx)
    if isinstance(entry, jax.tree_util.GetAttrKey):
        return entry.name
    return str(entry)


def path_str(keypath: Sequence[Any]) -> str:
    """A jax key path as the '/'-joined string rules match, e.g. ``params/Dense_0/kernel``.

    A final ``value`` attribute (the payload of an nnx Variable flattened as a pytree) is
    dropped, so a Variable and its array have the same path.

    Example:
      >>> import jax
      >>> from jaxinit._src.compose.paths import path_str
      >>> tree = {"params": {"Dense_0": {"kernel": 0}}, "layers": [1]}
      >>> [path_str(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
      ['layers/0', 'params/Dense_0/kernel']
    """
    parts = [_entry(e) for e in keypath]
    if keypath and isinstance(keypath[-1], jax.tree_util.GetAttrKey) and parts[-1] == "value":
        parts.pop()
    return "/".join(parts)


def flax_boxes() -> tuple[Any, ...]:
    """flax's boxes (linen metadata, nnx Variables), if flax is already imported."""
    if "flax" not in sys.modules:
        return ()
    from flax import nnx
    from flax.core import meta

    return (meta.AxisMetadata, nnx.Variable)


def unbox(leaf: Any, boxes: tuple[Any, ...]) -> Any:
    """The array inside a flax box (``boxes`` from :func:`flax_boxes`), else ``leaf``."""
    if boxes and isinstance(leaf, boxes[1]):
        return leaf.get_value()
    if boxes and isinstance(leaf, boxes[0]):
        return leaf.unbox()
    return leaf



def is_float_array(value: Any) -> bool:
    """A (concrete, traced or abstract) array with a float or complex dtype."""
    dtype = getattr(value, "dtype", None)
    if dtype is None or not hasattr(value, "shape"):
        return False
    try:
        return bool(jax.dtypes.issubdtype(dtype, np.inexact))
    except TypeError:
        return False


def as_tree(tree: Any) -> Any:
    """An nnx module becomes its ``nnx.Param`` state; anything else is returned as is."""
    if "flax" in sys.modules:
        from flax import nnx

        if isinstance(tree, nnx.Module):
            return nnx.state(tree, nnx.Param)
    return tree


def float_leaves(name: str, arg: str, tree: Any) -> dict[str, Any]:
    """``{path: array}`` for the float leaves of ``tree`` (linen dict, nnx module/State, pytree)."""
    tree = as_tree(tree)
    boxes = flax_boxes()
    is_leaf: Callable[[Any], bool] | None = (lambda x: isinstance(x, boxes)) if boxes else None
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    out = {}
    for keypath, leaf in flat:
        value = unbox(leaf, boxes)
        if is_float_array(value):
            out[path_str(keypath)] = value
    if not out:
        raise ValueError(f"{name}: {arg} has no float array leaves (got {type(tree).__name__})")
    return out


def map_with_paths(fn: Callable[[str, Any], Any], tree: Any) -> Any:
    """``tree`` with each float leaf replaced by ``fn(path, leaf)`` (Variables unboxed)."""
    boxes = flax_boxes()
    is_leaf: Callable[[Any], bool] | None = (lambda x: isinstance(x, boxes)) if boxes else None

    def visit(keypath: Any, leaf: Any) -> Any:
        value = unbox(leaf, boxes)
        if not is_float_array(value):
            return leaf
        return fn(path_str(keypath), value)

    return jax.tree_util.tree_map_with_path(visit, tree, is_leaf=is_leaf)
