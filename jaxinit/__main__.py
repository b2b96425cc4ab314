"""The ``jaxinit`` command line (``python -m jaxinit`` or the ``jaxinit`` script).

``jaxinit compare`` answers "which initialization for my network?" by measurement: for
an MLP or a small CNN of the chosen depth, width and activation, and for each scheme, it
measures the signal at initialization and trains on scikit-learn's digits, prints a
table, writes plots and a JSON file, and recommends a scheme. ``jaxinit diagnose``
checks the user's own model at initialization (see ``jaxinit diagnose --help``).
``python -m jaxinit`` without a command runs ``compare`` with its defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import pathlib
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from jaxinit._src import compare as cmp

_DESCRIPTION = """\
Which initialization suits this network? For an MLP or a small CNN of the chosen depth,
width and activation, and for each scheme, measure at initialization the activation and
gradient std at the first, middle and last hidden layer and the spread of the Jacobian's
singular values, then train with optax on scikit-learn's digits (bundled, offline) with
everything but the scheme fixed. Prints a table and a one-line recommendation (the lowest
training loss after --steps steps); writes results.json and PNG plots into --out.
"""

_EPILOG = """\
schemes:
{schemes}

example:
  jaxinit compare --activation tanh --depth 50 --schemes xavier,lecun,orthogonal --steps 500
