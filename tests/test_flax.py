"""jaxinit initializers inside real flax.linen and flax.nnx modules.

Each test builds a module with jaxinit initializers and checks the parameters it gets
against the std the intended fans give (computed by hand in the test, not by jaxinit).

Tolerance: the sample std of n i.i.d. draws has relative standard error
sqrt((kurtosis - 1) / (4 n)) <= sqrt(2 / (4 n)) for the normal, truncated-normal and
uniform schemes used here; `assert_std` allows 5 standard errors (two-sided normal
tail: false-failure probability 6e-7 per check) and the mean 5 standard errors of the mean.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit

KEY = jax.random.key(0)


def assert_std(w, expected):
    w = np.asarray(w, np.float64)
    n = w.size
    rel_se = math.sqrt(2 / (4 * n))
    assert abs(w.std() / expected - 1) < 5 * rel_se, (w.std(), expected, n)
    assert abs(w.mean()) < 5 * expected / math.sqrt(n), (w.mean(), expected, n)


def test_std_check_rejects_wrong_fan():
    """The check is sharp enough to see a fan off by a factor of 2."""
    w = jaxinit.he_normal()(KEY, (256, 128))
    assert_std(w, math.sqrt(2 / 256))
    with pytest.raises(AssertionError):
        assert_std(w, math.sqrt(2 / 512))


# --- flax.linen ----------------------------------------------------------------------------


def test_linen_dense():
    m = nn.Dense(128, kernel_init=jaxinit.he_normal(), bias_init=jaxinit.constant(0.1))
    p = m.init(KEY, jnp.ones((1, 256)))["params"]
    assert_std(p["kernel"], math.sqrt(2 / 256))
    np.testing.assert_array_equal(p["bias"], np.full(128, 0.1, np.float32))


def test_linen_dense_general_flattened_features():
    # kernel_init sees the flattened (256, 8 * 32) kernel: fan_in = 256.
    m = nn.DenseGeneral((8, 32), kernel_init=jaxinit.lecun_normal())
    k = m.init(KEY, jnp.ones((1, 256)))["params"]["kernel"]
    assert k.shape == (256, 8, 32)
    assert_std(k, 1 / math.sqrt(256))


def test_linen_conv_and_conv_transpose():
    conv = nn.Conv(64, (3, 3), kernel_init=jaxinit.he_uniform())
    k = conv.init(KEY, jnp.ones((1, 8, 8, 32)))["params"]["kernel"]
    assert k.shape == (3, 3, 32, 64)
    assert_std(k, math.sqrt(2 / (3 * 3 * 32)))
    assert float(jnp.abs(k).max()) <= math.sqrt(6 / (3 * 3 * 32))
    tconv = nn.ConvTranspose(32, (3, 3), kernel_init=jaxinit.glorot_normal())
    k = tconv.init(KEY, jnp.ones((1, 8, 8, 64)))["params"]["kernel"]
    assert k.shape == (3, 3, 64, 32)
    assert_std(k, math.sqrt(2 / (9 * 64 + 9 * 32)))


def test_linen_embed():
    m = nn.Embed(1000, 64, embedding_init=jaxinit.normal(0.02))
    e = m.init(KEY, jnp.zeros((1,), jnp.int32))["params"]["embedding"]
    assert_std(e, 0.02)


def test_linen_attention():
    m = nn.MultiHeadDotProductAttention(num_heads=8, qkv_features=256,
                                        kernel_init=jaxinit.lecun_normal())
    x = jnp.ones((1, 4, 256))
    p = m.init(KEY, x, x)["params"]
    for name in ("query", "key", "value"):
        assert p[name]["kernel"].shape == (256, 8, 32)
        assert_std(p[name]["kernel"], 1 / math.sqrt(256))
    assert p["out"]["kernel"].shape == (8, 32, 256)
    assert_std(p["out"]["kernel"], 1 / math.sqrt(8 * 32))


@pytest.mark.parametrize("cell", [nn.LSTMCell, nn.GRUCell])
def test_linen_recurrent_cells(cell):
    m = cell(256, kernel_init=jaxinit.lecun_normal(), recurrent_kernel_init=jaxinit.orthogonal())
    carry = m.initialize_carry(jax.random.key(1), (1, 128))
    p = m.init(KEY, carry, jnp.ones((1, 128)))["params"]
    inputs = [n for n in p if n.startswith("i")]
    hidden = [n for n in p if n.startswith("h")]
    assert len(inputs) == len(hidden) >= 3
    for n in inputs:
        assert_std(p[n]["kernel"], 1 / math.sqrt(128))
    for n in hidden:
        k = p[n]["kernel"]
        np.testing.assert_allclose(k.T @ k, np.eye(256), atol=2e-5)
    assert not np.allclose(p[hidden[0]]["kernel"], p[hidden[1]]["kernel"])


def test_linen_scan_stacked_layers():
    class Block(nn.Module):
        @nn.compact
        def __call__(self, x, _):
            return nn.relu(nn.Dense(256, kernel_init=jaxinit.he_normal())(x)), None

    stack = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True}, length=6)
    p = stack().init(KEY, jnp.ones((1, 256)), None)["params"]
    k = p["Dense_0"]["kernel"]
    assert k.shape == (6, 256, 256)
    for i in range(6):
        assert_std(k[i], math.sqrt(2 / 256))   # each layer its own fan_in, not 6 * 256
    assert not np.allclose(k[0], k[1])


def test_linen_partitioning_wrappers():
    init = nn.with_partitioning(jaxinit.he_normal(), (None, "model"))
    p = nn.Dense(128, kernel_init=init).init(KEY, jnp.ones((1, 256)))["params"]
    assert isinstance(p["kernel"], nn.Partitioned)
    assert p["kernel"].names == (None, "model")
    assert_std(p["kernel"].unbox(), math.sqrt(2 / 256))

    logical = nn.with_logical_partitioning(jaxinit.stacked(jaxinit.lecun_normal()),
                                           ("layers", "embed", "mlp"))

    class Stacked(nn.Module):
        @nn.compact
        def __call__(self, x):
            return x @ self.param("w", logical, (4, 256, 128))[0]

    p = Stacked().init(KEY, jnp.ones((1, 256)))["params"]
    assert isinstance(p["w"], nn.LogicallyPartitioned)
    assert p["w"].names == ("layers", "embed", "mlp")
    for i in range(4):
        assert_std(p["w"].unbox()[i], 1 / math.sqrt(256))


# --- flax.nnx ------------------------------------------------------------------------------


def test_nnx_linear():
    m = nnx.Linear(256, 128, kernel_init=jaxinit.he_normal(),
                   bias_init=jaxinit.constant(0.1), rngs=nnx.Rngs(0))
    assert_std(m.kernel[...], math.sqrt(2 / 256))
    np.testing.assert_array_equal(m.bias[...], np.full(128, 0.1, np.float32))


def test_nnx_linear_general():
    m = nnx.LinearGeneral(256, (8, 32), kernel_init=jaxinit.lecun_normal(), rngs=nnx.Rngs(0))
    assert m.kernel.shape == (256, 8, 32)
    assert_std(m.kernel[...], 1 / math.sqrt(256))


def test_nnx_einsum_per_head():
    spec = "bhd,hdk->bhk"   # per-head kernels: h is a batch axis, fan_in = d
    init = jaxinit.he_normal(**jaxinit.einsum_axes(spec))
    m = nnx.Einsum(spec, (8, 256, 64), kernel_init=init, rngs=nnx.Rngs(0))
    assert_std(m.kernel[...], math.sqrt(2 / 256))


def test_nnx_conv_and_conv_transpose():
    m = nnx.Conv(32, 64, (3, 3), kernel_init=jaxinit.he_uniform(), rngs=nnx.Rngs(0))
    assert m.kernel.shape == (3, 3, 32, 64)
    assert_std(m.kernel[...], math.sqrt(2 / (3 * 3 * 32)))
    t = nnx.ConvTranspose(64, 32, (3, 3), kernel_init=jaxinit.glorot_normal(),
                          rngs=nnx.Rngs(0))
    assert t.kernel.shape == (3, 3, 64, 32)
    assert_std(t.kernel[...], math.sqrt(2 / (9 * 64 + 9 * 32)))


def test_nnx_embed():
    m = nnx.Embed(1000, 64, embedding_init=jaxinit.normal(0.02), rngs=nnx.Rngs(0))
    assert_std(m.embedding[...], 0.02)


def test_nnx_attention():
    m = nnx.MultiHeadAttention(num_heads=8, in_features=256, qkv_features=256, decode=False,
                               kernel_init=jaxinit.lecun_normal(), rngs=nnx.Rngs(0))
    for lin in (m.query, m.key, m.value):
        assert lin.kernel.shape == (256, 8, 32)
        assert_std(lin.kernel[...], 1 / math.sqrt(256))
    assert_std(m.out.kernel[...], 1 / math.sqrt(8 * 32))


def test_nnx_vmap_and_scan_stacked_layers():
    @nnx.split_rngs(splits=6)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(rngs):
        return nnx.Linear(256, 256, kernel_init=jaxinit.he_normal(), rngs=rngs)

    layers = create(nnx.Rngs(0))
    k = layers.kernel[...]
    assert k.shape == (6, 256, 256)
    for i in range(6):
        assert_std(k[i], math.sqrt(2 / 256))
    assert not np.allclose(k[0], k[1])

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def forward(x, layer):
        return nnx.relu(layer(x))

    y = forward(jnp.ones((1, 256)), layers)
    assert y.shape == (1, 256) and bool(jnp.isfinite(y).all())


def test_nnx_with_partitioning():
    mesh = jax.make_mesh((1,), ("model",), axis_types=(jax.sharding.AxisType.Explicit,))
    init = nnx.with_partitioning(jaxinit.he_normal(), (None, "model"))
    with jax.set_mesh(mesh):
        m = nnx.Linear(256, 128, kernel_init=init, rngs=nnx.Rngs(0))
    assert m.kernel.get_metadata()["out_sharding"] == (None, "model")
    assert_std(m.kernel[...], math.sqrt(2 / 256))


def test_readme_flax_section_runs():
    """The README's "Composing with Flax" example runs as written."""
    import pathlib

    text = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    section = text[text.index("## Composing with Flax"):]
    start = section.index("```python\n") + len("```python\n")
    code = section[start:section.index("```", start)]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    w = namespace["stack_params"]["params"]["kernel"]
    assert_std(w[3], math.sqrt(2 / 256))
