"""`pretrained`: an initializer that returns a stored array, as any other initializer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core.base import (
    InitializerBase,
    OutSharding,
    Shape,
    check_dtype,
    check_key,
    check_shape,
    default_float_dtype,
    normalize_dtype,
    resolve_sharding,
    unknown_stats,
)
from jaxinit._src.pretrained.errors import PretrainedError
from jaxinit._src.pretrained.formats import Format, Weights, open_weights
from jaxinit._src.pretrained.layout import layout_hint

Transform = Callable[[np.ndarray], Any]


@dataclasses.dataclass(frozen=True)
class CastInfo:
    """One dtype cast made while loading: counts of overflowed and flushed-to-zero values."""

    key: str
    source_dtype: str
    dtype: str
    overflow: int
    underflow: int


def is_inexact(dtype: np.dtype) -> bool:
    return dtype.kind in "fc" or bool(jax.dtypes.issubdtype(dtype, np.floating))


def cast(where: str, array: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, CastInfo | None]:
    """Casts `array` to `dtype` on the host, refusing overflow and lossy kind changes.

    A finite value that becomes inf (float targets) or falls outside the integer range
    is an overflow and an error; a nonzero value that becomes zero is an underflow,
    counted and allowed. Float to integer and complex to real casts are refused.
    """
    if array.dtype == dtype:
        return array, None
    if array.dtype.kind == "c" and dtype.kind != "c":
        raise PretrainedError(
            f"{where}: casting complex {array.dtype} to {dtype} would drop the imaginary part"
        )
    if is_inexact(array.dtype) and not is_inexact(dtype):
        raise PretrainedError(
            f"{where}: casting {array.dtype} weights to {dtype} would truncate them"
        )
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if is_inexact(dtype):
            out = array.astype(dtype)
            overflow_mask = ~np.isfinite(out) & np.isfinite(array)
            underflow = int(np.count_nonzero((out == 0) & (array != 0)))
        else:
            info = np.iinfo(dtype) if dtype.kind in "iu" else None
            if info is None:  # bool
                overflow_mask = (array != 0) & (array != 1)
            else:
                overflow_mask = (array < info.min) | (array > info.max)
            out = array.astype(dtype)
            underflow = 0
    overflow = int(np.count_nonzero(overflow_mask))
    if overflow:
        worst = np.abs(array[overflow_mask].astype(np.float64)).max()
        raise PretrainedError(
            f"{where}: casting {array.dtype} to {dtype} overflows {overflow} value(s) "
            f"(largest magnitude {worst:.6g}); load in a wider dtype"
        )
    return out, CastInfo(where, str(array.dtype), str(dtype), overflow, underflow)


def resolve_dtype(name: str, stored: np.dtype, dtype: DTypeLike | None) -> np.dtype:
    """`dtype`, or for None the default float dtype (float weights) or the stored dtype."""
    if dtype is None:
        return default_float_dtype() if is_inexact(stored) else stored
    return check_dtype(name, normalize_dtype(name, dtype) or default_float_dtype(), kinds="fciub")


@dataclasses.dataclass(frozen=True)
class Pretrained(InitializerBase):
    """Returns the array stored under ``entry`` in ``source`` (see :func:`pretrained`).

    Equality and hashing use the source's identity (a file's path, size and modification
    time; an in-memory source's object identity), the entry name and the transform, never
    the array contents.
    """

    source: Weights
    entry: str
    transform: Transform | None = None
    name = "pretrained"
    kinds = "fciub"

    def load(self) -> np.ndarray:
        """The stored array after ``transform`` (read from the source on every call)."""
        array = self.source[self.entry]
        if self.transform is not None:
            try:
                array = np.asarray(self.transform(array))
            except Exception as e:
                raise PretrainedError(
                    f"{self.source.name}: transform {self.transform!r} failed on key "
                    f"{self.entry!r} of shape {self.source.shape(self.entry)}: {e}"
                ) from e
        return array

    def __call__(
        self,
        key: jax.Array,
        shape: Sequence[int],
        dtype: DTypeLike | None = None,
        out_sharding: OutSharding = None,
    ) -> jax.Array:
        shape = check_shape(self.name, shape)
        check_key(self.name, key)
        sharding = resolve_sharding(self.name, out_sharding, len(shape))
        where = f"{self.source.name}: key {self.entry!r}"
        if self.transform is None:  # check the header before reading any data
            self.check_shape(self.source.shape(self.entry), shape)
        array = self.load()
        self.check_shape(array.shape, shape)
        resolved = resolve_dtype(self.name, array.dtype, dtype)
        out, _ = cast(where, array, resolved)
        # Not routed through the compiled-call cache: that cache would keep one
        # executable, with the weights baked in as a constant, alive per entry.
        if sharding is not None:
            return jax.device_put(out, sharding)
        return jnp.asarray(out)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        """A partial description: the values are the stored ones, not drawn from a law
        (nothing is read, so mean and std are None)."""
        return unknown_stats(f"stored values of key {self.entry!r} in {self.source.name}")

    def check_shape(self, stored: tuple[int, ...], wanted: tuple[int, ...]) -> None:
        if tuple(stored) != tuple(wanted):
            after = " (after transform)" if self.transform is not None else ""
            raise PretrainedError(
                f"{self.source.name}: key {self.entry!r} has shape {tuple(stored)}{after} but "
                f"the parameter has shape {tuple(wanted)}.{layout_hint(tuple(stored), wanted)}"
            )


def pretrained(
    source_or_array: Any,
    name: str | None = None,
    *,
    transform: Transform | None = None,
    format: Format = "auto",
    trusted: bool = False,
    allow_nonfinite: bool = False,
) -> Pretrained:
    """An initializer that ignores the key and returns a stored (pretrained) array.

    The requested shape must equal the stored shape (after ``transform``) exactly; the
    error on a mismatch names the checkpoint key and both shapes, and suggests the
    layout converter when the shape is merely transposed (``jaxinit.layout.linear``,
    ``conv``...). The array is cast to the requested dtype on the host; a cast that
    overflows (say float32 weights above 65504 into float16) is an error. With
    ``out_sharding`` the array is placed directly in that sharding.

    Under ``jit`` (or inside a jitted ``model.init``) the array becomes a compile-time
    constant embedded in the program: fine for small models; for large ones build the
    model abstractly and use :func:`load_pretrained`.

    Args:
      source_or_array: a path, a :class:`Weights` from :func:`open_weights`, a mapping,
        or a single array (then ``name`` must be None).
      name: the checkpoint key ('/'-joined for nested sources).
      transform: a layout converter applied to the stored array, e.g.
        ``jaxinit.layout.linear``.
      format: the checkpoint format, as in :func:`open_weights`.
      trusted: allow PyTorch pickles (``torch.load(weights_only=True)`` only).
      allow_nonfinite: accept NaN/inf values.

    Returns:
      A :class:`Pretrained` initializer.

    Example:
      >>> import jax, numpy as np, jaxinit
      >>> w = {"dense.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}
      >>> init = jaxinit.pretrained(w, "dense.weight", transform=jaxinit.layout.linear)
      >>> init(jax.random.key(0), (3, 2))
      Array([[0., 3.],
             [1., 4.],
             [2., 5.]], dtype=float32)

    References:
      Yosinski et al., "How transferable are features in deep neural networks?" (2014),
      https://arxiv.org/abs/1411.1792
    """
    if isinstance(source_or_array, np.ndarray | jax.Array | int | float | complex | np.generic):
        if name is not None:
            raise TypeError(f"pretrained: name={name!r} is only for a checkpoint, not an array")
        weights = open_weights({"array": source_or_array}, allow_nonfinite=allow_nonfinite)
        name = "array"
    else:
        if name is None:
            raise TypeError("pretrained: name= (the checkpoint key) is required for a checkpoint")
        weights = open_weights(
            source_or_array, format=format, trusted=trusted, allow_nonfinite=allow_nonfinite
        )
    weights.spec(name)  # a missing key fails now, not at init time
    return Pretrained(weights, name, transform)
