"""Bad input fails early and clearly (the 'Clear errors' design principle): one table
of bad calls.

Each row is (call, exception type, words the message must contain). The message must name
the offending argument or value, so a user can fix the call without reading the source.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit
import jaxinit.torch

KEY = jax.random.key(0)

BAD_CALLS = [
    # shapes
    ("rank too small for fans", lambda: jaxinit.he_normal()(KEY, (10,)), ValueError, "rank 1"),
    (
        "negative dimension",
        lambda: jaxinit.glorot_uniform()(KEY, (4, -2)),
        ValueError,
        "negative dimension",
    ),
    ("float dimension", lambda: jaxinit.normal()(KEY, (2.5, 3)), TypeError, "shape"),
    ("shape not a sequence", lambda: jaxinit.normal()(KEY, "ab"), TypeError, "shape"),
    (
        "orthogonal unknown method",
        lambda: jaxinit.orthogonal(method="svd"),
        ValueError,
        "method='svd'",
    ),
    (
        "orthogonal on rank 1",
        lambda: jaxinit.orthogonal()(KEY, (8,)),
        ValueError,
        "expected rank >= 2",
    ),
    (
        "orthogonal column_axis out of range",
        lambda: jaxinit.orthogonal(column_axis=2)(KEY, (4, 4)),
        ValueError,
        "column_axis=2",
    ),
    (
        "delta_orthogonal in > out",
        lambda: jaxinit.delta_orthogonal()(KEY, (3, 3, 8, 4)),
        ValueError,
        "in <= out",
    ),
    (
        "delta_orthogonal rank 2",
        lambda: jaxinit.delta_orthogonal()(KEY, (8, 8)),
        ValueError,
        "expected rank >= 3",
    ),
    (
        "delta_orthogonal rank 6",
        lambda: jaxinit.delta_orthogonal()(KEY, (3,) * 4 + (2, 2)),
        ValueError,
        "rank 3, 4 or 5",
    ),
    (
        "dirac groups do not divide",
        lambda: jaxinit.dirac(groups=4)(KEY, (3, 3, 2, 6)),
        ValueError,
        "groups=4",
    ),
    (
        "in_axis out of range",
        lambda: jaxinit.he_normal(in_axis=5)(KEY, (3, 4)),
        ValueError,
        "in_axis=5",
    ),
    (
        "overlapping axes",
        lambda: jaxinit.he_normal(batch_axis=-1)(KEY, (3, 4)),
        ValueError,
        "overlap",
    ),
    # dtypes
    ("int dtype", lambda: jaxinit.normal()(KEY, (2, 2), jnp.int32), TypeError, "int32"),
    ("bool dtype", lambda: jaxinit.he_uniform()(KEY, (2, 2), jnp.bool_), TypeError, "bool"),
    ("uint dtype", lambda: jaxinit.orthogonal()(KEY, (2, 2), jnp.uint8), TypeError, "uint8"),
    (
        "complex uniform",
        lambda: jaxinit.uniform()(KEY, (2, 2), jnp.complex64),
        TypeError,
        "complex64",
    ),
    ("not a dtype", lambda: jaxinit.normal()(KEY, (2, 2), "floatish"), TypeError, "floatish"),
    (
        "constant overflows float16",
        lambda: jaxinit.constant(1e6)(KEY, (2,), jnp.float16),
        ValueError,
        "float16",
    ),
    (
        "constant fraction into int",
        lambda: jaxinit.constant(0.5)(KEY, (2,), jnp.int32),
        ValueError,
        "int32",
    ),
    # modes and distributions
    (
        "unknown mode",
        lambda: jaxinit.variance_scaling(1.0, "fan_inn", "normal"),
        ValueError,
        "mode='fan_inn'",
    ),
    (
        "unknown distribution",
        lambda: jaxinit.variance_scaling(1.0, "fan_in", "gaussian"),
        ValueError,
        "distribution='gaussian'",
    ),
    ("axes not ints", lambda: jaxinit.he_normal(in_axis="0"), TypeError, "in_axis"),
    # scales
    (
        "negative scale",
        lambda: jaxinit.variance_scaling(-1.0, "fan_in", "normal"),
        ValueError,
        "scale=-1.0",
    ),
    (
        "nan scale",
        lambda: jaxinit.variance_scaling(float("nan"), "fan_in", "normal"),
        ValueError,
        "scale=nan",
    ),
    ("inf stddev", lambda: jaxinit.normal(float("inf")), ValueError, "stddev=inf"),
    ("negative stddev", lambda: jaxinit.truncated_normal(-0.1), ValueError, "stddev=-0.1"),
    ("stddev not a number", lambda: jaxinit.normal("big"), TypeError, "stddev='big'"),
    (
        "truncation bounds reversed",
        lambda: jaxinit.truncated_normal(1.0, lower=2.0, upper=-2.0),
        ValueError,
        "lower=2.0",
    ),
    ("uniform_range empty", lambda: jaxinit.uniform_range(1.0, 1.0), ValueError, "low=1.0"),
    ("uniform_range infinite", lambda: jaxinit.uniform_range(-np.inf, 0.0), ValueError, "low=-inf"),
    ("orthogonal nan scale", lambda: jaxinit.orthogonal(float("nan")), ValueError, "scale=nan"),
    ("constant nan", lambda: jaxinit.constant(float("nan")), ValueError, "value=nan"),
    ("constant array", lambda: jaxinit.constant([1.0, 2.0]), TypeError, "value="),
    # sparse
    ("sparsity 1", lambda: jaxinit.sparse(1.0), ValueError, "sparsity=1.0"),
    ("sparsity negative", lambda: jaxinit.sparse(-0.1), ValueError, "sparsity=-0.1"),
    ("sparse rank 1", lambda: jaxinit.sparse(0.5)(KEY, (8,)), ValueError, "expected rank >= 2"),
    # keys
    ("int key", lambda: jaxinit.normal()(0, (2, 2)), TypeError, "key"),
    ("float array key", lambda: jaxinit.normal()(jnp.zeros(2), (2, 2)), TypeError, "key"),
    (
        "batch of keys",
        lambda: jaxinit.normal()(jax.random.split(KEY, 3), (2, 2)),
        ValueError,
        "jax.vmap",
    ),
    (
        "uint32 matrix key",
        lambda: jaxinit.normal()(jnp.zeros((2, 2), jnp.uint32), (2, 2)),
        TypeError,
        "key",
    ),
    # gains, fans, describe
    ("unknown activation", lambda: jaxinit.gain("relu7"), ValueError, "activation='relu7'"),
    ("gain mode", lambda: jaxinit.gain("relu", mode="sideways"), ValueError, "mode='sideways'"),
    ("gain params on callable", lambda: jaxinit.gain(jnp.tanh, slope=2), TypeError, "slope"),
    ("gain of zero function", lambda: jaxinit.gain(lambda x: 0 * x), ValueError, "zero"),
    ("compute_fans rank 1", lambda: jaxinit.compute_fans((5,)), ValueError, "rank 1"),
    (
        "describe non-initializer",
        lambda: jaxinit.describe(lambda k, s: 0, (2, 2)),
        TypeError,
        "init=",
    ),
    (
        "sharding of wrong type",
        lambda: jaxinit.normal()(KEY, (2, 2), out_sharding="x"),
        TypeError,
        "out_sharding",
    ),
]


def test_table_is_large_enough():
    assert len(BAD_CALLS) >= 30


@pytest.mark.parametrize(
    ("call", "error", "words"), [row[1:] for row in BAD_CALLS], ids=[row[0] for row in BAD_CALLS]
)
def test_bad_call_raises_clearly(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value), str(info.value)


def test_errors_raise_before_tracing_under_jit():
    """Inside jit the same precise error appears (no opaque XLA error)."""
    with pytest.raises(ValueError, match="rank 1"):
        jax.jit(lambda k: jaxinit.he_normal()(k, (10,)))(KEY)


# Wrongly typed arguments, raw keys and dtypes: each message names the initializer, the
# argument, the value given and what was expected (every listed word must appear).
TYPED_ARGS = [
    (
        "orthogonal column_axis str",
        lambda: jaxinit.orthogonal(column_axis="0"),
        TypeError,
        ["orthogonal", "column_axis", "'0'", "must be an int"],
    ),
    (
        "delta_orthogonal column_axis str",
        lambda: jaxinit.delta_orthogonal(column_axis="0"),
        TypeError,
        ["delta_orthogonal", "column_axis", "'0'", "must be an int"],
    ),
    (
        "orthogonal column_axis float",
        lambda: jaxinit.orthogonal(column_axis=1.0),
        TypeError,
        ["orthogonal", "column_axis", "1.0", "must be an int"],
    ),
    (
        "variance_scaling in_axis str",
        lambda: jaxinit.variance_scaling(1.0, "fan_in", "normal", in_axis="0"),
        TypeError,
        ["variance_scaling", "in_axis", "'0'", "int or a sequence of ints"],
    ),
    (
        "dirac groups -inf",
        lambda: jaxinit.dirac(groups=float("-inf")),
        TypeError,
        ["dirac", "groups", "-inf", "must be an int"],
    ),
    (
        "torch dirac groups nan",
        lambda: jaxinit.torch.dirac(groups=float("nan")),
        TypeError,
        ["dirac", "groups", "nan", "must be an int"],
    ),
    (
        "dirac groups bool",
        lambda: jaxinit.dirac(groups=True),
        TypeError,
        ["dirac", "groups", "True", "must be an int"],
    ),
    (
        "dirac groups zero",
        lambda: jaxinit.dirac(groups=0),
        ValueError,
        ["dirac", "groups", "0", ">= 1"],
    ),
    (
        "sparse sparsity -inf",
        lambda: jaxinit.sparse(float("-inf")),
        ValueError,
        ["sparse", "sparsity", "-inf", "finite"],
    ),
    (
        "sparse sparsity nan",
        lambda: jaxinit.sparse(float("nan")),
        ValueError,
        ["sparse", "sparsity", "nan", "finite"],
    ),
    (
        "raw uint32 key of length 3",
        lambda: jaxinit.he_normal()(jnp.zeros((3,), jnp.uint32), (3, 3)),
        ValueError,
        ["variance_scaling", "key", "(3,)", "shape (2,)"],
    ),
    (
        "raw uint32 key of length 3 under jit",
        lambda: jax.jit(lambda k: jaxinit.normal()(k, (2,)))(jnp.zeros((3,), jnp.uint32)),
        ValueError,
        ["normal", "key", "(3,)", "shape (2,)"],
    ),
    (
        "byte-swapped dtype at call",
        lambda: jaxinit.he_normal()(KEY, (3, 3), np.dtype(">f4")),
        TypeError,
        ["variance_scaling", "dtype", ">f4", "byte-swapped", "float32"],
    ),
    (
        "byte-swapped dtype at construction",
        lambda: jaxinit.normal(dtype=">f8"),
        TypeError,
        ["normal", "dtype", "'>f8'", "byte-swapped", "float64"],
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "words"), [row[1:] for row in TYPED_ARGS], ids=[row[0] for row in TYPED_ARGS]
)
def test_typed_argument_errors_name_initializer_argument_value_and_expectation(
    call, error, words
):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, message


def test_valid_typed_arguments_still_accepted():
    """The checks refuse only what is wrong: NumPy ints, native '<f4' and legacy
    ``PRNGKey`` keys keep working, with jax.nn.initializers' values for the legacy key."""
    assert jaxinit.orthogonal(column_axis=np.int64(0)).column_axis == 0
    assert jaxinit.dirac(groups=np.int32(2)).groups == 2
    legacy = jax.random.PRNGKey(3)
    ours = jaxinit.normal(0.5)(legacy, (4, 3), np.dtype("<f4"))
    reference = jax.nn.initializers.normal(0.5)(legacy, (4, 3), jnp.float32)
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(reference))


