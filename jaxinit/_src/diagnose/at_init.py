"""`diagnose`: a user's model at initialization, on one batch, with flags and remedies."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.compose.paths import is_float_array
from jaxinit._src.core.base import check_int, check_scalar
from jaxinit._src.core.fans import compute_fans
from jaxinit._src.core.optim import optax_update
from jaxinit._src.diagnose import probe
from jaxinit._src.diagnose.diagnostics import (
    JacobianSpectrum,
    Stats,
    _default_key,
    _stats,
    _to_stats,
    jacobian_spectrum,
)

SCHEMA = "jaxinit.diagnosis"
SCHEMA_VERSION = 1

# Flag thresholds. A per-layer gain g compounds to g**L over L layers; a
# variance-preserving init keeps the signal within a small factor of its input scale
# (within [0.5, 2] across the depths of the tests), so two orders of magnitude is a
# pathology, not a spread.
SCALE_FACTOR = 100.0
# Half of a layer's units constant-sign on every example of the batch (dead), or half of
# its entries at |v| >= saturation in a bounded activation: the majority of the layer.
DEAD_FRACTION = 0.5
SATURATED_FRACTION = 0.5
# Cross-entropy of well-scaled logits at init is near log(C); 1.5 log(C) means the logits
# are confidently wrong (large output scale).
LOSS_RATIO = 1.5

FlagKind = Literal["vanishing", "exploding", "dead", "saturated", "loss"]

SUGGESTIONS: dict[str, str] = {
    "vanishing": "use jaxinit.he_normal() for ReLU-family layers or jaxinit.lecun_normal() "
    "(tanh, SELU, linear); jaxinit.lsuv rescales every layer from data",
    "exploding": "use jaxinit.he_normal() for ReLU-family layers or jaxinit.lecun_normal() "
    "(tanh, SELU, linear); for deep residual stacks scale the residual branches "
    "(jaxinit.residual_normal, jaxinit.small_init)",
    "dead": "initialize biases to zero (jaxinit.zeros) and kernels with jaxinit.he_normal()",
    "saturated": "use jaxinit.glorot_normal() or jaxinit.orthogonal(jaxinit.gain('tanh')) "
    "for tanh/sigmoid layers",
    "loss": "initialize the output layer to zero (jaxinit.zeros) or small "
    "(jaxinit.scaled(jaxinit.lecun_normal(), 0.1))",
}


@dataclasses.dataclass(frozen=True)
class ParamDiagnosis:
    r"""One parameter leaf at init.

    For a leaf of rank >= 2 (a kernel) ``fan_in, fan_out`` are
    :func:`jaxinit.compute_fans` of its shape in the model's layout (Flax: inputs on the
    second-to-last axis; Equinox: PyTorch's ``(out, in, ...)``), and the expectations are
    LeCun's :math:`\sigma = \sqrt{1/\mathrm{fan\_in}}` and He's
    :math:`\sigma = \sqrt{2/\mathrm{fan\_in}}`; ``None`` for biases, norm scales and
    embedding tables (whose scale is not set by a fan).

    Attributes:
      path: '/'-joined path ('Dense_0/kernel', 'layers/0/weight').
      shape, dtype: the leaf's shape and dtype.
      mean, std: of the leaf's entries.
      fan_in, fan_out: the fans, or None.
      lecun_std, he_std: the fan-based expectations of ``std``, or None.
      grad_norm: :math:`\lVert \partial L/\partial\theta\rVert_2` on the batch.
      update_ratio: :math:`\lVert \Delta\theta\rVert_2 / \lVert\theta\rVert_2` after one
        optimizer step (inf for a zero leaf with a nonzero update).
    """

    path: str
    shape: tuple[int, ...]
    dtype: str
    mean: float
    std: float
    fan_in: int | None
    fan_out: int | None
    lecun_std: float | None
    he_std: float | None
    grad_norm: float
    update_ratio: float

    @property
    def lecun_ratio(self) -> float | None:
        """``std / lecun_std`` (1 for LeCun's scheme, sqrt(2) for He's)."""
        return None if self.lecun_std is None else self.std / self.lecun_std

    @property
    def he_ratio(self) -> float | None:
        """``std / he_std`` (1 for He's scheme)."""
        return None if self.he_std is None else self.std / self.he_std


@dataclasses.dataclass(frozen=True)
class LayerDiagnosis:
    r"""One layer call at init (a module that owns parameters: Dense, Conv, norms...).

    Attributes:
      path: the layer's module path ('Dense_3', 'layers/3'; '#2' for a second call).
      shape: the layer's output shape.
      output_std: std of the layer's output (the pre-activation of a Dense/Conv).
      activation: statistics of the activation after the layer: the input of the next
        layer called when that is a new tensor of this layer's output shape (a chain such
        as Dense -> ReLU -> Dense), the model's output after the last layer; otherwise
        (``activation_measured`` False) the layer's own output.
      activation_measured: whether ``activation`` is a tensor after the layer.
      activation_max_abs: max |v| of the activation (<= 1: a bounded activation).
      grad_std: std of :math:`\partial L/\partial h` w.r.t. the layer's output.
      grad_norm: :math:`\lVert\partial L/\partial\theta\rVert_2` over the layer's parameters.
      update_ratio: :math:`\lVert\Delta\theta\rVert_2/\lVert\theta\rVert_2` over them
        after one optimizer step.
      zero_init: all the layer's parameters are exactly zero (a deliberate zero init).
    """

    path: str
    shape: tuple[int, ...]
    output_std: float
    activation: Stats
    activation_measured: bool
    activation_max_abs: float
    grad_std: float
    grad_norm: float
    update_ratio: float
    zero_init: bool


@dataclasses.dataclass(frozen=True)
class Flag:
    """A problem found at init, where it is, and what to try.

    Attributes:
      kind: "vanishing", "exploding", "dead", "saturated" or "loss".
      path: the layer's path ('' for the whole model).
      message: what was measured, with the numbers.
      suggestion: a scheme to try.
    """

    kind: FlagKind
    path: str
    message: str
    suggestion: str

    def __str__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"[{self.kind}]{where}: {self.message}; try: {self.suggestion}"


def _num(v: float | None) -> float | None:
    """JSON has no NaN/inf: they become null."""
    return None if v is None or not math.isfinite(v) else float(v)


def _json_ready(value: Any) -> Any:
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, Mapping):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    """The result of :func:`diagnose`; ``str()`` is a readable report, :meth:`to_json`
    its versioned JSON form.

    JSON schema ``jaxinit.diagnosis`` version 1: an object with ``schema``, ``version``,
    ``model_kind``, ``input_shape``, ``output_shape``, ``optimizer``, ``loss``,
    ``chance_loss``, ``params`` (list of :class:`ParamDiagnosis` fields), ``layers``
    (list of :class:`LayerDiagnosis` fields, ``activation`` an object of
    :class:`~jaxinit.diagnostics.Stats` fields), ``jacobian`` (``null`` or
    ``singular_values``, ``weights``, ``method``, ``mean_sq``, ``std_sq``),
    ``residual`` (list of ``[block path, stream std]``), ``residual_growth`` and
    ``flags`` (list of :class:`Flag` fields). NaN and inf are written as ``null``.

    Attributes:
      model_kind: "linen", "nnx", "equinox" or "function".
      input_shape, output_shape: of the batch's inputs and the model's output.
      optimizer: the optimizer of the one-step update ratios, in words.
      loss: the loss at init on the batch.
      chance_loss: log(C) for C classes (vocabulary entries), or None when unknown.
      params: one :class:`ParamDiagnosis` per float parameter leaf.
      layers: one :class:`LayerDiagnosis` per layer call, in call order.
      jacobian: the input-output Jacobian spectrum (None for non-float inputs or when
        not asked for).
      residual: ``(block path, std of the stream entering it)`` for each repeated block,
        then ``("output", ...)`` for the stream after the last one if a layer reads it;
        empty when no repeated blocks are found.
      flags: the problems found.
    """

    model_kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    optimizer: str
    loss: float
    chance_loss: float | None
    params: tuple[ParamDiagnosis, ...]
    layers: tuple[LayerDiagnosis, ...]
    jacobian: JacobianSpectrum | None
    residual: tuple[tuple[str, float], ...]
    flags: tuple[Flag, ...]

    @property
    def residual_growth(self) -> float | None:
        """Std of the residual stream at the last entry over the first (None: no blocks)."""
        if len(self.residual) < 2:
            return None
        first = self.residual[0][1]
        return self.residual[-1][1] / first if first > 0 else math.inf

    def flagged(self, kind: str) -> list[str]:
        """The paths flagged with ``kind``, in order."""
        return [f.path for f in self.flags if f.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict (see the class docstring for the schema)."""
        jac = None
        if self.jacobian is not None:
            jac = {
                "singular_values": self.jacobian.singular_values.tolist(),
                "weights": self.jacobian.weights.tolist(),
                "method": self.jacobian.method,
                "mean_sq": self.jacobian.mean_sq,
                "std_sq": self.jacobian.std_sq,
            }
        layers = []
        for layer in self.layers:
            d = dataclasses.asdict(layer)
            d["activation"] = layer.activation._asdict()
            layers.append(d)
        out = {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "model_kind": self.model_kind,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "optimizer": self.optimizer,
            "loss": self.loss,
            "chance_loss": self.chance_loss,
            "params": [dataclasses.asdict(p) for p in self.params],
            "layers": layers,
            "jacobian": jac,
            "residual": [list(r) for r in self.residual],
            "residual_growth": self.residual_growth,
            "flags": [dataclasses.asdict(f) for f in self.flags],
        }
        return dict(_json_ready(out))

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text (strict: no NaN or inf)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def table(self) -> str:
        """The readable report: loss, Jacobian, parameters, layers, residual, flags."""
        def f(v: float | None, width: int = 9) -> str:
            return f"{'-':>{width}}" if v is None else f"{v:>{width}.2e}"

        lines = [f"{self.model_kind} model, input {self.input_shape} -> output "
                 f"{self.output_shape}; one {self.optimizer} step for the update ratios"]
        if self.chance_loss is None:
            lines.append(f"loss at init {self.loss:.4g} (chance level unknown)")
        else:
            lines.append(f"loss at init {self.loss:.4g}, chance level log(C) = "
                         f"{self.chance_loss:.4g} (ratio {self.loss / self.chance_loss:.3g})")
        if self.jacobian is not None:
            lines.append(f"input-output Jacobian: {self.jacobian}")
        head = (f"{'parameter':<30} {'shape':<16} {'std':>9} {'std/lecun':>9} "
                f"{'std/he':>9} {'|grad|':>9} {'|dW|/|W|':>9}")
        lines += ["", head, "-" * len(head)]
        for p in self.params:
            lines.append(f"{p.path[-30:]:<30} {str(p.shape)[:16]:<16} {f(p.std)} "
                         f"{f(p.lecun_ratio)} {f(p.he_ratio)} {f(p.grad_norm)} "
                         f"{f(p.update_ratio)}")
        head = (f"{'layer':<24} {'out std':>9} {'act std':>9} {'dead':>6} {'sat':>6} "
                f"{'grad std':>9} {'|grad|':>9} {'|dW|/|W|':>9}")
        lines += ["", head, "-" * len(head)]
        for layer in self.layers:
            a = layer.activation
            lines.append(f"{layer.path[-24:]:<24} {f(layer.output_std)} {f(a.std)} "
                         f"{a.dead:>6.3f} {a.saturated:>6.3f} {f(layer.grad_std)} "
                         f"{f(layer.grad_norm)} {f(layer.update_ratio)}")
        if self.residual:
            lines += ["", "residual stream std entering each block: " + ", ".join(
                f"{p} {s:.3g}" for p, s in self.residual)
                + f" (growth x{self.residual_growth:.3g})"]
        lines.append("")
        if self.flags:
            lines.append(f"{len(self.flags)} flag(s):")
            for kind in dict.fromkeys(flag.kind for flag in self.flags):
                of_kind = [flag for flag in self.flags if flag.kind == kind]
                lines += [f"  [{kind}] {flag.path or 'model'}: {flag.message}"
                          for flag in of_kind]
                lines.append(f"    try: {of_kind[0].suggestion}")
        else:
            lines.append("no flags: the signal, gradients and loss look healthy at init")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# --------------------------------------------------------------------------------------
# Inputs: the model, the data, the loss.


def _nnx_module_type() -> Any:
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - flax is an optional extra
        return None
    return nnx.Module


def _linen_module_type() -> Any:
    try:
        from flax import linen
    except ImportError:  # pragma: no cover - flax is an optional extra
        return None
    return linen.Module


def _first_batch(name: str, data: Any, batch_size: int, key: jax.Array) -> Any:
    """One batch from ``(x, y)`` arrays, ``batch(key, step)`` or an iterable of batches."""
    if isinstance(data, tuple | list) and len(data) == 2 and all(
        hasattr(d, "shape") for d in data
    ):
        x, y = (jnp.asarray(d) for d in data)
        if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{name}: data=(x, y) needs arrays with the same leading (example) axis; "
                f"got shapes {x.shape} and {y.shape}"
            )
        return (x[:batch_size], y[:batch_size])
    if hasattr(data, "shape"):
        return jnp.asarray(data)[:batch_size]
    if callable(data):
        check_batch_function(name, data, key)
        return data(key, 0)
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | Mapping):
        for batch in data:
            return batch
        raise ValueError(f"{name}: data is an empty iterable; expected at least one batch")
    raise TypeError(
        f"{name}: data of type {type(data).__name__} is not (x, y) arrays, a callable "
        "batch(key, step) or an iterable of batches"
    )


def _as_batch(name: str, batch: Any) -> tuple[Any, jax.Array]:
    """The batch with array leaves, and its inputs ``x`` (the first entry, or the array)."""
    if isinstance(batch, tuple | list) and batch:
        batch = tuple(batch)
        first = batch[0]
    elif hasattr(batch, "shape"):
        first = batch
    else:
        raise TypeError(
            f"{name}: data gave a batch of type {type(batch).__name__}; expected (x, y), "
            "(x, ...) or an array x"
        )
    try:
        batch = jax.tree.map(jnp.asarray, batch)
    except TypeError as e:
        raise TypeError(f"{name}: data gave a batch with a non-array entry: {e}") from None
    x = jnp.asarray(first)
    if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_):
        raise TypeError(f"{name}: data inputs have dtype {x.dtype}; expected a numeric dtype")
    if x.ndim == 0 or x.size == 0:
        raise ValueError(f"{name}: data inputs have shape {x.shape}; expected a non-empty batch")
    return batch, x


def _build(
    name: str, model: Any, x: jax.Array, variables: Any, params: Any, key: jax.Array
) -> tuple[Any, Any]:
    """(model, variables) ready for ``probe.adapt``: an nnx factory is called, a linen
    module without variables is initialized on ``x``."""
    linen_module, nnx_module = _linen_module_type(), _nnx_module_type()
    if linen_module is not None and isinstance(model, linen_module):
        if variables is None:
            try:
                variables = model.init(key, x)
            except Exception as e:  # the user's model on the user's data
                raise ValueError(
                    f"{name}: data: the linen model cannot be initialized on inputs of "
                    f"shape {x.shape} and dtype {x.dtype}: {type(e).__name__}: "
                    f"{_first_line(e)}"
                ) from e
        return model, variables
    if (nnx_module is not None and isinstance(model, nnx_module)) or probe.is_equinox(model):
        return model, variables
    if params is not None:
        return model, variables  # a plain function apply(params, x)
    if callable(model) and nnx_module is not None:
        from flax import nnx

        try:
            inspect.signature(model).bind(nnx.Rngs(0))
        except (TypeError, ValueError):
            raise TypeError(
                f"{name}: model={model!r} is callable but not a factory make(rngs) -> "
                "nnx.Module (one argument); pass a linen, nnx or Equinox module, or "
                "params= for a function apply(params, x)"
            ) from None
        built = model(nnx.Rngs(key))
        if not isinstance(built, nnx_module):
            raise TypeError(
                f"{name}: model factory returned {type(built).__name__}; expected an "
                "nnx.Module"
            )
        return built, variables
    raise TypeError(
        f"{name}: model={type(model).__name__} is not a flax.linen module, a flax.nnx "
        "module or factory make(rngs), an Equinox module, or a function apply(params, x) "
        "with params="
    )


def check_batch_function(name: str, data: Any, key: jax.Array) -> None:
    """``data`` can be called as ``batch(key, step)``, or a TypeError naming `name`."""
    try:
        inspect.signature(data).bind(key, 0)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name}: data={data!r} is callable but not batch(key, step) -> batch"
        ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _default_loss(apply: Callable[[jax.Array], jax.Array], batch: Any) -> jax.Array:
    """Cross-entropy for integer labels, mean squared error for float targets."""
    x, y = batch[0], batch[1]
    out = apply(x).astype(jnp.float32)
    if jnp.issubdtype(y.dtype, jnp.integer):
        logp = jax.nn.log_softmax(out, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[..., None].astype(jnp.int32), -1))
    return jnp.mean(jnp.square(out - y.astype(jnp.float32)))


def _check_default_targets(name: str, batch: Any, out: jax.ShapeDtypeStruct) -> None:
    if not (isinstance(batch, tuple) and len(batch) >= 2):
        raise ValueError(
            f"{name}: data gave inputs only; the default loss needs (x, y) batches "
            "(or pass loss=)"
        )
    y = batch[1]
    if jnp.issubdtype(y.dtype, jnp.integer):
        if tuple(y.shape) != tuple(out.shape[:-1]):
            raise ValueError(
                f"{name}: data labels have shape {y.shape}; for model outputs {out.shape} "
                f"integer labels need shape {out.shape[:-1]} (one class index per output row)"
            )
    elif jnp.issubdtype(y.dtype, jnp.floating):
        if tuple(y.shape) != tuple(out.shape):
            raise ValueError(
                f"{name}: data targets have shape {y.shape}; float targets need the model "
                f"output's shape {out.shape}"
            )
    else:
        raise TypeError(f"{name}: data targets have dtype {y.dtype}; expected integer "
                        "labels or float targets")


# --------------------------------------------------------------------------------------
# Blocks of a residual stack.


def _blocks(names: list[str]) -> list[tuple[str, int]]:
    """``(block path, index of its first layer)`` for the repeated blocks among layer
    paths: a path component ``Name_<i>`` (linen) or ``<i>`` after a list field (nnx,
    Equinox) that contains layers; the most numerous such group at the shallowest level."""
    groups: dict[tuple[str, int], dict[str, int]] = {}
    for j, n in enumerate(names):
        parts = n.split("#")[0].split("/")
        for depth, part in enumerate(parts[:-1]):  # a block contains layers
            m = re.fullmatch(r"(.*)_(\d+)", part)
            if part.isdigit() and depth > 0:
                group = "/".join(parts[:depth])
            elif m:
                group = "/".join([*parts[:depth], m.group(1)])
            else:
                continue
            block = "/".join(parts[: depth + 1])
            groups.setdefault((group, depth), {}).setdefault(block, j)
    candidates = [(len(b), -depth, g) for (g, depth), b in groups.items() if len(b) >= 2]
    if not candidates:
        return []
    _, neg_depth, group = max(candidates)
    return sorted(groups[(group, -neg_depth)].items(), key=lambda item: item[1])


# --------------------------------------------------------------------------------------
# diagnose.


def diagnose(
    model: Any,
    data: Any,
    loss: Callable[[Callable[[jax.Array], jax.Array], Any], jax.Array] | None = None,
    *,
    variables: Any = None,
    params: Any = None,
    optimizer: Any = None,
    num_classes: int | None = None,
    batch_size: int = 256,
    jacobian_examples: int = 1,
    jacobian: bool = True,
    key: jax.Array | None = None,
    saturation: float = 0.99,
    apply_kwargs: Mapping[str, Any] | None = None,
) -> Diagnosis:
    r"""Diagnoses a model at initialization on one batch: scales, signal, gradients, loss.

    In one jitted pass (forward, backward and one optimizer step) it measures, per
    parameter leaf, the std against the fan-based expectations
    :math:`\sigma_\mathrm{LeCun} = \sqrt{1/\mathrm{fan\_in}}` and
    :math:`\sigma_\mathrm{He} = \sqrt{2/\mathrm{fan\_in}}` (fans from
    :func:`jaxinit.compute_fans`), the gradient norm and the update-to-weight ratio
    :math:`\lVert\Delta\theta\rVert / \lVert\theta\rVert` after one step of ``optimizer``;
    per layer call (the probe of :mod:`jaxinit.diagnostics`: linen method interception,
    nnx and Equinox layer calls), the output std, the activation's std, dead and
    saturated fractions, the std of :math:`\partial L/\partial h`, the gradient norm and
    update ratio over the layer's parameters; the input-output Jacobian spectrum
    (:func:`~jaxinit.diagnostics.jacobian_spectrum` on ``jacobian_examples`` examples);
    the loss against chance, :math:`\log C`; and the std of the residual stream entering
    each repeated block. Flags:

    - *vanishing* / *exploding*: a layer's output std below / above the input's std (the
      first layer's output std for non-float inputs) by a factor 100, or its
      :math:`\partial L/\partial h` std below / above the last layer's by 100 (not
      checked when a layer is zero-initialized, which zeroes the gradients before it);
      the residual stream growing by 100 across the blocks;
    - *dead*: at least half of the units of an activation <= 0 on every example;
    - *saturated*: at least half of the entries of a bounded activation (``max |v| <= 1``)
      at :math:`|v| \ge` ``saturation``;
    - *loss*: the loss above 1.5 :math:`\log C`.

    Args:
      model: a ``flax.linen`` module (initialized on the batch unless ``variables`` are
        given), a ``flax.nnx`` module or a factory ``make(rngs) -> nnx.Module``, an
        Equinox module (mapping one example; vmapped over the batch), or a function
        ``apply(params, x)`` with ``params``. A model fresh from
        :func:`jaxinit.load_pretrained` works as is (linen: pass its variables).
      data: ``(x, y)`` arrays (the first ``batch_size`` examples are used), a callable
        ``batch(key, step) -> batch`` (called with step 0) or an iterable of batches (the
        first is used). A batch is ``(x, y)``, ``(x, ...)`` or an array ``x``.
      loss: ``loss(apply, batch) -> scalar``, where ``apply(x)`` runs the model. Default:
        softmax cross-entropy for integer labels ``y`` (one per output row), mean squared
        error for float targets of the output's shape.
      variables: linen variables (e.g. from ``load_pretrained``).
      params: the parameters of a plain function model.
      optimizer: an optax ``GradientTransformation`` for the one-step update ratios
        (default ``optax.adam(1e-3)``).
      num_classes: C of the chance level :math:`\log C` (default: the output's last axis
        with the default loss and integer labels; otherwise no chance level).
      batch_size: examples taken from ``(x, y)`` arrays.
      jacobian_examples: examples whose Jacobian spectrum is taken (pooled).
      jacobian: whether to compute the Jacobian spectrum (one more compiled program).
      key: key of a linen init, an nnx factory and ``batch(key, step)`` (default fixed).
      saturation: the ``|v|`` counted as saturated.
      apply_kwargs: extra keyword arguments of the model call (e.g. ``train=False``).

    Returns:
      A :class:`Diagnosis`; ``print(d)`` shows the tables and flags, ``d.to_json()`` the
      versioned JSON.

    Raises:
      TypeError, ValueError: naming ``model``, ``data`` or ``loss`` when the model is of
        no supported kind, the factory has the wrong signature, the data cannot be fed
        to the model or does not match the default loss, or the loss is not a scalar.

    Example:
      >>> import jax, jaxinit
      >>> from flax import linen as nn
      >>> class MLP(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         for _ in range(10):
      ...             x = nn.relu(nn.Dense(64, kernel_init=jaxinit.normal(1e-3))(x))
      ...         return nn.Dense(10)(x)
      >>> x = jax.random.normal(jax.random.key(0), (128, 32))
      >>> y = jax.random.randint(jax.random.key(1), (128,), 0, 10)
      >>> d = jaxinit.diagnose(MLP(), (x, y))
      >>> d.flagged("vanishing")[-3:]
      ['Dense_8', 'Dense_9', 'Dense_10']
      >>> round(d.chance_loss, 4)  # log(10)
      2.3026
      >>> print(d)  # doctest: +SKIP
      linen model, input (128, 32) -> output (128, 10); one adam(1e-3) step ...

    References:
      Glorot & Bengio (2010), https://proceedings.mlr.press/v9/glorot10a.html;
      He et al. (2015), https://arxiv.org/abs/1502.01852;
      Pennington, Schoenholz & Ganguli (2017), https://arxiv.org/abs/1711.04735;
      Karpathy, "A Recipe for Training Neural Networks" (2019),
      https://karpathy.github.io/2019/04/25/recipe/.
    """
    name = "diagnose"
    import optax  # lazily: optax is an optional extra

    for arg, value in (("batch_size", batch_size), ("jacobian_examples", jacobian_examples)):
        check_int(name, arg, value, minimum=1)
    if num_classes is not None:
        check_int(name, "num_classes", num_classes, minimum=2)
    saturation = check_scalar(name, "saturation", saturation, positive=True)
    if loss is not None and not callable(loss):
        raise TypeError(f"{name}: loss={loss!r} must be a callable loss(apply, batch)")
    if optimizer is not None and not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"{name}: optimizer={optimizer!r} is not an optax GradientTransformation")
    opt_text = "adam(1e-3)" if optimizer is None else "user-given optimizer"
    opt = optax.adam(1e-3) if optimizer is None else optimizer
    if key is None:
        key = _default_key()
    model_key, data_key = jax.random.split(key)

    batch, x = _as_batch(name, _first_batch(name, data, batch_size, data_key))
    model, variables = _build(name, model, x, variables, params, model_key)
    adapter = probe.adapt(name, model, variables=variables, params=params,
                          apply_kwargs=apply_kwargs)
    objective = _default_loss if loss is None else loss

    with adapter.instrumented():
        try:
            out_shape = jax.eval_shape(adapter.apply, adapter.trainable, x)
        except Exception as e:  # the user's model on the user's data
            raise ValueError(
                f"{name}: data: the model cannot be applied to inputs of shape {x.shape} "
                f"and dtype {x.dtype}: {type(e).__name__}: {_first_line(e)}"
            ) from e
        if not isinstance(out_shape, jax.ShapeDtypeStruct):
            raise TypeError(f"{name}: model returned {type(out_shape).__name__}; expected an "
                            "array (wrap the model to select one output)")
        if loss is None:
            _check_default_targets(name, batch, out_shape)
        chance = None
        if num_classes is not None:
            chance = math.log(num_classes)
        elif loss is None and jnp.issubdtype(batch[1].dtype, jnp.integer):
            chance = math.log(out_shape.shape[-1]) if out_shape.shape[-1] > 1 else None

        order: list[str] = []

        def discover(trainable: Any, batch: Any) -> Any:
            with probe.recording(probe.Recorder()) as rec:
                value = objective(lambda v: adapter.apply(trainable, v), batch)
            order.extend(rec.sites)
            return value, {k: o for k, (_, o) in rec.sites.items()}

        try:
            value_shape, shapes = jax.eval_shape(discover, adapter.trainable, batch)
        except Exception as e:  # the user's loss
            raise ValueError(
                f"{name}: loss={loss!r} fails on the batch: {type(e).__name__}: "
                f"{_first_line(e)}"
            ) from e
        if not (isinstance(value_shape, jax.ShapeDtypeStruct) and value_shape.shape == ()
                and jnp.issubdtype(value_shape.dtype, jnp.floating)):
            got = (f"shape {value_shape.shape} and dtype {value_shape.dtype}"
                   if isinstance(value_shape, jax.ShapeDtypeStruct)
                   else type(value_shape).__name__)
            raise TypeError(f"{name}: loss must return a float scalar; got {got}")
        names = list(dict.fromkeys(order))
        shapes = {n: shapes[n] for n in names}
        measured: list[bool] = []

        def run(trainable: Any, batch: Any) -> Any:
            zeros = {n: jnp.zeros(s.shape, s.dtype) for n, s in shapes.items()}
            outputs: list[jax.Array] = []

            def obj(trainable: Any, perturb: Any) -> Any:
                def apply(v: jax.Array) -> jax.Array:
                    y = adapter.apply(trainable, v)
                    outputs.append(y)
                    return y

                with probe.recording(probe.Recorder(perturb)) as rec:
                    value = objective(apply, batch)
                sites = {n: rec.sites[n] for n in names}
                return value.astype(jnp.float32), (sites, outputs[0])

            (value, (sites, y)), (g_params, g_sites) = jax.value_and_grad(
                obj, argnums=(0, 1), has_aux=True)(trainable, zeros)
            updates, _ = optax_update(opt, g_params, opt.init(trainable), trainable)
            acts = {}
            measured.clear()
            for j, n in enumerate(names):
                own_in, own_out = sites[n]
                nxt = sites[names[j + 1]][0] if j + 1 < len(names) else y
                ok = (nxt is not None and nxt is not own_in and nxt.shape == own_out.shape)
                measured.append(ok)
                act = nxt if ok else own_out
                stats = _stats(act, saturation)
                acts[n] = jnp.concatenate([stats, jnp.max(jnp.abs(act)).astype(stats.dtype)[None]])

            def norm(t: jax.Array) -> jax.Array:
                # Scaled by max|t| so that tiny gradients do not underflow when squared.
                t = t.astype(jnp.float32)
                peak = jnp.max(jnp.abs(t))
                scale = jnp.where(peak > 0, peak, jnp.ones_like(peak))
                return jnp.sqrt(jnp.sum(jnp.square(t / scale))) * scale

            flat_g = probe.flat_paths(g_params)
            flat_u = probe.flat_paths(updates)
            leaves = {
                p: jnp.stack([jnp.mean(w.astype(jnp.float32)), jnp.std(w.astype(jnp.float32)),
                              norm(w), norm(flat_g[p]), norm(flat_u[p])])
                for p, w in probe.flat_paths(trainable).items() if is_float_array(w)
            }
            return {
                "loss": value,
                "out": {n: _stats(o, saturation) for n, (_, o) in sites.items()},
                "in": {n: _stats(i, saturation) for n, (i, _) in sites.items() if i is not None},
                "act": acts,
                "grad_out": {n: _stats(g, saturation) for n, g in g_sites.items()},
                "leaves": leaves,
            }

        r = jax.device_get(jax.jit(run)(adapter.trainable, batch))

    kind = adapter.kind
    flat_w = probe.flat_paths(adapter.trainable)
    param_rows = []
    for p, v in sorted(r["leaves"].items(), key=lambda item: _natural(item[0])):
        w = flat_w[p]
        mean, std, w_norm, g_norm, u_norm = (float(t) for t in np.asarray(v, np.float64))
        fan_in = fan_out = None
        if w.ndim >= 2 and not re.search(r"embed", p, flags=re.I):
            axes = {"in_axis": 1, "out_axis": 0} if kind == "equinox" else {}
            fan_in, fan_out = compute_fans(w.shape, **axes)
        param_rows.append(ParamDiagnosis(
            path=p, shape=tuple(w.shape), dtype=str(w.dtype), mean=mean, std=std,
            fan_in=fan_in, fan_out=fan_out,
            lecun_std=None if fan_in is None else math.sqrt(1 / fan_in),
            he_std=None if fan_in is None else math.sqrt(2 / fan_in),
            grad_norm=g_norm, update_ratio=_ratio(u_norm, w_norm),
        ))

    layers = []
    for j, n in enumerate(names):
        prefix = n.split("#")[0]
        owned = [v for p, v in r["leaves"].items() if p.rpartition("/")[0] == prefix]
        if not owned and "/" not in prefix:  # the model itself is the layer ('Dense')
            owned = [v for p, v in r["leaves"].items() if "/" not in p]
        # Norms over the layer's parameters: the root of the sum of squared leaf norms.
        sums = np.sqrt(np.sum(np.square(np.asarray(owned, np.float64)), axis=0)
                       ) if owned else np.zeros(5)
        act = np.asarray(r["act"][n], np.float64)
        layers.append(LayerDiagnosis(
            path=n, shape=tuple(shapes[n].shape),
            output_std=float(np.asarray(r["out"][n], np.float64)[1]),
            activation=_to_stats(act[:5]), activation_measured=measured[j],
            activation_max_abs=float(act[5]),
            grad_std=_to_stats(r["grad_out"][n]).std,
            grad_norm=float(sums[3]), update_ratio=_ratio(sums[4], sums[2]),
            zero_init=bool(owned and sums[2] == 0.0),
        ))

    residual = []
    blocks = _blocks(names)
    if blocks:
        for block, j in blocks:
            if names[j] in r["in"]:
                residual.append((block, _to_stats(r["in"][names[j]]).std))
        last_block = blocks[-1][0]
        after = [n for n in names[blocks[-1][1]:]
                 if not (n + "/").startswith(last_block + "/")]
        if after and after[0] in r["in"]:
            residual.append(("output", _to_stats(r["in"][after[0]]).std))

    jac = None
    if jacobian and jnp.issubdtype(x.dtype, jnp.floating):
        jac = jacobian_spectrum(
            model, x[:jacobian_examples], variables=variables, params=params,
            apply_kwargs=apply_kwargs,
        )
    d = Diagnosis(
        model_kind=kind, input_shape=tuple(x.shape), output_shape=tuple(out_shape.shape),
        optimizer=opt_text, loss=float(r["loss"]), chance_loss=chance,
        params=tuple(param_rows), layers=tuple(layers), jacobian=jac,
        residual=tuple(residual), flags=(),
    )
    x_std = (float(np.std(np.asarray(x, np.float64))) if jnp.issubdtype(x.dtype, jnp.floating)
             else math.nan)
    return dataclasses.replace(d, flags=tuple(_flags(d, x_std)))


def _natural(path: str) -> list[Any]:
    """Sort key: 'Dense_2' before 'Dense_10', 'layers/2' before 'layers/10'."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", path)]


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return float(num / den)
    return 0.0 if num == 0 else math.inf


