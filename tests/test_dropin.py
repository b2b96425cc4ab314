"""Drop-in sweep: zero-size shapes against jax.nn.initializers, and shapes that cannot exist."""

from __future__ import annotations

import itertools
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit
import jaxinit.torch as jt

# Every public name jax.nn.initializers also has, built the same way in both libraries.
FACTORIES = {
    "constant": lambda m: m.constant(0.5),
    "delta_orthogonal": lambda m: m.delta_orthogonal(),
    "glorot_normal": lambda m: m.glorot_normal(),
    "glorot_uniform": lambda m: m.glorot_uniform(),
    "he_normal": lambda m: m.he_normal(),
    "he_uniform": lambda m: m.he_uniform(),
    "kaiming_normal": lambda m: m.kaiming_normal(),
    "kaiming_uniform": lambda m: m.kaiming_uniform(),
    "lecun_normal": lambda m: m.lecun_normal(),
    "lecun_uniform": lambda m: m.lecun_uniform(),
    "normal": lambda m: m.normal(0.3),
    "ones": lambda m: m.ones,
    "orthogonal": lambda m: m.orthogonal(),
    "truncated_normal": lambda m: m.truncated_normal(0.3),
    "uniform": lambda m: m.uniform(0.3),
    "variance_scaling": lambda m: m.variance_scaling(2.0, "fan_avg", "normal"),
    "xavier_normal": lambda m: m.xavier_normal(),
    "xavier_uniform": lambda m: m.xavier_uniform(),
    "zeros": lambda m: m.zeros,
}
EMPTY_SHAPES = [(0,), (0, 0), (0, 2), (2, 0), (3, 0, 4), (0, 3, 4), (3, 2, 0)]


def test_sweep_covers_every_shared_name():
    shared = {n for n in dir(jax.nn.initializers) if not n.startswith("_")} - {"Initializer"}
    assert shared <= set(jaxinit.__all__)
    assert set(FACTORIES) == shared


@pytest.mark.parametrize("shape", EMPTY_SHAPES)
@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_zero_size_shape_gives_empty_array(name, shape, dtype):
    key = jax.random.key(0)
    ours = FACTORIES[name](jaxinit)
    try:
        theirs = FACTORIES[name](jax.nn.initializers)(key, shape, dtype)
    except (ValueError, ZeroDivisionError, IndexError, TypeError, NotImplementedError):
        theirs = None  # jax refuses the shape or dtype (or divides by zero on the shape)
    if theirs is None and len(shape) < ours.min_rank:
        with pytest.raises(ValueError, match=rf"{name}: shape=.* expected rank >= "):
            ours(key, shape, dtype)
        return
    out = ours(key, shape, dtype)
    assert out.shape == shape and out.dtype == dtype and out.size == 0
    if theirs is not None:
        assert (out.shape, out.dtype) == (theirs.shape, theirs.dtype)


def test_zero_size_under_jit_and_negative_dimension():
    out = jax.jit(lambda k: jaxinit.he_normal()(k, (0, 4)))(jax.random.key(0))
    assert out.shape == (0, 4) and out.dtype == jnp.float32
    with pytest.raises(ValueError, match=r"variance_scaling: shape=\(-1, 4\) has a negative"):
        jaxinit.he_normal()(jax.random.key(0), (-1, 4))


@pytest.mark.parametrize(
    ("init", "shape", "dtype"),
    [
        (jaxinit.zeros, (2**62,), jnp.complex64),
        (jaxinit.he_normal(), (2**31, 2**31), jnp.float32),
        (jaxinit.normal(), (2**32, 2**32), jnp.bfloat16),  # 2**64 elements: beyond int64
        (jaxinit.ones, (2**46 + 1,), jnp.float32),  # 4 bytes beyond 256 TiB
    ],
)
def test_impossible_sizes_are_refused_before_xla(init, shape, dtype):
    with pytest.raises(ValueError, match=rf"{init.name}: shape=\({shape[0]},.*expected at most"):
        init(jax.random.key(0), shape, dtype)
    with pytest.raises(ValueError, match="expected at most"):
        jax.jit(lambda k: init(k, shape, dtype))(jax.random.key(0))


@pytest.mark.parametrize(
    "shape", [(2**62, 0, 2**62), (0, 2**64), (2**40, 0, 2**40), (2**62, 0), (0, 2**46)])
