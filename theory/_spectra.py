"""Spectra that feed the ridge / random-feature theory: power laws, and Gauss compression.

Power law (THEORY.md 1): :math:`\\lambda_k = k^{-b}`, :math:`\\lambda_k w_k^2 = k^{-a}`,
``k = 1..M``. Compression replaces a long spectrum by a few Gauss nodes per unit of
:math:`\\log\\lambda` so that the spectral sums of the theory cost O(nodes) instead of O(M).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from theorysim.checks import check_scalar

__all__ = ["PowerLawSpectrum", "gauss_compress", "power_law_spectrum"]


@dataclass(frozen=True)
class PowerLawSpectrum:
    """A power-law spectrum and its predicted exponents (unpacks as ``eigvals, target_power``).

    Attributes:
        eigvals: ``(M,)`` float64, :math:`k^{-b}`.
        target_power: ``(M,)`` float64, :math:`\\lambda_k w_k^2 = k^{-a}`.
        M, b, a: the parameters.
        exponents: predicted decay exponents (valid for ``M -> inf`` and the stated regime):
            ``"learning_curve"``: ridgeless noiseless ``E_g ~ P^-min(a-1, 2b)`` (THEORY.md 1);
            ``"time"``: gradient-flow loss ``L ~ t^-(a-1)/b`` (THEORY.md 3);
            ``"width_single"``: single random-feature model at ``P = t = inf``,
            ``L ~ N^-min(a-1, b)``; ``"width_ensemble"``: draw-averaged, ``N^-min(a-1, 2b)``.
    """

    eigvals: np.ndarray
    target_power: np.ndarray
    M: int
    b: float
    a: float
    exponents: dict = field(default_factory=dict)

    def __iter__(self):
        return iter((self.eigvals, self.target_power))


def power_law_spectrum(M: int, b: float, a: float) -> PowerLawSpectrum:
    """:math:`\\lambda_k = k^{-b}`, :math:`\\lambda_k w_k^2 = k^{-a}` for ``k = 1..M``.

    .. math::

        E_g(P) \\sim P^{-\\min(a - 1,\\, 2b)} \\quad (\\text{ridgeless, noiseless}, 1 \\ll P \\ll M)

    Regime: source/capacity power laws of arXiv 2002.02561, 2402.01092. ``a > 1`` keeps the total
    target power finite as ``M -> inf`` (the exponents need it); ``b > 0``.

    Args:
        M: number of modes, integer ``>= 1``.
        b: spectral decay exponent, ``> 0``.
        a: target-power decay exponent, ``> 1``.

    Example:
        >>> eigvals, target_power = power_law_spectrum(2000, 1.5, 2.0)
    """
    M = check_scalar("M", M, lo=1, integer=True)
    b = check_scalar("b", b, lo=0.0, lo_open=True, hi=math.inf, hi_open=True)
    a = check_scalar("a", a, lo=1.0, lo_open=True, hi=math.inf, hi_open=True)
    k = np.arange(1, M + 1, dtype=np.float64)
    exps = {
        "learning_curve": min(a - 1.0, 2.0 * b),
        "time": (a - 1.0) / b,
        "width_single": min(a - 1.0, b),
        "width_ensemble": min(a - 1.0, 2.0 * b),
    }
    return PowerLawSpectrum(k ** -b, k ** -a, M, b, a, exps)


def gauss_compress(lam: np.ndarray, weight: np.ndarray, *, width: float = 1.5,
                   order: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """Gauss-quadrature compression of the measures :math:`\\sum_k w_k \\delta_{\\log\\lambda_k}`.

    The theory only needs sums :math:`\\sum_k w_k f(\\log\\lambda_k - \\log\\kappa)` with ``f``
    built from :math:`\\lambda/(\\lambda+\\kappa)` (a logistic function of the log-ratio),
    analytic in the strip :math:`|\\mathrm{Im}| < \\pi`. Cutting :math:`\\log\\lambda` into cells
    of ``width`` and replacing each cell's measure by its ``order``-point Gauss rule
    (discretised Stieltjes procedure + Golub-Welsch) gives an error ~ :math:`\\rho^{-2\\,order}`
    relative to the cell's weight, :math:`\\rho \\approx 2\\pi/width + 1` (about 1e-17 for the
    defaults), uniformly in ``kappa > 0``. Cells with ``<= order`` points are kept exactly.

    Args:
        lam: ``(M,)`` positive eigenvalues.
        weight: ``(M,)`` or ``(M, k)`` nonnegative weights (k measures on the same support).

    Returns:
        one ``(nodes, weights)`` pair per column of ``weight``: positive eigenvalue-like nodes
        and their (positive) weights.
    """
    w = np.asarray(weight, np.float64)
    squeeze = w.ndim == 1
    w = w.reshape(lam.size, -1)
    x = np.log(lam)
    if x.size > 1 and np.all(x[1:] < x[:-1]):  # descending (the usual order): reverse
        x, w = x[::-1], w[::-1]
    elif x.size > 1 and not np.all(x[1:] > x[:-1]):  # unsorted or repeated: merge
        x, inv = np.unique(x, return_inverse=True)
        w = np.stack([np.bincount(inv.ravel(), weights=c, minlength=x.size) for c in w.T], 1)
    out = [_compress_sorted(x, c, width, order) for c in w.T] if x.size else []
    if not x.size:
        out = [(np.ones(0), np.zeros(0)) for _ in range(w.shape[1])]
    return out[0] if squeeze else out


def _compress_sorted(x, w, width, order):
    """Gauss compression of one measure on strictly increasing ``x``."""
    keep = w > 0
    x, w = x[keep], w[keep]
    if x.size == 0:
        return np.ones(0), np.zeros(0)
    cell = np.floor((x - x[0]) / width).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    stops = np.r_[starts[1:], x.size]
    big = (stops - starts) > order
    small = np.repeat(~big, stops - starts)
    nodes, weights = [x[small]], [w[small]]
    C = int(big.sum())
    if C:
        half = 0.5 * width
        center = x[0] + (cell[starts[big]] + 0.5) * width
        alpha = np.zeros((C, order))
        beta = np.zeros((C, order))
        alive = np.zeros((C, order), bool)
        norm0 = np.zeros(C)
        for c, (i0, i1) in enumerate(zip(starts[big], stops[big], strict=True)):
            _stieltjes(x[i0:i1], w[i0:i1], center[c], half, alpha[c], beta[c], alive[c])
            norm0[c] = w[i0:i1].sum()
        jac = np.zeros((C, order, order))
        idx = np.arange(order)
        jac[:, idx, idx] = np.where(alive, alpha, 0.0)
        off = np.sqrt(np.where(alive[:, 1:], beta[:, 1:], 0.0))
        jac[:, idx[:-1], idx[1:]] = off
        jac[:, idx[1:], idx[:-1]] = off
        ev, vec = np.linalg.eigh(jac)
        gw = norm0[:, None] * vec[:, 0, :] ** 2
        nodes.append((center[:, None] + half * ev)[gw > 0])
        weights.append(gw[gw > 0])
    return np.exp(np.concatenate(nodes)), np.concatenate(weights)


def _stieltjes(x, w, center, half, alpha, beta, alive):
    """Recurrence coefficients of the monic orthogonal polynomials of one cell's measure (in
    ``t = (x - center) / half`` on [-1, 1]); fills ``alpha``, ``beta``, ``alive`` in place.
    A degree whose norm falls below 1e-26 of the total weight ends the recurrence (the cell
    has fewer distinct points than ``order``)."""
    t = (x - center) / half
    p_prev = np.zeros_like(t)
    p = np.ones_like(t)
    norm0 = w.sum()
    norm_prev = 1.0
    order = alpha.size
    for j in range(order):  # plain NumPy: BLAS level-1 calls thrash under a loaded CPU
        wp = w * p
        norm = np.add.reduce(wp * p)
        if not norm > 1e-26 * norm0:
            break
        alive[j] = True
        tp = t * p
        alpha[j] = np.add.reduce(wp * tp) / norm
        if j > 0:
            beta[j] = norm / norm_prev
        norm_prev = norm
        if j + 1 < order:  # p_next = (t - alpha_j) p - beta_j p_prev
            tp -= alpha[j] * p
            tp -= beta[j] * p_prev
            p_prev, p = p, tp
