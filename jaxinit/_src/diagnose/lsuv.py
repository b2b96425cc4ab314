"""Layer-sequential unit-variance (LSUV) initialization (Mishkin & Matas 2016)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxinit._src.core.base import check_int, check_scalar
from jaxinit._src.diagnose import probe
from jaxinit._src.schemes.orthogonal import orthogonal


@dataclasses.dataclass(frozen=True)
class LSUVLayer:
    """What LSUV did to one layer.

    Attributes:
      name: the layer's path.
      variance_before: output variance on the batch when LSUV reached the layer (after
        the orthonormal pre-initialization and the rescaling of the layers before it).
      variance_after: output variance after rescaling.
      iterations: number of rescalings (0 if already within tolerance or skipped).
      scale: the total factor applied to the kernel (1.0 if skipped).
      note: why a layer was skipped or did not converge ("" otherwise).
      rescaled: False for a layer LSUV skipped (no kernel, shared, zero variance).
    """

    name: str
    variance_before: float
    variance_after: float
    iterations: int
    scale: float
    note: str = ""
    rescaled: bool = True


@dataclasses.dataclass(frozen=True)
class LSUVReport:
    """Per-layer report of :func:`lsuv`; ``print(report)`` shows it as a table."""

    layers: tuple[LSUVLayer, ...]
    target: float
    tol: float

    @property
    def converged(self) -> bool:
        """Whether every rescaled layer ended within ``tol`` of the target variance."""
        return all(abs(r.variance_after - self.target) < self.tol
                   for r in self.layers if r.rescaled)

    def __str__(self) -> str:
        head = f"{'layer':<24} {'var before':>11} {'var after':>11} {'iters':>5} {'scale':>9}  note"
        rows = [head, "-" * len(head)]
        for r in self.layers:
            rows.append(f"{r.name[:24]:<24} {r.variance_before:>11.4g} {r.variance_after:>11.4g} "
                        f"{r.iterations:>5} {r.scale:>9.4g}  {r.note}")
        return "\n".join(rows)


def lsuv(
    model: Any,
    x: jax.typing.ArrayLike,
    *,
    variables: Any = None,
    params: Any = None,
    tol: float = 0.1,
    max_iters: int = 10,
    target: float = 1.0,
    orthonormal: bool = True,
    shift_bias: bool = False,
    key: jax.Array | None = None,
    apply_kwargs: Mapping[str, Any] | None = None,
) -> tuple[Any, LSUVReport]:
    r"""Layer-sequential unit-variance initialization (LSUV, Mishkin & Matas 2016).

    1. Pre-initialize every kernel with a (semi-)orthonormal matrix (``orthonormal``;
       a conv kernel (k..., in, out) as a (k...·in, out) matrix).
    2. Layer by layer in forward order, measure the variance of the layer's own output
       (before its nonlinearity) on the batch ``x`` and rescale its kernel,
       :math:`W \leftarrow W \sqrt{\text{target} / \operatorname{Var}(h_l)}`, until
       :math:`|\operatorname{Var}(h_l) - \text{target}| < \text{tol}`, at most
       ``max_iters`` times per layer. Layers before it are already fixed, so their
       effect on its input is taken into account (residual connections included).

    A layer is a module call that owns parameters (linen/nnx) or a :func:`tap` in a
    plain function whose path has a ``kernel`` sibling ``<name>/kernel`` in ``params``.
    Layers without a kernel (normalization layers, embeddings) and repeated calls of
    a shared layer are skipped with a note in the report. With ``shift_bias=True``
    each output unit is also centred by its bias (``b -= mean``), and the variance
    target applies to the centred output.

    Args:
      model: a ``flax.linen.Module`` (with ``variables``), a ``flax.nnx.Module``
        (updated in place), or ``apply(params, x)`` with ``params`` and ``tap``-ed layers.
      x: a batch of representative inputs.
      variables: linen variables (not modified; new ones are returned).
      params: parameters of a plain function (not modified; new ones are returned).
      tol: tolerance on the output variance.
      max_iters: the most rescalings per layer.
      target: the target variance of every layer's output.
      orthonormal: whether to start from orthonormal kernels (the original method);
        False keeps the current kernels and only rescales them.
      shift_bias: whether to centre each output unit with its bias.
      key: key for the orthonormal pre-initialization (default ``jax.random.key(0)``).
      apply_kwargs: extra keyword arguments of the model call.

    Returns:
      ``(result, report)``: the nnx module itself, the new linen variables, or the new
      params; and an :class:`LSUVReport` of the variance before/after and the
      iterations of each layer.

    Example:
      >>> import jax, jaxinit
      >>> from flax import nnx
      >>> class MLP(nnx.Module):
      ...     def __init__(self, rngs):
      ...         self.layers = nnx.List([nnx.Linear(64, 64, rngs=rngs) for _ in range(5)])
      ...     def __call__(self, x):
      ...         for layer in self.layers:
      ...             x = nnx.tanh(layer(x))
      ...         return x
      >>> model = MLP(nnx.Rngs(0))
      >>> x = jax.random.normal(jax.random.key(1), (256, 64))
      >>> model, report = jaxinit.lsuv(model, x)
      >>> report.converged
      True
      >>> print(report)  # doctest: +SKIP
      layer                     var before   var after iters     scale  note
      ----------------------------------------------------------------------
      layers/0                       1.002       1.002     0         1
      layers/1                      0.3907           1     1       1.6
      ...

    References:
      Mishkin & Matas (2016), "All you need is a good init",
      https://arxiv.org/abs/1511.06422;
      Saxe et al. (2014), https://arxiv.org/abs/1312.6120.
    """
    name = "lsuv"
    x = probe.as_array(name, "x", x)
    tol = check_scalar(name, "tol", tol, positive=True)
    target = check_scalar(name, "target", target, positive=True)
    check_int(name, "max_iters", max_iters, minimum=1)
    if key is None:
        key = jax.random.key(0)
    adapter = probe.adapt(name, model, variables=variables, params=params,
                          apply_kwargs=apply_kwargs)
    trainable = adapter.trainable
    with adapter.instrumented():
        shapes = probe.discover(adapter, x)
        flat = probe.flat_paths(trainable)

        if orthonormal:
            kernels = {path: (i, jnp.shape(leaf), jnp.result_type(leaf))
                       for i, (path, leaf) in enumerate(flat.items())
                       if path.rsplit("/", 1)[-1] == "kernel" and jnp.ndim(leaf) >= 2}

            def draw(key: jax.Array) -> dict[str, jax.Array]:
                # One compiled program for all kernels (a traced key samples inline).
                return {path: orthogonal()(jax.random.fold_in(key, i), shape, dtype)
                        for path, (i, shape, dtype) in kernels.items()}

            trainable = probe.set_paths(trainable, jax.jit(draw)(key))

        def measure(trainable: Any, x: jax.Array) -> dict[str, tuple[jax.Array, ...]]:
            with probe.recording(probe.Recorder()) as rec:
                adapter.apply(trainable, x)
            out: dict[str, tuple[jax.Array, ...]] = {}
            for n, (_, h) in rec.sites.items():
                h = h.astype(jnp.promote_types(h.dtype, jnp.float32))
                units = h.reshape(-1, h.shape[-1]) if h.ndim > 1 else h.reshape(-1, 1)
                unit_mean = jnp.mean(units, axis=0, keepdims=True)
                centred = jnp.mean(jnp.square(units - unit_mean))
                out[n] = (jnp.var(h), centred, unit_mean[0])
            return out

        measure_jit = jax.jit(measure)
        rows: list[LSUVLayer] = []
        done: set[str] = set()
        stats = jax.device_get(measure_jit(trainable, x))
        for n in shapes:
            base = n.split("#")[0]
            kpath, bpath = f"{base}/kernel", f"{base}/bias"
            pooled, centred, _ = stats[n]
            before = float(centred if shift_bias else pooled)
            if kpath not in flat:
                rows.append(LSUVLayer(n, before, before, 0, 1.0,
                                      "no kernel (normalization or other layer): skipped", False))
                continue
            if base in done:
                rows.append(LSUVLayer(n, before, before, 0, 1.0,
                                      "shared layer: rescaled at its first call", False))
                continue
            done.add(base)
            total, iters, note, var, rescaled = 1.0, 0, "", before, True
            has_bias = shift_bias and bpath in flat
            while True:
                pooled, centred, unit_mean = stats[n]
                var = float(centred if shift_bias else pooled)
                if not math.isfinite(var) or var <= 0:
                    note = f"output variance {var}: cannot be rescaled; left unchanged"
                    rescaled = False
                    break
                # With shift_bias the first pass always centres the units.
                if (abs(var - target) < tol and not (has_bias and iters == 0)) or (
                    iters == max_iters
                ):
                    break
                scale = math.sqrt(target / var)
                cur = probe.flat_paths(trainable)
                kernel = jnp.asarray(cur[kpath])
                upd = {kpath: kernel * jnp.asarray(scale, kernel.dtype)}
                if has_bias:
                    # out' = s (out - b) + b' has unit means 0 for b' = -s (mean - b).
                    bias = jnp.asarray(cur[bpath])
                    new_b = -scale * (jnp.asarray(unit_mean) - bias.astype(unit_mean.dtype))
                    upd[bpath] = new_b.reshape(bias.shape).astype(bias.dtype)
                trainable = probe.set_paths(trainable, upd)
                total *= scale
                iters += 1
                stats = jax.device_get(measure_jit(trainable, x))
            if not note and abs(var - target) >= tol:
                note = f"not within tol after max_iters={max_iters}"
            rows.append(LSUVLayer(n, before, var, iters, total, note, rescaled))

    report = LSUVReport(tuple(rows), target, tol)
    return adapter.rebuild(trainable), report
