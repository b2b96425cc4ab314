r"""The Maximal Update Parametrization (muP): classification, initialization, optax scaling.

muP (Yang et al. 2021, Tensor Programs V, Table 3) sets the initial variance and the
learning rate of every weight from which of its dimensions grow with the model's width
(its *infinite* dimensions), so that features move by Theta(1) per step at any width and
the best hyperparameters of a small model transfer to a wide one. Table 3, for a weight
with ``fan_in`` inputs and ``fan_out`` outputs:

==================  ======================  ===============  =================
class               init variance           Adam LR          SGD LR
==================  ======================  ===============  =================
input, biases       1 / fan_in              eta              eta * fan_out
hidden              1 / fan_in              eta / fan_in     eta
output              1 / fan_in^2 (or 0)     eta / fan_in     eta / fan_in
==================  ======================  ===============  =================

jaxinit states everything *relative to a base model* (the model whose hyperparameters
were tuned), so muP coincides with the standard parametrization at the base width and
only the ratios ``width_mult = fan_in / base_fan_in`` (or ``fan_out / base_fan_out``)
enter: hidden and input variances are left as in the standard parametrization, the output
variance is multiplied by ``1 / width_mult`` and the learning rates above are divided by
the base model's.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.compose import paths as _paths
from jaxinit._src.core.base import (
    Axes,
    Shape,
    ShapeDependent,
    check_axes,
    check_choice,
    check_int,
    check_scalar,
    normalize_axes,
)
from jaxinit._src.core.fans import compute_fans
from jaxinit._src.schemes.standard import DISTRIBUTIONS, Distribution, VarianceScaling, zeros

Kind = Literal["input", "hidden", "output", "vector", "finite"]
Optimizer = Literal["adam", "sgd"]
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")

#: Default in/out axes by path, for kernels whose layout is not (..., in, out): Flax's
#: attention projections ``query/key/value`` (d, heads, head_dim) and ``out``
#: (heads, head_dim, d) of ``MultiHeadDotProductAttention`` (linen and nnx).
DEFAULT_AXES: tuple[tuple[str, tuple[Axes, Axes]], ...] = (
    (r"(.*/)?(query|key|value)/kernel", (0, (1, 2))),
    (r"(.*/)?out/kernel", ((0, 1), 2)),
)


class MuPParam(NamedTuple):
    """How muP treats one parameter (see :func:`mup_classify`).

    Attributes:
      kind: ``"input"`` (only its output dimensions are infinite: embeddings, the first
        layer), ``"hidden"`` (inputs and outputs infinite), ``"output"`` (only its inputs
        infinite: the readout), ``"vector"`` (rank < 2 with an infinite dimension: biases,
        norm scales) or ``"finite"`` (no infinite dimension).
      shape: the parameter's shape.
      base_shape: the base model's shape for it.
      in_axis: the input axes used for the fans.
      out_axis: the output axes used for the fans.
      fan_in: ``prod(shape[in_axis])`` times the receptive field (1 for a vector).
      fan_out: ``prod(shape[out_axis])`` times the receptive field (its size for a vector).
      base_fan_in: the same for the base shape.
      base_fan_out: the same for the base shape.
    """

    kind: Kind
    shape: Shape
    base_shape: Shape
    in_axis: Axes
    out_axis: Axes
    fan_in: int
    fan_out: int
    base_fan_in: int
    base_fan_out: int

    def lr_multiplier(self, optimizer: Optimizer = "adam") -> float:
        """The learning-rate multiplier relative to the base model (Table 3, see module doc)."""
        check_choice("lr_multiplier", "optimizer", optimizer, OPTIMIZERS)
        fan_in_ratio = self.base_fan_in / self.fan_in
        fan_out_ratio = self.fan_out / self.base_fan_out
        if optimizer == "adam":
            return fan_in_ratio if self.kind in ("hidden", "output") else 1.0
        if self.kind in ("input", "vector"):
            return fan_out_ratio
        return fan_in_ratio if self.kind == "output" else 1.0


def _shape_of(name: str, arg: str, value: Any) -> Shape:
    shape = getattr(value, "shape", value)
    try:
        return tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"{name}: {arg} leaf {value!r} is neither an array nor a shape") from None


def _widths(name: str, base: Mapping[Any, Any]) -> dict[int, int]:
    widths = {}
    for k, v in base.items():
        if not isinstance(v, int | np.integer) or v <= 0 or k <= 0:
            raise ValueError(
                f"{name}: base={dict(base)!r} must map positive widths to positive base widths"
            )
        widths[int(k)] = int(v)
    return widths


def _is_width_map(base: Any) -> bool:
    return isinstance(base, Mapping) and bool(base) and all(
        isinstance(k, int | np.integer) for k in base
    )


def _tree_shapes(name: str, arg: str, tree: Any, leaves: Mapping[str, Any]) -> dict[str, Shape]:
    """The shape in ``tree`` of every parameter path in ``leaves`` (same rank)."""
    other = _paths.float_leaves(name, arg, tree)
    out = {}
    for path, value in leaves.items():
        if path not in other:
            sample = ", ".join(list(other)[:6])
            raise ValueError(
                f"{name}: parameter {path!r} has no counterpart in {arg} ({arg} paths: "
                f"{sample}, ...); build {arg} with the same module at another width"
            )
        shape = _shape_of(name, arg, other[path])
        if len(shape) != value.ndim:
            raise ValueError(
                f"{name}: {path!r} has shape {tuple(value.shape)} but {arg} has {shape}"
            )
        out[path] = shape
    return out


def _base_shapes(
    name: str, leaves: Mapping[str, Any], base: Any, delta: Any
) -> dict[str, tuple[Shape, tuple[bool, ...]]]:
    """Per path: the base shape and which axes are infinite (grow with width)."""
    shapes = {p: tuple(v.shape) for p, v in leaves.items()}
    if _is_width_map(base):
        if delta is not None:
            raise ValueError(f"{name}: delta= is only used with a base parameter tree")
        widths = _widths(name, base)
        return {
            p: (tuple(widths.get(d, d) for d in s), tuple(d in widths for d in s))
            for p, s in shapes.items()
        }
    base_shapes = _tree_shapes(name, "base", base, leaves)
    other = shapes if delta is None else _tree_shapes(name, "delta", _paths.as_tree(delta), leaves)
    return {
        p: (b, tuple(x != y for x, y in zip(b, other[p], strict=True)))
        for p, b in base_shapes.items()
    }


def _compile_axes(name: str, axes: Any) -> list[tuple[re.Pattern[str], tuple[Axes, Axes]]]:
    if axes is None:
        axes = DEFAULT_AXES
    items = list(axes.items()) if isinstance(axes, Mapping) else list(axes)
    out: list[tuple[re.Pattern[str], tuple[Axes, Axes]]] = []
    for i, item in enumerate(items):
        try:
            pattern, (in_axis, out_axis) = item
            regex = re.compile(pattern)
        except (TypeError, ValueError, re.error):
            raise TypeError(
                f"{name}: axes[{i}]={item!r} must be a (regex, (in_axis, out_axis)) pair"
            ) from None
        out.append((regex, (normalize_axes(name, "in_axis", in_axis),
                            normalize_axes(name, "out_axis", out_axis))))
    return out


#: Leaf names that are vectors (biases, norm scales) whatever their rank.
_VECTOR_LEAVES = frozenset({"bias", "scale"})


def _classify_one(
    name: str,
    path: str,
    shape: Shape,
    base: tuple[Shape, tuple[bool, ...]],
    in_axis: Axes,
    out_axis: Axes,
) -> MuPParam:
    bshape, infinite = base
    # A bias or norm scale is a vector whatever its rank: nnx attention's q/k/v biases
    # are (heads, head_dim), which rank alone would take for a kernel.
    if len(shape) < 2 or path.rsplit("/", 1)[-1] in _VECTOR_LEAVES:
        size, bsize = math.prod(shape), math.prod(bshape)
        kind: Kind = "vector" if any(infinite) else "finite"
        return MuPParam(kind, shape, bshape, (), tuple(range(len(shape))), 1, size, 1, bsize)
    try:
        fan_in, fan_out = compute_fans(shape, in_axis, out_axis)
        base_fan_in, base_fan_out = compute_fans(bshape, in_axis, out_axis)
    except ValueError as err:
        raise ValueError(f"{name}: {path!r}: {err}") from None
    rank = len(shape)
    ins = set(check_axes(name, "in_axis", in_axis, rank))
    outs = set(check_axes(name, "out_axis", out_axis, rank))
    if any(infinite[a] for a in range(rank) if a not in ins | outs):
        raise ValueError(
            f"{name}: {path!r} has shape {shape} and base shape {bshape}: only input and "
            f"output axes (in_axis={in_axis!r}, out_axis={out_axis!r}) may grow with "
            "width; pass axes= for this kernel's layout"
        )
    in_inf = any(infinite[a] for a in ins)
    out_inf = any(infinite[a] for a in outs)
    kinds: dict[tuple[bool, bool], Kind] = {
        (True, True): "hidden",
        (False, True): "input",
        (True, False): "output",
        (False, False): "finite",
    }
    kind = kinds[(in_inf, out_inf)]
    return MuPParam(
        kind, shape, bshape, in_axis, out_axis, fan_in, fan_out, base_fan_in, base_fan_out
    )


def mup_classify(
    params: Any,
    base: Any,
    *,
    delta: Any = None,
    axes: Sequence[tuple[str, tuple[Axes, Axes]]] | None = None,
) -> dict[str, MuPParam]:
    """Classifies every parameter as muP input, hidden or output from its infinite dims.

    A dimension is *infinite* when it differs between ``base`` (the same model at the
    base width) and ``delta`` (the same model at any other width; default ``params``),
    or, for a width map ``{width: base_width}``, when its size is one of the widths.
    Giving ``delta`` (or a width map) keeps the classes when ``params`` *is* at the base
    width, so the base model itself gets the muP readout. For a kernel with input axes
    ``in_axis`` and output axes
    ``out_axis`` (default: Flax's (..., in, out), attention kernels by :data:`DEFAULT_AXES`):

    * inputs and outputs infinite: ``"hidden"``;
    * only outputs infinite: ``"input"`` (embeddings, the first layer);
    * only inputs infinite: ``"output"`` (the readout);
    * neither: ``"finite"``;
    * a rank-0/1 parameter (bias, norm scale) is ``"vector"`` if its size changes,
      else ``"finite"``.

    Args:
      params: the model's parameters: a linen variable dict, an ``nnx.State``, an nnx
        module (its ``nnx.Param`` state) or any pytree with key paths.
      base: the base model's parameters or shapes with the same paths (arrays,
        ``jax.ShapeDtypeStruct`` from ``jax.eval_shape``, an nnx module), or base widths
        as a mapping ``{width: base_width}`` applied to every dimension of that size.
      axes: ``(regex, (in_axis, out_axis))`` pairs, first ``re.fullmatch`` on the path
        wins, for kernels not laid out as (..., in, out).

    Returns:
      ``{path: MuPParam}`` in the tree's order, paths '/'-joined as in ``reinit``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jaxinit
      >>> mlp = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(w), nn.relu, nn.Dense(10)])
      >>> params = mlp(1024).init(jax.random.key(0), jnp.ones((1, 64)))
      >>> base = jax.eval_shape(mlp(128).init, jax.random.key(0), jnp.ones((1, 64)))
      >>> kinds = jaxinit.mup_classify(params, base)
      >>> [kinds[f"params/layers_{i}/kernel"].kind for i in (0, 2, 4)]
      ['input', 'hidden', 'output']

    References:
      Yang et al. (2021), Tensor Programs V: Tuning Large Neural Networks via Zero-Shot
      Hyperparameter Transfer, Table 3 and Appendix J, https://arxiv.org/abs/2203.03466.
    """
    name = "mup_classify"
    leaves = _paths.float_leaves(name, "params", params)
    base_shapes = _base_shapes(name, leaves, _paths.as_tree(base), delta)
    rules = _compile_axes(name, axes)
    out = {}
    for path, value in leaves.items():
        in_axis, out_axis = next(
            (ax for regex, ax in rules if regex.fullmatch(path)), (-2, -1)
        )
        out[path] = _classify_one(
            name, path, tuple(value.shape), base_shapes[path], in_axis, out_axis
        )
    return out


# --- Initialization ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MuPOutput(ShapeDependent):
    """Var = scale * base_fan_in / fan_in^2 (see :func:`mup_output`)."""

    base_fan_in: int | None = None
    scale: float = 1.0
    distribution: Distribution = "normal"
    in_axis: Axes = -2
    out_axis: Axes = -1
    batch_axis: Axes = ()
    dtype: DTypeLike | None = None
    name = "mup_output"
    kinds = "fc"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.base_fan_in is not None:
            try:
                base = operator.index(self.base_fan_in)
            except TypeError:
                raise TypeError(
                    f"{self.name}: base_fan_in={self.base_fan_in!r} must be an int or None"
                ) from None
            if base <= 0:
                raise ValueError(f"{self.name}: base_fan_in={base} must be > 0")
            object.__setattr__(self, "base_fan_in", base)
        object.__setattr__(
            self, "scale", check_scalar(self.name, "scale", self.scale, nonnegative=True)
        )
        check_choice(self.name, "distribution", self.distribution, DISTRIBUTIONS)
        for arg in ("in_axis", "out_axis", "batch_axis"):
            object.__setattr__(self, arg, normalize_axes(self.name, arg, getattr(self, arg)))

    def scheme(self, shape: Shape) -> VarianceScaling:
        """The variance-scaling initializer this is for ``shape`` (fan_in known)."""
        fan_in, _ = compute_fans(shape, self.in_axis, self.out_axis, self.batch_axis)
        base = 1 if self.base_fan_in is None else self.base_fan_in
        return VarianceScaling(
            self.scale * base / fan_in, "fan_in", self.distribution,
            self.in_axis, self.out_axis, self.batch_axis,
        )


def mup_output(
    base_fan_in: int | None = None,
    scale: float = 1.0,
    distribution: Distribution = "normal",
    *,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    batch_axis: Axes = (),
    dtype: DTypeLike | None = None,
) -> MuPOutput:
    r"""Builds the muP initializer of an output (readout) layer.

    .. math:: \mathrm{Var}[w] = \text{scale}\cdot\frac{\text{base\_fan\_in}}{\text{fan\_in}^2}

    i.e. ``variance_scaling(scale * base_fan_in / fan_in, "fan_in", distribution)``: the
    standard :math:`1 / \text{fan\_in}` at the base width, shrinking as
    :math:`1 / \text{fan\_in}^2` beyond it
    (Table 3 of Tensor Programs V). With ``base_fan_in=None`` it is the absolute
    :math:`1 / \text{fan\_in}^2`.
    Use ``jaxinit.zeros`` for the zero-initialized readout variant.

    Args:
      base_fan_in: the readout's fan_in in the base model (None: 1).
      scale: variance multiplier (>= 0).
      distribution: ``"normal"``, ``"truncated_normal"`` or ``"uniform"``.
      in_axis: axis or axes of the inputs.
      out_axis: axis or axes of the outputs.
      batch_axis: axes of independent kernels.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`MuPOutput` initializer.

    Example:
      >>> import jax, flax.linen as nn, jaxinit
      >>> head = nn.Dense(10, kernel_init=jaxinit.mup_output(base_fan_in=128))
      >>> round(jaxinit.describe(jaxinit.mup_output(128), (1024, 10)).std * 1024, 2)  # sqrt(128)
      11.31

    References:
      Yang et al. (2021), Tensor Programs V, Table 3, https://arxiv.org/abs/2203.03466.
    """
    return MuPOutput(base_fan_in, scale, distribution, in_axis, out_axis, batch_axis, dtype)


def _init_for(info: MuPParam, scale: float, output_scale: float, distribution: str) -> Any:
    if info.kind == "output":
        if output_scale == 0:
            return zeros
        return MuPOutput(
            info.base_fan_in, output_scale, distribution,  # type: ignore[arg-type]
            info.in_axis, info.out_axis,
        )
    return VarianceScaling(
        scale, "fan_in", distribution, info.in_axis, info.out_axis  # type: ignore[arg-type]
    )


def mup_rules(
    params: Any,
    base: Any,
    *,
    scale: float = 1.0,
    output_scale: float | None = None,
    distribution: Distribution = "normal",
    delta: Any = None,
    axes: Sequence[tuple[str, tuple[Axes, Axes]]] | None = None,
) -> tuple[tuple[str, Any], ...]:
    r"""``reinit`` rules that initialize every kernel of ``params`` as muP prescribes.

    Relative to the base model (Table 3 of Tensor Programs V, see :func:`mup_classify`):

    * input, hidden and finite kernels: :math:`\mathrm{Var} = \text{scale}/\text{fan\_in}`
      (the standard parametrization, unchanged);
    * output kernels: :math:`\text{output\_scale}\cdot\text{base\_fan\_in}/\text{fan\_in}^2`
      (:func:`mup_output`), or zeros with ``output_scale=0``.

    Vectors (biases, norm scales) get no rule: muP only needs them Theta(1), so their
    usual zeros/ones are kept.

    Args:
      params: the model's parameters (linen dict, nnx module or State, pytree).
      base: the base model's parameters/shapes, or ``{width: base_width}``.
      scale: variance multiplier of input and hidden kernels (2.0 for ReLU).
      output_scale: variance multiplier of output kernels (None: ``scale``; 0: zeros).
      distribution: ``"normal"``, ``"truncated_normal"`` or ``"uniform"``.
      delta: the model at another width, as in :func:`mup_classify`.
      axes: in/out axes by path, as in :func:`mup_classify`.

    Returns:
      A tuple of ``(regex, initializer)`` pairs, one per kernel, each regex the escaped
      path, for ``jaxinit.reinit``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jaxinit
      >>> mlp = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(10)])
      >>> params = mlp(512).init(jax.random.key(0), jnp.ones((1, 64)))
      >>> rules = jaxinit.mup_rules(params, {512: 128}, scale=2.0)
      >>> rules[-1]
      ('params/layers_2/kernel', MuPOutput(base_fan_in=128, scale=2.0, ...))

    References:
      Yang et al. (2021), Tensor Programs V, Table 3, https://arxiv.org/abs/2203.03466.
    """
    name = "mup_rules"
    scale = check_scalar(name, "scale", scale, nonnegative=True)
    out_scale = scale if output_scale is None else check_scalar(
        name, "output_scale", output_scale, nonnegative=True
    )
    check_choice(name, "distribution", distribution, DISTRIBUTIONS)
    infos = mup_classify(params, base, delta=delta, axes=axes)
    return tuple(
        (re.escape(path), _init_for(info, scale, out_scale, distribution))
        for path, info in infos.items()
        if len(info.shape) >= 2 and path.rsplit("/", 1)[-1] not in _VECTOR_LEAVES
    )


# --- Learning rates ---------------------------------------------------------------------


def scale_updates_by_path(name: str, multipliers: Mapping[str, float]) -> Any:
    """A stateless optax transformation multiplying each update by ``multipliers[path]``."""
    import optax

    def init_fn(params: Any) -> Any:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: Any, params: Any = None) -> Any:
        del params

        def scale(path: str, u: Any) -> Any:
            if path not in multipliers:
                known = ", ".join(list(multipliers)[:6])
                raise ValueError(
                    f"{name}: update {path!r} has no learning-rate multiplier (known paths: "
                    f"{known}, ...); build the transformation from the same parameter tree"
                )
            m = multipliers[path]
            return u if m == 1.0 else u * np.asarray(m, u.dtype)

        return _paths.map_with_paths(scale, updates), state

    return optax.GradientTransformation(init_fn, update_fn)


def mup_lr_scale(
    params: Any,
    base: Any,
    *,
    optimizer: Optimizer = "adam",
    delta: Any = None,
    axes: Sequence[tuple[str, tuple[Axes, Axes]]] | None = None,
) -> Any:
    r"""An optax transformation applying muP's per-parameter learning-rate multipliers.

    Chain it *after* the optimizer (after its learning rate), e.g.
    ``optax.chain(optax.adamw(lr), jaxinit.mup_lr_scale(params, base))``: each update is
    multiplied by its parameter's multiplier relative to the base model
    (Table 3 of Tensor Programs V, with ``m = width_mult``):

    ==========  =====================  =======================
    class       Adam / AdamW           SGD
    ==========  =====================  =======================
    input       1                      fan_out / base_fan_out
    vector      1                      size / base_size
    hidden      base_fan_in / fan_in   1
    output      base_fan_in / fan_in   base_fan_in / fan_in
    finite      1                      1
    ==========  =====================  =======================

    Decoupled weight decay added by ``optax.adamw`` before the learning rate is scaled
    with it. Adam's epsilon is not rescaled (muP asks for :math:`\epsilon \sim 1/\text{fan\_in}`
    in hidden
    layers only when gradients are as small as epsilon). For attention, muP also
    replaces the :math:`1/\sqrt{d_\text{head}}` logit scale by :math:`1/d_\text{head}`: see
    :func:`mup_attention_scale`.

    Args:
      params: the model's parameters (linen dict, nnx module or State, pytree); updates
        are matched to multipliers by path, so the same tree kind must be optimized.
      base: the base model's parameters/shapes, or ``{width: base_width}``.
      optimizer: ``"adam"`` (Adam, AdamW, and sign-like optimizers) or ``"sgd"``.
      delta: the model at another width, as in :func:`mup_classify`.
      axes: in/out axes by path, as in :func:`mup_classify`.

    Returns:
      A stateless ``optax.GradientTransformation``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, optax, jaxinit
      >>> mlp = lambda w: nn.Sequential([nn.Dense(w), nn.relu, nn.Dense(w), nn.relu, nn.Dense(10)])
      >>> params = mlp(1024).init(jax.random.key(0), jnp.ones((1, 64)))
      >>> scale = jaxinit.mup_lr_scale(params, {1024: 128}, optimizer="sgd")
      >>> tx = optax.chain(optax.sgd(1e-3), scale)
      >>> grads = jax.tree.map(jnp.ones_like, params)
      >>> updates, _ = tx.update(grads, tx.init(params), params)
      >>> round(float(updates["params"]["layers_4"]["kernel"][0, 0]), 9)  # -1e-3 * 128 / 1024
      -0.000125

    References:
      Yang et al. (2021), Tensor Programs V, Table 3, https://arxiv.org/abs/2203.03466.
    """
    name = "mup_lr_scale"
    check_choice(name, "optimizer", optimizer, OPTIMIZERS)
    infos = mup_classify(params, base, delta=delta, axes=axes)
    multipliers = {p: info.lr_multiplier(optimizer) for p, info in infos.items()}
    return scale_updates_by_path(name, multipliers)


def mup_attention_scale(head_dim: int, base_head_dim: int | None = None) -> float:
    r"""The attention-logit scale muP prescribes: :math:`1/d` instead of :math:`1/\sqrt{d}`.

    .. math:: \text{logits} = \frac{\sqrt{d_\text{base}}}{d}\, q\cdot k

    With ``base_head_dim`` the scale equals the usual ``1/sqrt(d)`` at the base head
    dimension (muP and the standard parametrization agree there); without it, it is the
    absolute ``1/d``. Queries and keys become correlated during training, so :math:`q\cdot k` grows
    like :math:`d` rather than :math:`\sqrt{d}` (Tensor Programs V, Section 4 / Appendix J.1).
    Pass it as
    ``scale=`` to ``jax.nn.dot_product_attention``, or multiply the queries by
    ``mup_attention_scale(d, d0) * sqrt(d)`` before Flax's attention.

    Args:
      head_dim: the attention head dimension d.
      base_head_dim: the base model's head dimension (None: absolute 1/d).

    Returns:
      The logit scale, a float.

    Example:
      >>> import jaxinit
      >>> jaxinit.mup_attention_scale(256, base_head_dim=64)   # sqrt(64) / 256
      0.03125
      >>> jaxinit.mup_attention_scale(64, base_head_dim=64) == 64 ** -0.5
      True

    References:
      Yang et al. (2021), Tensor Programs V, Section 4 and Appendix J.1,
      https://arxiv.org/abs/2203.03466.
    """
    name = "mup_attention_scale"
    d = check_scalar(name, "head_dim", head_dim, positive=True)
    if base_head_dim is None:
        return 1.0 / d
    d0 = check_scalar(name, "base_head_dim", base_head_dim, positive=True)
    return math.sqrt(d0) / d


def mup_readout_multiplier(width: int, base_width: int) -> float:
    r"""The logit multiplier of a readout tied to the input embedding, under muP.

    .. math:: \text{logits} = \frac{\text{base\_width}}{\text{width}}\; h\, E^\top

    A tied embedding ``E`` (vocab x width) keeps its input-class initialization and
    learning rate (:func:`mup_rules` and :func:`mup_lr_scale` classify it as an input
    weight); the readout that reuses it multiplies its input by ``1 / width_mult``, as
    ``mup.MuSharedReadout`` does. (``mup.set_base_shapes`` also multiplies the shared
    embedding by ``sqrt(width_mult)``, its readout rescaling reaching the shared weight;
    jaxinit leaves the embedding as initialized.)

    Args:
      width: the model's width (the embedding dimension).
      base_width: the base model's width.

    Returns:
      ``base_width / width``, a float.

    Example:
      >>> import jaxinit
      >>> jaxinit.mup_readout_multiplier(1024, base_width=256)
      0.25

    References:
      Yang et al. (2021), Tensor Programs V, Appendix B (tied input and output
      embeddings), https://arxiv.org/abs/2203.03466.
    """
    name = "mup_readout_multiplier"
    return check_int(name, "base_width", base_width, minimum=1) / check_int(
        name, "width", width, minimum=1
    )


class DepthMuP(NamedTuple):
    """Depth-muP's branch multiplier and learning-rate multiplier (see :func:`depth_mup`)."""

    branch_multiplier: float
    lr_multiplier: float


