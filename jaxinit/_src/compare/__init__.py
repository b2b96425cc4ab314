"""`jaxinit compare`: which initialization suits *this* network? Measure, train, compare.

For one architecture (a built-in MLP or small CNN of a given depth, width and
activation on scikit-learn's digits, or the user's own model and data) and a list of
schemes, it measures at initialization the activation and gradient std through depth,
then trains every scheme for ``seeds`` seeds (seed i with the same keys for every
scheme) and ranks the schemes by a metric; a winner is named only when Welch's t-test
over the seeds says so.

The modules, one concern each, import one way: ``schemes`` (the scheme table) <-
``config`` (the options, validated once) <- ``models`` (the built-in architectures) <-
``train`` (the built-in runs, also using ``data`` and ``results``); ``user`` (the user's
model, through :func:`jaxinit.compare_model`) uses ``config``, ``results`` and
``train``'s optimizer; ``output`` (files and the HTML report) uses ``results``; this
module ties them together.

optax, scikit-learn, matplotlib and tqdm are imported lazily, so ``import jaxinit``
never needs them (``pip install 'jaxinit[cli]'``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

import jax

from jaxinit._src.compare.config import CompareConfig, add_arguments, from_args
from jaxinit._src.compare.data import Digits, load_digits, load_text, require
from jaxinit._src.compare.models import make_model
from jaxinit._src.compare.results import CompareResult, SchemeRuns, summarize
from jaxinit._src.compare.schemes import (
    ARCHS,
    CLI_ACTIVATIONS,
    DEFAULT_SCHEMES,
    OPTIMIZERS,
    SCHEMES,
    Scheme,
)
from jaxinit._src.compare.train import Runner, init_variables, make_trainer


def describe(config: CompareConfig) -> str:
    """One line saying what ``config`` compares."""
    c = config
    what = (f"your model {c.model} on {c.data}" if c.user_model else
            f"{c.arch} with {c.depth} hidden layers of width {c.width}, {c.activation}, "
            "on scikit-learn's digits")
    return (f"{what}; {len(c.schemes)} schemes x {c.seeds} seeds x {c.steps} steps of "
            f"{c.optimizer} (lr {c.lr:g}, batch {c.batch_size})")


def prepare(config: CompareConfig) -> Callable[[Any, Callable[[SchemeRuns], None]], None]:
    """Loads what ``config`` compares (ValueError naming the argument on bad input), then
    returns ``run(progress, done)``, which trains every scheme and calls ``done(runs)``
    as each finishes."""
    require()
    if config.user_model:
        from jaxinit._src.compare import user

        return user.prepare(config)
    runner = Runner(config)

    def run(progress: Any, done: Callable[[SchemeRuns], None]) -> None:
        for name in config.schemes:
            done(runner.measure(SCHEMES[name], progress))

    return run


def _summarize(config: CompareConfig, runs: list[SchemeRuns]) -> CompareResult:
    from jaxinit._src.compare.api import METRICS

    settings = {f: getattr(config, f) for f in config.__dataclass_fields__}
    return summarize(describe(config), settings, config.metric, METRICS[config.metric],
                     config.seeds, config.steps, config.schemes, runs)


def compare(config: CompareConfig | None = None, *, progress: bool = False) -> CompareResult:
    """Measures and trains ``config``'s network under each of its schemes and seeds.

    Args:
      config: the comparison (default: ``CompareConfig()``, the ``make demo`` run).
      progress: show a tqdm progress bar (schemes x seeds x steps, with ETA) on stderr.

    Returns:
      A :class:`CompareResult` (``print(result)`` is the table and the verdict).

    Example:
      >>> cfg = CompareConfig(depth=4, width=32, steps=200, schemes=("he", "xavier"))
      >>> result = compare(cfg)  # doctest: +SKIP
      >>> [r.name for r in result.runs]  # doctest: +SKIP
      ['he', 'xavier']
      >>> print(result)  # doctest: +SKIP

    (Skipped in the doctests to save compilation time; ``tests/test_compare.py`` runs it.)
    """
    config = config or CompareConfig()
    run_all = prepare(config)
    runs: list[SchemeRuns] = []
    with _bar(config, progress) as bar:
        run_all(bar, runs.append)
    return _summarize(config, runs)


class _bar:
    """A tqdm bar over schemes x seeds x steps on stderr, opened at its first use (so
    that an error before training leaves stderr to the error), or None."""

    def __init__(self, config: CompareConfig, enabled: bool) -> None:
        self.config, self.enabled, self.bar = config, enabled, None

    def _open(self) -> Any:
        if self.bar is None:
            from tqdm.auto import tqdm

            c = self.config
            self.bar = tqdm(total=len(c.schemes) * c.seeds * c.steps, unit="step",
                            file=sys.stderr, leave=False)
        return self.bar

    def update(self, n: int) -> None:
        self._open().update(n)

    def set_description(self, text: str) -> None:
        self._open().set_description(text)

    def __enter__(self) -> Any:
        return self if self.enabled else None

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()


def run(config: CompareConfig, out: Any, *, plots: bool = True, progress: bool = True,
        stream: TextIO | None = None) -> tuple[CompareResult, bool]:
    """The ``compare`` command: compare, print the table and the verdict, write
    ``results.json``, the plots and ``report.html`` into ``out`` (nothing if None).

    On Ctrl-C (KeyboardInterrupt) the schemes that finished are printed and written.
    Returns ``(result, interrupted)``; bad user input raises ``ValueError`` naming the
    argument, before anything is written.
    """
    from jaxinit._src.compare import output

    stream = stream or sys.stdout
    print(f"jaxinit compare: {describe(config)}; backend {jax.default_backend()}",
          file=stream, flush=True)
    run_all = prepare(config)
    runs: list[SchemeRuns] = []
    interrupted = False

    def done(r: SchemeRuns) -> None:
        runs.append(r)
        print(f"finished {r.name} ({len(runs)}/{len(config.schemes)}, {r.seconds:.1f} s)",
              file=sys.stderr, flush=True)

    with _bar(config, progress) as bar:
        try:
            run_all(bar, done)
        except KeyboardInterrupt:
            interrupted = True
    result = _summarize(config, runs)
    print(result.table(), file=stream)
    if result.runs and result.runs[0].jacobian:
        print("act std, grad std: at layers 1, middle, last at initialization (grad: unit "
              "cotangent at the logits); loss: whole training set.", file=stream)
    if out is not None and (runs or not interrupted):
        written = output.write(result, out, plots=plots)
        print("wrote " + ", ".join(str(p) for p in written), file=stream)
    print(result.verdict_line(), file=stream, flush=True)
    return result, interrupted


__all__ = [
    "ARCHS", "CLI_ACTIVATIONS", "DEFAULT_SCHEMES", "OPTIMIZERS", "SCHEMES", "CompareConfig",
    "CompareResult", "Digits", "Scheme", "SchemeRuns", "add_arguments", "compare",
    "describe", "from_args", "init_variables", "prepare", "load_digits", "load_text", "make_model",
    "make_trainer", "run",
]
