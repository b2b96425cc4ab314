"""Statistics of every random scheme, driven by one table of initializers under test.

Each case gives the exact law of one weight as a frozen scipy.stats distribution, derived
here from the scheme's published formula and an independent fan computation (never from
jaxinit's own `describe`). Shapes cover dense, conv 1D/2D/3D and stacked kernels.
"""

import dataclasses
import math
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from conftest import make_key
from statcheck import assert_ks, assert_moments, assert_within

import jaxinit

# Std of N(0, 1) truncated to (-2, 2), from scipy (not from jaxinit).
TRUNC2 = scipy.stats.truncnorm(-2, 2).std()

SHAPES = {
    "dense": (256, 384),
    "conv1d": (5, 96, 160),
    "conv2d": (3, 3, 64, 96),
    "conv3d": (3, 3, 3, 24, 40),
}


def fans(shape, batch_axis=()):
    """Flax layout (*receptive, in, out), with optional leading batch axes."""
    batch = (batch_axis,) if isinstance(batch_axis, int) else batch_axis
    core = [d for i, d in enumerate(shape) if i not in batch]
    receptive = math.prod(core[:-2])
    return core[-2] * receptive, core[-1] * receptive


def vs_dist(scale, mode, distribution, batch_axis=()):
    def law(shape):
        fan_in, fan_out = fans(shape, batch_axis)
        n = {
            "fan_in": fan_in,
            "fan_out": fan_out,
            "fan_avg": (fan_in + fan_out) / 2,
            "fan_geo_avg": math.sqrt(fan_in * fan_out),
        }[mode]
        std = math.sqrt(scale / n)
        if distribution == "normal":
            return scipy.stats.norm(scale=std)
        if distribution == "uniform":
            return scipy.stats.uniform(-math.sqrt(3) * std, 2 * math.sqrt(3) * std)
        return scipy.stats.truncnorm(-2, 2, scale=std / TRUNC2)

    return law


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    init: jaxinit.Initializer
    law: Callable  # shape -> frozen scipy distribution
    shapes: tuple = ("dense", "conv1d", "conv2d")


CASES = [
    Case("normal", jaxinit.normal(0.3), lambda s: scipy.stats.norm(scale=0.3)),
    Case("uniform", jaxinit.uniform(0.5), lambda s: scipy.stats.uniform(0, 0.5)),
    Case(
        "uniform_range", jaxinit.uniform_range(-0.2, 0.6), lambda s: scipy.stats.uniform(-0.2, 0.8)
    ),
    Case(
        "truncated_normal",
        jaxinit.truncated_normal(0.1, lower=-1.0, upper=3.0),
        lambda s: scipy.stats.truncnorm(-1, 3, scale=0.1),
    ),
    Case("glorot_uniform", jaxinit.glorot_uniform(), vs_dist(1, "fan_avg", "uniform"),
         shapes=tuple(SHAPES)),
    Case("glorot_normal", jaxinit.glorot_normal(), vs_dist(1, "fan_avg", "truncated_normal")),
    Case("he_uniform", jaxinit.he_uniform(), vs_dist(2, "fan_in", "uniform")),
    Case("he_normal", jaxinit.he_normal(), vs_dist(2, "fan_in", "truncated_normal"),
         shapes=tuple(SHAPES)),
    Case("lecun_uniform", jaxinit.lecun_uniform(), vs_dist(1, "fan_in", "uniform"),
         shapes=tuple(SHAPES)),
    Case("lecun_normal", jaxinit.lecun_normal(), vs_dist(1, "fan_in", "truncated_normal")),
    Case(
        "vs_fan_out_normal",
        jaxinit.variance_scaling(0.5, "fan_out", "normal"),
        vs_dist(0.5, "fan_out", "normal"),
    ),
    Case(
        "vs_fan_geo_avg_uniform",
        jaxinit.variance_scaling(3.0, "fan_geo_avg", "uniform"),
        vs_dist(3.0, "fan_geo_avg", "uniform"),
    ),
    Case(
        "he_normal_stacked",
        jaxinit.he_normal(batch_axis=0),
        vs_dist(2, "fan_in", "truncated_normal", batch_axis=0),
        shapes=((8, 128, 192),),
    ),
    Case(
        "glorot_uniform_stacked2",
        jaxinit.glorot_uniform(batch_axis=(0, 1)),
        vs_dist(1, "fan_avg", "uniform", batch_axis=(0, 1)),
        shapes=((4, 3, 96, 160),),
    ),
]
TABLE = [pytest.param(c, s, id=f"{c.id}-{s}") for c in CASES for s in c.shapes]
LOW_PRECISION = [jnp.bfloat16, jnp.float16, jnp.float8_e4m3fn]


