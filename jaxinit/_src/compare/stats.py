"""Welch's two-sample t-test over seeds, implemented with NumPy and JAX only.

For samples :math:`a` (size :math:`n_a`) and :math:`b` (size :math:`n_b`) with sample
variances :math:`s_a^2, s_b^2`:

.. math::
    t = \\frac{\\bar a - \\bar b}{\\sqrt{s_a^2/n_a + s_b^2/n_b}}, \\qquad
    \\nu = \\frac{(s_a^2/n_a + s_b^2/n_b)^2}
               {\\frac{(s_a^2/n_a)^2}{n_a-1} + \\frac{(s_b^2/n_b)^2}{n_b-1}}

and the two-sided p-value is :math:`I_{\\nu/(\\nu+t^2)}(\\nu/2, 1/2)`, the regularized
incomplete beta function (https://en.wikipedia.org/wiki/Welch%27s_t-test,
https://en.wikipedia.org/wiki/Student%27s_t-distribution#Cumulative_distribution_function).

Example::

    t, p = welch_t_test([0.91, 0.92, 0.93], [0.88, 0.89, 0.87])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jax.scipy.special import betainc


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Return ``(t, p)`` of Welch's unequal-variance t-test, two-sided."""
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    for name, x in (("a", xa), ("b", xb)):
        if x.ndim != 1 or x.size < 2 or not np.all(np.isfinite(x)):
            raise ValueError(
                f"welch_t_test: argument {name}={x.tolist()!r}; expected a 1-D sequence "
                "of at least 2 finite values"
            )
    va = xa.var(ddof=1) / xa.size
    vb = xb.var(ddof=1) / xb.size
    diff = float(xa.mean() - xb.mean())
    se2 = va + vb
    if se2 == 0.0:
        return (0.0, 1.0) if diff == 0.0 else (float(np.copysign(np.inf, diff)), 0.0)
    t = diff / np.sqrt(se2)
    nu = se2**2 / (va**2 / (xa.size - 1) + vb**2 / (xb.size - 1))
    p = float(betainc(nu / 2.0, 0.5, nu / (nu + t**2)))
    return float(t), p


def verdict(
    finals: dict[str, Sequence[float]], *, higher_is_better: bool = True, alpha: float = 0.05
) -> str:
    """One-line recommendation from per-scheme final metrics over seeds.

    Schemes with any non-finite value are diverged and never ranked. The best scheme by
    mean is called the winner only when Welch's test against the runner-up gives
    :math:`p < \\alpha`; otherwise the line says "no clear winner among A, B".

    Example::

        verdict({"he_normal": [0.93, 0.92, 0.94], "lsuv": [0.90, 0.91, 0.905]})
    """
    ranked = [k for k, v in finals.items() if np.all(np.isfinite(np.asarray(v, np.float64)))]
    if not ranked:
        return "no scheme finished without diverging"
    sign = 1.0 if higher_is_better else -1.0
    ranked.sort(key=lambda k: -sign * float(np.mean(finals[k])))
    if len(ranked) == 1:
        return f"only {ranked[0]} finished without diverging"
    best, second = ranked[0], ranked[1]
    _, p = welch_t_test(finals[best], finals[second])
    if p < alpha:
        return f"{best} is best (Welch p={p:.3g} vs {second})"
    return f"no clear winner among {best}, {second} (Welch p={p:.3g})"
