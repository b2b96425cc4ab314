"""LoRA initializers against peft (real ``get_peft_model`` on a tiny torch Linear)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from conftest import require

import jaxinit

require("peft")  # skipped locally when absent, a failure under CI
require("torch")
import peft  # noqa: E402
import torch  # noqa: E402

# ks_2samp is rejected below p < 1e-3, so each KS equality check fails falsely with
# probability 1e-3 under the null (fixed seeds make the outcome deterministic).
KS_ALPHA = 1e-3


class _Tiny(torch.nn.Module):
    def __init__(self, fan_in: int, fan_out: int):
        super().__init__()
        self.lin = torch.nn.Linear(fan_in, fan_out, bias=False)

    def forward(self, x):
        return self.lin(x)


def _peft_layer(fan_in, fan_out, r, seed=0, **config):
    """(original (out, in) weight, peft's LoRA Linear) built from a seeded torch Linear."""
    torch.manual_seed(seed)
    model = _Tiny(fan_in, fan_out)
    weight = model.lin.weight.detach().clone().numpy()
    cfg = peft.LoraConfig(r=r, target_modules=["lin"], **config)
    layer = peft.get_peft_model(model, cfg).base_model.model.lin
    return weight, layer


def _factors(layer):
    a = layer.lora_A["default"].weight.detach().numpy()
    b = layer.lora_B["default"].weight.detach().numpy()
    base = layer.base_layer.weight.detach().numpy()
    return a, b, base


# float32 round-off on these small shapes: the factors are O(1), so 1e-5 absolute.
TOL = 1e-5


@pytest.mark.parametrize(
    "fan_in,fan_out,r,alpha,rslora", [(12, 20, 3, 6, False), (24, 10, 5, 8, True)]
)
def test_olora_matches_peft(fan_in, fan_out, r, alpha, rslora):
    weight, layer = _peft_layer(
        fan_in, fan_out, r, lora_alpha=alpha, use_rslora=rslora, init_lora_weights="olora"
    )
    a, b, base = _factors(layer)
    got = jaxinit.olora(weight.T, r, scaling=layer.scaling["default"])
    assert got.a.shape == (fan_in, r) and got.b.shape == (r, fan_out)
    np.testing.assert_allclose(np.asarray(got.a), a.T, atol=TOL)
    np.testing.assert_allclose(np.asarray(got.b), b.T, atol=TOL)
    np.testing.assert_allclose(np.asarray(got.base), base.T, atol=TOL)


@pytest.mark.parametrize(
    "fan_in,fan_out,r,alpha,rslora", [(12, 20, 3, 6, False), (24, 10, 5, 8, True)]
)
def test_pissa_matches_peft(fan_in, fan_out, r, alpha, rslora):
    weight, layer = _peft_layer(
        fan_in, fan_out, r, lora_alpha=alpha, use_rslora=rslora, init_lora_weights="pissa"
    )
    a, b, base = _factors(layer)
    scaling = layer.scaling["default"]
    got = jaxinit.pissa(weight.T, r, scaling=scaling)
    np.testing.assert_allclose(np.asarray(got.base), base.T, atol=TOL)
    np.testing.assert_allclose(np.asarray(got.a @ got.b), (b @ a).T, atol=TOL)
    # Each singular triplet is unique up to one sign shared by its A row and B column
    # (LAPACK builds differ in it); after aligning it the factors agree to round-off.
    sign = np.sign(np.sum(np.asarray(got.a) * a.T, axis=0))
    assert np.all(np.abs(sign) == 1)
    np.testing.assert_allclose(np.asarray(got.a) * sign, a.T, atol=TOL)
    np.testing.assert_allclose(np.asarray(got.b) * sign[:, None], b.T, atol=TOL)
    # The adapter and the residual rebuild the original layer: base + s * a @ b = kernel.
    np.testing.assert_allclose(
        np.asarray(got.base + scaling * got.a @ got.b), weight.T, atol=TOL
    )


def test_fast_pissa_close_to_peft():
    """Randomized PiSSA (peft's pissa_niter_K) on a weight with a spectral gap after S_r."""
    fan_in, fan_out, r = 40, 30, 4
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((fan_out, fan_out)))
    v, _ = np.linalg.qr(rng.standard_normal((fan_in, fan_in)))
    s = np.r_[[8.0, 6.0, 5.0, 4.0], 0.5 * 0.8 ** np.arange(fan_out - r)]
    weight = ((u * s) @ v[:, :fan_out].T).astype(np.float32)  # (out, in), gap 4 -> 0.5
    torch.manual_seed(0)
    model = _Tiny(fan_in, fan_out)
    with torch.no_grad():
        model.lin.weight.copy_(torch.from_numpy(weight))
    cfg = peft.LoraConfig(
        r=r, lora_alpha=8, target_modules=["lin"], init_lora_weights="pissa_niter_4"
    )
    layer = peft.get_peft_model(model, cfg).base_model.model.lin
    a, b, base = _factors(layer)
    scaling = layer.scaling["default"]
    got = jaxinit.pissa(weight.T, r, scaling=scaling, niter=4, key=jax.random.key(0))
    exact = jaxinit.pissa(weight.T, r, scaling=scaling)
    # Both randomized results are within the power-iteration error (ratio (0.5/4)^(2*4+1)
    # of the tail, ~1e-8 here) of the exact split, so they agree to float32 round-off.
    np.testing.assert_allclose(np.asarray(got.base), base.T, atol=1e-4)
    np.testing.assert_allclose(np.asarray(got.a @ got.b), (b @ a).T, atol=1e-4)
    np.testing.assert_allclose(np.asarray(got.base), np.asarray(exact.base), atol=1e-4)
    np.testing.assert_allclose(
        np.asarray(got.base + scaling * got.a @ got.b), weight.T, atol=TOL
    )


