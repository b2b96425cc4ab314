"""`jaxinit.torch.rules`: PyTorch state-dict names -> a Flax target's real paths."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jaxinit._src.compose.paths import path_str
from jaxinit._src.pretrained import layout
from jaxinit._src.pretrained.plan import Rule, flatten_target

_ATTENTION_PARTS = ("query", "key", "value")


def _torch_name(component: str) -> str:
    """A regex for one module-path component: linen's ``layers_0`` also matches ``layers.0``."""
    match = re.fullmatch(r"(.+)_(\d+)", component)
    if match:
        return f"{re.escape(match[1])}[_.]{match[2]}"
    if component == "out":  # Flax attention's ``out`` is PyTorch's ``out_proj``
        return r"out(?:_proj)?"
    return re.escape(component)


def _convtranspose_paths(target: Any) -> set[str]:
    try:
        from flax import nnx
    except ImportError:
        return set()
    if not isinstance(target, nnx.Module):
        return set()
    return {path_str(path) for path, node in nnx.iter_graph(target)
            if isinstance(node, nnx.ConvTranspose)}


def rules(
    target: Any,
    *,
    prefix: str | Sequence[str] = ("module.",),
    transposed: Sequence[str] | str = (),
    flatten: Mapping[str, Sequence[int]] | None = None,
) -> list[Rule]:
    """Rules mapping a PyTorch ``state_dict``'s names onto a Flax target, for `load_pretrained`.

    Built from the target's real paths and shapes, one exact rule per target leaf, so a
    PyTorch twin whose submodules have the same attribute names (``self.fc1`` in both)
    loads without hand-written rules:

    - ``<m>.weight`` -> ``<m>/kernel`` converted by :func:`jaxinit.layout.linear` (2-D),
      :func:`~jaxinit.layout.conv` (3-5-D), :func:`~jaxinit.layout.conv_transpose`
      (nnx ``ConvTranspose`` modules, or linen modules matching `transposed`) or
      :class:`~jaxinit.layout.linear_after_flatten` (modules in `flatten`);
      ``<m>.weight`` -> ``<m>/scale`` (norms) or ``<m>/embedding`` unchanged;
      ``<m>.bias`` -> ``<m>/bias``; any other leaf name maps to itself.
    - ``<m>.running_mean``/``running_var`` -> ``mean``/``var`` in ``batch_stats`` (linen)
      or the BatchNorm's ``BatchStat`` variables (nnx); ``num_batches_tracked`` is dropped.
    - Attention (``<m>/query|key|value/kernel`` of shape (E, H, D)): separate
      ``<m>.query.weight`` Linears via :class:`~jaxinit.layout.attention_heads`,
      ``nn.MultiheadAttention``'s fused ``<m>.in_proj_weight``/``in_proj_bias`` via
      :class:`~jaxinit.layout.attention_qkv`, ``out_proj`` via
      :class:`~jaxinit.layout.attention_out`.
    - Linen's auto-names ``layers_0`` also match PyTorch's ``layers.0``; each of the
      `prefix` strings (a base model's ``"bert."``, DataParallel's ``"module."``) may
      lead a PyTorch key.

    Args:
      target: the Flax parameters the rules are for (linen variables, an nnx module or
        state, or an abstract tree), as passed to ``load_pretrained``.
      prefix: literal key prefixes that may precede every PyTorch name.
      transposed: regexes of module paths (no collection) holding transposed convs
        (needed for linen; nnx ``ConvTranspose`` modules are found automatically).
      flatten: module path -> PyTorch feature-map shape ``(C, *spatial)`` for a Linear that
        follows a flatten of conv features.

    Returns:
      A list of ``(source_regex, target_template, transform)`` rules.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn
      >>> from jaxinit._src.pretrained.torch_rules import rules
      >>> variables = nn.Dense(3).init(jax.random.key(0), jnp.ones((1, 2)))
      >>> for regex, template, transform in rules(variables, prefix=()):
      ...     print(regex, template, transform)
      (?:.+\\.)?num_batches_tracked None None
      bias params/bias None
      weight params/kernel <function linear at ...>

    References:
      PyTorch ``nn.Module.state_dict``:
      https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.state_dict
    """
    prefixes = (prefix,) if isinstance(prefix, str) else tuple(prefix)
    lead = f"(?:{'|'.join(re.escape(p) for p in prefixes)})?" if prefixes else ""
    transposed_res = [re.compile(p) for p in
                      ((transposed,) if isinstance(transposed, str) else transposed)]
    chw = {k: tuple(int(d) for d in v) for k, v in (flatten or {}).items()}
    tgt = flatten_target(target)
    convtranspose = _convtranspose_paths(target)
    collections = set(tgt.collections)
    batch_stats = _batch_stats(target)
    out: list[Rule] = [(f"{lead}(?:.+\\.)?num_batches_tracked", None, None)]
    fused_done: set[str] = set()
    for path, leaf in tgt.values.items():
        parts = path.split("/")
        coll = parts[0] + "/" if parts[0] in collections else ""
        module = parts[1:-1] if coll else parts[:-1]
        name = parts[-1]
        mod_path = "/".join(module)
        torch_mod = r"\.".join(_torch_name(c) for c in module)
        dot = r"\." if module else ""
        shape = tuple(leaf.shape)
        transform: Callable[[Any], Any] | None = None
        torch_leaf = re.escape(name)
        is_attention = (len(module) >= 1 and module[-1] in _ATTENTION_PARTS and
                        name in ("kernel", "bias") and len(shape) == (3 if name == "kernel" else 2))
        if is_attention:
            heads = shape[1] if name == "kernel" else shape[0]
            transform = layout.attention_heads(heads)
            torch_leaf = "weight" if name == "kernel" else "bias"
            parent = module[:-1]
            key = f"{coll}{'/'.join(parent)}:{name}"
            if key not in fused_done:
                fused_done.add(key)
                parent_torch = r"\.".join(_torch_name(c) for c in parent)
                pdot = r"\." if parent else ""
                fused = "in_proj_weight" if name == "kernel" else "in_proj_bias"
                template = coll + "/".join(parent) if parent else coll.rstrip("/")
                out.append((f"{lead}{parent_torch}{pdot}{fused}", template,
                            layout.attention_qkv(heads)))
        elif name == "kernel":
            torch_leaf = "weight"
            if len(module) >= 1 and module[-1] == "out" and len(shape) == 3:
                transform = layout.attention_out(shape[0])
            elif mod_path in convtranspose or any(r.fullmatch(mod_path) for r in transposed_res):
                transform = layout.conv_transpose
            elif mod_path in chw:
                transform = layout.linear_after_flatten(chw[mod_path])
            elif len(shape) == 2:
                transform = layout.linear
            elif len(shape) in (3, 4, 5):
                transform = layout.conv
        elif name in ("scale", "embedding"):
            torch_leaf = "weight"
        elif name in ("mean", "var") and (coll == "batch_stats/" or path in batch_stats):
            torch_leaf = f"running_{name}"
        out.append((f"{lead}{torch_mod}{dot}{torch_leaf}", path, transform))
    return out


def _batch_stats(target: Any) -> set[str]:
    """Paths of nnx ``BatchStat`` variables (running statistics) in `target`."""
    try:
        from flax import nnx
    except ImportError:
        return set()
    if not isinstance(target, nnx.Module | nnx.State):
        return set()
    state = nnx.state(target) if isinstance(target, nnx.Module) else target
    return {path_str(p) for p, v in nnx.to_flat_state(state)
            if isinstance(v, nnx.BatchStat)}


__all__ = ["rules"]
