r"""The spectral parametrization (Yang, Simon & Bernstein 2023).

Feature learning at every width holds when each weight matrix and each of its updates has
spectral norm :math:`\Theta(\sqrt{\text{fan\_out} / \text{fan\_in}})` ("A Spectral Condition for
Feature
Learning", Condition 1). A semi-orthogonal matrix has every singular value 1, so
``sqrt(fan_out / fan_in) * Q`` meets the condition exactly at initialization; the
learning rates that keep updates at that spectral norm are, for a rank-one-like gradient
(Section 3 of the paper),

* SGD: :math:`\eta\,\text{fan\_out} / \text{fan\_in}` (the paper's Parametrization 1, derived
  there from the
  gradient of a layer being rank one with spectral norm
  :math:`\Theta(\sqrt{\text{fan\_in} / \text{fan\_out}})`
  when the other layers meet the condition);
* Adam: :math:`\eta / \text{fan\_in}` (a sign-like update of a rank-one gradient has entries
  :math:`\pm\eta` and
  spectral norm :math:`\eta\sqrt{\text{fan\_in}\,\text{fan\_out}}`; dividing by
  :math:`\text{fan\_in}` gives
  :math:`\sqrt{\text{fan\_out} / \text{fan\_in}}`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.compose import paths as _paths
from jaxinit._src.core.base import (
    Axes,
    InitializerBase,
    Shape,
    check_axes,
    check_choice,
    check_scalar,
)
from jaxinit._src.core.base import normalize_axes as _normalize_axes
from jaxinit._src.params.mup import DEFAULT_AXES, OPTIMIZERS, _compile_axes, scale_updates_by_path
from jaxinit._src.schemes.orthogonal import Orthogonal


def _matrix_view(name: str, shape: Shape, in_axis: Axes, out_axis: Axes) -> tuple[
    tuple[int, ...], int, int
]:
    """(permutation putting the output axes last, rows, cols) of a kernel's matrix view."""
    rank = len(shape)
    outs = check_axes(name, "out_axis", out_axis, rank)
    ins = check_axes(name, "in_axis", in_axis, rank)
    if set(ins) & set(outs):
        raise ValueError(f"{name}: in_axis={in_axis!r} and out_axis={out_axis!r} overlap")
    rest = tuple(a for a in range(rank) if a not in outs)
    rows = math.prod(shape[a] for a in rest)
    cols = math.prod(shape[a] for a in outs)
    return rest + outs, rows, cols


@dataclasses.dataclass(frozen=True)
class Spectral(InitializerBase):
    r""":math:`\text{scale}\sqrt{\text{fan\_out} / \text{fan\_in}}\,Q`, :math:`Q` semi-orthogonal
    (see
    :func:`spectral`)."""

    scale: float = 1.0
    in_axis: Axes = -2
    out_axis: Axes = -1
    dtype: DTypeLike | None = None
    name = "spectral"
    magnitude_arg = "scale"
    min_rank = 2
    kinds = "fc"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "scale", check_scalar(self.name, "scale", self.scale))
        for arg in ("in_axis", "out_axis"):
            object.__setattr__(self, arg, _normalize_axes(self.name, arg, getattr(self, arg)))

    def view(self, shape: Shape) -> tuple[tuple[int, ...], int, int, float]:
        perm, rows, cols = _matrix_view(self.name, shape, self.in_axis, self.out_axis)
        return perm, rows, cols, self.scale * math.sqrt(cols / rows)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        self.view(shape)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        perm, rows, cols, factor = self.view(shape)
        q = Orthogonal(factor, -1).generate(key, (rows, cols), dtype)
        q = q.reshape(tuple(shape[a] for a in perm))
        return jnp.transpose(q, tuple(int(a) for a in np.argsort(perm)))

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        _, rows, cols, factor = self.view(shape)
        stats = Orthogonal(factor, -1).stats((rows, cols), dtype)
        stats["spectral_norm"] = abs(factor)
        return stats


def spectral(
    scale: float = 1.0,
    *,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    dtype: DTypeLike | None = None,
) -> Spectral:
    r"""Builds a spectral-parametrization initializer: every singular value
    :math:`\sqrt{\text{fan\_out} / \text{fan\_in}}`.

    .. math:: W = \text{scale}\,\sqrt{\frac{\text{fan\_out}}{\text{fan\_in}}}\; Q, \qquad
       \|W\|_* = \text{scale}\,\sqrt{\frac{\text{fan\_out}}{\text{fan\_in}}}

    with :math:`Q` a Haar-random semi-orthogonal matrix (:func:`jaxinit.orthogonal`) of the
    kernel's matrix view: ``fan_out`` = the product of ``out_axis``, ``fan_in`` = the
    product of every other axis (the receptive field counts as input, as in a
    convolution's im2col matrix). For a square hidden layer this is an orthogonal matrix;
    for an input layer (few inputs, many outputs) the entries are :math:`\Theta(1)`; for a readout
    (many inputs, few outputs) they are :math:`\Theta(1 / \text{fan\_in})`, as muP prescribes.

    Args:
      scale: multiplier of the spectral norm (e.g. ``jaxinit.gain("relu")``).
      in_axis: axis or axes of the inputs (used to check the layout).
      out_axis: axis or axes of the outputs.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`Spectral` initializer.

    Example:
      >>> import jax, jax.numpy as jnp, jaxinit
      >>> w = jaxinit.spectral()(jax.random.key(0), (64, 1024))
      >>> s = jnp.linalg.svd(w, compute_uv=False)
      >>> bool(jnp.allclose(s, 4.0, rtol=1e-4))   # sqrt(1024 / 64)
      True

    References:
      Yang, Simon & Bernstein (2023), A Spectral Condition for Feature Learning,
      https://arxiv.org/abs/2310.17813.
    """
    return Spectral(scale, in_axis, out_axis, dtype)


