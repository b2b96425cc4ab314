"""The `pretrained` initializer and `load_pretrained`: partial loads, reports, atomicity."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import safetensors.numpy
from flax import nnx
from flax.serialization import msgpack_serialize
from jax.sharding import NamedSharding, PartitionSpec

import jaxinit
from jaxinit import PretrainedError

KEY = jax.random.key(0)


@pytest.fixture
def ckpt(tmp_path):
    rng = np.random.default_rng(1)
    arrays = {"fc.weight": rng.standard_normal((4, 3)).astype(np.float32),
              "conv.weight": rng.standard_normal((8, 3, 5, 5)).astype(np.float32),
              "big": np.array([1.0, 1e5, -2e5, 1e-10], np.float32),
              "count": np.arange(4, dtype=np.int32)}
    path = tmp_path / "ckpt.safetensors"
    safetensors.numpy.save_file(arrays, str(path))
    return path, arrays


# --- pretrained(...) ------------------------------------------------------------------


def test_pretrained_is_an_initializer_in_nnx_and_linen(ckpt):
    path, arrays = ckpt
    init = jaxinit.pretrained(path, "fc.weight", transform=jaxinit.layout.linear)
    assert isinstance(init, jax.nn.initializers.Initializer)
    layer = nnx.Linear(3, 4, kernel_init=init, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(layer.kernel[...], arrays["fc.weight"].T)
    variables = jax.jit(nn.Dense(4, kernel_init=init).init)(KEY, jnp.ones((1, 3)))
    np.testing.assert_array_equal(variables["params"]["kernel"], arrays["fc.weight"].T)


def test_pretrained_bare_array_and_dtype_none_under_x64():
    init = jaxinit.pretrained(np.arange(3, dtype=np.float32))
    assert init(KEY, (3,)).dtype == jnp.float32
    with jax.enable_x64(True):
        assert init(KEY, (3,)).dtype == jnp.float64  # dtype=None: default float at call time
    with pytest.raises(TypeError, match="name='x' is only for a checkpoint"):
        jaxinit.pretrained(np.zeros(2), "x")


def test_pretrained_shape_mismatch_names_key_and_suggests_layout(ckpt):
    path, _ = ckpt
    with pytest.raises(PretrainedError, match=r"key 'fc\.weight' has shape \(4, 3\) but the "
                                              r"parameter has shape \(3, 4\)\..*layout\.linear"):
        jaxinit.pretrained(path, "fc.weight")(KEY, (3, 4))
    with pytest.raises(PretrainedError, match=r"\(8, 3, 5, 5\).*\(5, 5, 3, 8\).*layout\.conv\b"):
        jaxinit.pretrained(path, "conv.weight")(KEY, (5, 5, 3, 8))
    with pytest.raises(PretrainedError, match=r"\(4, 3\).*\(4, 4\)\.$"):
        jaxinit.pretrained(path, "fc.weight")(KEY, (4, 4))
    with pytest.raises(PretrainedError, match=r"no key 'fc\.wieght'.*close matches"):
        jaxinit.pretrained(path, "fc.wieght")


def test_pretrained_casts_and_refuses_overflow(ckpt):
    path, arrays = ckpt
    init = jaxinit.pretrained(path, "big")
    got = init(KEY, (4,), jnp.bfloat16)
    np.testing.assert_array_equal(got, jnp.asarray(arrays["big"]).astype(jnp.bfloat16))
    with pytest.raises(PretrainedError, match=r"key 'big'.*float32 to float16 overflows 2 "
                                              r"value\(s\) \(largest magnitude 200000\)"):
        init(KEY, (4,), jnp.float16)
    with pytest.raises(PretrainedError, match=r"ckpt\.safetensors: key 'big'.*float32 weights "
                                              r"to int32 would truncate"):
        init(KEY, (4,), jnp.int32)
    counts = jaxinit.pretrained(path, "count")
    assert counts(KEY, (4,), jnp.int8).dtype == jnp.int8
    assert counts(KEY, (4,)).dtype == jnp.int32  # dtype=None keeps an integer dtype
    np.testing.assert_array_equal(counts(KEY, (4,), jnp.float32), [0, 1, 2, 3])


def test_pretrained_out_sharding(ckpt):
    path, _ = ckpt
    mesh = jax.make_mesh((1,), ("x",))
    sharding = NamedSharding(mesh, PartitionSpec("x"))
    out = jaxinit.pretrained(path, "count")(KEY, (4,), jnp.float32, out_sharding=sharding)
    assert out.sharding == sharding
    with jax.set_mesh(mesh):
        out = jaxinit.pretrained(path, "count")(KEY, (4,), out_sharding=PartitionSpec("x"))
    assert out.sharding.spec == PartitionSpec("x")


def test_pretrained_hash_is_identity_not_contents(ckpt, monkeypatch):
    path, _ = ckpt
    a = jaxinit.pretrained(path, "fc.weight")
    b = jaxinit.pretrained(str(path), "fc.weight")
    reads = []
    monkeypatch.setattr(jaxinit.Weights, "__getitem__", lambda self, k: reads.append(k))
    assert a == b and hash(a) == hash(b)
    assert a != jaxinit.pretrained(path, "big")
    assert reads == [], "hashing must not read the array"
    assert "Pretrained(source=Weights(" in repr(a) and "entry='fc.weight'" in repr(a)
    assert dataclasses.is_dataclass(a)


def test_pretrained_checks_the_key(ckpt):
    with pytest.raises(TypeError, match="not a PRNG key"):
        jaxinit.pretrained(ckpt[0], "count")(0, (4,))


# --- load_pretrained --------------------------------------------------------------------


class CNN(nn.Module):
    classes: int = 3

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Conv(4, (3, 3), name="conv")(x)
        x = nn.BatchNorm(use_running_average=not train, name="bn")(x)
        x = nn.relu(x).mean(axis=(1, 2))
        return nn.Dense(self.classes, name="head")(x)


X = jnp.ones((2, 6, 6, 1))


def trained_variables(classes=3, seed=7):
    variables = CNN(classes).init(jax.random.key(seed), X)
    # make batch_stats non-trivial so loading them is observable
    stats = jax.tree.map(lambda s: s + 0.5, variables["batch_stats"])
    return {"params": variables["params"], "batch_stats": stats}


def test_linen_roundtrip_params_and_batch_stats(tmp_path):
    source = trained_variables()
    (tmp_path / "m.msgpack").write_bytes(msgpack_serialize(jax.tree.map(np.asarray, source)))
    fresh = CNN().init(KEY, X)
    loaded, report = jaxinit.load_pretrained(fresh, tmp_path / "m.msgpack")
    assert report.ok and not report.cast
    assert set(report.loaded) == {"params/conv/kernel", "params/conv/bias", "params/bn/scale",
                                  "params/bn/bias", "batch_stats/bn/mean", "batch_stats/bn/var",
                                  "params/head/kernel", "params/head/bias"}
    assert jax.tree.structure(loaded) == jax.tree.structure(source)
    for got, want in zip(jax.tree.leaves(loaded), jax.tree.leaves(source), strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(CNN().apply(loaded, X), CNN().apply(source, X), rtol=0, atol=0)


def test_load_refuses_a_transposed_same_size_weight_unless_a_layout_rule_transposes_it():
    # A PyTorch-layout (out, in) = (4, 3) weight has the same size as the (3, 4) kernel;
    # a shape check that compared sizes (or reshaped) would load it silently scrambled.
    # Planting a size-only comparison makes this test fail (shown once).
    w = np.arange(12, dtype=np.float32).reshape(4, 3)
    kernel = np.full((3, 4), -1.0, np.float32)
    fresh = {"params": {"fc": {"kernel": kernel}}}
    with pytest.raises(PretrainedError, match=r"(?s)shape-mismatched.*fc\.weight \(4, 3\) -> "
                                              r"params/fc/kernel \(3, 4\).*layout\.linear"):
        jaxinit.load_pretrained(fresh, {"fc.weight": w},
                                rules=[(r"fc\.weight", "params/fc/kernel", None)])
    np.testing.assert_array_equal(fresh["params"]["fc"]["kernel"], np.full((3, 4), -1.0))
    loaded, report = jaxinit.load_pretrained(
        fresh, {"fc.weight": w}, rules=[(r"fc\.weight", "params/fc/kernel", jaxinit.layout.linear)])
    assert report.ok and report.loaded == {"params/fc/kernel": "fc.weight"}
    np.testing.assert_array_equal(loaded["params"]["fc"]["kernel"], w.T)  # oracle: NumPy .T
    np.testing.assert_array_equal(fresh["params"]["fc"]["kernel"], np.full((3, 4), -1.0))


def test_partial_load_new_head_and_optax_freeze(tmp_path):
    source = trained_variables(classes=5)
    fresh = CNN(3).init(KEY, X)
    with pytest.raises(PretrainedError, match=r"(?s)shape-mismatched.*head/kernel \(4, 5\) -> "
                                              r"params/head/kernel \(4, 3\)"):
        jaxinit.load_pretrained(fresh, source)
    loaded, report = jaxinit.load_pretrained(fresh, source, reinit=[r"params/head/.*"],
                                             on_unexpected="error")
    assert report.reinit == ["params/head/bias", "params/head/kernel"]
    assert not report.missing and not report.unexpected and not report.mismatched
    np.testing.assert_array_equal(loaded["params"]["head"]["kernel"],
                                  fresh["params"]["head"]["kernel"])
    np.testing.assert_array_equal(loaded["params"]["conv"]["kernel"],
                                  source["params"]["conv"]["kernel"])
    mask = report.mask(loaded["params"])
    assert mask["conv"]["kernel"] and not mask["head"]["kernel"]
    # Freeze the pretrained body: one SGD step changes only the head.
    tx = optax.chain(optax.masked(optax.set_to_zero(), mask), optax.sgd(0.1))
    params = loaded["params"]
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(new["conv"]["kernel"], params["conv"]["kernel"])
    assert not np.allclose(new["head"]["kernel"], params["head"]["kernel"])
    labels = report.labels(params)
    assert labels["bn"]["scale"] == "frozen" and labels["head"]["bias"] == "trainable"


def test_policies_missing_unexpected(tmp_path):
    fresh = CNN().init(KEY, X)
    source = {"params": {"conv": dict(fresh["params"]["conv"])}, "extra": np.zeros(2)}
    with pytest.warns(jaxinit.LoadWarning, match="1 unexpected"):
        _, report = jaxinit.load_pretrained(fresh, source)
    assert report.unexpected == ["extra"]
    assert "params/head/kernel" in report.missing and "batch_stats/bn/mean" in report.missing
    with pytest.raises(PretrainedError, match=r"6 missing entries; nothing was loaded"):
        jaxinit.load_pretrained(fresh, source, on_missing="error", on_unexpected="ignore")
    _, report = jaxinit.load_pretrained(fresh, source, ignore=["ext.*"])
    assert report.ignored == ["extra"]
    text = str(report)
    assert "2 loaded, 6 missing" in text and "missing (fresh init kept):" in text
    with pytest.raises(PretrainedError, match="6 missing"):
        report.raise_if()
    assert report.raise_if(missing=False) is report


def test_rules_with_groups_transform_and_drop():
    fresh = {"params": {"layers_0": {"kernel": np.zeros((3, 4), np.float32)},
                        "layers_1": {"kernel": np.zeros((4, 2), np.float32)}}}
    rng = np.random.default_rng(0)
    sd = {"net.0.weight": rng.standard_normal((4, 3)).astype(np.float32),
          "net.1.weight": rng.standard_normal((2, 4)).astype(np.float32),
          "net.1.tracked": np.zeros(1, np.int64)}
    rules = [(r"net\.(\d+)\.weight", r"params/layers_\1/kernel", jaxinit.layout.linear),
             (r".*tracked", None, None)]
    out, report = jaxinit.load_pretrained(fresh, sd, rules=rules, on_unexpected="error")
    np.testing.assert_array_equal(out["params"]["layers_1"]["kernel"], sd["net.1.weight"].T)
    assert report.loaded == {"params/layers_0/kernel": "net.0.weight",
                             "params/layers_1/kernel": "net.1.weight"}
    assert report.ignored == ["net.1.tracked"]
    clash = [(r"net\.\d+\.weight", "params/layers_0/kernel", jaxinit.layout.linear)]
    with pytest.raises(PretrainedError, match="both map to target 'params/layers_0/kernel'"):
        jaxinit.load_pretrained(fresh, sd, rules=clash, on_unexpected="ignore")


def test_cast_report_counts_underflow_and_refuses_overflow():
    fresh = {"w": np.zeros(3, np.float16)}
    _, report = jaxinit.load_pretrained(fresh, {"w": np.array([1.0, 1e-10, 2.0], np.float32)})
    (info,) = report.cast
    assert (info.key, info.source_dtype, info.dtype, info.overflow, info.underflow) == (
        "w", "float32", "float16", 0, 1)
    with pytest.raises(PretrainedError, match=r"key 'w' -> w: casting float32 to float16 "
                                              r"overflows 1 value"):
        jaxinit.load_pretrained(fresh, {"w": np.array([1.0, 7e4, 2.0], np.float32)})


class Net(nnx.Module):
    def __init__(self, classes, rngs):
        self.body = nnx.Linear(3, 4, rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)
        self.head = nnx.Linear(4, classes, rngs=rngs)

    def __call__(self, x):
        return self.head(nnx.relu(self.bn(self.body(x))))


def nnx_arrays(model):
    return {"/".join(map(str, p)): np.array(v.get_value())
            for p, v in nnx.to_flat_state(nnx.state(model))}


def test_nnx_module_in_place_and_filter_freezes_body():
    source = Net(5, nnx.Rngs(1))
    model = Net(3, nnx.Rngs(2))
    before = nnx_arrays(model)
    same, report = jaxinit.load_pretrained(model, nnx.state(source), reinit=["head/.*"])
    assert same is model
    after, src = nnx_arrays(model), nnx_arrays(source)
    for path in after:
        np.testing.assert_array_equal(after[path], before[path] if path.startswith("head")
                                      else src[path])
    assert "bn/mean" in report.loaded and "head/kernel" in report.reinit
    trainable = nnx.All(nnx.Param, nnx.Not(report.filter))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=trainable)
    x = jax.random.normal(KEY, (8, 3))  # distinct rows: BatchNorm does not zero them
    grads = nnx.grad(lambda m: m(x).sum(), argnums=nnx.DiffState(0, trainable))(model)
    optimizer.update(model, grads)
    changed = nnx_arrays(model)
    np.testing.assert_array_equal(changed["body/kernel"], after["body/kernel"])
    assert not np.allclose(changed["head/kernel"], after["head/kernel"])


def test_failed_load_leaves_nnx_module_untouched():
    model = Net(3, nnx.Rngs(2))
    before = nnx_arrays(model)
    source = nnx_arrays(Net(3, nnx.Rngs(3)))
    source["head/bias"] = np.array([0.0, np.nan, 0.0], np.float32)  # read last: body is valid
    with pytest.raises(PretrainedError, match=r"key 'head/bias' has 1 non-finite"):
        jaxinit.load_pretrained(model, source)
    source["head/bias"] = np.zeros(4, np.float32)
    with pytest.raises(PretrainedError, match=r"head/bias \(4,\) -> head/bias \(3,\)"):
        jaxinit.load_pretrained(model, source)
    for path, value in nnx_arrays(model).items():
        np.testing.assert_array_equal(value, before[path])


def test_complex_to_real_cast_is_a_pretrained_error_naming_file_and_key(tmp_path):
    path = tmp_path / "c.safetensors"
    safetensors.numpy.save_file({"z": np.array([1 + 2j, 3 - 1j], np.complex64)}, str(path))
    drop = r"casting complex complex64 to float32 would drop the imaginary part"
    with pytest.raises(PretrainedError, match=r"c\.safetensors: key 'z': " + drop):
        jaxinit.pretrained(path, "z")(KEY, (2,), jnp.float32)
    target = {"z": jnp.full((2,), 7.0, jnp.float32)}
    with pytest.raises(PretrainedError, match=r"c\.safetensors: key 'z' -> z: " + drop):
        jaxinit.load_pretrained(target, path)
    np.testing.assert_array_equal(target["z"], [7.0, 7.0])  # the target is unchanged
    # complex to complex still loads, value for value
    got = jaxinit.pretrained(path, "z")(KEY, (2,), jnp.complex64)
    np.testing.assert_array_equal(got, np.array([1 + 2j, 3 - 1j], np.complex64))


def test_abstract_linen_target_with_sharding(tmp_path):
    source = trained_variables()
    path = tmp_path / "m.safetensors"
    flat = {"/".join(str(getattr(k, "key", k)) for k in p): np.asarray(v)
            for p, v in jax.tree_util.tree_flatten_with_path(source)[0]}
    safetensors.numpy.save_file(flat, str(path))
    mesh = jax.make_mesh((1,), ("x",))
    abstract = jax.eval_shape(CNN().init, KEY, X)
    sharding = NamedSharding(mesh, PartitionSpec())
    abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                            abstract)
    loaded, report = jaxinit.load_pretrained(abstract, path)
    assert report.ok
    for leaf in jax.tree.leaves(loaded):
        assert isinstance(leaf, jax.Array) and leaf.sharding == sharding
    np.testing.assert_array_equal(loaded["batch_stats"]["bn"]["var"],
                                  source["batch_stats"]["bn"]["var"])
    with pytest.raises(PretrainedError, match=r"2 abstract target leaves would stay unfilled"):
        jaxinit.load_pretrained(abstract, path, ignore=["params/head/.*"])


def test_abstract_nnx_module():
    source = nnx.state(Net(3, nnx.Rngs(1)))
    abstract = nnx.eval_shape(lambda: Net(3, nnx.Rngs(0)))
    model, report = jaxinit.load_pretrained(abstract, source)
    assert report.ok
    np.testing.assert_array_equal(model.body.kernel[...], source["body"]["kernel"][...])
    assert isinstance(model(jnp.ones((2, 3))), jax.Array)


def test_bad_arguments():
    fresh = {"w": np.zeros(2, np.float32)}
    with pytest.raises(ValueError, match="on_missing='skip' is not one of"):
        jaxinit.load_pretrained(fresh, fresh, on_missing="skip")
    with pytest.raises(TypeError, match=r"rules\[0\].*triple"):
        jaxinit.load_pretrained(fresh, fresh, rules=[("w", "w")])
    with pytest.raises(ValueError, match="ignore pattern is not a valid regex"):
        jaxinit.load_pretrained(fresh, fresh, ignore=["("])
