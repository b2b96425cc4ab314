"""The one exception type raised for bad checkpoints and bad loads."""

from __future__ import annotations


class PretrainedError(ValueError):
    """A checkpoint or a load was rejected; the message names the file or key and why.

    A subclass of ``ValueError``, so ``except ValueError`` catches it. Errors raised by
    the format libraries (safetensors, NumPy's zip reader, msgpack, orbax, torch) are
    always wrapped in this type, with the original as ``__cause__``.

    Example:
      >>> import jaxinit
      >>> issubclass(jaxinit.PretrainedError, ValueError)
      True
    """
