"""Welch's test and the verdict line, on hand-computed cases and SciPy's Welch test.

These tests kill mutants of jaxinit/_src/compare/stats.py (see docs/mutants.md).
"""

import math

import numpy as np
import pytest
from scipy import stats

from jaxinit._src.compare.stats import verdict, welch_t_test


def test_two_values_per_sample_are_enough():
    t, p = welch_t_test([1.0, 2.0], [3.0, 5.0])
    ref = stats.ttest_ind([1.0, 2.0], [3.0, 5.0], equal_var=False)
    # Hand-computed: t = (1.5 - 4) / sqrt(0.5/2 + 2/2) = -2.5 / sqrt(1.25) = -sqrt(5).
    assert t == pytest.approx(-math.sqrt(5.0), rel=1e-12)
    np.testing.assert_allclose(p, ref.pvalue, rtol=1e-4)  # float32 betainc inside JAX


@pytest.mark.parametrize("which", ["a", "b"])
def test_float32_samples_are_computed_in_float64(which):
    # float32 inputs are widened first: t agrees with SciPy on the same values in
    # float64 to 1e-12 (float32 arithmetic would be off by about 1e-7).
    a = np.array([0.1, 0.2, 0.35, 0.31], np.float64)
    b = np.array([0.3, 0.45, 0.5], np.float64)
    ref = stats.ttest_ind(a.astype(np.float32).astype(np.float64),
                          b.astype(np.float32).astype(np.float64), equal_var=False)
    args = {"a": a, "b": b}
    args[which] = args[which].astype(np.float32)
    other = "b" if which == "a" else "a"
    args[other] = args[other].astype(np.float32).astype(np.float64)
    t, _ = welch_t_test(args["a"], args["b"])
    np.testing.assert_allclose(t, ref.statistic, rtol=1e-12)


def test_unit_standard_error():
    # a = [0, 2]: s_a^2/n_a = 2/2 = 1; b = [5, 5]: 0. So se2 = 1, t = (1 - 5)/1 = -4 and
    # nu = 1 / (1/1) = 1: a Cauchy tail, p = 1 - (2/pi) atan(4).
    t, p = welch_t_test([0.0, 2.0], [5.0, 5.0])
    assert t == -4.0
    np.testing.assert_allclose(p, 1.0 - 2.0 / math.pi * math.atan(4.0), rtol=1e-4)


def test_zero_variance_samples():
    # se2 = 0: equal means give t = 0, p = 1; different means an infinite t with the
    # sign of the difference, p = 0.
    assert welch_t_test([1.0, 1.0], [1.0, 1.0]) == (0.0, 1.0)
    assert welch_t_test([2.0, 2.0], [1.0, 1.0]) == (math.inf, 0.0)
    assert welch_t_test([1.0, 1.0, 1.0], [2.0, 2.0]) == (-math.inf, 0.0)


@pytest.mark.parametrize(
    "a, b, name, shown",
    [
        ([1.0], [1.0, 2.0], "a", "[1.0]"),
        ([1.0, 2.0], [3.0], "b", "[3.0]"),
        ([[1.0, 2.0], [3.0, 4.0]], [1.0, 2.0], "a", "[[1.0, 2.0], [3.0, 4.0]]"),
        ([1.0, 2.0], [1.0, float("nan")], "b", "[1.0, nan]"),
        ([1.0, float("inf")], [1.0, 2.0], "a", "[1.0, inf]"),
    ],
)
def test_bad_sample_message(a, b, name, shown):
    want = (
        f"welch_t_test: argument {name}={shown}; expected a 1-D sequence "
        "of at least 2 finite values"
    )
    with pytest.raises(ValueError) as err:
        welch_t_test(a, b)
    assert str(err.value) == want


def test_verdict_lines_in_full():
    clear = {"a": [0.95, 0.951, 0.949], "b": [0.80, 0.801, 0.799]}
    p_clear = stats.ttest_ind(clear["a"], clear["b"], equal_var=False).pvalue
    assert verdict(clear) == f"a is best (Welch p={p_clear:.3g} vs b)"
    close = {"a": [0.90, 0.93, 0.88], "b": [0.89, 0.92, 0.905]}
    # b has the higher mean (0.905 > 0.9033); SciPy's p = 0.927.
    assert verdict(close) == "no clear winner among b, a (Welch p=0.927)"
    assert verdict(close, higher_is_better=False) == "no clear winner among a, b (Welch p=0.927)"


def test_verdict_alpha_is_a_strict_bound():
    # Identical constant samples give p = 1 exactly, different constants p = 0 exactly:
    # the winner needs p < alpha, so alpha equal to p names none.
    same = {"a": [1.0, 1.0], "b": [1.0, 1.0]}
    assert verdict(same, alpha=1.0) == "no clear winner among a, b (Welch p=1)"
    apart = {"a": [2.0, 2.0], "b": [1.0, 1.0]}
    assert verdict(apart, alpha=0.0) == "no clear winner among a, b (Welch p=0)"
    assert verdict(apart, alpha=1e-300) == "a is best (Welch p=0 vs b)"
    # The default alpha is 0.05: SciPy's p for these samples is 0.0442 (a wins) and
    # 0.0881 (no winner).
    win = {"a": [1.0, 1.1, 1.2], "b": [0.9, 0.8, 0.95]}
    lose = {"a": [1.0, 1.1, 1.2], "b": [1.0, 0.85, 0.95]}
    assert stats.ttest_ind(win["a"], win["b"], equal_var=False).pvalue < 0.05
    assert stats.ttest_ind(lose["a"], lose["b"], equal_var=False).pvalue > 0.05
    assert verdict(win).startswith("a is best")
    assert verdict(lose).startswith("no clear winner")


def test_verdict_single_survivor_and_missing_metrics():
    assert verdict({"x": [float("nan"), 1.0], "y": [0.5, 0.6]}) == (
        "only y finished without diverging"
    )
    # A run that recorded no metric (None) converts to NaN: diverged, never ranked.
    assert verdict({"a": [0.9, None], "b": [0.8, 0.81]}) == "only b finished without diverging"


@pytest.mark.parametrize("higher_is_better, sign", [(True, 1.0), (False, -1.0)])
def test_verdict_ranks_means_near_the_float_limit(higher_is_better, sign):
    # Ranking by mean must not overflow: 1.7e308 beats 1.6e308 (and -1.7e308 beats
    # -1.6e308 when lower is better), so with one seed each Welch's test is called with
    # the winner's values first and rejects them.
    finals = {"b": [sign * 1.6e308], "a": [sign * 1.7e308]}
    with pytest.raises(ValueError, match=r"welch_t_test: argument a=\[-?1\.7e\+308\]"):
        verdict(finals, higher_is_better=higher_is_better)
