"""open_weights: every format round-trips, headers are read lazily, hostile input is refused."""

import builtins
import hashlib
import json
import pickle
import struct
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
import torch

import jaxinit
from jaxinit import PretrainedError

RNG = np.random.default_rng(0)
ARRAYS = {
    "enc/w": RNG.standard_normal((3, 4)).astype(np.float32),
    "enc/b": RNG.standard_normal(4).astype(np.float16),
    "steps": np.arange(5, dtype=np.int64),
}


def write_safetensors(path, arrays=ARRAYS, metadata=None):
    safetensors.numpy.save_file(arrays, str(path), metadata=metadata)
    return path


def nested(flat):
    tree = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def check_roundtrip(weights, expected=ARRAYS):
    assert sorted(weights) == sorted(expected)
    for key, value in expected.items():
        assert weights.shape(key) == value.shape
        assert weights.dtype(key) == value.dtype
        got = weights[key]
        assert got.dtype == value.dtype
        np.testing.assert_array_equal(got, value)
        assert not got.flags.writeable, "arrays handed out must be read-only"


# --- Every format -----------------------------------------------------------------------


def test_safetensors_roundtrip_and_metadata(tmp_path):
    path = write_safetensors(tmp_path / "m.safetensors", metadata={"format": "pt"})
    weights = jaxinit.open_weights(path)
    check_roundtrip(weights)
    assert weights.metadata == {"format": "pt"}
    assert weights.format == "safetensors"


def test_safetensors_bfloat16_written_by_torch(tmp_path):
    import safetensors.torch

    tensor = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    safetensors.torch.save_file({"w": tensor}, str(tmp_path / "bf.safetensors"))
    got = jaxinit.open_weights(tmp_path / "bf.safetensors")["w"]
    assert got.dtype == jnp.bfloat16
    np.testing.assert_array_equal(got.astype(np.float32), tensor.float().numpy())


def test_safetensors_header_is_read_before_data(tmp_path, monkeypatch):
    path = write_safetensors(tmp_path / "m.safetensors")
    weights = jaxinit.open_weights(path)
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    assert weights.shape("enc/w") == (3, 4) and weights.specs["steps"].dtype == np.int64
    assert opened == [], "shapes and dtypes must come from the header already read"
    weights["enc/w"]
    assert len(opened) == 1


def test_npz_roundtrip(tmp_path):
    np.savez(tmp_path / "m.npz", **ARRAYS)
    check_roundtrip(jaxinit.open_weights(tmp_path / "m.npz"))


def test_msgpack_roundtrip_nested_keys(tmp_path):
    from flax.serialization import msgpack_serialize

    (tmp_path / "m.msgpack").write_bytes(msgpack_serialize(nested(ARRAYS)))
    check_roundtrip(jaxinit.open_weights(tmp_path / "m.msgpack"))


def test_orbax_roundtrip_metadata_first(tmp_path):
    import orbax.checkpoint as ocp

    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "ckpt", nested(ARRAYS))
    checkpointer.wait_until_finished()
    weights = jaxinit.open_weights(tmp_path / "ckpt")
    assert weights.format == "orbax"
    check_roundtrip(weights)


def test_memory_pytree_linen_and_nnx_state():
    check_roundtrip(jaxinit.open_weights(nested(ARRAYS)))
    from flax import nnx

    model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    weights = jaxinit.open_weights(nnx.state(model))
    assert sorted(weights) == ["bias", "kernel"]
    np.testing.assert_array_equal(weights["kernel"], np.asarray(model.kernel[...]))


def test_torch_state_dict_only_when_trusted(tmp_path):
    model = torch.nn.Linear(3, 2)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    with pytest.raises(PretrainedError, match=r"m\.pt.*trusted=True"):
        jaxinit.open_weights(tmp_path / "m.pt")
    weights = jaxinit.open_weights(tmp_path / "m.pt", trusted=True)
    np.testing.assert_array_equal(weights["weight"], model.weight.detach().numpy())


def test_identity_equality_and_hash(tmp_path):
    path = write_safetensors(tmp_path / "m.safetensors")
    a, b = jaxinit.open_weights(path), jaxinit.open_weights(str(path))
    assert a == b and hash(a) == hash(b)
    source = dict(ARRAYS)
    assert jaxinit.open_weights(source) != jaxinit.open_weights(dict(ARRAYS))


def test_missing_key_suggests_close_matches(tmp_path):
    weights = jaxinit.open_weights(write_safetensors(tmp_path / "m.safetensors"))
    with pytest.raises(PretrainedError, match=r"no key 'enc/W'.*'enc/w'") as info:
        weights["enc/W"]
    assert isinstance(info.value, KeyError)
    assert "enc/W" not in weights


