"""`jaxinit compare --model ... --data ...`: the user's model, through
:func:`jaxinit.compare_model`, one scheme at a time (so an interrupted run keeps the
schemes that finished), plus each scheme's signal through depth at initialization
(:func:`jaxinit.diagnostics.signal_stats` on the re-drawn parameters of the first
seed)."""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from jaxinit._src.compare.config import CompareConfig
from jaxinit._src.compare.results import SchemeRuns
from jaxinit._src.compare.schemes import SCHEMES


class UserInputError(ValueError):
    """Bad user input: the message names the command-line argument (``--data=...``)."""


def _call(spec: str, argument: str, fn: Any) -> Any:
    if not callable(fn):
        raise UserInputError(f"{argument}={spec!r}: {fn!r} is not callable; expected a "
                             "zero-argument function")
    try:
        inspect.signature(fn).bind()
    except TypeError:
        raise UserInputError(f"{argument}={spec!r}: takes arguments; expected a "
                             "zero-argument function") from None
    except ValueError:
        pass  # no signature (a builtin): call it and see
    try:
        return fn()
    except Exception as e:  # the user's function
        raise UserInputError(f"{argument}={spec!r}: calling it failed: "
                             f"{type(e).__name__}: {e}") from e


def load_model(spec: str) -> Any:
    """A module as given, a factory ``make(rngs)`` as given, or a zero-argument factory's
    result."""
    from jaxinit._src.cli_load import load_object
    from jaxinit._src.probe import is_equinox

    try:
        obj = load_object(spec, "--model")
    except ValueError as e:
        raise UserInputError(str(e)) from e
    try:
        from flax import linen, nnx

        is_module = isinstance(obj, linen.Module | nnx.Module) or is_equinox(obj)
    except ImportError:  # pragma: no cover - flax is an optional extra
        is_module = is_equinox(obj)
    if not is_module and callable(obj):
        try:
            inspect.signature(obj).bind()
        except (TypeError, ValueError):
            return obj  # takes arguments: compare_model checks it is a factory make(rngs)
        return _call(spec, "--model", obj)
    return obj


def load_data(spec: str) -> Any:
    """The ``(x_train, y_train, x_test, y_test)`` the zero-argument function returns."""
    from jaxinit._src.cli_load import load_object

    try:
        fn = load_object(spec, "--data")
    except ValueError as e:
        raise UserInputError(str(e)) from e
    return _call(spec, "--data", fn)


def load_loss(spec: str) -> Callable[..., Any]:
    """The user's ``loss(apply, batch)``, wrapped to refuse a non-scalar value (at trace
    time, naming ``--loss``) instead of failing deep inside ``jax.grad``."""
    from jaxinit._src.cli_load import load_object

    try:
        fn = load_object(spec, "--loss")
    except ValueError as e:
        raise UserInputError(str(e)) from e
    if not callable(fn):
        raise UserInputError(f"--loss={spec!r}: {fn!r} is not callable; expected "
                             "loss(apply, (x, y)) -> scalar")

    def loss(apply: Any, batch: Any) -> Any:
        value = fn(apply, batch)
        shape = getattr(value, "shape", None)
        if shape != ():
            raise UserInputError(f"--loss={spec!r}: returned a value of shape {shape}; "
                                 "expected a scalar")
        return value

    return loss


_ARGUMENT = {"data": "--data", "model": "--model", "loss": "--loss",
             "batch_size": "--batch-size", "batch_size=": "--batch-size"}


def as_user_error(e: Exception, config: CompareConfig) -> UserInputError:
    """A ``compare_model: data ...`` error as one naming the command-line argument."""
    if isinstance(e, UserInputError):
        return e
    text = str(e).removeprefix("compare_model: ")
    head = text.split(" ", 1)[0].split("=", 1)[0]
    option = _ARGUMENT.get(head, "--model")
    spec = getattr(config, option[2:].replace("-", "_"))
    return UserInputError(f"{option}={spec!r}: {text}")


