r"""Mean-field theory of signal propagation in wide random networks.

For a deep network :math:`h^{l+1} = W^{l+1} \phi(h^l) + b^{l+1}` with
:math:`W_{ij} \sim N(0, \sigma_w^2 / n)` and :math:`b_i \sim N(0, \sigma_b^2)`, the
pre-activation variance follows the length map

.. math:: q^{l+1} = \sigma_w^2\, E[\phi(\sqrt{q^l} z)^2] + \sigma_b^2, \qquad z \sim N(0, 1)

with fixed point :math:`q^*`, and the correlation of two inputs approaches its fixed
point at the rate :math:`\chi_1 = \sigma_w^2 E[\phi'(\sqrt{q^*} z)^2]`, also the mean
squared singular value of each layer's Jacobian. :math:`\chi_1 = 1` is the
order-to-chaos transition (criticality), where signals and gradients propagate over
depths beyond the depth scales :math:`\xi_q, \xi_c` (Poole et al. 2016; Schoenholz et
al. 2017). Every expectation uses the quadrature of :func:`jaxinit.gain` (composite
Gauss-Legendre against the normal density, in float64).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxinit._src.core.base import check_scalar
from jaxinit._src.core.gain import (
    NODES,
    WEIGHTS,
    Activation,
    gaussian_expectation,
    resolve_activation,
)

Fn = Callable[[jax.Array], jax.Array]

# Relative size of |L(q) - q| treated as zero: the quadrature is accurate to ~1e-15,
# and the fixed-point residual is a difference of O(q) terms.
_REL_TOL = 1e-12


def _resolve(name: str, activation: Activation, params: dict[str, Any]) -> tuple[Fn, Fn, Fn]:
    try:
        phi = resolve_activation(activation, **params)
    except (TypeError, ValueError) as e:
        raise type(e)(str(e).replace("gain:", f"{name}:", 1)) from None
    return _derivatives(phi)


@functools.lru_cache(maxsize=128)
def _derivatives(phi: Fn) -> tuple[Fn, Fn, Fn]:
    dphi = jax.vmap(jax.grad(phi))
    d2phi = jax.vmap(jax.grad(jax.grad(phi)))
    return jax.jit(phi), jax.jit(dphi), jax.jit(d2phi)


# q* = 0 is a limit (e.g. tanh or ReLU without bias in the ordered phase): expectations
# there are taken at this tiny variance, i.e. as q -> 0+, which for ReLU gives
# E[relu'(u)^2] = 1/2 rather than the value relu'(0)^2 = 0 at the kink.
_Q_MIN = 1e-30


def _expect(fn: Fn, q: float) -> float:
    """E[fn(sqrt(q) z)] for z ~ N(0, 1), with q -> 0+ for q = 0."""
    scale = math.sqrt(max(q, _Q_MIN))
    return gaussian_expectation(lambda z: fn(scale * z))


def _bisect(f: Callable[[float], float], lo: float, hi: float, *, log: bool) -> float:
    """A root of f in [lo, hi] where f(lo) >= 0 >= f(hi) (geometric midpoints if log)."""
    for _ in range(200):
        mid = math.sqrt(lo * hi) if log and lo > 0 else (lo + hi) / 2
        if f(mid) >= 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(hi, 1e-300):
            break
    return (lo + hi) / 2


def _check_stds(name: str, weight_std: float, bias_std: float) -> tuple[float, float]:
    return (check_scalar(name, "weight_std", weight_std, positive=True),
            check_scalar(name, "bias_std", bias_std, nonnegative=True))


def q_star(
    activation: Activation,
    weight_std: float,
    bias_std: float = 0.0,
    *,
    q0: float = 1.0,
    **params: Any,
) -> float:
    r"""The fixed point :math:`q^*` of the length map reached from :math:`q^0`.

    .. math:: q^{l+1} = \sigma_w^2\, E[\phi(\sqrt{q^l} z)^2] + \sigma_b^2

    The map is iterated from ``q0``; when it converges slowly (near criticality) the
    fixed point it approaches is found by bracketing and bisection. Returns ``inf``
    when the variance grows without bound (e.g. ReLU with :math:`\sigma_w^2 > 2`).

    Args:
      activation: a name or an elementwise JAX callable, as for :func:`jaxinit.gain`.
      weight_std: :math:`\sigma_w` (weights have variance :math:`\sigma_w^2 / n_{in}`).
      bias_std: :math:`\sigma_b`.
      q0: the input's pre-activation variance.
      **params: parameters of a named activation.

    Returns:
      :math:`q^*` as a float.

    Example:
      >>> import jaxinit
      >>> round(jaxinit.q_star("relu", 1.0, 0.5), 6)   # q = q/2 + 1/4  ->  1/2
      0.5

    References:
      Poole et al. (2016), https://arxiv.org/abs/1606.05340;
      Schoenholz et al. (2017), https://arxiv.org/abs/1611.01232.
    """
    name = "q_star"
    sw, sb = _check_stds(name, weight_std, bias_std)
    q0 = check_scalar(name, "q0", q0, nonnegative=True)
    phi, _, _ = _resolve(name, activation, params)
    return _q_star(phi, sw, sb, q0)


def _q_star(phi: Fn, sw: float, sb: float, q0: float) -> float:
    def length(q: float) -> float:
        return sw**2 * _expect(lambda z: phi(z) ** 2, q) + sb**2

    q = q0
    for _ in range(100):
        new = length(q)
        if not math.isfinite(new) or new > 1e300:
            return math.inf
        if abs(new - q) <= _REL_TOL * max(q, new):
            return new
        q_prev, q = q, new
    # Slow, monotone convergence: bracket the fixed point the orbit is heading to.
    def gap(v: float) -> float:
        g = length(v) - v
        return 0.0 if abs(g) <= _REL_TOL * v else g

    if q < q_prev:  # decreasing towards the largest fixed point below q
        lo = q
        while gap(lo) < 0:
            lo /= 4
            if lo < 1e-300:
                return 0.0
        return _bisect(gap, lo, q, log=True)
    hi = q
    while gap(hi) > 0:
        hi *= 4
        if hi > 1e300:
            return math.inf
    return _bisect(gap, q, hi, log=True)


def chi(
    activation: Activation,
    weight_std: float,
    bias_std: float = 0.0,
    *,
    q: float | None = None,
    **params: Any,
) -> float:
    r"""The slope :math:`\chi_1` of the correlation map at :math:`c = 1`.

    .. math:: \chi_1 = \sigma_w^2\, E[\phi'(\sqrt{q^*} z)^2]

    the mean squared singular value of one layer's Jacobian: :math:`\chi_1 < 1` is the
    ordered phase (gradients vanish), :math:`\chi_1 > 1` the chaotic phase (they
    explode), :math:`\chi_1 = 1` criticality.

    Args:
      activation: a name or an elementwise JAX callable.
      weight_std: :math:`\sigma_w`.
      bias_std: :math:`\sigma_b`.
      q: the pre-activation variance; default :math:`q^*` from :func:`q_star`.
      **params: parameters of a named activation.

    Returns:
      :math:`\chi_1` as a float.

    Example:
      >>> import math, jaxinit
      >>> round(jaxinit.chi("relu", math.sqrt(2)), 6)
      1.0
      >>> round(jaxinit.chi("tanh", 1.0, 0.0), 4)   # q* -> 0 and tanh'(0) = 1
      1.0

    References:
      Poole et al. (2016), https://arxiv.org/abs/1606.05340;
      Schoenholz et al. (2017), https://arxiv.org/abs/1611.01232.
    """
    name = "chi"
    sw, sb = _check_stds(name, weight_std, bias_std)
    phi, dphi, _ = _resolve(name, activation, params)
    q = _q_star(phi, sw, sb, 1.0) if q is None else check_scalar(name, "q", q, nonnegative=True)
    return _chi(dphi, sw, min(q, 1e30))


def _chi(dphi: Fn, sw: float, q: float) -> float:
    return sw**2 * _expect(lambda z: dphi(z) ** 2, q)


def critical_point(activation: Activation, q: float, **params: Any) -> tuple[float, float]:
    r"""The :math:`(\sigma_w, \sigma_b)` on the critical line whose fixed point is ``q``.

    .. math:: \sigma_w^2 = 1 / E[\phi'(\sqrt{q} z)^2], \qquad
              \sigma_b^2 = q - \sigma_w^2 E[\phi(\sqrt{q} z)^2]

    so that :math:`\chi_1 = 1` at :math:`q^* = q`. A small ``q`` keeps a tanh network
    near its linear regime, where orthogonal weights give dynamical isometry
    (Pennington et al. 2017 use q* = 1/64 and smaller).

    Args:
      activation: a name or an elementwise JAX callable.
      q: the desired fixed point :math:`q^* > 0`.
      **params: parameters of a named activation.

    Returns:
      ``(weight_std, bias_std)``.

    Raises:
      ValueError: if no non-negative bias variance achieves it (e.g. ReLU, q != 0).

    Example:
      >>> import jaxinit
      >>> sw, sb = jaxinit.critical_point("tanh", 1 / 64)
      >>> round(sw, 4), round(sb, 4)
      (1.0152, 0.0022)

    References:
      Pennington, Schoenholz & Ganguli (2017), https://arxiv.org/abs/1711.04735.
    """
    name = "critical_point"
    q = check_scalar(name, "q", q, positive=True)
    phi, dphi, _ = _resolve(name, activation, params)
    slope = _expect(lambda z: dphi(z) ** 2, q)
    if slope <= 0:
        raise ValueError(f"{name}: activation has phi' = 0 almost everywhere at q={q}")
    sw2 = 1 / slope
    sb2 = q - sw2 * _expect(lambda z: phi(z) ** 2, q)
    if sb2 < -_REL_TOL * q:
        raise ValueError(
            f"{name}: q={q} is not a critical fixed point for any bias variance (it would "
            f"need sigma_b^2 = {sb2:.3g} < 0)"
        )
    return math.sqrt(sw2), math.sqrt(max(sb2, 0.0))


def critical_weight_std(activation: Activation, bias_std: float = 0.0, **params: Any) -> float:
    r"""The weight scale :math:`\sigma_w` at which :math:`\chi_1 = 1` for a bias scale.

    Solves, for :math:`q`, :math:`q = E[\phi(\sqrt q z)^2] / E[\phi'(\sqrt q z)^2] +
    \sigma_b^2` (the fixed point on the critical line), then
    :math:`\sigma_w = E[\phi'(\sqrt{q} z)^2]^{-1/2}`. Limits are handled: when
    :math:`q^* \to 0` (tanh, :math:`\sigma_b = 0`) the answer is
    :math:`1/|\phi'(0)|`; for positively homogeneous activations (ReLU) it does not
    depend on :math:`q` (:math:`\sigma_w^2 = 2`).

    Args:
      activation: a name or an elementwise JAX callable.
      bias_std: :math:`\sigma_b`.
      **params: parameters of a named activation.

    Returns:
      The critical :math:`\sigma_w`; initialize with
      ``variance_scaling(sigma_w ** 2, "fan_in", "normal")`` (or ``orthogonal(sigma_w)``).

    Example:
      >>> import jaxinit
      >>> round(jaxinit.critical_weight_std("relu") ** 2, 6)   # He et al.
      2.0
      >>> round(jaxinit.critical_weight_std("tanh"), 6)
      1.0
      >>> round(jaxinit.critical_weight_std("tanh", bias_std=0.3), 4)
      1.3...

    References:
      Schoenholz et al. (2017), https://arxiv.org/abs/1611.01232;
      Pennington, Schoenholz & Ganguli (2017), https://arxiv.org/abs/1711.04735.
    """
    name = "critical_weight_std"
    sb = check_scalar(name, "bias_std", bias_std, nonnegative=True)
    phi, dphi, _ = _resolve(name, activation, params)

    def slope(q: float) -> float:
        return _expect(lambda z: dphi(z) ** 2, q)

    def gap(q: float) -> float:
        s = slope(q)
        g = _expect(lambda z: phi(z) ** 2, q) / s + sb**2 - q if s > 0 else -q
        return 0.0 if abs(g) <= 1e-10 * max(q, sb**2) else g

    grid = [10.0**k for k in range(-8, 9)]
    gaps = [gap(q) for q in grid]
    if all(g == 0 for g in gaps):  # positively homogeneous: any q is a fixed point
        return 1 / math.sqrt(slope(1.0))
    brackets = zip(grid, gaps, grid[1:], gaps[1:], strict=False)
    for q_lo, g_lo, q_hi, g_hi in brackets:
        if g_lo > 0 >= g_hi:
            q = _bisect(gap, q_lo, q_hi, log=True)
            return 1 / math.sqrt(slope(q))
    if gaps[0] <= 0:  # q* -> 0: the slope at the origin
        return 1 / math.sqrt(slope(0.0))
    return 1 / math.sqrt(slope(grid[-1]))  # q* -> infinity


def depth_scales(
    activation: Activation, weight_std: float, bias_std: float = 0.0, **params: Any
) -> tuple[float, float]:
    r"""The depth scales :math:`(\xi_q, \xi_c)` of signal propagation.

    .. math::
       \xi_q^{-1} = -\log\big(\sigma_w^2 E[\phi'(u)^2 + \phi(u)\phi''(u)]\big), \quad
       \xi_c^{-1} = -\log\big(\sigma_w^2 E[\phi'(u_1)\phi'(u_2)]\big)

    with :math:`u = \sqrt{q^*} z` and :math:`(u_1, u_2)` jointly Gaussian with variance
    :math:`q^*` and correlation :math:`c^*` (the stable fixed point of the correlation
    map; :math:`c^* = 1` in the ordered phase, where :math:`\xi_c = -1/\log\chi_1`).
    Deviations of the variance and of the correlation from their fixed points decay as
    :math:`e^{-l/\xi_q}` and :math:`e^{-l/\xi_c}`; :math:`\xi_c` diverges at
    criticality, and a network deeper than a few :math:`\xi_c` is untrainable.

    Args:
      activation: a name or an elementwise JAX callable.
      weight_std: :math:`\sigma_w`.
      bias_std: :math:`\sigma_b`.
      **params: parameters of a named activation.

    Returns:
      ``(xi_q, xi_c)``; ``inf`` where a scale diverges.

    Example:
      >>> import jaxinit
      >>> xi_q, xi_c = jaxinit.depth_scales("relu", 1.0, 0.5)   # chi_1 = 1/2
      >>> round(xi_c, 4)   # -1 / log(1/2)
      1.4427

    References:
      Schoenholz et al. (2017), "Deep Information Propagation",
      https://arxiv.org/abs/1611.01232.
    """
    name = "depth_scales"
    sw, sb = _check_stds(name, weight_std, bias_std)
    phi, dphi, d2phi = _resolve(name, activation, params)
    q = _q_star(phi, sw, sb, 1.0)
    if not math.isfinite(q):
        raise ValueError(f"{name}: the variance diverges (q* = inf) for weight_std={sw}, "
                         f"bias_std={sb}; there is no fixed point to measure depth from")

    def scale(rate: float) -> float:
        return math.inf if rate >= 1 or rate <= 0 else -1 / math.log(rate)

    chi_q = sw**2 * _expect(lambda z: dphi(z) ** 2 + phi(z) * d2phi(z), q)
    chi_1 = _chi(dphi, sw, q)
    if chi_1 <= 1 or q == 0:
        return scale(chi_q), scale(chi_1)
    c = _c_star(phi, sw, sb, q)
    chi_c = sw**2 * _pair_expect(dphi, q, c) if c < 1 else chi_1
    return scale(chi_q), scale(chi_c)


def _pair_expect(fn: Fn, q: float, c: float) -> float:
    """E[fn(u1) fn(u2)], u1, u2 ~ N(0, q) with correlation c, by the nested quadrature."""
    root = math.sqrt(q)
    s = math.sqrt(max(1 - c * c, 0.0))

    def outer(z1: jax.Array) -> jax.Array:
        nodes = jnp.asarray(NODES, z1.dtype)[None, :]
        weights = jnp.asarray(WEIGHTS, z1.dtype)
        inner = fn(root * (c * z1[:, None] + s * nodes).reshape(-1)).reshape(z1.size, -1)
        return fn(root * z1) * (inner @ weights)

    return gaussian_expectation(outer)


def _c_star(phi: Fn, sw: float, sb: float, q: float) -> float:
    """The stable fixed point c* < 1 of the correlation map in the chaotic phase."""

    def gap(c: float) -> float:
        return (sw**2 * _pair_expect(phi, q, c) + sb**2) / q - c

    hi = 1 - 1e-6
    if gap(hi) >= 0:  # barely chaotic: c* is indistinguishable from 1
        return 1.0
    return _bisect(gap, 0.0, hi, log=False)
