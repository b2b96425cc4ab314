"""Depth-muP multipliers and the tied-embedding readout.

Expected values are hand-computed square roots, a float64 NumPy residual network and the
``mup`` package (MuSharedReadout, set_base_shapes, MuAdam).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit


@pytest.mark.parametrize(("depth", "base", "expected"), [(64, 4, 0.25), (9, None, 1 / 3),
                                                         (8, 8, 1.0), (2, 8, 2.0)])
def test_depth_mup_multipliers(depth, base, expected):
    adam = jaxinit.depth_mup(depth, base_n_layers=base)
    assert adam.branch_multiplier == pytest.approx(expected, rel=1e-15)
    assert adam.lr_multiplier == pytest.approx(expected, rel=1e-15)
    sgd = jaxinit.depth_mup(depth, base_n_layers=base, optimizer="sgd")
    assert sgd == (pytest.approx(expected, rel=1e-15), 1.0)


def stream_variance(depth: int, multiplier: float, width: int = 128, seed: int = 0) -> float:
    """Var of x_L / Var of x_0 for x_{l+1} = x_l + m W_l relu(x_l), W_l He-initialized
    (float64 NumPy, 32 inputs)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((32, width))
    v0 = x.var()
    for _ in range(depth):
        w = rng.standard_normal((width, width)) * math.sqrt(2 / width)
        x = x + multiplier * np.maximum(x, 0) @ w
    return float(x.var() / v0)


def test_depth_mup_keeps_the_residual_stream_bounded():
    """With the 1/sqrt(L) branch multiplier, each branch adds ~ Var/L: the stream's variance
    ratio tends to e (about 2.7) at any depth; without it, it grows like 2^L. Bounds: 2 to
    4 at L = 8, 32, 128 (the finite-width fluctuation is a few percent)."""
    for depth in (8, 32, 128):
        ratio = stream_variance(depth, jaxinit.depth_mup(depth).branch_multiplier)
        assert 2.0 < ratio < 4.0, (depth, ratio)
    assert stream_variance(32, 1.0) > 1e6  # the control: no multiplier explodes


def test_depth_mup_bad_input():
    with pytest.raises(ValueError, match=r"depth_mup: n_layers=0 must be >= 1"):
        jaxinit.depth_mup(0)
    with pytest.raises(TypeError, match=r"depth_mup: base_n_layers=2.5 must be an int"):
        jaxinit.depth_mup(4, 2.5)
    with pytest.raises(ValueError, match=r"depth_mup: optimizer='lion' is not one of"):
        jaxinit.depth_mup(4, optimizer="lion")


def test_tied_readout_matches_mup_shared_readout():
    """mup.MuSharedReadout on a tied embedding at width 256 over base 64: its logits are
    x E^T / width_mult (E the embedding after set_base_shapes), and MuAdam keeps the
    embedding's learning rate (input class). jaxinit: the same multiplier, and mup_lr_scale
    classifies the embedding as an input weight (Adam multiplier 1)."""
    import mup
    import torch

    class Tied(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.emb = torch.nn.Embedding(50, width)
            self.hidden = torch.nn.Linear(width, width)
            self.out = mup.MuSharedReadout(self.emb.weight, bias=False)

    torch.manual_seed(0)
    model = Tied(256)
    mup.set_base_shapes(model, Tied(64))
    x = torch.randn(3, 256, dtype=torch.float32)
    theirs = model.out(x).detach().double().numpy()
    emb = model.emb.weight.detach().double().numpy()
    multiplier = jaxinit.mup_readout_multiplier(256, base_width=64)
    assert multiplier == 0.25 == 1 / model.out.width_mult()
    np.testing.assert_allclose(multiplier * x.double().numpy() @ emb.T, theirs, rtol=1e-5)

    lr = {tuple(p.shape): g["lr"] for g in mup.MuAdam(model.parameters(), lr=1.0).param_groups
          for p in g["params"]}
    params = {"embed": {"embedding": jnp.zeros((50, 256))},
              "hidden": {"kernel": jnp.zeros((256, 256)), "bias": jnp.zeros((256,))}}
    base = {"embed": {"embedding": jnp.zeros((50, 64))},
            "hidden": {"kernel": jnp.zeros((64, 64)), "bias": jnp.zeros((64,))}}
    tx = jaxinit.mup_lr_scale(params, base)
    ones = jax.tree.map(jnp.ones_like, params)
    scaled, _ = tx.update(ones, tx.init(params))
    assert float(scaled["embed"]["embedding"][0, 0]) == lr[(50, 256)] == 1.0
    assert float(scaled["hidden"]["kernel"][0, 0]) == lr[(256, 256)] == 0.25


def test_readout_multiplier_bad_input():
    with pytest.raises(ValueError, match=r"mup_readout_multiplier: width=0 must be >= 1"):
        jaxinit.mup_readout_multiplier(0, 64)


def test_plot_coord_check_draws_the_measured_values(tmp_path):
    """One panel per step, one line per layer, whose points are (width, scale) exactly as
    given; the figure renders to a PNG whose size matches its panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    scales = rng.uniform(0.1, 2.0, (3, 2, 4))
    fig = jaxinit.plot_coord_check(scales, [32, 64, 128], layer_names=list("abcd"),
                                   title="check")
    assert len(fig.axes) == 2
    for t, ax in enumerate(fig.axes):
        assert [line.get_label() for line in ax.lines] == list("abcd")
        for i, line in enumerate(ax.lines):
            np.testing.assert_array_equal(line.get_xdata(), [32, 64, 128])
            np.testing.assert_array_equal(line.get_ydata(), scales[:, t, i])
        assert ax.get_xscale() == ax.get_yscale() == "log"
    path = tmp_path / "coord.png"
    fig.savefig(path, dpi=50)
    height, width = matplotlib.image.imread(path).shape[:2]
    assert (width, height) == (int(6.4 * 50), int(3.0 * 50))
    plt.close(fig)


def test_plot_coord_check_bad_input():
    with pytest.raises(ValueError, match=r"plot_coord_check: scales has shape \(2, 2\)"):
        jaxinit.plot_coord_check(np.ones((2, 2)), [32, 64])
    with pytest.raises(ValueError, match=r"plot_coord_check: layer_names has 1 names for 3"):
        jaxinit.plot_coord_check(np.ones((2, 1, 3)), [32, 64], layer_names=["a"])
    with pytest.raises(ValueError, match=r"plot_coord_check: widths=\(64, 32\)"):
        jaxinit.plot_coord_check(np.ones((2, 1, 3)), [64, 32])
