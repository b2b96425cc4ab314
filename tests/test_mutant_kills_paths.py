"""The path helpers (float leaves of linen dicts, nnx modules and pytrees), checked directly.

Expected values are hand-written: which leaves are float arrays and their '/'-joined paths.
These tests kill mutants of jaxinit/_src/compose/paths.py (see docs/mutants.md).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxinit._src.compose import paths


class _DtypeOnly:
    dtype = np.dtype(np.float32)


class _BadDtype:
    dtype = "not a dtype"
    shape = (2,)


@pytest.mark.parametrize(
    "value, want",
    [
        (jnp.zeros((2, 3)), True),
        (np.zeros(2, np.float64), True),
        (jnp.zeros(2, jnp.bfloat16), True),
        (jnp.zeros(2, jnp.complex64), True),
        (np.float32(1.0), True),  # a NumPy scalar has a dtype and a shape
        (jax.ShapeDtypeStruct((4,), jnp.float16), True),  # abstract
        (jnp.zeros(2, jnp.int32), False),
        (np.zeros(2, bool), False),
        (1.0, False),  # no dtype
        (_DtypeOnly(), False),  # a dtype but no shape
        (_BadDtype(), False),  # issubdtype raises TypeError
    ],
)
def test_is_float_array(value, want):
    assert paths.is_float_array(value) is want


def test_as_tree_keeps_only_params_of_an_nnx_module():
    model = nnx.BatchNorm(3, rngs=nnx.Rngs(0))  # params scale, bias; batch stats mean, var
    state = paths.as_tree(model)
    assert isinstance(state, nnx.State)
    assert sorted(paths.float_leaves("f", "tree", state)) == ["bias", "scale"]
    tree = {"a": jnp.zeros(2)}
    assert paths.as_tree(tree) is tree


def test_float_leaves_paths_and_filter():
    tree = {
        "params": {"Dense_0": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)}},
        "step": jnp.zeros((), jnp.int32),
        "layers": [jnp.full(2, 2.0), "name"],
    }
    got = paths.float_leaves("f", "tree", tree)
    assert sorted(got) == ["layers/0", "params/Dense_0/bias", "params/Dense_0/kernel"]
    assert got["params/Dense_0/kernel"] is tree["params"]["Dense_0"]["kernel"]
    np.testing.assert_array_equal(got["layers/0"], [2.0, 2.0])


def test_float_leaves_of_nnx_module_and_linen_boxes():
    got = paths.float_leaves("f", "model", nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
    assert sorted(got) == ["bias", "kernel"]
    assert isinstance(got["kernel"], jax.Array) and got["kernel"].shape == (3, 2)
    boxed = {"w": nn.Partitioned(jnp.ones((2, 2)), names=("a", "b"))}
    got = paths.float_leaves("f", "params", boxed)
    assert list(got) == ["w"]
    assert isinstance(got["w"], jax.Array)  # unboxed
    np.testing.assert_array_equal(got["w"], np.ones((2, 2)))


def test_float_leaves_error_names_function_argument_and_type():
    with pytest.raises(ValueError, match=r"^my_fn: my_arg has no float array leaves \(got dict\)$"):
        paths.float_leaves("my_fn", "my_arg", {"step": jnp.zeros((), jnp.int32)})


def test_map_with_paths_replaces_float_leaves_only():
    step = jnp.zeros((), jnp.int32)
    tree = {"a": {"b": jnp.ones(2)}, "step": step}
    seen = []

    def fn(path, leaf):
        seen.append(path)
        return leaf * 3.0

    out = paths.map_with_paths(fn, tree)
    assert seen == ["a/b"]
    np.testing.assert_array_equal(out["a"]["b"], [3.0, 3.0])
    assert out["step"] is step


def test_map_with_paths_unboxes_nnx_variables():
    state = nnx.state(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), nnx.Param)
    kinds = []

    def fn(path, leaf):
        kinds.append((path, type(leaf) is not nnx.Param and isinstance(leaf, jax.Array)))
        return jnp.zeros_like(leaf)

    out = paths.map_with_paths(fn, state)
    assert sorted(kinds) == [("bias", True), ("kernel", True)]
    leaves = jax.tree_util.tree_leaves(out)
    assert len(leaves) == 2 and all(float(jnp.abs(x).sum()) == 0.0 for x in leaves)
