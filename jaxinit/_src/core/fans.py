"""Fan computation: which axes of a kernel are inputs, outputs, batch and receptive field."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

from jaxinit._src.core.base import Axes, check_axes, check_shape


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
    ins = check_axes(name, "in_axis", in_axis, rank)
    outs = check_axes(name, "out_axis", out_axis, rank)
    batch = check_axes(name, "batch_axis", batch_axis, rank)
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


class EinsumAxes(TypedDict):
    """The kernel's axes by role; unpack into any variance-scaling initializer with ``**``."""

    in_axis: tuple[int, ...]
    out_axis: tuple[int, ...]
    batch_axis: tuple[int, ...]


def einsum_axes(spec: str, operand: int = -1) -> EinsumAxes:
    """In, out and batch axes of the kernel operand of an einsum, for computing its fans.

    For the kernel operand (by default the last, as in ``nnx.Einsum`` and
    ``jnp.einsum(spec, x, kernel)``) each index letter is classified by where else it
    appears:

    * in one of the other operands but not in the output: contracted, an **in** axis;
    * in the output but in no other operand: an **out** axis;
    * in another operand and in the output: a **batch** axis (heads or experts applied
      independently), counted in neither fan;
    * in neither (summed over the kernel alone): left unnamed, so :func:`compute_fans`
      counts it as receptive field, in both fans.

    ``nnx.Einsum('bd,dhk->bhk', (d, h, k))`` drawn by ``lecun_normal()`` uses
    fan_in = h * d (its default ``in_axis=-2`` names h); with
    ``lecun_normal(**einsum_axes('bd,dhk->bhk'))`` fan_in = d.

    Args:
      spec: an explicit einsum string ``"in1,in2,...->out"``; ``...`` may appear in the
        other operands and the output but not in the kernel.
      operand: index of the kernel among the operands.

    Returns:
      A dict ``{"in_axis": ..., "out_axis": ..., "batch_axis": ...}`` of tuples of axes
      of the kernel.

    Example:
      >>> import jax, jaxinit
      >>> jaxinit.einsum_axes("bd,dhk->bhk")
      {'in_axis': (0,), 'out_axis': (1, 2), 'batch_axis': ()}
      >>> jaxinit.einsum_axes("bhd,hdk->bhk")            # per-head kernels
      {'in_axis': (1,), 'out_axis': (2,), 'batch_axis': (0,)}
      >>> init = jaxinit.lecun_normal(**jaxinit.einsum_axes("bd,dhk->bhk"))
      >>> jaxinit.describe(init, (512, 8, 64)).fan_in
      512
    """
    name = "einsum_axes"
    if not isinstance(spec, str):
        raise TypeError(f"{name}: spec={spec!r} must be a string such as 'bd,dhk->bhk'")
    compact = spec.replace(" ", "")
    if compact.count("->") != 1:
        raise ValueError(
            f"{name}: spec={spec!r} must have exactly one '->' (an explicit output), "
            "e.g. 'bd,dhk->bhk'"
        )
    inputs, output = compact.split("->")
    operands = inputs.split(",")
    if len(operands) < 2:
        raise ValueError(f"{name}: spec={spec!r} has one operand; a kernel needs an input too")
    if not -len(operands) <= operand < len(operands):
        raise ValueError(
            f"{name}: operand={operand} is out of range for {len(operands)} operands in {spec!r}"
        )
    for term in (*operands, output):
        letters = term.replace("...", "")
        if not all(c.isalpha() for c in letters) or term.count("...") > 1:
            raise ValueError(
                f"{name}: spec={spec!r} has an invalid term {term!r}; use letters and at most "
                "one '...'"
            )
    kernel = operands[operand]
    if "..." in kernel:
        raise ValueError(f"{name}: the kernel {kernel!r} in spec={spec!r} cannot use '...'")
    if not kernel:
        raise ValueError(f"{name}: the kernel operand of spec={spec!r} has no axes")
    if len(set(kernel)) != len(kernel):
        raise ValueError(f"{name}: the kernel {kernel!r} in spec={spec!r} repeats an index")
    other_terms = [t for i, t in enumerate(operands) if i != operand % len(operands)]
    if "..." in output and not any("..." in t for t in other_terms):
        raise ValueError(
            f"{name}: the output of spec={spec!r} has '...' but no input operand has"
        )
    others = set("".join(other_terms))
    missing = set(output.replace("...", "")) - others - set(kernel)
    if missing:
        raise ValueError(
            f"{name}: output indices {sorted(missing)} of spec={spec!r} appear in no operand"
        )
    roles: dict[str, list[int]] = {"in_axis": [], "out_axis": [], "batch_axis": []}
    for axis, letter in enumerate(kernel):
        if letter in others:
            roles["batch_axis" if letter in output else "in_axis"].append(axis)
        elif letter in output:
            roles["out_axis"].append(axis)
    return EinsumAxes(
        in_axis=tuple(roles["in_axis"]),
        out_axis=tuple(roles["out_axis"]),
        batch_axis=tuple(roles["batch_axis"]),
    )
