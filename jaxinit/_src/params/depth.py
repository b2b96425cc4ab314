r"""Depth rules: residual-branch scaling, Fixup, T-Fixup, DeepNorm, zero-initialized branches.

A residual network sums :math:`L` branches into one stream, :math:`x_L = x_0 + \sum_l F_l(x_l)`; if
every branch adds variance :math:`v`, the stream's variance grows like :math:`L v` and the updates'
effect grows with it. Each rule here shrinks the branches (or their updates) with depth:

* GPT-2 / Megatron: the last projection of every branch (attention output, MLP down
  projection) has std :math:`\sigma / \sqrt{2 L}`: 2 branches per block, so the stream's
  added variance sums to :math:`\sigma^2`-scale, independent of depth.
* GPT-NeoX ``small_init`` / ``wang_init``; OLMo's "mitchell" init.
* Fixup, T-Fixup, DeepNet/DeepNorm: bounds on the size of each update, from a Taylor
  argument, give branch scales that are powers of the depth.
* ReZero, SkipInit, zero-gamma: start every branch at exactly zero.
* Scanned stacks: :func:`per_layer` draws slice i of a stacked (L, ...) leaf with the
  initializer of layer i, so index-dependent rules (OLMo, torchtitan's ``depth_init``)
  apply to ``nn.scan``/``nnx.scan`` parameters as they do to unrolled ``layers/i``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.compose.combinators import InitLike, _check_part, _inner, _stats
from jaxinit._src.core.base import (
    Axes,
    InitializerBase,
    Shape,
    ShapeDependent,
    check_choice,
    check_int,
    check_scalar,
    normalize_axes,
    unknown_stats,
)
from jaxinit._src.core.fans import compute_fans
from jaxinit._src.schemes.standard import Normal, TruncatedNormal, VarianceScaling, zeros


def _positive_int(name: str, arg: str, value: Any) -> int:
    return check_int(name, arg, value, minimum=1)


# --- GPT-2, Megatron, GPT-NeoX ---------------------------------------------------------


def residual_normal(n_layers: int, std: float = 0.02, *, branches_per_layer: int = 2) -> Normal:
    r"""Builds the GPT-2/Megatron initializer of residual output projections.

    .. math:: w \sim \mathcal{N}\!\left(0, \Big(\frac{\sigma}{\sqrt{b\,L}}\Big)^2\right)

    with :math:`L` = ``n_layers`` transformer blocks and :math:`b` = ``branches_per_layer`` residual
    branches per block (2: attention and MLP), i.e. ``jaxinit.normal(std / sqrt(b L))``.
    The :math:`bL` branches each add variance proportional to :math:`\sigma^2 / (bL)` to the
    residual
    stream, so the total stays :math:`\sigma^2`-scale at any depth. GPT-2 states "scale the
    weights of residual layers at initialization by 1/sqrt(N), N the number of residual
    layers"; Megatron-LM's ``scaled_init_method_normal(sigma, num_layers)`` is this with
    :math:`b = 2` and :math:`\sigma = 0.02` (used on the attention ``dense`` and MLP
    ``dense_4h_to_h``).

    Args:
      n_layers: the number of transformer blocks L.
      std: the base standard deviation sigma (0.02 in GPT-2 and Megatron).
      branches_per_layer: residual branches per block (2).

    Returns:
      A :class:`jaxinit.normal`-type initializer.

    Example:
      >>> import jaxinit
      >>> jaxinit.residual_normal(12)            # 0.02 / sqrt(24)
      Normal(stddev=0.004082482904638631, dtype=None)

    References:
      Radford et al. (2019), Language Models are Unsupervised Multitask Learners (GPT-2),
      section 2.3, https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf;
      Shoeybi et al. (2019), Megatron-LM, https://arxiv.org/abs/1909.08053.
    """
    name = "residual_normal"
    n = _positive_int(name, "n_layers", n_layers)
    b = _positive_int(name, "branches_per_layer", branches_per_layer)
    std = check_scalar(name, "std", std, nonnegative=True)
    return Normal(std / math.sqrt(b * n))


def small_init(d_model: int) -> Normal:
    r"""Builds GPT-NeoX's ``small_init``: :math:`N(0, 2 / (5 d))`.

    .. math:: \sigma = \sqrt{\frac{2}{5d}}

    the std of a Xavier normal for a (d, 4d) kernel, :math:`\sqrt{2 / (d + 4d)}`, used by GPT-NeoX
    for every kernel except residual output projections (Nguyen & Salazar 2019).

    Args:
      d_model: the model width d.

    Returns:
      A :class:`jaxinit.normal`-type initializer.

    Example:
      >>> import jaxinit
      >>> round(jaxinit.small_init(1024).stddev, 6)   # sqrt(2 / 5120)
      0.019764

    References:
      Black et al. (2022), GPT-NeoX-20B, section 2.1, https://arxiv.org/abs/2204.06745;
      Nguyen & Salazar (2019), Transformers without Tears, https://arxiv.org/abs/1910.05895.
    """
    d = _positive_int("small_init", "d_model", d_model)
    return Normal(math.sqrt(2 / (5 * d)))


def wang_init(d_model: int, n_layers: int) -> Normal:
    r"""Builds GPT-NeoX's ``wang_init`` for residual output projections:
    :math:`N(0, (2 / (L\sqrt{d}))^2)`.

    .. math:: \sigma = \frac{2}{L\sqrt{d}}

    from Ben Wang's Mesh Transformer JAX (GPT-J), as GPT-NeoX-20B uses it on the attention
    output and MLP output projections (L = ``n_layers`` blocks, d = ``d_model``).

    Args:
      d_model: the model width d.
      n_layers: the number of transformer blocks L.

    Returns:
      A :class:`jaxinit.normal`-type initializer.

    Example:
      >>> import jaxinit
      >>> jaxinit.wang_init(1024, 32).stddev      # 2 / (32 * 32)
      0.001953125

    References:
      Black et al. (2022), GPT-NeoX-20B, section 2.1, https://arxiv.org/abs/2204.06745.
    """
    d = _positive_int("wang_init", "d_model", d_model)
    n = _positive_int("wang_init", "n_layers", n_layers)
    return Normal(2 / (n * math.sqrt(d)))


# --- OLMo ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OLMoInit(ShapeDependent):
    """OLMo's "mitchell" truncated normal (see :func:`olmo_init`)."""

    layer: int | None = None
    d: int | None = None
    in_axis: Axes = -2
    out_axis: Axes = -1
    dtype: DTypeLike | None = None
    name = "olmo_init"
    kinds = "f"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layer is not None:
            if isinstance(self.layer, bool) or not isinstance(self.layer, int | np.integer):
                raise TypeError(f"{self.name}: layer={self.layer!r} must be an int or None")
            if self.layer < 0:
                raise ValueError(f"{self.name}: layer={self.layer!r} must be >= 0")
        if self.d is not None:
            _positive_int(self.name, "d", self.d)
        for arg in ("in_axis", "out_axis"):
            object.__setattr__(self, arg, normalize_axes(self.name, arg, getattr(self, arg)))

    def std(self, shape: Shape) -> float:
        d = self.d if self.d is not None else compute_fans(shape, self.in_axis, self.out_axis)[0]
        # 1/sqrt(d) for input projections; output projections of block l (0-based) get the
        # extra 1/sqrt(2 (l + 1)): the 2 (l + 1) branches summed so far into the stream.
        depth = 1 if self.layer is None else 2 * (self.layer + 1)
        return 1 / math.sqrt(d * depth)

    def scheme(self, shape: Shape) -> TruncatedNormal:
        # torch.nn.init.trunc_normal_(std=s, a=-3s, b=3s): bounds in units of s.
        return TruncatedNormal(self.std(shape), None, -3.0, 3.0)


