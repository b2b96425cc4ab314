"""Signal propagation at initialization: per-layer forward/backward statistics and the
input-output Jacobian spectrum."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.core.base import check_choice, check_int, check_scalar
from jaxinit._src.diagnose import probe


class Stats(NamedTuple):
    """Statistics of one tensor over a batch (all entries pooled).

    ``dead`` is the fraction of units (last axis: features or channels) that are <= 0 on
    every example and position of the batch: dead ReLU units for an activation, or units
    that a following ReLU would kill for a pre-activation. ``saturated`` is the fraction
    of entries with ``|v| >= saturation`` (default 0.99): saturated tanh units when
    measured on an activation.
    """

    mean: float
    std: float
    second_moment: float
    dead: float
    saturated: float


@dataclasses.dataclass(frozen=True)
class LayerStats:
    """Forward and backward statistics of one layer call.

    Attributes:
      name: the layer's path ('Dense_3', 'layers/3', or the name given to ``tap``).
      shape: the shape of the layer's output.
      inputs: statistics of the layer's input (the previous activation); None for taps.
      outputs: statistics of the layer's output (the pre-activation of a Dense/Conv).
      grad_outputs: statistics of d loss / d output (None without backward pass).
      grad_kernel: statistics of d loss / d kernel, where the layer has a ``kernel``.
    """

    name: str
    shape: tuple[int, ...]
    inputs: Stats | None
    outputs: Stats
    grad_outputs: Stats | None = None
    grad_kernel: Stats | None = None


@dataclasses.dataclass(frozen=True)
class SignalReport:
    """Per-layer statistics of a forward (and backward) pass, in call order.

    ``str(report)`` is a table against depth; :meth:`column` gives one statistic as an
    array; :meth:`plot` draws std against depth (matplotlib, imported lazily).

    Attributes:
      layers: one :class:`LayerStats` per layer call, in call order.
      inputs: statistics of the model's input.
      output: statistics of the model's output (after the last activation).
      grad_inputs: statistics of d loss / d input (None without backward pass).
      grads: statistics of the gradient of every trainable leaf, by '/'-joined path.
    """

    layers: tuple[LayerStats, ...]
    inputs: Stats
    output: Stats
    grad_inputs: Stats | None = None
    grads: Mapping[str, Stats] = dataclasses.field(default_factory=dict)

    def column(self, field: str) -> np.ndarray:
        """One statistic per layer, e.g. ``"outputs.std"``, ``"inputs.std"``,
        ``"grad_outputs.std"``, ``"grad_kernel.std"``, ``"outputs.dead"``; NaN where absent.
        """
        group, _, stat = field.partition(".")
        if group not in ("inputs", "outputs", "grad_outputs", "grad_kernel") or (
            stat not in Stats._fields
        ):
            raise ValueError(
                f"SignalReport.column: field={field!r} is not '<group>.<stat>' with group in "
                f"inputs, outputs, grad_outputs, grad_kernel and stat in {Stats._fields}"
            )
        values = []
        for layer in self.layers:
            s = getattr(layer, group)
            values.append(math.nan if s is None else getattr(s, stat))
        return np.asarray(values, np.float64)

    def activations_std(self) -> np.ndarray:
        """Std of the activation after each layer of a chain: the input of the next layer,
        and the model's output after the last one (Glorot & Bengio's Figure 6 quantity)."""
        following = [layer.inputs.std if layer.inputs else math.nan for layer in self.layers[1:]]
        return np.asarray([*following, self.output.std], np.float64)

    def table(self) -> str:
        """A fixed-width table: one row per layer, against depth."""
        head = (
            f"{'#':>3} {'layer':<22} {'shape':<16} {'in std':>10} {'out mean':>10} "
            f"{'out std':>10} {'dead':>6} {'sat':>6} {'grad std':>10} {'dW std':>10}"
        )
        rows = [head, "-" * len(head)]

        def fmt(v: float | None) -> str:
            return f"{'-':>10}" if v is None else f"{v:>10.3e}"

        for i, layer in enumerate(self.layers):
            o = layer.outputs
            rows.append(
                f"{i:>3} {layer.name[:22]:<22} {str(layer.shape)[:16]:<16} "
                f"{fmt(layer.inputs.std if layer.inputs else None)} {fmt(o.mean)} "
                f"{fmt(o.std)} {o.dead:>6.3f} {o.saturated:>6.3f} "
                f"{fmt(layer.grad_outputs.std if layer.grad_outputs else None)} "
                f"{fmt(layer.grad_kernel.std if layer.grad_kernel else None)}"
            )
        rows.append(f"output: std {self.output.std:.3e}, mean {self.output.mean:.3e}, "
                    f"saturated {self.output.saturated:.3f}")
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()

    def plot(self, ax: Any = None, *, label: str | None = None, log: bool = True) -> Any:
        """Plots the output std (solid) and gradient std (dashed, if any) against depth.

        Args:
          ax: a matplotlib Axes (a new figure if None).
          label: legend label prefix.
          log: logarithmic y axis.

        Returns:
          The Axes.
        """
        import matplotlib.pyplot as plt  # lazily: matplotlib is an optional extra

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        depth = np.arange(1, len(self.layers) + 1)
        prefix = f"{label} " if label else ""
        (line,) = ax.plot(depth, self.column("outputs.std"), label=f"{prefix}activation std")
        if self.layers and self.layers[0].grad_outputs is not None:
            ax.plot(depth, self.column("grad_outputs.std"), "--", color=line.get_color(),
                    label=f"{prefix}gradient std")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("layer")
        ax.set_ylabel("std")
        ax.legend()
        return ax


def _default_key() -> jax.Array:
    # Not jax.random.key(0) itself: users often draw their input batch from key(0), and a
    # probe equal to the input direction is not a random probe.
    return jax.random.fold_in(jax.random.key(0), 0x5EED)


def _stats(a: jax.Array, saturation: float) -> jax.Array:
    """[mean, std, second moment, dead, saturated] of `a`, in float32 or wider."""
    dtype = jnp.promote_types(a.dtype, jnp.float32)
    a = a.astype(dtype)
    # Moments of a / max|a|, rescaled: the squares of a vanishing signal (|a| ~ 1e-20)
    # would underflow float32 and report a std of exactly 0.
    peak = jnp.max(jnp.abs(a))
    scale = jnp.where(peak > 0, peak, jnp.ones_like(peak))
    unit = a / scale
    mean = jnp.mean(unit) * scale
    second = jnp.mean(jnp.square(unit)) * scale**2
    std = jnp.sqrt(jnp.mean(jnp.square(unit - mean / scale))) * scale
    units = a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(-1, 1)
    dead = jnp.mean(jnp.all(units <= 0, axis=0).astype(dtype))
    sat = jnp.mean((jnp.abs(a) >= saturation).astype(dtype))
    return jnp.stack([mean, std, second, dead, sat])


def _to_stats(v: Any) -> Stats:
    return Stats(*(float(t) for t in np.asarray(v, np.float64)))


def signal_stats(
    model: Any,
    x: jax.typing.ArrayLike,
    *,
    variables: Any = None,
    params: Any = None,
    loss: Callable[[jax.Array], jax.Array] | None = None,
    backward: bool = True,
    key: jax.Array | None = None,
    saturation: float = 0.99,
    apply_kwargs: Mapping[str, Any] | None = None,
) -> SignalReport:
    r"""Per-layer forward and backward statistics of a model at initialization, on a batch.

    For every layer call (a linen/nnx module that owns parameters: Dense, Conv, norms;
    or a value marked with :func:`tap` in a plain function) it reports the mean, std,
    second moment, dead and saturated fractions of the layer's input and output, and,
    with ``backward=True``, the std of :math:`\partial L / \partial h_l` (the gradient
    with respect to the layer's output :math:`h_l`) and of
    :math:`\partial L / \partial W_l`. With ``loss=None`` the loss is
    :math:`L = \sum_i g_i\, y_i` for a cotangent :math:`g` of iid N(0, 1) entries, so
    gradient stds read as the backward gain from the output. One jitted pass computes
    everything; only the statistics leave the device.

    Args:
      model: a ``flax.linen.Module`` (with ``variables``), a ``flax.nnx.Module``, or a
        function ``apply(params, x)`` (with ``params``) whose layers are marked by ``tap``.
      x: the input batch.
      variables: the linen variables (``model.init(...)``).
      params: the plain function's parameters.
      loss: a scalar function of the model output; default a unit Gaussian cotangent.
      backward: whether to compute gradient statistics.
      key: key for the unit cotangent (default: a fixed key).
      saturation: threshold of ``|v|`` counted as saturated.
      apply_kwargs: extra keyword arguments of the model call (e.g. ``train=False``).

    Returns:
      A :class:`SignalReport`; ``print(report)`` shows the table against depth.

    Example:
      >>> import jax, jaxinit
      >>> from flax import linen as nn
      >>> from jaxinit.diagnostics import signal_stats
      >>> class MLP(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         for _ in range(8):
      ...             x = nn.relu(nn.Dense(256, kernel_init=jaxinit.he_normal())(x))
      ...         return x
      >>> x = jax.random.normal(jax.random.key(0), (512, 256))
      >>> model = MLP()
      >>> report = signal_stats(model, x, variables=model.init(jax.random.key(1), x))
      >>> [layer.name for layer in report.layers][:3]
      ['Dense_0', 'Dense_1', 'Dense_2']
      >>> print(report)  # doctest: +SKIP
        # layer                  shape                in std   out mean    out std ...
        0 Dense_0                (512, 256)        1.000e+00  1.170e-03  1.413e+00 ...

    References:
      Glorot & Bengio (2010), https://proceedings.mlr.press/v9/glorot10a.html;
      He et al. (2015), https://arxiv.org/abs/1502.01852;
      Schoenholz et al. (2017), https://arxiv.org/abs/1611.01232.
    """
    name = "signal_stats"
    x = probe.as_array(name, "x", x)
    saturation = check_scalar(name, "saturation", saturation, positive=True)
    if loss is not None and not callable(loss):
        raise TypeError(f"{name}: loss={loss!r} must be a callable of the model output")
    if key is None:
        key = _default_key()
    adapter = probe.adapt(name, model, variables=variables, params=params,
                          apply_kwargs=apply_kwargs)
    with adapter.instrumented():
        shapes = probe.discover(adapter, x)
        kernels = {n: f"{n.split('#')[0]}/kernel" for n in shapes}

        def forward(trainable: Any, x: jax.Array, perturb: Any) -> Any:
            with probe.recording(probe.Recorder(perturb)) as rec:
                y = adapter.apply(trainable, x)
            if not isinstance(y, jax.Array):
                raise TypeError(f"{name}: the model returned {type(y).__name__}; expected "
                                "an array (wrap the model to select one output)")
            return y, rec.sites

        def run(trainable: Any, x: jax.Array, key: jax.Array) -> Any:
            zeros = {n: jnp.zeros(s.shape, s.dtype) for n, s in shapes.items()}
            if not backward:
                y, sites = forward(trainable, x, None)
                grads = None
            else:
                def objective(trainable: Any, x: jax.Array, perturb: Any) -> Any:
                    y, sites = forward(trainable, x, perturb)
                    if loss is None:
                        cot = jax.random.normal(key, y.shape, y.dtype)
                        value = jnp.sum(y * cot)
                    else:
                        value = loss(y)
                    return value.astype(jnp.float32), (y, sites)

                grads, (y, sites) = jax.grad(objective, argnums=(0, 1, 2), has_aux=True)(
                    trainable, x, zeros
                )
            out: dict[str, Any] = {
                "x": _stats(x, saturation),
                "y": _stats(y, saturation),
                "in": {n: _stats(i, saturation) for n, (i, _) in sites.items() if i is not None},
                "out": {n: _stats(o, saturation) for n, (_, o) in sites.items()},
            }
            if grads is not None:
                g_params, g_x, g_sites = grads
                flat = probe.flat_paths(g_params)
                out["grads"] = {p: _stats(g, saturation) for p, g in flat.items()}
                out["grad_x"] = _stats(g_x, saturation)
                out["grad_out"] = {n: _stats(g, saturation) for n, g in g_sites.items()}
            return out

        result = jax.device_get(jax.jit(run)(adapter.trainable, x, key))

    grads = {p: _to_stats(v) for p, v in result.get("grads", {}).items()}
    layers = []
    for n, s in shapes.items():
        layers.append(LayerStats(
            name=n,
            shape=tuple(s.shape),
            inputs=_to_stats(result["in"][n]) if n in result["in"] else None,
            outputs=_to_stats(result["out"][n]),
            grad_outputs=_to_stats(result["grad_out"][n]) if "grad_out" in result else None,
            grad_kernel=grads.get(kernels[n]),
        ))
    return SignalReport(
        layers=tuple(layers),
        inputs=_to_stats(result["x"]),
        output=_to_stats(result["y"]),
        grad_inputs=_to_stats(result["grad_x"]) if "grad_x" in result else None,
        grads=grads,
    )


# --------------------------------------------------------------------------------------
# Jacobian spectrum.


@dataclasses.dataclass(frozen=True)
class JacobianSpectrum:
    r"""Singular values of the input-output Jacobian :math:`J = \partial\,
    \mathrm{vec}(y) / \partial\, \mathrm{vec}(x)`.

    For ``method="exact"`` ``singular_values`` are all min(n_in, n_out) of them (sorted
    descending) with equal weights. For ``method="lanczos"`` they are the square roots of
    the Ritz values of :math:`J^T J` (or :math:`J J^T`), and ``weights`` are the
    stochastic Lanczos quadrature weights: :math:`\sum_i w_i f(s_i^2)` estimates
    :math:`\frac{1}{n}\operatorname{tr} f(J^T J)`, exactly in expectation for polynomials
    of degree < 2 * num_iters.

    Attributes:
      singular_values: the singular values (or Ritz estimates).
      weights: their weights (sum to 1).
      method: "exact" or "lanczos".
      mean_sq: the mean of s^2 (1 for a mean-field-critical network).
      std_sq: the std of s^2 (near 0 under dynamical isometry).
    """

    singular_values: np.ndarray
    weights: np.ndarray
    method: str

    @property
    def mean_sq(self) -> float:
        return float(self.weights @ self.singular_values**2)

    @property
    def std_sq(self) -> float:
        second = float(self.weights @ self.singular_values**4)
        return math.sqrt(max(second - self.mean_sq**2, 0.0))

    @property
    def max(self) -> float:
        return float(self.singular_values.max())

    @property
    def min(self) -> float:
        return float(self.singular_values.min())

    def __str__(self) -> str:
        return (f"JacobianSpectrum({self.method}, {self.singular_values.size} values: "
                f"min {self.min:.4g}, max {self.max:.4g}, mean s^2 {self.mean_sq:.4g}, "
                f"std s^2 {self.std_sq:.4g})")


def _lanczos(
    matvec: Callable[[jax.Array], jax.Array], v0: jax.Array, steps: int
) -> tuple[jax.Array, jax.Array]:
    """Lanczos with full reorthogonalization: the tridiagonal (alpha, beta) for `v0`."""
    n = v0.shape[0]
    basis = jnp.zeros((steps, n), v0.dtype)
    v = v0 / jnp.linalg.norm(v0)

    def body(i: Any, carry: Any) -> Any:
        basis, v, v_prev, beta_prev, alphas, betas = carry
        basis = basis.at[i].set(v)
        w = matvec(v) - beta_prev * v_prev
        alpha = jnp.vdot(w, v)
        w = w - alpha * v
        # Full reorthogonalization against all previous vectors (twice is enough).
        for _ in range(2):
            w = w - basis.T @ (basis @ w)
        beta = jnp.linalg.norm(w)
        safe = jnp.where(beta > 0, beta, jnp.ones_like(beta))
        return (basis, w / safe, v, beta, alphas.at[i].set(alpha), betas.at[i].set(beta))

    zero = jnp.zeros((), v0.dtype)
    init = (basis, v, jnp.zeros_like(v), zero, jnp.zeros(steps, v0.dtype),
            jnp.zeros(steps, v0.dtype))
    *_, alphas, betas = jax.lax.fori_loop(0, steps, body, init)
    return alphas, betas


def jacobian_spectrum(
    model: Any,
    x: jax.typing.ArrayLike,
    *,
    variables: Any = None,
    params: Any = None,
    method: Literal["auto", "exact", "lanczos"] = "auto",
    max_exact: int = 4096,
    num_iters: int = 64,
    num_probes: int = 4,
    key: jax.Array | None = None,
    apply_kwargs: Mapping[str, Any] | None = None,
) -> JacobianSpectrum:
    r"""Singular values of the input-output Jacobian, to measure dynamical isometry.

    :math:`J = \partial\,\mathrm{vec}(f(x)) / \partial\,\mathrm{vec}(x)` at the given
    input (for a batch of independent examples, J is block diagonal and its spectrum is
    the union of the per-example spectra; pass one example or a few). A network is
    dynamically isometric when all singular values are near 1 (Saxe et al. 2014;
    Pennington et al. 2017): mean of :math:`s^2` = 1 and a small std of :math:`s^2`.

    ``method="exact"`` forms J (forward or reverse mode, whichever is cheaper) and takes
    its SVD; ``"lanczos"`` runs ``num_iters`` Lanczos steps on :math:`J^T J` (or
    :math:`J J^T`, the smaller) from ``num_probes`` random starts, matrix-free with one
    jvp and one vjp per step (stochastic Lanczos quadrature: accurate extreme singular
    values and moments of the spectrum). ``"auto"`` is exact when min(n_in, n_out) <=
    ``max_exact``. Jitted.

    Args:
      model: a linen module (with ``variables``), an nnx module, or ``apply(params, x)``.
      x: the input at which J is taken.
      variables: linen variables.
      params: parameters of a plain function.
      method: "auto", "exact" or "lanczos".
      max_exact: the largest min(n_in, n_out) for which "auto" forms J.
      num_iters: Lanczos steps per probe.
      num_probes: Lanczos random starts.
      key: key for the Lanczos starts (default: a fixed key).
      apply_kwargs: extra keyword arguments of the model call.

    Returns:
      A :class:`JacobianSpectrum`.

    Example:
      >>> import jax, jax.numpy as jnp, jaxinit
      >>> from jaxinit.diagnostics import jacobian_spectrum
      >>> ws = [jaxinit.orthogonal()(k, (64, 64)) for k in jax.random.split(jax.random.key(0), 20)]
      >>> def linear_net(ws, x):
      ...     for w in ws:
      ...         x = x @ w
      ...     return x
      >>> spec = jacobian_spectrum(linear_net, jnp.ones((1, 64)), params=ws)
      >>> round(spec.min, 4), round(spec.max, 4)
      (1.0, 1.0)

    References:
      Saxe et al. (2014), https://arxiv.org/abs/1312.6120;
      Pennington, Schoenholz & Ganguli (2017), https://arxiv.org/abs/1711.04735;
      Xiao et al. (2018), https://arxiv.org/abs/1806.05393.
    """
    name = "jacobian_spectrum"
    x = probe.as_array(name, "x", x)
    check_choice(name, "method", method, ("auto", "exact", "lanczos"))
    for arg, value in (("max_exact", max_exact), ("num_iters", num_iters),
                       ("num_probes", num_probes)):
        check_int(name, arg, value, minimum=1)
    if key is None:
        key = _default_key()
    adapter = probe.adapt(name, model, variables=variables, params=params,
                          apply_kwargs=apply_kwargs)
    out_shape = jax.eval_shape(adapter.apply, adapter.trainable, x)
    n_in, n_out = x.size, math.prod(out_shape.shape)
    small = min(n_in, n_out)
    if method == "auto":
        method = "exact" if small <= max_exact else "lanczos"

    def f(trainable: Any, flat: jax.Array) -> jax.Array:
        return adapter.apply(trainable, flat.reshape(x.shape)).reshape(-1)

    if method == "exact":
        def exact(trainable: Any, flat: jax.Array) -> jax.Array:
            jac_fn = jax.jacfwd if n_in <= n_out else jax.jacrev
            jac = jac_fn(lambda v: f(trainable, v))(flat)
            return jnp.linalg.svd(jac, compute_uv=False)

        s = np.asarray(jax.jit(exact)(adapter.trainable, x.reshape(-1)), np.float64)
        return JacobianSpectrum(np.sort(s)[::-1], np.full(s.size, 1 / s.size), "exact")

    steps = min(num_iters, small)

    def slq(trainable: Any, flat: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        fn = lambda v: f(trainable, v)
        _, vjp = jax.vjp(fn, flat)
        if n_in <= n_out:  # J^T J acts on input space
            matvec = lambda v: vjp(jax.jvp(fn, (flat,), (v,))[1])[0]
            dim, dtype = n_in, flat.dtype
        else:  # J J^T acts on output space
            matvec = lambda u: jax.jvp(fn, (flat,), (vjp(u)[0],))[1]
            dim, dtype = n_out, out_shape.dtype
        starts = jax.random.normal(key, (num_probes, dim), dtype)
        return jax.lax.map(lambda v0: _lanczos(matvec, v0, steps), starts)

    alphas, betas = jax.device_get(jax.jit(slq)(adapter.trainable, x.reshape(-1), key))
    values, weights = [], []
    for a, b in zip(np.asarray(alphas, np.float64), np.asarray(betas, np.float64), strict=True):
        k = len(a)
        # Stop at an invariant subspace (beta ~ 0): later entries are meaningless.
        tiny = np.nonzero(b[:-1] <= 1e-6 * max(np.abs(a).max(), 1e-30))[0]
        if tiny.size:
            k = int(tiny[0]) + 1
        tri = np.diag(a[:k]) + np.diag(b[: k - 1], 1) + np.diag(b[: k - 1], -1)
        theta, vecs = np.linalg.eigh(tri)
        values.append(np.sqrt(np.clip(theta, 0, None)))
        weights.append(vecs[0] ** 2 / len(alphas))
    s = np.concatenate(values)
    w = np.concatenate(weights)
    order = np.argsort(s)[::-1]
    return JacobianSpectrum(s[order], w[order] / w.sum(), "lanczos")

