"""stream_pretrained on 8 simulated CPU devices: each device's slice read straight from a
sharded HF safetensors directory, values equal to the whole-tensor load, bytes exact.

Run by `make sharded` (XLA_FLAGS=--xla_force_host_platform_device_count=8); with fewer
devices these tests fail rather than skip.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from safetensors.numpy import load_file, save_file

import jaxinit
from jaxinit._src.pretrained.hf_rules import split_qkv

pytestmark = pytest.mark.sharded

# (checkpoint key, stored (PyTorch) shape, target path, transform)
KEYS = {
    "model.embed_tokens.weight": ((64, 16), "embed/embedding", None),
    "model.layers.0.q_proj.weight": ((32, 16), "layers/0/q_proj/kernel", jaxinit.layout.linear),
    "model.layers.0.o_proj.weight": ((16, 32), "layers/0/o_proj/kernel", jaxinit.layout.linear),
    "model.norm.weight": ((16,), "norm/scale", None),
}
RULES = [(r"model\.embed_tokens\.weight", "embed/embedding", None),
         (r"model\.layers\.(\d+)\.(\w+)\.weight", r"layers/\1/\2/kernel", jaxinit.layout.linear),
         (r"model\.norm\.weight", "norm/scale", None)]


@pytest.fixture(autouse=True)
def _eight_devices():
    if jax.device_count() < 8:
        pytest.fail(f"stream tests need 8 devices, found {jax.device_count()}: run with "
                    "XLA_FLAGS=--xla_force_host_platform_device_count=8")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream")
    rng = np.random.default_rng(0)
    weight_map = {}
    for i, key in enumerate(KEYS):
        shard = f"model-{i // 2 + 1:05d}-of-00002.safetensors"
        weight_map[key] = shard
    for shard in sorted(set(weight_map.values())):
        save_file({k: rng.standard_normal(KEYS[k][0]).astype(np.float32)
                   for k, s in weight_map.items() if s == shard}, path / shard)
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    oracle = {}
    for shard in sorted(set(weight_map.values())):
        oracle.update(load_file(path / shard))
    return path, oracle


def _target(mesh, specs, dtype=jnp.float32):
    tree: dict = {}
    for shape, path, transform in KEYS.values():
        flax_shape = shape[::-1] if transform is not None else shape
        node = tree
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = jax.ShapeDtypeStruct(flax_shape, dtype,
                                          sharding=NamedSharding(mesh, specs[path]))
    return tree


def _expected(oracle, path):
    key = next(k for k, v in KEYS.items() if v[1] == path)
    return oracle[key].T if KEYS[key][2] is not None else oracle[key]


def _leaves(tree):
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(str(getattr(k, "key", k)) for k in p): v for p, v in flat}


def test_fully_sharded_slices_match_the_whole_load(hf_dir):
    path, oracle = hf_dir
    mesh = jax.make_mesh((8,), ("x",))
    # q_proj (in, out) sharded on `out`: contiguous rows of the stored (out, in) weight;
    # o_proj sharded on `in`: a strided column block of the stored weight.
    specs = {"embed/embedding": P("x", None), "layers/0/q_proj/kernel": P(None, "x"),
             "layers/0/o_proj/kernel": P("x", None), "norm/scale": P("x")}
    params, report = jaxinit.stream_pretrained(_target(mesh, specs), path, rules=RULES)
    total = sum(a.nbytes for a in oracle.values())
    assert report.bytes_read == total and not report.full_reads
    for leaf_path, array in _leaves(params).items():
        expected = _expected(oracle, leaf_path)
        np.testing.assert_array_equal(np.asarray(array), expected)
        assert array.sharding == NamedSharding(mesh, specs[leaf_path])
        per_device = [s.data.nbytes for s in array.addressable_shards]
        assert per_device == [expected.nbytes // 8] * 8, leaf_path
        for shard in array.addressable_shards:  # each device holds exactly its own block
            np.testing.assert_array_equal(np.asarray(shard.data), expected[shard.index])
    assert sorted(report.loaded) == sorted(v[1] for v in KEYS.values())


def test_replicated_and_2d_mesh_read_each_slice_once_and_cast(hf_dir):
    path, oracle = hf_dir
    mesh = jax.make_mesh((2, 4), ("a", "b"))
    specs = {"embed/embedding": P("b", "a"), "layers/0/q_proj/kernel": P("a", None),
             "layers/0/o_proj/kernel": P(None, "b"), "norm/scale": P()}
    params, report = jaxinit.stream_pretrained(_target(mesh, specs, jnp.bfloat16), path,
                                               rules=RULES)
    # Replicated devices share one read: every stored byte is read exactly once.
    assert report.bytes_read == sum(a.nbytes for a in oracle.values())
    assert {c.key for c in report.cast} == {v[1] for v in KEYS.values()}
    for leaf_path, array in _leaves(params).items():
        assert array.dtype == jnp.bfloat16
        expected = _expected(oracle, leaf_path).astype(jnp.bfloat16)  # NumPy's cast: oracle
        np.testing.assert_array_equal(np.asarray(array), expected)
    assert params["norm"]["scale"].sharding.is_fully_replicated


def test_non_permutation_transform_reads_the_whole_tensor(tmp_path):
    fused = np.arange(8 * 24, dtype=np.float32).reshape(8, 24)
    save_file({"h.0.attn.c_attn.weight": fused}, tmp_path / "model.safetensors")
    mesh = jax.make_mesh((8,), ("x",))
    leaf = jax.ShapeDtypeStruct((8, 8), jnp.float32, sharding=NamedSharding(mesh, P("x")))
    target = {"attn": {p: {"kernel": leaf} for p in ("q_proj", "k_proj", "v_proj")}}
    rules = [(r"h\.0\.attn\.c_attn\.weight", "attn", split_qkv("kernel"))]
    params, report = jaxinit.stream_pretrained(target, tmp_path, rules=rules)
    assert report.full_reads == ["h.0.attn.c_attn.weight"] and report.bytes_read == fused.nbytes
    for i, p in enumerate(("q_proj", "k_proj", "v_proj")):
        np.testing.assert_array_equal(np.asarray(params["attn"][p]["kernel"]),
                                      fused[:, 8 * i:8 * (i + 1)])


def test_errors_name_the_leaf(hf_dir):
    path, _ = hf_dir
    mesh = jax.make_mesh((8,), ("x",))
    specs = {"embed/embedding": P(), "layers/0/q_proj/kernel": P(),
             "layers/0/o_proj/kernel": P(), "norm/scale": P()}
    target = _target(mesh, specs)
    target["extra"] = {"kernel": jax.ShapeDtypeStruct((2, 2), jnp.float32)}
    with pytest.raises(jaxinit.PretrainedError, match=r"1 abstract target leaves.*extra/kernel"):
        jaxinit.stream_pretrained(target, path, rules=RULES)
    wrong = [(r, t, None) for r, t, _ in RULES]  # no transpose: (32, 16) vs (16, 32)
    with pytest.raises(jaxinit.PretrainedError, match=r"shape-mismatched"):
        jaxinit.stream_pretrained(_target(mesh, specs), path, rules=wrong)
    odd = jax.ShapeDtypeStruct((6, 4), jnp.float32, sharding=NamedSharding(mesh, P("x")))
    with pytest.raises(ValueError, match=r"stream_pretrained: target leaf 'w'.*\(6, 4\).*"
                                         r"does not divide"):
        jaxinit.stream_pretrained({"w": odd}, {"w": np.zeros((6, 4), np.float32)})
    with pytest.raises(ValueError, match=r"stream_pretrained: on_mismatch='no'"):
        jaxinit.stream_pretrained(_target(mesh, specs), path, rules=RULES, on_mismatch="no")


def test_axis_permutation_detects_layout_converters():
    from jaxinit._src.pretrained.stream import axis_permutation

    assert axis_permutation(jaxinit.layout.linear, (6, 4)) == (1, 0)
    assert axis_permutation(jaxinit.layout.conv, (8, 3, 5, 5)) == (2, 3, 1, 0)
    assert axis_permutation(None, (3,)) == (0,)
    assert axis_permutation(lambda w: w[::-1], (4, 2)) is None  # a flip is not a transpose
    assert axis_permutation(lambda w: w.reshape(-1), (4, 2)) is None


def test_a_format_without_slices_is_read_whole_once(hf_dir):
    _, oracle = hf_dir
    mesh = jax.make_mesh((8,), ("x",))
    key = "model.layers.0.o_proj.weight"
    leaf = jax.ShapeDtypeStruct((32, 16), jnp.float32, sharding=NamedSharding(mesh, P("x")))
    params, report = jaxinit.stream_pretrained(  # an in-memory mapping reads whole arrays
        {"o": leaf}, {key: oracle[key]}, rules=[(r".*o_proj.*", "o", jaxinit.layout.linear)])
    assert report.full_reads == [key] and report.bytes_read == oracle[key].nbytes
    np.testing.assert_array_equal(np.asarray(params["o"]), oracle[key].T)
    assert [s.data.shape for s in params["o"].addressable_shards] == [(4, 16)] * 8


@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    """4 layers of q_proj (out 16, in 8) and fused c_attn (8, 24) in 2 shards, and 2x3
    experts' w1 (8, 4): per-layer keys for stacked (scanned) targets."""
    path = tmp_path_factory.mktemp("layered")
    rng = np.random.default_rng(1)
    tensors = {f"layers.{i}.q_proj.weight": rng.standard_normal((16, 8)) for i in range(4)}
    tensors |= {f"layers.{i}.c_attn.weight": rng.standard_normal((8, 24)) for i in range(4)}
    tensors |= {f"layers.{i}.experts.{e}.w1.weight": rng.standard_normal((4, 8))
                for i in range(2) for e in range(3)}
    tensors = {k: v.astype(np.float32) for k, v in tensors.items()}
    keys = sorted(tensors)
    weight_map = {k: f"model-0000{1 + n % 2}-of-00002.safetensors" for n, k in enumerate(keys)}
    for shard in sorted(set(weight_map.values())):
        save_file({k: tensors[k] for k in keys if weight_map[k] == shard}, path / shard)
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return path, tensors


