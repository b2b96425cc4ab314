"""`jaxinit compare`: which initialization suits *this* network? Measure, train, compare.

For one architecture (an MLP or a small CNN of a given depth, width and activation) and a
list of schemes, :func:`compare` measures at initialization the activation and gradient
std through depth (:func:`jaxinit.diagnostics.signal_stats`) and the spread of the
input-output Jacobian's singular values (:func:`jaxinit.diagnostics.jacobian_spectrum`),
then trains each network for a few hundred steps of optax SGD or Adam on scikit-learn's
digits (8x8 images, 10 classes, bundled with scikit-learn: no download) and reports the
training loss and the accuracies. Everything but the scheme is identical across runs:
the same parameter key, data split and batch order.

optax, scikit-learn, matplotlib and tqdm are imported lazily, so ``import jaxinit``
never needs them (``pip install 'jaxinit[cli]'``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.gain import ACTIVATIONS, gain
from jaxinit._src.orthogonal import orthogonal
from jaxinit._src.schemes import (
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    lecun_normal,
    lecun_uniform,
    normal,
    variance_scaling,
)

# --------------------------------------------------------------------------------------
# Schemes and activations.


@dataclasses.dataclass(frozen=True)
class Scheme:
    """A named initialization scheme of the comparison.

    Attributes:
      name: the name used on the command line.
      summary: the formula and where it comes from.
      build: activation name -> kernel initializer (orthogonal uses the activation's gain).
      lsuv: whether :func:`jaxinit.lsuv` rescales the layers after ``build``'s init.
    """

    name: str
    summary: str
    build: Callable[[str], Any]
    lsuv: bool = False


def _orthogonal(activation: str) -> Any:
    return orthogonal(gain(activation))


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("random", "N(0, 0.01^2): small random numbers (the seed's 'random')",
               lambda a: normal(0.01)),
        # U(-1/sqrt(n), 1/sqrt(n)) has variance 1/(3n): variance_scaling(1/3, fan_in, uniform).
        Scheme("uniform", "U(+-1/sqrt(fan_in)): the classic heuristic, PyTorch's default",
               lambda a: variance_scaling(1 / 3, "fan_in", "uniform")),
        Scheme("xavier", "Glorot & Bengio 2010: U, Var = 2/(fan_in+fan_out)",
               lambda a: glorot_uniform()),
        Scheme("xavier_normal", "Glorot & Bengio 2010: truncated N, Var = 2/(fan_in+fan_out)",
               lambda a: glorot_normal()),
        Scheme("he", "He et al. 2015: truncated N, Var = 2/fan_in", lambda a: he_normal()),
        Scheme("he_uniform", "He et al. 2015: U, Var = 2/fan_in", lambda a: he_uniform()),
        Scheme("lecun", "LeCun et al. 1998: truncated N, Var = 1/fan_in",
               lambda a: lecun_normal()),
        Scheme("lecun_uniform", "LeCun et al. 1998: U, Var = 1/fan_in",
               lambda a: lecun_uniform()),
        Scheme("orthogonal", "Saxe et al. 2014: orthogonal x gain(activation)", _orthogonal),
        Scheme("lsuv", "Mishkin & Matas 2016: orthonormal, then unit output variance "
               "per layer on a data batch", _orthogonal, lsuv=True),
    )
}
DEFAULT_SCHEMES = ("random", "uniform", "xavier", "he", "lecun", "orthogonal", "lsuv")
ARCHS = ("mlp", "cnn")
OPTIMIZERS = ("sgd", "adam")
# Activations offered on the command line: those jaxinit.gain knows by name, minus the
# aliases and the periodic ones (no sensible deep network).
CLI_ACTIVATIONS = tuple(
    a for a in ACTIVATIONS if a not in ("identity", "swish", "sin", "cos", "gelu_tanh")
)


# --------------------------------------------------------------------------------------
# Configuration.


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """Everything a comparison depends on; the defaults are ``make demo``'s run.

    Attributes:
      arch: "mlp" (``depth`` hidden Dense layers) or "cnn" (``depth`` 3x3 conv layers,
        'SAME' padding, on the 8x8 images); both end in a Dense layer to the 10 classes.
      depth: number of hidden layers.
      width: units (mlp) or channels (cnn) of every hidden layer.
      activation: a name from :data:`CLI_ACTIVATIONS`.
      schemes: the schemes to compare (names of :data:`SCHEMES`).
      steps: training steps per scheme.
      optimizer: "sgd" (with ``momentum``) or "adam".
      lr: learning rate.
      momentum: SGD momentum (ignored by Adam).
      batch_size: training batch size (sampled without replacement each step).
      seed: seed of the parameters, the data split and the batch order.
      test_fraction: fraction of the digits held out for the test accuracy.
      probe_batch: examples used by the signal statistics and by LSUV.
      jacobian_examples: examples whose input-output Jacobian spectrum is pooled.
    """

    arch: str = "mlp"
    depth: int = 30
    width: int = 64
    activation: str = "relu"
    schemes: tuple[str, ...] = DEFAULT_SCHEMES
    steps: int = 1000
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    batch_size: int = 128
    seed: int = 0
    test_fraction: float = 0.2
    probe_batch: int = 256
    jacobian_examples: int = 4

    def validate(self) -> CompareConfig:
        """Raises ValueError naming the option (as on the command line) if a value is bad."""

        def fail(option: str, value: Any, expected: str) -> None:
            raise ValueError(f"--{option.replace('_', '-')}={value!r}: expected {expected}")

        if self.arch not in ARCHS:
            fail("arch", self.arch, f"one of {', '.join(ARCHS)}")
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", self.optimizer, f"one of {', '.join(OPTIMIZERS)}")
        if self.activation not in CLI_ACTIVATIONS:
            fail("activation", self.activation, f"one of {', '.join(CLI_ACTIVATIONS)}")
        for option in ("depth", "width", "steps", "batch_size", "probe_batch",
                       "jacobian_examples"):
            value = getattr(self, option)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(option, value, "a positive integer")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            fail("seed", self.seed, "a non-negative integer")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            fail("lr", self.lr, "a finite number > 0")
        if not (isinstance(self.momentum, int | float) and 0 <= self.momentum < 1):
            fail("momentum", self.momentum, "a number in [0, 1)")
        if not (isinstance(self.test_fraction, int | float) and 0 < self.test_fraction < 1):
            fail("test_fraction", self.test_fraction, "a number in (0, 1)")
        if not self.schemes:
            fail("schemes", ",".join(self.schemes), "at least one scheme")
        unknown = [s for s in self.schemes if s not in SCHEMES]
        if unknown:
            fail("schemes", ",".join(self.schemes),
                 f"names from {', '.join(SCHEMES)} (unknown: {', '.join(unknown)})")
        if len(set(self.schemes)) != len(self.schemes):
            fail("schemes", ",".join(self.schemes), "each scheme at most once")
        return self


# --------------------------------------------------------------------------------------
# Data and models.


def _require() -> None:
    missing = []
    for module in ("flax", "optax", "sklearn"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImportError(
            f"jaxinit compare needs {', '.join(missing)}: pip install 'jaxinit[cli]'"
        )


@dataclasses.dataclass(frozen=True)
class Digits:
    """scikit-learn's digits, split and standardized with the training set's statistics."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Digits:
    """The 1797 8x8 digits (bundled with scikit-learn), float32, shape (n, 8, 8, 1).

    Each pixel is standardized with the training set's mean and std (pixels that are
    constant in the training set, such as some corners, become 0).

    Example:
      >>> d = load_digits()
      >>> d.x_train.shape, d.x_test.shape, d.y_train.dtype
      ((1438, 8, 8, 1), (359, 8, 8, 1), dtype('int32'))
    """
    from sklearn.datasets import load_digits as sk_load_digits

    x, y = sk_load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = round(test_fraction * len(y))
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    x = x.reshape(-1, 8, 8, 1).astype(np.float32)
    y = y.astype(np.int32)
    return Digits(x[train], y[train], x[test], y[test])


def make_model(config: CompareConfig, kernel_init: Any) -> Any:
    """The linen model of ``config`` with ``kernel_init`` on every kernel (biases zero).

    ``model.apply(variables, x, hidden=True)`` returns the last hidden activation
    (for the Jacobian spectrum of the hidden stack).
    """
    from flax import linen as nn

    act = ACTIVATIONS[config.activation]

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array, hidden: bool = False) -> jax.Array:
            x = x.reshape(x.shape[0], -1)
            for i in range(config.depth):
                x = act(nn.Dense(config.width, kernel_init=kernel_init, name=f"layer{i}")(x))
            if hidden:
                return x
            return nn.Dense(10, kernel_init=kernel_init, name="head")(x)

    class CNN(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array, hidden: bool = False) -> jax.Array:
            for i in range(config.depth):
                conv = nn.Conv(config.width, (3, 3), padding="SAME", kernel_init=kernel_init,
                               name=f"layer{i}")
                x = act(conv(x))
            if hidden:
                return x
            x = x.reshape(x.shape[0], -1)
            return nn.Dense(10, kernel_init=kernel_init, name="head")(x)

    return MLP() if config.arch == "mlp" else CNN()


