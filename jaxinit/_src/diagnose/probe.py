"""Turning a Flax linen/nnx model or a plain function into a pure, instrumented function.

Diagnostics and LSUV both need the same thing: a pure function
``apply(trainable, x) -> y`` that, while traced, reports every layer's input and output
to a recorder and adds a (zero) perturbation to each output so that ``jax.grad`` with
respect to the perturbations is the gradient with respect to the layer's output (the
trick of linen's ``Module.perturb``).

- linen: ``nn.intercept_methods`` sees every module call; a layer is a call of
  ``__call__`` on a module that owns parameters directly (Dense, Conv, LayerNorm, ...).
- nnx: the same rule over ``nnx.iter_modules``; the layer classes' ``__call__`` is
  wrapped for the duration of the diagnostics only (as ``nnx.capture`` does), and the
  wrapper records only the instances of the model being diagnosed.
- Equinox: the same rule over the sub-modules found by walking the module's fields; an
  Equinox module maps one example, so it is vmapped over the batch, and each example's
  layer values are returned from the vmap (batched) before they are recorded.
- plain functions: the user marks layer outputs with :func:`tap`, a no-op outside
  diagnostics.

flax and equinox are imported lazily: the core of jaxinit imports only jax and numpy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxinit._src.compose.paths import path_str

_LOCAL = threading.local()


class Recorder:
    """Collects (input, output) of each layer call; adds perturbations to outputs."""

    def __init__(self, perturbations: Mapping[str, jax.Array] | None = None) -> None:
        self.perturbations = perturbations
        self.sites: dict[str, tuple[jax.Array | None, jax.Array]] = {}

    def record(self, name: str, inputs: Any, outputs: Any) -> Any:
        if not isinstance(outputs, jax.Array):
            return outputs  # tuples, dicts, carries: not a layer output we can measure
        unique, n = name, 1
        while unique in self.sites:
            n += 1
            unique = f"{name}#{n}"
        if not isinstance(inputs, jax.Array):
            inputs = None
        self.sites[unique] = (inputs, outputs)
        if self.perturbations is not None and unique in self.perturbations:
            outputs = outputs + self.perturbations[unique].astype(outputs.dtype)
        return outputs


def _stack() -> list[Recorder]:
    if not hasattr(_LOCAL, "stack"):
        _LOCAL.stack = []
    return _LOCAL.stack


@contextlib.contextmanager
def recording(recorder: Recorder) -> Iterator[Recorder]:
    stack = _stack()
    stack.append(recorder)
    try:
        yield recorder
    finally:
        stack.pop()


def tap(x: jax.Array, name: str) -> jax.Array:
    """Marks ``x`` as the output of layer ``name`` for :mod:`jaxinit.diagnostics`.

    Outside a diagnostics call this returns ``x`` unchanged (at no cost), so a plain
    ``apply(params, x)`` function can keep its taps in production code. Inside
    :func:`~jaxinit.diagnostics.signal_stats` or :func:`jaxinit.lsuv`, the tapped value
    is recorded as a layer output (forward statistics) and its gradient is measured
    (backward statistics).

    Args:
      x: the layer's output.
      name: the layer's name in the report; repeated names get ``#2``, ``#3``, ...

    Returns:
      ``x`` (plus a zero perturbation inside diagnostics).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxinit.diagnostics import tap
      >>> def apply(params, x):
      ...     for i, w in enumerate(params):
      ...         x = jnp.tanh(tap(x @ w, f"dense{i}"))
      ...     return x
      >>> apply([jnp.eye(2)], jnp.ones((1, 2)))
      Array([[0.7615942, 0.7615942]], dtype=float32)
    """
    if not isinstance(name, str):
        raise TypeError(f"tap: name={name!r} must be a string")
    stack = _stack()
    if not stack:
        return x
    return stack[-1].record(name, None, x)


# --------------------------------------------------------------------------------------
# Model adapters.


@dataclasses.dataclass
class Adapter:
    """A model as a pure function of its trainable parameters.

    ``apply(trainable, x)`` must be called inside :func:`instrumented` (and inside a
    :func:`recording` context) for layers to be recorded.
    """

    kind: str  # "linen", "nnx", "equinox" or "function"
    trainable: Any
    apply: Callable[[Any, jax.Array], jax.Array]
    instrumented: Callable[[], contextlib.AbstractContextManager[Any]]
    rebuild: Callable[[Any], Any]


def _flax_modules() -> tuple[type | None, type | None]:
    try:
        from flax import linen, nnx
    except ImportError:  # pragma: no cover - flax is an optional extra
        return None, None
    return linen.Module, nnx.Module


def adapt(
    name: str,
    model: Any,
    *,
    variables: Any = None,
    params: Any = None,
    apply_kwargs: Mapping[str, Any] | None = None,
) -> Adapter:
    """Dispatches on the model type; errors name the offending argument."""
    linen_module, nnx_module = _flax_modules()
    kwargs = dict(apply_kwargs or {})
    if linen_module is not None and isinstance(model, linen_module):
        if variables is None:
            raise ValueError(
                f"{name}: model is a flax.linen module; pass its variables with "
                "variables=model.init(key, x)"
            )
        if not isinstance(variables, Mapping) or "params" not in variables:
            raise TypeError(
                f"{name}: variables must be a mapping with a 'params' collection, got "
                f"{type(variables).__name__}"
            )
        return _adapt_linen(model, variables, kwargs)
    if nnx_module is not None and isinstance(model, nnx_module):
        if variables is not None or params is not None:
            raise ValueError(
                f"{name}: model is a flax.nnx module, which holds its own state; do not "
                "pass variables or params"
            )
        return _adapt_nnx(model, kwargs)
    if is_equinox(model):
        if variables is not None or params is not None:
            raise ValueError(
                f"{name}: model is an Equinox module, which holds its own arrays; do not "
                "pass variables or params"
            )
        return _adapt_equinox(model, kwargs)
    if callable(model):
        if params is None:
            raise ValueError(
                f"{name}: model is a plain function apply(params, x); pass params=..."
            )
        fn = model
        return Adapter(
            "function",
            params,
            lambda p, x: fn(p, x, **kwargs),
            contextlib.nullcontext,
            lambda p: p,
        )
    raise TypeError(
        f"{name}: model={type(model).__name__} is not a flax.linen module, a flax.nnx "
        "module, an Equinox module or a function apply(params, x)"
    )


def _owns_params_linen(module: Any) -> bool:
    if module.scope is None:
        return False
    params = module.variables.get("params", {})
    return any(not isinstance(v, Mapping) for v in params.values())


def _adapt_linen(model: Any, variables: Mapping[str, Any], kwargs: dict[str, Any]) -> Adapter:
    from flax import linen as nn

    rest = {k: v for k, v in variables.items() if k != "params"}

    def interceptor(next_fun: Callable[..., Any], args: Any, kw: Any, context: Any) -> Any:
        out = next_fun(*args, **kw)
        stack = _stack()
        if not stack or context.method_name != "__call__":
            return out
        module = context.module
        if not _owns_params_linen(module):
            return out
        layer = "/".join(module.path) or type(module).__name__
        return stack[-1].record(layer, args[0] if args else None, out)

    def apply(trainable: Any, x: jax.Array) -> jax.Array:
        out = model.apply({"params": trainable, **rest}, x, **kwargs)
        if kwargs.get("mutable") and isinstance(out, tuple):
            out = out[0]
        return out

    return Adapter(
        "linen",
        variables["params"],
        apply,
        lambda: nn.intercept_methods(interceptor),
        lambda p: {**variables, "params": p},
    )


def _nnx_layer(module: Any) -> bool:
    from flax import nnx

    return any(isinstance(v, nnx.Param) for v in vars(module).values())


def _adapt_nnx(model: Any, kwargs: dict[str, Any]) -> Adapter:
    from flax import nnx

    graphdef, trainable, rest = nnx.split(model, nnx.Param, ...)  # type: ignore[misc]
    names: dict[int, str] = {}

    def apply(p: Any, x: jax.Array) -> jax.Array:
        # Fresh Variables for the non-trainable state, created in the current trace, so
        # that layers which update their state (BatchNorm statistics) may do so here.
        m = nnx.merge(graphdef, p, jax.tree.map(lambda a: a, rest))
        names.clear()
        for path, mod in nnx.iter_modules(m):
            if _nnx_layer(mod):
                names[id(mod)] = path_str(path) or type(mod).__name__
        return m(x, **kwargs)

    def instrumented() -> contextlib.AbstractContextManager[None]:
        classes = {type(mod) for _, mod in nnx.iter_modules(model) if _nnx_layer(mod)}
        return _wrapped_calls(classes, names)

    def rebuild(p: Any) -> Any:
        nnx.update(model, p)
        return model

    return Adapter("nnx", trainable, apply, instrumented, rebuild)


def is_equinox(model: Any) -> bool:
    """An ``equinox.Module`` instance (False when equinox was never imported)."""
    if "equinox" not in sys.modules:
        return False
    import equinox as eqx

    return isinstance(model, eqx.Module)


def equinox_modules(module: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """``(path, sub-module)`` for ``module`` and every Equinox module in its fields, with
    the '/'-joined paths that :func:`flat_paths` gives their arrays ('layers/0')."""
    import equinox as eqx

    def visit(value: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
        if isinstance(value, eqx.Module):
            yield path_str(path), value
            for field in dataclasses.fields(value):
                yield from visit(getattr(value, field.name, None), (*path, field.name))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                yield from visit(v, (*path, str(i)))
        elif isinstance(value, Mapping):
            for k, v in value.items():
                yield from visit(v, (*path, str(k)))

    yield from visit(module, path)


def _equinox_layer(module: Any) -> bool:
    import equinox as eqx

    return any(
        eqx.is_inexact_array(getattr(module, f.name, None)) for f in dataclasses.fields(module)
    )


@contextlib.contextmanager
def _wrapped_calls(classes: set[type], names: dict[int, str]) -> Iterator[None]:
    """Temporarily wraps each class's ``__call__`` to record the calls of the instances
    in ``names`` (by id) on the innermost recorder."""
    saved: dict[type, Any] = {}
    for cls in classes:
        saved[cls] = cls.__dict__.get("__call__")
        original = cls.__call__

        def wrapper(
            self: Any, *args: Any, _original: Any = original, _cls: type = cls, **kw: Any
        ) -> Any:
            out = _original(self, *args, **kw)
            stack = _stack()
            layer = names.get(id(self))
            # A subclass without its own __call__ reaches its base's wrapper too.
            if not stack or layer is None or type(self) is not _cls:
                return out
            return stack[-1].record(layer, args[0] if args else None, out)

        cls.__call__ = wrapper  # type: ignore[method-assign]
    try:
        yield
    finally:
        for cls, method in saved.items():
            if method is None:
                del cls.__call__
            else:
                cls.__call__ = method  # type: ignore[method-assign]


def _adapt_equinox(model: Any, kwargs: dict[str, Any]) -> Adapter:
    import equinox as eqx

    trainable, static = eqx.partition(model, eqx.is_inexact_array)
    names: dict[int, str] = {}

    def apply(p: Any, x: jax.Array) -> jax.Array:
        m = eqx.combine(p, static)
        names.clear()
        for path, mod in equinox_modules(m):
            if _equinox_layer(mod):
                names[id(mod)] = path or type(mod).__name__
        stack = _stack()
        if not stack:
            return jax.vmap(lambda xi: m(xi, **kwargs))(x)
        outer = stack[-1]

        def one(xi: jax.Array, perturb: Any) -> Any:
            with recording(Recorder(perturb)) as rec:
                y = m(xi, **kwargs)
            outs = {k: o for k, (_, o) in rec.sites.items()}
            ins = {k: i for k, (i, _) in rec.sites.items() if i is not None}
            return y, outs, ins

        y, outs, ins = jax.vmap(one)(x, outer.perturbations)
        for k, o in outs.items():
            unique, n = k, 1
            while unique in outer.sites:
                n += 1
                unique = f"{k}#{n}"
            outer.sites[unique] = (ins.get(k), o)
        return y

    def instrumented() -> contextlib.AbstractContextManager[None]:
        classes = {type(mod) for _, mod in equinox_modules(model) if _equinox_layer(mod)}
        return _wrapped_calls(classes, names)

    return Adapter("equinox", trainable, apply, instrumented,
                   lambda p: eqx.combine(p, static))


# --------------------------------------------------------------------------------------
# Parameter paths.


def flat_paths(tree: Any) -> dict[str, Any]:
    """The leaves of a parameter tree keyed by '/'-joined path ('Dense_0/kernel')."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {path_str(path): leaf for path, leaf in leaves}


