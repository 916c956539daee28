"""Deterministic equivalent of linear random-feature ridge regression (THEORY.md 2).

Model :math:`f(x) = v \\cdot A \\psi(x) / \\sqrt{N}`, :math:`A \\in \\mathbb{R}^{N\\times M}` iid
:math:`\\mathcal N(0, 1)`, ridge (per sample) on ``v``; errors against the clean target.
"""

from __future__ import annotations

import math

import numpy as np
from jaxtyping import ArrayLike

from theorysim.checks import check_scalar, check_spectrum
from theorysim.contract import finish

from ._kappa import KAPPA_TOL
from ._ridge import (
    KAPPA_HINT,
    RidgeRisk,
    _check_compress,
    broadcast_grid,
    check_grid_arg,
    check_noise,
    check_solver_options,
    grid_diagnostics,
    safe_ratio,
    solve_on_grid,
)

__all__ = ["random_feature_risk"]


def _check_ensemble(ensemble) -> float:
    """A positive integer or ``math.inf``."""
    if isinstance(ensemble, (float, np.floating)) and math.isinf(ensemble):
        if ensemble > 0:
            return math.inf
        raise ValueError(f"ensemble must be an integer >= 1 or math.inf, got {ensemble!r}")
    return float(check_scalar("ensemble", ensemble, lo=1, integer=True))


