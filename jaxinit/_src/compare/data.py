"""The data of the built-in comparison: scikit-learn's digits (bundled, offline)."""

from __future__ import annotations

import dataclasses

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
    """scikit-learn's digits, split and standardized with the training set's statistics."""

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