def _kernel_axes(name: str, path: str, rules: Any) -> tuple[Axes, Axes]:
    return next((ax for regex, ax in rules if regex.fullmatch(path)), (-2, -1))


def spectral_rules(
    params: Any,
    *,
    scale: float = 1.0,
    axes: Sequence[tuple[str, tuple[Axes, Axes]]] | None = None,
) -> tuple[tuple[str, Any], ...]:
    """``reinit`` rules giving every kernel of ``params`` the spectral initialization.

    One rule per float leaf of rank >= 2, ``(re.escape(path), spectral(scale, in_axis,
    out_axis))``, with the in/out axes from ``axes`` (default: (..., in, out), and Flax
    attention projections as in :data:`jaxinit.mup_classify`). Biases and norm scales
    get no rule.

    Args:
      params: the parameters (linen dict, nnx module or State, pytree).
      scale: multiplier of every kernel's spectral norm.
      axes: ``(regex, (in_axis, out_axis))`` pairs for kernels not laid out as (..., in, out).

    Returns:
      A tuple of ``(regex, initializer)`` pairs for ``jaxinit.reinit``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jaxinit
      >>> params = nn.Dense(256).init(jax.random.key(0), jnp.ones((1, 64)))
      >>> jaxinit.spectral_rules(params)
      (('params/kernel', Spectral(scale=1.0, in_axis=-2, out_axis=-1, dtype=None)),)

    References:
      Yang, Simon & Bernstein (2023), https://arxiv.org/abs/2310.17813.
    """
    name = "spectral_rules"
    scale = check_scalar(name, "scale", scale)
    rules = _compile_axes(name, DEFAULT_AXES if axes is None else axes)
    leaves = _paths.float_leaves(name, "params", params)
    out = []
    for path, value in leaves.items():
        if value.ndim >= 2:
            in_axis, out_axis = _kernel_axes(name, path, rules)
            out.append((re.escape(path), Spectral(scale, in_axis, out_axis)))
    return tuple(out)


def spectral_lr_scale(
    params: Any,
    *,
    optimizer: Literal["adam", "sgd"] = "adam",
    axes: Sequence[tuple[str, tuple[Axes, Axes]]] | None = None,
) -> Any:
    r"""An optax transformation with the spectral parametrization's learning rates.

    Multiplies each update by

    * SGD: :math:`\text{fan\_out}/\text{fan\_in}` (Parametrization 1 of the paper);
    * Adam/AdamW: :math:`1/\text{fan\_in}` (a sign-like rank-one update then has
      spectral norm :math:`\eta\sqrt{\text{fan\_out}/\text{fan\_in}}`),

    with the fans of the kernel's matrix view as in :func:`spectral`; a bias or norm
    scale of size n counts as an n x 1 matrix (fan_in 1, fan_out n). The global
    learning rate is then width-independent. Chain it after the optimizer:
    ``optax.chain(optax.adam(lr), jaxinit.spectral_lr_scale(params))``.

    Args:
      params: the parameters (linen dict, nnx module or State, pytree).
      optimizer: ``"adam"`` or ``"sgd"``.
      axes: in/out axes by path, as in :func:`spectral_rules`.

    Returns:
      A stateless ``optax.GradientTransformation``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, optax, jaxinit
      >>> params = nn.Dense(256).init(jax.random.key(0), jnp.ones((1, 64)))
      >>> tx = optax.chain(optax.sgd(1.0), jaxinit.spectral_lr_scale(params, optimizer="sgd"))
      >>> grads = jax.tree.map(jnp.ones_like, params)
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> float(updates["params"]["kernel"][0, 0])   # -1 * 256 / 64
      -4.0

    References:
      Yang, Simon & Bernstein (2023), https://arxiv.org/abs/2310.17813.
    """
    name = "spectral_lr_scale"
    check_choice(name, "optimizer", optimizer, OPTIMIZERS)
    rules = _compile_axes(name, DEFAULT_AXES if axes is None else axes)
    leaves = _paths.float_leaves(name, "params", params)
    multipliers = {}
    for path, value in leaves.items():
        shape = tuple(value.shape)
        if len(shape) >= 2:
            in_axis, out_axis = _kernel_axes(name, path, rules)
            _, fan_in, fan_out = _matrix_view(name, shape, in_axis, out_axis)
        else:
            fan_in, fan_out = 1, math.prod(shape)
        multipliers[path] = fan_out / fan_in if optimizer == "sgd" else 1.0 / fan_in
    return scale_updates_by_path(name, multipliers)
