"""The configuration of `jaxinit compare`: validated once, at construction.

Each field carries its command-line help in its metadata; :func:`add_arguments` builds
the ``argparse`` options from the fields, so the command line and the configuration
cannot drift apart, and :func:`from_args` turns parsed options back into a config (whose
construction is the one validation).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pathlib
from typing import Any

from jaxinit._src.compare.schemes import (
    ARCHS,
    CLI_ACTIVATIONS,
    DEFAULT_SCHEMES,
    OPTIMIZERS,
    SCHEMES,
)


def _metrics() -> dict[str, bool]:
    # Imported when used: compare_user imports this package's scheme table.
    from jaxinit._src.compare.api import METRICS

    return METRICS


def _option(group: str, help: str, *, cli_type: Any = None, choices: Any = None,
            metavar: str | None = None) -> dict[str, Any]:
    return {"group": group, "help": help, "type": cli_type, "choices": choices,
            "metavar": metavar}


def _scheme_list(text: str) -> tuple[str, ...]:
    """``"he, xavier"`` -> ``("he", "xavier")`` (validated by the config)."""
    return tuple(s.strip() for s in text.split(",") if s.strip())


NET = "network (built-in architectures)"
USER = "your own model (instead of --arch)"
TRAIN = "training"
MEASURE = "measurements at initialization"


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """Everything a comparison depends on; the defaults are ``make demo``'s run.

    Construction validates every field (ValueError naming the option as on the command
    line, ``--batch-size=0: expected a positive integer``).

    Attributes:
      arch: "mlp" (``depth`` hidden Dense layers), "cnn" (``depth`` 3x3 conv layers,
        'SAME' padding, on the 8x8 images), "resnet" (a 3x3 stem conv, then ``depth``
        pre-activation residual blocks x + conv(act(conv(act(x)))), no normalization,
        global mean pooling), "vit" (``depth`` transformer blocks on 2x2
        patches) or "gpt" (``depth`` causal blocks, next-byte prediction on ``text``).
      depth: number of hidden layers.
      width: units (mlp), channels (cnn, resnet) or model width (vit, gpt).
      activation: a name from :data:`CLI_ACTIVATIONS`.
      text: for ``gpt``, the text file whose bytes are the tokens (None: the default).
      model, data, loss: ``pkg.mod:name`` or ``path/file.py:name`` specs of the user's
        model (factory), zero-argument data function and loss (instead of ``arch``).
      schemes: the schemes to compare (names of :data:`SCHEMES`).
      seeds: seeds per scheme (seed i uses the same keys for every scheme).
      metric: the ranking metric: test_accuracy, train_loss or test_loss.
      steps: training steps per seed.
      optimizer: "sgd" (with ``momentum``) or "adam".
      lr: learning rate.
      momentum: SGD momentum (ignored by Adam).
      batch_size: training batch size.
      seed: the first seed (seeds are ``seed, seed + 1, ...``); also the data split.
      test_fraction: fraction of the digits held out for the test metrics.
      probe_batch: examples used by the signal statistics and by LSUV.
      jacobian_examples: examples whose input-output Jacobian spectrum is pooled.
    """

    arch: str = dataclasses.field(default="mlp", metadata=_option(
        NET, "mlp: DEPTH Dense layers of WIDTH units; cnn: DEPTH 3x3 conv layers of WIDTH "
        "channels on the 8x8 images; resnet: a stem conv and DEPTH residual blocks of two "
        "3x3 convs (no normalization); vit: DEPTH transformer blocks of width WIDTH on 2x2 "
        "patches of the images; gpt: DEPTH causal transformer blocks predicting the next "
        "byte of --text (default: %(default)s)", choices=ARCHS))
    depth: int = dataclasses.field(default=30, metadata=_option(
        NET, "number of hidden layers (default: %(default)s)", cli_type=int))
    width: int = dataclasses.field(default=64, metadata=_option(
        NET, "units (mlp), channels (cnn, resnet) or model width (vit, gpt) per hidden layer "
        "(default: %(default)s)",
        cli_type=int))
    activation: str = dataclasses.field(default="relu", metadata=_option(
        NET, f"activation after every hidden layer, one of {', '.join(CLI_ACTIVATIONS)} "
        "(default: %(default)s)", metavar="NAME"))
    text: str | None = dataclasses.field(default=None, metadata=_option(
        NET, "gpt: the text file to train on (default: the source of Python's argparse "
        "module, which ships with Python)", metavar="FILE"))
    model: str | None = dataclasses.field(default=None, metadata=_option(
        USER, "pkg.module:factory or path/to/file.py:factory: a linen/nnx/Equinox module, "
        "a factory make(rngs) -> nnx.Module, or a zero-argument function returning a "
        "module", metavar="MOD:NAME"))
    data: str | None = dataclasses.field(default=None, metadata=_option(
        USER, "a zero-argument function returning (x_train, y_train, x_test, y_test) "
        "arrays, integer labels of shape (n,); required with --model", metavar="MOD:FN"))
    loss: str | None = dataclasses.field(default=None, metadata=_option(
        USER, "loss(apply, (x, y)) -> scalar, apply(x) -> logits (default: softmax "
        "cross-entropy)", metavar="MOD:FN"))
    schemes: tuple[str, ...] = dataclasses.field(default=DEFAULT_SCHEMES, metadata=_option(
        TRAIN, f"comma-separated schemes to compare (default: {','.join(DEFAULT_SCHEMES)}); "
        "see the list below", cli_type=_scheme_list, metavar="A,B,..."))
    seeds: int = dataclasses.field(default=3, metadata=_option(
        TRAIN, "seeds per scheme; seed i draws the same keys for every scheme, and a "
        "winner is named only when Welch's t-test over the seeds gives p < 0.05 "
        "(default: %(default)s)", cli_type=int))
    metric: str = dataclasses.field(default="test_accuracy", metadata=_option(
        TRAIN, "ranking metric after the last step: test_accuracy (higher is better), "
        "train_loss or test_loss (default: %(default)s)", metavar="NAME"))
    steps: int = dataclasses.field(default=1000, metadata=_option(
        TRAIN, "optimizer steps per seed (default: %(default)s)", cli_type=int))
    optimizer: str = dataclasses.field(default="sgd", metadata=_option(
        TRAIN, "optax optimizer; sgd uses --momentum (default: %(default)s)",
        choices=OPTIMIZERS))
    lr: float = dataclasses.field(default=1e-3, metadata=_option(
        TRAIN, "learning rate (default: %(default)s)", cli_type=float))
    momentum: float = dataclasses.field(default=0.9, metadata=_option(
        TRAIN, "SGD momentum in [0, 1), ignored by adam (default: %(default)s)",
        cli_type=float))
    batch_size: int = dataclasses.field(default=128, metadata=_option(
        TRAIN, "examples per step (default: %(default)s)", cli_type=int))
    seed: int = dataclasses.field(default=0, metadata=_option(
        TRAIN, "the first seed (seeds are SEED, SEED+1, ...) and the seed of the digits' "
        "train/test split (default: %(default)s)", cli_type=int))
    test_fraction: float = dataclasses.field(default=0.2, metadata=_option(
        TRAIN, "fraction of the digits held out for the test metrics (default: "
        "%(default)s)", cli_type=float))
    probe_batch: int = dataclasses.field(default=256, metadata=_option(
        MEASURE, "training examples for the signal statistics and LSUV (default: "
        "%(default)s)", cli_type=int))
    jacobian_examples: int = dataclasses.field(default=4, metadata=_option(
        MEASURE, "examples whose Jacobian singular values are pooled (built-in "
        "architectures; default: %(default)s)", cli_type=int))

    def __post_init__(self) -> None:
        def fail(option: str, value: Any, expected: str) -> None:
            raise ValueError(f"--{option.replace('_', '-')}={value!r}: expected {expected}")

        if not isinstance(self.schemes, tuple) and isinstance(self.schemes, list):
            object.__setattr__(self, "schemes", tuple(self.schemes))
        if self.arch not in ARCHS:
            fail("arch", self.arch, f"one of {', '.join(ARCHS)}")
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", self.optimizer, f"one of {', '.join(OPTIMIZERS)}")
        if self.activation not in CLI_ACTIVATIONS:
            fail("activation", self.activation, f"one of {', '.join(CLI_ACTIVATIONS)}")
        if self.metric not in _metrics():
            fail("metric", self.metric, f"one of {', '.join(_metrics())}")
        for option in ("depth", "width", "seeds", "steps", "batch_size", "probe_batch",
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
        if not isinstance(self.schemes, tuple) or not self.schemes:
            fail("schemes", self.schemes, "at least one scheme")
        unknown = [s for s in self.schemes if s not in SCHEMES]
        if unknown:
            fail("schemes", ",".join(self.schemes),
                 f"names from {', '.join(SCHEMES)} (unknown: {', '.join(unknown)})")
        if len(set(self.schemes)) != len(self.schemes):
            fail("schemes", ",".join(self.schemes), "each scheme at most once")
        for option in ("model", "data", "loss"):
            value = getattr(self, option)
            if value is not None and (not isinstance(value, str) or ":" not in value):
                fail(option, value, "'pkg.module:name' or 'path/to/file.py:name'")
        if (self.model is None) != (self.data is None):
            fail("data" if self.data is None else "model",
                 self.data if self.data is not None else self.model,
                 "--model and --data together (your model on your data)")
        if self.model is None and self.loss is not None:
            fail("loss", self.loss, "--model and --data with it (a loss for your model)")
        if self.text is not None:
            if self.arch != "gpt":
                fail("text", self.text, "--arch gpt with it (the corpus of the gpt)")
            if not pathlib.Path(self.text).is_file():
                fail("text", self.text, "an existing text file")
        if self.model is not None:
            lsuv = [s for s in self.schemes if SCHEMES[s].lsuv]
            if lsuv:
                fail("schemes", ",".join(self.schemes),
                     "no lsuv with --model (it rescales the built-in architectures only)")

    @property
    def user_model(self) -> bool:
        """Whether this compares the user's ``model`` rather than a built-in ``arch``."""
        return self.model is not None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one option per :class:`CompareConfig` field (``batch_size`` ->
    ``--batch-size``), grouped, with the field's default and help."""
    groups: dict[str, Any] = {}
    defaults = CompareConfig()
    for f in dataclasses.fields(CompareConfig):
        meta = f.metadata
        group = groups.get(meta["group"])
        if group is None:
            group = groups[meta["group"]] = parser.add_argument_group(meta["group"])
        kwargs: dict[str, Any] = {"default": getattr(defaults, f.name), "help": meta["help"]}
        for k in ("type", "choices", "metavar"):
            if meta[k] is not None:
                kwargs[k] = meta[k]
        group.add_argument("--" + f.name.replace("_", "-"), dest=f.name, **kwargs)


def from_args(args: argparse.Namespace) -> CompareConfig:
    """The config of parsed options (ValueError naming the option on a bad value)."""
    return CompareConfig(**{f.name: getattr(args, f.name)
                            for f in dataclasses.fields(CompareConfig)})