def test_empty_shapes_with_impossible_extents_are_refused_before_xla(shape):
    # Found by the initializer fuzzer: XLA multiplies the extents and aborts the process
    # ("overflow in static extent product"), and a dimension beyond int64 fails deep in
    # jax, although the array has no elements.
    with pytest.raises(ValueError, match=r"spectral: shape=.* has no elements but its non-zero"):
        jaxinit.spectral()(jax.random.key(0), shape, jnp.complex64)


def test_largest_allowed_size_is_not_refused_by_the_check():
    # 2**46 float32 elements are exactly 2**48 bytes: allowed by the size rule (not built here).
    jaxinit._src.core.base.check_size("ones", (2**46,), np.dtype(np.float32))


# Largest finite values (the oracle): float16 65504, bfloat16 and float32 about 3.39e38.
# A standard normal draw in float32 reaches at most -Phi^-1(2**-26) = 5.54 (computed in
# float64 here with scipy's inverse normal CDF, independent of the code under test).
Z32 = -float(__import__("scipy.stats", fromlist=["norm"]).norm.ppf(2.0**-26))
HUGE = [
    (lambda: jaxinit.normal(1e39), jnp.float32, "stddev=1e+39"),
    (lambda: jaxinit.normal(65504 / Z32 * 1.01), jnp.float16, "stddev="),
    (lambda: jaxinit.normal(1e38), jnp.bfloat16, "stddev=1e+38"),
    (lambda: jaxinit.uniform(7e4), jnp.float16, "scale=70000.0"),
    (lambda: jaxinit.uniform(4e38), jnp.bfloat16, "scale=4e+38"),
    (lambda: jaxinit.constant(7e4), jnp.float16, "value=70000.0"),
    (lambda: jaxinit.constant(1e39), jnp.float32, "value=1e+39"),
    (lambda: jaxinit.constant(1e39), jnp.bfloat16, "value=1e+39"),
    (lambda: jaxinit.variance_scaling(2e39, "fan_in", "normal"), jnp.float32, "scale=2e+39"),
    (lambda: jaxinit.variance_scaling(1e11, "fan_in", "uniform"), jnp.float16,
     "scale=100000000000.0"),
    (lambda: jaxinit.variance_scaling(2e39, "fan_in", "truncated_normal"), jnp.bfloat16,
     "scale=2e+39"),
    (lambda: jaxinit.truncated_normal(2e38), jnp.float32, "stddev=2e+38"),
    (lambda: jaxinit.constant(1e39 + 1j), jnp.complex64, "value=(1e+39+1j)"),
]


@pytest.mark.parametrize(("make", "dtype", "arg"), HUGE)
def test_values_beyond_the_dtype_are_refused(make, dtype, arg):
    init = make()
    with pytest.raises(ValueError, match=rf"{init.name}: {re.escape(arg)}.* beyond the largest"):
        init(jax.random.key(0), (4, 4), dtype)


@pytest.mark.parametrize(
    ("make", "dtype"),
    [
        (lambda: jaxinit.normal(65504 / Z32 * 0.99), jnp.float16),
        (lambda: jaxinit.uniform(6e4), jnp.float16),
        (lambda: jaxinit.constant(6e4), jnp.float16),
        (lambda: jaxinit.variance_scaling(1e9, "fan_in", "normal"), jnp.float16),
        (lambda: jaxinit.normal(1e37), jnp.float32),
    ],
)
def test_largest_representable_configurations_stay_finite(make, dtype):
    w = make()(jax.random.key(0), (64, 64), dtype)
    assert w.dtype == dtype and bool(jnp.isfinite(w).all()) and bool((w != 0).any())


def test_describe_refuses_an_empty_shape_by_name():
    with pytest.raises(ValueError, match=r"describe: shape=\(0, 4\) has no elements"):
        jaxinit.describe(jaxinit.he_normal(), (0, 4))


