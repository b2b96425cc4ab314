"""The public API: names, docstrings with examples, and the initializer value semantics."""

import dataclasses
import inspect
import pathlib
import tomllib

import jax
import jax.numpy as jnp
import pytest

import jaxinit
from jaxinit._src.core import base

# The core names (jax.nn.initializers' names and jaxinit's own schemes), plus the describe
# result type.
CORE = {
    "Initializer",
    "compute_fans",
    "Mamba2ALog",
    "mamba2_a_log",
    "MambaALog",
    "mamba_a_log",
    "MambaDtBias",
    "mamba_dt_bias",
    "S4DLin",
    "s4d_lin",
    "S4DInv",
    "s4d_inv",
    "HiPPOLegSA",
    "hippo_legs_a",
    "HiPPOLegSB",
    "hippo_legs_b",
    "LRUNuLog",
    "lru_nu_log",
    "LRUThetaLog",
    "lru_theta_log",
    "RGLRUA",
    "rg_lru_a",
    "LoRAGaussianA",
    "LoRAWeights",
    "lora_a",
    "lora_b",
    "lora_scaling",
    "olora",
    "pissa",
    "zeros",
    "ones",
    "constant",
    "uniform",
    "normal",
    "truncated_normal",
    "variance_scaling",
    "glorot_uniform",
    "glorot_normal",
    "xavier_uniform",
    "xavier_normal",
    "he_uniform",
    "he_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "delta_orthogonal",
    "uniform_range",
    "identity",
    "dirac",
    "sparse",
    "gain",
    "describe",
    "Description",
}
PRETRAINED = {
    "open_weights",
    "Weights",
    "pretrained",
    "Pretrained",
    "load_pretrained",
    "LoadReport",
    "LoadWarning",
    "stream_pretrained",
    "StreamReport",
    "save_hf",
    "PretrainedError",
    "layout",
    "hf",
}
DATA_DEPENDENT = {
    "diagnose",
    "Diagnosis",
    "compare_model",
    "ModelComparison",
    "lsuv",
    "LSUVLayer",
    "LSUVReport",
    "diagnostics",
    "q_star",
    "chi",
    "critical_weight_std",
    "critical_point",
    "depth_scales",
}
# Combinators and tree tools.
COMPOSITION = {"scaled", "stacked", "blocks", "einsum_axes", "reinit"}
PARAMETRIZATIONS = {
    "mup_classify",
    "MuPParam",
    "mup_rules",
    "plot_coord_check",
    "channels_first",
    "ChannelsFirst",
    "equinox_init",
    "keras_initializer",
    "mup_readout_multiplier",
    "DepthMuP",
    "depth_mup",
    "mup_output",
    "mup_lr_scale",
    "mup_attention_scale",
    "mup_coord_check",
    "spectral",
    "spectral_rules",
    "spectral_lr_scale",
    "residual_normal",
    "small_init",
    "wang_init",
    "olmo_init",
    "fixup_scale",
    "fixup_init",
    "t_fixup_scale",
    "t_fixup_init",
    "deepnorm_constants",
    "DeepNorm",
    "deepnorm_init",
    "zero_init_rules",
    "torchtitan_init",
    "per_layer",
    "PerLayer",
    "recipe",
    "recipes",
}
DOCUMENTED = CORE | COMPOSITION | PRETRAINED | DATA_DEPENDENT | PARAMETRIZATIONS
# Result types, warnings and errors: a docstring, but nothing to run on their own.
NO_EXAMPLE = {
    "Initializer",
    "Description",
    "Pretrained",
    "LoadReport",
    "StreamReport",
    "LoadWarning",
    "PretrainedError",
    "LSUVLayer",
    "LSUVReport",
    "Diagnosis",
    "ModelComparison",
    "Weights",
    "MuPParam",
    "DeepNorm",
    "DepthMuP",
    # The types per_layer and channels_first return (their builders have the examples).
    "PerLayer",
    "ChannelsFirst",
}


def test_all_matches_the_documented_names():
    assert set(jaxinit.__all__) == DOCUMENTED
    assert len(jaxinit.__all__) == len(set(jaxinit.__all__))
    for name in jaxinit.__all__:
        assert hasattr(jaxinit, name), name


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_docstring_with_example(name):
    obj = getattr(jaxinit, name)
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"{name} has no docstring"
    if name not in NO_EXAMPLE:
        assert ">>>" in doc, f"{name}'s docstring has no runnable example"
    # A tab in a docstring is an escape gone wrong ("\text" in a non-raw string).
    assert "\t" not in (getattr(obj, "__doc__", None) or ""), f"{name}'s docstring has a tab"