def olmo_init(
    layer: int | None = None,
    *,
    d: int | None = None,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    dtype: DTypeLike | None = None,
) -> OLMoInit:
    r"""Builds OLMo's "mitchell" initializer: a 3-sigma truncated normal, depth-scaled outputs.

    .. math:: \sigma = \frac{1}{\sqrt{d}} \text{ (input projections)}, \qquad
       \sigma_l = \frac{1}{\sqrt{2\,d\,(l + 1)}} \text{ (output projections of block } l)

    truncated to [-3 sigma, 3 sigma] (``torch.nn.init.trunc_normal_`` semantics: sigma is
    the std before truncation). d is the kernel's fan_in (``d_model`` for the attention
    projections, the MLP hidden size for the MLP output), or ``d`` if given (OLMo uses
    ``d_model`` for embeddings). ``layer`` is the 0-based block index; None gives the
    input-projection std. This follows the OLMo code (``init_fn: mitchell`` of OLMo-1B/7B,
    ``OLMoBlock.reset_parameters``); the growth with the *block index* rather than the
    total depth is OLMo's choice, unlike GPT-2's uniform :math:`1/\sqrt{2L}`.

    Args:
      layer: the block index l for residual output projections, None otherwise.
      d: the dimension in sigma (None: the kernel's fan_in).
      in_axis: axis or axes of the inputs (for the fan_in).
      out_axis: axis or axes of the outputs.
      dtype: the initializer's default dtype.

    Returns:
      An :class:`OLMoInit` initializer.

    Example:
      >>> import jax, jaxinit
      >>> d = jaxinit.describe(jaxinit.olmo_init(layer=3), (2048, 2048))
      >>> round(d.bounds[1] * (2 * 2048 * 4) ** 0.5, 6)    # 3 sigma, sigma = 1/sqrt(2 d 4)
      3.0

    References:
      Groeneveld et al. (2024), OLMo: Accelerating the Science of Language Models,
      https://arxiv.org/abs/2402.00838 (code: allenai/OLMo, ``InitFnType.mitchell``).
    """
    return OLMoInit(layer, d, in_axis, out_axis, dtype)