# Schemes whose magnitude is set by an argument other than a std: each refused, naming
# the argument, where its largest value passes the dtype's largest finite value (float16
# 65504, float8_e4m3fn 448, float32 3.4e38; pinned, from the IEEE/OCP formats).
OVERFLOWING = [
    (lambda: jaxinit.orthogonal(7e4), (4, 4), jnp.float16, "orthogonal: scale=70000.0"),
    (lambda: jaxinit.orthogonal(1e39), (4, 4), jnp.float32, "orthogonal: scale=1e+39"),
    (lambda: jaxinit.delta_orthogonal(500.0), (3, 4, 4), jnp.float8_e4m3fn,
     "delta_orthogonal: scale=500.0"),
    # spectral: scale * sqrt(fan_out / fan_in) = 3e4 * sqrt(16 / 4) = 6e4 < 65504 < 8e4.
    (lambda: jaxinit.spectral(4e4), (4, 16), jnp.float16, "spectral: scale=40000.0"),
    (lambda: jaxinit.identity(1e5), (4, 4), jnp.float16, "identity: gain=100000.0"),
    (lambda: jaxinit.sparse(0.5, 1e38), (4, 4), jnp.float32, "sparse: stddev=1e+38"),
    (lambda: jaxinit.scaled(jaxinit.he_normal(), 1e39), (4, 4), jnp.float32,
     "scaled: factor=1e+39"),
    (lambda: jaxinit.scaled(jaxinit.he_normal(), 1e39), (4, 4), jnp.complex64,
     "scaled: factor=1e+39"),
    (lambda: jaxinit.stacked(jaxinit.orthogonal(1e5)), (2, 4, 4), jnp.float16,
     "orthogonal: scale=100000.0"),
    (lambda: jaxinit.blocks([jaxinit.zeros, jaxinit.identity(1e39)], [2, 2]), (4, 4),
     jnp.float32, "identity: gain=1e+39"),
    # residual_normal(2, s) is normal(s / 2): the Normal it returns names its stddev.
    (lambda: jaxinit.residual_normal(2, 1e39), (4, 4), jnp.float32, "normal: stddev=5e+38"),
    (lambda: jt.orthogonal(1e39), (4, 4), jnp.float32, "orthogonal: scale=1e+39"),
    (lambda: jt.sparse(0.5, 1e38), (4, 4), jnp.float32, "sparse: stddev=1e+38"),
    (lambda: jt.trunc_normal(0.0, 1e30, -1e30, 1e30), (4, 4), jnp.float16, "trunc_normal: b="),
    (lambda: jt.trunc_normal(0.0, 1.0, -1e39, 1e39), (4, 4), jnp.float32,
     "trunc_normal: a=-1e+39"),
    (lambda: jt.xavier_uniform(1e20), (4, 4), jnp.float32, "variance_scaling: scale=1e+40"),
    # Found by the initializer fuzzer: rg_lru_a's log(a) = log(u) / c overflowed for a tiny
    # c, underflowed to 0 (Lambda = inf) for a huge one, or c itself overflowed its cast.
    (lambda: jaxinit.rg_lru_a(c=1e-320), (4,), jnp.float32, "rg_lru_a: c=1e-320"),
    (lambda: jaxinit.rg_lru_a(c=3.4028235677973366e38), (4,), jnp.float32,
     "rg_lru_a: c=3.4028235677973366e+38"),
    # Found by the initializer fuzzer: a bound just beyond float32 overflowed in its cast.
    (lambda: jaxinit.truncated_normal(1.0, None, -2.0, 3.4028235677973366e38), (4, 4),
     jnp.float32, "truncated_normal: upper=3.4028235677973366e+38"),
    # Found by the initializer fuzzer: std just beyond float32 overflowed in its cast.
    (lambda: jt.trunc_normal(0.0, 3.4028235677973366e38), (4, 4), jnp.float32,
     "trunc_normal: std=3.4028235677973366e+38"),
    # Found by the initializer fuzzer: the statistics overflowed (RuntimeWarning) first.
    (lambda: jaxinit.mamba_dt_bias(dt_max=1e154), (7,), jnp.float32, "mamba_dt_bias: dt_max="),
    (lambda: jaxinit.mamba_dt_bias(dt_max=1e5), (7,), jnp.float16,
     "mamba_dt_bias: dt_max=100000.0"),
]


@pytest.mark.parametrize(("make", "shape", "dtype", "message"), OVERFLOWING)
def test_every_magnitude_argument_is_checked_against_the_dtype(make, shape, dtype, message):
    with pytest.raises(ValueError, match=re.escape(message) + ".* beyond the largest finite"):
        make()(jax.random.key(0), shape, dtype)


