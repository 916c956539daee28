"""Spectra that feed the ridge / random-feature theory: power laws, and Gauss compression.

Power law (THEORY.md 1): :math:`\\lambda_k = k^{-b}`, :math:`\\lambda_k w_k^2 = k^{-a}`,
``k = 1..M``. Compression replaces a long spectrum by a few Gauss nodes per unit of
:math:`\\log\\lambda` so that the spectral sums of the theory cost O(nodes) instead of O(M).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theorysim.checks import check_scalar

__all__ = ["PowerLawSpectrum", "ScalingExponents", "gauss_compress", "power_law_spectrum",
           "scaling_exponents"]


@dataclass(frozen=True)
class ScalingExponents:
    """Predicted decay/growth exponents for :math:`\\lambda_k = k^{-b}`,
    :math:`\\lambda_k w_k^2 = k^{-a}` (THEORY.md 3; valid for ``M -> inf``).

    Attributes:
        time: :math:`L \\sim t^{-(a-1)/b}` (``N = P = inf``).
        samples: :math:`L \\sim P^{-\\min(a-1, 2b)}` (``N = t = inf``).
        width: single model, :math:`L \\sim N^{-\\min(a-1, b)}` (``P = t = inf``).
        width_ensemble: draw-averaged predictor, :math:`N^{-\\min(a-1, 2b)}`.
        compute_N, compute_t: growth exponents of :math:`N^*(C)`, :math:`t^*(C)` for the single
            model, i.e. the formulas below with :math:`m` = ``width`` = :math:`\\min(a-1, b)`.
        compute_loss: decay exponent of :math:`L^*(C)` (same :math:`m`).
        compute_*_ensemble: the same with :math:`m = \\min(a-1, 2b)` (THEORY.md 3 as written;
            it is the draw-averaged predictor's width exponent). The two agree when
            :math:`a - 1 \\le b`.
    """

    time: float
    samples: float
    width: float
    width_ensemble: float
    compute_N: float
    compute_t: float
    compute_loss: float
    compute_N_ensemble: float
    compute_t_ensemble: float
    compute_loss_ensemble: float


def scaling_exponents(a: float, b: float) -> ScalingExponents:
    """Asymptotic exponents of the dynamical scaling-law model (THEORY.md 3).

    Balancing :math:`L \\approx t^{-(a-1)/b} + N^{-m}` at :math:`C = N t` gives

    .. math::
        m = \\min(a-1, b)\\ (\\text{single model}),\\quad t^* \\sim C^{\\frac{bm}{a-1+bm}},\\quad
        N^* \\sim C^{\\frac{a-1}{a-1+bm}},\\quad L^* \\sim C^{-\\frac{(a-1)m}{a-1+bm}}.

    Args:
        a: target-power exponent, ``> 1``.
        b: spectral exponent, ``> 0``.
    """
    a = check_scalar("a", a, lo=1.0, lo_open=True, hi=math.inf, hi_open=True)
    b = check_scalar("b", b, lo=0.0, lo_open=True, hi=math.inf, hi_open=True)
    m1, m2 = min(a - 1.0, b), min(a - 1.0, 2.0 * b)
    d1, d2 = a - 1.0 + b * m1, a - 1.0 + b * m2
    return ScalingExponents(
        time=(a - 1.0) / b, samples=m2, width=m1, width_ensemble=m2,
        compute_N=(a - 1.0) / d1, compute_t=b * m1 / d1, compute_loss=(a - 1.0) * m1 / d1,
        compute_N_ensemble=(a - 1.0) / d2, compute_t_ensemble=b * m2 / d2,
        compute_loss_ensemble=(a - 1.0) * m2 / d2,
    )


@dataclass(frozen=True)
class PowerLawSpectrum:
    """A power-law spectrum and its predicted exponents (unpacks as ``eigvals, target_power``).

    Attributes:
        eigvals: ``(M,)`` float64, :math:`k^{-b}`.
        target_power: ``(M,)`` float64, :math:`\\lambda_k w_k^2 = k^{-a}`.
        M, b, a: the parameters.
        exponents: the predicted exponents, :func:`scaling_exponents` ``(a, b)`` (e.g.
            ``exponents.samples``: ridgeless noiseless ``E_g ~ P^-min(a-1, 2b)``, THEORY.md 1).
    """

    eigvals: np.ndarray
    target_power: np.ndarray
    M: int
    b: float
    a: float
    exponents: ScalingExponents

    def __iter__(self):
        return iter((self.eigvals, self.target_power))


#: default cap on ``M`` in :func:`power_law_spectrum` (two float64 arrays: 1.6 GB at the cap)
MAX_MODES = 10**8


def power_law_spectrum(M: int, b: float, a: float, *, max_modes: int = MAX_MODES
                       ) -> PowerLawSpectrum:
    """:math:`\\lambda_k = k^{-b}`, :math:`\\lambda_k w_k^2 = k^{-a}` for ``k = 1..M``.

    .. math::

        E_g(P) \\sim P^{-\\min(a - 1,\\, 2b)} \\quad (\\text{ridgeless, noiseless}, 1 \\ll P \\ll M)

    Regime: source/capacity power laws of arXiv 2002.02561, 2402.01092. ``a > 1`` keeps the total
    target power finite as ``M -> inf`` (the exponents need it); ``b > 0``.

    Args:
        M: number of modes, integer ``>= 1``.
        b: spectral decay exponent, ``> 0``.
        a: target-power decay exponent, ``> 1``.
        max_modes: refuse ``M`` above this up front (memory ``16 M`` bytes); raise it on a
            machine with the memory.

    Example:
        >>> eigvals, target_power = power_law_spectrum(2000, 1.5, 2.0)
        >>> float(eigvals[3]), float(target_power[3])
        (0.125, 0.0625)
        >>> power_law_spectrum(10, 1.5, 2.0).exponents.samples  # E_g ~ P^-min(a-1, 2b)
        1.0
    """
    max_modes = check_scalar("max_modes", max_modes, lo=1, integer=True)
    M = check_scalar("M", M, lo=1, integer=True)
    if M > max_modes:
        raise ValueError(f"M = {M:,} modes needs {16 * M / 1e9:.3g} GB, above max_modes = "
                         f"{max_modes:,}: pass max_modes= to override, or a smaller M")
    b = check_scalar("b", b, lo=0.0, lo_open=True, hi=math.inf, hi_open=True)
    a = check_scalar("a", a, lo=1.0, lo_open=True, hi=math.inf, hi_open=True)
    k = np.arange(1, M + 1, dtype=np.float64)
    lam, tp = k ** -b, k ** -a
    tiny = np.finfo(np.float64).tiny
    if np.any((lam < tiny) & (tp > 0)):  # eigenvalue 0 under target power: w_k = inf
        k_top = float(k[tp > 0][-1])
        raise ValueError(f"b must be at most {-math.log(tiny) / math.log(k_top):.4g} for M = {M} "
                         f"and a = {a:g} (k^-b underflows float64 at modes the target k^-a "
                         f"still weights), got {b:g}")
    return PowerLawSpectrum(lam, tp, M, b, a, scaling_exponents(a, b))


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