# --- torchtitan -------------------------------------------------------------------------

#: Truncation points (in standard deviations) at or beyond which a truncated normal is
#: drawn as the untruncated one: the mass beyond 10 sigma is 1.5e-23, which no float32
#: or float64 sampler resolves (normal draws stay within ``sampling.largest_draw``: 5.54
#: sigma in float32, 8.37 in float64). Inverse-CDF sampling at such bounds would also
#: return the bound itself when the uniform draw is exactly its lower end (probability
#: 2^-23 per float32 draw): a +-2 absolute bound at std 0.0029 is a 690-sigma outlier.
NO_CUT = 10.0


def sigma_truncated(std: float, cutoff: float) -> Normal | TruncatedNormal:
    r""":math:`N(0, \sigma^2)` truncated to :math:`\pm c\,\sigma`, as ``trunc_normal_(std=s, a=-c
    s, b=c s)``.

    Truncation in sigma units; a cutoff of :data:`NO_CUT` (10) standard deviations or
    more is drawn as the untruncated ``jaxinit.normal(std)``, the same law to float
    precision. torch's absolute bounds a, b become ``cutoff = b / std``.
    """
    if cutoff >= NO_CUT:
        return Normal(std)
    return TruncatedNormal(std, None, -cutoff, cutoff)