# --------------------------------------------------------------------------------------
# Training.


def _loss(model: Any, params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
    import optax

    logits = model.apply({"params": params}, x)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def _chunk_size(steps: int) -> int:
    """Steps per compiled chunk: the largest divisor of ``steps`` that gives >= 10 updates
    of the progress bar (so one compiled program serves every chunk)."""
    target = max(1, steps // 10)
    return max(d for d in range(1, target + 1) if steps % d == 0)


def make_trainer(config: CompareConfig, model: Any, data: Digits) -> Callable[..., Any]:
    """A function ``train(params, progress) -> (params, losses)`` running ``config.steps``
    optimizer steps, jitted in chunks of :func:`_chunk_size` steps (a ``lax.scan`` each),
    so the progress bar moves while one compiled program is reused for every scheme.
    """
    import optax

    if config.optimizer == "sgd":
        opt = optax.sgd(config.lr, momentum=config.momentum or None)
    else:
        opt = optax.adam(config.lr)
    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    n = x_train.shape[0]
    batch = min(config.batch_size, n)
    chunk = _chunk_size(config.steps)

    @jax.jit
    def run_chunk(params: Any, opt_state: Any, keys: jax.Array) -> Any:
        def step(carry: Any, key: jax.Array) -> Any:
            params, opt_state = carry
            idx = jax.random.permutation(key, n)[:batch] if batch < n else jnp.arange(n)
            loss, grads = jax.value_and_grad(lambda p: _loss(model, p, x_train[idx],
                                                             y_train[idx]))(params)
            # optax mixes Python floats with its int32 step count (Adam's bias correction),
            # which strict dtype promotion rejects: allow standard promotion inside optax.
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), keys)
        return params, opt_state, losses

    def train(params: Any, progress: Any = None) -> tuple[Any, np.ndarray]:
        keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 1), config.steps)
        opt_state = opt.init(params)
        losses = []
        for start in range(0, config.steps, chunk):
            params, opt_state, chunk_losses = run_chunk(params, opt_state,
                                                        keys[start:start + chunk])
            losses.append(np.asarray(chunk_losses, np.float64))  # waits for the chunk
            if progress is not None:
                progress.update(chunk)
        return params, np.concatenate(losses)

    return train


