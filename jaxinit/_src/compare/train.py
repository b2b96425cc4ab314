"""Training and measuring the built-in architectures on the digits, seed by seed.

Every scheme gets, for seed ``s``, the same parameter key ``key(s)``, the same batch
order ``fold_in(key(s), 1)`` and the same data split (``config.seed``): only the scheme
differs. The model's ``apply`` and the training loop are compiled once and reused for
every scheme and seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.compare.config import CompareConfig
from jaxinit._src.compare.data import Digits, load_digits, load_text
from jaxinit._src.compare.models import make_model
from jaxinit._src.compare.results import SchemeRuns, diverged_at
from jaxinit._src.compare.schemes import Scheme
from jaxinit._src.core.optim import optax_update
from jaxinit._src.schemes.standard import he_normal


def make_optimizer(config: CompareConfig) -> Any:
    """The optax optimizer of ``config``: SGD with ``momentum`` or Adam, at ``lr``."""
    import optax

    if config.optimizer == "sgd":
        return optax.sgd(config.lr, momentum=config.momentum or None)
    return optax.adam(config.lr)


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
    """A function ``train(params, progress, seed) -> (params, losses)`` running
    ``config.steps`` optimizer steps on batches drawn without replacement in the order of
    ``seed``, jitted in chunks of :func:`_chunk_size` steps (a ``lax.scan`` each), so the
    progress bar moves while one compiled program is reused for every scheme and seed.
    """
    import optax

    opt = make_optimizer(config)
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
            updates, opt_state = optax_update(opt, grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), keys)
        return params, opt_state, losses

    def train(params: Any, progress: Any = None, seed: int | None = None
              ) -> tuple[Any, np.ndarray]:
        s = config.seed if seed is None else seed
        keys = jax.random.split(jax.random.fold_in(jax.random.key(s), 1), config.steps)
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


def init_variables(kernel_init: Any, shapes: Any, key: jax.Array) -> Any:
    """Variables with ``kernel_init`` on every kernel and embedding, zero biases, unit
    LayerNorm scales and N(0, 0.02^2) position embeddings, for ``shapes`` (the
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
        name = getattr(path[-1], "key", None)
        k = jax.random.fold_in(key, i)
        if name in ("kernel", "embedding"):
            return kernel_init(k, leaf.shape, leaf.dtype)
        if name == "scale":  # LayerNorm
            return jnp.ones(leaf.shape, leaf.dtype)
        if name == "pos_embedding":  # the transformers' position embedding
            return 0.02 * jax.random.normal(k, leaf.shape, leaf.dtype)
        return jnp.zeros(leaf.shape, leaf.dtype)

    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    return jax.tree_util.tree_unflatten(
        treedef, [draw(i, path, leaf) for i, (path, leaf) in enumerate(leaves)]
    )


class Runner:
    """What every scheme shares: the data, the model (kernel_init plays no part in
    ``apply``), its parameter shapes, and the compiled trainer and evaluator."""

    def __init__(self, config: CompareConfig) -> None:
        self.config = config
        self.data = (load_text(config.text, config.test_fraction, config.seed)
                     if config.arch == "gpt" else
                     load_digits(config.test_fraction, config.seed))
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

            train = _loss(model, params, jnp.asarray(data.x_train), jnp.asarray(data.y_train))
            test = _loss(model, params, jnp.asarray(data.x_test), jnp.asarray(data.y_test))
            return train, acc(data.x_train, data.y_train), acc(data.x_test, data.y_test), test

        self.evaluate = evaluate

    def variables(self, scheme: Scheme, seed: int | None = None) -> Any:
        """The scheme's initial variables for ``seed`` (LSUV-rescaled for ``lsuv``)."""
        from jaxinit._src.diagnose.lsuv import lsuv

        key = jax.random.key(self.config.seed if seed is None else seed)
        variables = init_variables(scheme.build(self.config.activation), self.shapes, key)
        if scheme.lsuv:
            variables, _ = lsuv(self.model, self.probe, variables=variables,
                                key=jax.random.fold_in(key, 2))
        return variables

    def train(self, variables: Any, progress: Any = None, seed: int | None = None
              ) -> tuple[np.ndarray, float, float, float]:
        """Trains from ``variables`` in the batch order of ``seed``: (batch losses, final
        training-set loss, training and test accuracy)."""
        losses, finals = self.train_seed(variables, progress, seed)
        return losses, finals["train_loss"], finals["train_accuracy"], finals["test_accuracy"]

    def train_seed(self, variables: Any, progress: Any, seed: int | None
                   ) -> tuple[np.ndarray, dict[str, float]]:
        params, losses = self.trainer(variables["params"], progress, seed)
        train, train_acc, test_acc, test = (float(v) for v in self.evaluate(params))
        return losses, {"train_loss": train, "test_loss": test, "test_accuracy": test_acc,
                        "train_accuracy": train_acc}

    def signal(self, variables: Any) -> tuple[tuple[str, ...], tuple[float, ...],
                                              tuple[float, ...], dict[str, float]]:
        """Per layer (the head excluded), activation std and gradient std, and the
        Jacobian spectrum of the hidden stack. The gradient is w.r.t. each layer's output
        for a unit Gaussian cotangent at the logits; for ``gpt`` (byte tokens in, which
        :func:`~jaxinit.diagnostics.signal_stats` does not take) it is that of the
        training loss, from :func:`jaxinit.diagnose`, and there is no Jacobian."""
        from jaxinit._src.diagnose.diagnostics import jacobian_spectrum, signal_stats

        if not jnp.issubdtype(self.probe.dtype, jnp.floating):
            from jaxinit._src.diagnose.at_init import diagnose

            y = jnp.asarray(self.data.y_train[: self.config.probe_batch])
            # diagnose's statistics of the token input promote int32 to float32, which
            # strict dtype promotion refuses.
            with jax.numpy_dtype_promotion("standard"):
                d = diagnose(self.model, (self.probe, y), variables=variables,
                             jacobian=False, batch_size=self.probe.shape[0])
            layers = [layer for layer in d.layers if layer.path != "head"]
            return (tuple(layer.path for layer in layers),
                    tuple(float(layer.activation.std) for layer in layers),
                    tuple(float(layer.grad_std) for layer in layers), {})
        report = signal_stats(self.model, self.probe, variables=variables)
        hidden = [layer for layer in report.layers if layer.name != "head"]
        acts = tuple(float(v) for v in report.activations_std()[: len(hidden)])
        grads = tuple(float(layer.grad_outputs.std) if layer.grad_outputs else math.nan
                      for layer in hidden)
        spec = jacobian_spectrum(self.model, self.probe[: self.config.jacobian_examples],
                                 variables=variables, apply_kwargs={"hidden": True})
        mean_sq = spec.mean_sq
        jac = {"mean_sq": mean_sq, "spread": spec.std_sq / mean_sq if mean_sq > 0 else math.nan,
               "max": spec.max, "min": spec.min}
        return tuple(layer.name for layer in hidden), acts, grads, jac

    def measure(self, scheme: Scheme, progress: Any = None) -> SchemeRuns:
        """The scheme at initialization (first seed) and trained for every seed."""
        c = self.config
        start = time.perf_counter()
        curves, finals = [], []
        for i in range(c.seeds):
            variables = self.variables(scheme, c.seed + i)
            if i == 0:
                layers, acts, grads, jac = self.signal(variables)
            if progress is not None:
                progress.set_description(f"{scheme.name} seed {i + 1}/{c.seeds}")
            curve, final = self.train_seed(variables, progress, c.seed + i)
            curves.append(curve)
            finals.append(final)
        return SchemeRuns(
            name=scheme.name, summary=scheme.summary, curves=np.stack(curves),
            finals={m: np.array([f[m] for f in finals]) for m in finals[0]},
            diverged=tuple(diverged_at(cv, f["train_loss"])
                           for cv, f in zip(curves, finals, strict=True)),
            layers=layers, activation_std=acts, gradient_std=grads, jacobian=jac,
            seconds=time.perf_counter() - start,
        )