def torchtitan_init(layer: int | None = None, *, n_layers: int | None = None,
                    std: float = 0.02) -> Normal | TruncatedNormal:
    r"""Builds torchtitan's initializer of a Llama block's output projections.

    .. math:: \sigma_l = \frac{\sigma}{\sqrt{2\,(l + 1)}} \text{ (} \texttt{depth\_init}
       \text{, block } l\text{)}, \qquad \sigma = \frac{\sigma}{\sqrt{2\,L}}
       \text{ (} \texttt{depth\_init=False}\text{, L blocks)}

    with sigma = ``std`` = 0.02 and l the 0-based block index: torchtitan's
    ``TransformerBlock`` sets ``weight_init_std`` so, and draws the attention ``wo`` and
    the MLP ``w2`` (down) *and* ``w3`` (up) projections from it, while ``wq``, ``wk``,
    ``wv`` and the MLP ``w1`` (gate) take 0.02. Pass ``layer`` for ``depth_init=True``
    (torchtitan's default) or ``n_layers`` for ``depth_init=False``.

    Truncation: torchtitan calls ``torch.nn.init.trunc_normal_(w, std=s)`` with the
    default *absolute* bounds :math:`a = -2, b = 2`, i.e. at :math:`\pm 2/s` standard deviations:
    over 100
    sigma at these stds, so nothing is truncated. In sigma units the law is :math:`N(0, s^2)`
    truncated at :math:`\pm 2/s`, drawn as ``jaxinit.normal(s)`` when :math:`2/s \ge 10` (the same
    law to
    float precision; see :func:`sigma_truncated`), as ``jaxinit.truncated_normal`` with
    ``lower = -2/s``, ``upper = 2/s`` for a larger ``std``.

    Args:
      layer: the block index l (``depth_init=True``), or None.
      n_layers: the number of blocks L (``depth_init=False``), or None.
      std: the base standard deviation sigma.

    Returns:
      A :class:`jaxinit.normal`- or :class:`jaxinit.truncated_normal`-type initializer.

    Example:
      >>> import jaxinit
      >>> round(jaxinit.torchtitan_init(3).stddev, 6)          # 0.02 / sqrt(2 * 4)
      0.007071
      >>> round(jaxinit.torchtitan_init(n_layers=8).stddev, 6)  # 0.02 / sqrt(16)
      0.005

    References:
      Liang et al. (2024), TorchTitan, https://arxiv.org/abs/2410.06511 (code:
      https://github.com/pytorch/torchtitan, ``torchtitan/models/llama3/model``).
    """
    name = "torchtitan_init"
    sigma = check_scalar(name, "std", std, positive=True)
    if (layer is None) == (n_layers is None):
        raise TypeError(
            f"{name}: pass exactly one of layer= (depth_init) and n_layers= "
            f"(got layer={layer!r}, n_layers={n_layers!r})"
        )
    if layer is not None:
        s = sigma / math.sqrt(2 * (check_int(name, "layer", layer, minimum=0) + 1))
    else:
        s = sigma / math.sqrt(2 * _positive_int(name, "n_layers", n_layers))
    return sigma_truncated(s, 2.0 / s)


# --- Scanned stacks ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PerLayer(InitializerBase):
    """Slice i of a stacked leaf drawn from ``init_for(offset + i)`` (see :func:`per_layer`)."""

    init_for: Callable[[int], InitLike]
    axis: int = 0
    offset: int = 0
    name = "per_layer"
    kinds = "fc"
    min_rank = 2

    def __post_init__(self) -> None:
        if not callable(self.init_for):
            raise TypeError(f"{self.name}: init_for={self.init_for!r} is not callable")
        object.__setattr__(self, "axis", check_int(self.name, "axis", self.axis))
        object.__setattr__(self, "offset", check_int(self.name, "offset", self.offset, minimum=0))

    def __repr__(self) -> str:
        fn = getattr(self.init_for, "__name__", None) or repr(self.init_for)
        return f"PerLayer(init_for={fn}, axis={self.axis}, offset={self.offset})"

    def _split(self, shape: Shape) -> tuple[int, Shape]:
        if not -len(shape) <= self.axis < len(shape):
            raise ValueError(f"{self.name}: axis={self.axis} is out of range for shape={shape}")
        axis = self.axis % len(shape)
        return axis, shape[:axis] + shape[axis + 1:]

    def layer_init(self, i: int) -> InitLike:
        """The initializer of slice i (layer ``offset + i``)."""
        init = self.init_for(self.offset + i)
        if not callable(init):
            raise TypeError(
                f"{self.name}: init_for({self.offset + i}) gave {init!r}, not an initializer"
            )
        return init

    def check(self, shape: Shape, dtype: np.dtype) -> None:
        axis, part = self._split(shape)
        for i in range(shape[axis]):
            _check_part(self.layer_init(i), self.name, part, dtype)

    def generate(self, key: jax.Array, shape: Shape, dtype: np.dtype) -> jax.Array:
        axis, part = self._split(shape)
        n = shape[axis]
        keys = jax.random.split(key, n)
        # Slice i is layer_init(i)(split(key, n)[i], slice shape): its own fans and law.
        draws = [_inner(self.layer_init(i), self.name, keys[i], part, dtype) for i in range(n)]
        return jnp.stack(draws, axis=axis) if draws else jnp.zeros(shape, dtype)

    def stats(self, shape: Shape, dtype: np.dtype) -> dict[str, Any]:
        axis, part = self._split(shape)
        if shape[axis] == 0:
            return {"distribution": "per_layer (empty)"}
        # The leaf's values are the equal-weight mixture of the slices' laws:
        # mean = mean_i mu_i, var = mean_i (sigma_i^2 + mu_i^2) - mean^2.
        layers = [_stats(self.layer_init(i), self.name, part, dtype) for i in range(shape[axis])]
        if any(s.get("mean") is None or s.get("std") is None for s in layers):
            return unknown_stats(f"per_layer (layers {self.offset}..."
                                 f"{self.offset + shape[axis] - 1}; a layer's law is unknown)")
        spans = [s.get("bounds") for s in layers]
        bounds = None if any(b is None for b in spans) else (
            min(b[0] for b in spans), max(b[1] for b in spans))  # type: ignore[index]
        mean = sum(float(s["mean"]) for s in layers) / len(layers)
        second = sum(float(s["std"]) ** 2 + float(s["mean"]) ** 2 for s in layers) / len(layers)
        return {"distribution": f"per_layer (mixture of layers {self.offset}..."
                                f"{self.offset + shape[axis] - 1}: "
                                f"{layers[0].get('distribution', 'unknown')}, ...)",
                "mean": mean, "std": math.sqrt(max(second - mean**2, 0.0)), "bounds": bounds}


