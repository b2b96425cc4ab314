"""The data of the built-in comparison, offline: scikit-learn's digits (bundled) and,
for the ``gpt`` architecture, the bytes of a text file (default: a source file that
ships with Python)."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np


def require() -> None:
    """ImportError naming what to install when an optional dependency is missing."""
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
    """A train/test split: scikit-learn's digits, standardized with the training set's
    statistics, or the byte windows of :func:`load_text`."""

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


def default_text() -> pathlib.Path:
    """The default corpus of ``--arch gpt``: the source of Python's ``argparse`` module
    (about 100 kB of English and Python; it ships with every Python)."""
    import argparse

    return pathlib.Path(argparse.__file__)


SEQ_LEN = 32


def load_text(path: pathlib.Path | str | None = None, test_fraction: float = 0.2,
              seed: int = 0, seq_len: int = SEQ_LEN) -> Digits:
    """Next-byte prediction on a text file: windows of ``seq_len + 1`` bytes at stride
    ``seq_len``; ``x`` the first ``seq_len`` bytes (int32 tokens in [0, 256)), ``y`` the
    same shifted by one. The windows are split at random (``seed``).

    Example:
      >>> d = load_text()
      >>> d.x_train.shape[1:], d.y_train.dtype, int(d.x_train.max()) < 256
      ((32,), dtype('int32'), True)
    """
    data = np.frombuffer(pathlib.Path(path or default_text()).read_bytes(), np.uint8)
    n = (data.size - 1) // seq_len
    if n < 2:
        raise ValueError(f"--text={str(path)!r}: {data.size} bytes; expected at least "
                         f"{2 * seq_len + 1} bytes ({seq_len}-byte windows)")
    starts = np.arange(n) * seq_len
    windows = data[starts[:, None] + np.arange(seq_len + 1)].astype(np.int32)
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(test_fraction * n))
    test, train = order[:n_test], order[n_test:]
    x, y = windows[:, :-1], windows[:, 1:]
    return Digits(x[train], y[train], x[test], y[test])
