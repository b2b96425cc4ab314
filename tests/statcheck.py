"""Statistical assertions with stated false-failure probabilities.

* Moments: the sample mean and variance must lie within 5 standard errors of the
  distribution's exact values. The standard errors are sqrt(Var/n) for the mean and
  sqrt((mu4 - sigma^4)/n) for the variance (exact fourth moment of the distribution);
  by the CLT a correct sampler fails each check with probability 5.7e-7.
* Shape: a one-sample Kolmogorov-Smirnov test against the exact CDF must give p > 1e-4,
  i.e. a correct sampler fails with probability 1e-4.
All tests use fixed keys, so each outcome is deterministic; the probabilities say how
unlucky a fixed key would have to be for a correct scheme to fail.
"""

import numpy as np
import scipy.stats

N_SE = 5.0
KS_P = 1e-4


def as_f64(x) -> np.ndarray:
    return np.asarray(np.asarray(x).astype(np.float64)).ravel()


def assert_moments(x, dist) -> None:
    """`dist` is a frozen scipy.stats distribution with the exact expected law."""
    x = as_f64(x)
    n = x.size
    mean, var = float(dist.mean()), float(dist.var())
    mu4 = float(dist.expect(lambda t: (t - mean) ** 4))
    se_mean = np.sqrt(var / n)
    se_var = np.sqrt((mu4 - var**2) / n)
    assert abs(x.mean() - mean) <= N_SE * se_mean, (
        f"mean {x.mean():.6g} vs {mean:.6g} (tolerance {N_SE * se_mean:.3g})"
    )
    assert abs(x.var() - var) <= N_SE * se_var, (
        f"variance {x.var():.6g} vs {var:.6g} (tolerance {N_SE * se_var:.3g})"
    )


def assert_ks(x, dist) -> None:
    p = scipy.stats.kstest(as_f64(x), dist.cdf).pvalue
    assert p > KS_P, f"KS p-value {p:.3g} <= {KS_P}"


def assert_within(x, dist) -> None:
    lo, hi = dist.support()
    x = as_f64(x)
    assert x.min() >= lo and x.max() <= hi, f"values in [{x.min()}, {x.max()}], not [{lo}, {hi}]"