def _flags(d: Diagnosis, x_std: float) -> list[Flag]:
    flags: list[Flag] = []

    def add(kind: FlagKind, path: str, message: str) -> None:
        flags.append(Flag(kind, path, message, SUGGESTIONS[kind]))

    if not d.layers:
        return flags
    ref = x_std if math.isfinite(x_std) and x_std > 0 else d.layers[0].output_std
    ref_name = "the input" if ref == x_std else "the first layer's output"
    zero_init = any(layer.zero_init for layer in d.layers)
    g_ref = d.layers[-1].grad_std
    for layer in d.layers:
        ratio = layer.output_std / ref if ref > 0 else math.nan
        if not layer.zero_init and ratio < 1 / SCALE_FACTOR:
            add("vanishing", layer.path, f"output std {layer.output_std:.3g} is {ratio:.2g}x "
                f"that of {ref_name} ({ref:.3g})")
        elif ratio > SCALE_FACTOR:
            add("exploding", layer.path, f"output std {layer.output_std:.3g} is {ratio:.2g}x "
                f"that of {ref_name} ({ref:.3g})")
        if not zero_init and g_ref > 0 and layer is not d.layers[-1]:
            g = layer.grad_std / g_ref
            if g < 1 / SCALE_FACTOR:
                add("vanishing", layer.path, f"gradient std {layer.grad_std:.3g} is {g:.2g}x "
                    f"that at the last layer ({g_ref:.3g})")
            elif g > SCALE_FACTOR:
                add("exploding", layer.path, f"gradient std {layer.grad_std:.3g} is {g:.2g}x "
                    f"that at the last layer ({g_ref:.3g})")
        a = layer.activation
        # A zero-initialized layer's constant output is deliberate, not dead or saturated.
        if layer.activation_measured and not layer.zero_init and a.dead >= DEAD_FRACTION:
            add("dead", layer.path, f"{a.dead:.0%} of the units after it are <= 0 on every "
                "example")
        if (layer.activation_measured and not layer.zero_init
                and a.saturated >= SATURATED_FRACTION
                and layer.activation_max_abs <= 1.0):
            add("saturated", layer.path, f"{a.saturated:.0%} of the activation after it is "
                "saturated (|v| near 1)")
    growth = d.residual_growth
    if growth is not None and (growth > SCALE_FACTOR or growth < 1 / SCALE_FACTOR):
        kind: FlagKind = "exploding" if growth > 1 else "vanishing"
        add(kind, d.residual[-1][0], f"the residual stream std changes {growth:.3g}x from "
            f"{d.residual[0][0]} to {d.residual[-1][0]}")
    if d.chance_loss is not None and d.loss > LOSS_RATIO * d.chance_loss:
        add("loss", d.layers[-1].path, f"loss at init {d.loss:.4g} is {d.loss / d.chance_loss:.3g}"
            f"x the chance level log(C) = {d.chance_loss:.4g}")
    # One flag of a kind per layer: the forward message first.
    seen: set[tuple[str, str]] = set()
    unique = []
    for flag in flags:
        if (flag.kind, flag.path) not in seen:
            seen.add((flag.kind, flag.path))
            unique.append(flag)
    return unique