def set_paths(tree: Any, updates: Mapping[str, jax.Array]) -> Any:
    """A copy of ``tree`` with the leaves at the given '/'-joined paths replaced."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    new = []
    for path, leaf in leaves:
        new.append(updates.get(path_str(path), leaf))
    return jax.tree_util.tree_unflatten(treedef, new)


def discover(adapter: Adapter, x: jax.Array) -> dict[str, jax.ShapeDtypeStruct]:
    """The layers a forward pass records, in call order, with their output shapes.

    Must be called inside ``adapter.instrumented()`` (entering it twice would record
    every layer twice).
    """

    order: list[str] = []

    def run(p: Any, x: jax.Array) -> dict[str, jax.Array]:
        with recording(Recorder()) as rec:
            adapter.apply(p, x)
        order.extend(rec.sites)
        return {k: out for k, (_, out) in rec.sites.items()}

    shapes = jax.eval_shape(run, adapter.trainable, x)
    # eval_shape returns dicts sorted by key; keep the call order instead.
    return {k: shapes[k] for k in order}


def as_array(name: str, arg: str, x: Any) -> jax.Array:
    try:
        arr = jnp.asarray(x)
    except TypeError:
        raise TypeError(f"{name}: {arg} of type {type(x).__name__} is not an array") from None
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        raise TypeError(f"{name}: {arg} has dtype {arr.dtype}; expected a floating dtype")
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"{name}: {arg} has shape {arr.shape}; expected a non-empty batch")
    return arr
