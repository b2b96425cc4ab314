"""Mamba and Mamba-2 parameters as transformers' ``_init_weights`` gives them.

The PyTorch models are built offline from small configs (seeded). Deterministic leaves
(``A_log``: Mamba's, and Mamba-2's, which transformers sets to log(1..H) per head, i.e.
``mamba_a_log`` on an (H,) shape) must equal jaxinit's to float32 round-off; random
ones are compared with a two-sample Kolmogorov-Smirnov test at p > 1e-4 (a correct
scheme fails with probability 1e-4 per comparison), and each comparison has a negative
control, a deliberately wrong configuration, that must give p < 1e-4.

``mamba2_a_log`` (the Mamba-2 reference code's A ~ U(a_min, a_max)) has no
reference-library parity, as transformers does not draw A: its law is checked against
the exact uniform CDF and its moments against quadrature.
"""

import math

import jax
import numpy as np
import pytest
import torch
import transformers
from scipy import stats

import jaxinit
import jaxinit.torch as jt

P_MIN = 1e-4
KEY = jax.random.key(7)


def ks(theirs, ours) -> float:
    return stats.ks_2samp(np.ravel(theirs), np.ravel(np.asarray(ours, np.float32))).pvalue


def mixers(model):
    return [layer.mixer for layer in model.backbone.layers]


@pytest.fixture(scope="module")
def mamba():
    torch.manual_seed(0)
    config = transformers.MambaConfig(
        vocab_size=16, hidden_size=256, state_size=8, num_hidden_layers=4, expand=2,
        conv_kernel=4, time_step_min=2e-3, time_step_max=0.2, time_step_floor=5e-3,
    )
    return config, transformers.MambaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def mamba2():
    torch.manual_seed(0)
    config = transformers.Mamba2Config(
        vocab_size=16, hidden_size=64, state_size=8, num_hidden_layers=2, expand=2,
        head_dim=4, num_heads=32, n_groups=1, conv_kernel=4, time_step_min=1e-3,
        time_step_max=0.1, time_step_floor=1e-4,
    )
    return config, transformers.Mamba2ForCausalLM(config).eval()


def test_mamba_a_log_equals_transformers(mamba):
    _, model = mamba
    for mixer in mixers(model):
        theirs = mixer.A_log.detach().numpy()
        ours = jaxinit.mamba_a_log()(KEY, theirs.shape)
        np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-6, atol=0)


def test_mamba_dt_bias_ks_equal_to_transformers(mamba):
    config, model = mamba
    theirs = np.concatenate([m.dt_proj.bias.detach().numpy() for m in mixers(model)])
    assert theirs.size == 4 * 512
    init = jaxinit.mamba_dt_bias(config.time_step_min, config.time_step_max,
                                 dt_floor=config.time_step_floor)
    assert ks(theirs, init(KEY, (8192,))) > P_MIN
    # Negative control: the default range (dt_max 0.1 instead of 0.2) is another law.
    assert ks(theirs, jaxinit.mamba_dt_bias(config.time_step_min, 0.1, 5e-3)(KEY, (8192,))) < P_MIN


def test_mamba_conv_and_out_proj_ks_equal_to_transformers(mamba):
    _, model = mamba
    # torch's Conv1d weight is (channels, 1, kernel); Flax's depthwise kernel is
    # (kernel, 1, channels): the same fan_in = kernel.
    conv = np.concatenate([m.conv1d.weight.detach().numpy().ravel() for m in mixers(model)])
    out = np.concatenate([m.out_proj.weight.detach().numpy().ravel() for m in mixers(model)])
    default = jt.kaiming_uniform(a=math.sqrt(5))
    assert ks(conv, default(KEY, (4, 1, 4 * 512))) > P_MIN
    assert ks(out, default(KEY, (512, 4 * 256))) > P_MIN
    assert ks(out, jt.kaiming_uniform(a=0.0)(KEY, (512, 4 * 256))) < P_MIN


