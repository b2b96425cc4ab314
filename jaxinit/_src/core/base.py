"""The initializer protocol, argument checks, and the eager compiled-call cache.

Every jaxinit initializer is a frozen dataclass deriving from :class:`InitializerBase`.
Its configuration is its identity: equal configurations compare and hash equal, so an
eager call can dispatch one cached compiled executable per (configuration, shape, dtype,
sharding) instead of running its sampling code op by op (the 'Configuration is
identity' design principle).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import numpy as np
from jax.nn.initializers import Initializer as Initializer
from jax.sharding import NamedSharding, PartitionSpec, Sharding
from jax.typing import DTypeLike

Shape = tuple[int, ...]
Axes = int | Sequence[int]
OutSharding = Sharding | PartitionSpec | None


def default_float_dtype() -> np.dtype:
    """JAX's default float dtype *now*: float64 under x64, else float32."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def normalize_dtype(name: str, dtype: DTypeLike | None) -> np.dtype | None:
    """`dtype` as a canonical NumPy dtype (None stays None), or a TypeError naming it."""
    if dtype is None:
        return None
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name}: dtype={dtype!r} is not a dtype") from None
    if not resolved.isnative:
        raise TypeError(
            f"{name}: dtype={dtype!r} is byte-swapped (non-native byte order); JAX arrays use "
            f"native byte order, pass {resolved.newbyteorder('=')} instead"
        )
    return resolved


def check_dtype(name: str, dtype: np.dtype, *, kinds: str = "fc") -> np.dtype:
    """Checks `dtype`'s kind and canonicalizes it (float64 is float32 unless x64 is on).

    `kinds` uses NumPy's kind letters ('f' float, 'c' complex, 'i'/'u' integer, 'b' bool);
    bfloat16 and the float8 types report kind 'V' in NumPy and count as floats here.
    """
    kind = "f" if jax.dtypes.issubdtype(dtype, np.floating) else dtype.kind
    if kind not in kinds:
        wanted = {"f": "floating", "c": "complex", "i": "integer", "u": "unsigned", "b": "bool"}
        expected = " or ".join(wanted[k] for k in kinds)
        raise TypeError(f"{name}: dtype={dtype} is not supported; expected a {expected} dtype")
    resolved = np.dtype(jax.dtypes.canonicalize_dtype(dtype))
    if not _backend_has(resolved):
        raise TypeError(
            f"{name}: dtype={resolved} has no arrays on JAX's {jax.default_backend()} backend; "
            "expected a dtype it can store (e.g. float32, bfloat16, float8_e4m3fn)"
        )
    return resolved


@functools.cache
def _backend_has(dtype: np.dtype) -> bool:
    """Whether the default backend builds arrays of `dtype` (XLA's CPU backend has no
    float6 types, and aborts the process on a compiled constant of one)."""
    try:
        with jax.ensure_compile_time_eval():  # also when first asked under a trace
            jax.numpy.zeros((1,), dtype).block_until_ready()
    except jax.errors.JaxRuntimeError:  # INVALID_ARGUMENT: Invalid XLA PrimitiveType
        return False
    return True


def is_signless(dtype: np.dtype) -> bool:
    """Whether `dtype` has neither zero nor negative numbers (float8_e8m0fnu, a pure
    exponent: 0 and -1 both cast to NaN)."""
    return jax.dtypes.issubdtype(dtype, np.floating) and float(jax.dtypes.finfo(dtype).min) > 0


def unknown_stats(distribution: str = "unknown", mean: float | None = None) -> dict[str, Any]:
    """:func:`jaxinit.describe` fields of a scheme whose distribution is not known in closed
    form: mean (unless given), std and bounds are None."""
    return {"distribution": distribution, "mean": mean, "std": None, "bounds": None}


