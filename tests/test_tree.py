"""reinit over linen variables, nnx State and modules, Equinox modules and abstract trees."""

import os
import subprocess
import sys

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit
from jaxinit._src.compose.tree import stable_hash

KEY = jax.random.key(0)
HE = jaxinit.he_normal()


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(64)(x))
        return nn.Dense(8)(nn.LayerNorm()(x))


def linen_vars():
    return MLP().init(jax.random.key(1), jnp.ones((1, 32)))


def expected(path, shape, init=HE, dtype=jnp.float32):
    """What the documented contract says a re-drawn leaf is."""
    return init(jax.random.fold_in(KEY, np.uint32(stable_hash(path))), shape, dtype)


def test_linen_matched_redrawn_others_identical():
    v = linen_vars()
    new = jaxinit.reinit(v, KEY, [(r"params/Dense_\d+/kernel", HE)])
    p, q = v["params"], new["params"]
    np.testing.assert_array_equal(q["Dense_0"]["kernel"],
                                  expected("params/Dense_0/kernel", (32, 64)))
    np.testing.assert_array_equal(q["Dense_1"]["kernel"],
                                  expected("params/Dense_1/kernel", (64, 8)))
    assert not np.array_equal(q["Dense_0"]["kernel"], p["Dense_0"]["kernel"])
    for leaf in ("Dense_0/bias", "Dense_1/bias", "LayerNorm_0/scale", "LayerNorm_0/bias"):
        a, b = leaf.split("/")
        assert q[a][b] is p[a][b]   # untouched: the very same array, so bit-identical


def test_invariant_to_other_parameters():
    a = {"enc": {"kernel": jnp.zeros((16, 16))}, "dec": {"kernel": jnp.zeros((16, 4))}}
    b = {"adapter": {"kernel": jnp.zeros((16, 16))}, "dec": {"kernel": jnp.zeros((16, 4))},
         "enc": {"kernel": jnp.zeros((16, 16)), "bias": jnp.zeros(16)}}
    rules = [(".*kernel", HE), (".*", jaxinit.normal(1.0))]
    ra = jaxinit.reinit(a, KEY, rules, strict=False)   # a has no bias for the 2nd rule
    rb = jaxinit.reinit(b, KEY, rules)
    for name in ("enc", "dec"):
        np.testing.assert_array_equal(ra[name]["kernel"], rb[name]["kernel"])
    assert not np.array_equal(rb["enc"]["kernel"], rb["adapter"]["kernel"])


def test_first_match_wins_and_non_float_leaves_untouched():
    tree = {"w": {"kernel": jnp.zeros((4, 4)), "bias": jnp.zeros(4)},
            "step": jnp.zeros((), jnp.int32)}
    new = jaxinit.reinit(tree, KEY, [(".*kernel", jaxinit.ones), (".*", jaxinit.constant(2.0))])
    np.testing.assert_array_equal(new["w"]["kernel"], np.ones((4, 4)))
    np.testing.assert_array_equal(new["w"]["bias"], np.full(4, 2.0))
    assert new["step"] is tree["step"]


def test_strict():
    tree = {"kernel": jnp.zeros((4, 4))}
    with pytest.raises(ValueError, match=r"rules \['.*/embedding'\] matched no float leaf"):
        jaxinit.reinit(tree, KEY, [("kernel", HE), (".*/embedding", HE)])
    new = jaxinit.reinit(tree, KEY, [("kernel", HE), (".*/embedding", HE)], strict=False)
    assert new["kernel"].shape == (4, 4)
    # fullmatch, not search: 'kern' matches nothing.
    with pytest.raises(ValueError, match="matched no float leaf"):
        jaxinit.reinit(tree, KEY, [("kern", HE)])


