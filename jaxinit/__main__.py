"""The ``jaxinit`` command line (``python -m jaxinit`` or the ``jaxinit`` script).

``jaxinit compare`` answers "which initialization for my network?" by measurement: for
a built-in MLP, CNN, ViT or GPT, or the user's own model and data, and for each scheme, it
measures the signal at initialization and trains for several seeds, prints a table and
a significance verdict, and writes plots, a JSON file and an HTML report. ``jaxinit diagnose``
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
Which initialization suits this network? For a built-in MLP, small CNN or ViT of the
chosen depth, width and activation on scikit-learn's digits (bundled, offline), a small
GPT on the bytes of a text file, or your own model and data (--model, --data), and for
each scheme: measure at initialization the
activation and gradient std at every layer, then train for --seeds seeds (seed i with the
same keys for every scheme) with everything but the scheme fixed. Prints a table of mean
+- std over the seeds and a verdict: a winner only when Welch's t-test between the two
best schemes gives p < 0.05, else "no clear winner among A, B". Writes results.json,
loss_curves.png (seed bands), signal_std.png and a self-contained report.html into --out.
Ctrl-C stops early and writes the schemes that finished (exit status 130).
"""

_EPILOG = """\
schemes:
{schemes}

examples:
  jaxinit compare --activation tanh --depth 50 --schemes xavier,lecun,orthogonal --steps 500
  jaxinit compare --model my_models.py:make_mlp --data my_data:digits --schemes he,xavier

exit status: 0 done, 2 bad input (one line on stderr naming the argument; nothing
written), 130 interrupted (the finished schemes written).
"""


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
    cmp.add_arguments(p)
    out = p.add_argument_group("output")
    out.add_argument("--out", type=pathlib.Path, default=pathlib.Path("jaxinit-out"),
                     help="folder for results.json, loss_curves.png, signal_std.png and "
                     "report.html (created if needed; default: %(default)s)")
    out.add_argument("--no-plots", action="store_true", help="do not draw the PNG plots")
    out.add_argument("--no-progress", action="store_true",
                     help="no progress bar (tqdm, on stderr) during training")
    sub.add_parser("diagnose", add_help=False,
                   help="diagnose your own model at initialization (jaxinit diagnose --help)")
    return parser, p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _error(message: str) -> int:
    print(f"jaxinit compare: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status: 0, 2 on bad input (argparse exits
    2 itself on malformed options), 130 when interrupted."""
    parser, _ = build_parser()
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "diagnose":
        return _diagnose_main(argv[1:])
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["compare", *argv]  # `python -m jaxinit [options]`: the compare command
    args = parser.parse_args(argv)
    try:
        config = cmp.from_args(args)
    except ValueError as e:
        return _error(str(e))
    if args.out.exists() and not args.out.is_dir():
        return _error(f"--out={str(args.out)!r}: exists and is not a folder")
    with _compilation_cache() if from_command_line else contextlib.nullcontext():
        try:
            _, interrupted = cmp.run(config, args.out, plots=not args.no_plots,
                                     progress=not args.no_progress)
        except ImportError as e:
            print(f"jaxinit: {e}", file=sys.stderr)
            return 1
        except ValueError as e:  # the user's model, data or loss (naming the argument)
            return _error(str(e).splitlines()[0] if str(e) else type(e).__name__)
    if interrupted:
        print("jaxinit compare: interrupted; wrote the schemes that finished",
              file=sys.stderr)
        return 130
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
    from jaxinit._src.compare.cli_load import load_object

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
    from jaxinit._src.diagnose import probe

    try:
        from flax import linen, nnx
    except ImportError:  # pragma: no cover - flax is an optional extra
        return probe.is_equinox(obj)
    return isinstance(obj, linen.Module | nnx.Module) or probe.is_equinox(obj)


def _diagnose_main(argv: list[str]) -> int:
    """``jaxinit diagnose``: exit 0 on success, 2 (one line on stderr) on bad input."""
    from jaxinit._src.compare.cli_load import load_object
    from jaxinit._src.diagnose.at_init import diagnose

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

    Only for a command-line run (``main()`` without ``argv``): JAX opens its cache once
    per process, so a caller running ``main([...])`` in-process keeps its own settings
    (a deleted cache folder would be written to after the first call).
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
