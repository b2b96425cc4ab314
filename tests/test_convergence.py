"""He et al. (2015), Figure 3, scaled down: a 30-hidden-layer ReLU MLP trains from He
init (Var 2/n) and does not train from Xavier/Glorot init (Var 1/n on square layers).

Setting (also notebooks/03_convergence.ipynb): scikit-learn digits (1438 training images,
pixels standardized), 30 hidden Dense layers of width 64 with zero biases (every hidden
layer square, so Glorot's 2/(fan_in + fan_out) is 1/n), a Dense head to 10 classes,
SGD with momentum 0.9, learning rate 1e-3, batches of 128, 1000 steps, the same
parameter key and batch order for both schemes.

With Var 1/n the ReLU halves the second moment at every layer, so after 30 layers the
signal and the weight gradients are ~2^-15 of their He values: the network is stuck at
the chance loss ln 10 = 2.303. With Var 2/n it fits the training set.
"""

import math

import numpy as np
import pytest

from jaxinit._src import compare as cmp


@pytest.fixture(scope="module")
def runs():
    config = cmp.CompareConfig(depth=30, width=64, activation="relu", optimizer="sgd",
                               lr=1e-3, momentum=0.9, batch_size=128, steps=1000, seed=0)
    runner = cmp.Runner(config)
    out = {}
    for name in ("xavier_normal", "he"):
        losses, loss, train_acc, _ = runner.train(runner.variables(cmp.SCHEMES[name]))
        out[name] = (losses, loss, train_acc)
    return out


def _smoothed(losses, n=20):
    # Mean over the last n batches: the batch loss itself is noisy.
    return np.convolve(losses, np.ones(n) / n, mode="valid")


@pytest.mark.slow
def test_xavier_stays_at_chance(runs):
    losses, loss, train_acc = runs["xavier_normal"]
    assert abs(loss - math.log(10)) < 0.1, loss
    assert _smoothed(losses).min() > math.log(10) - 0.15
    assert train_acc < 0.3


@pytest.mark.slow
def test_he_fits_within_1000_steps(runs):
    losses, loss, train_acc = runs["he"]
    assert loss < 0.05, loss  # the whole training set, after 1000 steps
    assert train_acc > 0.99
    below = np.nonzero(_smoothed(losses) < 0.05)[0]
    assert below.size and below[0] + 20 <= 1000