def test_sha256_pin(tmp_path):
    path = write_safetensors(tmp_path / "m.safetensors")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(jaxinit.open_weights(path, sha256=digest)) == 3
    with pytest.raises(PretrainedError, match=r"m\.safetensors: sha256 is .* expected 00"):
        jaxinit.open_weights(path, sha256="00" * 32)


# --- Hostile and broken input -------------------------------------------------------------


class Exploit:
    """Unpickling this creates `marker`: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


@pytest.mark.parametrize("container", ["torch_zip", "raw_pickle"])
@pytest.mark.parametrize("trusted", [False, True])
def test_hostile_pickle_never_executes(tmp_path, container, trusted):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"weight": torch.zeros(2), "evil": Exploit(marker)}
    if container == "torch_zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    assert not marker.exists()
    with pytest.raises(PretrainedError, match=r"evil\.pt") as info:
        jaxinit.open_weights(path, trusted=trusted)
    if trusted:
        assert "weights_only=True" in str(info.value)
    assert not marker.exists(), "the pickle payload ran"


def test_npz_object_array_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    obj = np.empty(1, dtype=object)
    obj[0] = Exploit(marker)
    np.savez(tmp_path / "evil.npz", w=np.zeros(2), evil=obj)
    with pytest.raises(PretrainedError, match=r"evil\.npz: key 'evil' is an object array"):
        jaxinit.open_weights(tmp_path / "evil.npz")
    assert not marker.exists()


def raw_safetensors(path, header, data=b""):
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


@pytest.mark.parametrize("case, message", [
    ("empty", r"truncated safetensors file \(0 bytes"),
    ("absurd_header", r"header length 18446744073709551615 bytes is absurd"),
    ("header_past_end", r"truncated safetensors file: the header claims 1000 bytes"),
    ("not_json", r"corrupted safetensors header \(not JSON"),
    ("data_truncated", r"key '[a-z/]+' spans bytes \d+\.\.\d+ but the data section has 20 bytes"),
    ("size_disagrees", r"key 'w' is F32\[2, 2\] \(16 bytes\) but spans 12 bytes"),
    ("overlap", r"key 'b' starts at byte 0, expected 8"),
    ("bad_entry", r"key 'w' has a corrupted header entry"),
    ("deeply_nested", r"corrupted safetensors header \(JSON nested deeper than \d+ levels"),
    ("huge_integer", r"corrupted safetensors header \(not JSON: .*5000 digits"),
])
def test_corrupted_safetensors(tmp_path, case, message):
    path = tmp_path / f"{case}.safetensors"
    good = write_safetensors(tmp_path / "good.safetensors").read_bytes()
    if case == "empty":
        path.write_bytes(b"")
    elif case == "absurd_header":
        path.write_bytes(b"\xff" * 8 + b"{}")
    elif case == "header_past_end":
        path.write_bytes(struct.pack("<Q", 1000) + b"{}")
    elif case == "not_json":
        path.write_bytes(struct.pack("<Q", 4) + b"\x00\xff{]")
    elif case == "data_truncated":
        n = struct.unpack("<Q", good[:8])[0]
        path.write_bytes(good[: 8 + n + 20])
    elif case == "size_disagrees":
        raw_safetensors(path, {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}},
                        b"\x00" * 12)
    elif case == "overlap":
        raw_safetensors(path, {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
                        b"\x00" * 8)
    elif case == "bad_entry":
        raw_safetensors(path, {"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}},
                        b"\x00" * 8)
    elif case == "deeply_nested":  # hand-built: json.dumps itself cannot nest this deep
        blob = b'{"w": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        path.write_bytes(struct.pack("<Q", len(blob)) + blob)
    elif case == "huge_integer":  # Python refuses int strings over 4300 digits by default
        blob = (b'{"w": {"dtype": "F32", "shape": [' + b"9" * 5000
                + b'], "data_offsets": [0, 4]}}')
        path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\x00" * 4)
    with pytest.raises(PretrainedError, match=message) as info:
        jaxinit.open_weights(path)
    assert str(path) in str(info.value)


def test_safetensors_non_numeric_dtype_is_refused(tmp_path):
    path = raw_safetensors(tmp_path / "s.safetensors",
                           {"w": {"dtype": "STR", "shape": [2], "data_offsets": [0, 2]}}, b"ab")
    with pytest.raises(PretrainedError, match=r"key 'w' has dtype 'STR', which is not a supported"):
        jaxinit.open_weights(path)


@pytest.mark.parametrize("span, message", [
    ([0, 2**42], r"key 'w' spans bytes 0\.\.4398046511104 but the data section has 16 bytes"),
    ([0, 16], r"key 'w' is F32\[1099511627776, 4\] \(17592186044416 bytes\) but spans 16"),
])
def test_safetensors_huge_declared_tensor_is_refused_at_open(tmp_path, span, message):
    # A 16 TiB float32 tensor declared in a 16-byte data section: refused from the header
    # alone, when the file is opened, so nothing is ever allocated for it.
    path = raw_safetensors(tmp_path / "huge.safetensors",
                           {"w": {"dtype": "F32", "shape": [2**40, 4], "data_offsets": span}},
                           b"\x00" * 16)
    with pytest.raises(PretrainedError, match=message) as info:
        jaxinit.open_weights(path)
    assert str(path) in str(info.value)


def npy_member(descr, shape, data):
    """A version-1.0 .npy file built by hand, so its header may lie about its data."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"  # pad the preamble to 64 bytes
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