@pytest.mark.parametrize(
    ("make", "shape", "dtype"),
    [
        (lambda: jaxinit.orthogonal(6e4), (4, 4), jnp.float16),
        (lambda: jaxinit.spectral(3e4), (4, 16), jnp.float16),
        (lambda: jaxinit.identity(6e4), (4, 4), jnp.float16),
        (lambda: jaxinit.delta_orthogonal(400.0), (3, 4, 4), jnp.float8_e4m3fn),
        (lambda: jaxinit.scaled(jaxinit.he_normal(), 1e37), (4, 4), jnp.float32),
        # Bounds far beyond the sampler's reach (5.4 std) are not what sets the magnitude.
        (lambda: jt.trunc_normal(0.0, 1.0, -1e30, 1e30), (4, 4), jnp.float16),
        (lambda: jt.trunc_normal(0.0, 1e-45, -2.0, 2.0), (4, 4), jnp.float32),
    ],
)
def test_just_representable_magnitudes_stay_finite(make, shape, dtype):
    w = make()(jax.random.key(0), shape, dtype)
    assert w.shape == shape and w.dtype == dtype
    assert bool(jnp.isfinite(w.astype(jnp.float32 if dtype != jnp.complex64 else dtype)).all())


def test_trunc_normal_interval_beyond_the_samplers_reach_is_refused():
    # mean 0, std 1: float32 draws stay within 5.42 std, so [10, 20] holds no draw.
    with pytest.raises(ValueError, match=r"trunc_normal: \[a, b\] = \[10.0, 20.0\] lies beyond"):
        jt.trunc_normal(0.0, 1.0, 10.0, 20.0)(jax.random.key(0), (4, 4))


def test_huge_gains_and_slopes_are_value_errors():
    with pytest.raises(ValueError, match=r"xavier_normal: gain=1e\+300 squared overflows"):
        jt.xavier_normal(1e300)
    # gain = sqrt(2 / (1 + a^2)) -> 0 for a huge slope (PyTorch raises OverflowError).
    assert jt.calculate_gain("leaky_relu", 1e300) == 0.0
    assert float(jnp.abs(jt.kaiming_normal(1e300)(jax.random.key(0), (4, 4))).max()) == 0.0


# float8_e8m0fnu stores only powers of two: no zero, no sign (0 and -1 cast to NaN).
@pytest.mark.parametrize(
    "init",
    [jaxinit.zeros, jaxinit.normal(), jaxinit.uniform(), jaxinit.he_normal(),
     jaxinit.glorot_uniform(), jaxinit.orthogonal(), jaxinit.spectral(), jaxinit.identity(),
     jaxinit.residual_normal(4), jaxinit.constant(-2.0), jt.eye(), jt.trunc_normal(),
     jaxinit.scaled(jaxinit.normal(), 2.0), jaxinit.mamba_a_log()],
    ids=lambda i: type(i).__name__,
)
def test_signless_float8_e8m0fnu_is_refused_for_signed_or_zero_values(init):
    with pytest.raises(TypeError, match=r"dtype=float8_e8m0fnu has no zero and no negative"):
        init(jax.random.key(0), (4, 4), jnp.float8_e8m0fnu)


def test_positive_constants_fill_float8_e8m0fnu():
    w = jaxinit.constant(0.25)(jax.random.key(0), (2, 2), jnp.float8_e8m0fnu)
    np.testing.assert_array_equal(np.asarray(w, np.float32), np.full((2, 2), 0.25, np.float32))
    assert jaxinit.ones(jax.random.key(0), (3,), jnp.float8_e8m0fnu).dtype == jnp.float8_e8m0fnu


@pytest.mark.parametrize("dtype", [jnp.float6_e2m3fn, jnp.float6_e3m2fn])
def test_dtypes_the_cpu_backend_cannot_store_are_type_errors(dtype):
    # XLA's CPU backend has no float6 arrays (jnp.zeros raises), and a compiled constant of
    # one aborts the whole process: refused before XLA sees it.
    try:  # the oracle: whether jax itself can build an array of the dtype here
        jnp.zeros((1,), dtype).block_until_ready()
    except Exception:
        with pytest.raises(TypeError, match=rf"constant: dtype={np.dtype(dtype)} has no arr"):
            jaxinit.constant(1.0)(jax.random.key(0), (4, 4), dtype)
        assert jax.default_backend() == "cpu"  # where it is known to be missing
    else:
        assert jaxinit.constant(1.0)(jax.random.key(0), (4, 4), dtype).dtype == dtype


# --- The drop-in sweep ---------------------------------------------------------------
# Every shared name, ranks 0-4, every float dtype of the parity promise, both key types:
# jaxinit must accept what jax accepts, with the same shape and dtype, and the values of
# jax's float32 draw rounded to the dtype ("the same key gives the same weights up to
# rounding whatever the dtype"). Acceptance is judged with jax.eval_shape (no compile);
# the values of one name come from one jitted program per library, so the sweep compiles
# 38 small programs instead of hundreds.
SWEEP_SHAPES = [(), (5,), (4, 6), (3, 4, 6), (2, 3, 4, 6)]
SWEEP_DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]


