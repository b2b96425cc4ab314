"""Sharded initialization (the 'Sharding-invariant values' design principle) on 8
simulated CPU devices.

Run by `make sharded` in its own process with
XLA_FLAGS=--xla_force_host_platform_device_count=8; `make unit` deselects these tests by
marker. Run any other way with fewer than 8 devices they fail (not skip), so a
misconfigured CI cannot pass them silently.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxinit
import jaxinit.torch as jt

pytestmark = pytest.mark.sharded
KEY = jax.random.key(0)


@pytest.fixture(autouse=True)
def _eight_devices():
    if jax.device_count() < 8:
        pytest.fail(
            f"sharding tests need 8 devices, found {jax.device_count()}: run `make sharded` "
            "(XLA_FLAGS=--xla_force_host_platform_device_count=8) or deselect with "
            "-m 'not sharded'"
        )


def mesh_of(shape, axis_type=AxisType.Explicit):
    names = ("x",) if len(shape) == 1 else ("a", "b")
    return jax.make_mesh(shape, names, axis_types=(axis_type,) * len(shape))


def spec_for(mesh, rank):
    """Shard the last two axes over the mesh (the last only for a 1-D mesh)."""
    names = mesh.axis_names
    tail = (None, *names) if len(names) == 1 else names
    return P(*([None] * (rank - 2)), *tail)


def assert_sharded(w, ref, sharding, exact=True):
    assert w.sharding.is_equivalent_to(sharding, w.ndim), (w.sharding, sharding)
    if exact:
        np.testing.assert_array_equal(np.asarray(w), np.asarray(ref))
    else:
        # Inside `jax.set_mesh` with Explicit axes, JAX wraps every op in a sharding
        # constraint, which stops XLA from folding sqrt(2) * stddev in a normal draw:
        # 1-ulp differences, even for an unsharded jit in that context. 2 ulp allowed.
        np.testing.assert_allclose(np.asarray(w), np.asarray(ref), rtol=2.0**-22, atol=0)
    expected = sharding.shard_shape(w.shape)
    shards = w.addressable_shards
    assert len(shards) == 8
    assert all(s.data.shape == expected for s in shards)   # each device: only its shard
    assert len({s.device for s in shards}) == 8


TABLE = [
    ("zeros", jaxinit.zeros, (16, 32)),
    ("constant", jaxinit.constant(0.5), (16, 32)),
    ("uniform", jaxinit.uniform(0.1), (16, 32)),
    ("uniform_range", jaxinit.uniform_range(-1.0, 2.0), (16, 32)),
    ("normal", jaxinit.normal(0.02), (16, 32)),
    ("truncated_normal", jaxinit.truncated_normal(0.02), (16, 32)),
    ("glorot_uniform", jaxinit.glorot_uniform(), (16, 32)),
    ("he_normal", jaxinit.he_normal(), (3, 3, 16, 32)),
    ("lecun_normal", jaxinit.lecun_normal(), (16, 32)),
    ("variance_scaling", jaxinit.variance_scaling(1.0, "fan_avg", "normal"), (16, 32)),
    ("orthogonal", jaxinit.orthogonal(), (16, 32)),
    ("orthogonal_tall", jaxinit.orthogonal(2.0), (64, 32)),
    ("delta_orthogonal", jaxinit.delta_orthogonal(), (3, 3, 16, 32)),
    ("identity", jaxinit.identity(), (16, 32)),
    ("dirac", jaxinit.dirac(), (3, 3, 16, 32)),
    ("sparse", jaxinit.sparse(0.5), (16, 32)),
    ("scaled", jaxinit.scaled(jaxinit.orthogonal(), 0.5), (16, 32)),
    ("stacked", jaxinit.stacked(jaxinit.orthogonal()), (4, 16, 32)),
    ("blocks", jaxinit.blocks(jaxinit.glorot_normal(), 4), (16, 32)),
    ("torch_kaiming_normal", jt.kaiming_normal(), (16, 32)),
    ("torch_trunc_normal", jt.trunc_normal(0.1, 0.5, -1.0, 1.0), (16, 32)),
    ("torch_sparse", jt.sparse(0.5), (16, 32)),
    ("torch_dirac", jt.dirac(), (4, 4, 16, 32)),
]
# Every initializer on the (2, 4) mesh; those whose sharding is least trivial (QR,
# scatter, sort, vmap over keys) on all three meshes.
ALL_MESHES = {"orthogonal", "delta_orthogonal", "stacked"}
CASES = [pytest.param(init, shape, mesh, id=f"{name}-{'x'.join(map(str, mesh))}")
         for name, init, shape in TABLE
         for mesh in ([(8,), (2, 4), (4, 2)] if name in ALL_MESHES else [(2, 4)])]


@pytest.mark.parametrize(("init", "shape", "mesh_shape"), CASES)
def test_values_independent_of_sharding(init, shape, mesh_shape):
    mesh = mesh_of(mesh_shape)
    spec = spec_for(mesh, len(shape))
    sharding = NamedSharding(mesh, spec)
    ref = init(KEY, shape)                                           # unsharded
    assert_sharded(init(KEY, shape, out_sharding=sharding), ref, sharding)
    assert_sharded(jax.jit(lambda k: init(k, shape, out_sharding=sharding))(KEY), ref,
                   sharding)
    assert_sharded(jax.jit(lambda k: init(k, shape), out_shardings=sharding)(KEY), ref,
                   sharding)
    with jax.set_mesh(mesh):
        assert_sharded(jax.jit(lambda k: init(k, shape, out_sharding=spec))(KEY), ref, sharding,
                       exact=False)


@pytest.mark.parametrize("init", [jaxinit.orthogonal(), jaxinit.he_normal()],
                         ids=["orthogonal", "he_normal"])
def test_auto_axes_and_vmap(init):
    mesh = mesh_of((2, 4), AxisType.Auto)
    sharding = NamedSharding(mesh, P("a", "b"))
    ref = init(KEY, (16, 32))
    assert_sharded(jax.jit(lambda k: init(k, (16, 32), out_sharding=sharding))(KEY), ref,
                   sharding)
    with jax.set_mesh(mesh):
        assert_sharded(jax.jit(lambda k: init(k, (16, 32), out_sharding=P("a", "b")))(KEY),
                       ref, sharding)
    keys = jax.random.split(KEY, 2)
    batch = jax.jit(jax.vmap(lambda k: init(k, (16, 32), out_sharding=sharding)))(keys)
    assert batch.sharding.spec == P(None, "a", "b")
    np.testing.assert_array_equal(batch[1], init(keys[1], (16, 32)))


def test_partition_spec_without_mesh_is_an_error():
    with pytest.raises(ValueError, match="is a PartitionSpec but no mesh is set"):
        jax.jit(lambda k: jaxinit.he_normal()(k, (16, 32), out_sharding=P("a", "b")))(KEY)
    with pytest.raises(ValueError, match="is a PartitionSpec but no mesh is set"):
        jaxinit.he_normal()(KEY, (16, 32), out_sharding=P("a", "b"))


# --- end to end: a small transformer initialized directly sharded -------------------------


def part(init, names):
    return nn.with_partitioning(init, names)


class Block(nn.Module):
    d: int = 64

    @nn.compact
    def __call__(self, x, _):
        h = nn.LayerNorm()(x)
        qkv = nn.Dense(3 * self.d, kernel_init=part(
            jaxinit.blocks(jaxinit.glorot_normal(), 3), (None, "model")))(h)
        q, k, v = jnp.split(qkv, 3, axis=-1)
        att = jax.nn.softmax(q @ jnp.swapaxes(k, -1, -2) / 8.0) @ v
        x = x + nn.Dense(self.d, kernel_init=part(jaxinit.orthogonal(), ("model", None)))(att)
        h = nn.Dense(4 * self.d, kernel_init=part(jaxinit.he_normal(), (None, "model")))(x)
        out = nn.Dense(self.d, kernel_init=part(
            jaxinit.scaled(jaxinit.lecun_normal(), 0.5), ("model", None)))(nn.gelu(h))
        return x + out, None


class Transformer(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(256, 64, embedding_init=part(jaxinit.normal(0.02), ("model", None)))(
            tokens)
        x, _ = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True},
                       length=2, metadata_params={nn.PARTITION_NAME: None})()(x, None)
        return x


@pytest.mark.parametrize("mesh_shape", [(8,), (2, 4)])
def test_linen_transformer_initialized_sharded(mesh_shape):
    names = ("model",) if len(mesh_shape) == 1 else ("data", "model")
    mesh = jax.make_mesh(mesh_shape, names, axis_types=(AxisType.Explicit,) * len(names))
    model, tokens = Transformer(), jnp.zeros((2, 8), jnp.int32)
    abstract = jax.eval_shape(model.init, KEY, tokens)
    shardings = nn.get_sharding(abstract, mesh)
    sharded = jax.jit(model.init, out_shardings=shardings)(KEY, tokens)
    single = model.init(KEY, tokens)
    flat_s = jax.tree.leaves(nn.unbox(sharded))
    flat_r = jax.tree.leaves(nn.unbox(single))
    flat_sh = jax.tree.leaves(shardings)
    assert len(flat_s) == len(flat_r) == len(flat_sh) >= 10
    n_split = 0
    for w, ref, sh in zip(flat_s, flat_r, flat_sh, strict=True):
        assert w.sharding.is_equivalent_to(sh, w.ndim)
        np.testing.assert_array_equal(np.asarray(w), np.asarray(ref))
        shard = sh.shard_shape(w.shape)
        assert all(s.data.shape == shard for s in w.addressable_shards)
        n_split += shard != w.shape
    assert n_split >= 5   # the kernels and the embedding really are split


def test_nnx_model_initialized_sharded():
    mesh = mesh_of((2, 4))

    class MLP(nnx.Module):
        def __init__(self, rngs, sharded=True):
            def init(base, names):
                return nnx.with_partitioning(base, names) if sharded else base

            self.up = nnx.Linear(64, 256, rngs=rngs,
                                 kernel_init=init(jaxinit.he_normal(), ("a", "b")))
            self.down = nnx.Linear(256, 64, rngs=rngs,
                                   kernel_init=init(jaxinit.orthogonal(), ("b", "a")))

    with jax.set_mesh(mesh):
        abstract = nnx.eval_shape(lambda: MLP(nnx.Rngs(0)))
        specs = nnx.get_partition_spec(nnx.state(abstract))
        assert specs["up"]["kernel"].get_value() == P("a", "b")
        assert abstract.up.kernel.shape == (64, 256)
        model = nnx.jit(lambda: MLP(nnx.Rngs(0)))()
    single = MLP(nnx.Rngs(0), sharded=False)   # no mesh: one device
    assert_sharded(model.up.kernel[...], single.up.kernel[...],
                   NamedSharding(mesh, P("a", "b")), exact=False)
    assert_sharded(model.down.kernel[...], single.down.kernel[...],
                   NamedSharding(mesh, P("b", "a")), exact=False)


@pytest.mark.parametrize("mesh_shape", [(8,), (2, 4)])
@pytest.mark.parametrize("name", ["he_normal", "normal", "orthogonal", "zeros"])
def test_partition_spec_normalized_to_rank_like_jax(name, mesh_shape):
    """A spec shorter than the array rank comes back padded with None, as from
    jax.nn.initializers: `P('x')` on a rank-2 array is typed `P('x', None)`, so jitted
    code that compares types sees the same sharding for either library's array."""
    mesh = mesh_of(mesh_shape)
    spec = P(mesh.axis_names[0])  # shorter than the rank; shards the first axis
    ours = getattr(jaxinit, name)
    ref = getattr(jax.nn.initializers, name)
    if name != "zeros":
        ours, ref = ours(), ref()
    with jax.set_mesh(mesh):
        w = ours(KEY, (8, 2), jnp.float32, out_sharding=spec)
        if name == "orthogonal":  # jax's orthogonal refuses out_sharding: place its result
            expected = jax.sharding.reshard(ref(KEY, (8, 2), jnp.float32), spec)
        else:
            expected = ref(KEY, (8, 2), jnp.float32, out_sharding=spec)
        assert w.sharding == expected.sharding, (w.sharding, expected.sharding)
        assert jax.typeof(w).sharding.spec == jax.typeof(expected).sharding.spec
    assert w.sharding.spec == P(mesh.axis_names[0], None)
    assert w.dtype == expected.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(w), np.asarray(expected))


def test_partition_spec_longer_than_rank_is_an_error():
    expected = (
        r"variance_scaling: out_sharding spec P\('x', None, None\) has 3 entries; "
        r"expected at most 2"
    )
    with jax.set_mesh(mesh_of((8,))), pytest.raises(ValueError, match=expected):
        jaxinit.he_normal()(KEY, (8, 2), out_sharding=P("x", None, None))