def check_shape(name: str, shape: Any, min_rank: int = 0, max_rank: int | None = None) -> Shape:
    """`shape` as non-negative ints, rank in [`min_rank`, `max_rank`], else a precise error.

    Zero dimensions are valid (an empty array, as in ``jax.nn.initializers``).
    """
    if isinstance(shape, int | np.integer):
        shape = (shape,)
    try:
        dims = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"{name}: shape={shape!r} must be a sequence of ints") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"{name}: shape={dims} has a negative dimension")
    if len(dims) < min_rank:
        raise ValueError(f"{name}: shape={dims} has rank {len(dims)}; expected rank >= {min_rank}")
    if max_rank is not None and len(dims) > max_rank:
        raise ValueError(f"{name}: shape={dims} has rank {len(dims)}; expected rank <= {max_rank}")
    return dims


#: The largest array an initializer will build, in elements and in bytes: both must fit
#: a signed 64-bit integer, and the bytes the 48-bit virtual address space of x86-64 and
#: AArch64 (256 TiB). XLA aborts the whole process on larger shapes, so they are refused
#: before it sees them.
MAX_ELEMENTS = 2**63 - 1
MAX_BYTES = 2**48


def is_empty(shape: Shape) -> bool:
    """Whether `shape` has a zero dimension (an array with no elements)."""
    return math.prod(shape) == 0


def check_size(name: str, shape: Shape, dtype: np.dtype) -> None:
    """Refuses a shape whose element count or byte size cannot exist (see MAX_BYTES)."""
    count = math.prod(shape)
    size = count * np.dtype(dtype).itemsize
    extent = math.prod(d for d in shape if d)
    # XLA multiplies the extents (in bytes) even of an empty array, and aborts the process
    # on an overflow: the non-zero dimensions obey the same limits as a full array.
    if count == 0 and (extent > MAX_ELEMENTS or extent * np.dtype(dtype).itemsize > MAX_BYTES):
        raise ValueError(
            f"{name}: shape={shape} has no elements but its non-zero dimensions multiply to "
            f"{extent}; expected at most {MAX_ELEMENTS} elements and {MAX_BYTES} bytes "
            "(XLA aborts on larger extents)"
        )
    if count > MAX_ELEMENTS or size > MAX_BYTES:
        raise ValueError(
            f"{name}: shape={shape} has {count} elements ({size} bytes in {np.dtype(dtype)}); "
            f"expected at most {MAX_ELEMENTS} elements and {MAX_BYTES} bytes (256 TiB)"
        )


def check_representable(
    name: str, arg: str, value: Any, biggest: float, dtype: np.dtype
) -> None:
    """Refuses a configuration (`arg`=`value`) whose largest magnitude, `biggest` (the
    configuration times the sampler's largest draw), overflows `dtype` to inf or NaN."""
    if not jax.dtypes.issubdtype(dtype, np.inexact):
        return
    largest = float(jax.dtypes.finfo(dtype).max)
    if not math.isfinite(biggest) or biggest > largest:
        raise ValueError(
            f"{name}: {arg}={value!r} gives values up to {biggest:.4g}, beyond the largest "
            f"finite {np.dtype(dtype)} ({largest:.4g}); use a smaller {arg} or a wider dtype"
        )


def check_scalar(
    name: str, arg: str, value: Any, *, positive: bool = False, nonnegative: bool = False
) -> float:
    """A finite real number as float, or a precise error naming `arg`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: {arg}={value!r} must be a real number") from None
    if not math.isfinite(number):
        raise ValueError(f"{name}: {arg}={value!r} must be finite")
    if positive and number <= 0:
        raise ValueError(f"{name}: {arg}={value!r} must be > 0")
    if nonnegative and number < 0:
        raise ValueError(f"{name}: {arg}={value!r} must be >= 0")
    return number


def check_int(name: str, arg: str, value: Any, *, minimum: int | None = None) -> int:
    """An int (Python or NumPy; not a float, str or bool), or an error naming `arg`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: {arg}={value!r} must be an int")
    number = operator.index(value)
    if minimum is not None and number < minimum:
        raise ValueError(f"{name}: {arg}={number} must be >= {minimum}")
    return number


