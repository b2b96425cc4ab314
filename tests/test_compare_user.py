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


def _first_loss(params: dict, x: np.ndarray, y: np.ndarray) -> float:
    logits = LinenMLP().apply({"params": params}, x)
    return float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean())


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


@pytest.mark.parametrize(("data", "error", "needle"), [
    ((DATA[0], DATA[1].astype(np.float32), DATA[2], DATA[3]), TypeError,
     "data y_train has dtype float32; expected integer class labels"),
    ((DATA[0], DATA[1], DATA[2], DATA[3].astype(np.float64)), TypeError,
     "data y_test has dtype float"),
    ((DATA[0], DATA[1] - 1, DATA[2], DATA[3]), ValueError,
     "data y_train has the label -1; expected class labels >= 0"),
    ((DATA[0], DATA[1], DATA[2], DATA[3] - 2), ValueError,
     "data y_test has the label -2; expected class labels >= 0"),
])
def test_label_dtype_and_negative_labels(data, error, needle) -> None:
    """A float label array is a TypeError (as a non-numeric x is); a negative label a
    ValueError naming the array (it would index the logits from the end)."""
    with pytest.raises(error, match="compare_model: ") as info:
        jaxinit.compare_model(LinenMLP(), data, schemes=["he"])
    assert needle in str(info.value)
    # In test= too.
    if data[2] is DATA[2] and data[3] is not DATA[3]:
        with pytest.raises(error, match="compare_model: test y_test"):
            jaxinit.compare_model(LinenMLP(), (DATA[0], DATA[1]), test=(data[2], data[3]),
                                  schemes=["he"])


def test_inputs_the_model_does_not_accept() -> None:
    # NnxMLP takes 8 features; 5 features fail in the model, reported as a data error.
    data = (DATA[0][:, :5], DATA[1], DATA[2][:, :5], DATA[3])
    with pytest.raises(ValueError, match=r"compare_model: data: the model cannot be applied"):
        jaxinit.compare_model(NnxMLP, data, schemes=["he"])


class EqxMLP(eqx.Module):
    hidden: eqx.nn.Linear
    out: eqx.nn.Linear

    def __init__(self, key: jax.Array) -> None:
        k1, k2 = jax.random.split(key)
        self.hidden = eqx.nn.Linear(8, 16, key=k1)
        self.out = eqx.nn.Linear(16, 3, key=k2)

    def __call__(self, x: jax.Array) -> jax.Array:  # one example, as Equinox layers are
        return self.out(jax.nn.relu(self.hidden(x)))


def test_equinox_model() -> None:
    mlp = EqxMLP(jax.random.key(0))
    r = jaxinit.compare_model(mlp, DATA, schemes=["he"], seeds=2, steps=10,
                              optimizer=optax.adam(1e-2), key=jax.random.key(3))
    assert r.curves["he"].shape == (2, 10)
    assert r.curves["he"][:, -1].max() < r.curves["he"][:, 0].min()
    # Oracle for the first loss: eqx.partition, reinit by path (weights He, biases zero),
    # eqx.combine, and optax's cross-entropy over the vmapped examples.
    params, static = eqx.partition(mlp, eqx.is_inexact_array)
    for i, k in enumerate(jax.random.split(jax.random.key(3), 2)):
        p = jaxinit.reinit(params, k, [(r".*/weight", jaxinit.he_normal()),
                                       (r".*/bias", jaxinit.zeros)])
        assert float(jnp.abs(p.out.weight).max()) > 0 and float(jnp.abs(p.out.bias).max()) == 0
        logits = jax.vmap(eqx.combine(p, static))(jnp.asarray(DATA[0]))
        want = optax.softmax_cross_entropy_with_integer_labels(logits, DATA[1]).mean()
        assert r.curves["he"][i, 0] == pytest.approx(float(want), rel=1e-5)


# --------------------------------------------------------------------------------------
# Data forms: minibatches of arrays, an iterable of batches, a batch function.

XB = DATA[0][:96].reshape(3, 32, 8)
YB = DATA[1][:96].reshape(3, 32)
TEST = (DATA[2], DATA[3])
FORM_STEPS = 6


def _forms_run(data: object, **kw: object) -> jaxinit.ModelComparison:
    return jaxinit.compare_model(
        LinenMLP(), data, schemes=["he"], seeds=2, steps=FORM_STEPS,
        optimizer=optax.adam(1e-2), key=jax.random.key(5), **kw,
    )


