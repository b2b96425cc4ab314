"""Signal propagation at initialization: see how a network's signal propagates, and fix it.

- :func:`signal_stats`: per-layer forward statistics (mean, std, second moment, dead
  and saturated fractions) and backward statistics (gradient std with respect to each
  layer's output and kernel) of a linen or nnx model, or of a plain function whose
  layers are marked with :func:`tap`, on a batch; ``print(report)`` is a table
  against depth and ``report.plot()`` draws it.
- :func:`jacobian_spectrum`: the input-output Jacobian's singular values, exact or by
  stochastic Lanczos quadrature, to measure dynamical isometry.

Data-dependent initialization (:func:`jaxinit.lsuv`) and the mean-field solvers
(:func:`jaxinit.critical_weight_std`, ...) live in the top-level package.

Example:
  >>> import jax, jax.numpy as jnp, jaxinit
  >>> from jaxinit.diagnostics import signal_stats, tap
  >>> ws = [jaxinit.he_normal()(k, (128, 128)) for k in jax.random.split(jax.random.key(0), 8)]
  >>> def mlp(ws, x):
  ...     for i, w in enumerate(ws):
  ...         x = jax.nn.relu(tap(x @ w, f"dense{i}"))
  ...     return x
  >>> report = signal_stats(mlp, jax.random.normal(jax.random.key(1), (256, 128)), params=ws)
  >>> len(report.layers)
  8
"""

from jaxinit._src.diagnose.diagnostics import JacobianSpectrum as JacobianSpectrum
from jaxinit._src.diagnose.diagnostics import LayerStats as LayerStats
from jaxinit._src.diagnose.diagnostics import SignalReport as SignalReport
from jaxinit._src.diagnose.diagnostics import Stats as Stats
from jaxinit._src.diagnose.diagnostics import jacobian_spectrum as jacobian_spectrum
from jaxinit._src.diagnose.diagnostics import signal_stats as signal_stats
from jaxinit._src.diagnose.probe import tap as tap

__all__ = [
    "JacobianSpectrum",
    "LayerStats",
    "SignalReport",
    "Stats",
    "jacobian_spectrum",
    "signal_stats",
    "tap",
]
