"""reinit's path strings, path-derived keys and error messages, on hand-computed cases.

These tests kill mutants of jaxinit/_src/compose/tree.py (see docs/mutants.md).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit
from jaxinit._src.compose import tree as tree_mod

KEY = jax.random.key(3)


def test_stable_hash_pinned():
    # The first 4 bytes of SHA-256, read little endian (digests pinned from sha256sum):
    # SHA-256("params/Dense_0/kernel") = 32fac5a7..., SHA-256("") = e3b0c442..., and the
    # UTF-8 bytes of "poids/\u00e9" hash to eb25d8b0....
    assert tree_mod.stable_hash("params/Dense_0/kernel") == 0xA7C5FA32
    assert tree_mod.stable_hash("") == 0x42C4B0E3
    assert tree_mod.stable_hash("poids/\u00e9") == 0xB0D825EB


def test_leaf_key_is_fold_in_of_the_hash():
    got = tree_mod.leaf_key(KEY, "params/Dense_0/kernel")
    want = jax.random.fold_in(KEY, np.uint32(0xA7C5FA32))
    np.testing.assert_array_equal(jax.random.key_data(got), jax.random.key_data(want))


def test_path_str_of_every_key_kind():
    tree = {"a": [jnp.zeros(1), (jnp.zeros(1),)]}
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    assert [tree_mod.path_str(p) for p, _ in flat] == ["a/0", "a/1/0"]

    class Obj:
        def __str__(self):
            return "plain"

    assert tree_mod.path_str([jax.tree_util.GetAttrKey("w"), Obj()]) == "w/plain"
    assert tree_mod.path_str([jax.tree_util.FlattenedIndexKey(4)]) == "4"
    assert tree_mod.path_str([]) == ""


def test_leaf_values_use_the_path_key():
    params = {"dense": {"kernel": jnp.zeros((4, 3))}}
    new = jaxinit.reinit(params, KEY, [(r"dense/kernel", jaxinit.normal(1.0))])
    want = jaxinit.normal(1.0)(tree_mod.leaf_key(KEY, "dense/kernel"), (4, 3), jnp.float32)
    np.testing.assert_array_equal(new["dense"]["kernel"], want)


def test_strict_message_lists_at_most_eight_paths():
    params = {f"p{i}": jnp.zeros(2) for i in range(10)}
    msg = (
        r"^reinit: rules \['nope'\] matched no float leaf \(paths: p0, p1, p2, p3, p4, p5, "
        r"p6, p7, \.\.\.\); fix the regex or pass strict=False$"
    )
    with pytest.raises(ValueError, match=msg):
        jaxinit.reinit(params, KEY, [("p0", jaxinit.ones), ("nope", jaxinit.ones)])
    few = {f"p{i}": jnp.zeros(2) for i in range(8)}
    with pytest.raises(ValueError, match=r"\(paths: p0, p1, p2, p3, p4, p5, p6, p7\);"):
        jaxinit.reinit(few, KEY, [("nope", jaxinit.ones)])
    nine = {f"p{i}": jnp.zeros(2) for i in range(9)}  # one more than shown: "..."
    with pytest.raises(ValueError, match=r"\(paths: p0, p1, p2, p3, p4, p5, p6, p7, \.\.\.\);"):
        jaxinit.reinit(nine, KEY, [("nope", jaxinit.ones)])
    out = jaxinit.reinit(few, KEY, [("nope", jaxinit.ones)], strict=False)
    assert all(out[k] is few[k] for k in few)


def test_mapping_rules_and_compiled_patterns():
    params = {"k": jnp.zeros(2), "b": jnp.zeros(2)}
    out = jaxinit.reinit(params, KEY, {re.compile("k"): jaxinit.ones, "b": jaxinit.constant(2.0)})
    np.testing.assert_array_equal(out["k"], [1.0, 1.0])
    np.testing.assert_array_equal(out["b"], [2.0, 2.0])


def test_rule_error_messages():
    params = {"k": jnp.zeros(2)}
    with pytest.raises(
        TypeError,
        match=r"^reinit: rules=3 must be a sequence of \(regex, initializer\) pairs or a mapping$",
    ):
        jaxinit.reinit(params, KEY, 3)
    with pytest.raises(TypeError, match=r"^reinit: rules=b'k' must be a sequence"):
        jaxinit.reinit(params, KEY, b"k")
    with pytest.raises(
        TypeError, match=r"^reinit: rules\[1\]=\('k',\) is not a \(regex, initializer\) pair$"
    ):
        jaxinit.reinit(params, KEY, [("k", jaxinit.ones), ("k",)])
    with pytest.raises(
        TypeError, match=r"^reinit: rules\[0\] pattern 5 must be a string or re\.Pattern$"
    ):
        jaxinit.reinit(params, KEY, [(5, jaxinit.ones)])
    with pytest.raises(
        ValueError, match=r"^reinit: rules\[0\] pattern '\(' is not a regex: missing \)"
    ):
        jaxinit.reinit(params, KEY, [("(", jaxinit.ones)])
    with pytest.raises(
        TypeError, match=r"^reinit: rules\[0\] initializer 'x' is not callable$"
    ):
        jaxinit.reinit(params, KEY, [["k", "x"]])  # a list pair is accepted as a pair


def test_shape_and_dtype_mismatch_message():
    params = {"k": jnp.zeros((2, 3))}
    bad_shape = lambda key, shape, dtype: jnp.zeros((3,), dtype)
    bad_dtype = lambda key, shape, dtype: jnp.zeros(shape, jnp.bfloat16)
    with pytest.raises(
        ValueError, match=r"^reinit: rule 'k' gave float32\[3\] for k of float32\[2, 3\]"
    ):
        jaxinit.reinit(params, KEY, [("k", bad_shape)])
    with pytest.raises(ValueError, match=r"gave bfloat16\[2, 3\] for k of float32\[2, 3\]"):
        jaxinit.reinit(params, KEY, [("k", bad_dtype)])


def test_for_leaf_sees_all_float_shapes():
    seen = {}

    class Sized:
        def __call__(self, key, shape, dtype):
            return jnp.zeros(shape, dtype)

        def for_leaf(self, path, shapes):
            seen[path] = dict(shapes)
            return jaxinit.constant(float(shapes["w"][0]))

    params = {"w": jnp.zeros((5, 2)), "b": jnp.zeros(2), "n": jnp.zeros((), jnp.int32)}
    out = jaxinit.reinit(params, KEY, [("b", Sized())])
    assert seen == {"b": {"w": (5, 2), "b": (2,)}}  # integer leaves are not parameters
    np.testing.assert_array_equal(out["b"], [5.0, 5.0])


def test_reinit_inside_jit_traces_inline():
    params = {"k": jnp.zeros((3,))}
    f = jax.jit(lambda key: jaxinit.reinit(params, key, [("k", jaxinit.normal(1.0))])["k"])
    eager = jaxinit.reinit(params, KEY, [("k", jaxinit.normal(1.0))])["k"]
    np.testing.assert_array_equal(f(KEY), eager)


def test_nnx_state_leaves_rebox_without_touching_the_module():
    model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    before = np.asarray(model.kernel.get_value())
    state = nnx.state(model)
    new = jaxinit.reinit(state, KEY, [("kernel", jaxinit.ones)])
    assert isinstance(new["kernel"], nnx.Param)
    np.testing.assert_array_equal(new["kernel"].get_value(), np.ones((2, 3)))
    np.testing.assert_array_equal(model.kernel.get_value(), before)
    same = jaxinit.reinit(model, KEY, [("kernel", jaxinit.ones)])
    assert same is model
    np.testing.assert_array_equal(model.kernel.get_value(), np.ones((2, 3)))


def test_named_sharding_of_a_leaf_is_kept_on_one_device():
    # A NamedSharding over a one-device mesh needs no forced host devices: the leaf's
    # sharding is found and the redrawn leaf is placed in the same NamedSharding.
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    sharding = NamedSharding(Mesh(np.array(jax.devices()[:1]), ("x",)), PartitionSpec("x"))
    leaf = jax.device_put(jnp.zeros((4, 3)), sharding)
    assert tree_mod._sharding(leaf) == sharding
    assert tree_mod._sharding(np.zeros((4, 3))) is None  # no .sharding attribute
    assert tree_mod._sharding(jax.ShapeDtypeStruct((4, 3), jnp.float32)) is None
    new = jaxinit.reinit({"w": leaf, "v": np.ones(3, np.float32)}, KEY,
                         [("w", jaxinit.he_normal()), ("v", jaxinit.zeros)])
    assert isinstance(new["w"].sharding, NamedSharding)
    assert new["w"].sharding == sharding
    np.testing.assert_array_equal(new["v"], np.zeros(3, np.float32))


def test_reinit_does_not_import_flax():
    # flax's boxes are looked up only when flax is already imported: a JAX-only caller
    # never pays for importing flax. Checked in a fresh interpreter, where flax is not
    # imported yet (this one has imported it).
    import os
    import subprocess
    import sys

    code = (
        "import sys, jax, jax.numpy as jnp, jaxinit\n"
        "new = jaxinit.reinit({'w': jnp.zeros((2, 2))}, jax.random.key(0),"
        " [('w', jaxinit.ones)])\n"
        "assert float(new['w'].sum()) == 4.0\n"
        "print('flax' in sys.modules)\n"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_leaf_sharding_is_passed_to_the_initializer():
    # The initializer draws directly in the leaf's NamedSharding (out_sharding=...), and
    # gets no out_sharding for a leaf without one.
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    sharding = NamedSharding(Mesh(np.array(jax.devices()[:1]), ("x",)), PartitionSpec())
    seen = []

    def init(key, shape, dtype=None, **kwargs):
        seen.append(kwargs)
        return jnp.zeros(shape, dtype)

    params = {"a": jax.device_put(jnp.ones((2, 2)), sharding), "b": jnp.ones(3)}
    new = jaxinit.reinit(params, KEY, [("a|b", init)])
    assert seen == [{"out_sharding": sharding}, {}]
    # The one compiled program places each output in its leaf's sharding even when the
    # initializer ignores out_sharding.
    assert new["a"].sharding == sharding