def test_damaged_torch_zip_names_the_file(tmp_path):
    """A .pt zip whose central directory is damaged (found by the file fuzzer: a flipped
    name byte raised UnicodeDecodeError, a bad offset OSError) is a PretrainedError."""
    import torch

    path = tmp_path / "m.pt"
    torch.save({"w": torch.ones(2, 3)}, path)
    data = bytearray(path.read_bytes())
    directory = data.rindex(b"PK\x01\x02")  # the last central-directory entry
    data[directory + 46] = 0x84  # its file name's first byte: invalid UTF-8 under flag 11
    data[directory + 8] |= 0x08  # general purpose flag bit 11: names are UTF-8
    data[directory + 9] |= 0x08
    path.write_bytes(bytes(data))
    with pytest.raises(jaxinit.PretrainedError, match=rf"{path}: not a readable PyTorch zip"):
        jaxinit.open_weights(path, trusted=True)


def test_msgpack_with_mixed_key_types_names_the_file(tmp_path):
    """Found by the file fuzzer: a flipped byte turned a str key into an int, and sorting
    the map's keys raised a bare ValueError from jax.tree_util."""
    import msgpack
    from flax.serialization import msgpack_serialize

    good = msgpack_serialize({"a": np.ones(2, np.float32), "b": np.zeros(2, np.float32)})
    tree = msgpack.unpackb(good, strict_map_key=False)
    tree[1] = tree.pop("b")
    path = tmp_path / "m.msgpack"
    path.write_bytes(msgpack.packb(tree))
    with pytest.raises(jaxinit.PretrainedError, match=rf"{path}: the msgpack tree has keys"):
        jaxinit.open_weights(path)


def test_torch_zip_spanning_disks_names_the_file(tmp_path):
    """Found by the file fuzzer: zipfile.is_zipfile itself raises BadZipFile when the
    zip64 end-of-directory locator claims several disks."""
    import struct

    import torch

    path = tmp_path / "m.pt"
    torch.save({"w": torch.ones(2, 3)}, path)
    data = bytearray(path.read_bytes())
    locator = data.rindex(b"PK\x06\x07")  # zip64 end-of-central-directory locator
    data[locator + 16 : locator + 20] = struct.pack("<I", 2)  # total number of disks
    path.write_bytes(bytes(data))
    with pytest.raises(jaxinit.PretrainedError, match=rf"{path}: not a readable PyTorch zip"):
        jaxinit.open_weights(path, trusted=True)
