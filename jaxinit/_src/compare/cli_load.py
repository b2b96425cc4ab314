"""Resolving the ``module:attribute`` and ``path/file.py:attribute`` specs of the CLI."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pathlib
import sys
from typing import Any


def load_object(spec: str, argument: str) -> Any:
    """The object a ``pkg.mod:name`` or ``path/to/file.py:name`` spec names.

    ``name`` may be dotted (``pkg.mod:Class.factory``). A file is imported as a module of
    its own (registered in ``sys.modules`` under a name derived from its resolved path,
    so dataclasses and pickling-free Flax/Equinox modules defined in it work).

    Args:
      spec: the spec, as typed on the command line.
      argument: the option it came from (``"--model"``), named in every error.

    Returns:
      The object.

    Raises:
      ValueError: naming ``argument``, when the spec has no ``:name``, the file does not
        exist, the module does not import (with the import's own error), or the
        attribute is missing.

    Example:
      >>> from jaxinit._src.compare.cli_load import load_object
      >>> load_object("math:sqrt", "--loss")(9.0)
      3.0
      >>> load_object("math", "--loss")
      Traceback (most recent call last):
      ...
      ValueError: --loss='math': expected 'pkg.module:name' or 'path/to/file.py:name'
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(
            f"{argument}={spec!r}: expected 'pkg.module:name' or 'path/to/file.py:name'"
        )
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise ValueError(
            f"{argument}={spec!r}: expected 'pkg.module:name' or 'path/to/file.py:name'"
        )
    try:
        if where.endswith(".py"):
            module = _import_file(spec, argument, pathlib.Path(where))
        else:
            module = importlib.import_module(where)
    except ValueError:
        raise
    except Exception as e:  # the user's module: any import-time error is reported as such
        raise ValueError(
            f"{argument}={spec!r}: cannot import {where!r}: {type(e).__name__}: {e}"
        ) from e
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{argument}={spec!r}: {where!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _import_file(spec: str, argument: str, path: pathlib.Path) -> Any:
    if not path.is_file():
        raise ValueError(f"{argument}={spec!r}: no such file {str(path)!r}")
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    name = f"_jaxinit_user_{resolved.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"{argument}={spec!r}: {str(path)!r} is not an importable Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
