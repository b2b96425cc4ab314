"""Orthogonal, delta-orthogonal, identity, Dirac, sparse and constant initializers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from conftest import make_key
from statcheck import assert_ks

import jaxinit

# Gram-matrix tolerance per dtype: casting an orthonormal float32 matrix rounds each entry
# by at most eps/2 relative, which perturbs Q^T Q by about eps; float32 itself carries the
# QR's backward error, a few hundred ulps for these sizes.
GRAM_ATOL = {
    jnp.float32: 2e-5,
    jnp.float64: 1e-12,
    jnp.complex64: 2e-5,
    jnp.bfloat16: 2 * 2.0**-8,
    jnp.float16: 2 * 2.0**-11,
}
# Full float32 convolutions: GPUs would otherwise use TF32 (10-bit mantissa) by default.
HIGHEST = jax.lax.Precision.HIGHEST
ORTHO_SHAPES = [(128, 128), (256, 64), (64, 256), (3, 3, 32, 64), (5, 40, 24)]


def gram_error(w, column_axis=-1):
    w = np.moveaxis(
        np.asarray(
            w.astype(jnp.complex64 if jnp.iscomplexobj(w) else jnp.float32)
            if w.dtype != jnp.float64
            else w
        ),
        column_axis,
        -1,
    )
    m = w.reshape(-1, w.shape[-1]).astype(np.complex128)
    rows, cols = m.shape
    g = m.conj().T @ m if rows >= cols else m @ m.conj().T
    return np.abs(g - np.eye(min(rows, cols))).max()


@pytest.mark.parametrize("dtype", list(GRAM_ATOL), ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("shape", ORTHO_SHAPES, ids=str)
def test_orthogonal_gram_is_identity(shape, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        w = jaxinit.orthogonal()(make_key(0), shape, dtype)
        assert w.shape == shape and w.dtype == dtype
        assert gram_error(w) <= GRAM_ATOL[dtype]


def test_orthogonal_column_axis_and_scale():
    w = jaxinit.orthogonal(scale=2.0, column_axis=0)(make_key(1), (32, 8, 16))
    assert gram_error(w / 2.0, column_axis=0) <= GRAM_ATOL[jnp.float32]


def test_orthogonal_is_haar_distributed():
    """For Haar-random Q in O(n), tr(Q) has mean 0 and variance 1 (Diaconis & Shahshahani);
    QR without the sign fix of R's diagonal is biased. 4000 draws: 5-SE bounds."""
    n, draws = 8, 4000
    keys = jax.random.split(jax.random.key(2), draws)
    q = jax.vmap(lambda k: jaxinit.orthogonal()(k, (n, n)))(keys)
    traces = np.asarray(jnp.trace(q, axis1=1, axis2=2), np.float64)
    assert abs(traces.mean()) < 5 / math.sqrt(draws)
    # Var of the sample variance of tr(Q) ~ (E t^4 - 1)/draws with E t^4 = 3 for n >= 4.
    assert abs(traces.var() - 1) < 5 * math.sqrt(2 / draws)
    # A single entry of a Haar matrix: sqrt(n) q_ij -> approximately N(0,1); exactly, q_11^2
    # ~ Beta(1/2, (n-1)/2). KS against that law.
    assert_ks(np.asarray(q[:, 0, 0], np.float64) ** 2, scipy.stats.beta(0.5, (n - 1) / 2))


def test_orthogonal_low_precision_is_float32_rounded():
    w16 = jaxinit.orthogonal()(make_key(3), (96, 64), jnp.bfloat16)
    w32 = jaxinit.orthogonal()(make_key(3), (96, 64), jnp.float32)
    np.testing.assert_array_equal(
        np.asarray(w16, np.float32), np.asarray(w32.astype(jnp.bfloat16), np.float32)
    )


