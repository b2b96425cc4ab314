r"""The muP coordinate check: activation sizes across widths during the first steps.

Under a correct muP setup every layer's typical coordinate :math:`\mathbb{E}|x|` stays
Theta(1) as the width grows, at initialization and after each update; under the standard
parametrization with Adam the readout's grows with the width after the first step. The
check trains the same model at several widths for a few steps on one batch and records
:math:`\mathbb{E}|x|` of every layer's activations at every step (Tensor Programs V,
Appendix D.1, https://arxiv.org/abs/2203.03466).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.core.optim import optax_update


def _check_widths(name: str, widths: Any) -> tuple[int, ...]:
    try:
        out = tuple(operator.index(w) for w in widths)
    except TypeError:
        raise TypeError(f"{name}: widths={widths!r} must be a sequence of ints") from None
    if len(out) < 2 or out[0] <= 0 or any(b <= a for a, b in itertools.pairwise(out)):
        raise ValueError(
            f"{name}: widths={out!r} must be at least two positive widths that strictly grow"
        )
    return out


def mup_coord_check(
    make_model: Callable[[int], tuple[Any, Callable[[Any, Any], Any], Any]],
    widths: Sequence[int],
    data: Any,
    *,
    steps: int = 3,
) -> np.ndarray:
    r"""Mean absolute activation of every layer, per width and training step.

    For each width ``w``, ``make_model(w)`` returns ``(params, loss_fn, tx)``: the initial
    parameters, ``loss_fn(params, data) -> (loss, activations)`` with ``activations`` a
    sequence of arrays (one per layer, the same number at every width) and an optax
    optimizer. The model takes ``steps`` optimizer steps on ``data``; before each update
    the scale :math:`\mathbb{E}|x|` of each layer's activations (float32) is recorded, so
    step 0 is the initialization. Under muP the rows do not drift with the width.

    Args:
      make_model: ``width -> (params, loss_fn, tx)`` as above.
      widths: at least two strictly growing positive widths.
      data: the batch passed to ``loss_fn`` at every step (any pytree).
      steps: number of recorded steps (>= 1).

    Returns:
      A float array of shape ``(len(widths), steps, layers)``.

    Example:
      >>> import jax, jax.numpy as jnp, flax.linen as nn, optax, jaxinit
      >>> x = jax.random.normal(jax.random.key(0), (32, 16))
      >>> def make(w):
      ...     dense1, dense2 = nn.Dense(w), nn.Dense(1)
      ...     model = nn.Sequential([dense1, nn.relu, dense2])
      ...     params = model.init(jax.random.key(1), x)
      ...     def loss_fn(p, x):
      ...         h = nn.relu(dense1.apply({"params": p["params"]["layers_0"]}, x))
      ...         y = dense2.apply({"params": p["params"]["layers_2"]}, h)
      ...         return jnp.mean(y**2), (h, y)
      ...     return params, loss_fn, optax.adam(1e-2)
      >>> jaxinit.mup_coord_check(make, [32, 64], x, steps=2).shape
      (2, 2, 2)

    References:
      Yang et al. (2021), Tensor Programs V, Appendix D.1,
      https://arxiv.org/abs/2203.03466.
    """
    import optax

    name = "mup_coord_check"
    widths = _check_widths(name, widths)
    try:
        steps = operator.index(steps)
    except TypeError:
        raise TypeError(f"{name}: steps={steps!r} must be an int") from None
    if steps < 1:
        raise ValueError(f"{name}: steps={steps} must be >= 1")
    if not callable(make_model):
        raise TypeError(f"{name}: make_model={make_model!r} must be callable")
    out = []
    for width in widths:
        built = make_model(width)
        if not (isinstance(built, tuple) and len(built) == 3 and callable(built[1])):
            raise TypeError(
                f"{name}: make_model({width}) returned {type(built).__name__}; expected a "
                "(params, loss_fn, tx) tuple with loss_fn(params, data) -> (loss, activations)"
            )
        params, loss_fn, tx = built

        def step(carry: Any, _: Any, loss_fn: Any = loss_fn, tx: Any = tx) -> Any:
            params, state = carry
            (_, acts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, data)
            scales = jnp.stack([jnp.abs(jnp.asarray(a, jnp.float32)).mean() for a in acts])
            updates, state = optax_update(tx, grads, state, params)
            return (optax.apply_updates(params, updates), state), scales

        def run(params: Any, step: Any = step, tx: Any = tx) -> Any:
            return jax.lax.scan(step, (params, tx.init(params)), None, length=steps)[1]

        out.append(np.asarray(jax.jit(run)(params)))
    shapes = {a.shape for a in out}
    if len(shapes) != 1:
        raise ValueError(
            f"{name}: loss_fn returned a different number of activations across widths "
            f"{widths}: {sorted(s[1] for s in shapes)}"
        )
    return np.stack(out)


def plot_coord_check(
    scales: Any, widths: Sequence[int], *, layer_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Any:
    r"""Plots a coordinate check as the ``mup`` package does: one panel per step.

    Panel ``t`` draws, for every layer, :math:`\mathbb{E}|x|` against the width on log-log
    axes (step 0 is the initialization). Under muP the lines are flat; a line that rises
    with the width marks a layer whose updates blow up as the model widens.

    Args:
      scales: the ``(len(widths), steps, layers)`` array from :func:`mup_coord_check`.
      widths: the widths it was measured at.
      layer_names: one legend label per layer (default ``layer 0``, ``layer 1``, ...).
      title: the figure title.

    Returns:
      A matplotlib ``Figure`` (matplotlib is imported only here).

    Example:
      >>> import numpy as np, jaxinit
      >>> scales = np.ones((3, 2, 4))                 # flat: what muP should give
      >>> fig = jaxinit.plot_coord_check(scales, [64, 128, 256])
      >>> len(fig.axes), len(fig.axes[0].lines)
      (2, 4)
    """
    name = "plot_coord_check"
    widths = _check_widths(name, widths)
    data = np.asarray(scales, dtype=np.float64)
    if data.ndim != 3 or data.shape[0] != len(widths):
        raise ValueError(
            f"{name}: scales has shape {data.shape}; expected (len(widths)={len(widths)}, "
            "steps, layers) as mup_coord_check returns"
        )
    _, steps, layers = data.shape
    names = [f"layer {i}" for i in range(layers)] if layer_names is None else list(layer_names)
    if len(names) != layers:
        raise ValueError(f"{name}: layer_names has {len(names)} names for {layers} layers")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, steps, figsize=(3.2 * steps, 3.0), sharey=True, squeeze=False)
    for t, ax in enumerate(axes[0]):
        for i, label in enumerate(names):
            ax.plot(widths, data[:, t, i], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width")
        ax.set_title("init" if t == 0 else f"step {t}")
    axes[0][0].set_ylabel("mean |activation|")
    axes[0][-1].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
