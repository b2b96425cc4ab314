"""Combinators: a scaled initializer, stacked layers, fused blocks.

Each combinator is a frozen dataclass holding other initializers, so it stays hashable,
printable and jit-compatible, and dispatches one cached executable per configuration
like every other jaxinit initializer (the 'Configuration is identity' design principle).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.core import sampling
from jaxinit._src.core.base import (
    Axes,
    InitializerBase,
    Shape,
    check_axes,
    check_scalar,
    normalize_axes,
    unknown_stats,
)

#: Anything callable as ``init(key, shape, dtype)``: a jaxinit initializer or a
#: ``jax.nn.initializers`` function.
InitLike = Callable[..., jax.Array]


def _check_init(name: str, arg: str, init: Any) -> None:
    if not callable(init):
        raise TypeError(f"{name}: {arg}={init!r} is not an initializer (not callable)")


def _inner(init: InitLike, name: str, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
    """Draws ``init`` for ``shape``; a jaxinit initializer is checked and traced inline."""
    if isinstance(init, InitializerBase):
        if len(shape) < init.min_rank:
            raise ValueError(
                f"{name}: {init.name} needs rank >= {init.min_rank}, got part shape {shape}"
            )
        init.check(shape, dtype)
        init.check_range(shape, dtype)
        return init.generate(key, shape, dtype)
    return jnp.asarray(init(key, shape, dtype))


def _check_part(init: InitLike, name: str, shape: Shape, dtype: np.dtype) -> None:
    if isinstance(init, InitializerBase):
        if len(shape) < init.min_rank:
            raise ValueError(
                f"{name}: {init.name} needs rank >= {init.min_rank}, got part shape {shape}"
            )
        init.check(shape, dtype)
        init.check_range(shape, dtype)


def _stats(init: InitLike, name: str, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
    if not isinstance(init, InitializerBase):
        # A plain callable (e.g. a jax.nn.initializers function) does not state its law.
        return unknown_stats(f"unknown ({init!r})")
    return init.stats(shape, dtype)


# --- scaled ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scaled(InitializerBase):
    """``factor * init`` (see :func:`scaled`)."""

    init: InitLike
    factor: float = 1.0
    name = "scaled"
    magnitude_arg = "factor"
    kinds = "fc"

    def __post_init__(self) -> None:
        _check_init(self.name, "init", self.init)
        object.__setattr__(self, "factor", check_scalar(self.name, "factor", self.factor))

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        _check_part(self.init, self.name, shape, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        # Draw in the sampling precision, scale, then cast once: the same rounding as a
        # scheme drawn directly with the scaled variance ('Sample wide, then cast').
        wide = _inner(self.init, self.name, key, shape, sampling.sample_dtype(dtype))
        factor = np.asarray(self.factor, wide.dtype)
        return (wide * factor).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        stats = dict(_stats(self.init, self.name, shape, dtype))
        f = self.factor
        if stats["mean"] is not None:
            stats["mean"] = stats["mean"] * f
        if stats["std"] is not None:
            stats["std"] = stats["std"] * abs(f)
        if stats.get("bounds") is not None:
            lo, hi = stats["bounds"][0] * f, stats["bounds"][1] * f
            stats["bounds"] = (min(lo, hi), max(lo, hi))
        return stats


def scaled(init: InitLike, factor: float) -> Scaled:
    r"""Builds ``init`` multiplied by a constant ``factor``.

    .. math:: w = \text{factor} \cdot w_0, \quad w_0 \sim \text{init}, \quad
       \mathrm{Std}[w] = |\text{factor}|\,\mathrm{Std}[w_0]

    The inner scheme is drawn in float32 (float64 for float64), multiplied, then cast
    once, so a low-precision result is rounded once, like any other scheme. Use it for
    depth scaling (GPT-2's ``1/sqrt(2 n_layers)`` on residual projections), zero-ish
    starts, or a gain such as ``jaxinit.gain("tanh")`` on an orthogonal kernel.

    Args:
      init: the initializer to scale (a jaxinit initializer or any
        ``init(key, shape, dtype)`` callable).
      factor: a finite real multiplier.

    Returns:
      A :class:`Scaled` initializer.

    Example:
      >>> import jax, jaxinit
      >>> init = jaxinit.scaled(jaxinit.lecun_normal(), 0.5)
      >>> init
      Scaled(init=VarianceScaling(scale=1.0, mode='fan_in', ...), factor=0.5)
      >>> jaxinit.describe(init, (256, 64)).std   # 0.5 / sqrt(256)
      0.03125

    References:
      Radford et al. (2019), GPT-2, section 2.3 (residual scaling),
      https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf.
    """
    return Scaled(init, factor)


# --- channels first ----------------------------------------------------------------------


def flax_shape(shape: Shape) -> Shape:
    """The Flax layout ``(*kernel, in, out)`` of an out-first ``(out, in, *kernel)`` shape."""
    if len(shape) < 2:
        return tuple(shape)
    return (*shape[2:], shape[1], shape[0])


def to_channels_first(w: jax.Array) -> jax.Array:
    """``(*kernel, in, out)`` -> ``(out, in, *kernel)``: the inverse of :func:`flax_shape`."""
    if w.ndim < 2:
        return w
    k = w.ndim - 2
    return jnp.transpose(w, (k + 1, k, *range(k)))


@dataclasses.dataclass(frozen=True)
class ChannelsFirst(InitializerBase):
    """``init`` drawn in Flax's layout, stored out-first (see :func:`channels_first`)."""

    init: InitLike
    name = "channels_first"
    kinds = "fc"

    def __post_init__(self) -> None:
        _check_init(self.name, "init", self.init)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        _check_part(self.init, self.name, flax_shape(shape), dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        return to_channels_first(_inner(self.init, self.name, key, flax_shape(shape), dtype))

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        return _stats(self.init, self.name, flax_shape(shape), dtype)


def channels_first(init: InitLike) -> ChannelsFirst:
    r"""Builds ``init`` for a weight stored out-first, as PyTorch and Equinox store them.

    Flax (and Keras, and jax.nn.initializers' defaults) lay kernels out as
    ``(*kernel, in, out)``; PyTorch and Equinox as ``(out, in, *kernel)``. The result
    draws ``init`` at the Flax shape and transposes:

    .. math:: w = \operatorname{transpose}(w_0), \quad w_0 \sim \text{init}(\text{key},
       (k_1, \dots, k_n, \text{in}, \text{out}))

    so fans, and therefore variances, are those of the same layer in Flax. Vectors
    (rank < 2) pass through unchanged.

    Args:
      init: the initializer, written for Flax's layout (a jaxinit initializer or any
        ``init(key, shape, dtype)`` callable).

    Returns:
      A :class:`ChannelsFirst` initializer.

    Example:
      >>> import jax, jaxinit
      >>> init = jaxinit.channels_first(jaxinit.he_normal())
      >>> init(jax.random.key(0), (128, 16)).shape      # Equinox Linear: (out, in)
      (128, 16)
      >>> round(jaxinit.describe(init, (128, 16)).std ** 2 * 16, 6)   # 2 / fan_in, fan_in = 16
      2.0
    """
    return ChannelsFirst(init)


# --- stacked -----------------------------------------------------------------------------


def _stack_axes(name: str, axis: int | tuple[int, ...], rank: int) -> tuple[int, ...]:
    normalized = check_axes(name, "axis", axis, rank)
    if not normalized:
        raise ValueError(f"{name}: axis=() names no stacking axis")
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{name}: axis={axis!r} repeats an axis")
    return normalized


@dataclasses.dataclass(frozen=True)
class Stacked(InitializerBase):
    """Independent draws of ``init`` along stacking axes (see :func:`stacked`)."""

    init: InitLike
    axis: Axes = 0
    name = "stacked"
    kinds = "fc"

    def __post_init__(self) -> None:
        _check_init(self.name, "init", self.init)
        object.__setattr__(self, "axis", normalize_axes(self.name, "axis", self.axis))

    def split(self, shape: Shape) -> tuple[tuple[int, ...], Shape]:
        """The stacking axes (normalized) and the shape of one slice."""
        axes = _stack_axes(self.name, self.axis, len(shape))  # type: ignore[arg-type]
        if len(axes) == len(shape):
            raise ValueError(
                f"{self.name}: axis={self.axis!r} stacks every axis of shape={shape}; "
                "a slice must keep at least one axis"
            )
        return axes, tuple(d for i, d in enumerate(shape) if i not in axes)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        _, part = self.split(shape)
        _check_part(self.init, self.name, part, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        axes, part = self.split(shape)
        stack = tuple(shape[a] for a in axes)
        # Slice i (in row-major order over the stacking axes) is init(split(key, n)[i]).
        keys = jax.random.split(key, math.prod(stack))
        draws = jax.vmap(lambda k: _inner(self.init, self.name, k, part, dtype))(keys)
        draws = draws.reshape(stack + part)
        return jnp.moveaxis(draws, tuple(range(len(axes))), axes)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        axes, part = self.split(shape)
        stats = dict(_stats(self.init, self.name, part, dtype))
        stats["stacked"] = tuple(shape[a] for a in axes)
        return stats


def stacked(init: InitLike, axis: Axes = 0) -> Stacked:
    r"""Builds an initializer for stacked layers: each slice drawn independently with its fans.

    For a kernel of shape ``(n, *s)`` (``axis=0``) slice ``i`` is
    ``init(split(key, n)[i], s)``, so its fans are those of ``s``, not of the whole
    stack: a scan-stacked ``(24, 1024, 1024)`` kernel drawn as one array by
    ``lecun_normal()`` gets :math:`\text{fan\_in} = 24 \cdot 1024` and :math:`1/\sqrt{24}` = 0.20x
    the
    intended std.
    Several stacking axes (layers and experts, say) are drawn independently too.
    Unlike ``batch_axis=`` it works for any scheme, orthogonal ones included.

    Args:
      init: the initializer of one slice (a jaxinit initializer or any
        ``init(key, shape, dtype)`` callable).
      axis: the stacking axis or axes.

    Returns:
      A :class:`Stacked` initializer.

    Example:
      >>> import jax, jaxinit
      >>> init = jaxinit.stacked(jaxinit.orthogonal(), axis=0)
      >>> w = init(jax.random.key(0), (4, 64, 64))        # 4 independent orthogonal layers
      >>> bool(jax.numpy.allclose(w[2].T @ w[2], jax.numpy.eye(64), atol=1e-5))
      True
      >>> jaxinit.describe(jaxinit.stacked(jaxinit.lecun_normal()), (24, 1024, 1024)).fan_in
      1024
    """
    return Stacked(init, axis)


# --- blocks ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Blocks(InitializerBase):
    """A fused kernel made of blocks along one axis, each drawn with its own fans."""

    inits: InitLike | tuple[InitLike, ...]
    sizes: int | tuple[int, ...]
    axis: int = -1
    name = "blocks"
    kinds = "fc"

    def __post_init__(self) -> None:
        inits = self.inits
        if isinstance(inits, list | tuple):
            if not inits:
                raise ValueError(f"{self.name}: inits=() names no initializer")
            for i, init in enumerate(inits):
                _check_init(self.name, f"inits[{i}]", init)
            object.__setattr__(self, "inits", tuple(inits))
        else:
            _check_init(self.name, "inits", inits)
        sizes = self.sizes
        try:
            if isinstance(sizes, int | np.integer):
                sizes = operator.index(sizes)
                if sizes < 1:
                    raise ValueError(f"{self.name}: sizes={self.sizes!r} must be >= 1")
            else:
                sizes = tuple(operator.index(s) for s in sizes)
                if not sizes or any(s < 1 for s in sizes):
                    raise ValueError(
                        f"{self.name}: sizes={self.sizes!r} must be a non-empty sequence of "
                        "positive ints"
                    )
        except TypeError:
            raise TypeError(
                f"{self.name}: sizes={self.sizes!r} must be an int (number of equal blocks) "
                "or a sequence of ints"
            ) from None
        object.__setattr__(self, "sizes", sizes)
        count = sizes if isinstance(sizes, int) else len(sizes)
        if isinstance(self.inits, tuple) and len(self.inits) != count:
            raise ValueError(
                f"{self.name}: got {len(self.inits)} inits for {count} blocks "
                f"(sizes={self.sizes!r}); pass one initializer or one per block"
            )
        try:
            object.__setattr__(self, "axis", operator.index(self.axis))
        except TypeError:
            raise TypeError(f"{self.name}: axis={self.axis!r} must be an int") from None

    def layout(self, shape: Shape) -> tuple[int, tuple[int, ...], tuple[InitLike, ...]]:
        """The normalized axis, the block sizes and one initializer per block."""
        (axis,) = check_axes(self.name, "axis", self.axis, len(shape))
        total = shape[axis]
        if isinstance(self.sizes, int):
            if total % self.sizes:
                raise ValueError(
                    f"{self.name}: sizes={self.sizes} equal blocks do not divide "
                    f"shape[{self.axis}]={total} of shape={shape}"
                )
            sizes = (total // self.sizes,) * self.sizes
        else:
            sizes = self.sizes
            if sum(sizes) != total:
                raise ValueError(
                    f"{self.name}: sizes={sizes} sum to {sum(sizes)}, but "
                    f"shape[{self.axis}]={total} for shape={shape}"
                )
        inits = self.inits if isinstance(self.inits, tuple) else (self.inits,) * len(sizes)
        return axis, sizes, inits

    def parts(self, shape: Shape) -> list[tuple[InitLike, Shape]]:
        axis, sizes, inits = self.layout(shape)
        return [
            (init, (*shape[:axis], size, *shape[axis + 1 :]))
            for init, size in zip(inits, sizes, strict=True)
        ]

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        for init, part in self.parts(shape):
            _check_part(init, self.name, part, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        axis = self.layout(shape)[0]
        parts = self.parts(shape)
        keys = jax.random.split(key, len(parts))
        # Block i is inits[i](split(key, n_blocks)[i], block shape).
        draws = [_inner(init, self.name, keys[i], part, dtype)
                 for i, (init, part) in enumerate(parts)]
        return jnp.concatenate(draws, axis=axis)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        """Mixture statistics over the blocks, weighted by their sizes; per-block entries."""
        parts = self.parts(shape)
        total = math.prod(shape)
        blocks = [(_stats(init, self.name, part, dtype), math.prod(part) / total)
                  for init, part in parts]
        mean: float | None = None
        std: float | None = None
        if all(s["mean"] is not None for s, _ in blocks):
            mean = sum(w * s["mean"] for s, w in blocks)
            if all(s["std"] is not None for s, _ in blocks):
                second = sum(w * (s["std"] ** 2 + s["mean"] ** 2) for s, w in blocks)
                std = math.sqrt(max(second - mean**2, 0.0))
        bounds: tuple[float, float] | None = None
        if all(s.get("bounds") is not None for s, _ in blocks):
            bounds = (min(s["bounds"][0] for s, _ in blocks),
                      max(s["bounds"][1] for s, _ in blocks))
        kinds = sorted({s["distribution"] for s, _ in blocks})
        return {
            "distribution": f"blocks of {', '.join(kinds)}",
            "mean": mean,
            "std": std,
            "bounds": bounds,
            "blocks": tuple(s for s, _ in blocks),
        }


def blocks(
    inits: InitLike | Sequence[InitLike], sizes: int | Sequence[int], axis: int = -1
) -> Blocks:
    """Builds an initializer for a fused kernel: blocks along ``axis``, each with its own fans.

    The kernel is split along ``axis`` into blocks of ``sizes`` (or ``sizes`` equal
    blocks when it is an int); block ``i`` is ``inits[i](split(key, n)[i], block_shape)``,
    so its fans, and hence its variance, are those of the block alone. A fused QKV
    kernel ``(d, 3 d)`` drawn as one matrix by ``glorot_*`` has
    ``Var = 2 / (d + 3 d) = 1 / (2 d)`` instead of the ``1 / d`` of three ``(d, d)``
    kernels; ``blocks(glorot_normal(), 3)`` restores it. The same trick undoes the
    flattening of Flax's ``DenseGeneral``/``LinearGeneral``, whose ``kernel_init`` sees
    ``(batch * in, out)``: ``blocks(init, batch, axis=-2)``.

    Args:
      inits: one initializer for every block, or a sequence with one per block.
      sizes: the blocks' sizes along ``axis`` (summing to ``shape[axis]``), or the
        number of equal blocks.
      axis: the fused axis (``-1``: fused outputs such as QKV or gate/up; ``-2``:
        fused inputs).

    Returns:
      A :class:`Blocks` initializer.

    Example:
      >>> import jax, jaxinit
      >>> qkv = jaxinit.blocks(jaxinit.glorot_normal(), 3)     # three (d, d) blocks
      >>> w = qkv(jax.random.key(0), (512, 3 * 512))
      >>> w.shape
      (512, 1536)
      >>> round(jaxinit.describe(qkv, (512, 1536)).std * 512 ** 0.5, 6)   # 1 / sqrt(d)
      1.0
      >>> gate_up = jaxinit.blocks([jaxinit.he_normal(), jaxinit.lecun_normal()], [1024, 1024])

    References:
      Glorot & Bengio (2010), https://proceedings.mlr.press/v9/glorot10a.html.
    """
    if isinstance(inits, list):
        inits = tuple(inits)
    if isinstance(sizes, list):
        sizes = tuple(sizes)
    return Blocks(inits, sizes, axis)  # type: ignore[arg-type]

