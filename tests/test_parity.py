"""Drop-in parity with jax.nn.initializers (the 'Drop-in parity' design principle):
names, signatures, values."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit

PUBLIC_JAX = [n for n in dir(jax.nn.initializers) if not n.startswith("_")]
JAX_NAMES = sorted(set(PUBLIC_JAX) - {"Initializer"})
FACTORY_ARGS = {
    "constant": [(-0.5,), (3.0,)],
    "uniform": [(), (0.3,)],
    "normal": [(), (2.0,)],
    "truncated_normal": [(), (0.7,), (0.5, None, -1.0, 3.0)],
    "orthogonal": [(), (1.7,), (1.0, 0)],
    "delta_orthogonal": [(), (0.9,)],
    "variance_scaling": [
        (1.0, "fan_in", "normal"),
        (2.0, "fan_out", "uniform"),
        (0.5, "fan_avg", "truncated_normal"),
        (3.0, "fan_geo_avg", "normal"),
        (2.0, "fan_in", "truncated_normal", -2, -1, 0),
        (1.0, "fan_avg", "uniform", (0, 1), -1),
        (1.0, "fan_in", "normal", 1, (2, 3), 0),
    ],
}
PRESET_KWARGS = [{}, {"batch_axis": 0}, {"in_axis": (0, 1), "out_axis": -1}]
# Rank <= 4: XLA:CPU compiles rank-5 random programs several times slower, and the fan
# logic for rank 5 is covered by the statistics table.
SHAPES = [(64, 48), (3, 3, 16, 32), (4, 20, 30)]


def test_every_jax_name_exists():
    missing = [n for n in PUBLIC_JAX if not hasattr(jaxinit, n)]
    assert not missing
    assert len(PUBLIC_JAX) >= 20


@pytest.mark.parametrize("name", JAX_NAMES)
def test_same_signature(name):
    ours, theirs = getattr(jaxinit, name), getattr(jax.nn.initializers, name)
    if name in ("zeros", "ones"):  # initializers themselves, not factories
        ours = type(ours).__call__
        theirs_params = list(inspect.signature(theirs).parameters.values())
        ours_params = list(inspect.signature(ours).parameters.values())[1:]  # drop self
    else:
        theirs_params = list(inspect.signature(theirs).parameters.values())
        ours_params = list(inspect.signature(ours).parameters.values())
    # jax's parameters, in order, with jax's defaults; any extra option (orthogonal's
    # `method`) is keyword-only with a default, so every call written for jax still works.
    extra = ours_params[len(theirs_params) :]
    ours_params = ours_params[: len(theirs_params)]
    assert [(p.name, p.kind) for p in ours_params] == [(p.name, p.kind) for p in theirs_params]
    for a, b in zip(ours_params, theirs_params, strict=True):
        assert a.default == b.default, (a.name, a.default, b.default)
    for p in extra:
        assert p.kind == inspect.Parameter.KEYWORD_ONLY and p.default is not p.empty, p


def cases():
    for name in JAX_NAMES:
        if name in ("zeros", "ones"):
            yield name, getattr(jaxinit, name), getattr(jax.nn.initializers, name)
        elif name in FACTORY_ARGS:
            for args in FACTORY_ARGS[name]:
                yield (
                    f"{name}{args}",
                    getattr(jaxinit, name)(*args),
                    getattr(jax.nn.initializers, name)(*args),
                )
        else:
            for kw in PRESET_KWARGS:
                yield (
                    f"{name}{kw}",
                    getattr(jaxinit, name)(**kw),
                    getattr(jax.nn.initializers, name)(**kw),
                )


CASES = list(cases())


def applicable(label, shape):
    if label.startswith("delta_orthogonal"):
        return len(shape) in (3, 4, 5) and shape[-2] <= shape[-1] and all(k % 2 for k in shape[:-2])
    if "(0, 1)" in label or "(2, 3)" in label:
        return len(shape) >= 4
    if "'batch_axis': 0" in label or ", 0)" in label:
        return len(shape) >= 3  # overlapping axes are an error in jaxinit (rule 7)
    return True


@pytest.mark.parametrize(("label", "ours", "theirs"), CASES, ids=[c[0] for c in CASES])
def test_same_float32_values(label, ours, theirs):
    checked = 0
    for seed, shape in enumerate(SHAPES):
        if not applicable(label, shape):
            continue
        key = jax.random.key(seed)
        # Both under jit: one compilation per call instead of jax's op-by-op eager path.
        a = jax.jit(lambda k, shape=shape: ours(k, shape, jnp.float32))(key)
        b = jax.jit(lambda k, shape=shape: theirs(k, shape, jnp.float32))(key)
        assert a.dtype == b.dtype == jnp.float32
        np.testing.assert_allclose(a, b, rtol=2e-7, atol=1e-7 * float(jnp.abs(b).max()))
        checked += 1
    assert checked >= 1


COMPLEX = [
    (jaxinit.normal(0.5), jax.nn.initializers.normal(0.5)),
    (jaxinit.he_uniform(), jax.nn.initializers.he_uniform()),
    (
        jaxinit.variance_scaling(1.0, "fan_avg", "normal"),
        jax.nn.initializers.variance_scaling(1.0, "fan_avg", "normal"),
    ),
    (jaxinit.orthogonal(), jax.nn.initializers.orthogonal()),
]


@pytest.mark.parametrize(("ours", "theirs"), COMPLEX, ids=lambda x: repr(x)[:30])
def test_same_complex64_values(ours, theirs):
    key = jax.random.key(3)
    a, b = ours(key, (24, 40), jnp.complex64), theirs(key, (24, 40), jnp.complex64)
    assert a.dtype == b.dtype == jnp.complex64
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_default_dtype_is_resolved_at_call_time():
    init = jaxinit.he_normal()
    assert init(jax.random.key(0), (4, 4)).dtype == jnp.float32
    with jax.enable_x64(True):
        assert init(jax.random.key(0), (4, 4)).dtype == jnp.float64
    assert jaxinit.he_normal(dtype=jnp.bfloat16)(jax.random.key(0), (4, 4)).dtype == jnp.bfloat16