def per_layer(init_for: Callable[[int], InitLike], axis: int = 0, *, offset: int = 0) -> PerLayer:
    r"""Builds the initializer of a scanned stack whose rule depends on the layer index.

    For a stacked leaf of shape ``(L, *s)`` (``axis=0``, as ``nn.scan`` / ``nnx.scan``
    store a stack of L blocks), slice i is drawn as
    ``init_for(offset + i)(split(key, L)[i], s)``: layer i's own initializer with the
    fans of one slice. With ``init_for = lambda l: jaxinit.olmo_init(l)`` the stacked
    output projections get OLMo's :math:`\sigma_l = 1/\sqrt{2 d (l + 1)}`, slice by slice, the law
    the unrolled ``layers/l/...`` tree gets from the same rule; ``offset`` is the index
    of the first slice (a pipeline stage holding layers ``offset..offset+L-1``).

    Args:
      init_for: layer index -> initializer (a hashable callable, such as a function or
        :func:`jaxinit.olmo_init`, keeps the result hashable).
      axis: the layer axis of the stacked leaf.
      offset: the layer index of slice 0.

    Returns:
      A :class:`PerLayer` initializer.

    Example:
      >>> import jax, jaxinit
      >>> init = jaxinit.per_layer(jaxinit.torchtitan_init)        # depth_init per slice
      >>> w = init(jax.random.key(0), (4, 256, 256))
      >>> [round(float(w[i].std()) * (2 * (i + 1)) ** 0.5 / 0.02, 1) for i in range(4)]
      [1.0, 1.0, 1.0, 1.0]
    """
    return PerLayer(init_for, axis, offset)


# --- Fixup and T-Fixup ------------------------------------------------------------------


def fixup_scale(n_branches: int, layers_per_branch: int = 2) -> float:
    r"""Fixup's weight multiplier inside residual branches: L^(-1/(2m-2)).

    .. math:: s = L^{-\frac{1}{2m - 2}}

    for L residual branches of m layers each. Derivation (Zhang et al. 2019, section 3):
    with positively homogeneous layers, a gradient step changes the output by about
    eta * sum_l ||d F_l|| and each branch's contribution scales like the product of its m
    weight norms; making the total update Theta(eta) independent of L requires each
    branch's m - 1 scaled layers to contribute L^(-1/2) together, i.e.
    s^(2(m-1)) = L^(-1) per branch's variance. The last layer is zero, so m >= 2.

    Args:
      n_branches: the number of residual branches L.
      layers_per_branch: the number of weight layers m per branch (>= 2).

    Returns:
      The multiplier s (apply it to the std, e.g. He normal times s).

    Example:
      >>> import jaxinit
      >>> round(jaxinit.fixup_scale(16, 2), 4)     # 16 ** -0.5, ResNet basic blocks
      0.25
      >>> round(jaxinit.fixup_scale(16, 3), 4)     # 16 ** -0.25, bottleneck blocks
      0.5

    References:
      Zhang, Dauphin & Ma (2019), Fixup Initialization, https://arxiv.org/abs/1901.09321.
    """
    name = "fixup_scale"
    L = _positive_int(name, "n_branches", n_branches)
    m = _positive_int(name, "layers_per_branch", layers_per_branch)
    if m < 2:
        raise ValueError(f"{name}: layers_per_branch={m} must be >= 2 (the last layer is zero)")
    return float(L ** (-1 / (2 * m - 2)))