"""


def _schemes(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of scheme names")
    unknown = [s for s in names if s not in cmp.SCHEMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scheme(s) {', '.join(unknown)}; known: {', '.join(cmp.SCHEMES)}"
        )
    return names


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number > 0")
    return value


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    d = cmp.CompareConfig()
    net = p.add_argument_group("network")
    net.add_argument("--arch", choices=cmp.ARCHS, default=d.arch,
                     help="mlp: DEPTH Dense layers of WIDTH units; cnn: DEPTH 3x3 conv layers "
                     "of WIDTH channels on the 8x8 images; both end in a Dense layer to the "
                     "10 classes (default: %(default)s)")
    net.add_argument("--depth", type=_positive_int, default=d.depth,
                     help="number of hidden layers (default: %(default)s)")
    net.add_argument("--width", type=_positive_int, default=d.width,
                     help="units (mlp) or channels (cnn) per hidden layer (default: %(default)s)")
    net.add_argument("--activation", choices=cmp.CLI_ACTIVATIONS, default=d.activation,
                     metavar="NAME", help="activation after every hidden layer, one of "
                     f"{', '.join(cmp.CLI_ACTIVATIONS)} (default: %(default)s)")
    net.add_argument("--schemes", type=_schemes, default=d.schemes, metavar="A,B,...",
                     help="comma-separated schemes to compare (default: "
                     f"{','.join(d.schemes)}); see the list below")
    tr = p.add_argument_group("training (on scikit-learn's digits, bundled: no download)")
    tr.add_argument("--steps", type=_positive_int, default=d.steps,
                    help="optimizer steps per scheme (default: %(default)s)")
    tr.add_argument("--optimizer", choices=cmp.OPTIMIZERS, default=d.optimizer,
                    help="optax optimizer; sgd uses --momentum (default: %(default)s)")
    tr.add_argument("--lr", type=_positive_float, default=d.lr,
                    help="learning rate (default: %(default)s)")
    tr.add_argument("--momentum", type=float, default=d.momentum,
                    help="SGD momentum in [0, 1), ignored by adam (default: %(default)s)")
    tr.add_argument("--batch-size", type=_positive_int, default=d.batch_size,
                    help="examples per step, drawn without replacement (default: %(default)s)")
    tr.add_argument("--seed", type=int, default=d.seed,
                    help="seed of the parameters, data split and batch order; the same for "
                    "every scheme (default: %(default)s)")
    tr.add_argument("--test-fraction", type=float, default=d.test_fraction,
                    help="fraction of the digits held out for test accuracy "
                    "(default: %(default)s)")
    me = p.add_argument_group("measurements at initialization")
    me.add_argument("--probe-batch", type=_positive_int, default=d.probe_batch,
                    help="training examples for the signal statistics and LSUV "
                    "(default: %(default)s)")
    me.add_argument("--jacobian-examples", type=_positive_int, default=d.jacobian_examples,
                    help="examples whose Jacobian singular values are pooled "
                    "(default: %(default)s)")
    out = p.add_argument_group("output")
    out.add_argument("--out", type=pathlib.Path, default=pathlib.Path("jaxinit-out"),
                     help="folder for results.json, signal_std.png and loss_curves.png "
                     "(created if needed; default: %(default)s)")
    out.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    out.add_argument("--no-progress", action="store_true",
                     help="no progress bar (tqdm, on stderr) during training")


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The parser of the ``jaxinit`` command and that of its ``compare`` subcommand."""
    parser = argparse.ArgumentParser(
        prog="jaxinit", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    scheme_list = "\n".join(f"  {s.name:<14}{s.summary}" for s in cmp.SCHEMES.values())
    p = sub.add_parser(
        "compare", help="compare initialization schemes on your architecture",
        description=_DESCRIPTION, epilog=_EPILOG.format(schemes=scheme_list),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _compare_arguments(p)
    sub.add_parser("diagnose", add_help=False,
                   help="diagnose your own model at initialization (jaxinit diagnose --help)")
    return parser, p


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status (argparse exits 2 on bad options)."""
    parser, compare_parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "diagnose":
        return _diagnose_main(argv[1:])
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["compare", *argv]  # `python -m jaxinit [options]`: the compare command
    args = parser.parse_args(argv)
    config = cmp.CompareConfig(
        arch=args.arch, depth=args.depth, width=args.width, activation=args.activation,
        schemes=args.schemes, steps=args.steps, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, batch_size=args.batch_size, seed=args.seed,
        test_fraction=args.test_fraction, probe_batch=args.probe_batch,
        jacobian_examples=args.jacobian_examples,
    )
    try:
        config.validate()
    except ValueError as e:
        compare_parser.error(str(e))
    if args.out.exists() and not args.out.is_dir():
        compare_parser.error(f"--out={str(args.out)!r}: exists and is not a folder")
    with _compilation_cache():
        try:
            cmp.run(config, args.out, plots=not args.no_plots, progress=not args.no_progress)
        except ImportError as e:
            print(f"jaxinit: {e}", file=sys.stderr)
            return 1
    return 0


_DIAGNOSE_DESCRIPTION = """\
Diagnose your own model at initialization, on one batch: per parameter, the std against
LeCun's sqrt(1/fan_in) and He's sqrt(2/fan_in); per layer, the output and activation std,
the dead and saturated fractions, the gradient and the update-to-weight ratio after one
adam step; the input-output Jacobian spectrum; the loss against chance, log(C); the
residual stream across repeated blocks; and flags (vanishing, exploding, dead, saturated,
loss far from chance) naming the layer and a scheme to try. Prints a table; with --out,
writes diagnosis.json.
"""

_DIAGNOSE_EPILOG = """\
--model names a linen/nnx/Equinox module, a factory make(rngs) -> nnx.Module, or a
zero-argument function returning a module; --data a zero-argument function returning
(x, y) arrays, a callable batch(key, step) or an iterable of batches; --loss a function
loss(apply, batch) -> scalar (default: cross-entropy for integer labels, else MSE).

example:
  jaxinit diagnose --model my_models.py:make_mlp --data my_data:digits --out diag
"""


def _resolve_model(spec: str) -> Any:
    """A module as given, a factory make(rngs) for diagnose, or a zero-argument factory's
    result."""
    from jaxinit._src.cli_load import load_object

    obj = load_object(spec, "--model")
    if isinstance(obj, type) or (callable(obj) and not _is_module(obj)):
        try:
            inspect.signature(obj).bind()
        except TypeError:
            return obj  # takes arguments: diagnose checks it is a factory make(rngs)
        except ValueError:
            return obj
        try:
            return obj()
        except Exception as e:  # the user's factory
            raise ValueError(f"--model={spec!r}: calling it failed: {type(e).__name__}: {e}"
                             ) from e
    return obj


def _is_module(obj: Any) -> bool:
    from jaxinit._src import probe

    try:
        from flax import linen, nnx
    except ImportError:  # pragma: no cover - flax is an optional extra
        return probe.is_equinox(obj)
    return isinstance(obj, linen.Module | nnx.Module) or probe.is_equinox(obj)


def _diagnose_main(argv: list[str]) -> int:
    """``jaxinit diagnose``: exit 0 on success, 2 (one line on stderr) on bad input."""
    from jaxinit._src.cli_load import load_object
    from jaxinit._src.diagnose import diagnose

    p = argparse.ArgumentParser(
        prog="jaxinit diagnose", description=_DIAGNOSE_DESCRIPTION, epilog=_DIAGNOSE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="MOD:NAME",
                   help="pkg.module:name or path/to/file.py:name")
    p.add_argument("--data", required=True, metavar="MOD:FN",
                   help="a zero-argument function returning the data")
    p.add_argument("--loss", metavar="MOD:FN", help="loss(apply, batch) -> scalar")
    p.add_argument("--batch-size", type=_positive_int, default=256,
                   help="examples taken from (x, y) arrays (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the model init and data key (default: %(default)s)")
    p.add_argument("--out", type=pathlib.Path, help="folder for diagnosis.json")
    args = p.parse_args(argv)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        p.error(f"--out={str(args.out)!r}: exists and is not a folder")
    try:
        model = _resolve_model(args.model)
        data_fn = load_object(args.data, "--data")
        if not callable(data_fn):
            raise TypeError(f"--data={args.data!r} is not a zero-argument function")
        try:
            inspect.signature(data_fn).bind()
        except TypeError:
            raise TypeError(f"--data={args.data!r} must take no arguments") from None
        try:
            data = data_fn()
        except Exception as e:  # the user's data function
            raise ValueError(f"--data={args.data!r}: calling it failed: "
                             f"{type(e).__name__}: {e}") from e
        loss = None if args.loss is None else load_object(args.loss, "--loss")
        import jax

        result = diagnose(model, data, loss, batch_size=args.batch_size,
                          key=jax.random.key(args.seed))
    except (ValueError, TypeError) as e:
        print(f"jaxinit diagnose: error: {e}", file=sys.stderr)
        return 2
    print(result)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        target = args.out / "diagnosis.json"
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(result.to_json())
        os.replace(tmp, target)  # never a half-written diagnosis.json
        print(f"wrote {target}")
    return 0


@contextlib.contextmanager
def _compilation_cache() -> Iterator[None]:
    """A throw-away XLA compilation cache for this process, unless one is configured.

    The diagnostics compile one program per call; for every scheme after the first that
    program is identical (same model, same shapes), so a cache keyed by the program text
    turns ~2-5 s of compilation per scheme into a lookup. Deleted on exit.
    """
    import jax

    if getattr(jax.config, "jax_compilation_cache_dir", None):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="jaxinit-xla-") as tmp:
        jax.config.update("jax_compilation_cache_dir", tmp)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        yield


if __name__ == "__main__":
    sys.exit(main())