def _accepts(init, key, shape, dtype):
    try:
        return jax.eval_shape(lambda k: init(k, shape, dtype), key), None
    except Exception as e:  # jax's refusals vary: ValueError, IndexError, ZeroDivisionError
        return None, e


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_dropin_sweep_accepts_what_jax_accepts_with_its_values(name):
    ours, theirs = FACTORIES[name](jaxinit), FACTORIES[name](jax.nn.initializers)
    raw = jax.random.PRNGKey(3)
    accepted = []
    for shape, dtype in itertools.product(SWEEP_SHAPES, SWEEP_DTYPES):
        ref, _ = _accepts(theirs, raw, shape, jnp.float32)
        out, error = _accepts(ours, raw, shape, dtype)
        if ref is None:  # jax refuses the shape: a clean, named refusal or a valid array
            assert out is not None or (isinstance(error, ValueError | TypeError)
                                       and str(error).startswith(f"{ours.name}: ")), error
            continue
        assert out is not None, f"{name} refuses {shape} {dtype.__name__}, jax accepts: {error}"
        assert (out.shape, out.dtype) == (shape, dtype)
        accepted.append((shape, dtype))
    assert any(len(s) >= 2 for s, _ in accepted)

    # Values (bounded time): every accepted shape in float32 with the typed key; the
    # legacy key and the narrow dtypes on the largest accepted rank-2 or higher shape.
    wide = max((s for s, _ in accepted), key=len)
    cases = [(s, d, "typed") for s, d in accepted if d == jnp.float32]
    cases += [(wide, d, "raw") for d in SWEEP_DTYPES]

    def draws(init, raw_key, as_dtype):
        keys = {"raw": raw_key, "typed": jax.random.wrap_key_data(raw_key)}
        return [init(keys[kind], shape, as_dtype(dtype)) for shape, dtype, kind in cases]

    got = jax.jit(lambda k: draws(ours, k, lambda d: d))(raw)
    want = jax.jit(lambda k: draws(theirs, k, lambda d: jnp.float32))(raw)
    for g, w, (shape, dtype, _) in zip(got, want, cases, strict=True):
        assert (g.shape, g.dtype) == (shape, dtype)
        expected = np.asarray(w.astype(dtype), np.float32)
        # Unoptimized XLA contracts multiply-adds differently in the two programs: float32
        # draws differ in the last bits (measured: up to 4 ulp in truncated normals, 8
        # allowed), which can flip a bfloat16 or float16 rounding by 1 ulp of that dtype.
        # Near 0 the inverse-CDF sampler loses relative precision: the same bound is also
        # allowed relative to the largest weight.
        rtol = max(float(jnp.finfo(dtype).eps), 2.0**-20)
        atol = rtol * float(np.abs(expected).max(initial=0.0))
        np.testing.assert_allclose(np.asarray(g, np.float32), expected, rtol=rtol, atol=atol)


# --- jaxinit.torch against torch.nn.init: the same shapes accepted and refused -------
TORCH_PAIRS = {
    "kaiming_uniform": (lambda: jt.kaiming_uniform(), "kaiming_uniform_", ()),
    "kaiming_normal": (lambda: jt.kaiming_normal(), "kaiming_normal_", ()),
    "xavier_uniform": (lambda: jt.xavier_uniform(), "xavier_uniform_", ()),
    "xavier_normal": (lambda: jt.xavier_normal(), "xavier_normal_", ()),
    "trunc_normal": (lambda: jt.trunc_normal(), "trunc_normal_", ()),
    "orthogonal": (lambda: jt.orthogonal(), "orthogonal_", ()),
    "sparse": (lambda: jt.sparse(0.5), "sparse_", (0.5,)),
    "eye": (lambda: jt.eye(), "eye_", ()),
    "dirac": (lambda: jt.dirac(), "dirac_", ()),
}
TORCH_SHAPES = [(), (3,), (3, 4), (2, 3, 4), (2, 3, 4, 5), (2, 3, 4, 5, 2), (0, 4), (4, 0),
                (0, 3, 4), (3, 4, 0), (2, 0, 3, 4)]


