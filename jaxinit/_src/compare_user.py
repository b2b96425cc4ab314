"""Compare initialization schemes on the user's own model, over several seeds at once.

For each scheme, every weight of rank :math:`\\ge 2` of the user's model (kernels, conv
weights, embeddings) is drawn with the scheme through :func:`jaxinit.reinit`, every
parameter named ``bias`` is set to zero and everything else (norm scales) is kept. The
model is then trained for ``steps`` optimizer steps. All seeds of a scheme run in one
compiled program, ``jax.jit(jax.vmap(train))`` over the seed keys, where ``train`` is a
``lax.scan`` over steps; seed :math:`i` uses the same key for every scheme (paired runs).

A seed whose training loss becomes non-finite is *diverged at step k* (the first
non-finite index of its curve) and is left out of the means and of the ranking. Schemes
are ranked by the mean over their finished seeds of ``metric``; the best is called the
winner only if Welch's t-test against the runner-up gives :math:`p < 0.05`
(:func:`jaxinit._src.compare_stats.verdict`). A scheme with fewer than two finished
seeds is not ranked.

References:
  Welch (1947), https://doi.org/10.1093/biomet/34.1-2.28;
  Bouthillier et al., "Accounting for Variance in Machine Learning Benchmarks" (2021),
  https://arxiv.org/abs/2103.03098.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src import probe
from jaxinit._src.base import Initializer
from jaxinit._src.compare import SCHEMES
from jaxinit._src.compare_stats import verdict as _verdict
from jaxinit._src.diagnose import _build, _default_loss
from jaxinit._src.schemes import zeros
from jaxinit._src.tree import reinit

METRICS = {"test_accuracy": True, "train_loss": False, "test_loss": False}  # higher is better?
SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class ModelComparison:
    """The result of :func:`compare_model`.

    Attributes:
      schemes: the scheme names, in the order given.
      metric: the ranking metric (``test_accuracy``, ``train_loss`` or ``test_loss``).
      seeds, steps: as passed.
      curves: scheme -> float64 array ``(seeds, steps)``, the training loss before each step.
      finals: scheme -> metric name -> float64 array ``(seeds,)`` after the last step
        (``train_loss`` on the whole training set, ``test_loss``, ``test_accuracy``).
      diverged: scheme -> per seed, the first step whose loss is non-finite, or None.
      verdict: the one-line recommendation.

    ``to_json()`` returns a JSON string with fields ``schema_version`` (1), ``metric``,
    ``seeds``, ``steps``, ``verdict`` and ``schemes``: a mapping scheme ->
    ``{"curves": [[...]], "finals": {metric: [...]}, "diverged": [k or null],
    "mean": {metric: x or null}, "std": {metric: x or null}}`` (non-finite numbers as null).
    """

    schemes: tuple[str, ...]
    metric: str
    seeds: int
    steps: int
    curves: Mapping[str, np.ndarray]
    finals: Mapping[str, Mapping[str, np.ndarray]]
    diverged: Mapping[str, tuple[int | None, ...]]
    verdict: str

    def finished(self, scheme: str) -> np.ndarray:
        """Boolean mask ``(seeds,)`` of the seeds of ``scheme`` that did not diverge."""
        return np.array([d is None for d in self.diverged[scheme]])

    def mean(self, scheme: str, metric: str | None = None) -> float:
        """Mean of ``metric`` (default: the ranking metric) over the finished seeds."""
        v = self.finals[scheme][metric or self.metric][self.finished(scheme)]
        return float(v.mean()) if v.size else float("nan")

    def std(self, scheme: str, metric: str | None = None) -> float:
        """Sample standard deviation (ddof=1) over the finished seeds (nan if < 2)."""
        v = self.finals[scheme][metric or self.metric][self.finished(scheme)]
        return float(v.std(ddof=1)) if v.size >= 2 else float("nan")

    def to_json(self) -> str:
        def num(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "metric": self.metric,
            "seeds": self.seeds,
            "steps": self.steps,
            "verdict": self.verdict,
            "schemes": {},
        }
        for s in self.schemes:
            out["schemes"][s] = {
                "curves": [[num(v) for v in row] for row in self.curves[s]],
                "finals": {m: [num(v) for v in a] for m, a in self.finals[s].items()},
                "diverged": list(self.diverged[s]),
                "mean": {m: num(self.mean(s, m)) for m in METRICS},
                "std": {m: num(self.std(s, m)) for m in METRICS},
            }
        return json.dumps(out, indent=1)

    def __str__(self) -> str:
        lines = [f"{self.metric} over {self.seeds} seeds, {self.steps} steps"]
        for s in self.schemes:
            div = [f"seed {i} at step {k}" for i, k in enumerate(self.diverged[s]) if k is not None]
            extra = f"  diverged: {', '.join(div)}" if div else ""
            lines.append(f"  {s:>16}: {self.mean(s):.4f} +- {self.std(s):.4f}{extra}")
        lines.append(self.verdict)
        return "\n".join(lines)


def _int_arg(name: str, value: Any) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"compare_model: {name}={value!r}; expected a positive int")
    return int(value)


def _resolve_schemes(schemes: Any) -> dict[str, Initializer]:
    """Names of the ``jaxinit compare`` scheme table, Initializers, or a name -> Initializer
    mapping. Orthogonal uses gain 1 (the model's activation is not known)."""
    if isinstance(schemes, str) or not isinstance(schemes, Sequence | Mapping):
        raise ValueError(
            f"compare_model: schemes={schemes!r}; expected a non-empty list of scheme names "
            "or Initializers, or a mapping name -> Initializer"
        )
    items = schemes.items() if isinstance(schemes, Mapping) else [
        (s if isinstance(s, str) else repr(s), s) for s in schemes
    ]
    out: dict[str, Initializer] = {}
    for name, s in items:
        if isinstance(s, str):
            if s not in SCHEMES or SCHEMES[s].lsuv:
                names = ", ".join(k for k, v in SCHEMES.items() if not v.lsuv)
                raise ValueError(
                    f"compare_model: schemes contains unknown scheme {s!r}; expected names "
                    f"from {names} or Initializer instances"
                )
            out[name] = SCHEMES[s].build("linear")
        elif isinstance(s, Initializer):
            out[str(name)] = s
        else:
            raise ValueError(
                f"compare_model: schemes contains {s!r}; expected a scheme name or an "
                "Initializer"
            )
    if not out:
        raise ValueError("compare_model: schemes is empty; expected at least one scheme")
    return out


def _check_data(data: Any) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    expected = ("expected (x_train, y_train, x_test, y_test) arrays with x of shape "
                "(n, ...) and y of shape (n,)")
    if not isinstance(data, tuple | list) or len(data) != 4:
        raise ValueError(f"compare_model: data of type {type(data).__name__}; {expected}")
    try:
        xtr, ytr, xte, yte = (jnp.asarray(a) for a in data)
    except TypeError:
        raise ValueError(f"compare_model: data has a non-array entry; {expected}") from None
    for nx, x, ny, y in (("x_train", xtr, "y_train", ytr), ("x_test", xte, "y_test", yte)):
        if x.ndim < 2 or x.shape[0] == 0 or y.shape != (x.shape[0],):
            raise ValueError(
                f"compare_model: data {nx} has shape {x.shape} and {ny} shape {y.shape}; "
                f"{expected}"
            )
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise ValueError(
                f"compare_model: data {ny} has dtype {y.dtype}; expected integer class labels"
            )
    if xtr.shape[1:] != xte.shape[1:]:
        raise ValueError(
            f"compare_model: data x_train has shape {xtr.shape} but x_test {xte.shape}; "
            "expected the same example shape"
        )
    return xtr, ytr, xte, yte


def _rules(trainable: Any, init: Initializer) -> list[tuple[str, Any]]:
    """Rank >= 2 float leaves get ``init``; float leaves named ``bias`` get zeros."""
    rules: list[tuple[str, Any]] = []
    for path, leaf in probe.flat_paths(trainable).items():
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            continue
        if leaf.ndim >= 2:
            rules.append((re.escape(path), init))
        elif path.rsplit("/", 1)[-1] == "bias":
            rules.append((re.escape(path), zeros))
    return rules


def make_train(
    adapter: probe.Adapter,
    init: Initializer,
    data: tuple[jax.Array, jax.Array, jax.Array, jax.Array],
    loss: Callable[..., jax.Array],
    optimizer: Any,
    steps: int,
    batch_size: int | None,
) -> Callable[[jax.Array], dict[str, jax.Array]]:
    """``train(key) -> {"curve": (steps,), "train_loss", "test_loss", "test_accuracy"}``
    for one seed; :func:`compare_model` runs ``jax.jit(jax.vmap(train))``."""
    import optax

    xtr, ytr, xte, yte = data
    rules = _rules(adapter.trainable, init)
    n = xtr.shape[0]
    bs = n if batch_size is None else batch_size
    nb = n // bs
    xb = xtr[: nb * bs].reshape(nb, bs, *xtr.shape[1:])
    yb = ytr[: nb * bs].reshape(nb, bs)

    def objective(p: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return loss(lambda v: adapter.apply(p, v), (x, y))

    def train(key: jax.Array) -> dict[str, jax.Array]:
        params = reinit(adapter.trainable, key, rules)
        state = optimizer.init(params)

        def step(carry: Any, i: jax.Array) -> tuple[Any, jax.Array]:
            p, s = carry
            value, grads = jax.value_and_grad(objective)(p, xb[i % nb], yb[i % nb])
            # optax mixes Python floats and int32 step counts (Adam's bias correction).
            with jax.numpy_dtype_promotion("standard"):
                updates, s = optimizer.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), value

        (params, _), curve = jax.lax.scan(step, (params, state), jnp.arange(steps))
        logits = adapter.apply(params, xte)
        return {
            "curve": curve,
            "train_loss": objective(params, xtr, ytr),
            "test_loss": objective(params, xte, yte),
            "test_accuracy": jnp.mean(jnp.argmax(logits, -1) == yte),
        }

    return train


def compare_model(
    model: Any,
    data: Any,
    loss: Callable[..., jax.Array] | None = None,
    *,
    schemes: Any,
    seeds: int = 3,
    steps: int = 100,
    optimizer: Any = None,
    metric: str = "test_accuracy",
    example_input: Any = None,
    batch_size: int | None = None,
    key: jax.Array | None = None,
) -> ModelComparison:
    """Train the user's model under each scheme for several seeds and rank the schemes.

    Args:
      model: a ``flax.linen`` module (initialized on ``example_input``), a factory
        ``make(rngs) -> nnx.Module``, an nnx module or an Equinox module.
      data: ``(x_train, y_train, x_test, y_test)`` arrays, integer labels of shape ``(n,)``.
      loss: ``loss(apply, (x, y)) -> scalar`` with ``apply(x) -> logits``; default
        softmax cross-entropy.
      schemes: names from the ``jaxinit compare`` scheme table (``he``, ``xavier``,
        ``lecun``, ``orthogonal`` with gain 1, ...), Initializers, or a mapping
        name -> Initializer.
      seeds: number of seeds: seed :math:`i` re-draws the parameters with
        ``jax.random.split(key, seeds)[i]``, the same for every scheme (the model itself
        is built with ``key``).
      steps: optimizer steps per run.
      optimizer: an optax GradientTransformation; default ``optax.adam(1e-3)``.
      metric: ranking metric, ``test_accuracy`` (higher is better), ``train_loss`` or
        ``test_loss`` (lower is better).
      example_input: inputs to initialize a linen module; default ``x_train[:1]``.
      batch_size: None for full-batch steps; else step :math:`t` uses the fixed minibatch
        :math:`t \\bmod \\lfloor n/b \\rfloor` of the training set, in order.
      key: PRNG key; default ``jax.random.key(0)``.

    Returns:
      A :class:`ModelComparison`.

    Example:
      >>> import jax, numpy as np, optax, jaxinit
      >>> from flax import linen as nn
      >>> x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
      >>> y = (x[:, 0] > 0).astype(np.int32)
      >>> mlp = nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(2)])
      >>> r = jaxinit.compare_model(mlp, (x, y, x, y), schemes=["he", "lecun"], seeds=2,
      ...                           steps=5)
      >>> r.curves["he"].shape, r.diverged["lecun"]
      ((2, 5), (None, None))
    """
    import optax  # lazily: optax is an optional extra

    seeds = _int_arg("seeds", seeds)
    steps = _int_arg("steps", steps)
    if metric not in METRICS:
        raise ValueError(
            f"compare_model: metric={metric!r}; expected one of {', '.join(METRICS)}"
        )
    inits = _resolve_schemes(schemes)
    arrays = _check_data(data)
    n = arrays[0].shape[0]
    if batch_size is not None and _int_arg("batch_size", batch_size) > n:
        raise ValueError(
            f"compare_model: batch_size={batch_size!r}; expected at most the {n} training "
            "examples"
        )
    if loss is not None and not callable(loss):
        raise TypeError(f"compare_model: loss={loss!r} must be a callable loss(apply, batch)")
    if optimizer is None:
        optimizer = optax.adam(1e-3)
    elif not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            f"compare_model: optimizer={optimizer!r} is not an optax GradientTransformation"
        )
    if key is None:
        key = jax.random.key(0)
    x0 = arrays[0][:1] if example_input is None else jnp.asarray(example_input)
    built, variables = _build("compare_model", model, x0, None, None, key)
    adapter = probe.adapt("compare_model", built, variables=variables)
    try:
        out = jax.eval_shape(adapter.apply, adapter.trainable, arrays[2][:1])
    except Exception as e:  # the user's model on the user's data
        raise ValueError(
            f"compare_model: data: the model cannot be applied to inputs of shape "
            f"{arrays[2][:1].shape}: {type(e).__name__}: {str(e).strip().splitlines()[0]}; "
            "expected inputs the model accepts"
        ) from e
    classes = int(max(arrays[1].max(), arrays[3].max())) + 1
    if getattr(out, "ndim", 0) != 2 or out.shape[1] < classes:
        raise ValueError(
            f"compare_model: data: the model's output has shape {getattr(out, 'shape', out)} "
            f"for one example; expected (1, C) logits with C >= {classes} (the labels' range)"
        )
    objective = _default_loss if loss is None else loss
    keys = jax.random.split(key, seeds)

    curves: dict[str, np.ndarray] = {}
    finals: dict[str, dict[str, np.ndarray]] = {}
    diverged: dict[str, tuple[int | None, ...]] = {}
    for name, init in inits.items():
        train = make_train(adapter, init, arrays, objective, optimizer, steps, batch_size)
        out = jax.device_get(jax.jit(jax.vmap(train))(keys))
        curve = np.asarray(out["curve"], np.float64)
        curves[name] = curve
        finals[name] = {m: np.asarray(out[m], np.float64) for m in METRICS}
        div: list[int | None] = []
        for row, tl in zip(curve, finals[name]["train_loss"], strict=True):
            bad = np.flatnonzero(~np.isfinite(row))
            div.append(int(bad[0]) if bad.size else (steps if not np.isfinite(tl) else None))
        diverged[name] = tuple(div)

    ranked = {}
    for name in inits:
        ok = np.array([d is None for d in diverged[name]])
        v = finals[name][metric][ok]
        ranked[name] = v.tolist() if v.size >= 2 else [float("nan")]
    text = _verdict(ranked, higher_is_better=METRICS[metric])
    return ModelComparison(tuple(inits), metric, seeds, steps, curves, finals, diverged, text)