@pytest.mark.parametrize("shape", [(3, 16, 32), (3, 3, 24, 24), (3, 5, 3, 8, 16)], ids=str)
def test_delta_orthogonal_centre_tap(shape):
    w = np.asarray(jaxinit.delta_orthogonal(scale=1.5)(make_key(4), shape))
    centre = tuple(k // 2 for k in shape[:-2])
    tap = w[centre]
    assert np.abs(tap @ tap.T / 1.5**2 - np.eye(shape[-2])).max() < 2e-5
    rest = w.copy()
    rest[centre] = 0
    assert not rest.any()


@pytest.mark.parametrize(
    ("shape", "centre"),
    [((2, 3, 4), (0,)), ((4, 2, 3, 5), (1, 0)), ((2, 3, 4, 2, 2), (0, 1, 1)), ((3, 3, 4), (1,))],
    ids=str,
)
def test_delta_orthogonal_even_sizes_match_jax(shape, centre):
    """Even spatial sizes: the tap at index (k - 1) // 2, the same values as jax's for a key."""
    key = make_key(7)
    w = np.asarray(jaxinit.delta_orthogonal(1.5)(key, shape))
    np.testing.assert_array_equal(w, jax.nn.initializers.delta_orthogonal(1.5)(key, shape))
    rest = w.copy()
    rest[centre] = 0
    assert not rest.any() and w[centre].any()


def test_delta_orthogonal_conv_is_an_isometry():
    """A circular 3x3 convolution with a delta-orthogonal kernel preserves the norm."""
    w = jaxinit.delta_orthogonal()(make_key(5), (3, 3, 8, 8))
    x = jax.random.normal(make_key(6), (2, 16, 16, 8))
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap")
    y = jax.lax.conv_general_dilated(
        padded, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=HIGHEST
    )
    np.testing.assert_allclose(jnp.linalg.norm(y), jnp.linalg.norm(x), rtol=1e-5)


def test_identity_is_batched_eye():
    w = jaxinit.identity(0.5)(make_key(0), (2, 3, 4))
    np.testing.assert_array_equal(w, np.broadcast_to(0.5 * np.eye(3, 4), (2, 3, 4)))


@pytest.mark.parametrize("kernel", [(3,), (3, 3), (3, 3, 3), (4, 4)], ids=str)
def test_dirac_copies_the_input(kernel):
    """Flax's SAME convolution (lax.conv_general_dilated, HWIO) with a Dirac kernel is the
    identity: checked by running the convolution, not by reading the kernel."""
    channels = 6
    w = jaxinit.dirac()(make_key(0), (*kernel, channels, channels))
    spatial = "DHW"[-len(kernel) :]
    x = jax.random.normal(make_key(1), (2, *(9,) * len(kernel), channels))
    dn = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
    y = jax.lax.conv_general_dilated(
        x, w, (1,) * len(kernel), "SAME", dimension_numbers=dn, precision=HIGHEST
    )
    np.testing.assert_allclose(y, x, atol=1e-6)


def test_dirac_groups():
    """Grouped Dirac: with groups=2, in=3 per group and 6 outputs, both groups copy."""
    w = np.asarray(jaxinit.dirac(groups=2)(make_key(0), (3, 3, 3, 6)))
    centre = w[1, 1]
    expected = np.zeros((3, 6))
    for g in range(2):
        expected[np.arange(3), g * 3 + np.arange(3)] = 1
    np.testing.assert_array_equal(centre, expected)


def test_sparse_exact_zeros_and_normal_values():
    sparsity, std, shape = 0.8, 0.05, (200, 300)
    w = np.asarray(jaxinit.sparse(sparsity, std)(make_key(7), shape), np.float64)
    zeros_per_column = (w == 0).sum(axis=0)
    assert (zeros_per_column == math.ceil(sparsity * 200)).all()
    nonzero = w[w != 0]
    assert_ks(nonzero, scipy.stats.norm(scale=std))
    # The zero pattern is random per column: no two columns share it (probability of a
    # coincidence among 300 columns is below 1e-40).
    patterns = {tuple(np.flatnonzero(col)) for col in (w != 0).T}
    assert len(patterns) == shape[1]


def test_constants():
    key = make_key(0)
    np.testing.assert_array_equal(jaxinit.zeros(key, (2, 3)), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(jaxinit.ones(key, (4,), jnp.int8), np.ones(4, np.int8))
    w = jaxinit.constant(-7.5)(key, (2, 2), jnp.bfloat16)
    assert w.dtype == jnp.bfloat16 and (np.asarray(w, np.float32) == -7.5).all()
    assert jaxinit.constant(1 + 2j)(key, (3,), jnp.complex64).tolist() == [1 + 2j] * 3


# --- method="cholesky_qr2" ---------------------------------------------------------------

FAST = jaxinit.orthogonal(method="cholesky_qr2")
# Each case compiles its own program (CholeskyQR2 and the Householder fallback): a few
# cases cover tall, wide, square, rank-4 and every sampling precision.
FAST_CASES = [
    ((256, 64), jnp.float32),
    ((64, 256), jnp.complex64),
    ((3, 3, 32, 64), jnp.bfloat16),
    ((128, 128), jnp.float64),
]


@pytest.mark.parametrize(("shape", "dtype"), FAST_CASES, ids=str)
def test_cholesky_qr2_gram_is_identity(shape, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        w = FAST(make_key(0), shape, dtype)
        assert w.shape == shape and w.dtype == dtype
        assert gram_error(w) <= GRAM_ATOL[dtype]


@pytest.mark.parametrize("shape", [(1024, 1024), (2048, 256)], ids=str)
def test_cholesky_qr2_orthogonal_at_size_in_float32(shape):
    """Large float32 draws: as orthonormal as Householder QR's, whichever branch ran."""
    w = FAST(make_key(7), shape)
    assert gram_error(w) <= GRAM_ATOL[jnp.float32]


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((96, 96), jnp.float32), ((40, 200), jnp.float32), ((200, 40), jnp.complex64)],
    ids=str,
)
def test_cholesky_qr2_is_the_householder_matrix_up_to_rounding(shape, dtype):
    """The same Gaussian draw and, in exact arithmetic, the same Q (R's diagonal positive
    in both): the two methods differ by float32 rounding only, not by signs or rotations."""
    a = jaxinit.orthogonal()(make_key(8), shape, dtype)
    b = FAST(make_key(8), shape, dtype)
    assert np.abs(np.asarray(a) - np.asarray(b)).max() < 1e-4


def test_cholesky_qr2_is_haar_distributed():
    """The trace and entry tests of test_orthogonal_is_haar_distributed, for the fast method."""
    n, draws = 8, 4000
    keys = jax.random.split(jax.random.key(12), draws)
    q = jax.vmap(lambda k: FAST(k, (n, n)))(keys)
    traces = np.asarray(jnp.trace(q, axis1=1, axis2=2), np.float64)
    assert abs(traces.mean()) < 5 / math.sqrt(draws)
    assert abs(traces.var() - 1) < 5 * math.sqrt(2 / draws)
    assert_ks(np.asarray(q[:, 0, 0], np.float64) ** 2, scipy.stats.beta(0.5, (n - 1) / 2))


def test_cholesky_qr2_flags_ill_conditioned_draws():
    from jaxinit._src.schemes.orthogonal import cholesky_qr2

    z = jax.random.normal(make_key(9), (64, 8))
    nearly_dependent = z.at[:, 1].set(z[:, 0] + 1e-6 * z[:, 1])  # cond ~ 1e6 > 1/sqrt(eps)
    ok = jax.jit(jax.vmap(lambda a: cholesky_qr2(a)[1]))(jnp.stack([z, nearly_dependent]))
    assert ok.tolist() == [True, False]


def test_cholesky_qr2_falls_back_to_householder(monkeypatch):
    """With a tolerance no draw meets, every draw takes the Householder branch, which is
    then exactly the default method's computation."""
    from jaxinit._src.schemes import orthogonal as module

    monkeypatch.setattr(module, "CHOLESKY_QR2_TOLERANCE", -1.0)
    fast = jax.jit(lambda k: FAST(k, (48, 16)))(make_key(10))
    default = jax.jit(lambda k: jaxinit.orthogonal()(k, (48, 16)))(make_key(10))
    np.testing.assert_array_equal(fast, default)
