"""Fan computation: which axes of a kernel are inputs, outputs, batch and receptive field."""

from __future__ import annotations

import math
from collections.abc import Sequence

from jaxinit._src.base import Axes, check_shape, normalize_axes


def _axes(name: str, arg: str, axes: Axes, rank: int) -> tuple[int, ...]:
    normalized = normalize_axes(name, arg, axes)
    listed = (normalized,) if isinstance(normalized, int) else normalized
    for axis in listed:
        if not -rank <= axis < rank:
            raise ValueError(f"{name}: {arg}={axes!r} is out of range for a rank-{rank} shape")
    return tuple(sorted(a % rank for a in listed))


def compute_fans(
    shape: Sequence[int],
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
) -> tuple[int, int]:
    """Effective numbers of inputs and outputs of a dense or convolutional kernel.

    ``fan_in = prod(shape[in_axis]) * receptive_field`` and
    ``fan_out = prod(shape[out_axis]) * receptive_field``, where the receptive field is
    the product of the axes named in none of ``in_axis``, ``out_axis`` and ``batch_axis``
    (the spatial axes of a convolution). Batch axes (stacked layers, heads drawn
    independently) count in neither fan.

    Args:
      shape: the kernel's shape, rank >= 2 unless the axes say otherwise.
      in_axis: axis or axes of the inputs (default: the second to last, Flax's layout).
      out_axis: axis or axes of the outputs (default: the last).
      batch_axis: axes that index independent kernels.

    Returns:
      ``(fan_in, fan_out)`` as ints.

    Example:
      >>> import jaxinit
      >>> jaxinit.compute_fans((3, 3, 64, 128))   # a 3x3 conv kernel, HWIO
      (576, 1152)
      >>> jaxinit.compute_fans((24, 512, 1024), batch_axis=0)   # 24 stacked layers
      (512, 1024)
    """
    name = "compute_fans"
    shape = check_shape(name, shape)
    rank = len(shape)
    if rank < 2 and in_axis == -2:
        raise ValueError(
            f"{name}: shape={shape} has rank {rank}; fans need rank >= 2 "
            "(or pass in_axis and out_axis explicitly)"
        )
    ins = _axes(name, "in_axis", in_axis, rank)
    outs = _axes(name, "out_axis", out_axis, rank)
    batch = _axes(name, "batch_axis", batch_axis, rank)
    named = ins + outs + batch
    if len(set(named)) != len(named):
        raise ValueError(
            f"{name}: in_axis={in_axis!r}, out_axis={out_axis!r} and batch_axis={batch_axis!r} "
            f"overlap for shape {shape}"
        )
    receptive = math.prod(d for i, d in enumerate(shape) if i not in named)
    fan_in = math.prod(shape[i] for i in ins) * receptive
    fan_out = math.prod(shape[i] for i in outs) * receptive
    return fan_in, fan_out