def _signal(model: Any, arrays: Any, rules: Any, key: jax.Array, seeds: int, batch: int
            ) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    """Per layer, activation std and gradient std (unit Gaussian cotangent at the output,
    as for the built-in architectures) at the scheme's init, for the parameters of
    compare_model's first seed (``split(key, seeds)[0]``), on ``batch`` examples."""
    from jaxinit._src import probe
    from jaxinit._src.diagnose import _build
    from jaxinit._src.diagnostics import signal_stats
    from jaxinit._src.tree import reinit

    x = arrays[0][:batch]
    built, variables = _build("compare", model, x[:1], None, None, key)
    adapter = probe.adapt("compare", built, variables=variables)
    params = reinit(adapter.trainable, jax.random.split(key, seeds)[0],
                    rules(adapter.trainable))
    rebuilt = adapter.rebuild(params)
    if adapter.kind == "linen":
        report = signal_stats(built, x, variables=rebuilt, key=key)
    else:
        report = signal_stats(rebuilt, x, key=key)
    acts = tuple(float(v) for v in report.activations_std())
    grads = tuple(float(layer.grad_outputs.std) if layer.grad_outputs else math.nan
                  for layer in report.layers)
    return tuple(layer.name for layer in report.layers), acts, grads


def prepare(config: CompareConfig) -> Callable[[Any], Iterator[SchemeRuns]]:
    """Loads and checks the user's model, data and loss (one zero-step trace of the loss
    on a batch), then returns ``runs(progress)``, which yields each scheme's
    :class:`SchemeRuns` as soon as it has trained.

    Raises :class:`UserInputError` (naming the argument) on bad input, before any
    training.
    """
    from jaxinit._src import probe
    from jaxinit._src.compare.train import make_optimizer
    from jaxinit._src.compare_user import _check_data, _rules, compare_model
    from jaxinit._src.diagnose import _build, _default_loss

    assert config.model is not None and config.data is not None
    model = load_model(config.model)
    data = load_data(config.data)
    loss = None if config.loss is None else load_loss(config.loss)
    key = jax.random.key(config.seed)
    try:
        arrays = _check_data(data)
        n = int(arrays[0].shape[0])
        batch = min(config.batch_size, n)
        built, variables = _build("compare_model", model, arrays[0][:1], None, None, key)
        adapter = probe.adapt("compare_model", built, variables=variables)
        objective = _default_loss if loss is None else loss
        jax.eval_shape(lambda p: objective(lambda v: adapter.apply(p, v),
                                           (arrays[0][:batch], arrays[1][:batch])),
                       adapter.trainable)
    except UserInputError:
        raise
    except (ValueError, TypeError) as e:
        raise as_user_error(e, config) from e
    except Exception as e:  # the user's model or loss, traced on the user's data
        raise UserInputError(
            f"--model={config.model!r}: applying it and the loss to a batch of the data "
            f"failed: {type(e).__name__}: {str(e).strip().splitlines()[0]}") from e

    def runs(progress: Any) -> Iterator[SchemeRuns]:
        for name in config.schemes:
            init = SCHEMES[name].build("linear")
            start = time.perf_counter()
            if progress is not None:
                progress.set_description(f"{name} ({config.seeds} seeds at once)")
            try:
                result = compare_model(
                    model, data, loss, schemes={name: init}, seeds=config.seeds,
                    steps=config.steps, optimizer=make_optimizer(config),
                    metric=config.metric, batch_size=batch, key=key,
                )
                layers, acts, grads = _signal(model, arrays, lambda t, i=init: _rules(t, i),
                                              key, config.seeds, config.probe_batch)
            except (ValueError, TypeError) as e:
                raise as_user_error(e, config) from e
            if progress is not None:
                progress.update(config.seeds * config.steps)
            yield SchemeRuns(
                name=name, summary=SCHEMES[name].summary, curves=result.curves[name],
                finals={m: np.asarray(v) for m, v in result.finals[name].items()},
                diverged=result.diverged[name], layers=layers, activation_std=acts,
                gradient_std=grads, seconds=time.perf_counter() - start,
            )

    return runs