@pytest.mark.parametrize("fn", [jaxinit.pissa, jaxinit.olora])
def test_low_precision_kernel(fn):
    """bfloat16 kernels are factorized in float32 and returned in bfloat16."""
    kernel = jax.random.normal(jax.random.key(1), (16, 8), jnp.float32)
    want = fn(kernel.astype(jnp.bfloat16).astype(jnp.float32), 3)
    got = fn(kernel.astype(jnp.bfloat16), 3)
    for g, w in zip((got.a, got.b, got.base), (want.a, want.b, want.base), strict=True):
        assert g.dtype == jnp.bfloat16
        # bfloat16 keeps 8 bits: relative round-off 2^-8 of O(1) values.
        np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w), atol=0.03)


def _peft_a(variant, fan_in, r):
    init = True if variant == "kaiming" else "gaussian"
    _, layer = _peft_layer(fan_in, 32, r, seed=3, init_lora_weights=init)
    a, b, _ = _factors(layer)
    assert not b.any()
    return a.ravel()


@pytest.mark.parametrize("variant,fan_in,r", [("kaiming", 256, 16), ("gaussian", 128, 24)])
def test_lora_a_ks_equal_to_peft(variant, fan_in, r):
    theirs = _peft_a(variant, fan_in, r)  # 4096 / 3072 draws
    ours = np.asarray(jaxinit.lora_a(variant)(jax.random.key(7), (fan_in, r))).ravel()
    assert scipy.stats.ks_2samp(ours, theirs).pvalue > KS_ALPHA
    if variant == "kaiming":
        assert np.abs(ours).max() <= 1 / math.sqrt(fan_in)


def test_lora_a_ks_detects_wrong_variant():
    """The KS check has power: a=0 (bound sqrt(6/fan_in)) or std 1/sqrt(r) is rejected."""
    kaiming = _peft_a("kaiming", 256, 16)
    wrong = np.asarray(jaxinit.torch.kaiming_uniform()(jax.random.key(7), (256, 16))).ravel()
    assert scipy.stats.ks_2samp(wrong, kaiming).pvalue < KS_ALPHA
    gaussian = _peft_a("gaussian", 128, 24)
    wrong = np.asarray(jaxinit.normal(1 / math.sqrt(24))(jax.random.key(7), (128, 24))).ravel()
    assert scipy.stats.ks_2samp(wrong, gaussian).pvalue < KS_ALPHA


