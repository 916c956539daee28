"""Deterministic equivalent of ridge (kernel) regression learning curves (THEORY.md 1).

Convention: ridge per sample, :math:`\\min (1/P) \\sum (y - f)^2 + \\lambda |\\theta|^2`;
``target_power[k] = lam_k w_k^2``; errors are against the clean target (add ``noise**2`` for
noisy test labels).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike

from theorysim.checks import as_finite_array, check_scalar, check_spectrum
from theorysim.contract import check_throw, finish

from ._kappa import KAPPA_TOL, solve_kappa
from ._spectra import gauss_compress

__all__ = ["RidgeRisk", "ridge_risk"]

#: spectra longer than this are Gauss-compressed (``compress=None``); see ``gauss_compress``.
COMPRESS_ABOVE = 512


@dataclass(frozen=True)
class RidgeRisk:
    """Theory prediction on a grid (all arrays NumPy float64 of the broadcast grid shape).

    Attributes:
        error: generalisation error against the clean target, ``bias + variance``; ``inf``
            where it diverges (``1 - gamma = 0`` with a nonzero numerator), never NaN.
        bias: the noise-free part. variance: the part proportional to ``noise**2``.
        kappa: effective ridge (per-sample convention). gamma: ``df2(kappa)/P`` (for random
            features the :math:`\\gamma_1` of THEORY.md 2).
        point_residual: relative defect of the kappa equation at each grid point (see
            ``theorysim.theory._kappa``). point_iterations: Newton/bisection steps per point.
        eigvals, target_power: the spectrum, ``(M,)`` (for ``mode_errors``).
        mode_coef: ``(alpha, beta)`` with per-mode bias
            ``target_power_k (alpha q_k + beta q_k^2)``, ``q_k = kappa / (lam_k + kappa)``.
        converged: every ``point_residual <= tol`` (the tolerance the solver iterated to) and
            no NaN anywhere. residual: the largest ``point_residual``. iterations: the largest
            ``point_iterations`` (the solver contract, :mod:`theorysim.contract`).
    """

    #: ``inf`` is a meaningful error (the interpolation peak); NaN is never returned
    _allow_inf = ("error", "bias", "variance", "mode_coef")

    error: np.ndarray
    bias: np.ndarray
    variance: np.ndarray
    kappa: np.ndarray
    gamma: np.ndarray
    point_residual: np.ndarray
    point_iterations: np.ndarray
    eigvals: np.ndarray
    target_power: np.ndarray
    mode_coef: tuple[np.ndarray, np.ndarray]
    converged: bool
    residual: float
    iterations: int

    @property
    def mode_errors(self) -> np.ndarray:
        """Per-mode bias, shape ``grid + (M,)``; sums over the last axis to ``bias``.

        Ridge: :math:`E_k = \\lambda_k w_k^2 \\kappa^2 / ((\\lambda_k + \\kappa)^2 (1 - \\gamma))`.
        """
        lam = self.eigvals
        kappa = self.kappa[..., None]
        denom = lam + kappa
        q = np.where(lam > 0, kappa / np.where(denom > 0, denom, 1.0), 1.0)
        alpha, beta = (c[..., None] for c in self.mode_coef)
        raw = self.target_power * q
        with np.errstate(invalid="ignore", over="ignore"):
            val = raw * (np.where(alpha > 0, alpha, 0.0) + beta * q)
        return np.where(raw > 0, val, 0.0)


def _pow2(n: int, least: int = 8) -> int:
    return max(least, 1 << max(0, int(n) - 1).bit_length())


def _pad(a: np.ndarray, size: int, fill: float) -> np.ndarray:
    return np.concatenate([a, np.full(size - a.size, fill)])


def prepare_spectrum(eigvals: np.ndarray, target_power: np.ndarray, compress: bool | None):
    """Host side: split off zero modes, optionally Gauss-compress, pad to power-of-2 sizes.

    Returns ``(lam_a, m_a, lam_b, w_b, tp0)``: the mode measure (for df1, df2), the target
    measure (for the bias sums) and the target power on zero-eigenvalue modes.
    """
    pos = eigvals > 0
    tp0 = float(np.sum(target_power[~pos]))
    lam_p = eigvals[pos]
    if compress is None:
        compress = eigvals.size > COMPRESS_ABOVE
    if compress:
        weights = np.stack([np.ones(lam_p.size), target_power[pos]], axis=1)
        (lam_a, m_a), (lam_b, w_b) = gauss_compress(lam_p, weights)
    else:
        lam_a, m_a = lam_p, np.ones(lam_p.size)
        tsel = target_power[pos] > 0
        lam_b, w_b = lam_p[tsel], target_power[pos][tsel]
    size_a, size_b = _pow2(lam_a.size), _pow2(lam_b.size)
    return (_pad(lam_a, size_a, 1.0), _pad(m_a, size_a, 0.0), _pad(lam_b, size_b, 1.0),
            _pad(w_b, size_b, 0.0), tp0)


#: grid points solved in one vmapped call (bounds the memory at ``CHUNK * M`` floats)
CHUNK = 1 << 14


@jax.jit
def _solve_grid(lam_a, m_a, lam_b, w_b, P, N, ridge, tol, max_iter):
    """vmapped kappa solve + the target sums ``B1 = sum w q``, ``B2 = sum w q^2``."""

    def one(p, n, r):
        sol = solve_kappa(lam_a, m_a, p, n, r, tol, max_iter)
        q = sol.kappa / (lam_b + sol.kappa)
        return sol, jnp.sum(w_b * q), jnp.sum(w_b * q * q)

    return jax.vmap(one)(P, N, ridge)


def broadcast_grid(**grids: np.ndarray) -> list[np.ndarray]:
    """Broadcast the named grid arguments, or raise ``ValueError`` naming them and their
    shapes (before any compute)."""
    try:
        return list(np.broadcast_arrays(*grids.values()))
    except ValueError:
        shapes = ", ".join(f"{k}: {np.shape(v)}" for k, v in grids.items())
        raise ValueError(f"{', '.join(grids)} must broadcast to one grid (numpy rules), got "
                         f"shapes {shapes}") from None


def solve_on_grid(eigvals, target_power, P, N, ridge, compress, tol, max_iter):
    """Broadcast ``P, N, ridge``, solve in float64, return NumPy arrays of the grid shape.

    The grid is solved in host-side chunks of at most :data:`CHUNK` points (one executable for
    all of them), so memory stays bounded for any grid size. Returns a dict with
    ``kappa, df1, df2, B1, B2, residual, iterations`` (``B`` sums include the
    zero-eigenvalue target power).
    """
    P, N, ridge = np.broadcast_arrays(P, N, ridge)
    shape = P.shape
    G = P.size
    size = min(_pow2(G, least=1), CHUNK)
    n_chunks = -(-G // size)
    flat = [_pad(np.ravel(x), n_chunks * size, 1.0) for x in (P, N, ridge)]
    lam_a, m_a, lam_b, w_b, tp0 = prepare_spectrum(eigvals, target_power, compress)
    names = ("kappa", "df1", "df2", "residual", "iterations", "B1", "B2")
    parts = {name: [] for name in names}
    with jax.enable_x64(True):
        spec = [jnp.asarray(x, jnp.float64) for x in (lam_a, m_a, lam_b, w_b)]
        for c in range(n_chunks):
            sl = slice(c * size, (c + 1) * size)
            sol, B1, B2 = _solve_grid(*spec, *(jnp.asarray(x[sl], jnp.float64) for x in flat),
                                      tol, max_iter)
            for name, v in zip(names, (*sol, B1, B2), strict=True):
                parts[name].append(np.asarray(v))
    out = {name: np.concatenate(v)[:G].reshape(shape) for name, v in parts.items()}
    for name in names:
        if name != "iterations":
            out[name] = out[name].astype(np.float64)
    out["B1"] = out["B1"] + tp0
    out["B2"] = out["B2"] + tp0
    # at kappa = 0 the sums are exact counts; avoid rounding in compressed weights
    m_eff = float(np.count_nonzero(eigvals > 0))
    for name in ("df1", "df2"):
        out[name] = np.where(out["kappa"] == 0, m_eff, out[name])
    # ridgeless with kappa > 0: df1 = min(N, P) is the defining equation; use it exactly so
    # that N = P gives gamma_1 = 1 (an exact inf), not 1 - 1e-15
    ridgeless = (ridge == 0) & (out["kappa"] > 0)
    out["df1"] = np.where(ridgeless, np.minimum(P, N), out["df1"])
    return out


def safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` for ``num >= 0``: 0 where ``num == 0``, ``inf`` where ``den <= 0``."""
    num, den = np.broadcast_arrays(num, den)
    ok = (num > 0) & (den > 0)
    out = np.where(num > 0, np.inf, 0.0)
    return np.where(ok, num / np.where(ok, den, 1.0), out)