@pytest.fixture(scope="module")
def arrays_run() -> jaxinit.ModelComparison:
    return _forms_run(DATA, batch_size=32)


def test_iterable_and_batch_function_train_on_the_same_batches(
    arrays_run: jaxinit.ModelComparison,
) -> None:
    def endless():  # the same three minibatches, forever: only `steps` of them are read
        while True:
            yield from zip(XB, YB, strict=True)

    def batch(key: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array]:
        return jnp.asarray(XB)[step % 3], jnp.asarray(YB)[step % 3]

    for data in (endless(), batch):
        r = _forms_run(data, test=TEST)
        np.testing.assert_allclose(r.curves["he"], arrays_run.curves["he"], rtol=1e-6)
        np.testing.assert_allclose(r.finals["he"]["test_loss"],
                                   arrays_run.finals["he"]["test_loss"], rtol=1e-6)
        # train_loss of a stream: the mean over its `steps` batches, here each of the
        # three equal minibatches twice, so the loss on the whole training set.
        np.testing.assert_allclose(r.finals["he"]["train_loss"],
                                   arrays_run.finals["he"]["train_loss"], rtol=1e-5)


def test_batch_function_gets_a_per_seed_key_shared_by_schemes() -> None:
    def noisy(key: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array]:
        noise = jax.random.normal(jax.random.fold_in(key, step), (32, 8))
        return jnp.asarray(XB)[step % 3] + noise, jnp.asarray(YB)[step % 3]

    r = jaxinit.compare_model(
        LinenMLP(), noisy, test=TEST, schemes={"a": "he", "b": jaxinit.he_normal()},
        seeds=2, steps=3, key=jax.random.key(5),
    )
    np.testing.assert_array_equal(r.curves["a"], r.curves["b"])  # paired: same data, init
    # The batch of seed i is batch(fold_in(seed key i, 1), step): recompute step 0's loss.
    keys = jax.random.split(jax.random.key(5), 2)
    params = LinenMLP().init(jax.random.key(5), DATA[0][:1])["params"]
    rules = [(r".*/kernel", jaxinit.he_normal()), (r".*/bias", jaxinit.zeros)]
    for i in range(2):
        x, y = noisy(jax.random.fold_in(keys[i], 1), jnp.int32(0))
        want = _first_loss(jaxinit.reinit(params, keys[i], rules), x, y)
        assert r.curves["a"][i, 0] == pytest.approx(want, rel=1e-5)
    assert r.curves["a"][0, 0] != r.curves["a"][1, 0]


def test_xy_arrays_hold_out_the_last_fifth() -> None:
    from jaxinit._src.compare.api import _check_data

    x = np.concatenate([DATA[0], DATA[2]])
    y = np.concatenate([DATA[1], DATA[3]])
    n_test = len(x) // 5  # 28 of 144
    for d in (_check_data((x, y), None, 3, None, jax.random.key(0)),
              _check_data((x[:-n_test], y[:-n_test]), (x[-n_test:], y[-n_test:]), 3, None,
                          jax.random.key(0))):
        assert d.kind == "arrays" and d.train is not None
        np.testing.assert_array_equal(d.train[0], x[:-n_test])
        np.testing.assert_array_equal(d.train[1], y[:-n_test])
        np.testing.assert_array_equal(d.test[0], x[-n_test:])
        np.testing.assert_array_equal(d.test[1], y[-n_test:])


def _gen_short():
    yield from zip(XB, YB, strict=True)


def _gen_ragged():
    yield XB[0], YB[0]
    yield XB[1][:16], YB[1][:16]