def assert_same_up_to_rounding(w, reference):
    """`w` is the float32 draw rounded to its dtype: every element within one unit in the
    last place (eps * |x|, or the smallest subnormal near zero) and almost all identical.
    XLA may fuse the cast with the sampler's last multiply-add and contract it (FMA), so a
    few elements can round from a float32 value one ulp away (seen at LLVM -O0 on CPU)."""
    info = jnp.finfo(w.dtype)
    a, b = np.asarray(w, np.float32), np.asarray(reference, np.float32)
    tolerance = float(info.eps) * np.abs(b) + float(info.smallest_subnormal)
    assert (np.abs(a - b) <= tolerance).all()
    assert (a != b).mean() <= 1e-3


def shape_of(name):
    return SHAPES.get(name, name)


@pytest.mark.parametrize(("case", "shape"), TABLE)
def test_float32_statistics(case, shape):
    shape = shape_of(shape)
    w = case.init(make_key(1), shape, jnp.float32)
    assert w.shape == shape and w.dtype == jnp.float32
    law = case.law(shape)
    assert_moments(w, law)
    assert_ks(w, law)
    assert_within(w, law)


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_low_precision_is_the_float32_draw_rounded(case, dtype):
    """Rule 4: same key, same weights up to rounding; exact moments in the target dtype."""
    shape = shape_of(case.shapes[0])
    w = case.init(make_key(2), shape, dtype)
    assert w.shape == shape and w.dtype == dtype
    reference = case.init(make_key(2), shape, jnp.float32).astype(dtype)
    assert_same_up_to_rounding(w, reference)
    if dtype != jnp.float8_e4m3fn:  # 3 mantissa bits: rounding alone shifts the variance
        assert_moments(w, case.law(shape))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_float64_statistics(case):
    shape = shape_of(case.shapes[0])
    with jax.enable_x64(True):
        w = case.init(make_key(3), shape)  # dtype=None is float64 under x64, at call time
        assert w.dtype == jnp.float64
        w = np.asarray(w)
    law = case.law(shape)
    assert_moments(w, law)
    assert_ks(w, law)


def test_float8_moments_within_rounding():
    """float8_e4m3fn keeps 3 mantissa bits: round-to-nearest adds at most (2^-4)^2/3 relative
    variance; the mean stays unbiased (symmetric rounding of a symmetric law)."""
    shape = (512, 512)
    w = np.asarray(jaxinit.normal(1.0)(make_key(4), shape, jnp.float8_e4m3fn), np.float64)
    n = w.size
    assert abs(w.mean()) <= 5 / math.sqrt(n)
    assert abs(w.var() - 1) <= 5 * math.sqrt(2 / n) + 2**-8 / 3


def test_bfloat16_normal_has_full_tails_and_no_bias():
    """4M bfloat16 draws of normal(1.0): unbiased mean and tails beyond 4.5 sigma."""
    n = 4 * 1024 * 1024
    w = np.asarray(jaxinit.normal(1.0)(make_key(0), (n,), jnp.bfloat16), np.float64)
    assert abs(w.mean()) <= 5 / math.sqrt(n)
    assert np.abs(w).max() > 4.5
    # The same two checks catch jax.random.normal sampling directly in bfloat16.
    raw = np.asarray(jax.random.normal(make_key(0), (n,), jnp.bfloat16), np.float64)
    assert abs(raw.mean()) > 5 / math.sqrt(n) or np.abs(raw).max() <= 4.5


COMPLEX_CASES = [c for c in CASES if c.id.startswith(("normal", "glorot", "he", "lecun", "vs"))]