@pytest.mark.parametrize("name", sorted(TORCH_PAIRS))
def test_torch_facade_accepts_and_refuses_what_torch_does(name):
    """Per shape (Flax layout; PyTorch's is reversed): torch accepts -> jaxinit.torch
    accepts and warns on a zero-element weight exactly when torch does; torch refuses with
    a ValueError -> a ValueError naming the initializer. Where torch fails by accident on
    an empty tensor (ZeroDivisionError, IndexError), the empty array is returned."""
    import torch

    make, fn, args = TORCH_PAIRS[name]
    for shape in TORCH_SHAPES:
        with warnings.catch_warnings(record=True) as theirs_warned:
            warnings.simplefilter("always")
            try:
                getattr(torch.nn.init, fn)(torch.empty(shape[::-1]), *args)
                theirs = "accepts"
            except ValueError:
                theirs = "refuses"
            except (ZeroDivisionError, IndexError):
                theirs = "crashes"
        with warnings.catch_warnings(record=True) as ours_warned:
            warnings.simplefilter("always")
            try:
                out = make()(jax.random.key(0), shape)
                ours = "accepts"
            except ValueError as e:
                assert str(e).startswith(f"{make().name}: "), e
                ours = "refuses"
        if theirs == "crashes":
            assert ours == "accepts" and out.size == 0, (name, shape)
            continue
        assert ours == theirs, (name, shape, ours, theirs)
        if ours == "accepts":
            assert out.shape == shape
            assert bool(ours_warned) == bool(theirs_warned), (name, shape, theirs_warned)


@pytest.mark.sharded
@pytest.mark.parametrize("axis_type", ["explicit", "auto"])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_dropin_sweep_sharded_like_jax(name, axis_type):
    """Every shared name on 8 devices: an explicit mesh set with jax.set_mesh and a
    PartitionSpec, or an auto mesh passed as a NamedSharding. The sharding and the float32
    values are jax's (jax's orthogonal schemes take no out_sharding: their result is
    placed, as on Auto axes, which jax refuses); values within 2 ulp (sharding constraints
    change multiply-add contraction)."""
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    assert jax.device_count() >= 8, "run with --xla_force_host_platform_device_count=8"
    kind = AxisType.Explicit if axis_type == "explicit" else AxisType.Auto
    mesh = jax.make_mesh((8,), ("x",), axis_types=(kind,))
    shape = (3, 8, 16) if name == "delta_orthogonal" else (16, 8)
    spec = P(*([None] * (len(shape) - 2)), "x")  # shorter than the rank: padded with None
    ours, theirs = FACTORIES[name](jaxinit), FACTORIES[name](jax.nn.initializers)
    key = jax.random.key(5)

    def draw(init, sharding):
        # jax refuses out_sharding on Auto axes and in its orthogonal schemes: its
        # unsharded draw is placed instead (jaxinit accepts both).
        if init is theirs and (axis_type == "auto" or "orthogonal" in name):
            return jax.device_put(init(key, shape, jnp.float32), sharding)
        return init(key, shape, jnp.float32, out_sharding=sharding)

    if axis_type == "explicit":
        with jax.set_mesh(mesh):
            got, want = draw(ours, spec), draw(theirs, spec)
    else:
        sharding = NamedSharding(mesh, spec)
        got, want = draw(ours, sharding), draw(theirs, sharding)
    if axis_type == "explicit" and "orthogonal" not in name:  # jax's own sharded draw
        assert got.sharding == want.sharding, (got.sharding, want.sharding)
    else:  # device_put keeps the short spec; the sampler's is padded to the rank
        assert got.sharding.is_equivalent_to(want.sharding, len(shape))
        assert got.sharding.spec == P(*spec, *([None] * (len(shape) - len(spec))))
    assert (got.shape, got.dtype) == (want.shape, want.dtype) == (shape, jnp.float32)
    assert len(got.addressable_shards) == 8
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2.0**-22,
                               atol=2.0**-22 * float(np.abs(np.asarray(want)).max()))


def test_rg_lru_a_refuses_a_c_that_underflows_log_a():
    # log(0.999) / 5.27e35 = -1.9e-39 is below float32's smallest normal (1.18e-38):
    # log(a) flushes towards 0 and Lambda = logit(a) becomes inf (found by the fuzzer).
    with pytest.raises(ValueError, match=r"rg_lru_a: c=5.27\d*e\+35 makes log\(a\).*underflow"):
        jaxinit.rg_lru_a(c=5.274481618003718e35)(jax.random.key(0), (4,))
    w = jaxinit.rg_lru_a(c=1e30)(jax.random.key(0), (64,))  # log(a) ~ -1e-33: fine
    assert bool(jnp.isfinite(w).all())
