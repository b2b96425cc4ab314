"""`jaxinit compare --model ... --data ...`: the user's model through
:func:`jaxinit.compare_model` (all schemes in one call, one compiled training program;
its ``on_result`` hands over each scheme as it finishes, so an interrupted run keeps
them, and its ``progress`` moves the bar), plus each scheme's signal through depth at
initialization (:func:`jaxinit.diagnostics.signal_stats` on the re-drawn parameters of
the first seed)."""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
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
    from jaxinit._src.compare.cli_load import load_object
    from jaxinit._src.diagnose.probe import is_equinox

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
    from jaxinit._src.compare.cli_load import load_object

    try:
        fn = load_object(spec, "--data")
    except ValueError as e:
        raise UserInputError(str(e)) from e
    return _call(spec, "--data", fn)


def load_loss(spec: str) -> Callable[..., Any]:
    """The user's ``loss(apply, batch)``, wrapped to refuse a non-scalar value (at trace
    time, naming ``--loss``) instead of failing deep inside ``jax.grad``."""
    from jaxinit._src.compare.cli_load import load_object

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


# compare_model's messages start with the parameter at fault; the CLI has no --test, so
# a missing test split is the data's.
_ARGUMENT = {"data": "--data", "test": "--data", "model": "--model", "loss": "--loss",
             "batch_size": "--batch-size"}


def as_user_error(e: Exception, config: CompareConfig) -> UserInputError:
    """A ``compare_model: data ...`` error as one naming the command-line argument."""
    if isinstance(e, UserInputError):
        return e
    text = str(e).removeprefix("compare_model: ")
    head = text.split(" ", 1)[0].split("=", 1)[0]
    option = _ARGUMENT.get(head, "--model")
    spec = getattr(config, option[2:].replace("-", "_"))
    return UserInputError(f"{option}={spec!r}: {text}")


def _signal(model: Any, x: Any, rules: Any, key: jax.Array, seeds: int, batch: int
            ) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    """Per layer, activation std and gradient std (unit Gaussian cotangent at the output,
    as for the built-in architectures) at the scheme's init, for the parameters of
    compare_model's first seed (``split(key, seeds)[0]``), on ``batch`` examples."""
    from jaxinit._src.compose.tree import reinit
    from jaxinit._src.diagnose import probe
    from jaxinit._src.diagnose.at_init import _build
    from jaxinit._src.diagnose.diagnostics import signal_stats

    if x is None:  # a batch function or iterable: no array to probe
        return (), (), ()
    x = jax.numpy.asarray(x)[:batch]
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


def prepare(config: CompareConfig) -> Callable[[Any, Callable[[SchemeRuns], None]], None]:
    """Loads the user's model, data and loss, then returns ``run(progress, done)``, which
    trains every scheme (bad data or a bad loss raise :class:`UserInputError`, naming
    the argument, before the first step) and calls ``done(runs)`` as each finishes.
    """
    from jaxinit._src.compare.api import compare_model, default_rules
    from jaxinit._src.compare.train import make_optimizer

    assert config.model is not None and config.data is not None
    model = load_model(config.model)
    data = load_data(config.data)
    loss = None if config.loss is None else load_loss(config.loss)
    key = jax.random.key(config.seed)
    inits = {name: SCHEMES[name].build("linear") for name in config.schemes}

    def run(progress: Any, done: Callable[[SchemeRuns], None]) -> None:
        start = time.perf_counter()
        ticks: dict[str, int] = {}

        def tick(scheme: str, seeds: int, steps_done: int) -> None:
            if progress is not None:
                progress.set_description(f"{scheme} ({seeds} seeds at once)")
                progress.update(seeds * (steps_done - ticks.get(scheme, 0)))
            ticks[scheme] = steps_done

        def finished(name: str, partial: Any) -> None:
            nonlocal start
            x = data[0] if isinstance(data, tuple | list) else None
            layers, acts, grads = _signal(model, x, lambda t, i=inits[name]:
                                          default_rules(t, i), key, config.seeds,
                                          config.probe_batch)
            done(SchemeRuns(
                name=name, summary=SCHEMES[name].summary, curves=partial.curves[name],
                finals={m: np.asarray(v) for m, v in partial.finals[name].items()},
                diverged=partial.diverged[name], layers=layers, activation_std=acts,
                gradient_std=grads, seconds=time.perf_counter() - start,
            ))
            start = time.perf_counter()

        n = _examples(data)
        try:
            compare_model(
                model, data, loss, schemes=inits, seeds=config.seeds, steps=config.steps,
                optimizer=make_optimizer(config), metric=config.metric,
                batch_size=None if n is None else min(config.batch_size, n), key=key,
                on_result=finished, progress=tick,
            )
        except UserInputError:
            raise
        except (ValueError, TypeError) as e:
            raise as_user_error(e, config) from e

    return run


def _examples(data: Any) -> int | None:
    """The number of training examples of ``(x_train, y_train, x_test, y_test)`` or
    ``(x, y)`` arrays (less the fifth compare_model holds out), else None."""
    if not isinstance(data, tuple | list) or len(data) not in (2, 4):
        return None
    shape = getattr(data[0], "shape", None)
    if not shape:
        return None
    n = int(shape[0])
    return n if len(data) == 4 else n - n // 5
