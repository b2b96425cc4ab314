"""Compare initialization schemes on the user's own model, over several seeds at once.

For each scheme, every weight of rank :math:`\\ge 2` of the user's model (kernels, conv
weights, embeddings) is drawn with the scheme through :func:`jaxinit.reinit`, every
parameter named ``bias`` is set to zero and everything else (norm scales) is kept (or
the scheme is a ``reinit`` rule list, applied by path as it is). The model is then
trained for ``steps`` optimizer steps on arrays, a batch function or an iterable of
batches. The parameters are drawn eagerly (``jax.vmap`` of the draw over the seeds);
training runs in three compiled programs, each ``jax.jit(jax.vmap(...))`` over the
seeds: ``start`` (the optimizer state), ``chunk`` (a ``lax.scan`` over a fixed number of
steps, called until ``steps`` are done) and ``finish`` (the final losses and test
accuracy). They take the drawn parameters as input, so every scheme with the same
parameter shapes reuses them (three compiles in all); seed :math:`i` uses the same key
for every scheme (paired runs). With
several devices the seed axis is sharded over them.

A seed whose training loss becomes non-finite is *diverged at step k* (the first
non-finite index of its curve) and is left out of the means and of the ranking. Schemes
are ranked by the mean over their finished seeds of ``metric``; the best is called the
winner only if Welch's t-test against the runner-up gives :math:`p < 0.05`
(:func:`jaxinit._src.compare.stats.verdict`). A scheme with fewer than two finished
seeds is not ranked.

References:
  Welch (1947), https://doi.org/10.1093/biomet/34.1-2.28;
  Bouthillier et al., "Accounting for Variance in Machine Learning Benchmarks" (2021),
  https://arxiv.org/abs/2103.03098.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxinit._src.compare import SCHEMES
from jaxinit._src.compare.stats import verdict as _verdict
from jaxinit._src.compose.tree import reinit
from jaxinit._src.core.base import Initializer, check_key
from jaxinit._src.core.optim import optax_update
from jaxinit._src.diagnose import probe
from jaxinit._src.diagnose.at_init import (
    _build,
    _default_loss,
    _first_line,
    check_batch_function,
)
from jaxinit._src.schemes.standard import zeros

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


def _is_rule_list(value: Any) -> bool:
    """A ``reinit`` rule set: a mapping or a non-empty sequence of (regex, callable) pairs."""
    if isinstance(value, Mapping):
        items: Any = list(value.items())
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = value
    else:
        return False
    return bool(items) and all(
        isinstance(r, tuple | list) and len(r) == 2 and isinstance(r[0], str | re.Pattern)
        and callable(r[1]) for r in items
    )


def _resolve_schemes(schemes: Any) -> dict[str, Initializer | tuple[tuple[Any, Any], ...]]:
    """Names of the ``jaxinit compare`` scheme table, Initializers, or a mapping name ->
    Initializer or ``reinit`` rule set. Orthogonal uses gain 1 (the model's activation is
    not known)."""
    if isinstance(schemes, str) or not isinstance(schemes, Sequence | Mapping):
        raise ValueError(
            f"compare_model: schemes={schemes!r}; expected a non-empty list of scheme names "
            "or Initializers, or a mapping name -> Initializer or reinit rule list"
        )
    if isinstance(schemes, Mapping):
        items = list(schemes.items())
    else:
        if _is_rule_list(schemes):
            raise ValueError(
                "compare_model: schemes is a single reinit rule list; expected a mapping "
                "name -> rule list, e.g. schemes={'gpt2': jaxinit.recipe('gpt2', params)}"
            )
        items = []
        for s in schemes:
            if _is_rule_list(s):
                raise ValueError(
                    f"compare_model: schemes contains the rule list {s!r} without a name; "
                    "expected a mapping name -> rule list for rule lists"
                )
            items.append((s if isinstance(s, str) else repr(s), s))
    out: dict[str, Initializer | tuple[tuple[Any, Any], ...]] = {}
    for name, s in items:
        if isinstance(s, str):
            if s not in SCHEMES or SCHEMES[s].lsuv:
                names = ", ".join(k for k, v in SCHEMES.items() if not v.lsuv)
                raise ValueError(
                    f"compare_model: schemes contains unknown scheme {s!r}; expected names "
                    f"from {names} or Initializer instances"
                )
            out[str(name)] = SCHEMES[s].build("linear")
        elif isinstance(s, Initializer):
            out[str(name)] = s
        elif isinstance(schemes, Mapping) and _is_rule_list(s):
            rules = list(s.items()) if isinstance(s, Mapping) else list(s)
            out[str(name)] = tuple((p, init) for p, init in rules)
        else:
            raise ValueError(
                f"compare_model: schemes[{name!r}]={s!r}; expected a scheme name, an "
                "Initializer, or (in a mapping) a reinit rule list of (regex, initializer) "
                "pairs such as jaxinit.recipe(...) returns"
            )
    if not out:
        raise ValueError("compare_model: schemes is empty; expected at least one scheme")
    return out


def default_rules(trainable: Any, init: Initializer) -> list[tuple[str, Any]]:
    """The rule set :func:`compare_model` uses for a scheme given as a name or Initializer.

    Every float leaf of rank :math:`\\ge 2` of ``trainable`` (kernels, conv weights,
    embeddings) gets ``init``, every rank-1 float leaf named ``bias`` gets zeros, and
    everything else (norm scales, integer state) is left out, so it keeps its value.
    """
    rules: list[tuple[str, Any]] = []
    for path, leaf in probe.flat_paths(trainable).items():
        if not jnp.issubdtype(leaf.dtype, jnp.inexact):
            continue
        if leaf.ndim >= 2:
            rules.append((re.escape(path), init))
        elif path.rsplit("/", 1)[-1] == "bias":
            rules.append((re.escape(path), zeros))
    return rules


# --------------------------------------------------------------------------------------
# Data: arrays, a batch function, or an iterable of batches.


@dataclasses.dataclass(frozen=True)
class _Data:
    """The training data in one of three forms, and the held-out test set.

    ``kind`` is ``"arrays"`` (``train`` = ``(x, y)``, minibatch ``i % nb`` of ``xb, yb``),
    ``"stacked"`` (``stacked``: a batch pytree with a leading ``steps`` axis) or
    ``"function"`` (``fn(key, step)``, traced inside the compiled scan).
    """

    kind: str
    first: tuple[Any, ...]                 # one training batch (shape checks, example input)
    test: tuple[jax.Array, jax.Array]
    train: tuple[jax.Array, jax.Array] | None = None
    xb: jax.Array | None = None
    yb: jax.Array | None = None
    stacked: Any = None
    fn: Callable[[jax.Array, jax.Array], Any] | None = None

    def batch(self, i: jax.Array, data_key: jax.Array) -> Any:
        if self.kind == "arrays":
            assert self.xb is not None and self.yb is not None
            nb = self.xb.shape[0]
            return (self.xb[i % nb], self.yb[i % nb])
        if self.kind == "stacked":
            return jax.tree.map(lambda a: a[i], self.stacked)
        assert self.fn is not None
        return self.fn(data_key, i)


_ARRAYS = ("expected (x_train, y_train, x_test, y_test) or (x, y) arrays with x of shape "
           "(n, ...) and y of shape (n,), a callable batch(key, step) or an iterable of "
           "batches")


def _xy(arg: str, pair: Any, names: tuple[str, str]) -> tuple[jax.Array, jax.Array]:
    """Checked ``(x, y)`` arrays: numeric x of rank >= 2, integer labels y of shape (n,)."""
    nx, ny = names
    try:
        x, y = (jnp.asarray(a) for a in pair)
    except TypeError:
        raise TypeError(
            f"compare_model: {arg} has a non-array entry; {_ARRAYS}"
        ) from None
    if x.ndim < 2 or x.shape[0] == 0 or y.shape != (x.shape[0],):
        raise ValueError(
            f"compare_model: {arg} {nx} has shape {x.shape} and {ny} shape {y.shape}; "
            "expected x of shape (n, ...) with n > 0 and integer labels y of shape (n,)"
        )
    if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_):
        raise TypeError(
            f"compare_model: {arg} {nx} has dtype {x.dtype}; expected a numeric dtype"
        )
    if not jnp.issubdtype(y.dtype, jnp.integer):
        raise TypeError(
            f"compare_model: {arg} {ny} has dtype {y.dtype}; expected integer class labels"
        )
    if y.size and int(jnp.min(y)) < 0:
        raise ValueError(
            f"compare_model: {arg} {ny} has the label {int(jnp.min(y))}; expected class "
            "labels >= 0"
        )
    return x, y


def _batch_tuple(where: str, batch: Any) -> tuple[Any, ...]:
    """A training batch: a tuple ``(x, y, ...)`` of arrays, x numeric with a batch axis."""
    if not isinstance(batch, tuple | list) or len(batch) < 2:
        raise TypeError(
            f"compare_model: data gave {where} of type {type(batch).__name__}; expected a "
            "tuple (x, y, ...) of arrays"
        )
    batch = tuple(batch)
    for i, a in enumerate(batch):
        if not hasattr(a, "shape") or not hasattr(a, "dtype"):
            raise TypeError(
                f"compare_model: data gave {where} whose entry {i} is "
                f"{type(a).__name__}; expected arrays"
            )
    x = batch[0]
    if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_):
        raise TypeError(
            f"compare_model: data gave {where} with inputs of dtype {x.dtype}; expected a "
            "numeric dtype"
        )
    if len(x.shape) < 2 or x.shape[0] == 0:
        raise ValueError(
            f"compare_model: data gave {where} with inputs of shape {tuple(x.shape)}; "
            "expected (batch, ...) with batch > 0"
        )
    return batch


def _check_data(
    data: Any, test: Any, steps: int, batch_size: int | None, key: jax.Array
) -> _Data:
    """The data in its form; errors name ``data``, ``test`` or ``batch_size``."""
    test_xy = None if test is None else (
        _xy("test", test, ("x_test", "y_test")) if isinstance(test, tuple | list)
        and len(test) == 2 else None
    )
    if test is not None and test_xy is None:
        raise ValueError(
            f"compare_model: test of type {type(test).__name__}; expected (x_test, y_test) "
            "arrays"
        )
    seq = isinstance(data, tuple | list)
    arrays = seq and len(data) in (2, 4) and all(hasattr(a, "shape") for a in data)
    if seq and data and all(isinstance(b, tuple | list) for b in data):
        seq = False  # a list of batches: an iterable
    if arrays:
        if len(data) == 4:
            if test is not None:
                raise ValueError(
                    "compare_model: test= is given but data already holds a test split "
                    "(x_train, y_train, x_test, y_test); expected one of them"
                )
            xtr, ytr = _xy("data", data[:2], ("x_train", "y_train"))
            xte, yte = _xy("data", data[2:], ("x_test", "y_test"))
        else:
            x, y = _xy("data", data, ("x", "y"))
            if test_xy is None:
                n_test = x.shape[0] // 5
                if n_test == 0:
                    raise ValueError(
                        f"compare_model: data has {x.shape[0]} examples, too few to hold "
                        "out a fifth as the test set; expected at least 5 or test="
                    )
                xtr, ytr, xte, yte = x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:]
            else:
                (xtr, ytr), (xte, yte) = (x, y), test_xy
        if xtr.shape[1:] != xte.shape[1:]:
            raise ValueError(
                f"compare_model: data x_train has shape {xtr.shape} but x_test {xte.shape}; "
                "expected the same example shape"
            )
        n = xtr.shape[0]
        if batch_size is not None and _int_arg("batch_size", batch_size) > n:
            raise ValueError(
                f"compare_model: batch_size={batch_size!r}; expected at most the {n} "
                "training examples"
            )
        bs = n if batch_size is None else batch_size
        nb = n // bs
        xb = xtr[: nb * bs].reshape(nb, bs, *xtr.shape[1:])
        yb = ytr[: nb * bs].reshape(nb, bs)
        return _Data("arrays", (xb[0], yb[0]), (xte, yte), train=(xtr, ytr), xb=xb, yb=yb)
    if seq:
        if len(data) in (2, 4):
            raise TypeError(f"compare_model: data has a non-array entry; {_ARRAYS}")
        raise ValueError(f"compare_model: data of type {type(data).__name__}; {_ARRAYS}")
    if batch_size is not None:
        raise ValueError(
            f"compare_model: batch_size={batch_size!r} is for array data only; a batch "
            "function or an iterable gives its own batches (expected batch_size=None)"
        )
    if test_xy is None:
        raise ValueError(
            "compare_model: test is None; expected (x_test, y_test) arrays when data is a "
            "batch function or an iterable of batches"
        )
    if callable(data):
        check_batch_function("compare_model", data, key)
        try:
            shapes = jax.eval_shape(data, key, jnp.zeros((), jnp.int32))
        except Exception as e:  # the user's function
            raise ValueError(
                f"compare_model: data: batch(key, step) cannot be traced with a key and an "
                f"int32 step: {type(e).__name__}: {_first_line(e)}; expected a JAX function"
            ) from e
        first = _batch_tuple("a batch", shapes)
        return _Data("function", first, test_xy, fn=data)
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | Mapping):
        batches: list[tuple[Any, ...]] = []
        for batch in itertools.islice(iter(data), steps):
            batches.append(_batch_tuple(f"batch {len(batches)}", batch))
        if len(batches) < steps:
            raise ValueError(
                f"compare_model: data gave {len(batches)} batches; expected at least "
                f"steps={steps} (one per step)"
            )
        spec = [(tuple(np.shape(a)), np.asarray(a).dtype) for a in batches[0]]
        for i, b in enumerate(batches):
            got = [(tuple(np.shape(a)), np.asarray(a).dtype) for a in b]
            if got != spec:
                raise ValueError(
                    f"compare_model: data batch {i} has shapes/dtypes {got}; expected the "
                    f"same as batch 0, {spec}"
                )
        stacked = tuple(jnp.asarray(np.stack([np.asarray(b[j]) for b in batches]))
                        for j in range(len(spec)))
        return _Data("stacked", tuple(a[0] for a in stacked), test_xy, stacked=stacked)
    raise TypeError(f"compare_model: data of type {type(data).__name__}; {_ARRAYS}")


# --------------------------------------------------------------------------------------
# The compiled programs.


@dataclasses.dataclass(frozen=True)
class _Programs:
    """The three compiled programs every scheme shares, each vmapped over the seeds:
    ``start(params) -> optimizer state``, ``chunk((params, state), data_keys, start) ->
    ((params, state), losses)`` (``length`` steps from step ``start``) and
    ``finish(params, data_keys) -> {train_loss, test_loss, test_accuracy}``."""

    start: Callable[[Any], Any]
    chunk: Callable[[Any, jax.Array, jax.Array], tuple[Any, jax.Array]]
    finish: Callable[[Any, jax.Array], dict[str, jax.Array]]
    length: int


def _programs(
    adapter: probe.Adapter,
    data: _Data,
    loss: Callable[..., jax.Array],
    optimizer: Any,
    steps: int,
    length: int,
) -> _Programs:
    """The per-seed programs, each ``jax.jit(jax.vmap(...))`` over the seed axis."""
    import optax

    xte, yte = data.test

    def objective(p: Any, batch: Any) -> jax.Array:
        return loss(lambda v: adapter.apply(p, v), batch)

    def chunk(carry: Any, data_key: jax.Array, start: jax.Array) -> tuple[Any, jax.Array]:
        def step(carry: Any, i: jax.Array) -> tuple[Any, jax.Array]:
            p, s = carry
            value, grads = jax.value_and_grad(objective)(p, data.batch(i, data_key))
            updates, s2 = optax_update(optimizer, grads, s, p)
            new = (optax.apply_updates(p, updates), s2)
            if steps % length:  # the last chunk runs past `steps`: those steps are no-ops
                new = jax.tree.map(lambda a, b: jnp.where(i < steps, a, b), new, (p, s))
            return new, value

        return jax.lax.scan(step, carry, start + jnp.arange(length))

    def finish(p: Any, data_key: jax.Array) -> dict[str, jax.Array]:
        if data.kind == "arrays":
            assert data.train is not None
            train_loss = objective(p, data.train)
        else:  # the mean over the training batches of the run
            train_loss = jnp.mean(jax.lax.map(
                lambda i: objective(p, data.batch(i, data_key)), jnp.arange(steps)
            ))
        logits = adapter.apply(p, xte)
        return {
            "train_loss": train_loss,
            "test_loss": objective(p, (xte, yte)),
            "test_accuracy": jnp.mean(jnp.argmax(logits, -1) == yte),
        }

    return _Programs(
        start=jax.jit(jax.vmap(optimizer.init)),
        chunk=jax.jit(jax.vmap(chunk, in_axes=(0, 0, None))),
        finish=jax.jit(jax.vmap(finish)),
        length=length,
    )


def _seed_sharding(devices: Any, seeds: int) -> tuple[NamedSharding | None, int]:
    """The sharding of the seed axis over a 1-D mesh of ``devices`` and the padded
    number of seeds (a multiple of the device count); None for one device."""
    if devices is None:
        devices = jax.devices()
    devices = list(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError(
            f"compare_model: devices={devices!r}; expected a non-empty list of jax devices"
        )
    if len(devices) == 1:
        return None, seeds
    mesh = Mesh(np.array(devices), ("seeds",))
    padded = -(-seeds // len(devices)) * len(devices)
    return NamedSharding(mesh, PartitionSpec("seeds")), padded


def run_seeds(
    programs: _Programs,
    init: Callable[[jax.Array], Any],
    keys: jax.Array,
    sharding: NamedSharding | None,
    steps: int,
    progress: Callable[[int], None] | None = None,
) -> dict[str, jax.Array]:
    """Draws the parameters of every seed with ``init`` and trains them: the outputs
    ``{"curve": (seeds, steps), metric: (seeds,)}`` as device arrays, laid out over the
    devices along the seed axis when ``sharding`` is given."""
    # Eagerly, not jitted: compiling a draw of every leaf takes seconds for a deep model
    # (measured 8 s for 31 leaves on 2 CPU cores), while the eager draws reuse the small
    # per-operation programs from one scheme to the next.
    params = jax.vmap(init)(keys)
    if sharding is not None:
        keys, params = jax.device_put((keys, params), sharding)
    data_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    carry = (params, programs.start(params))
    parts = []
    for start in range(0, steps, programs.length):
        carry, part = programs.chunk(carry, data_keys, jnp.int32(start))
        parts.append(part)
        if progress is not None:
            jax.block_until_ready(part)
            progress(min(start + programs.length, steps))
    curve = jnp.concatenate(parts, axis=1)[:, :steps] if len(parts) > 1 else parts[0]
    return {"curve": curve, **programs.finish(carry[0], data_keys)}


def _summary(
    inits: Sequence[str],
    metric: str,
    seeds: int,
    steps: int,
    curves: dict[str, np.ndarray],
    finals: dict[str, dict[str, np.ndarray]],
    diverged: dict[str, tuple[int | None, ...]],
) -> ModelComparison:
    ranked = {}
    for name in inits:
        ok = np.array([d is None for d in diverged[name]])
        v = finals[name][metric][ok]
        ranked[name] = v.tolist() if v.size >= 2 else [float("nan")]
    text = _verdict(ranked, higher_is_better=METRICS[metric])
    return ModelComparison(tuple(inits), metric, seeds, steps, dict(curves), dict(finals),
                           dict(diverged), text)


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
    test: Any = None,
    rules: Callable[[Any, Initializer], Any] | None = None,
    devices: Sequence[jax.Device] | None = None,
    on_result: Callable[[str, ModelComparison], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ModelComparison:
    """Train the user's model under each scheme for several seeds and rank the schemes.

    Args:
      model: a ``flax.linen`` module (initialized on ``example_input``), a factory
        ``make(rngs) -> nnx.Module``, an nnx module or an Equinox module (split into its
        float arrays and the rest with ``eqx.partition``, rebuilt with ``eqx.combine``).
      data: one of

        * ``(x_train, y_train, x_test, y_test)`` arrays, integer labels of shape ``(n,)``;
        * ``(x, y)`` arrays: the last fifth of the examples is held out as the test set
          (or pass ``test=``);
        * a function ``batch(key, step) -> (x, y, ...)``: a JAX function, traced inside
          the compiled scan, called with ``jax.random.fold_in(seed_key, 1)`` (so seed
          :math:`i` sees the same batches under every scheme) and the int32 step;
        * an iterable of ``(x, y, ...)`` batches: the first ``steps`` batches are read
          up front and stacked into arrays of shape ``(steps, batch, ...)`` (they must
          all have the same shapes and dtypes, and fit in memory), so that all seeds
          still run in one compiled scan; step :math:`t` uses batch :math:`t` for every
          seed and scheme.

        With a batch function or an iterable, ``test=`` is required.
      loss: ``loss(apply, batch) -> scalar`` with ``apply(x) -> logits`` and ``batch`` a
        training batch (``(x, y)`` for arrays); default softmax cross-entropy.
      schemes: a list of names from the ``jaxinit compare`` scheme table (``he``,
        ``xavier``, ``lecun``, ``orthogonal`` with gain 1, ...) and Initializers, or a
        mapping name -> name, Initializer, or ``reinit`` rule list (``(regex,
        initializer)`` pairs, e.g. ``jaxinit.recipe("gpt2", params)``). A name or
        Initializer is applied with ``rules``; a rule list is applied as it is by
        :func:`jaxinit.reinit` to the trainable parameters, whose paths are those of
        linen's ``params`` collection (``Dense_0/kernel``, without ``params/``),
        ``nnx.state(model, nnx.Param)`` or the Equinox module's float arrays
        (``layers/0/weight``); every rule must match a parameter.
      seeds: number of seeds: seed :math:`i` re-draws the parameters with
        ``jax.random.split(key, seeds)[i]``, the same for every scheme (the model itself
        is built with ``key``).
      steps: optimizer steps per run.
      optimizer: an optax GradientTransformation; default ``optax.adam(1e-3)``.
      metric: ranking metric, ``test_accuracy`` (higher is better), ``train_loss`` or
        ``test_loss`` (lower is better).
      example_input: inputs to initialize a linen module; default the first training
        example.
      batch_size: for array data: None for full-batch steps; else step :math:`t` uses
        the fixed minibatch :math:`t \\bmod \\lfloor n/b \\rfloor` of the training set,
        in order.
      key: PRNG key; default ``jax.random.key(0)``.
      test: ``(x_test, y_test)`` arrays for the test metrics, with ``(x, y)`` arrays, a
        batch function or an iterable as ``data``.
      rules: ``rules(params, init) -> reinit rules`` for the schemes given as a name or
        an Initializer; default :func:`default_rules` (every float weight of rank
        :math:`\\ge 2` gets the scheme, rank-1 ``bias`` leaves zeros, norm scales are
        kept).
      devices: the devices the seed axis is sharded over (a 1-D mesh, ``NamedSharding``
        with ``PartitionSpec("seeds")``); default ``jax.devices()``. With several
        devices the seeds are padded to a multiple of the device count by repeating the
        first seeds, and the repeats are dropped from the results. One device: no
        sharding.
      on_result: called as ``on_result(scheme, partial)`` when each scheme finishes,
        where ``partial`` is the :class:`ModelComparison` of the schemes finished so far
        (its ``to_json()`` can be written at once, so that an interrupted run keeps
        them).
      progress: called as ``progress(scheme, seeds, steps_done)`` while a scheme trains
        (for a progress bar); the steps then run in 10 compiled chunks of
        :math:`\\lceil steps/10 \\rceil` steps, one call after each. Without it, each
        scheme is one compiled call.

    Returns:
      A :class:`ModelComparison`.

    All schemes share one compiled training program (the parameters of a scheme are
    drawn by a small separate program and passed in), so adding schemes adds no
    compilation when their parameters have the same shapes and dtypes.

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
    if key is None:
        key = jax.random.key(0)
    check_key("compare_model", key)
    for name, fn in (("loss", loss), ("rules", rules), ("on_result", on_result),
                     ("progress", progress)):
        if fn is not None and not callable(fn):
            raise TypeError(f"compare_model: {name}={fn!r}; expected a callable")
    d = _check_data(data, test, steps, batch_size, key)
    if optimizer is None:
        optimizer = optax.adam(1e-3)
    elif not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            f"compare_model: optimizer={optimizer!r} is not an optax GradientTransformation"
        )
    sharding, padded = _seed_sharding(devices, seeds)
    x0 = (jnp.zeros((1, *d.first[0].shape[1:]), d.first[0].dtype)
          if example_input is None else jnp.asarray(example_input))
    built, variables = _build("compare_model", model, x0, None, None, key)
    adapter = probe.adapt("compare_model", built, variables=variables)
    xte, yte = d.test
    try:
        out = jax.eval_shape(adapter.apply, adapter.trainable, xte[:1])
    except Exception as e:  # the user's model on the user's data
        raise ValueError(
            f"compare_model: data: the model cannot be applied to inputs of shape "
            f"{xte[:1].shape}: {type(e).__name__}: {_first_line(e)}; expected inputs the "
            "model accepts"
        ) from e
    labels = [yte] if d.train is None else [d.train[1], yte]
    classes = int(max(int(y.max()) for y in labels)) + 1
    if getattr(out, "ndim", 0) != 2 or out.shape[1] < classes:
        raise ValueError(
            f"compare_model: data: the model's output has shape {getattr(out, 'shape', out)} "
            f"for one example; expected (1, C) logits with C >= {classes} (the labels' range)"
        )
    objective = _default_loss if loss is None else loss
    try:
        value = jax.eval_shape(
            lambda p, b: objective(lambda v: adapter.apply(p, v), b), adapter.trainable,
            d.first,
        )
    except Exception as e:  # the user's loss
        raise ValueError(
            f"compare_model: loss cannot be evaluated on a training batch: "
            f"{type(e).__name__}: {_first_line(e)}; expected loss(apply, batch) -> scalar"
        ) from e
    if getattr(value, "shape", None) != () or not jnp.issubdtype(value.dtype, jnp.floating):
        raise ValueError(
            f"compare_model: loss returned {getattr(value, 'shape', value)} of dtype "
            f"{getattr(value, 'dtype', None)}; expected a float scalar"
        )

    keys = jax.random.split(key, seeds)
    if padded > seeds:
        keys = jnp.concatenate([keys, keys[jnp.arange(padded - seeds) % seeds]])
    trainable = adapter.trainable
    draws: dict[str, Callable[[jax.Array], Any]] = {}
    for name, scheme in inits.items():
        rule_set = scheme if isinstance(scheme, tuple) else (
            default_rules(trainable, scheme) if rules is None else rules(trainable, scheme)
        )
        draw = functools.partial(reinit, trainable, rules=rule_set)
        try:
            shapes = jax.eval_shape(draw, key)
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"compare_model: schemes[{name!r}]: {e}; expected rules that match the "
                f"parameters {', '.join(probe.flat_paths(trainable))}"
            ) from None
        del shapes  # reinit keeps the tree's structure, shapes and dtypes
        draws[name] = draw

    length = steps if progress is None else -(-steps // 10)
    programs = _programs(adapter, d, objective, optimizer, steps, length)
    curves: dict[str, np.ndarray] = {}
    finals: dict[str, dict[str, np.ndarray]] = {}
    diverged: dict[str, tuple[int | None, ...]] = {}
    for name, draw_fn in draws.items():
        tick = None if progress is None else functools.partial(progress, name, seeds)
        res = jax.device_get(run_seeds(programs, draw_fn, keys, sharding, steps, tick))
        curve = np.asarray(res["curve"], np.float64)[:seeds]
        curves[name] = curve
        finals[name] = {m: np.asarray(res[m], np.float64)[:seeds] for m in METRICS}
        div: list[int | None] = []
        for row, tl in zip(curve, finals[name]["train_loss"], strict=True):
            bad = np.flatnonzero(~np.isfinite(row))
            div.append(int(bad[0]) if bad.size else (steps if not np.isfinite(tl) else None))
        diverged[name] = tuple(div)
        if on_result is not None:
            on_result(name, _summary(list(curves), metric, seeds, steps, curves, finals,
                                     diverged))
    return _summary(list(inits), metric, seeds, steps, curves, finals, diverged)