def test_lora_b_is_zeros():
    assert not np.asarray(jaxinit.lora_b()(jax.random.key(0), (4, 9))).any()


@pytest.mark.parametrize("r,alpha", [(4, 16), (7, 3)])
@pytest.mark.parametrize("rslora", [False, True])
def test_scaling_matches_peft(r, alpha, rslora):
    _, layer = _peft_layer(16, 12, r, lora_alpha=alpha, use_rslora=rslora)
    want = layer.scaling["default"]
    assert jaxinit.lora_scaling(alpha, r, rslora=rslora) == pytest.approx(want, rel=1e-12)


def test_nnx_lora_by_path():
    """Random A / zero B by path on a real ``nnx.LoRA``, then PiSSA written into it."""
    require("flax")
    from flax import nnx
    fan_in, fan_out, r = 32, 24, 4
    model = nnx.LoRA(
        fan_in, r, fan_out,
        base_module=nnx.Linear(fan_in, fan_out, use_bias=False, rngs=nnx.Rngs(0)),
        rngs=nnx.Rngs(1),
    )
    model.lora_b[...] = jnp.ones((r, fan_out))
    jaxinit.reinit(
        model, jax.random.key(2), [("lora_a", jaxinit.lora_a()), ("lora_b", jaxinit.lora_b())]
    )
    a = np.asarray(model.lora_a[...])
    bound = 1 / math.sqrt(fan_in)
    assert a.shape == (fan_in, r) and 0.9 * bound < np.abs(a).max() <= bound
    assert not np.asarray(model.lora_b[...]).any()

    x = jax.random.normal(jax.random.key(3), (5, fan_in))
    kernel = model.base_module.kernel[...]
    before = np.asarray(x @ kernel)
    w = jaxinit.pissa(kernel, r)  # nnx.LoRA applies no scaling: scaling=1
    model.base_module.kernel[...] = w.base
    model.lora_a[...] = w.a
    model.lora_b[...] = w.b
    np.testing.assert_allclose(np.asarray(model(x)), before, atol=1e-5)
    # The adapter holds the top-r singular values of the kernel.
    s = np.linalg.svd(np.asarray(kernel, np.float64), compute_uv=False)
    np.testing.assert_allclose(
        np.linalg.svd(np.asarray(w.a @ w.b, np.float64), compute_uv=False)[:r], s[:r], rtol=1e-5
    )


@pytest.mark.parametrize("fn", [jaxinit.pissa, jaxinit.olora])
@pytest.mark.parametrize("r", [0, -1, 9])
def test_bad_rank(fn, r):
    name = fn.__name__
    bound = r"min\(fan_in, fan_out\) = 8" if r > 0 else r"must be >= 1"
    with pytest.raises(ValueError, match=rf"{name}: r={r}.*{bound}"):
        fn(jnp.zeros((16, 8)), r)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"lora_scaling: r=0 must be >= 1"):
        jaxinit.lora_scaling(8, 0)
    with pytest.raises(TypeError, match=r"pissa: r=2.5 must be an int"):
        jaxinit.pissa(jnp.zeros((4, 4)), 2.5)
    with pytest.raises(ValueError, match="olora: kernel must be a 2-D float"):
        jaxinit.olora(jnp.zeros((4, 4, 4)), 2)
    with pytest.raises(ValueError, match=r"pissa: scaling=0\.0"):
        jaxinit.pissa(jnp.ones((4, 4)), 2, scaling=0)
    with pytest.raises(ValueError, match=r"pissa: niter=4 needs a PRNG key"):
        jaxinit.pissa(jnp.ones((4, 4)), 2, niter=4)
    with pytest.raises(ValueError, match=r"pissa: niter=-1 must be >= 0"):
        jaxinit.pissa(jnp.ones((4, 4)), 2, niter=-1, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"pissa: key is only used with niter"):
        jaxinit.pissa(jnp.ones((4, 4)), 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"lora_a.*variant"):
        jaxinit.lora_a("uniform")  # type: ignore[arg-type]