def test_dtype_and_statistics_kept():
    tree = {"kernel": jnp.zeros((512, 256), jnp.bfloat16)}
    new = jaxinit.reinit(tree, KEY, {"kernel": HE})   # a mapping works too
    assert new["kernel"].dtype == jnp.bfloat16
    # 131072 samples: relative SE of the std < 0.2%; 3% is > 15 SE.
    assert float(new["kernel"].astype(jnp.float32).std()) == pytest.approx(
        np.sqrt(2 / 512), rel=0.03)


def test_linen_partitioned_boxes_kept():
    class Boxed(nn.Module):
        @nn.compact
        def __call__(self, x):
            init = nn.with_partitioning(nn.initializers.zeros, ("embed", "mlp"))
            return nn.Dense(16, kernel_init=init)(x)

    v = Boxed().init(KEY, jnp.ones((1, 8)))
    new = jaxinit.reinit(v, KEY, [(".*/kernel", HE)])
    box = new["params"]["Dense_0"]["kernel"]
    assert isinstance(box, nn.Partitioned) and box.names == ("embed", "mlp")
    np.testing.assert_array_equal(box.unbox(), expected("params/Dense_0/kernel", (8, 16)))


class NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.layers = nnx.List([nnx.Linear(32, 64, rngs=rngs), nnx.Linear(64, 8, rngs=rngs)])
        self.norm = nnx.BatchNorm(64, rngs=rngs)


def test_nnx_state_returns_new_state():
    model = NnxMLP(nnx.Rngs(0))
    before = model.layers[0].kernel[...]
    state = nnx.state(model, nnx.Param)
    new = jaxinit.reinit(state, KEY, [(r"layers/\d+/kernel", HE)])
    assert isinstance(new, nnx.State)
    np.testing.assert_array_equal(model.layers[0].kernel[...], before)   # module untouched
    np.testing.assert_array_equal(new["layers"][0]["kernel"][...],
                                  expected("layers/0/kernel", (32, 64)))
    nnx.update(model, new)
    np.testing.assert_array_equal(model.layers[1].kernel[...], expected("layers/1/kernel", (64, 8)))


def test_nnx_module_updated_in_place():
    model = NnxMLP(nnx.Rngs(0))
    kernel_var, bias = model.layers[0].kernel, model.layers[0].bias[...]
    out = jaxinit.reinit(model, KEY, [(r"layers/0/kernel", HE), (r"norm/mean", jaxinit.ones)])
    assert out is model and model.layers[0].kernel is kernel_var
    np.testing.assert_array_equal(kernel_var[...], expected("layers/0/kernel", (32, 64)))
    np.testing.assert_array_equal(model.layers[0].bias[...], bias)
    np.testing.assert_array_equal(model.norm.mean[...], np.ones(64))


def test_equinox_module():
    mlp = eqx.nn.MLP(32, 8, 64, 2, key=jax.random.key(1))
    new = jaxinit.reinit(mlp, KEY, [(r"layers/\d+/weight", jaxinit.variance_scaling(
        2.0, "fan_in", "normal", in_axis=-1, out_axis=-2))])   # Equinox weights are (out, in)
    assert isinstance(new, eqx.nn.MLP)
    init = jaxinit.variance_scaling(2.0, "fan_in", "normal", in_axis=-1, out_axis=-2)
    np.testing.assert_array_equal(new.layers[1].weight,
                                  expected("layers/1/weight", (64, 64), init))
    assert new.layers[1].bias is mlp.layers[1].bias
    assert new.activation is mlp.activation