@pytest.mark.parametrize("shape, needed", [((2**40, 4), 2**42 * 4), ((5,), 20)])
def test_npz_header_claiming_more_than_its_member_is_refused_at_open(tmp_path, shape, needed):
    # The .npy header is checked against the zip member's size when the file is opened;
    # before, NumPy tried to allocate the declared 16 TiB array on the first read.
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.npy", npy_member("<f4", (2,), b"\x00" * 8))
        zf.writestr("w.npy", npy_member("<f4", shape, b"\x00" * 16))
    with pytest.raises(PretrainedError,
                       match=rf"key 'w' is float32\[.*\] \({needed} bytes\) but its \.npy "
                             r"member holds 16 data bytes") as info:
        jaxinit.open_weights(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("fmt", ["npz", "msgpack"])
@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_truncated_and_corrupted_npz_msgpack(tmp_path, fmt, damage):
    path = tmp_path / f"m.{fmt}"
    if fmt == "npz":
        np.savez(path, **ARRAYS)
    else:
        from flax.serialization import msgpack_serialize

        path.write_bytes(msgpack_serialize(nested(ARRAYS)))
    blob = bytearray(path.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif fmt == "npz":  # flip bytes mid-file: the zip CRC catches it
        for i in range(len(blob) // 2, len(blob) // 2 + 16):
            blob[i] ^= 0xFF
    else:  # msgpack has no checksum (pin sha256 for that): break its structure instead
        blob[0] = 0xC1  # 0xc1 is the one byte msgpack never uses
    path.write_bytes(bytes(blob))
    with pytest.raises(PretrainedError, match=rf"m\.{fmt}"):
        weights = jaxinit.open_weights(path)
        for key in weights:  # a corrupted payload may only show when its array is read
            weights[key]


def test_wrong_dtype_in_memory_is_refused():
    with pytest.raises(PretrainedError, match=r"key 'names' has non-numeric dtype <U3"):
        jaxinit.open_weights({"names": np.array(["abc"]), "w": np.zeros(2)})
    with pytest.raises(PretrainedError, match=r"key 'cfg' holds a str"):
        jaxinit.open_weights({"cfg": "relu", "w": np.zeros(2)})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_weights_rejected_by_default(tmp_path, bad):
    w = np.ones((2, 3), np.float32)
    w[1, 2] = bad
    path = write_safetensors(tmp_path / "nan.safetensors", {"w": w})
    with pytest.raises(PretrainedError, match=r"key 'w' has 1 non-finite value\(s\) "
                                              r"\(first at index \(1, 2\)\)"):
        jaxinit.open_weights(path)["w"]
    got = jaxinit.open_weights(path, allow_nonfinite=True)["w"]
    assert got[1, 2] == bad or (np.isnan(bad) and np.isnan(got[1, 2]))


@pytest.mark.parametrize("dtype, bad", [
    (torch.bfloat16, float("nan")), (torch.bfloat16, float("inf")),
    (torch.float8_e5m2, float("-inf")), (torch.float8_e4m3fn, float("nan")),
])
def test_nonfinite_low_precision_weights_rejected(tmp_path, dtype, bad):
    # bfloat16 and float8_e4m3fn arrays have NumPy dtype kind "V" (ml_dtypes), a separate
    # branch of the finiteness check; with it dropped (kind "f"/"c" only) the bfloat16 and
    # e4m3fn cases fail (shown once). float8_e5m2 reports kind "f" and covers inf in float8;
    # float8_e4m3fn has no inf, so it is tried with NaN.
    import safetensors.torch

    w = torch.ones((2, 3), dtype=torch.float32)
    w[0, 1] = bad
    path = tmp_path / "low.safetensors"
    safetensors.torch.save_file({"w": w.to(dtype)}, str(path))
    with pytest.raises(PretrainedError, match=r"key 'w' has 1 non-finite value\(s\) "
                                              r"\(first at index \(0, 1\)\)"):
        jaxinit.open_weights(path)["w"]
    got = np.asarray(jaxinit.open_weights(path, allow_nonfinite=True)["w"]).astype(np.float32)
    # Oracle: torch's own upcast of the stored value.
    np.testing.assert_array_equal(got, w.to(dtype).to(torch.float32).numpy())


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "weights.dat").write_bytes(b"hello world")
    with pytest.raises(PretrainedError, match="cannot tell the checkpoint format"):
        jaxinit.open_weights(tmp_path / "weights.dat")
    with pytest.raises(PretrainedError, match="no such file"):
        jaxinit.open_weights(tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match="format='onnx' is not one of"):
        jaxinit.open_weights(tmp_path / "weights.dat", format="onnx")


def test_jax_arrays_in_memory():
    weights = jaxinit.open_weights({"w": jnp.arange(3.0), "k": jax.random.key_data(
        jax.random.key(0))})
    assert weights.dtype("w") == np.float32 and weights.dtype("k") == np.uint32


def truncate_torch_record(src, dst, record_suffix, keep):
    """Copies the .pt zip `src` to `dst`, keeping only `keep` bytes of one storage record."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(record_suffix):
                data = data[:keep]
            zout.writestr(info, data)
    return dst


@pytest.mark.parametrize("keep", [0, 8, 23])
def test_torch_zip_storage_record_shorter_than_its_tensor_is_refused(tmp_path, keep):
    # "w" is 3x2 float32: its storage record data/0 must hold 24 bytes.
    state = {"w": torch.ones(3, 2), "b": torch.zeros(4, dtype=torch.float64)}
    torch.save(state, tmp_path / "ok.pt")
    assert jaxinit.open_weights(tmp_path / "ok.pt", trusted=True)["w"].shape == (3, 2)
    bad = truncate_torch_record(tmp_path / "ok.pt", tmp_path / "bad.pt", "/data/0", keep)
    with pytest.raises(PretrainedError, match=r"bad\.pt.*key 'w'.*24 bytes.*"
                       rf"holds {keep} bytes"):
        jaxinit.open_weights(bad, trusted=True)


def test_flat_and_nested_keys_that_collide_are_refused(tmp_path):
    from flax.serialization import msgpack_serialize

    x, y = np.zeros(2, np.float32), np.ones(3, np.float32)
    path = tmp_path / "clash.msgpack"
    path.write_bytes(msgpack_serialize({"a": {"b": x}, "a/b": y}))
    with pytest.raises(PretrainedError, match=r"clash\.msgpack.*key 'a/b' occurs twice"):
        jaxinit.open_weights(path)
    with pytest.raises(PretrainedError, match=r"in-memory dict.*key 'a/b' occurs twice"):
        jaxinit.open_weights({"a": {"b": x}, "a/b": y})
    torch.save({"a": {"b": torch.zeros(2)}, "a/b": torch.ones(3)}, tmp_path / "clash.pt")
    with pytest.raises(PretrainedError, match=r"clash\.pt.*key 'a/b' occurs twice"):
        jaxinit.open_weights(tmp_path / "clash.pt", trusted=True)


def test_torch_zip_tensor_larger_than_its_declared_storage_is_refused(tmp_path):
    # The pickle's storage for "w" (3x2 float32) is rewritten to declare 4 elements, and
    # its record holds exactly those 16 bytes: the 6-element tensor does not fit.
    torch.save({"w": torch.ones(3, 2)}, tmp_path / "ok.pt")
    with zipfile.ZipFile(tmp_path / "ok.pt") as zin, \
            zipfile.ZipFile(tmp_path / "bad.pt", "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                assert data.count(b"K\x06t") == 1  # BININT1 6, TUPLE: the storage's numel
                data = data.replace(b"K\x06t", b"K\x04t")
            if info.filename.endswith("/data/0"):
                data = data[:16]
            zout.writestr(info, data)
    with pytest.raises(PretrainedError, match=r"bad\.pt"):
        jaxinit.open_weights(tmp_path / "bad.pt", trusted=True)
