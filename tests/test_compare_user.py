"""jaxinit.compare_model on user models defined here (linen, nnx and Equinox MLPs)."""

from __future__ import annotations

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn
from flax import nnx

import jaxinit

STEPS = 30
SEEDS = 3


def _blobs() -> tuple[np.ndarray, ...]:
    """Three Gaussian classes in 8 dimensions: 96 training and 48 test examples."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 2.0
    y = rng.integers(0, 3, size=144).astype(np.int32)
    x = (centers[y] + rng.normal(size=(144, 8))).astype(np.float32)
    return x[:96], y[:96], x[96:], y[96:]


DATA = _blobs()


class LinenMLP(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(nn.Dense(16)(x))
        return nn.Dense(3)(x)


class NnxMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(8, 16, rngs=rngs)
        self.out = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(jax.nn.relu(self.hidden(x)))


@pytest.fixture(scope="module")
def linen_result() -> jaxinit.ModelComparison:
    return jaxinit.compare_model(
        LinenMLP(), DATA, schemes=["he", "xavier"], seeds=SEEDS, steps=STEPS,
        optimizer=optax.adam(1e-2), key=jax.random.key(7),
    )


def _sequential_curve(key: jax.Array, init: jaxinit.Initializer) -> tuple[np.ndarray, float]:
    """Independent oracle: one seed, a plain Python loop of optax Adam steps."""
    model = LinenMLP()
    params = model.init(key, DATA[0][:1])["params"]
    params = jaxinit.reinit(params, key, [(r".*/kernel", init), (r".*/bias", jaxinit.zeros)])
    opt = optax.adam(1e-2)
    state = opt.init(params)
    x, y = jnp.asarray(DATA[0]), jnp.asarray(DATA[1])

    def loss(p: dict) -> jax.Array:
        logits = model.apply({"params": p}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    step = jax.jit(jax.value_and_grad(loss))
    curve = []
    for _ in range(STEPS):
        value, grads = step(params)
        with jax.numpy_dtype_promotion("standard"):  # optax's int32 step count
            updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        curve.append(float(value))
    acc = float(np.mean(np.argmax(model.apply({"params": params}, DATA[2]), -1) == DATA[3]))
    return np.array(curve), acc


def test_linen_shapes_and_stats(linen_result: jaxinit.ModelComparison) -> None:
    r = linen_result
    assert r.schemes == ("he", "xavier") and r.metric == "test_accuracy"
    for s in r.schemes:
        assert r.curves[s].shape == (SEEDS, STEPS)
        assert set(r.finals[s]) == {"train_loss", "test_loss", "test_accuracy"}
        assert all(v.shape == (SEEDS,) for v in r.finals[s].values())
        assert r.diverged[s] == (None,) * SEEDS
        acc = r.finals[s]["test_accuracy"]
        assert r.mean(s) == pytest.approx(np.mean(acc))
        assert r.std(s) == pytest.approx(np.std(acc, ddof=1))
        # 30 Adam steps at lr 1e-2 learn these well-separated blobs.
        assert r.curves[s][:, -1].max() < r.curves[s][:, 0].min()
    assert r.verdict.startswith(("no clear winner among", "he is best", "xavier is best"))
    doc = json.loads(r.to_json())
    assert doc["schema_version"] == 1 and doc["seeds"] == SEEDS and doc["steps"] == STEPS
    assert np.allclose(doc["schemes"]["he"]["curves"], r.curves["he"])
    assert doc["schemes"]["xavier"]["diverged"] == [None] * SEEDS


def test_vmapped_seeds_equal_sequential_runs(linen_result: jaxinit.ModelComparison) -> None:
    keys = jax.random.split(jax.random.key(7), SEEDS)
    for i in range(SEEDS):
        curve, acc = _sequential_curve(keys[i], jaxinit.he_normal())
        np.testing.assert_allclose(linen_result.curves["he"][i], curve, rtol=1e-5, atol=1e-5)
        assert linen_result.finals["he"]["test_accuracy"][i] == pytest.approx(acc, abs=1e-6)


def test_nnx_factory_and_fixed_minibatches() -> None:
    r = jaxinit.compare_model(
        NnxMLP, DATA, schemes={"lecun": jaxinit.lecun_normal(), "he": jaxinit.he_normal()},
        seeds=SEEDS, steps=STEPS, batch_size=32, metric="test_loss",
    )
    assert r.schemes == ("lecun", "he") and r.metric == "test_loss"
    for s in r.schemes:
        assert r.curves[s].shape == (SEEDS, STEPS)
        assert np.all(np.isfinite(r.curves[s]))
        # Seeds differ: the scheme is re-drawn per seed key.
        assert np.ptp(r.curves[s][:, 0]) > 0
        assert r.mean(s) == pytest.approx(np.mean(r.finals[s]["test_loss"]))
    # Cross-entropy at init with zero biases and He/LeCun kernels, 3 classes: near log(3)
    # up to the logits' spread, and far below what a huge init gives.
    assert np.all(r.curves["lecun"][:, 0] < 5.0)


def test_divergent_scheme_is_reported_and_not_ranked() -> None:
    # N(0, 1e30^2) kernels overflow float32 logits to inf in the first forward pass.
    r = jaxinit.compare_model(
        LinenMLP(), DATA,
        schemes={"he": jaxinit.he_normal(), "huge": jaxinit.normal(1e30)},
        seeds=SEEDS, steps=5,
    )
    assert r.diverged["huge"] == (0, 0, 0)
    assert r.diverged["he"] == (None, None, None)
    assert np.isnan(r.mean("huge"))
    assert r.verdict == "only he finished without diverging"
    doc = json.loads(r.to_json())
    assert doc["schemes"]["huge"]["diverged"] == [0, 0, 0]
    assert doc["schemes"]["huge"]["mean"]["test_accuracy"] is None


def test_divergence_step_is_the_first_non_finite_loss() -> None:
    # SGD at lr 1e3 blows up after a few finite steps.
    r = jaxinit.compare_model(
        LinenMLP(), DATA, schemes=["he"], seeds=2, steps=STEPS, optimizer=optax.sgd(1e3),
    )
    for row, k in zip(r.curves["he"], r.diverged["he"], strict=True):
        first = int(np.flatnonzero(~np.isfinite(row))[0])
        assert k == first and k > 0
        assert np.all(np.isfinite(row[:k]))
    assert r.verdict == "no scheme finished without diverging"


BAD = [
    ({"seeds": 0}, "seeds=0"),
    ({"steps": -1}, "steps=-1"),
    ({"steps": 2.5}, "steps=2.5"),
    ({"schemes": ["he", "nope"]}, "unknown scheme 'nope'"),
    ({"schemes": ["lsuv"]}, "unknown scheme 'lsuv'"),
    ({"schemes": "he"}, "schemes='he'"),
    ({"schemes": []}, "schemes is empty"),
    ({"metric": "accuracy"}, "metric='accuracy'"),
    ({"data": DATA[:3]}, "data of type tuple"),
    ({"data": (DATA[0], DATA[1][:5], DATA[2], DATA[3])}, "y_train shape (5,)"),
    ({"data": (DATA[0][:, 0], DATA[1], DATA[2], DATA[3])}, "x_train has shape (96,)"),
    ({"data": (DATA[0], DATA[1], DATA[2][:, :4], DATA[3])}, "x_test (48, 4)"),
    ({"data": (DATA[0], DATA[1].astype(np.float32), DATA[2], DATA[3])}, "y_train has dtype"),
    ({"batch_size": 1000}, "batch_size=1000"),
    ({"data": (DATA[0], DATA[1] + 5, DATA[2], DATA[3])}, "C >= 8"),
]


@pytest.mark.parametrize(("kwargs", "needle"), BAD)
def test_bad_input(kwargs: dict, needle: str) -> None:
    args = {"data": DATA, "schemes": ["he"], **kwargs}
    data = args.pop("data")
    with pytest.raises(ValueError, match="compare_model: ") as info:
        jaxinit.compare_model(LinenMLP(), data, **args)
    assert needle in str(info.value) and "expected" in str(info.value)


def test_inputs_the_model_does_not_accept() -> None:
    # NnxMLP takes 8 features; 5 features fail in the model, reported as a data error.
    data = (DATA[0][:, :5], DATA[1], DATA[2][:, :5], DATA[3])
    with pytest.raises(ValueError, match=r"compare_model: data: the model cannot be applied"):
        jaxinit.compare_model(NnxMLP, data, schemes=["he"])


def test_equinox_model() -> None:
    mlp = eqx.nn.MLP(8, 3, 16, 1, key=jax.random.key(0))
    r = jaxinit.compare_model(mlp, DATA, schemes=["he"], seeds=2, steps=10,
                              optimizer=optax.adam(1e-2))
    assert r.curves["he"].shape == (2, 10)
    assert r.curves["he"][:, -1].max() < r.curves["he"][:, 0].min()
