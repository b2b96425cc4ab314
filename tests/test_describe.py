"""compute_fans and describe, checked against hand-derived values and against sampling."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import jaxinit
from jaxinit._src.core.base import InitializerBase

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


# Partial descriptions: schemes with no closed-form law are described as far as they can
# be, with None where a number is not known (describe never raises NotImplementedError).
PLAIN = jax.nn.initializers.lecun_normal()


@pytest.mark.parametrize(
    ("init", "shape"),
    [
        (jaxinit.scaled(PLAIN, 2.0), (4, 3)),
        (jaxinit.stacked(PLAIN, 0), (2, 4, 3)),
        (jaxinit.blocks(PLAIN, 3), (4, 6)),
        (jaxinit.blocks([jaxinit.normal(0.1), PLAIN], 2), (4, 4)),
    ],
    ids=["scaled", "stacked", "blocks", "blocks mixed"],
)
def test_describe_combinator_of_plain_callable_is_partial(init, shape):
    d = jaxinit.describe(init, shape)
    assert "unknown (<function" in d.distribution
    assert (d.mean, d.std, d.bounds) == (None, None, None)
    assert "mean unknown, std unknown" in str(d)


def test_describe_mixed_blocks_keep_known_block_entries():
    d = jaxinit.describe(jaxinit.blocks([jaxinit.normal(0.1), PLAIN], 2), (4, 4))
    # Description keeps only its fields; the per-block stats come from stats() itself.
    stats = jaxinit.blocks([jaxinit.normal(0.1), PLAIN], 2).stats((4, 4), np.dtype("float32"))
    first, second = stats["blocks"]
    assert (first["distribution"], first["std"]) == ("normal", 0.1)
    assert second["std"] is None and d.std is None


def test_describe_scaled_of_known_scheme_is_still_exact():
    # Scaling a normal(0.1) by -3 gives std 0.3 and mean 0 (the formula, not a sample).
    d = jaxinit.describe(jaxinit.scaled(jaxinit.normal(0.1), -3.0), (5, 5))
    assert d.std == pytest.approx(0.3, rel=1e-12) and d.mean == 0.0


def test_describe_torch_default_rules_is_partial():
    import jaxinit.torch

    described = {}
    for regex, init in jaxinit.torch.default_rules():
        described[regex] = jaxinit.describe(init, (4, 3))
    kernel = described["(.*/)?kernel"]
    bias = described["(.*/)?bias"]
    # PyTorch's default kernel and bias are symmetric uniforms (or zeros): mean exactly 0;
    # the std depends on the layer's fan_in, which a shape alone does not give.
    for d in (kernel, bias):
        assert d.mean == 0.0 and d.std is None and d.bounds is None
        assert "resolved per layer by reinit" in d.distribution
    assert "std unknown" in str(kernel)
    # The fully known rules stay exact: N(0, 1) embeddings (torch.nn.Embedding's default).
    assert described["(.*/)?embedding"].std == 1.0


def test_describe_pretrained_is_partial_and_names_the_entry():
    init = jaxinit.pretrained({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, "w")
    d = jaxinit.describe(init, (2, 3))
    assert d.distribution.startswith("stored values of key 'w'")
    assert (d.mean, d.std) == (None, None)


def test_describe_never_raises_not_implemented_for_any_public_initializer():
    """Every public factory that builds with its defaults is described (possibly
    partially); a refused shape is a ValueError/TypeError, never NotImplementedError."""
    described = 0
    for name in jaxinit.__all__:
        factory = getattr(jaxinit, name)
        if not callable(factory) or isinstance(factory, type):
            continue
        try:
            init = factory()
        except (TypeError, ValueError):
            continue
        if not isinstance(init, InitializerBase):
            continue
        for shape in [(4, 4), (3, 4, 4), (3, 3, 4, 4), (8,)]:
            try:
                d = jaxinit.describe(init, shape)
            except (ValueError, TypeError):
                continue
            assert isinstance(d.distribution, str), name
            described += 1
    assert described >= 30