def check_choice(name: str, arg: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}: {arg}={value!r} is not one of {options}")
    return str(value)


def normalize_axes(name: str, arg: str, axes: Axes) -> int | tuple[int, ...]:
    """An int or a tuple of ints (hashable), or a TypeError naming `arg`."""
    try:
        if isinstance(axes, int | np.integer):
            return operator.index(axes)
        return tuple(operator.index(a) for a in axes)
    except TypeError:
        raise TypeError(f"{name}: {arg}={axes!r} must be an int or a sequence of ints") from None


def check_axes(name: str, arg: str, axes: Axes, rank: int) -> tuple[int, ...]:
    """``axes`` (an int or ints, negative counting from the end) as sorted non-negative axes
    of a rank-`rank` shape, or an error naming `arg`: a TypeError for non-ints, a ValueError
    for an axis out of range. A repeated axis is kept (jax.nn.initializers' fans multiply
    its size in twice)."""
    normalized = normalize_axes(name, arg, axes)
    listed = (normalized,) if isinstance(normalized, int) else normalized
    for axis in listed:
        if not -rank <= axis < rank:
            raise ValueError(f"{name}: {arg}={axes!r} is out of range for a rank-{rank} shape")
    return tuple(sorted(a % rank for a in listed))


def check_key(name: str, key: Any) -> None:
    """Accepts a typed key (``jax.random.key``) or a legacy ``uint32[2]`` key."""
    dtype = getattr(key, "dtype", None)
    if dtype is None:
        raise TypeError(f"{name}: key={key!r} is not a PRNG key; use jax.random.key(seed)")
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(
                f"{name}: key has shape {key.shape}; expected a single key (use jax.vmap "
                "over a batch of keys)"
            )
        return
    if dtype != np.uint32 or key.ndim != 1:
        raise TypeError(
            f"{name}: key of dtype {dtype} and shape {key.shape} is not a PRNG key; expected "
            "jax.random.key(seed) or a legacy uint32 key from jax.random.PRNGKey(seed)"
        )
    impl = str(getattr(jax.config, "jax_default_prng_impl", ""))
    length = _RAW_KEY_LENGTH.get(impl)
    if length is not None and key.shape != (length,):
        raise ValueError(
            f"{name}: key is a raw uint32 array of shape {key.shape}; a legacy {impl} key has "
            f"shape ({length},), as jax.random.PRNGKey(seed) returns"
        )


#: The shape of a raw (legacy) uint32 key for each of JAX's built-in PRNG implementations.
_RAW_KEY_LENGTH = {"threefry2x32": 2, "rbg": 4, "unsafe_rbg": 4}


def resolve_sharding(name: str, out_sharding: OutSharding, rank: int) -> Sharding | None:
    """A concrete sharding for an array of rank `rank`, as ``jax.nn.initializers`` types it.

    A PartitionSpec is resolved against the mesh set by jax.set_mesh. A NamedSharding's
    spec is normalized to the rank: shorter specs are padded with None, so ``P('x')`` on a
    rank-2 array is ``P('x', None)``, the spec JAX gives a sampler's result; a longer spec
    is refused.
    """
    if out_sharding is None:
        return None
    if isinstance(out_sharding, PartitionSpec):
        mesh = jax.sharding.get_mesh()
        if mesh.empty:
            raise ValueError(
                f"{name}: out_sharding={out_sharding} is a PartitionSpec but no mesh is set; "
                "pass a NamedSharding or use `with jax.set_mesh(mesh):`"
            )
        out_sharding = NamedSharding(mesh, out_sharding)
    if not isinstance(out_sharding, Sharding):
        raise TypeError(
            f"{name}: out_sharding={out_sharding!r} must be a Sharding, a PartitionSpec or None"
        )
    if not isinstance(out_sharding, NamedSharding):
        return out_sharding
    spec = out_sharding.spec
    if len(spec) > rank:
        raise ValueError(
            f"{name}: out_sharding spec {spec} has {len(spec)} entries; expected at most "
            f"{rank}, the rank of the array"
        )
    if len(spec) == rank:
        return out_sharding
    padded = spec.update(partitions=(*spec, *([None] * (rank - len(spec)))))
    return out_sharding.update(spec=padded)


