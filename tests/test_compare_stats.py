import numpy as np
import pytest
from scipy import stats

from jaxinit._src.compare.stats import welch_t_test


@pytest.mark.parametrize(
    "a,b",
    [
        ([0.91, 0.92, 0.93], [0.88, 0.895, 0.87]),
        ([1.0, 2.0, 3.0, 4.0, 5.5], [1.5, 2.5, 2.0]),
        ([0.5, 0.51, 0.49], [0.5, 0.52, 0.47, 0.51]),
    ],
)
def test_welch_matches_scipy(a, b):
    t, p = welch_t_test(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    # float32 betainc inside JAX: relative tolerance 1e-4 on p.
    np.testing.assert_allclose(t, ref.statistic, rtol=1e-10)
    np.testing.assert_allclose(p, ref.pvalue, rtol=1e-4)


def test_welch_rejects_short_input():
    with pytest.raises(ValueError, match="welch_t_test: argument a"):
        welch_t_test([1.0], [1.0, 2.0])


def test_verdict_significance_rule():
    from jaxinit._src.compare.stats import verdict

    clear = {"a": [0.95, 0.951, 0.949], "b": [0.80, 0.801, 0.799], "c": [float("nan")] * 3}
    assert verdict(clear).startswith("a is best")
    close = {"a": [0.90, 0.93, 0.88], "b": [0.89, 0.92, 0.905]}
    assert verdict(close).startswith("no clear winner among")
    assert verdict(clear, higher_is_better=False).startswith("b is best")
    assert verdict({"c": [float("inf"), 1.0]}) == "no scheme finished without diverging"