def fixup_init(
    n_branches: int,
    layers_per_branch: int = 2,
    *,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    dtype: DTypeLike | None = None,
) -> VarianceScaling:
    r"""Builds Fixup's initializer of the non-final layers of a residual branch.

    .. math:: \mathrm{Var}[w] = \frac{2}{\text{fan\_in}}\, L^{-\frac{1}{m - 1}}

    He normal (untruncated, as in the Fixup reference code) times
    :func:`fixup_scale` (L, m), i.e. ``variance_scaling(2 * fixup_scale(L, m) ** 2,
    "fan_in", "normal")``. The last layer of every branch and the classifier are zero
    (``jaxinit.zeros``); Fixup also adds scalar biases (0) and multipliers (1).

    Args:
      n_branches: the number of residual branches L.
      layers_per_branch: weight layers per branch m (>= 2).
      in_axis: axis or axes of the inputs.
      out_axis: axis or axes of the outputs.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`jaxinit.variance_scaling`-type initializer.

    Example:
      >>> import jaxinit
      >>> jaxinit.fixup_init(16, 2).scale          # 2 * (16 ** -0.5) ** 2
      0.125

    References:
      Zhang, Dauphin & Ma (2019), Fixup Initialization, https://arxiv.org/abs/1901.09321.
    """
    s = fixup_scale(n_branches, layers_per_branch)
    return VarianceScaling(2 * s * s, "fan_in", "normal", in_axis, out_axis, (), dtype)


def t_fixup_scale(n_layers: int, part: Literal["encoder", "decoder"]) -> float:
    r"""T-Fixup's multiplier of a Transformer's value/output/MLP weights.

    .. math:: s_\text{enc} = 0.67\,N^{-1/4}, \qquad s_\text{dec} = (9N)^{-1/4}

    for N layers (Huang et al. 2020, Algorithm 1, steps 2 and 3). The decoder value,
    attention-output and MLP weights and the input embeddings of *both* encoder and
    decoder take s_dec; the encoder value, attention-output and MLP weights take s_enc.
    The paper derives them (section 3.2) from bounding Adam's first updates of the
    output by O(eta) without warm-up or layer normalization: each decoder layer has 3
    sub-blocks and the bound is quartic in the scale, hence the 1/4 power of 9N; the
    encoder's 0.67 is the constant stated in Algorithm 1, used here as given.

    Args:
      n_layers: the number of layers N (of the decoder for ``"decoder"``, of the
        encoder for ``"encoder"``).
      part: ``"encoder"`` or ``"decoder"``.

    Returns:
      The multiplier s.

    Example:
      >>> import jaxinit
      >>> round(jaxinit.t_fixup_scale(6, "decoder"), 4)    # (9 * 6) ** -0.25
      0.3689
      >>> round(jaxinit.t_fixup_scale(6, "encoder"), 4)    # 0.67 * 6 ** -0.25
      0.4281

    References:
      Huang, Perez, Ba & Volkovs (2020), Improving Transformer Optimization Through
      Better Initialization (T-Fixup), ICML, https://proceedings.mlr.press/v119/huang20f.html.
    """
    name = "t_fixup_scale"
    n = _positive_int(name, "n_layers", n_layers)
    check_choice(name, "part", part, ("encoder", "decoder"))
    return 0.67 * n**-0.25 if part == "encoder" else (9 * n) ** -0.25