@dataclasses.dataclass(frozen=True)
class InitializerBase:
    """Base class of jaxinit initializers (see the module docstring).

    Subclasses are frozen dataclasses that implement :meth:`generate` (sampling for a
    checked shape and dtype, traced) and may override :meth:`check` (shape checks that
    need the configuration) and :meth:`stats` (the exact distribution, for `describe`).
    """

    #: The public name used in error messages, e.g. "he_normal".
    name: ClassVar[str] = "initializer"
    #: The smallest rank the scheme accepts.
    min_rank: ClassVar[int] = 0
    #: The largest rank the scheme accepts (None: any).
    max_rank: ClassVar[int | None] = None
    #: NumPy dtype kinds the scheme produces ('f' float, 'c' complex, 'i', 'u', 'b').
    kinds: ClassVar[str] = "f"
    #: The argument that sets the weights' magnitude, named by :meth:`check_range`.
    magnitude_arg: ClassVar[str] = ""
    #: Whether :meth:`check` itself refuses every configuration that overflows the dtype
    #: (then :meth:`check_range` only checks the sign and zero of signless dtypes).
    checks_range: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if hasattr(self, "dtype"):
            object.__setattr__(self, "dtype", normalize_dtype(self.name, self.dtype))

    def __call__(
        self,
        key: jax.Array,
        shape: Sequence[int],
        dtype: DTypeLike | None = None,
        out_sharding: OutSharding = None,
    ) -> jax.Array:
        shape = check_shape(self.name, shape, self.min_rank, self.max_rank)
        if is_empty(shape):
            self.empty(shape)
        if dtype is None:
            dtype = getattr(self, "dtype", None)
        requested = normalize_dtype(self.name, dtype) or default_float_dtype()
        check_key(self.name, key)
        if isinstance(key, jax.core.Tracer):
            return self._traced(key, shape, self.resolve(shape, requested), out_sharding)
        sharding = resolve_sharding(self.name, out_sharding, len(shape))
        return compiled(self, shape, requested, sharding)(key)

    def resolve(self, shape: Shape, dtype: np.dtype) -> np.dtype:
        """Checks `dtype` and `shape` against this configuration; the dtype to generate."""
        resolved = check_dtype(self.name, dtype, kinds=self.kinds)
        check_size(self.name, shape, resolved)
        if not is_empty(shape):  # an empty array has no values a configuration could miss
            self.check(shape, resolved)
            self.check_range(shape, resolved)
        return resolved

    def check_range(self, shape: Shape, dtype: np.dtype) -> None:
        """Refuses weights `dtype` cannot hold, judged from :meth:`stats`: the largest
        magnitude (the bounds, or for a normal law mean + std times the sampler's largest
        draw) beyond `dtype`'s largest finite value, and, for a dtype with no zero and no
        negative numbers (float8_e8m0fnu), any law not bounded to positive values. A law
        with neither finite bounds nor a normal std (``"unknown"``, or the support of a law
        whose sampler never reaches its infinite end) is not judged here."""
        if not jax.dtypes.issubdtype(dtype, np.inexact):
            return
        signless = is_signless(dtype)
        if self.checks_range and not signless:
            return
        stats = self.stats(shape, dtype)
        bounds = stats.get("bounds")
        if signless and not (bounds is not None and min(bounds) > 0):
            raise TypeError(
                f"{self.name}: dtype={dtype} has no zero and no negative numbers; "
                f"{self.name} draws values in {bounds or 'an unbounded range'}, so expected a "
                "signed float dtype (e.g. float8_e4m3fn)"
            )
        if self.checks_range:
            return
        from jaxinit._src.core.sampling import largest_draw  # sampling imports this module

        if bounds is not None and all(math.isfinite(abs(complex(b))) for b in bounds):
            biggest = max(abs(complex(b)) for b in bounds)
        elif "normal" in str(stats.get("distribution")) and stats.get("std") is not None:
            mean = abs(complex(stats.get("mean") or 0.0))
            biggest = mean + stats["std"] * largest_draw("normal", dtype)
        else:
            return
        arg = self.magnitude_arg
        value = getattr(self, arg) if arg else self
        check_representable(self.name, arg or "configuration", value, biggest, dtype)

    def sample(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        """:meth:`generate`, or the empty array for a shape with a zero dimension."""
        if is_empty(shape):
            return jax.numpy.zeros(shape, dtype)
        return self.generate(key, shape, dtype)

    def _traced(
        self, key: jax.Array, shape: Shape, dtype: np.dtype, out_sharding: OutSharding
    ) -> jax.Array:
        """Under a trace (jit, vmap, eval_shape): sample inline, then place the result.

        ``with_sharding_constraint`` only accepts Auto mesh axes, and ``jax.get_mesh``
        fails inside jit, so the placement depends on the mesh set by ``jax.set_mesh``:
        Explicit axes are resharded, Auto axes constrained; with no mesh set, a
        NamedSharding goes through the same jitted executable as an eager call, whose
        ``out_shardings`` accept either kind of axis.
        """
        if out_sharding is None:
            return self.sample(key, shape, dtype)
        if not isinstance(out_sharding, Sharding | PartitionSpec):
            resolve_sharding(self.name, out_sharding, len(shape))  # raises the TypeError
        context = jax.sharding.get_abstract_mesh()
        if not context.empty:
            out = self.sample(key, shape, dtype)
            if any(t == jax.sharding.AxisType.Explicit for t in context.axis_types):
                return jax.sharding.reshard(out, out_sharding)
            return jax.lax.with_sharding_constraint(out, out_sharding)
        if isinstance(out_sharding, PartitionSpec):
            raise ValueError(
                f"{self.name}: out_sharding={out_sharding} is a PartitionSpec but no mesh is "
                "set; pass a NamedSharding or use `with jax.set_mesh(mesh):`"
            )
        sharding = resolve_sharding(self.name, out_sharding, len(shape))
        return compiled(self, shape, dtype, sharding)(key)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        """Raises ValueError for a shape this configuration cannot fill (skipped when empty)."""

    def empty(self, shape: Shape) -> None:
        """Called on each call with a zero-size `shape`, before the empty array is returned."""

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        raise NotImplementedError

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        """The exact distribution of one element, as used by :func:`jaxinit.describe`.

        This default is the partial answer of a scheme that cannot state its distribution:
        ``"unknown"``, with mean, std and bounds None.
        """
        return unknown_stats()


@dataclasses.dataclass(frozen=True)
class ShapeDependent(InitializerBase):
    """An initializer that is another jaxinit scheme once the shape is known.

    Subclasses implement :meth:`scheme` (e.g. a variance scaling whose scale depends on
    fan_in); checks, sampling and statistics are the scheme's own.
    """

    def scheme(self, shape: Shape) -> InitializerBase:
        raise NotImplementedError

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        self.scheme(shape).check(shape, dtype)

    def check_range(self, shape: Shape, dtype: np.dtype) -> None:
        self.scheme(shape).check_range(shape, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        return self.scheme(shape).generate(key, shape, dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        return self.scheme(shape).stats(shape, dtype)


@functools.lru_cache(maxsize=4096)
def compiled(
    init: InitializerBase, shape: Shape, dtype: np.dtype, sharding: Sharding | None
) -> Any:
    """One jitted executable per (configuration, shape, dtype, sharding).

    The configuration's checks run once, on the miss; a hit costs a dict lookup.
    """
    generate = functools.partial(init.sample, shape=shape, dtype=init.resolve(shape, dtype))
    return jax.jit(generate, out_shardings=sharding)
