"""jaxinit.lsuv: layer-sequential unit-variance initialization (Mishkin & Matas 2016)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import jaxinit
from jaxinit.diagnostics import signal_stats, tap


class TanhMLP(nn.Module):
    depth: int = 20
    width: int = 256

    @nn.compact
    def __call__(self, x):
        for _ in range(self.depth):
            x = jnp.tanh(nn.Dense(self.width)(x))
        return x


def _output_variances(model, x, **kwargs):
    report = signal_stats(model, x, backward=False, **kwargs)
    return report.column("outputs.std") ** 2


@pytest.mark.slow
def test_acceptance_20_layer_tanh_mlp_unit_variance_on_held_out_batch():
    model = TanhMLP()
    fit = jax.random.normal(jax.random.key(0), (512, 256))
    held_out = jax.random.normal(jax.random.key(1), (1024, 256))
    variables = model.init(jax.random.key(2), fit[:1])
    # Deliberately wrong setting first: Flax's default (LeCun normal) kernels shrink a
    # tanh signal layer by layer (q_l ~ 1/(2l)), so deep layers are far below 1.
    before = _output_variances(model, held_out, variables=variables)
    assert before[-1] < 0.5
    new, report = jaxinit.lsuv(model, fit, variables=variables)
    assert report.converged
    assert [r.name for r in report.layers] == [f"Dense_{i}" for i in range(20)]
    after = _output_variances(model, held_out, variables=new)
    # LSUV's target band (unit variance within 10%), on a batch LSUV never saw. The
    # held-out variance of a layer differs from the fitted one by sampling noise
    # ~ sqrt(2 / (1024 * 256))
    # ~ 0.3% (plus the fit batch's own noise), well inside [0.9, 1.1].
    assert np.all((after >= 0.9) & (after <= 1.1)), after
    # Inputs are untouched; the new variables are new.
    assert new is not variables
    np.testing.assert_array_equal(variables["params"]["Dense_3"]["bias"],
                                  new["params"]["Dense_3"]["bias"])


def test_report_agrees_with_an_independent_measurement():
    model = TanhMLP(depth=4, width=64)
    x = jax.random.normal(jax.random.key(0), (256, 64))
    variables = model.init(jax.random.key(1), x[:1])
    new, report = jaxinit.lsuv(model, x, variables=variables, tol=0.01)
    measured = _output_variances(model, x, variables=new)
    np.testing.assert_allclose([r.variance_after for r in report.layers], measured, rtol=1e-4)
    assert all(abs(v - 1) < 0.01 for v in measured)
    # Orthonormal pre-init: an orthogonal first layer (zero bias) preserves every row's
    # norm, so its output variance is the input's up to the (tiny) change of the mean;
    # every later layer starts at E[tanh(z)^2] = 0.394 (unit-Gaussian pre-activations;
    # +- 0.02 at this width and batch).
    assert report.layers[0].variance_before == pytest.approx(float(jnp.var(x)), rel=1e-3)
    for r in report.layers[1:]:
        assert r.variance_before == pytest.approx(0.394, abs=0.03)
        assert r.iterations >= 1
        # Without bias, one rescale by 1/sqrt(var) is exact: s = 1/sqrt(0.394) = 1.59.
        assert r.scale == pytest.approx(r.variance_before**-0.5, rel=1e-3)
    # Kernels are orthogonal matrices times the reported scale.
    k = np.asarray(new["params"]["Dense_2"]["kernel"], np.float64) / report.layers[2].scale
    np.testing.assert_allclose(k.T @ k, np.eye(64), atol=1e-4)
    assert "Dense_0" in str(report) and "var before" in str(report)


class ResNet(nnx.Module):
    def __init__(self, rngs):
        self.stem = nnx.Conv(3, 16, (3, 3), rngs=rngs)
        self.convs = nnx.List([nnx.Conv(16, 16, (3, 3), rngs=rngs) for _ in range(3)])
        self.norms = nnx.List([nnx.BatchNorm(16, rngs=rngs) for _ in range(3)])
        self.head = nnx.Linear(16, 10, rngs=rngs)

    def __call__(self, x):
        x = self.stem(x)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = x + nnx.relu(norm(conv(x)))
        return self.head(jnp.mean(x, axis=(1, 2)))


def test_nnx_resnet_with_batchnorm_in_place_and_shift_bias():
    model = ResNet(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (32, 8, 8, 3))
    result, report = jaxinit.lsuv(model, x, shift_bias=True)
    assert result is model
    names = [r.name for r in report.layers]
    assert names == ["stem", "convs/0", "norms/0", "convs/1", "norms/1", "convs/2",
                     "norms/2", "head"]
    skipped = [r for r in report.layers if not r.rescaled]
    assert [r.name for r in skipped] == ["norms/0", "norms/1", "norms/2"]
    assert all("normalization" in r.note for r in skipped)
    assert report.converged
    # Measured independently on the updated module: every kernel layer's output has unit
    # variance (tol 0.1) and, with shift_bias, zero mean per unit.
    stats = signal_stats(model, x, backward=False)
    for layer in stats.layers:
        if not layer.name.startswith("norms"):
            assert abs(layer.outputs.std**2 - 1) < 0.1, layer
            assert abs(layer.outputs.mean) < 1e-3, layer


class LinenResidual(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(32)(x)
        for _ in range(3):
            x = x + nn.Dense(32)(nn.relu(nn.LayerNorm()(x)))
        return nn.Dense(4)(x)


def test_linen_residual_with_layernorm():
    model = LinenResidual()
    x = jax.random.normal(jax.random.key(0), (128, 16))
    variables = model.init(jax.random.key(1), x)
    new, report = jaxinit.lsuv(model, x, variables=variables)
    assert report.converged
    assert sum(not r.rescaled for r in report.layers) == 3   # the LayerNorms
    variances = {layer.name: layer.outputs.std**2
                 for layer in signal_stats(model, x, variables=new, backward=False).layers}
    for r in report.layers:
        if r.rescaled:
            assert abs(variances[r.name] - 1) < 0.1


def test_plain_function_with_taps_and_max_iters():
    # A tap's name is the path of its parameters: "layer0" rescales "layer0/kernel".
    def net(params, x):
        for i in range(3):
            x = jnp.tanh(tap(x @ params[f"layer{i}"]["kernel"], f"layer{i}"))
        return x

    params = {f"layer{i}": {"kernel": jnp.eye(8) * 0.01} for i in range(3)}
    x = jax.random.normal(jax.random.key(0), (64, 8))
    new, report = jaxinit.lsuv(net, x, params=params, orthonormal=False)
    assert report.converged and all(r.rescaled for r in report.layers)
    for w in new.values():  # a scaled identity stays one when not orthonormalized
        k = np.asarray(w["kernel"])
        np.testing.assert_allclose(k, np.diag(np.diag(k)), atol=0)
    # A deliberately impossible tolerance: LSUV stops at max_iters and says so.
    _, strict = jaxinit.lsuv(net, x, params=params, tol=1e-12, max_iters=2)
    assert not strict.converged
    assert any("max_iters=2" in r.note for r in strict.layers)
    assert all(r.iterations <= 2 for r in strict.layers)


def test_dead_layer_is_reported_not_divided_by_zero():
    def net(params, x):
        return tap(x @ params["a"]["kernel"], "a")

    params = {"a": {"kernel": jnp.ones((4, 4))}}
    _, report = jaxinit.lsuv(net, jnp.zeros((8, 4)), params=params)
    assert not report.layers[0].rescaled and "cannot be rescaled" in report.layers[0].note


def test_bad_arguments():
    model = TanhMLP(depth=1, width=4)
    x = jnp.ones((2, 4))
    variables = model.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="variables"):
        jaxinit.lsuv(model, x)
    with pytest.raises(ValueError, match="tol=0"):
        jaxinit.lsuv(model, x, variables=variables, tol=0)
    with pytest.raises(ValueError, match="max_iters=0"):
        jaxinit.lsuv(model, x, variables=variables, max_iters=0)
    with pytest.raises(ValueError, match="target=-1"):
        jaxinit.lsuv(model, x, variables=variables, target=-1)
    with pytest.raises(TypeError, match="x has dtype int32"):
        jaxinit.lsuv(model, jnp.ones((2, 4), jnp.int32), variables=variables)


@pytest.mark.parametrize("target", [0.5, 2.0])
def test_non_default_target_reached_per_layer_in_float64_forward(target):
    # Regression: an lsuv that ignored `target` (rescaled to 1.0) passed every other test;
    # with it planted this test fails (std 1.0 vs sqrt(0.5) = 0.707 / sqrt(2.0) = 1.414).
    model = TanhMLP(depth=3, width=32)
    x = jax.random.normal(jax.random.key(0), (256, 32))
    variables = model.init(jax.random.key(1), x[:1])
    tol = 0.01
    new, report = jaxinit.lsuv(model, x, variables=variables, tol=tol, target=target)
    # Independent oracle: the forward pass in float64 NumPy from the returned params.
    h = np.asarray(x, np.float64)
    for i in range(3):
        p = new["params"][f"Dense_{i}"]
        z = h @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)
        # LSUV stops once |Var - target| < tol; float32 vs float64 adds < 1e-5.
        assert abs(z.var() - target) < tol + 1e-5, (i, z.var())
        assert abs(z.std() - np.sqrt(target)) < tol, (i, z.std())
        h = np.tanh(z)
    assert report.converged and report.target == target
