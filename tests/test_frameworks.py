"""jaxinit in Equinox and Keras 3: out-first layouts, real layers, real training steps.

Oracles: the transpose of the same draw at the Flax shape (exact), and the float64
variance formula 2 / fan_in checked within 5 standard errors (a correct scheme fails with
probability 5.7e-7); a deliberately wrong layout (no transpose) must fail that check.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is first imported

import equinox as eqx
import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest

import jaxinit

KEY = jax.random.key(3)


def within_5se(w, var):
    """Sample variance of a zero-mean normal within 5 standard errors sqrt(2/n) var."""
    w = np.asarray(w, np.float64).ravel()
    return abs(w.var() - var) <= 5 * var * np.sqrt(2 / w.size)


@pytest.mark.parametrize(("shape", "flax"), [((128, 16), (16, 128)),
                                             ((32, 8, 3, 5), (3, 5, 8, 32)),
                                             ((7,), (7,))])
def test_channels_first_is_the_transposed_flax_draw(shape, flax):
    init = jaxinit.he_normal() if len(shape) >= 2 else jaxinit.normal(0.5)
    ours = jaxinit.channels_first(init)(KEY, shape)
    flax_draw = np.asarray(init(KEY, flax))
    expected = flax_draw if len(shape) < 2 else np.moveaxis(flax_draw, (-1, -2), (0, 1))
    assert ours.shape == shape
    np.testing.assert_array_equal(np.asarray(ours), expected)
    fan_in = int(np.prod(flax[:-1])) if len(shape) >= 2 else None
    if fan_in is not None:
        assert jaxinit.describe(jaxinit.channels_first(init), shape).std == pytest.approx(
            np.sqrt(2 / fan_in), rel=1e-12)


def test_equinox_init_uses_the_true_fan_in():
    mlp = eqx.nn.MLP(16, 4, 512, depth=2, key=jax.random.key(0))
    new = jaxinit.equinox_init(mlp, KEY, [(r".*/weight", jaxinit.he_normal()),
                                          (r".*/bias", jaxinit.zeros)])
    assert type(new) is type(mlp)
    first = new.layers[0].weight  # (out=512, in=16): fan_in 16
    assert first.shape == (512, 16)
    assert within_5se(first, 2 / 16)
    assert not within_5se(jaxinit.reinit(mlp, KEY, [(r".*/weight", jaxinit.he_normal())])
                          .layers[0].weight, 2 / 16)  # the Flax-layout control: fan_in 512
    assert float(jnp.abs(new.layers[2].bias).max()) == 0.0
    assert new(jnp.ones(16)).shape == (4,)
    # The original module is untouched (out of place, as eqx.tree_at).
    assert not np.array_equal(np.asarray(mlp.layers[0].weight), np.asarray(first))


def test_equinox_init_conv_and_one_training_step():
    import optax

    conv = eqx.nn.Conv2d(3, 64, kernel_size=3, key=jax.random.key(0))
    conv = jaxinit.equinox_init(conv, KEY, [(r"weight", jaxinit.he_normal()),
                                            (r"bias", jaxinit.zeros)])
    assert conv.weight.shape == (64, 3, 3, 3)
    assert within_5se(conv.weight, 2 / 27)
    opt = optax.sgd(0.1)
    x = jax.random.normal(jax.random.key(1), (3, 8, 8))
    params, static = eqx.partition(conv, eqx.is_array)
    state = opt.init(params)

    def loss(p):
        return jnp.mean(eqx.combine(p, static)(x) ** 2)

    grads = jax.grad(loss)(params)
    updates, _ = opt.update(grads, state)
    assert float(loss(optax.apply_updates(params, updates))) < float(loss(params))


def test_equinox_init_refuses_shape_dependent_rules():
    import jaxinit.torch as jt

    mlp = eqx.nn.MLP(4, 2, 8, depth=1, key=jax.random.key(0))
    with pytest.raises(TypeError, match=r"equinox_init: rules\[0\] initializer .*for_leaf"):
        jaxinit.equinox_init(mlp, KEY, jt.default_rules())


def test_keras_dense_and_conv_layers():
    init = jaxinit.keras_initializer(jaxinit.he_normal(), seed=5)
    dense = keras.layers.Dense(256, kernel_initializer=init)
    dense.build((None, 1024))
    w = np.asarray(dense.kernel.value)
    assert w.shape == (1024, 256) and w.dtype == np.float32
    # Seeded: the same values as the scheme called with PRNGKey(5) at the same shape.
    np.testing.assert_array_equal(w, np.asarray(jaxinit.he_normal()(jax.random.PRNGKey(5),
                                                                    (1024, 256))))
    assert within_5se(w, 2 / 1024)
    conv = keras.layers.Conv2D(32, 3, kernel_initializer=jaxinit.keras_initializer(
        jaxinit.orthogonal()))
    conv.build((None, 8, 8, 16))
    k = np.asarray(conv.kernel.value).reshape(-1, 32)
    np.testing.assert_allclose(k.T @ k, np.eye(32), atol=1e-5)
    # Unseeded: successive calls draw from a SeedGenerator, so they differ.
    fresh = jaxinit.keras_initializer(jaxinit.normal())
    assert not np.array_equal(np.asarray(fresh((4, 4))), np.asarray(fresh((4, 4))))
    config = keras.layers.Dense(4, kernel_initializer=init).get_config()["kernel_initializer"]
    assert config["config"] == {"scheme": repr(jaxinit.he_normal()), "seed": 5}
    with pytest.raises(TypeError, match=r"keras_initializer: a jaxinit scheme .* not rebuilt"):
        type(init).from_config(config["config"])


def test_keras_model_trains():
    # Keras broadcasts biases by rank promotion, which the suite's conftest forbids.
    with jax.numpy_rank_promotion("allow"):
        keras_fit()


def keras_fit():
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(32, activation="relu",
                           kernel_initializer=jaxinit.keras_initializer(jaxinit.he_normal(), 0)),
        keras.layers.Dense(1, kernel_initializer=jaxinit.keras_initializer(jaxinit.zeros)),
    ])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    y = x[:, :1] * 2
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=3, verbose=0)
    assert model.evaluate(x, y, verbose=0) < first


def test_keras_bad_input():
    with pytest.raises(TypeError, match=r"keras_initializer: init=3 must be an initializer"):
        jaxinit.keras_initializer(3)
    with pytest.raises(TypeError, match=r"keras_initializer: seed='0' must be an int"):
        jaxinit.keras_initializer(jaxinit.zeros, seed="0")


def test_equinox_conv_bias_is_a_vector():
    """Equinox's conv bias (out, 1, 1) is given to the initializer as (out,): zeros and a
    normal fill it at its shape; a fan-based scheme raises its rank error (it would read
    fan_in = 1 off the trailing ones). A Linear(1, n) weight (n, 1) is still a kernel."""
    conv = eqx.nn.Conv2d(3, 64, kernel_size=3, key=jax.random.key(0))
    assert conv.bias.shape == (64, 1, 1)
    new = jaxinit.equinox_init(conv, KEY, [(r"weight", jaxinit.he_normal()),
                                           (r"bias", jaxinit.normal(0.5))])
    assert new.bias.shape == (64, 1, 1)
    assert new(jnp.ones((3, 8, 8))).shape == (64, 6, 6)
    new = jaxinit.equinox_init(conv, KEY, [(r"weight", jaxinit.he_normal()),
                                           (r"bias", jaxinit.zeros)])
    assert new.bias.shape == (64, 1, 1) and float(jnp.abs(new.bias).max()) == 0.0
    with pytest.raises(ValueError, match=r"shape=\(64,\) has rank 1; fans need rank >= 2"):
        jaxinit.equinox_init(conv, KEY, [(r"weight", jaxinit.he_normal()),
                                         (r"bias", jaxinit.lecun_normal())])
    lin = eqx.nn.Linear(1, 4096, key=jax.random.key(0))   # weight (4096, 1): fan_in 1
    new = jaxinit.equinox_init(lin, KEY, [(r"weight", jaxinit.lecun_normal()),
                                          (r"bias", jaxinit.zeros)])
    assert new.weight.shape == (4096, 1) and within_5se(new.weight, 1.0)