def t_fixup_init(
    n_layers: int,
    part: Literal["encoder", "decoder"],
    *,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    dtype: DTypeLike | None = None,
) -> VarianceScaling:
    r"""Builds T-Fixup's initializer of value, attention-output and MLP kernels.

    .. math:: \mathrm{Var}[w] = s^2 \frac{2}{\text{fan\_in} + \text{fan\_out}}

    Xavier uniform times :func:`t_fixup_scale` (N, part), i.e.
    ``variance_scaling(s ** 2, "fan_avg", "uniform")``. Query and key kernels keep plain
    Xavier; input embeddings have std d^(-1/2) times s_dec
    (``jaxinit.normal(d ** -0.5 * t_fixup_scale(N, "decoder"))``).

    Args:
      n_layers: the number of layers N.
      part: ``"encoder"`` or ``"decoder"``.
      in_axis: axis or axes of the inputs.
      out_axis: axis or axes of the outputs.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`jaxinit.variance_scaling`-type initializer.

    Example:
      >>> import jaxinit
      >>> round(jaxinit.t_fixup_init(6, "decoder").scale, 4)   # (9 * 6) ** -0.5
      0.1361

    References:
      Huang et al. (2020), T-Fixup, https://proceedings.mlr.press/v119/huang20f.html.
    """
    s = t_fixup_scale(n_layers, part)
    return VarianceScaling(s * s, "fan_avg", "uniform", in_axis, out_axis, (), dtype)


# --- DeepNet / DeepNorm -----------------------------------------------------------------


class DeepNorm(NamedTuple):
    """DeepNorm's constants for one stack: ``x = LN(alpha * x + f(x))``, branch gain beta."""

    alpha: float
    beta: float


def deepnorm_constants(*, encoder_layers: int = 0, decoder_layers: int = 0) -> dict[str, DeepNorm]:
    r"""DeepNet's alpha (residual multiplier) and beta (init gain), per stack.

    ``x_{l+1} = LayerNorm(alpha * x_l + G_l(x_l))``, with the feed-forward, value and
    output projections of G initialized Xavier-normal with gain beta (queries and keys
    gain 1). For N encoder and M decoder layers (Wang et al. 2022, Figure 2 / Table 1):

    ==================  ===========================  ============================
    architecture        alpha                        beta
    ==================  ===========================  ============================
    encoder-only        (2N)^(1/4)                   (8N)^(-1/4)
    decoder-only        (2M)^(1/4)                   (8M)^(-1/4)
    encoder (enc-dec)   0.81 (N^4 M)^(1/16)          0.87 (N^4 M)^(-1/16)
    decoder (enc-dec)   (3M)^(1/4)                   (12M)^(-1/4)
    ==================  ===========================  ============================

    The paper (section 4) bounds the model update of a Post-LN stack by a sum over
    sub-layers of :math:`(v^2 + w^2) / \alpha^2` (:math:`v, w` the value and output gains) and picks
    :math:`\alpha` and :math:`\beta = v = w` so that it is :math:`O(\eta)` at any depth; the table
    is its Figure 2,
    used here as stated (the decoder of an encoder-decoder has 3 sub-layers per layer,
    hence 3M and 12M).

    Paper and reference code: the constants above are the paper's and match torchscale's
    code (enc-dec encoder: ``(N^4 M)^(1/16) / 1.15``, and 1 / 1.15 = 0.87). torchscale
    however initializes q/k/v with Xavier-uniform gain :math:`1/\sqrt{2}` (inherited from fairseq)
    *before* dividing v by :math:`1/\beta`, so its value projections are :math:`\sqrt{2}` smaller
    than the
    paper's; :func:`deepnorm_init` and the ``"deepnorm"`` recipe follow the paper
    (Xavier normal, gain beta on v, out and the MLP, gain 1 on q and k).

    Args:
      encoder_layers: N (0 for decoder-only).
      decoder_layers: M (0 for encoder-only).

    Returns:
      ``{"encoder": DeepNorm(alpha, beta), "decoder": DeepNorm(alpha, beta)}`` with the
      stacks present.

    Example:
      >>> import jaxinit
      >>> c = jaxinit.deepnorm_constants(encoder_layers=12)["encoder"]
      >>> round(c.alpha, 4), round(c.beta, 4)
      (2.2134, 0.3195)

    References:
      Wang et al. (2022), DeepNet: Scaling Transformers to 1,000 Layers,
      https://arxiv.org/abs/2203.00555.
    """
    name = "deepnorm_constants"
    n = int(encoder_layers)
    m = int(decoder_layers)
    if n < 0 or m < 0 or (n == 0 and m == 0) or n != encoder_layers or m != decoder_layers:
        raise ValueError(
            f"{name}: encoder_layers={encoder_layers!r}, decoder_layers={decoder_layers!r} "
            "must be non-negative ints, not both 0"
        )
    if m == 0:
        return {"encoder": DeepNorm((2 * n) ** 0.25, (8 * n) ** -0.25)}
    if n == 0:
        return {"decoder": DeepNorm((2 * m) ** 0.25, (8 * m) ** -0.25)}
    return {
        "encoder": DeepNorm(0.81 * (n**4 * m) ** (1 / 16), 0.87 * (n**4 * m) ** (-1 / 16)),
        "decoder": DeepNorm((3 * m) ** 0.25, (12 * m) ** -0.25),
    }


