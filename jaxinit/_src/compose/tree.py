"""`reinit`: re-initialize the leaves of a parameter tree whose path matches a rule.

Each leaf's key is ``fold_in(key, stable_hash(path))``, derived from its own path only,
so adding, removing or reordering other parameters never changes its values, and every
process (and every host of a multi-host job) computes the same values.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding

from jaxinit._src.compose.paths import flax_boxes, is_float_array, path_str, unbox
from jaxinit._src.core.base import check_key

Rules = Sequence[tuple[str | re.Pattern[str], Callable[..., Any]]] | Mapping[
    str | re.Pattern[str], Callable[..., Any]
]


def stable_hash(path: str) -> int:
    """A 32-bit hash of ``path`` that is the same in every process and Python version.

    The first 4 bytes (little endian) of the SHA-256 of the UTF-8 path. Python's
    ``hash`` of a string is salted per process, so it cannot seed shared weights.

    Example:
      >>> from jaxinit._src.compose.tree import stable_hash
      >>> stable_hash("params/Dense_0/kernel") == stable_hash("params/Dense_0/kernel")
      True
      >>> 0 <= stable_hash("params/Dense_0/kernel") < 2**32
      True
    """
    return int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:4], "little")


def leaf_key(key: jax.Array, path: str) -> jax.Array:
    """The key reinit uses for the leaf at ``path``: ``fold_in(key, stable_hash(path))``."""
    return jax.random.fold_in(key, np.uint32(stable_hash(path)))


def _rebox(leaf: Any, value: Any, boxes: tuple[Any, ...], in_place: bool) -> Any:
    if boxes and isinstance(leaf, boxes[1]):
        if in_place:
            leaf.set_value(value)
            return leaf
        return leaf.replace(value)
    if boxes and isinstance(leaf, boxes[0]):
        return leaf.replace_boxed(value)
    return value


def _sharding(value: Any) -> NamedSharding | None:
    if isinstance(value, jax.core.Tracer):
        return None
    sharding = getattr(value, "sharding", None)
    return sharding if isinstance(sharding, NamedSharding) else None


def _compile_rules(rules: Any) -> list[tuple[re.Pattern[str], Callable[..., Any]]]:
    items = list(rules.items()) if isinstance(rules, Mapping) else rules
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise TypeError(
            f"reinit: rules={rules!r} must be a sequence of (regex, initializer) pairs "
            "or a mapping"
        )
    compiled = []
    for i, rule in enumerate(items):
        if not isinstance(rule, tuple | list) or len(rule) != 2:
            raise TypeError(f"reinit: rules[{i}]={rule!r} is not a (regex, initializer) pair")
        pattern, init = rule
        if not isinstance(pattern, str | re.Pattern):
            raise TypeError(
                f"reinit: rules[{i}] pattern {pattern!r} must be a string or re.Pattern"
            )
        try:
            regex = re.compile(pattern)
        except re.error as err:
            raise ValueError(
                f"reinit: rules[{i}] pattern {pattern!r} is not a regex: {err}"
            ) from None
        if not callable(init):
            raise TypeError(f"reinit: rules[{i}] initializer {init!r} is not callable")
        compiled.append((regex, init))
    return compiled


def reinit(tree: Any, key: jax.Array, rules: Rules, *, strict: bool = True) -> Any:
    """Re-initializes the leaves of ``tree`` whose '/'-joined path matches a rule.

    Paths join the tree's key path with '/': ``params/Dense_0/kernel`` for linen
    variables, ``layers/0/kernel`` for nnx, ``layers/0/weight`` for Equinox. Rules are
    ``(regex, initializer)`` pairs tried in order with ``re.fullmatch``; the first match
    wins and the leaf becomes ``init(fold_in(key, stable_hash(path)), leaf.shape,
    leaf.dtype)``. Only float and complex arrays are matched (integer counters, PRNG keys
    and static fields never are); unmatched leaves are returned as they are, the same
    objects. A leaf's key depends only on ``key`` and its own path, so adding, removing
    or renaming other parameters never changes it, and every process agrees.

    Supported trees:

    * nested dicts / FrozenDicts (linen ``variables``), with linen metadata boxes such
      as ``nn.Partitioned`` kept (the value inside is replaced): returns a new tree;
    * ``nnx.State``: returns a new State, the original and its module untouched;
    * an ``nnx.Module``: updated **in place**, like ``nnx.update`` (the nnx idiom;
      Variables keep their identity and metadata), and returned;
    * any other pytree with key paths (Equinox modules, tuples, dataclasses): a new tree.

    Leaves may be abstract (``jax.ShapeDtypeStruct`` from ``jax.eval_shape``): matched
    ones become arrays. A leaf with a ``NamedSharding`` is re-drawn directly in it.
    An initializer may define ``for_leaf(path, shapes)`` returning the initializer to
    use, given the shapes of all leaves by path (``jaxinit.torch.default_rules`` sizes
    biases from the sibling kernel this way).

    Args:
      tree: the parameters.
      key: a PRNG key.
      rules: ordered ``(regex, initializer)`` pairs (or a mapping in insertion order).
      strict: if True (default), a rule that matches no leaf is a ValueError.

    Returns:
      The tree with matched leaves re-drawn (the same nnx module, updated, for a module).

    Example:
      >>> import jax, jax.numpy as jnp, jaxinit
      >>> params = {"dense": {"kernel": jnp.zeros((64, 32)), "bias": jnp.ones(32)}}
      >>> new = jaxinit.reinit(params, jax.random.key(0), [(r".*/kernel", jaxinit.he_normal())])
      >>> new["dense"]["bias"] is params["dense"]["bias"]
      True
      >>> new["dense"]["kernel"].shape
      (64, 32)
    """
    check_key("reinit", key)
    compiled = _compile_rules(rules)
    boxes = flax_boxes()
    module = None
    if boxes and not isinstance(tree, boxes):
        from flax import nnx

        if isinstance(tree, nnx.Module):
            module, tree = tree, nnx.state(tree)
    in_place = module is not None
    is_box = (lambda x: isinstance(x, boxes)) if boxes else None
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_box)
    paths = [path_str(p) for p, _ in flat]
    values = [unbox(leaf, boxes) for _, leaf in flat]
    shapes = {p: tuple(v.shape) for p, v in zip(paths, values, strict=True) if is_float_array(v)}
    used = [False] * len(compiled)
    jobs: list[tuple[int, str, Any, Any]] = []   # (leaf index, path, initializer, value)
    for index, (path, value) in enumerate(zip(paths, values, strict=True)):
        if not is_float_array(value):
            continue
        matched = next((i for i, (regex, _) in enumerate(compiled) if regex.fullmatch(path)),
                       None)
        if matched is None:
            continue
        used[matched] = True
        init = compiled[matched][1]
        if hasattr(init, "for_leaf"):
            init = init.for_leaf(path, shapes)
        jobs.append((index, compiled[matched][0].pattern, init, value))
    if strict and not all(used):
        unused = [compiled[i][0].pattern for i, u in enumerate(used) if not u]
        sample = ", ".join(list(shapes)[:8]) + (", ..." if len(shapes) > 8 else "")
        raise ValueError(
            f"reinit: rules {unused} matched no float leaf (paths: {sample}); "
            "fix the regex or pass strict=False"
        )
    shardings = tuple(_sharding(value) for *_, value in jobs)

    def draw(key: jax.Array) -> tuple[jax.Array, ...]:
        drawn = []
        for (index, pattern, init, value), sharding in zip(jobs, shardings, strict=True):
            kwargs = {} if sharding is None else {"out_sharding": sharding}
            shape, dtype = tuple(value.shape), value.dtype
            new = init(leaf_key(key, paths[index]), shape, dtype, **kwargs)
            if tuple(new.shape) != shape or new.dtype != dtype:
                raise ValueError(
                    f"reinit: rule {pattern!r} gave {new.dtype}{list(new.shape)} "
                    f"for {paths[index]} of {dtype}{list(shape)}"
                )
            drawn.append(new)
        return tuple(drawn)

    # One compiled program draws every matched leaf (one executable per leaf would
    # compile for seconds on a large model); inside a caller's jit, trace inline.
    if isinstance(key, jax.core.Tracer) or not jobs:
        drawn = draw(key)
    else:
        drawn = jax.jit(draw, out_shardings=shardings)(key)
    out = [leaf for _, leaf in flat]
    for (index, *_), new in zip(jobs, drawn, strict=True):
        out[index] = _rebox(flat[index][1], new, boxes, in_place)
    if module is not None:
        return module
    return jax.tree_util.tree_unflatten(treedef, out)