def random_feature_risk(eigvals: ArrayLike, target_power: ArrayLike, P: ArrayLike,
                        N: ArrayLike, ridge: ArrayLike, noise: float = 0.0,
                        ensemble: int | float = 1, *,
                        compress: bool | None = None, tol: float = KAPPA_TOL,
                        max_iter: int = 200, throw: bool = True) -> RidgeRisk:
    """Learning curve of linear random-feature ridge regression (THEORY.md 2).

    .. math::

        \\kappa_2\\Big(1 - \\frac{D_1}{P}\\Big)\\Big(1 - \\frac{D_1}{N}\\Big) = \\lambda,\\quad
        D_i = \\mathrm{df}_i(\\kappa_2),\\quad
        B_1 = \\kappa_2 \\sum_k \\frac{\\lambda_k w_k^2}{\\lambda_k + \\kappa_2},\\quad
        B_2 = \\kappa_2^2 \\sum_k \\frac{\\lambda_k w_k^2}{(\\lambda_k + \\kappa_2)^2},

        \\delta = \\frac{N - D_1}{N - D_2},\\quad
        \\gamma_1 = \\frac{D_1 - \\delta (D_1 - D_2)}{P},\\quad
        E_1 = \\frac{\\delta B_2 + (1 - \\delta) B_1 + \\sigma^2}{1 - \\gamma_1} - \\sigma^2,

        E_\\infty = \\frac{B_2 + \\sigma^2}{1 - D_2/P} - \\sigma^2,\\qquad
        E_K = E_\\infty + (E_1 - E_\\infty)/K.

    The formulas of THEORY.md 2 include the test-label noise; we subtract :math:`\\sigma^2`
    so that, like :func:`ridge_risk`, errors are against the clean target and ``N = inf``
    recovers :func:`ridge_risk` exactly. Regime: deterministic equivalent, P, N, M large.
    Ridgeless (``ridge = 0``): kappa solves ``df1 = min(N, P)`` (0 if ``min(N, P) >= M``);
    the single model diverges at ``N = P < M`` (``inf`` is returned). References: arXiv
    2405.00592, 2402.01092.

    Args:
        eigvals: ``(M,)`` spectrum :math:`\\lambda_k \\ge 0`.
        target_power: ``(M,)`` :math:`\\lambda_k w_k^2 \\ge 0`.
        P: sample sizes ``> 0`` (``inf`` allowed); broadcasts with ``N`` and ``ridge``.
        N: numbers of random features ``> 0`` (``inf`` allowed).
        ridge: per-sample ridge ``>= 0``.
        noise: label-noise standard deviation :math:`\\sigma \\ge 0`.
        ensemble: number ``K >= 1`` of independent draws of ``A`` averaged (``math.inf``:
            the draw-averaged predictor).
        compress, tol, max_iter, throw: as in :func:`ridge_risk`.

    Returns:
        :class:`RidgeRisk`; ``kappa`` is :math:`\\kappa_2`, ``gamma`` the single model's
        :math:`\\gamma_1`, ``variance`` the part proportional to ``noise**2``.

    Example:
        >>> from theorysim.theory import power_law_spectrum
        >>> lam, tp = power_law_spectrum(400, 1.5, 2.0)
        >>> round(float(random_feature_risk(lam, tp, 100, 200, 1e-3).error), 4)
        0.0439
    """
    lam, tp = check_spectrum(eigvals, target_power, zero_mode_power=True)
    P = check_grid_arg("P", P, allow_zero=False)
    N = check_grid_arg("N", N, allow_zero=False)
    ridge = check_grid_arg("ridge", ridge, allow_zero=True)
    broadcast_grid(P=P, N=N, ridge=ridge)
    noise = check_noise(noise)
    K = _check_ensemble(ensemble)
    compress = _check_compress(compress)
    tol, max_iter, throw = check_solver_options(tol, max_iter, throw)
    s = solve_on_grid(lam, tp, P, N, ridge, compress, tol, max_iter)
    D1, D2, B1, B2 = s["df1"], s["df2"], s["B1"], s["B2"]
    P_b, N_b = np.broadcast_arrays(P, N, D1)[:2]

    def over(x, n):  # x / n with n = inf -> 0
        return np.where(np.isinf(n), 0.0, x / np.where(np.isinf(n), 1.0, n))

    num_dd = np.where(np.isinf(N_b), 1.0, N_b - D1)
    den_dd = np.where(np.isinf(N_b), 1.0, N_b - D2)
    dd = np.where(den_dd > 0, num_dd / np.where(den_dd > 0, den_dd, 1.0), 1.0)
    dd = np.clip(dd, 0.0, 1.0)
    gamma1 = over(D1 - dd * (D1 - D2), P_b)
    g_inf = over(D2, P_b)
    sig2 = noise**2
    # single model: bias and noise parts (sigma^2/(1-g) - sigma^2 = sigma^2 g/(1-g))
    bias1 = safe_ratio(dd * B2 + (1.0 - dd) * B1, 1.0 - gamma1)
    var1 = safe_ratio(sig2 * gamma1, 1.0 - gamma1)
    bias_inf = safe_ratio(B2, 1.0 - g_inf)
    var_inf = safe_ratio(sig2 * g_inf, 1.0 - g_inf)
    w1 = 0.0 if math.isinf(K) else 1.0 / K
    w_inf = 1.0 - w1

    def mix(x_inf, x1):  # (1 - 1/K) x_inf + x1 / K without inf - inf or 0 * inf
        a = np.where(x_inf > 0, w_inf * x_inf, 0.0) if w_inf > 0 else np.zeros_like(x_inf)
        b = np.where(x1 > 0, w1 * x1, 0.0) if w1 > 0 else np.zeros_like(x1)
        return a + b

    bias = mix(bias_inf, bias1)
    variance = mix(var_inf, var1)
    one = np.ones_like(gamma1)
    alpha = mix(np.zeros_like(one), safe_ratio(1.0 - dd, 1.0 - gamma1))
    beta = mix(safe_ratio(one, 1.0 - g_inf), safe_ratio(dd, 1.0 - gamma1))
    result = RidgeRisk(
        error=bias + variance, bias=bias, variance=variance, kappa=s["kappa"],
        gamma=gamma1, eigvals=lam, target_power=tp, mode_coef=(alpha, beta),
        **grid_diagnostics(s, tol),
    )
    return finish(result, throw=throw, solver="random_feature_risk", hint=KAPPA_HINT)