#: largest accepted label-noise standard deviation (``noise**2`` must not overflow)
NOISE_MAX = 1e100


def check_noise(noise) -> float:
    """The label-noise standard deviation: a number in ``[0, NOISE_MAX]``."""
    return check_scalar("noise", noise, lo=0.0, hi=NOISE_MAX)


def check_grid_arg(name: str, value, *, allow_zero: bool) -> np.ndarray:
    """``P``/``N`` (> 0, ``inf`` allowed) or ``ridge`` (>= 0, finite): a scalar or a
    non-empty grid."""
    if allow_zero:
        return as_finite_array(name, value, nonneg=True, min_size=1)
    return as_finite_array(name, value, positive=True, allow_inf=True, min_size=1)


def check_solver_options(tol, max_iter, throw) -> tuple[float, int, bool]:
    """The kappa solver's ``tol`` in ``(0, 1)``, ``max_iter >= 1`` and the ``throw`` flag."""
    tol = check_scalar("tol", tol, lo=0.0, lo_open=True, hi=1.0, hi_open=True)
    max_iter = check_scalar("max_iter", max_iter, lo=1, hi=10_000, integer=True)
    return tol, max_iter, check_throw(throw)


def grid_diagnostics(s: dict, tol: float) -> dict:
    """The per-point and worst-case diagnostics of a kappa grid solve (contract fields)."""
    res = s["residual"]
    return dict(point_residual=res, point_iterations=s["iterations"],
                converged=bool(np.all(res <= tol)), residual=float(np.max(res)),
                iterations=int(np.max(s["iterations"])))