@pytest.mark.parametrize("case", COMPLEX_CASES, ids=lambda c: c.id)
def test_complex64_moments(case):
    """Complex weights (where jax.nn.initializers has them) have E|w|^2 = the real variance."""
    shape = shape_of(case.shapes[0])
    w = np.asarray(case.init(make_key(5), shape, jnp.complex64)).ravel()
    assert w.dtype == np.complex64
    target = case.law(shape).var() + case.law(shape).mean() ** 2
    power = np.abs(w.astype(np.complex128)) ** 2
    # E|w|^2 = target; the SE of the mean of |w|^2 is estimated from the sample itself.
    assert abs(power.mean() - target) <= 5 * power.std() / math.sqrt(power.size)
    assert abs(w.mean()) <= 5 * math.sqrt(target / w.size) * math.sqrt(2)


# --- Negative checks: the statistical assertions catch a deliberately wrong scheme --------


def test_wrong_fan_is_caught():
    shape = SHAPES["dense"]  # fan_in 256 != fan_out 384
    wrong = jaxinit.variance_scaling(2.0, "fan_out", "truncated_normal")
    with pytest.raises(AssertionError):
        assert_moments(wrong(make_key(1), shape), vs_dist(2, "fan_in", "truncated_normal")(shape))


def test_missing_truncation_correction_is_caught():
    shape = SHAPES["dense"]
    std = math.sqrt(2 / fans(shape)[0])
    uncorrected = jaxinit.truncated_normal(std)  # truncated, but std not divided by 0.8796
    with pytest.raises(AssertionError):
        assert_moments(
            uncorrected(make_key(1), shape), vs_dist(2, "fan_in", "truncated_normal")(shape)
        )


def test_wrong_distribution_is_caught_by_ks():
    shape = SHAPES["dense"]
    normal_instead = jaxinit.variance_scaling(2.0, "fan_in", "normal")
    with pytest.raises(AssertionError):
        assert_ks(normal_instead(make_key(1), shape), vs_dist(2, "fan_in", "uniform")(shape))


def test_stacked_without_batch_axis_is_caught():
    shape = (8, 128, 192)
    flat = jaxinit.he_normal()  # treats the 8 layers as a receptive field
    with pytest.raises(AssertionError):
        assert_moments(
            flat(make_key(1), shape), vs_dist(2, "fan_in", "truncated_normal", batch_axis=0)(shape)
        )


# --- Protocol behaviour: jit, keys, determinism, vmap, eval_shape ---------------------------


class TestProtocol(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_same_values_jit_or_eager_typed_or_legacy(self):
        for case in CASES:
            shape = shape_of(case.shapes[0])
            fn = self.variant(lambda k, init=case.init, shape=shape: init(k, shape))
            typed = fn(jax.random.key(7))
            legacy = fn(jax.random.PRNGKey(7))
            again = case.init(jax.random.key(7), shape)
            chex.assert_trees_all_equal(typed, legacy, again)
            assert isinstance(case.init, jaxinit.Initializer)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_vmap_over_keys_gives_independent_draws(case):
    shape = shape_of(case.shapes[0])
    keys = jax.random.split(jax.random.key(8), 4)
    ensemble = jax.vmap(lambda k: case.init(k, shape))(keys)
    assert ensemble.shape == (4, *shape)
    for i in range(4):
        np.testing.assert_allclose(ensemble[i], case.init(keys[i], shape), rtol=1e-6, atol=1e-7)
    a, b = (np.asarray(ensemble[i], np.float64).ravel() for i in (0, 1))
    # Independent draws: sample correlation ~ N(0, 1/n); 5 SE bound.
    assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(a.size)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_eval_shape(case):
    shape = shape_of(case.shapes[0])
    out = jax.eval_shape(lambda k: case.init(k, shape, jnp.bfloat16), jax.random.key(0))
    assert out.shape == shape and out.dtype == jnp.bfloat16


def test_jit_does_not_retrace_for_a_repeated_shape():
    init = jaxinit.he_normal()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def make(key):
        return init(key, (32, 16))

    for seed in range(3):
        make(jax.random.key(seed))