LAYER_RULES = [
    (r"layers\.(\d+)\.q_proj\.weight", r"layers/q_proj/kernel[\1]", jaxinit.layout.linear),
    (r"layers\.(\d+)\.c_attn\.weight", r"layers/attn[\1]", split_qkv("kernel")),
    (r"layers\.(\d+)\.experts\.(\d+)\.w1\.weight", r"layers/experts/w1[\1,\2]",
     jaxinit.layout.linear)]


def _layered_target(mesh, q_spec, attn_spec, dtype=jnp.float32):
    def leaf(shape, spec):
        return jax.ShapeDtypeStruct(shape, dtype, sharding=NamedSharding(mesh, spec))

    return {"layers": {"q_proj": {"kernel": leaf((4, 8, 16), q_spec)},
                       "attn": {p: {"kernel": leaf((4, 8, 8), attn_spec)}
                                for p in ("q_proj", "k_proj", "v_proj")},
                       "experts": {"w1": leaf((2, 3, 8, 4), P())}}}


def test_stacked_leaves_stream_each_devices_layers(layered):
    path, tensors = layered
    mesh = jax.make_mesh((2, 4), ("a", "b"))
    # q_proj: layers on `a`, output features on `b`: each device reads a column block of
    # the stored (out, in) weights of its 2 layers only.
    target = _layered_target(mesh, P("a", None, "b"), P("a"))
    params, report = jaxinit.stream_pretrained(target, path, rules=LAYER_RULES)
    stacked_q = np.stack([tensors[f"layers.{i}.q_proj.weight"].T for i in range(4)])
    array = params["layers"]["q_proj"]["kernel"]
    np.testing.assert_array_equal(np.asarray(array), stacked_q)
    for shard in array.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), stacked_q[shard.index])
        assert shard.data.shape == (2, 8, 4)
    fused = np.stack([tensors[f"layers.{i}.c_attn.weight"] for i in range(4)])
    for j, p in enumerate(("q_proj", "k_proj", "v_proj")):
        np.testing.assert_array_equal(np.asarray(params["layers"]["attn"][p]["kernel"]),
                                      fused[:, :, 8 * j:8 * (j + 1)])
    experts = np.stack([[tensors[f"layers.{i}.experts.{e}.w1.weight"].T for e in range(3)]
                        for i in range(2)])
    np.testing.assert_array_equal(np.asarray(params["layers"]["experts"]["w1"]), experts)
    # Every stored byte once: q_proj's blocks are disjoint, each fused c_attn is read whole
    # once for its three outputs, the replicated experts are read once.
    assert report.bytes_read == sum(a.nbytes for a in tensors.values())
    assert sorted(report.full_reads) == [f"layers.{i}.c_attn.weight" for i in range(4)]
    assert report.loaded["layers/q_proj/kernel"] == ", ".join(
        f"layers.{i}.q_proj.weight" for i in range(4))
    assert report.loaded["layers/experts/w1"].split(", ")[:4] == [
        "layers.0.experts.0.w1.weight", "layers.0.experts.1.w1.weight",
        "layers.0.experts.2.w1.weight", "layers.1.experts.0.w1.weight"]