#: the message appended to a kappa :class:`~theorysim.ConvergenceError`
KAPPA_HINT = "raise max_iter or tol, or pass throw=False to inspect the flagged result"


def ridge_risk(eigvals: ArrayLike, target_power: ArrayLike, P: ArrayLike,
               ridge: ArrayLike = 0.0, noise: float = 0.0, *,
               compress: bool | None = None, tol: float = KAPPA_TOL, max_iter: int = 200,
               throw: bool = True) -> RidgeRisk:
    """Ridge / kernel regression learning curve from the spectrum (THEORY.md 1).

    .. math::

        \\kappa\\Big(1 - \\frac{\\mathrm{df}_1(\\kappa)}{P}\\Big) = \\lambda, \\quad
        \\gamma = \\frac{\\mathrm{df}_2(\\kappa)}{P}, \\quad
        E_g = \\frac{\\sum_k \\lambda_k w_k^2 \\kappa^2 / (\\lambda_k + \\kappa)^2
              + \\sigma^2 \\gamma}{1 - \\gamma}.

    Regime: deterministic equivalent (Gaussian / generic features, P and M large); exact as
    P, M -> inf at fixed ratio. Ridge is per sample (a Gram matrix regularised as ``K + r I``
    has ``r = P * ridge``). Ridgeless (``ridge = 0``): for ``P < M`` kappa solves
    ``df1 = P``; for ``P >= M`` kappa = 0 and ``E_g = noise^2 M / (P - M)``, infinite at
    ``P = M`` with noise (0 without noise: the square system recovers the target). Error is
    against the clean target. Target power on zero eigenvalues (e.g. from a rank-deficient
    Gram spectrum) is unlearnable and counts in the error at every ``P``. References: arXiv
    2002.02561, 2006.13198, 2405.00592.

    Args:
        eigvals: ``(M,)`` spectrum :math:`\\lambda_k \\ge 0`.
        target_power: ``(M,)`` :math:`\\lambda_k w_k^2 \\ge 0`.
        P: sample sizes ``> 0`` (``inf`` allowed), any shape; broadcasts with ``ridge``.
        ridge: per-sample ridge ``>= 0``, any shape.
        noise: label-noise standard deviation :math:`\\sigma \\ge 0`.
        compress: Gauss-compress the spectrum (default: when ``M > 512``; relative error of
            the spectral sums ~1e-15, see ``gauss_compress``).
        tol: tolerance on the relative defect of the kappa equation; the solver iterates to it
            (plus one Newton step) and ``converged`` means every point met it.
        max_iter: cap on the Newton/bisection steps per point.
        throw: raise :class:`~theorysim.ConvergenceError` if a point did not converge (or the
            output holds NaN); ``False`` returns the result flagged ``converged=False``.

    Returns:
        :class:`RidgeRisk` on the broadcast grid of ``P`` and ``ridge``.

    Example:
        >>> from theorysim.theory import power_law_spectrum
        >>> lam, tp = power_law_spectrum(400, 1.5, 2.0)
        >>> r = ridge_risk(lam, tp, [20, 100, 800], 1e-3)
        >>> r.error.round(5).tolist(), r.converged
        ([0.12851, 0.02528, 0.00743], True)
    """
    lam, tp = check_spectrum(eigvals, target_power, zero_mode_power=True)
    P = check_grid_arg("P", P, allow_zero=False)
    ridge = check_grid_arg("ridge", ridge, allow_zero=True)
    broadcast_grid(P=P, ridge=ridge)
    noise = check_noise(noise)
    compress = _check_compress(compress)
    tol, max_iter, throw = check_solver_options(tol, max_iter, throw)
    s = solve_on_grid(lam, tp, P, np.inf, ridge, compress, tol, max_iter)
    gamma = np.where(np.isinf(P), 0.0, s["df2"] / np.where(np.isinf(P), 1.0, P))
    one_minus = 1.0 - gamma
    bias = safe_ratio(s["B2"], one_minus)
    variance = safe_ratio(noise**2 * gamma, one_minus)
    beta = safe_ratio(np.ones_like(gamma), one_minus)
    result = RidgeRisk(
        error=bias + variance, bias=bias, variance=variance, kappa=s["kappa"], gamma=gamma,
        eigvals=lam, target_power=tp, mode_coef=(np.zeros_like(gamma), beta),
        **grid_diagnostics(s, tol),
    )
    return finish(result, throw=throw, solver="ridge_risk", hint=KAPPA_HINT)


def _check_compress(compress):
    if compress is not None and not isinstance(compress, bool | np.bool_):
        raise ValueError(f"compress must be None, True or False, got {compress!r}")
    return compress
