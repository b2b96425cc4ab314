"""Parameter paths: the '/'-joined names that ``reinit`` rules and the parametrizations use.

A path joins the entries of a leaf's JAX key path with '/': ``params/Dense_0/kernel``
for linen variables, ``layers/0/kernel`` for an nnx module or ``nnx.State`` (Variables
are unboxed, so the path does not end in ``/value``), exactly as ``jaxinit.reinit``
matches them (:func:`jaxinit._src.tree.path_str`). The same strings are produced for
parameters, gradients and optimizer updates of the same model.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxinit._src.tree import _flax_types, _unbox, path_str


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
    boxes = _flax_types()
    is_leaf: Callable[[Any], bool] | None = (lambda x: isinstance(x, boxes)) if boxes else None
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    out = {}
    for keypath, leaf in flat:
        value = _unbox(leaf, boxes)
        if is_float_array(value):
            out[path_str(keypath)] = value
    if not out:
        raise ValueError(f"{name}: {arg} has no float array leaves (got {type(tree).__name__})")
    return out


def map_with_paths(fn: Callable[[str, Any], Any], tree: Any) -> Any:
    """``tree`` with each float leaf replaced by ``fn(path, leaf)`` (Variables unboxed)."""
    boxes = _flax_types()
    is_leaf: Callable[[Any], bool] | None = (lambda x: isinstance(x, boxes)) if boxes else None

    def visit(keypath: Any, leaf: Any) -> Any:
        value = _unbox(leaf, boxes)
        if not is_float_array(value):
            return leaf
        return fn(path_str(keypath), value)

    return jax.tree_util.tree_map_with_path(visit, tree, is_leaf=is_leaf)