def test_abstract_tree_and_jit():
    abstract = jax.eval_shape(linen_vars)
    rules = [(".*kernel", HE), (".*", jaxinit.zeros)]
    concrete = jaxinit.reinit(abstract, KEY, rules)
    direct = jaxinit.reinit(linen_vars(), KEY, rules)
    jitted = jax.jit(lambda v, k: jaxinit.reinit(v, k, rules))(linen_vars(), KEY)
    for a, b, c in zip(jax.tree.leaves(concrete), jax.tree.leaves(direct),
                       jax.tree.leaves(jitted), strict=True):
        assert isinstance(a, jax.Array)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_same_values_in_another_process():
    """stable_hash and reinit agree across processes with different string-hash salts."""
    code = ("import jax, jax.numpy as jnp, jaxinit;"
            " from jaxinit._src.compose.tree import stable_hash;"
            "t = jaxinit.reinit({'a': {'kernel': jnp.zeros((8, 8))}}, jax.random.key(0),"
            " [('.*', jaxinit.he_normal())]);"
            "print(stable_hash('params/Dense_0/kernel'), hash('params/Dense_0/kernel'),"
            " float(t['a']['kernel'].sum()).hex())")
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "JAX_PLATFORMS": "cpu"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        runs.append(out)
    assert runs[0][1] != runs[1][1]   # Python's own hash differs between the processes
    assert runs[0][0] == runs[1][0] == str(stable_hash("params/Dense_0/kernel"))
    here = jaxinit.reinit({"a": {"kernel": jnp.zeros((8, 8))}}, KEY, [(".*", HE)])
    assert runs[0][2] == runs[1][2] == float(here["a"]["kernel"].sum()).hex()


def test_bad_input():
    tree = {"kernel": jnp.zeros((4, 4))}
    with pytest.raises(TypeError, match=r"reinit: rules\[0\]=.* is not a \(regex, initializer\)"):
        jaxinit.reinit(tree, KEY, [HE])
    with pytest.raises(ValueError, match=r"reinit: rules\[0\] pattern '\(' is not a regex"):
        jaxinit.reinit(tree, KEY, [("(", HE)])
    with pytest.raises(TypeError, match=r"reinit: rules\[0\] initializer 3 is not callable"):
        jaxinit.reinit(tree, KEY, [("kernel", 3)])
    with pytest.raises(TypeError, match="reinit: rules='kernel' must be a sequence"):
        jaxinit.reinit(tree, KEY, "kernel")
    with pytest.raises(TypeError, match="reinit: key=0 is not a PRNG key"):
        jaxinit.reinit(tree, 0, [("kernel", HE)])
    with pytest.raises(ValueError, match=r"reinit: rule 'kernel' gave float32\[3\]"):
        jaxinit.reinit(tree, KEY, [("kernel", lambda k, s, d: jnp.zeros(3, d))])


def test_reinit_golden_values_pin_the_path_derived_keys():
    # Golden values recorded once on JAX's default threefry PRNG with
    # jax.nn.initializers (not jaxinit's own schemes), so only the key derivation
    # fold_in(key, stable_hash(path)) is pinned. Regenerating them is a breaking change of
    # the promise that a leaf's key depends only on its path, stably across processes and
    # versions. Changing the hash (e.g. another digest or a salt) fails this test (shown once).
    tree = {"params": {"Dense_0": {"kernel": jnp.zeros((2, 3)), "bias": jnp.zeros(3)},
                       "Dense_1": {"kernel": jnp.zeros((3, 2))}}}
    rules = [(r".*kernel", jax.nn.initializers.normal(1.0)),
             (r".*bias", jax.nn.initializers.uniform(1.0))]
    out = jaxinit.reinit(tree, jax.random.key(42), rules)
    assert stable_hash("params/Dense_0/kernel") == 2814769714
    golden = {
        "Dense_0/bias": [0.8657752275466919, 0.41995906829833984, 0.16747629642486572],
        "Dense_0/kernel": [0.742056131362915, 0.08253958821296692, -0.660210371017456,
                           1.5257514715194702, -0.2397017627954483, 1.6679606437683105],
        "Dense_1/kernel": [0.04597495496273041, -0.5729122757911682, 1.6820392608642578,
                           0.08164732158184052, 3.096088171005249, 0.17891338467597961],
    }
    for name, values in golden.items():
        layer, leaf = name.split("/")
        got = np.asarray(out["params"][layer][leaf])
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.ravel(), np.asarray(values, np.float32), err_msg=name)