# --------------------------------------------------------------------------------------
# The comparison.


@dataclasses.dataclass(frozen=True)
class SchemeResult:
    """What :func:`compare` measured for one scheme (layers are the hidden layers).

    Attributes:
      name, summary: the scheme.
      activation_std: std of each hidden layer's activation (after the nonlinearity).
      gradient_std: std of the gradient w.r.t. each hidden layer's pre-activation, for
        a unit Gaussian cotangent at the logits (the backward gain).
      jacobian: singular values of d(last hidden activation)/d(input) on a few examples:
        ``mean_sq`` (mean of s^2), ``spread`` (std(s^2)/mean(s^2), 0 for an isometry),
        ``max`` and ``min``.
      loss_curve: the training loss of every step's batch.
      train_loss: the final loss on the whole training set.
      train_accuracy, test_accuracy: final accuracies.
      seconds: wall time of the measurement and training.
    """

    name: str
    summary: str
    activation_std: tuple[float, ...]
    gradient_std: tuple[float, ...]
    jacobian: Mapping[str, float]
    loss_curve: tuple[float, ...]
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float

    def at(self, values: Sequence[float]) -> tuple[float, float, float]:
        """``values`` at the first, middle and last hidden layer."""
        return values[0], values[(len(values) - 1) // 2], values[-1]

    @property
    def trained(self) -> bool:
        return math.isfinite(self.train_loss)


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """The scheme :func:`compare` recommends, and why (``str()`` is one line)."""

    scheme: str | None
    criterion: str
    tied: tuple[str, ...]
    text: str

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass(frozen=True)
class CompareResult:
    """The results of :func:`compare`: ``str()`` is the table, ``to_json()`` the numbers."""

    config: CompareConfig
    results: tuple[SchemeResult, ...]
    recommendation: Recommendation

    def table(self) -> str:
        c = self.config
        mid = (c.depth - 1) // 2 + 1
        head = (f"{'scheme':<14}{'act std':>28}{'grad std':>29}{'J s^2':>11}{'J spread':>10}"
                f"{'loss':>10}{'train':>8}{'test':>8}")
        sub = (f"{'':<14}" + f"{'l=1':>10}{f'l={mid}':>9}{f'l={c.depth}':>9}" * 2
               + f"{'mean':>11}{'std/mean':>10}{f'@{c.steps}':>10}{'acc':>8}{'acc':>8}")
        rows = [head, sub, "-" * len(head)]

        def num(v: float, width: int) -> str:
            return f"{v:>{width}.2e}" if math.isfinite(v) else f"{'nan':>{width}}"

        for r in self.results:
            a, g = r.at(r.activation_std), r.at(r.gradient_std)
            rows.append(
                f"{r.name[:13]:<14}{num(a[0], 10)}{num(a[1], 9)}{num(a[2], 9)}"
                f"{num(g[0], 10)}{num(g[1], 9)}{num(g[2], 9)}"
                f"{num(r.jacobian['mean_sq'], 11)}{num(r.jacobian['spread'], 10)}"
                f"{r.train_loss:>10.4f}{r.train_accuracy:>8.1%}{r.test_accuracy:>8.1%}"
            )
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.table()

    def to_json(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:  # JSON has no NaN/inf: write null
            if isinstance(v, float):
                return v if math.isfinite(v) else None
            if isinstance(v, Mapping):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [clean(x) for x in v]
            return v

        return clean({
            "config": dataclasses.asdict(self.config),
            "versions": {"jax": jax.__version__, "backend": jax.default_backend()},
            "schemes": {r.name: dataclasses.asdict(r) for r in self.results},
            "recommendation": dataclasses.asdict(self.recommendation),
        })


def recommend(results: Sequence[SchemeResult], steps: int) -> Recommendation:
    """The scheme with the lowest final training loss (on the whole training set).

    Criterion: trainability, the loss after the same number of steps with everything else
    fixed. Schemes within 10% (plus 1e-3) of the best loss are reported as tied; among
    them the highest test accuracy wins. Diverged runs (non-finite loss) are excluded.

    Example:
      >>> r = [SchemeResult("a", "", (1.0,), (1.0,), {}, (), 2.3, 0.1, 0.1, 0.0),
      ...      SchemeResult("b", "", (1.0,), (1.0,), {}, (), 0.01, 1.0, 0.95, 0.0)]
      >>> recommend(r, 100).scheme
      'b'
    """
    criterion = f"lowest training loss after {steps} steps (ties: test accuracy)"
    ok = [r for r in results if r.trained]
    if not ok:
        return Recommendation(None, criterion, (),
                              "Recommendation: none: every run diverged (lower --lr)")
    best_loss = min(r.train_loss for r in ok)
    # 10% relative plus 1e-3 absolute: run-to-run noise of a short run on 1437 examples.
    tied = [r for r in ok if r.train_loss <= 1.1 * best_loss + 1e-3]
    best = max(tied, key=lambda r: (r.test_accuracy, -r.train_loss))
    others = [r.name for r in tied if r is not best]
    text = (f"Recommendation: {best.name} ({best.summary}): training loss "
            f"{best.train_loss:.4f} after {steps} steps, test accuracy {best.test_accuracy:.1%}"
            + (f"; as good: {', '.join(others)}" if others else "")
            + f". Criterion: {criterion}.")
    return Recommendation(best.name, criterion, tuple(others), text)


def init_variables(kernel_init: Any, shapes: Any, key: jax.Array) -> Any:
    """Variables with ``kernel_init`` on every kernel and zero biases, for ``shapes`` (the
    ``jax.eval_shape`` of the model's ``init``): what the model's own ``init`` draws, up
    to the key of each kernel (``fold_in(key, i)`` for the i-th leaf), without tracing the
    model again: one cached initializer call per kernel.

    Example:
      >>> import jax, jaxinit
      >>> shapes = {"params": {"layer0": {"kernel": jax.ShapeDtypeStruct((4, 3), "float32"),
      ...                                 "bias": jax.ShapeDtypeStruct((3,), "float32")}}}
      >>> v = init_variables(jaxinit.he_normal(), shapes, jax.random.key(0))
      >>> v["params"]["layer0"]["kernel"].shape, float(v["params"]["layer0"]["bias"].sum())
      ((4, 3), 0.0)
    """

    def draw(i: int, path: Any, leaf: jax.ShapeDtypeStruct) -> jax.Array:
        if getattr(path[-1], "key", None) == "kernel":
            return kernel_init(jax.random.fold_in(key, i), leaf.shape, leaf.dtype)
        return jnp.zeros(leaf.shape, leaf.dtype)

    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    return jax.tree_util.tree_unflatten(
        treedef, [draw(i, path, leaf) for i, (path, leaf) in enumerate(leaves)]
    )


class _Runner:
    """What every scheme shares: the data, the model (kernel_init plays no part in
    ``apply``), its parameter shapes, and the compiled trainer and evaluator."""

    def __init__(self, config: CompareConfig) -> None:
        self.config = config
        self.data = load_digits(config.test_fraction, config.seed)
        self.model = make_model(config, he_normal())
        self.probe = jnp.asarray(self.data.x_train[: config.probe_batch])
        self.shapes = jax.eval_shape(self.model.init, jax.random.key(0), self.probe[:1])
        self.trainer = make_trainer(config, self.model, self.data)
        data, model = self.data, self.model

        @jax.jit
        def evaluate(params: Any) -> Any:
            def acc(x: np.ndarray, y: np.ndarray) -> jax.Array:
                logits = model.apply({"params": params}, jnp.asarray(x))
                return jnp.mean((jnp.argmax(logits, -1) == jnp.asarray(y)).astype(jnp.float32))

            loss = _loss(model, params, jnp.asarray(data.x_train), jnp.asarray(data.y_train))
            return loss, acc(data.x_train, data.y_train), acc(data.x_test, data.y_test)

        self.evaluate = evaluate

    def variables(self, scheme: Scheme) -> Any:
        """The scheme's initial variables (LSUV-rescaled for ``lsuv``)."""
        from jaxinit._src.lsuv import lsuv

        key = jax.random.key(self.config.seed)
        variables = init_variables(scheme.build(self.config.activation), self.shapes, key)
        if scheme.lsuv:
            variables, _ = lsuv(self.model, self.probe, variables=variables,
                                key=jax.random.fold_in(key, 2))
        return variables

    def train(self, variables: Any, progress: Any = None) -> tuple[np.ndarray, float, float,
                                                                    float]:
        """Trains from ``variables``: (batch losses, final training-set loss, training and
        test accuracy)."""
        params, losses = self.trainer(variables["params"], progress)
        loss, train_acc, test_acc = (float(v) for v in self.evaluate(params))
        return losses, loss, train_acc, test_acc

    def measure(self, scheme: Scheme, progress: Any) -> SchemeResult:
        from jaxinit._src.diagnostics import jacobian_spectrum, signal_stats

        c, model, probe = self.config, self.model, self.probe
        start = time.perf_counter()
        variables = self.variables(scheme)
        report = signal_stats(model, probe, variables=variables)
        hidden = [layer for layer in report.layers if layer.name != "head"]
        acts = tuple(float(v) for v in report.activations_std()[: len(hidden)])
        grads = tuple(float(layer.grad_outputs.std) if layer.grad_outputs else math.nan
                      for layer in hidden)
        spec = jacobian_spectrum(model, probe[: c.jacobian_examples], variables=variables,
                                 apply_kwargs={"hidden": True})
        mean_sq = spec.mean_sq
        jac = {"mean_sq": mean_sq, "spread": spec.std_sq / mean_sq if mean_sq > 0 else math.nan,
               "max": spec.max, "min": spec.min}

        if progress is not None:
            progress.set_description(f"training {scheme.name}")
        losses, loss, train_acc, test_acc = self.train(variables, progress)
        return SchemeResult(
            name=scheme.name, summary=scheme.summary, activation_std=acts, gradient_std=grads,
            jacobian=jac, loss_curve=tuple(float(v) for v in losses), train_loss=loss,
            train_accuracy=train_acc, test_accuracy=test_acc,
            seconds=time.perf_counter() - start,
        )


def compare(config: CompareConfig | None = None, *, progress: bool = False) -> CompareResult:
    """Measures and trains ``config``'s network under each of its schemes.

    Every scheme gets the same parameter key, data split and batch order. The model's
    ``apply`` and the training loop are compiled once and reused for every scheme.

    Args:
      config: the comparison (default: ``CompareConfig()``, the ``make demo`` run).
      progress: show a tqdm progress bar of the training steps on stderr.

    Returns:
      A :class:`CompareResult` (``print(result)`` is the table; ``result.recommendation``).

    Example:
      >>> cfg = CompareConfig(depth=4, width=32, steps=200, schemes=("he", "xavier"))
      >>> result = compare(cfg)  # doctest: +SKIP
      >>> [r.name for r in result.results]  # doctest: +SKIP
      ['he', 'xavier']
      >>> print(result)  # doctest: +SKIP
      >>> print(result.recommendation)  # doctest: +SKIP

    (Skipped in the doctests to save ~15 s of compilation; ``tests/test_compare.py`` runs
    it.)
    """
    config = (config or CompareConfig()).validate()
    _require()
    runner = _Runner(config)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps * len(config.schemes), unit="step", file=sys.stderr,
                   leave=False)
    try:
        results = tuple(runner.measure(SCHEMES[name], bar) for name in config.schemes)
    finally:
        if bar is not None:
            bar.close()
    return CompareResult(config, results, recommend(results, config.steps))


# --------------------------------------------------------------------------------------
# Output files.


def write_json(result: CompareResult, path: pathlib.Path) -> pathlib.Path:
    """Writes ``result.to_json()`` (NaN/inf as null) to ``path``."""
    path.write_text(json.dumps(result.to_json(), indent=1, allow_nan=False) + "\n")
    return path


def _moving_average(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of the last ``n`` values (fewer at the start)."""
    c = np.cumsum(np.insert(x, 0, 0.0))
    i = np.arange(1, x.size + 1)
    lo = np.maximum(i - n, 0)
    return (c[i] - c[lo]) / (i - lo)


def write_plots(result: CompareResult, out: pathlib.Path) -> list[pathlib.Path]:
    """Writes ``signal_std.png`` (activation and gradient std vs depth) and
    ``loss_curves.png`` into ``out`` with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = result.config
    title = (f"{c.arch.upper()}, {c.depth} x {c.width}, {c.activation}, {c.optimizer} "
             f"lr {c.lr:g}")
    depth = np.arange(1, c.depth + 1)
    fig, (ax_a, ax_g) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in result.results:
        # A std that underflowed to 0 has no place on a log axis: leave a gap.
        acts, grads = np.asarray(r.activation_std), np.asarray(r.gradient_std)
        ax_a.semilogy(depth, np.where(acts > 0, acts, np.nan), label=r.name)
        ax_g.semilogy(depth, np.where(grads > 0, grads, np.nan), label=r.name)
    ax_a.set(title="activation std at initialization", xlabel="hidden layer", ylabel="std")
    ax_g.set(title="gradient std (unit cotangent at the logits)", xlabel="hidden layer")
    ax_a.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    signal = out / "signal_std.png"
    fig.savefig(signal, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in result.results:
        curve = _moving_average(np.asarray(r.loss_curve), 10)
        ax.plot(np.arange(1, curve.size + 1), curve, label=r.name, lw=1.2)
    ax.axhline(math.log(10), color="gray", ls=":", lw=1, label="ln 10 (chance)")
    ax.set_yscale("log")
    ax.set(title=f"training loss (batches of {c.batch_size}, mean of 10 steps)\n{title}",
           xlabel="step",
           ylabel="cross-entropy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    losses = out / "loss_curves.png"
    fig.savefig(losses, dpi=110)
    plt.close(fig)
    return [signal, losses]


def run(config: CompareConfig, out: pathlib.Path | None, *, plots: bool = True,
        progress: bool = True, stream: TextIO | None = None) -> CompareResult:
    """The ``compare`` command: compare, print the table and the recommendation, write
    ``results.json`` and the plots into ``out`` (nothing is written if ``out`` is None)."""
    stream = stream or sys.stdout
    c = config.validate()
    print(f"jaxinit compare: {c.arch} with {c.depth} hidden layers of width {c.width}, "
          f"{c.activation}; {c.steps} steps of {c.optimizer} (lr {c.lr:g}, batch "
          f"{c.batch_size}) on scikit-learn digits; backend {jax.default_backend()}",
          file=stream, flush=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    result = compare(c, progress=progress)
    print(result.table(), file=stream)
    print("act std, grad std: at hidden layers 1, middle, last (grad: unit cotangent at "
          "the logits); J: singular values of d(last hidden)/d(input); loss: whole "
          "training set.", file=stream)
    if out is not None:
        written = [write_json(result, out / "results.json")]
        if plots:
            written += write_plots(result, out)
        print("wrote " + ", ".join(str(p) for p in written), file=stream)
    print(result.recommendation, file=stream, flush=True)
    return result
