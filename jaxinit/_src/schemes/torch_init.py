"""PyTorch's initializers for Flax's weight layouts: the implementation of ``jaxinit.torch``.

See :mod:`jaxinit.torch` for the conventions (layouts, fans, default rules).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.core import sampling
from jaxinit._src.core.base import (
    InitializerBase,
    Shape,
    check_choice,
    check_int,
    check_representable,
    check_scalar,
    unknown_stats,
)
from jaxinit._src.schemes.orthogonal import Dirac, Identity, Orthogonal
from jaxinit._src.schemes.standard import (
    Normal,
    Sparse,
    TruncatedNormal,
    UniformRange,
    VarianceScaling,
    ones,
    zeros,
)

_LINEAR_NAMES = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                 "conv_transpose2d", "conv_transpose3d", "sigmoid")
NONLINEARITIES: tuple[str, ...] = (*_LINEAR_NAMES, "tanh", "relu", "leaky_relu", "selu")
Nonlinearity = Literal["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                       "conv_transpose2d", "conv_transpose3d", "sigmoid", "tanh", "relu",
                       "leaky_relu", "selu"]
TorchMode = Literal["fan_in", "fan_out"]


def calculate_gain(nonlinearity: Nonlinearity, param: float | None = None) -> float:
    """PyTorch's recommended gain for a nonlinearity (``torch.nn.init.calculate_gain``).

    This is PyTorch's fixed table, reproduced as documented by PyTorch, not an exact
    variance-preserving gain (for that see :func:`jaxinit.gain`):

    ==================  =====================================
    nonlinearity        gain
    ==================  =====================================
    linear, conv*,      1
    conv_transpose*,
    sigmoid
    tanh                5 / 3
    relu                sqrt(2)
    leaky_relu          sqrt(2 / (1 + negative_slope^2))
    selu                3 / 4
    ==================  =====================================

    Args:
      nonlinearity: the name, as in PyTorch.
      param: the negative slope of ``leaky_relu`` (default 0.01); ignored otherwise.

    Returns:
      The gain, a float.

    Example:
      >>> import jaxinit.torch as jt
      >>> jt.calculate_gain("tanh"), round(jt.calculate_gain("leaky_relu", 0.2), 6)
      (1.6666666666666667, 1.38675)

    References:
      https://pytorch.org/docs/stable/nn.init.html#torch.nn.init.calculate_gain
    """
    check_choice("calculate_gain", "nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity in _LINEAR_NAMES:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 3.0 / 4  # PyTorch's value: makes SELU's forward variance roughly 1.
    if param is None:
        slope = 0.01
    elif isinstance(param, bool) or not isinstance(param, numbers.Real):
        raise ValueError(f"calculate_gain: param={param!r} must be a number (the negative slope)")
    else:
        slope = check_scalar("calculate_gain", "param", param)
    return math.sqrt(2.0 / (1 + slope * slope))  # a huge slope: gain -> 0, no OverflowError


def _gain_squared(name: str, gain: float) -> float:
    """gain^2, the variance scale of a gain, or a ValueError naming `gain` when it is
    not finite in float64."""
    gain = check_scalar(name, "gain", gain)
    if not math.isfinite(gain * gain):
        raise ValueError(
            f"{name}: gain={gain!r} squared overflows float64; expected |gain| < 1e154"
        )
    return gain * gain


def _mode(name: str, mode: str) -> str:
    return check_choice(name, "mode", mode, ("fan_in", "fan_out"))


def linear() -> VarianceScaling:
    r"""PyTorch's default ``nn.Linear`` / ``nn.ConvNd`` weight:
    :math:`U(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})`.

    PyTorch calls ``kaiming_uniform_(w, a=sqrt(5))``: :math:`g^2 = 2 / (1 + 5) = 1/3` and
    the bound is :math:`g\sqrt{3 / \text{fan\_in}} = 1 / \sqrt{\text{fan\_in}}`. Here that is
    ``variance_scaling(1/3, "fan_in", "uniform")``:
    :math:`\mathrm{Var}[w] = 1 / (3\,\text{fan\_in})`.

    Returns:
      A :class:`~jaxinit._src.schemes.standard.VarianceScaling` initializer.

    Example:
      >>> import jaxinit, jaxinit.torch as jt
      >>> [round(b, 6) for b in jaxinit.describe(jt.linear(), (256, 64)).bounds]   # 1/sqrt(256)
      [-0.0625, 0.0625]

    References:
      https://github.com/pytorch/pytorch/blob/main/torch/nn/modules/linear.py
      (``Linear.reset_parameters``).
    """
    return VarianceScaling(1.0 / 3, "fan_in", "uniform")


def linear_bias(fan_in: int) -> UniformRange:
    r"""PyTorch's default ``nn.Linear`` / ``nn.ConvNd`` bias:
    :math:`U(-1/\sqrt{\text{fan\_in}}, 1/\sqrt{\text{fan\_in}})`.

    The bias cannot see its weight, so ``fan_in`` (the weight's: ``in * prod(kernel)``)
    is an argument. Through ``reinit(..., default_rules())`` it is read from the
    sibling kernel instead.

    Args:
      fan_in: the fan-in of the layer's weight, a positive int.

    Returns:
      A :class:`~jaxinit._src.schemes.standard.UniformRange` initializer.

    Example:
      >>> import jaxinit.torch as jt
      >>> jt.linear_bias(3 * 3 * 16)
      UniformRange(low=-0.08333333333333333, high=0.08333333333333333, dtype=None)
    """
    bound = 1 / math.sqrt(check_int("linear_bias", "fan_in", fan_in, minimum=1))
    return UniformRange(-bound, bound)


@dataclasses.dataclass(frozen=True)
class _Kaiming(VarianceScaling):
    """A variance scaling that, like PyTorch's ``kaiming_*_``, warns on a zero-element
    weight and returns it."""

    def empty(self, shape: Shape) -> None:
        warnings.warn(
            f"{self.name}: shape={shape} has no elements; initializing it is a no-op "
            "(as in torch.nn.init), the empty array is returned",
            UserWarning,
            stacklevel=3,
        )


@dataclasses.dataclass(frozen=True)
class KaimingUniform(_Kaiming):
    """PyTorch's ``kaiming_uniform_`` (see :func:`kaiming_uniform`)."""

    name = "kaiming_uniform"


@dataclasses.dataclass(frozen=True)
class KaimingNormal(_Kaiming):
    """PyTorch's ``kaiming_normal_`` (see :func:`kaiming_normal`)."""

    name = "kaiming_normal"


def kaiming_uniform(
    a: float = 0.0, mode: TorchMode = "fan_in", nonlinearity: Nonlinearity = "leaky_relu"
) -> VarianceScaling:
    r"""PyTorch's ``kaiming_uniform_``: :math:`U(-b, b)`, :math:`b = g\sqrt{3 / \text{fan\_mode}}`.

    :math:`g` = ``calculate_gain(nonlinearity, a)``; a specialization of
    ``variance_scaling(g ** 2, mode, "uniform")``. PyTorch's defaults (``a=0``,
    ``leaky_relu``) give :math:`g = \sqrt{2}`, i.e. He uniform.

    Args:
      a: negative slope of the rectifier after this layer (``leaky_relu`` only).
      mode: ``"fan_in"`` (preserves forward variance) or ``"fan_out"`` (backward).
      nonlinearity: a name from :func:`calculate_gain`.

    Returns:
      A :class:`~jaxinit._src.schemes.standard.VarianceScaling` initializer.

    Example:
      >>> import jaxinit, jaxinit.torch as jt
      >>> round(jaxinit.describe(jt.kaiming_uniform(), (512, 64)).bounds[1], 6)   # sqrt(6/512)
      0.108253

    References:
      He et al. (2015), https://arxiv.org/abs/1502.01852.
    """
    gain = calculate_gain(nonlinearity, a)
    return KaimingUniform(gain**2, _mode("kaiming_uniform", mode), "uniform")  # type: ignore[arg-type]


def kaiming_normal(
    a: float = 0.0, mode: TorchMode = "fan_in", nonlinearity: Nonlinearity = "leaky_relu"
) -> VarianceScaling:
    r"""PyTorch's ``kaiming_normal_``: :math:`N(0, \sigma^2)`,
    :math:`\sigma = g / \sqrt{\text{fan\_mode}}`, untruncated.

    ``variance_scaling(g ** 2, mode, "normal")``: unlike ``jaxinit.he_normal`` (truncated
    at :math:`2\sigma`, as in ``jax.nn.initializers``) PyTorch's normal has full tails.

    Args:
      a: negative slope of the rectifier after this layer (``leaky_relu`` only).
      mode: ``"fan_in"`` or ``"fan_out"``.
      nonlinearity: a name from :func:`calculate_gain`.

    Returns:
      A :class:`~jaxinit._src.schemes.standard.VarianceScaling` initializer.

    Example:
      >>> import jaxinit, jaxinit.torch as jt
      >>> d = jaxinit.describe(jt.kaiming_normal(mode="fan_out"), (3, 3, 16, 32))
      >>> d.distribution, round(d.std ** 2 * 3 * 3 * 32, 6)
      ('normal', 2.0)

    References:
      He et al. (2015), https://arxiv.org/abs/1502.01852.
    """
    gain = calculate_gain(nonlinearity, a)
    return KaimingNormal(gain**2, _mode("kaiming_normal", mode), "normal")  # type: ignore[arg-type]


def xavier_uniform(gain: float = 1.0) -> VarianceScaling:
    r"""PyTorch's ``xavier_uniform_``: :math:`U(-b, b)`,
    :math:`b = g\sqrt{6 / (\text{fan\_in} + \text{fan\_out})}`.

    ``variance_scaling(gain ** 2, "fan_avg", "uniform")``.

    Args:
      gain: a multiplier, e.g. ``calculate_gain("tanh")``.

    Returns:
      A :class:`~jaxinit._src.schemes.standard.VarianceScaling` initializer.

    Example:
      >>> import jaxinit, jaxinit.torch as jt
      >>> jaxinit.describe(jt.xavier_uniform(), (96, 32)).bounds     # sqrt(6 / 128)
      (-0.21650635094610965, 0.21650635094610965)

    References:
      Glorot & Bengio (2010), https://proceedings.mlr.press/v9/glorot10a.html.
    """
    return VarianceScaling(_gain_squared("xavier_uniform", gain), "fan_avg", "uniform")


def xavier_normal(gain: float = 1.0) -> VarianceScaling:
    r"""PyTorch's ``xavier_normal_``: :math:`N(0, \sigma^2)`,
    :math:`\sigma = g\sqrt{2 / (\text{fan\_in} + \text{fan\_out})}`.

    ``variance_scaling(gain ** 2, "fan_avg", "normal")``, untruncated like PyTorch's.

    Args:
      gain: a multiplier.

    Returns:
      A :class:`~jaxinit._src.schemes.standard.VarianceScaling` initializer.

    Example:
      >>> import jaxinit, jaxinit.torch as jt
      >>> jaxinit.describe(jt.xavier_normal(), (96, 32)).std       # sqrt(2 / 128)
      0.125

    References:
      Glorot & Bengio (2010), https://proceedings.mlr.press/v9/glorot10a.html.
    """
    return VarianceScaling(_gain_squared("xavier_normal", gain), "fan_avg", "normal")


@dataclasses.dataclass(frozen=True)
class TruncNormal(InitializerBase):
    r""":math:`N(\mu, \sigma^2)` truncated to the absolute interval :math:`[a, b]` (see
    :func:`trunc_normal`)."""

    mean: float = 0.0
    std: float = 1.0
    a: float = -2.0
    b: float = 2.0
    name = "trunc_normal"
    checks_range = True

    def __post_init__(self) -> None:
        for arg in ("mean", "std", "a", "b"):
            object.__setattr__(self, arg, check_scalar(self.name, arg, getattr(self, arg),
                                                       positive=arg == "std"))
        if not self.a < self.b:
            raise ValueError(f"{self.name}: a={self.a!r} must be < b={self.b!r}")

    @property
    def standard(self) -> TruncatedNormal:
        """The centred core scheme: std * z, z ~ N(0, 1) truncated to standardized bounds."""
        # Standardized bounds beyond +-40 cut off less than Phi(-40) < 1e-300 of the law:
        # clipped there, so that they stay finite in the sampling dtype.
        lower = min(max((self.a - self.mean) / self.std, -40.0), 40.0)
        upper = min(max((self.b - self.mean) / self.std, -40.0), 40.0)
        return TruncatedNormal(self.std, None, lower, upper)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        # Draws reach mean +- R std (R the sampler's largest standard draw), clipped to
        # [a, b]; mean, std, a and b are cast to the sampling dtype first.
        for arg in ("mean", "std", "a", "b"):
            value = getattr(self, arg)
            check_representable(self.name, arg, value, abs(value), sampling.real_dtype(dtype))
        reach = sampling.largest_draw("normal", dtype) * self.std
        if self.a >= self.mean + reach or self.b <= self.mean - reach:
            raise ValueError(
                f"{self.name}: [a, b] = [{self.a!r}, {self.b!r}] lies beyond mean={self.mean!r} "
                f"+- {reach:.4g} (std={self.std!r} times the largest normal draw); expected "
                "an interval that overlaps it"
            )
        low, high = max(self.a, self.mean - reach), min(self.b, self.mean + reach)
        arg = "b" if abs(high) >= abs(low) else "a"
        check_representable(self.name, arg, getattr(self, arg), max(abs(low), abs(high)), dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        wide = self.standard.generate(key, shape, sampling.real_dtype(dtype))
        out = wide + np.asarray(self.mean, wide.dtype)
        # Clip the shifted value back into [a, b]: the shift can round just outside.
        return jnp.clip(out, np.asarray(self.a, wide.dtype), np.asarray(self.b, wide.dtype)
                        ).astype(dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        stats = self.standard.stats(shape, dtype)
        return {"distribution": "truncated_normal", "mean": self.mean + stats["mean"],
                "std": stats["std"], "bounds": (self.a, self.b)}


def trunc_normal(mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
                 ) -> TruncNormal:
    r"""PyTorch's ``trunc_normal_``: :math:`N(\mu, \sigma^2)` truncated to the *absolute* range
    :math:`[a, b]`.

    Unlike ``jaxinit.truncated_normal`` (bounds in units of the std, centred at 0),
    ``a`` and ``b`` are values, as in PyTorch: ``trunc_normal(std=0.02)`` keeps its
    default bounds of +-2, i.e. +-100 sigma, which is no truncation at all (a PyTorch
    pitfall this reproduces on purpose). The density is
    phi((x - mean) / std) / (std * (Phi(beta) - Phi(alpha))) on [a, b], with
    alpha = (a - mean) / std and beta = (b - mean) / std; drawn by the core
    truncated normal with those standardized bounds, then shifted.

    Args:
      mean: the mean of the untruncated normal.
      std: its standard deviation (> 0).
      a: the lower bound (a value).
      b: the upper bound (a value, > a).

    Returns:
      A :class:`TruncNormal` initializer.

    Example:
      >>> import jax, jaxinit.torch as jt
      >>> w = jt.trunc_normal(mean=0.5, std=1.0, a=0.0, b=1.0)(jax.random.key(0), (1000,))
      >>> bool(w.min() >= 0.0), bool(w.max() <= 1.0)
      (True, True)

    References:
      https://pytorch.org/docs/stable/nn.init.html#torch.nn.init.trunc_normal_
    """
    return TruncNormal(mean, std, a, b)


def orthogonal(gain: float = 1.0) -> Orthogonal:
    """PyTorch's ``orthogonal_``: a Haar-random (semi-)orthogonal matrix times ``gain``.

    PyTorch flattens its ``(out, in, *k)`` weight to (out, in * prod(k)); in Flax's layout
    that matrix, transposed, is the (prod(k) * in, out) matrix of
    ``jaxinit.orthogonal(gain, column_axis=-1)``, so PyTorch's orthonormal rows are
    orthonormal columns here (and vice versa).

    Args:
      gain: the multiplier.

    Returns:
      A :class:`~jaxinit._src.schemes.orthogonal.Orthogonal` initializer.

    Example:
      >>> import jax, jax.numpy as jnp, jaxinit.torch as jt
      >>> w = jt.orthogonal()(jax.random.key(0), (256, 64))   # Linear(256, 64)
      >>> bool(jnp.allclose(w.T @ w, jnp.eye(64), atol=1e-5))
      True

    References:
      Saxe et al. (2014), https://arxiv.org/abs/1312.6120.
    """
    return Orthogonal(check_scalar("orthogonal", "gain", gain), -1)


@dataclasses.dataclass(frozen=True)
class TorchSparse(InitializerBase):
    """PyTorch's ``sparse_`` on an (in, out) kernel (see :func:`sparse`)."""

    sparsity: float = 0.1
    std: float = 0.01
    name = "sparse"
    checks_range = True
    min_rank = 2
    max_rank = 2  # as torch.nn.init.sparse_, also for an empty shape

    def __post_init__(self) -> None:
        object.__setattr__(self, "std", check_scalar(self.name, "std", self.std,
                                                     nonnegative=True))
        self.core  # validates sparsity  # noqa: B018

    @property
    def core(self) -> Sparse:
        return Sparse(self.sparsity, self.std)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        if len(shape) != 2:
            raise ValueError(f"{self.name}: shape={shape} must have rank 2 (in, out)")
        self.core.check(shape[::-1], dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        # PyTorch zeroes a fraction of each column of its (out, in) weight: the core
        # scheme on (out, in), transposed.
        return self.core.generate(key, shape[::-1], dtype).T

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        return self.core.stats(shape[::-1], dtype)


def sparse(sparsity: float, std: float = 0.01) -> TorchSparse:
    r"""PyTorch's ``sparse_``: each input unit feeds a fixed fraction of zero weights.

    For a kernel (in, out) (PyTorch's (out, in) transposed), every row gets exactly
    ``ceil(sparsity * out)`` zeros at random positions; the other entries are
    :math:`N(0, \sigma^2)`, so
    :math:`\mathrm{Var}[w] = (1 - \text{zeros} / \text{out})\,\sigma^2`. (``jaxinit.sparse`` is
    Martens'
    original, per output unit.)

    Args:
      sparsity: the fraction of zeros in each row, in [0, 1).
      std: the std of the non-zero entries.

    Returns:
      A :class:`TorchSparse` initializer.

    Example:
      >>> import jax, jaxinit.torch as jt
      >>> w = jt.sparse(0.5)(jax.random.key(0), (3, 8))
      >>> (w == 0).sum(axis=1).tolist()   # ceil(0.5 * 8) per input row
      [4, 4, 4]

    References:
      Martens (2010), Deep learning via Hessian-free optimization, ICML.
    """
    return TorchSparse(sparsity, std)


@dataclasses.dataclass(frozen=True)
class Eye(Identity):
    """PyTorch's ``eye_``: the identity of a 2-D weight only (see :func:`eye`)."""

    name = "eye"
    max_rank = 2


def eye() -> Eye:
    """PyTorch's ``eye_``: the (rectangular) identity matrix; the key is ignored.

    Like ``torch.nn.init.eye_`` it accepts rank-2 shapes only; ``jaxinit.identity``
    also fills batched (rank > 2) kernels.

    In Flax's (in, out) layout the identity of PyTorch's (out, in) weight is again
    ``eye(in, out)``: ``jaxinit.identity(1.0)``.

    Returns:
      An :class:`Eye` initializer.

    Example:
      >>> import jax, jaxinit.torch as jt
      >>> jt.eye()(jax.random.key(0), (2, 3)).tolist()
      [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    return Eye(1.0)


@dataclasses.dataclass(frozen=True)
class TorchDirac(InitializerBase):
    """PyTorch's ``dirac_`` on a (*k, in, out) kernel (see :func:`dirac`)."""

    groups: int = 1
    name = "dirac"
    min_rank = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", self.core.groups)

    @property
    def core(self) -> Dirac:
        return Dirac(self.groups)

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        if len(shape) > 5:
            raise ValueError(f"{self.name}: shape={shape} must have rank 3, 4 or 5")
        self.core.check(shape, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        # The core tap sits at (k - 1) // 2 (Flax's SAME padding); PyTorch's at k // 2,
        # one further along each even spatial axis.
        w = self.core.generate(key, shape, dtype)
        even = tuple(i for i, k in enumerate(shape[:-2]) if k % 2 == 0)
        return jnp.roll(w, (1,) * len(even), even) if even else w

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        return self.core.stats(shape, dtype)


def dirac(groups: int = 1) -> TorchDirac:
    """PyTorch's ``dirac_``: the identity convolution, with PyTorch's centre ``k // 2``.

    Maps input channel ``d`` to output channel ``g * out / groups + d`` at the tap
    ``k // 2`` of every spatial axis. For odd kernels this is ``jaxinit.dirac``; for
    even ones PyTorch's tap is one step later than ``jaxinit.dirac``'s (which matches
    Flax's SAME padding). The key is ignored.

    Args:
      groups: the number of groups of the convolution.

    Returns:
      A :class:`TorchDirac` initializer.

    Example:
      >>> import jax, jaxinit.torch as jt
      >>> w = jt.dirac()(jax.random.key(0), (4, 2, 2))   # k=4: tap at index 2
      >>> w[:, 0, 0].tolist()
      [0.0, 0.0, 1.0, 0.0]

    References:
      Zagoruyko & Komodakis (2017), https://arxiv.org/abs/1706.00388.
    """
    return TorchDirac(groups)


def embedding() -> Normal:
    """PyTorch's default ``nn.Embedding`` weight: :math:`N(0, 1)`.

    Returns:
      A :class:`~jaxinit._src.schemes.standard.Normal` initializer with stddev 1.

    Example:
      >>> import jaxinit, jaxinit.torch as jt
      >>> jaxinit.describe(jt.embedding(), (1000, 64)).std
      1.0
    """
    return Normal(1.0)


@dataclasses.dataclass(frozen=True)
class _DefaultBias(InitializerBase):
    r"""PyTorch's bias default: :math:`U(\pm 1/\sqrt{\text{fan\_in}})` next to a kernel, else
    zeros (norms).

    Resolved per leaf by ``reinit`` through :meth:`for_leaf`: the sibling kernel's fan_in
    is ``kernel.size // bias.size`` (PyTorch's ``in * prod(k)`` for Dense, Conv and
    DenseGeneral alike, as the bias has one entry per output unit).
    """

    name = "torch_default_bias"

    def for_leaf(self, path: str, shapes: Mapping[str, tuple[int, ...]]) -> InitializerBase:
        parent = path.rpartition("/")[0]
        kernel = shapes.get(f"{parent}/kernel" if parent else "kernel")
        bias = shapes[path]
        if kernel is None:
            return zeros
        if parent.rpartition("/")[2].startswith("ConvTranspose"):
            # PyTorch's transposed convolution: fan_in from its weight's dim 1, out * prod(k).
            return linear_bias(math.prod(kernel[:-2]) * kernel[-1])
        return linear_bias(max(math.prod(kernel) // math.prod(bias), 1))

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        raise ValueError(
            f"{self.name}: PyTorch's bias needs its layer's fan_in; use it through "
            "jaxinit.reinit(tree, key, default_rules()) or call linear_bias(fan_in)"
        )

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        # U(+-1/sqrt(fan_in)) or zeros, by layer: the mean is 0 either way, the std is not known.
        return unknown_stats("PyTorch default bias (resolved per layer by reinit)", mean=0.0)


@dataclasses.dataclass(frozen=True)
class _DefaultKernel(InitializerBase):
    """PyTorch's ``nn.Linear``/``nn.ConvNd`` weight default, with the fans of Flax's layout.

    Resolved per leaf by ``reinit`` through :meth:`for_leaf`: attention projections
    (rank-3 ``query``/``key``/``value`` (d, heads, head_dim) and ``out``
    (heads, head_dim, d) kernels) use the fan_in of their (d, d) matrix; ``ConvTranspose``
    kernels PyTorch's fan_in of a transposed convolution, ``out * prod(k)``.
    """

    name = "torch_default_kernel"

    def for_leaf(self, path: str, shapes: Mapping[str, tuple[int, ...]]) -> InitializerBase:
        parts = path.split("/")
        layer = parts[-2] if len(parts) > 1 else ""
        rank = len(shapes[path])
        third = 1.0 / 3  # PyTorch's kaiming_uniform_(a=sqrt(5)): gain^2 = 2 / (1 + 5)
        if rank == 3 and layer in ("query", "key", "value"):
            return VarianceScaling(third, "fan_in", "uniform", in_axis=0, out_axis=(1, 2))
        if rank == 3 and layer == "out":
            return VarianceScaling(third, "fan_in", "uniform", in_axis=(0, 1), out_axis=2)
        if layer.startswith("ConvTranspose"):
            return VarianceScaling(third, "fan_in", "uniform", in_axis=-1, out_axis=-2)
        return linear()

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        raise ValueError(
            f"{self.name}: use it through jaxinit.reinit(tree, key, default_rules()), "
            "or call linear() directly"
        )

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        # A symmetric uniform whose fan_in depends on the layer: mean 0, std not known here.
        return unknown_stats("PyTorch default kernel (resolved per layer by reinit)", mean=0.0)


def default_rules() -> tuple[tuple[str, Any], ...]:
    r"""``reinit`` rules that start a Flax model as the equivalent PyTorch model would.

    In order (first match wins):

    * ``kernel`` (Dense, Conv, DenseGeneral): :func:`linear`,
      :math:`U(\pm 1/\sqrt{\text{fan\_in}})`;
      attention projections (rank-3 ``query``/``key``/``value`` kernels
      (d, heads, head_dim) and ``out`` kernels (heads, head_dim, d)) with the fan_in of
      their (d, d) matrix; ``ConvTranspose*`` kernels (linen's automatic names) with
      PyTorch's fan_in of a transposed convolution, taken from its weight's dim 1,
      i.e. out * prod(k);
    * ``bias``: :func:`linear_bias` with the sibling kernel's fan_in (as above), or zeros
      beside no kernel (LayerNorm, BatchNorm, GroupNorm);
    * ``scale`` (norm layers): ones;
    * ``embedding``: :func:`embedding`, :math:`N(0, 1)`.

    Attention follows the common PyTorch form with separate ``nn.Linear`` projections
    (``torch.nn.MultiheadAttention`` itself uses ``xavier_uniform_`` and zero biases).
    Use with ``strict=False`` as a model rarely has every kind of layer.

    Returns:
      A tuple of ``(regex, initializer)`` pairs for :func:`jaxinit.reinit`.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, jaxinit, jaxinit.torch as jt
      >>> params = nn.Dense(64).init(jax.random.key(0), jnp.ones((1, 256)))
      >>> params = jaxinit.reinit(params, jax.random.key(1), jt.default_rules(), strict=False)
      >>> float(jnp.abs(params["params"]["kernel"]).max()) <= 1 / 16
      True
    """
    return (
        (r"(.*/)?kernel", _DefaultKernel()),
        (r"(.*/)?bias", _DefaultBias()),
        (r"(.*/)?scale", ones),
        (r"(.*/)?embedding", embedding()),
    )
