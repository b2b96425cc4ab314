"""HF directories: single file and sharded index (safetensors, or PyTorch when trusted), read
lazily (a shard only when one of its keys is needed) and checked against the index."""

import json
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import jaxinit


def _sharded(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((4,), 7, np.int64)
    save_file({"a": a}, tmp_path / "model-00001-of-00002.safetensors")
    save_file({"b": b}, tmp_path / "model-00002-of-00002.safetensors")
    index = {"metadata": {"total_size": a.nbytes + b.nbytes},
             "weight_map": {"a": "model-00001-of-00002.safetensors",
                            "b": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return index


def test_sharded_index_matches_safetensors_load_file(tmp_path):
    _sharded(tmp_path)
    w = jaxinit.open_weights(tmp_path)
    oracle = {**load_file(tmp_path / "model-00001-of-00002.safetensors"),
              **load_file(tmp_path / "model-00002-of-00002.safetensors")}
    assert sorted(w) == sorted(oracle)
    for k, v in oracle.items():
        np.testing.assert_array_equal(w[k], v)
        assert w[k].dtype == v.dtype
    assert w.metadata["config"] == {"model_type": "llama"}


def test_single_model_safetensors(tmp_path):
    save_file({"x": np.ones((3,), np.float32)}, tmp_path / "model.safetensors")
    w = jaxinit.open_weights(tmp_path)
    np.testing.assert_array_equal(w["x"], np.ones((3,), np.float32))
    assert w.metadata["config"] == {}


def test_index_naming_missing_shard(tmp_path):
    index = _sharded(tmp_path)
    index["weight_map"]["c"] = "model-00003-of-00003.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(jaxinit.PretrainedError, match=r"'c'.*model-00003-of-00003"):
        jaxinit.open_weights(tmp_path)


def test_tensor_in_shard_not_in_index(tmp_path):
    _sharded(tmp_path)
    save_file({"b": np.zeros((4,), np.int64), "extra": np.zeros((1,), np.float32)},
              tmp_path / "model-00002-of-00002.safetensors")
    w = jaxinit.open_weights(tmp_path)  # shards are checked when first opened
    np.testing.assert_array_equal(w["a"], np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(jaxinit.PretrainedError, match=r"00002.*'extra'.*does not list it"):
        w["b"]


def test_index_key_missing_from_shard_header(tmp_path):
    index = _sharded(tmp_path)
    save_file({"a": np.zeros((2, 3), np.float32), "b": np.zeros((4,), np.int64)},
              tmp_path / "model-00001-of-00002.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    w = jaxinit.open_weights(tmp_path)
    with pytest.raises(jaxinit.PretrainedError, match=r"00001.*'b'.*maps it to"):
        w.shape("a")


def test_index_key_not_in_its_shard(tmp_path):
    index = _sharded(tmp_path)
    index["weight_map"]["c"] = "model-00002-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(jaxinit.PretrainedError, match=r"00002.*'c' is in .*not in the shard"):
        jaxinit.open_weights(tmp_path)["c"]


# --- Laziness: which files a load opens, seen by Python's audit hook for open() ----------------

_OPENED: list[str] = []
_WATCH: list[str] = []


def _audit(event, args):
    if event == "open" and _WATCH and isinstance(args[0], str | bytes | int) and \
            str(args[0]).startswith(_WATCH[0]):
        _OPENED.append(str(args[0])[len(_WATCH[0]):].lstrip("/"))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one only records under _WATCH


@pytest.fixture
def opened(tmp_path):
    _OPENED.clear()
    _WATCH[:] = [str(tmp_path)]
    yield _OPENED
    _WATCH.clear()


def _three_shards(path):
    arrays = {f"layer{i}.weight": np.full((4, 3), i, np.float32) for i in range(3)}
    weight_map = {}
    for i, (k, v) in enumerate(arrays.items()):
        shard = f"model-0000{i + 1}-of-00003.safetensors"
        save_file({k: v}, path / shard)
        weight_map[k] = shard
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return arrays


def test_a_shard_is_opened_only_when_one_of_its_keys_is_needed(tmp_path, opened):
    arrays = _three_shards(tmp_path)
    w = jaxinit.open_weights(tmp_path)
    assert sorted(w) == sorted(arrays) and len(w) == 3
    assert not [f for f in opened if f.endswith(".safetensors")]  # only the index so far
    np.testing.assert_array_equal(w["layer1.weight"], arrays["layer1.weight"])
    assert {f for f in opened if f.endswith(".safetensors")} == {"model-00002-of-00003.safetensors"}
    opened.clear()
    target = {"layer0": {"kernel": np.zeros((3, 4), np.float32)},
              "layer2": {"kernel": np.zeros((3, 4), np.float32)}}
    rules = [(r"layer(\d)\.weight", r"layer\1/kernel", jaxinit.layout.linear)]
    params, _ = jaxinit.load_pretrained(target, tmp_path, rules=rules, ignore=r"layer1\..*")
    np.testing.assert_array_equal(params["layer2"]["kernel"], arrays["layer2.weight"].T)
    assert sorted({f for f in opened if f.endswith(".safetensors")}) == [
        "model-00001-of-00003.safetensors", "model-00003-of-00003.safetensors"]


def test_read_slice_reads_the_slice_in_every_dtype(tmp_path):
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 7)).astype(np.float32)
    arrays = {"f32": base, "f16": base.astype(np.float16), "i64": (base * 10).astype(np.int64),
              "bf16": base.astype(jnp.bfloat16), "f8": base.astype(jnp.float8_e4m3fn)}
    from jaxinit._src.pretrained.formats import SAFETENSORS_DTYPES

    codes = {v: k for k, v in SAFETENSORS_DTYPES.items()}
    header, offset, data = {}, 0, b""
    for k, a in arrays.items():  # written by hand: safetensors.numpy cannot write bfloat16
        header[k] = {"dtype": codes[a.dtype], "shape": list(a.shape),
                     "data_offsets": [offset, offset + a.nbytes]}
        offset, data = offset + a.nbytes, data + a.tobytes()
    raw = json.dumps(header).encode()
    (tmp_path / "model.safetensors").write_bytes(len(raw).to_bytes(8, "little") + raw + data)
    w = jaxinit.open_weights(tmp_path)
    for index in [(slice(1, 4), slice(2, 7)), (slice(1, 4), slice(None)),  # mapped; rows
                  (slice(None), slice(None))]:
        for k, a in arrays.items():
            got = w.read_slice(k, index)
            assert got.dtype == a.dtype and got.shape == a[index].shape
            np.testing.assert_array_equal(got.view(np.uint8), a[index].view(np.uint8))
    with pytest.raises(ValueError, match=r"read_slice: index=.*2 slices with step 1"):
        w.read_slice("f32", (slice(0, 4, 2), slice(None)))


def _torch_dir(tmp_path, sharded):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    sd = {"a.weight": torch.randn(3, 2), "b.weight": torch.randn(4).to(torch.bfloat16)}
    if sharded:
        torch.save({"a.weight": sd["a.weight"]}, tmp_path / "pytorch_model-00001-of-00002.bin")
        torch.save({"b.weight": sd["b.weight"]}, tmp_path / "pytorch_model-00002-of-00002.bin")
        weight_map = {"a.weight": "pytorch_model-00001-of-00002.bin",
                      "b.weight": "pytorch_model-00002-of-00002.bin"}
        (tmp_path / "pytorch_model.bin.index.json").write_text(
            json.dumps({"weight_map": weight_map}))
    else:
        torch.save(sd, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 2}))
    return {k: v.float().numpy() for k, v in sd.items()}


@pytest.mark.parametrize("sharded", [False, True])
def test_pytorch_bin_directory_needs_trusted(tmp_path, sharded):
    oracle = _torch_dir(tmp_path, sharded)
    with pytest.raises(jaxinit.PretrainedError, match=r"pytorch_model\.bin.*pickles.*trusted=True"):
        jaxinit.open_weights(tmp_path)
    w = jaxinit.open_weights(tmp_path, trusted=True)
    assert sorted(w) == ["a.weight", "b.weight"] and w.format == "torch"
    assert w.dtype("b.weight") == np.dtype("bfloat16")
    for k, v in oracle.items():
        np.testing.assert_array_equal(np.asarray(w[k], np.float32), v)
    np.testing.assert_array_equal(w.read_slice("a.weight", (slice(1, 3), slice(0, 1))),
                                  oracle["a.weight"][1:3, 0:1])
    assert w.metadata["config"] == {"model_type": "gpt2", "n_layer": 2}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_16_bit_nonfinite_found_past_the_first_chunk(dtype, bad):
    """16-bit floats are checked on their exponent bits, 2**20 values at a time."""
    values = np.ones((3 << 20) + 5, np.float32)
    values[-2] = bad
    array = values.astype(np.dtype(dtype))
    with pytest.raises(jaxinit.PretrainedError, match=r"1 non-finite value.*index \(3145731,\)"):
        jaxinit.open_weights({"w": array})["w"]
    assert jaxinit.open_weights({"w": array[:-2]})["w"].shape == ((3 << 20) + 3,)