def depth_mup(
    n_layers: int, base_n_layers: int | None = None, *, optimizer: Optimizer = "adam"
) -> DepthMuP:
    r"""Depth-muP: the residual-branch multiplier and learning rate for L blocks.

    Each residual block adds its branch scaled by :math:`a/\sqrt{L}`,

    .. math:: x_{l+1} = x_l + \frac{a}{\sqrt{L}} F_l(x_l),

    so the stream's variance stays bounded as the depth L grows (the L branches each add
    variance ~ 1/L), and the hidden weights' learning rate is :math:`\eta/\sqrt{L}` under
    Adam (unchanged under SGD), so that feature updates are Theta(1) at any depth. Relative
    to a base depth :math:`L_0` (the depth whose hyperparameters were tuned), both
    multipliers are :math:`\sqrt{L_0/L}`, and the standard parametrization is recovered at
    :math:`L = L_0`. Apply the branch multiplier in the forward pass and the learning-rate
    multiplier to the weights inside the blocks (e.g. with :func:`jaxinit.mup_lr_scale`'s
    path-based scaling or ``optax.multi_transform``).

    Args:
      n_layers: the number L of residual blocks.
      base_n_layers: the base depth :math:`L_0` (None: absolute :math:`1/\sqrt{L}`).
      optimizer: ``"adam"`` (learning rate scaled) or ``"sgd"`` (learning rate kept).

    Returns:
      A :class:`DepthMuP` ``(branch_multiplier, lr_multiplier)``.

    Example:
      >>> import jaxinit
      >>> jaxinit.depth_mup(64, base_n_layers=4)
      DepthMuP(branch_multiplier=0.25, lr_multiplier=0.25)
      >>> jaxinit.depth_mup(64, base_n_layers=4, optimizer="sgd").lr_multiplier
      1.0

    References:
      Yang, Yu, Zhu & Hayou (2023), Tensor Programs VI: Feature Learning in Infinite-Depth
      Neural Networks, https://arxiv.org/abs/2310.02244; Bordelon et al. (2023), Depthwise
      Hyperparameter Transfer in Residual Networks, https://arxiv.org/abs/2309.16620.
    """
    name = "depth_mup"
    depth = check_int(name, "n_layers", n_layers, minimum=1)
    base = 1 if base_n_layers is None else check_int(name, "base_n_layers", base_n_layers,
                                                     minimum=1)
    check_choice(name, "optimizer", optimizer, OPTIMIZERS)
    multiplier = math.sqrt(base / depth)
    return DepthMuP(multiplier, multiplier if optimizer == "adam" else 1.0)