STREAM_BAD = [
    ({"data": _gen_short, "steps": 5}, ValueError,
     "data gave 3 batches; expected at least steps=5"),
    ({"data": _gen_ragged, "steps": 2}, ValueError, "data batch 1 has shapes/dtypes"),
    ({"data": lambda: list(_gen_ragged()), "steps": 2}, ValueError,
     "data batch 1 has shapes/dtypes"),
    ({"data": lambda: (DATA[0][:4], DATA[1][:4])}, ValueError, "too few to hold out"),
    ({"data": lambda: [(XB[0], YB[0])], "test": None}, ValueError, "test is None"),
    ({"data": lambda: [(XB[0], YB[0])], "batch_size": 8}, ValueError, "batch_size=8 is for array"),
    ({"data": lambda: [(XB[0].astype(str), YB[0])]}, TypeError, "inputs of dtype <U"),
    ({"data": lambda: [(XB[0],)]}, TypeError, "expected a tuple (x, y, ...)"),
    ({"data": lambda: lambda step: (XB[0], YB[0])}, TypeError, "not batch(key, step)"),
    ({"data": lambda: lambda k, s: (XB[0][s], YB[0])}, ValueError, "batch(key, step) cannot be"),
    ({"data": lambda: DATA, "test": TEST}, ValueError, "test= is given but data already"),
    ({"data": lambda: DATA, "test": DATA[2]}, ValueError, "test of type ndarray"),
    ({"data": lambda: DATA, "loss": lambda apply, b: apply(b[0])}, ValueError,
     "loss returned (96, 3)"),
    ({"data": lambda: DATA, "loss": lambda apply, b: b[1].sum()}, ValueError,
     "loss returned () of dtype int32; expected a float scalar"),
    ({"data": lambda: DATA, "loss": lambda apply, b: b[7]}, ValueError,
     "loss cannot be evaluated"),
    ({"data": lambda: DATA, "rules": 3}, TypeError, "rules=3; expected a callable"),
    ({"data": lambda: DATA, "devices": ["cpu"]}, TypeError, "devices=['cpu']"),
    ({"data": lambda: DATA, "schemes": jaxinit.recipe("gpt2", {"k": {"kernel": XB[0]}},
                                                         n_layers=1)},
     ValueError, "schemes is a single reinit rule list"),
    ({"data": lambda: DATA, "schemes": [[(r".*kernel", jaxinit.zeros)]]}, ValueError,
     "rule list [("),
    ({"data": lambda: DATA, "schemes": {"mine": [(r".*/weight", jaxinit.zeros)]}}, ValueError,
     "schemes['mine']: reinit: "),
    ({"data": lambda: DATA, "schemes": {"mine": 3}}, ValueError, "schemes['mine']=3"),
]


@pytest.mark.parametrize(("kwargs", "error", "needle"), STREAM_BAD)
def test_bad_data_loss_and_scheme_forms(kwargs: dict, error: type, needle: str) -> None:
    args = {"schemes": ["he"], "steps": 3, **kwargs}
    data = args.pop("data")()  # a fresh generator per run
    if not (isinstance(data, tuple) or "test" in args):
        args["test"] = TEST
    with pytest.raises(error, match="compare_model: ") as info:
        jaxinit.compare_model(LinenMLP(), data, **args)
    assert needle in str(info.value)


# --------------------------------------------------------------------------------------
# Scheme forms: a reinit rule list (a recipe) and rules= for named schemes.


def test_rule_list_schemes_and_rules_override() -> None:
    key = jax.random.key(11)
    params = LinenMLP().init(key, DATA[0][:1])["params"]
    gpt2 = jaxinit.recipe("gpt2", params, n_layers=1, std=0.5)
    custom = [(r"Dense_0/kernel", None), (r"Dense_1/kernel", jaxinit.normal(0.3)),
              (r".*/bias", jaxinit.constant(0.25))]

    def rules(trainable: dict, init: jaxinit.Initializer) -> list:
        assert set(trainable) == {"Dense_0", "Dense_1"}  # the params collection's paths
        return [(p, init if i is None else i) for p, i in custom]

    r = jaxinit.compare_model(
        LinenMLP(), DATA, schemes={"gpt2": gpt2, "he": "he"}, rules=rules, seeds=2,
        steps=1, key=key,
    )
    for i, k in enumerate(jax.random.split(key, 2)):
        want = _first_loss(jaxinit.reinit(params, k, gpt2), DATA[0], DATA[1])
        assert r.curves["gpt2"][i, 0] == pytest.approx(want, rel=1e-5)
        he = [(p, jaxinit.he_normal() if i is None else i) for p, i in custom]
        want = _first_loss(jaxinit.reinit(params, k, he), DATA[0], DATA[1])
        assert r.curves["he"][i, 0] == pytest.approx(want, rel=1e-5)