FACTORIES = [
    jaxinit.constant(2.0),
    jaxinit.uniform(),
    jaxinit.uniform_range(-1, 1),
    jaxinit.normal(),
    jaxinit.truncated_normal(),
    jaxinit.variance_scaling(1.0, "fan_in", "normal"),
    jaxinit.glorot_uniform(),
    jaxinit.he_normal(batch_axis=[0]),
    jaxinit.lecun_uniform(),
    jaxinit.orthogonal(),
    jaxinit.delta_orthogonal(),
    jaxinit.identity(),
    jaxinit.dirac(),
    jaxinit.sparse(0.5),
    jaxinit.zeros,
    jaxinit.ones,
]


@pytest.mark.parametrize("init", FACTORIES, ids=lambda i: type(i).__name__)
def test_initializers_are_frozen_hashable_printable(init):
    assert isinstance(init, jaxinit.Initializer)
    assert dataclasses.is_dataclass(init)
    with pytest.raises(dataclasses.FrozenInstanceError):
        init.dtype = jnp.float16
    clone = dataclasses.replace(init)
    assert clone == init and hash(clone) == hash(init)
    text = repr(init)
    assert text.startswith(type(init).__name__ + "(")
    assert "<function" not in text and "lambda" not in text


def test_equal_configurations_compare_equal():
    assert jaxinit.he_normal() == jaxinit.variance_scaling(2.0, "fan_in", "truncated_normal")
    assert jaxinit.he_normal(batch_axis=[0]) == jaxinit.he_normal(batch_axis=(0,))
    assert jaxinit.normal(dtype="bfloat16") == jaxinit.normal(dtype=jnp.bfloat16)
    assert jaxinit.he_normal() != jaxinit.he_uniform()
    assert jaxinit.glorot_normal is jaxinit.xavier_normal
    assert jaxinit.he_uniform is jaxinit.kaiming_uniform


class _Counting(base.InitializerBase):
    traces = 0

    def generate(self, key, shape, dtype):
        type(self).traces += 1
        return jax.random.normal(key, shape, dtype)


_Counting = dataclasses.dataclass(frozen=True)(_Counting)


def test_eager_calls_reuse_one_compiled_executable():
    """Rule 6: fresh but equal initializers, the same shape and dtype: traced once."""
    for seed in range(4):
        _Counting()(jax.random.key(seed), (8, 8))
    assert _Counting.traces == 1
    _Counting()(jax.random.key(0), (8, 9))  # a new shape compiles once more
    assert _Counting.traces == 2


def test_eager_cache_hits_for_real_schemes():
    base.compiled.cache_clear()
    for seed in range(5):
        jaxinit.orthogonal()(jax.random.key(seed), (16, 16))
        jaxinit.he_normal()(jax.random.key(seed), (16, 16))
    info = base.compiled.cache_info()
    assert (info.misses, info.hits) == (2, 8)


def test_traced_calls_are_inline():
    """Under jit/vmap/eval_shape the sampling is traced into the caller's program: the eager
    cache is not consulted."""
    base.compiled.cache_clear()
    init = jaxinit.he_normal()
    jax.jit(lambda k: init(k, (4, 4)))(jax.random.key(0))
    jax.vmap(lambda k: init(k, (4, 4)))(jax.random.split(jax.random.key(0), 2))
    jax.eval_shape(lambda k: init(k, (4, 4)), jax.random.key(0))
    assert base.compiled.cache_info().currsize == 0


def test_out_sharding_single_device():
    device = jax.devices()[0]
    sharding = jax.sharding.SingleDeviceSharding(device)
    w = jaxinit.he_normal()(jax.random.key(0), (8, 8), out_sharding=sharding)
    assert w.sharding == sharding


def test_version_is_the_one_in_pyproject():
    """``jaxinit.__version__`` comes from the installed metadata, which pyproject.toml sets."""
    pyproject = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"
    with pyproject.open("rb") as f:
        expected = tomllib.load(f)["project"]["version"]
    assert jaxinit.__version__ == expected