def test_stacked_leaf_streams_in_bfloat16_like_load_pretrained(layered):
    path, _ = layered
    mesh = jax.make_mesh((8,), ("x",))
    target = _layered_target(mesh, P(None, "x"), P(), dtype=jnp.bfloat16)
    streamed, report = jaxinit.stream_pretrained(target, path, rules=LAYER_RULES)
    loaded, _ = jaxinit.load_pretrained(target, path, rules=LAYER_RULES)
    for (p, a), b in zip(_leaves(streamed).items(), _leaves(loaded).values(), strict=True):
        assert a.dtype == b.dtype == jnp.bfloat16, p
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=p)
    assert {c.key for c in report.cast} == set(_leaves(target))


def test_stacked_leaf_with_a_missing_layer_names_its_key(layered):
    path, tensors = layered
    mesh = jax.make_mesh((8,), ("x",))
    target = _layered_target(mesh, P(), P())
    target["layers"]["q_proj"]["kernel"] = jax.ShapeDtypeStruct(
        (5, 8, 16), jnp.float32, sharding=NamedSharding(mesh, P()))
    with pytest.raises(jaxinit.PretrainedError, match=r"key 'layers\.4\.q_proj\.weight' is "
                                                      r"missing"):
        jaxinit.stream_pretrained(target, path, rules=LAYER_RULES)
    # A mismatched slice (a layer stored with the wrong shape) leaves the whole stacked
    # leaf out: kept when concrete, an error when abstract, never half-filled.
    bad = dict(tensors, **{"layers.2.q_proj.weight": np.zeros((16, 9), np.float32)})
    target = _layered_target(mesh, P(), P())
    with pytest.warns(jaxinit.LoadWarning, match="1 shape-mismatched"), \
            pytest.raises(jaxinit.PretrainedError, match=r"abstract target leaves would stay "
                                                         r"unfilled.*layers/q_proj/kernel"):
        jaxinit.stream_pretrained(target, bad, rules=LAYER_RULES, on_mismatch="warn")