def deepnorm_init(
    beta: float,
    *,
    in_axis: Axes = -2,
    out_axis: Axes = -1,
    dtype: DTypeLike | None = None,
) -> VarianceScaling:
    r"""Builds DeepNet's Xavier-normal initializer with gain beta.

    .. math:: \mathrm{Var}[w] = \beta^2\,\frac{2}{\text{fan\_in} + \text{fan\_out}}

    i.e. ``variance_scaling(beta ** 2, "fan_avg", "normal")``, as the paper's
    pseudo-code ``xavier_normal_(w, gain=beta)`` for the feed-forward, value and output
    projections (beta from :func:`deepnorm_constants`).

    Args:
      beta: the gain (> 0).
      in_axis: axis or axes of the inputs.
      out_axis: axis or axes of the outputs.
      dtype: the initializer's default dtype.

    Returns:
      A :class:`jaxinit.variance_scaling`-type initializer.

    Example:
      >>> import jaxinit
      >>> beta = jaxinit.deepnorm_constants(decoder_layers=24)["decoder"].beta
      >>> round(jaxinit.deepnorm_init(beta).scale, 4)     # (8 * 24) ** -0.5
      0.0722

    References:
      Wang et al. (2022), DeepNet, https://arxiv.org/abs/2203.00555.
    """
    b = check_scalar("deepnorm_init", "beta", beta, positive=True)
    return VarianceScaling(b * b, "fan_avg", "normal", in_axis, out_axis, (), dtype)


# --- Zero-initialized branches ------------------------------------------------------------


def zero_init_rules(*patterns: str) -> tuple[tuple[str, Any], ...]:
    """``reinit`` rules that start residual branches at exactly zero.

    Each pattern (a regex matched with ``re.fullmatch`` against the '/'-joined path)
    is paired with ``jaxinit.zeros``:

    * ReZero: the scalar gate alpha of ``x + alpha * F(x)`` (no normalization);
    * SkipInit: the same gate in a normalization-free ResNet;
    * zero-gamma: the scale of the last BatchNorm of every residual branch;
    * Fixup: the last layer of every branch (and the classifier).

    Every branch then outputs exactly zero, so the network starts as (a product of)
    identities, whatever its depth.

    Args:
      *patterns: one or more regexes.

    Returns:
      A tuple of ``(regex, jaxinit.zeros)`` pairs for ``jaxinit.reinit``.

    Example:
      >>> import jaxinit
      >>> rules = jaxinit.zero_init_rules(r".*/rezero_alpha", r".*/BatchNorm_1/scale")
      >>> [pattern for pattern, _ in rules], rules[0][1] is jaxinit.zeros
      (['.*/rezero_alpha', '.*/BatchNorm_1/scale'], True)

    References:
      Bachlechner et al. (2020), ReZero is All You Need, https://arxiv.org/abs/2003.04887;
      De & Smith (2020), Batch Normalization Biases Residual Blocks Towards the Identity
      Function in Deep Networks (SkipInit), https://arxiv.org/abs/2002.10444;
      Goyal et al. (2017), Accurate, Large Minibatch SGD (zero-gamma),
      https://arxiv.org/abs/1706.02677; Zhang, Dauphin & Ma (2019), Fixup,
      https://arxiv.org/abs/1901.09321.
    """
    if not patterns:
        raise ValueError("zero_init_rules: patterns is empty; pass at least one regex")
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            raise TypeError(f"zero_init_rules: patterns[{i}]={pattern!r} must be a string")
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(
                f"zero_init_rules: patterns[{i}]={pattern!r} is not a regex: {err}"
            ) from None
    return tuple((p, zeros) for p in patterns)
