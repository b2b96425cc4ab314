"""HF safetensors directories: single file and sharded index, read lazily and checked."""

import json

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
    with pytest.raises(jaxinit.PretrainedError, match=r"00002.*'extra'.*does not list it"):
        jaxinit.open_weights(tmp_path)


def test_index_key_missing_from_shard_header(tmp_path):
    index = _sharded(tmp_path)
    save_file({"a": np.zeros((2, 3), np.float32), "b": np.zeros((4,), np.int64)},
              tmp_path / "model-00001-of-00002.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(jaxinit.PretrainedError, match=r"00001.*'b'.*maps it to"):
        jaxinit.open_weights(tmp_path)
