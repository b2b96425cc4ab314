"""Mamba A_log against the float64 NumPy formula log(1..N) per channel."""

import jax
import numpy as np
import pytest

import jaxinit


@pytest.mark.parametrize("dtype", [np.float32, np.float16, jax.numpy.bfloat16])
def test_mamba_a_log_formula(dtype):
    out = np.asarray(jaxinit.mamba_a_log()(jax.random.key(0), (3, 5), dtype)).astype(np.float64)
    expected = np.tile(np.log([1.0, 2.0, 3.0, 4.0, 5.0]), (3, 1))
    tol = {np.float32: 1e-7, np.float16: 1e-3}.get(dtype, 1e-2)
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)
    assert -np.exp(out[0, 1]) == pytest.approx(-2.0, rel=tol)


def test_mamba_a_log_describe_and_bad_shape():
    assert "log" in str(jaxinit.describe(jaxinit.mamba_a_log(), (2, 4)))
    with pytest.raises(ValueError, match="mamba_a_log"):
        jaxinit.mamba_a_log()(jax.random.key(0), (2, 0))


def test_s4d_lin_formula():
    out = np.asarray(jaxinit.s4d_lin()(jax.random.key(0), (2, 4)))
    assert out.dtype == np.complex64
    expected = np.tile(-0.5 + 1j * np.pi * np.arange(4.0), (2, 1))
    np.testing.assert_allclose(out, expected, rtol=1e-7, atol=1e-7)
