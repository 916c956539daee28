r"""Quadrature of kinked activations: kinks located numerically, the Gaussian integral split there.

Gauss-Hermite quadrature of :math:`\mathbb E[\phi(u)\phi(v)]` converges only algebraically when
:math:`\phi` has a kink (ReLU-like: :math:`\phi'` jumps) and very slowly for
:math:`\mathbb E[\phi'(u)\phi'(v)]` (a step function). Written as nested 1-D integrals over
independent standard normals, :math:`u = s_1 z_1`, :math:`v = s_2(\rho z_1 + \sigma z_2)`,
:math:`\sigma = \sqrt{1-\rho^2}`,

.. math::
    \mathbb E[f(u) g(v)] = \int f(s_1 z_1)\, H(z_1)\, dN(z_1),\qquad
    H(z_1) = \int g\big(s_2(\rho z_1 + \sigma z_2)\big)\, dN(z_2),

each integrand is smooth between known points: the inner one between the kinks
:math:`z_2 = (c/s_2 - \rho z_1)/\sigma`, the outer one between :math:`z_1 = c/s_1` (kinks of
``f``) and around :math:`z_1 = c/(s_2\rho)`, where :math:`H` is a kink smoothed over a width
:math:`\sigma/|\rho|` (graded breakpoints at :math:`\pm\{1/4, 1, 4, 16\}` widths resolve it as
:math:`\rho\to\pm1`; at :math:`\rho = \pm 1` it is the kink itself). Every piece of
:math:`[-L, L]` (:math:`L = 10`, Gaussian tail :math:`1.5\times10^{-23}`) gets ``m``-point
Gauss-Legendre, so the rule converges geometrically in ``m`` again, for the NNGP map and for the
derivative map alike (both integrands are piecewise smooth with the same breakpoints). The
kinks :math:`c` are found once per activation, on the host, by :func:`locate_kinks`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

#: half-width of the truncated Gaussian (in standard deviations) and fixed inner breakpoints
_L = 10.0
_FIXED = (-6.0, -3.0, 3.0, 6.0)
_GRADES = (0.25, 1.0, 4.0, 16.0)
#: kink search: grid on [-SPAN, SPAN] with 2**17 intervals (spacing 0.004)
SPAN = 256.0
MAX_KINKS = 8


def locate_kinks(fn: Callable, *, span: float = SPAN, n: int = 2**17,
                 max_kinks: int = MAX_KINKS) -> tuple[float, ...]:
    r"""Points in ``[-span, span]`` where ``fn`` or its derivative jumps, located to ~1e-12.

    On a grid of spacing :math:`h`, a jump :math:`J` of :math:`a = \phi` or :math:`\phi'`
    (``jax.jvp``) changes :math:`a` by :math:`|J|` across one interval whatever :math:`h`,
    while a smooth :math:`a` changes by :math:`|a'|h`: an interval is flagged when its change
    is 20x both neighbours' and one of its halves carries > 90% of it (a smooth change splits
    evenly); it is then bisected 60 times. Evaluated in float64. More than ``max_kinks``
    kinks: ``()`` (the caller keeps Gauss-Hermite, whose error estimate then flags the kernel).

    >>> locate_kinks(lambda x: jnp.maximum(x - 0.3, 0.0))
    (0.3,)
    """
    try:
        return _cached(fn, span, n, max_kinks)
    except TypeError:                       # an unhashable callable: not cached
        return _search(fn, span, n, max_kinks)


@functools.lru_cache(maxsize=256)
def _cached(fn, span, n, max_kinks):
    return _search(fn, span, n, max_kinks)


def _search(fn, span, n, max_kinks):
    with jax.enable_x64(True):
        @jax.jit
        def pair(x):
            return jnp.stack(jax.jvp(lambda t: jnp.asarray(fn(t), jnp.float64), (x,),
                                     (jnp.ones_like(x),)))

        def values(x):
            return np.asarray(pair(jnp.asarray(x, jnp.float64)))

        # offset by an irrational fraction of a step, so that no grid point sits on a kink
        h = 2 * span / n
        x = np.linspace(-span, span, n + 1) + h / math.pi
        a = values(x)
        mid = values(0.5 * (x[1:] + x[:-1]))
        found = _jumps(values, x, a, mid)
    found = sorted(found)
    kinks = [c for i, c in enumerate(found) if i == 0 or c - found[i - 1] > 1e-9]
    if len(kinks) > max_kinks:
        return ()
    return tuple(float(np.round(c, 12)) + 0.0 for c in kinks)


def _jumps(values, x, a, mid):
    found = []
    for row in (0, 1):
        v, vm = a[row], mid[row]
        if not np.all(np.isfinite(v)):
            continue
        step = np.abs(np.diff(v))
        half = np.maximum(np.abs(vm - v[:-1]), np.abs(v[1:] - vm))
        nb = np.maximum(np.r_[0.0, step[:-1]], np.r_[step[1:], 0.0])
        scale = max(float(np.max(np.abs(v))), 1e-300)
        flagged = np.flatnonzero((step > 20 * nb) & (half > 0.9 * step) & (step > 1e-9 * scale))
        found += [_bisect(values, row, x[i], x[i + 1]) for i in flagged]
    return found


def _bisect(values, row, lo, hi):
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        a = values(np.array([lo, mid, hi]))[row]
        if abs(a[1] - a[0]) >= abs(a[2] - a[1]):
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-13 * max(1.0, abs(lo)):
            break
    return 0.5 * (lo + hi)


def _safe_div(num, den, fill):
    ok = jnp.abs(den) > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), fill)


def _rule(points, m: int, dtype):
    """Nodes and weights ``(..., P*m)`` of the Gaussian measure on ``[-L, L]`` split at
    ``points (..., K)`` (clipped to the interval) and the fixed breakpoints."""
    x, w = np.polynomial.legendre.leggauss(m)
    x, w = jnp.asarray(x, dtype), jnp.asarray(w, dtype)
    lead = points.shape[:-1]
    ends = jnp.broadcast_to(jnp.asarray((-_L,) + _FIXED + (_L,), dtype), lead + (6,))
    pts = jnp.sort(jnp.concatenate([ends, jnp.clip(points, -_L, _L)], axis=-1), axis=-1)
    a, b = pts[..., :-1, None], pts[..., 1:, None]
    nodes = 0.5 * (a + b) + 0.5 * (b - a) * x
    weights = 0.5 * (b - a) * w * jnp.exp(-0.5 * nodes * nodes) / math.sqrt(2 * math.pi)
    return nodes.reshape(lead + (-1,)), weights.reshape(lead + (-1,))


def split_expectations(fns, kinks: tuple[float, ...], m: int, k11, k22, k12):
    """``[E[f(u) f(v)] for f in fns]`` for :math:`(u, v)` centred Gaussian with covariance
    ``[[k11, k12], [k12, k22]]`` (broadcast), by the split rule of the module docstring with
    ``m`` Gauss-Legendre nodes per piece; memory ``O(pieces * m)`` per entry."""
    dtype = jnp.result_type(k11, k22, k12)
    shape = jnp.broadcast_shapes(jnp.shape(k11), jnp.shape(k22), jnp.shape(k12))
    s1 = jnp.broadcast_to(jnp.sqrt(jnp.maximum(k11, 0.0)), shape)
    s2 = jnp.broadcast_to(jnp.sqrt(jnp.maximum(k22, 0.0)), shape)
    s = s1 * s2
    rho = jnp.clip(_safe_div(jnp.broadcast_to(k12, shape), s, 1.0), -1.0, 1.0)
    # a correlation within 4 eps of +-1 is rounding (the diagonal of K(X, X)): snapped, as the
    # closed forms do, since the derivative map has a sqrt(1 - rho) singularity there
    rho = jnp.where(1.0 - jnp.abs(rho) <= 4.0 * jnp.finfo(dtype).eps, jnp.sign(rho), rho)
    sig = jnp.sqrt(jnp.maximum((1.0 - rho) * (1.0 + rho), 0.0))
    c = jnp.asarray(kinks, dtype)
    out = 2 * _L
    centre = _safe_div(c, (s2 * rho)[..., None], out)
    width = _safe_div(sig, jnp.abs(rho), out)[..., None]
    outer_pts = [_safe_div(c, s1[..., None], out), centre]
    outer_pts += [centre + sgn * g * width for g in _GRADES for sgn in (-1.0, 1.0)]
    z1, w1 = _rule(jnp.concatenate(outer_pts, axis=-1), m, dtype)
    s2sig = (s2 * sig)[..., None]
    inner_m = m

    def body(acc, node):
        z, wz = node
        inner = _safe_div(c - (s2 * rho * z)[..., None], s2sig, out)
        z2, w2 = _rule(inner, inner_m, dtype)
        v = s2[..., None] * (rho * z)[..., None] + s2sig * z2
        u = s1 * z
        return tuple(a + wz * f(u) * jnp.sum(w2 * f(v), axis=-1)
                     for f, a in zip(fns, acc, strict=True)), None

    init = tuple(jnp.zeros(shape, dtype) for _ in fns)
    acc, _ = jax.lax.scan(body, init, (jnp.moveaxis(z1, -1, 0), jnp.moveaxis(w1, -1, 0)))
    return list(acc)
