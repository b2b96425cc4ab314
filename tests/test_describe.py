"""compute_fans and describe, checked against hand-derived values and against sampling."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import jaxinit

FANS = [
    ((64, 32), {}, (64, 32)),
    ((3, 3, 64, 128), {}, (576, 1152)),  # 9 taps * 64 in, 9 * 128 out
    ((5, 16, 32), {}, (80, 160)),
    ((24, 512, 1024), {"batch_axis": 0}, (512, 1024)),
    ((8, 4, 16, 32), {"in_axis": (0, 1), "out_axis": (2, 3)}, (32, 512)),
    ((12, 64, 8, 16), {"in_axis": 1, "out_axis": (2, 3), "batch_axis": 0}, (64, 128)),
    ((7,), {"in_axis": (), "out_axis": 0}, (1, 7)),
]


@pytest.mark.parametrize(("shape", "kwargs", "expected"), FANS, ids=str)
def test_compute_fans(shape, kwargs, expected):
    assert jaxinit.compute_fans(shape, **kwargs) == expected


TRUNC2 = scipy.stats.truncnorm(-2, 2).std()
DESCRIBED = [
    (jaxinit.he_normal(), (3, 3, 64, 128), math.sqrt(2 / 576), 2 * math.sqrt(2 / 576) / TRUNC2),
    (jaxinit.glorot_uniform(), (100, 300), math.sqrt(1 / 200), math.sqrt(3 / 200)),
    (
        jaxinit.lecun_normal(batch_axis=0),
        (6, 50, 70),
        math.sqrt(1 / 50),
        2 * math.sqrt(1 / 50) / TRUNC2,
    ),
    (jaxinit.normal(0.02), (10, 10), 0.02, None),
    (jaxinit.uniform(0.6), (10, 10), 0.6 / math.sqrt(12), 0.6),
    (jaxinit.truncated_normal(0.1), (10, 10), 0.1 * TRUNC2, 0.2),
    (jaxinit.orthogonal(2.0), (64, 16), 2.0 / math.sqrt(64), 2.0),
    (jaxinit.sparse(0.5, 0.1), (10, 4), 0.1 * math.sqrt(0.5), None),
]


@pytest.mark.parametrize(
    ("init", "shape", "std", "bound"),
    DESCRIBED,
    ids=lambda x: type(x).__name__ if not isinstance(x, tuple | float) else None,
)
def test_describe_matches_formula_and_samples(init, shape, std, bound):
    d = jaxinit.describe(init, shape)
    assert d.std == pytest.approx(std, rel=1e-12)
    if bound is not None:
        assert d.bounds[1] == pytest.approx(bound, rel=1e-12)
    assert str(shape) in str(d) and d.as_dict()["std"] == d.std
    # The description agrees with what the initializer draws (20 draws pooled; std within
    # 3%, far outside the ~0.5% sampling error of the pooled sample).
    keys = jax.random.split(jax.random.key(0), 20)
    w = np.asarray(jax.vmap(lambda k: init(k, shape))(keys), np.float64)
    assert w.std() == pytest.approx(d.std, rel=0.03)


def test_describe_fans_and_dtype():
    d = jaxinit.describe(jaxinit.he_uniform(dtype=jnp.bfloat16), (3, 3, 8, 16))
    assert (d.fan_in, d.fan_out, d.dtype) == (72, 144, "bfloat16")
    assert d.distribution == "uniform" and d.mean == 0.0
