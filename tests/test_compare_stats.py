import numpy as np
import pytest
from scipy import stats

from jaxinit._src.compare_stats import welch_t_test


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