def test_default_rules_draw_weights_zero_biases_and_keep_norm_scales() -> None:
    from jaxinit._src.compare.api import default_rules

    class Net(nn.Module):
        @nn.compact
        def __call__(self, t: jax.Array) -> jax.Array:
            h = nn.Embed(10, 8)(t)
            h = nn.LayerNorm(scale_init=nn.initializers.constant(2.0))(h)
            return nn.Conv(4, (3,))(h)

    params = Net().init(jax.random.key(0), jnp.zeros((1, 5), jnp.int32))["params"]
    init = jaxinit.he_uniform()
    got = dict(default_rules(params, init))
    assert got == {
        r"Embed_0/embedding": init,
        r"Conv_0/kernel": init,
        r"Conv_0/bias": jaxinit.zeros,
        r"LayerNorm_0/bias": jaxinit.zeros,
    }


# --------------------------------------------------------------------------------------
# Callbacks: progress per chunk of steps, on_result per finished scheme (Ctrl-C).


def test_progress_chunks_and_partial_results_on_interrupt(
    linen_result: jaxinit.ModelComparison,
) -> None:
    calls: list[tuple] = []
    partial: list[dict] = []

    def on_result(scheme: str, result: jaxinit.ModelComparison) -> None:
        partial.append(json.loads(result.to_json()))
        raise KeyboardInterrupt  # as Ctrl-C would, after the first scheme

    with pytest.raises(KeyboardInterrupt):
        jaxinit.compare_model(
            LinenMLP(), DATA, schemes=["he", "xavier"], seeds=SEEDS, steps=25,
            optimizer=optax.adam(1e-2), key=jax.random.key(7),
            progress=lambda *a: calls.append(a), on_result=on_result,
        )
    # 25 steps in chunks of ceil(25 / 10) = 3; the last chunk's 2 extra steps are no-ops.
    assert calls == [("he", SEEDS, s) for s in (3, 6, 9, 12, 15, 18, 21, 24, 25)]
    assert len(partial) == 1 and list(partial[0]["schemes"]) == ["he"]
    doc = partial[0]["schemes"]["he"]
    # The same run as the fixture's 30 steps, cut at 25: the curve is its first 25
    # losses, and the final full-batch train loss is the fixture's loss before step 25.
    np.testing.assert_allclose(doc["curves"], linen_result.curves["he"][:, :25], rtol=1e-6)
    np.testing.assert_allclose(doc["finals"]["train_loss"], linen_result.curves["he"][:, 25],
                               rtol=1e-5)


# --------------------------------------------------------------------------------------
# The seed axis sharded over 8 simulated devices (`make sharded`).


@pytest.mark.sharded
def test_seed_axis_sharded_over_devices_equals_one_device() -> None:
    from jax.sharding import NamedSharding, PartitionSpec

    from jaxinit._src.compare.api import _check_data, _programs, _seed_sharding, run_seeds

    devices = jax.devices()
    assert len(devices) == 8
    kw = {"schemes": ["he"], "seeds": 3, "steps": 4, "key": jax.random.key(2)}
    many = jaxinit.compare_model(LinenMLP(), DATA, **kw)
    one = jaxinit.compare_model(LinenMLP(), DATA, devices=devices[:1], **kw)
    assert many.curves["he"].shape == (3, 4)
    np.testing.assert_allclose(many.curves["he"], one.curves["he"], rtol=1e-5)
    for m in ("train_loss", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(many.finals["he"][m], one.finals["he"][m], rtol=1e-5)

    # The per-seed arrays: 3 seeds padded to 8, one seed per device along P("seeds").
    sharding, padded = _seed_sharding(None, 3)
    assert padded == 8 and isinstance(sharding, NamedSharding)
    model = LinenMLP()
    variables = model.init(jax.random.key(2), DATA[0][:1])
    adapter = jaxinit._src.diagnose.probe.adapt("test", model, variables=variables)
    data = _check_data(DATA, None, 4, None, jax.random.key(2))
    programs = _programs(adapter, data, jaxinit._src.diagnose.at_init._default_loss,
                         optax.adam(1e-3), 4, 4)
    keys = jax.random.split(jax.random.key(2), 8)
    out = run_seeds(programs, lambda k: jaxinit.reinit(adapter.trainable, k, [
        (r".*/kernel", jaxinit.he_normal()), (r".*/bias", jaxinit.zeros)]), keys, sharding, 4)
    for name, arr in out.items():
        assert arr.sharding.spec == PartitionSpec("seeds"), name
        assert {s.device for s in arr.addressable_shards} == set(devices)
        assert all(s.data.shape[0] == 1 for s in arr.addressable_shards)
    np.testing.assert_allclose(np.asarray(out["curve"])[:3], many.curves["he"], rtol=1e-5)