def test_mamba2_a_log_and_dt_bias_equal_to_transformers(mamba2):
    config, model = mamba2
    for mixer in mixers(model):
        theirs = mixer.A_log.detach().numpy()
        assert theirs.shape == (32,)
        # transformers' Mamba2 uses log(1..H), per head: mamba_a_log on an (H,) shape.
        np.testing.assert_allclose(np.asarray(jaxinit.mamba_a_log()(KEY, (32,))), theirs,
                                   rtol=1e-6, atol=0)
    theirs = np.concatenate([m.dt_bias.detach().numpy() for m in mixers(model)])
    init = jaxinit.mamba_dt_bias(config.time_step_min, config.time_step_max,
                                 dt_floor=config.time_step_floor)
    assert ks(theirs, init(KEY, (8192,))) > P_MIN
    assert ks(theirs, jaxinit.mamba_dt_bias(1e-2, 0.1, 1e-4)(KEY, (8192,))) < P_MIN


def _ks_bound(n: int, rounding: float) -> float:
    """The KS statistic a correct sampler stays below with probability 1 - 1e-4 (the
    asymptotic Kolmogorov tail, 2 exp(-2 n d^2) = 1e-4), plus the largest shift of the
    CDF that rounding the draws can cause."""
    return math.sqrt(math.log(2 / P_MIN) / (2 * n)) + rounding


@pytest.mark.parametrize("dtype", [np.float32, jax.numpy.bfloat16])
@pytest.mark.parametrize("lo, hi", [(None, None), (2.0, 8.0)])
def test_mamba2_a_log_uniform_range(dtype, lo, hi):
    """exp(A_log) ~ U(a_min, a_max) (default (1, 16)): one-sample KS statistic against
    the exact CDF below its 1e-4 critical value plus the CDF shift bfloat16 rounding can
    cause (false failure < 1e-4 per case), and the bounds; the negative control (a range
    one wider, U(a_min, a_max + 1), off by >= 1/16 in the CDF) fails the same check.
    describe's mean and std against scipy.integrate.quad of log(a), log(a)^2 (float64)."""
    import scipy.integrate

    init = jaxinit.mamba2_a_log() if lo is None else jaxinit.mamba2_a_log(lo, hi)
    lo, hi = (1.0, 16.0) if lo is None else (lo, hi)
    n = 4096
    a = np.exp(np.asarray(init(KEY, (n,), dtype)).astype(np.float64))
    if dtype == np.float32:
        rounding = 1e-6
    else:  # bfloat16 rounds log(a) by half a unit in its 8th bit, at most at log(hi)
        half_ulp = 2.0 ** (math.floor(math.log2(math.log(hi))) - 8)
        rounding = hi * math.expm1(half_ulp) / (hi - lo)   # CDF shift: max |da| * density
    slack = hi * math.expm1(2.0**-7) if dtype != np.float32 else 1e-5
    assert a.min() >= lo - slack and a.max() <= hi + slack
    bound = _ks_bound(n, rounding)
    assert stats.kstest(a, stats.uniform(lo, hi - lo).cdf).statistic < bound
    assert stats.kstest(a, stats.uniform(lo, hi + 1 - lo).cdf).statistic > bound
    d = jaxinit.describe(init, (n,))
    mean = scipy.integrate.quad(np.log, lo, hi)[0] / (hi - lo)
    second = scipy.integrate.quad(lambda t: np.log(t) ** 2, lo, hi)[0] / (hi - lo)
    assert d.mean == pytest.approx(mean, rel=1e-9)
    assert d.std == pytest.approx(math.sqrt(second - mean**2), rel=1e-9)
    assert d.bounds == pytest.approx((math.log(lo), math.log(hi)), rel=1e-12)


def test_mamba2_a_log_bad_range():
    with pytest.raises(ValueError, match=r"mamba2_a_log: a_min=4.0 must be < a_max=2.0"):
        jaxinit.mamba2_a_log(4.0, 2.0)
    with pytest.raises(ValueError, match=r"mamba2_a_log: a_min=0.0 must be > 0"):
        jaxinit.mamba2_a_log(0.0, 2.0)
