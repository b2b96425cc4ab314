"""`describe`: an initializer's exact distribution for a given shape, in words and numbers."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from jax.typing import DTypeLike

from jaxinit._src.core.base import (
    InitializerBase,
    check_shape,
    default_float_dtype,
    is_empty,
    normalize_dtype,
)


@dataclasses.dataclass(frozen=True)
class Description:
    """What an initializer draws for one shape and dtype (see :func:`describe`)."""

    initializer: str
    shape: tuple[int, ...]
    dtype: str
    distribution: str
    mean: float | None
    std: float | None
    bounds: tuple[float, float] | None
    fan_in: int | None = None
    fan_out: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        fans = "" if self.fan_in is None else f", fan_in={self.fan_in}, fan_out={self.fan_out}"
        bounds = (
            "" if self.bounds is None else f", within [{self.bounds[0]:.6g}, {self.bounds[1]:.6g}]"
        )
        mean = "unknown" if self.mean is None else f"{self.mean:.6g}"
        std = "unknown" if self.std is None else f"{self.std:.6g}"
        return (
            f"{self.initializer} for {self.shape} {self.dtype}: {self.distribution}, "
            f"mean {mean}, std {std}{bounds}{fans}"
        )


def describe(
    init: InitializerBase, shape: Sequence[int], dtype: DTypeLike | None = None
) -> Description:
    """Describes the distribution ``init`` draws for ``shape`` and ``dtype``.

    The numbers are exact (computed from the scheme's formula, not sampled): the fans,
    the mean and standard deviation of one element, its bounds when it has any, and the
    distribution's name. ``str()`` gives one line of text, ``.as_dict()`` a dict.
    A scheme with no closed-form law gives a partial description: the PyTorch default
    rules (mean 0, std None: the fan_in comes from the layer), ``pretrained`` (its stored
    values, mean and std None) and a combinator around a plain callable such as a
    ``jax.nn.initializers`` function (``"unknown (...)"``, None where unknown).

    Args:
      init: a jaxinit initializer.
      shape: the kernel's shape.
      dtype: the dtype (None: JAX's default float dtype).

    Returns:
      A :class:`Description`.

    Example:
      >>> import jaxinit
      >>> d = jaxinit.describe(jaxinit.he_uniform(), (3, 3, 64, 128))
      >>> print(d)  # doctest: +ELLIPSIS
      VarianceScaling(scale=2.0, ...) for (3, 3, 64, 128) float32: uniform, mean 0,
      std 0.0589256, within [-0.102062, 0.102062], fan_in=576, fan_out=1152
      >>> d.fan_in, round(d.std ** 2 * d.fan_in, 6)
      (576, 2.0)
    """
    if not isinstance(init, InitializerBase):
        raise TypeError(f"describe: init={init!r} is not a jaxinit initializer")
    shape = check_shape(init.name, shape, init.min_rank, init.max_rank)
    if is_empty(shape):
        raise ValueError(
            f"describe: shape={shape} has no elements, so {init.name} draws no distribution "
            "to describe; pass a shape without a zero dimension"
        )
    if dtype is None:
        dtype = getattr(init, "dtype", None)
    resolved = init.resolve(shape, normalize_dtype(init.name, dtype) or default_float_dtype())
    stats = init.stats(shape, resolved)
    return Description(
        initializer=repr(init),
        shape=shape,
        dtype=str(resolved),
        distribution=stats["distribution"],
        mean=stats["mean"],
        std=stats["std"],
        bounds=stats["bounds"],
        fan_in=stats.get("fan_in"),
        fan_out=stats.get("fan_out"),
    )
