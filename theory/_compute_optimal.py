"""Compute-optimal frontier of the random-feature gradient-flow model and its exponents.

Bordelon, Atanasov, Pehlevan 2024 (arXiv 2402.01092); THEORY.md section 3. With compute
:math:`C = N t` (width times training time), the frontier is

.. math::
    L^*(C) = \\min_N L(N, t = C/N),

found here from :func:`scaling_law_dynamics` itself on a log-lattice of widths (the lattice of
times ``C/N`` is then shared by all budgets), refined by a parabola in :math:`\\log N`. For
power laws :math:`\\lambda_k = k^{-b}`, :math:`\\lambda_k w_k^2 = k^{-a}` the asymptotic
exponents are, with :math:`m = \\min(a-1, b)` the single-model width exponent,
:math:`t^* \\sim C^{bm/(a-1+bm)}`, :math:`N^* \\sim C^{(a-1)/(a-1+bm)}`,
:math:`L^* \\sim C^{-(a-1)m/(a-1+bm)}`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from jaxtyping import ArrayLike

from theorysim.checks import check_scalar
from theorysim.contract import check_throw, finish

from ._fits import fit_power_law
from ._kappa import KAPPA_TOL
from ._scaling_dynamics import T_RANGE, scaling_law_dynamics
from ._spectra import ScalingExponents, scaling_exponents

__all__ = ["ComputeOptimalResult", "compute_optimal"]


@dataclasses.dataclass(frozen=True)
class ComputeOptimalResult:
    """The compute-optimal frontier found from the solver.

    Attributes:
        C: ``(nC,)`` compute budgets :math:`C = N t`.
        N_opt, t_opt, loss_opt: ``(nC,)`` optimal width, time (``C / N_opt``) and loss.
        at_boundary: ``(nC,)`` True where the minimum sits at the edge of the width lattice
            (then ``N_opt`` is only a bound).
        N_grid: ``(nN,)`` the width lattice.
        loss_grid: ``(nC, nN)`` loss along each iso-compute line (NaN where ``t`` is outside
            the time lattice).
        fitted: power-law exponents fitted to the frontier over ``C`` (keys ``"N"``, ``"t"``:
            growth exponents; ``"loss"``: decay exponent), points at the boundary excluded.
        predicted: :class:`ScalingExponents` when ``a`` and ``b`` were given, else ``None``.
        converged, residual, iterations: the solver contract, from the one
            :func:`scaling_law_dynamics` call on the lattice (worst over it).
    """

    C: np.ndarray
    N_opt: np.ndarray
    t_opt: np.ndarray
    loss_opt: np.ndarray
    at_boundary: np.ndarray
    N_grid: np.ndarray
    loss_grid: np.ndarray
    fitted: dict
    predicted: ScalingExponents | None
    converged: bool
    residual: float
    iterations: int


def compute_optimal(
    eigvals: ArrayLike,
    target_power: ArrayLike,
    C_min: float,
    C_max: float,
    *,
    N_min: float = 1.0,
    N_max: float | None = None,
    P: float = math.inf,
    noise: float = 0.0,
    per_decade: int = 8,
    a: float | None = None,
    b: float | None = None,
    nodes: int = 16,
    tol: float = KAPPA_TOL,
    max_iter: int = 80,
    max_points: int = 200_000,
    throw: bool = True,
) -> ComputeOptimalResult:
    """Compute-optimal width, time and loss :math:`\\min_{N t = C} L(N, t)` from the solver.

    .. math::
        N^*(C) = \\arg\\min_N L(N, C/N),\\qquad L^*(C) = L(N^*, C/N^*)

    with :math:`L` from :func:`scaling_law_dynamics` (gradient flow, THEORY.md 3; arXiv
    2402.01092). Budgets and widths lie on one log-lattice with ``per_decade`` points per
    decade, so every ``C/N`` is on a shared time lattice (one solver call for the whole
    frontier); the minimum is refined by a parabola through the three lattice points around it
    in :math:`(\\log N, \\log L)`.

    Args:
        eigvals: ``(M,)`` spectrum, > 0.
        target_power: ``(M,)`` :math:`\\lambda_k w_k^2 \\ge 0`.
        C_min, C_max: range of compute budgets, ``0 < C_min < C_max``.
        N_min, N_max: width lattice range (default ``N_max = C_max``: at least one unit of
            time).
        P: samples (``inf``: online / population gradient flow).
        noise: label-noise standard deviation.
        per_decade: lattice points per decade (>= 2).
        a, b: power-law exponents; when both are given, ``predicted`` holds
            :func:`scaling_exponents` ``(a, b)``.
        nodes, tol, max_iter: passed to :func:`scaling_law_dynamics`.
        max_points: refuse lattices of more than this many (width, time) points up front
            (the solver's cost is proportional to it); raise it to run a bigger lattice.
        throw: raise :class:`~theorysim.ConvergenceError` if the solver did not converge on
            the lattice; ``False`` returns the result flagged.

    Returns:
        :class:`ComputeOptimalResult`.

    Example:
        >>> k = np.arange(1, 201.0)
        >>> f = compute_optimal(k**-1.5, k**-2.0, 1e2, 1e3, N_max=200.0, per_decade=2)
        >>> f.C.tolist(), f.converged
        ([100.0, 316.2277660168379, 1000.0], True)
    """
    C_min = check_scalar("C_min", C_min, lo=0.0, lo_open=True, hi=math.inf, hi_open=True)
    C_max = check_scalar("C_max", C_max, lo=C_min, lo_open=True, hi=math.inf, hi_open=True)
    N_min = check_scalar("N_min", N_min, lo=0.0, lo_open=True, hi=math.inf, hi_open=True)
    if N_max is None:  # the default: name the argument the user passed
        if not C_max > N_min:
            raise ValueError(f"C_max must be > N_min = {N_min:g} when N_max is not given "
                             f"(N_max defaults to C_max), got C_max = {C_max:g}")
        N_max = C_max
    N_max = check_scalar("N_max", N_max, lo=N_min, lo_open=True, hi=math.inf, hi_open=True)
    if not (isinstance(P, float | int | np.floating | np.integer) and not isinstance(P, bool)):
        raise ValueError(f"P must be one sample count (a number > 0, inf allowed), got {P!r}")
    check_scalar("P", P, lo=0.0, lo_open=True)
    per_decade = check_scalar("per_decade", per_decade, lo=2, hi=64, integer=True)
    max_points = check_scalar("max_points", max_points, lo=1, integer=True)
    throw = check_throw(throw)
    predicted = None
    if (a is None) != (b is None):
        raise ValueError("a and b must be given together (or neither)")
    if a is not None:
        predicted = scaling_exponents(a, b)

    step = 1.0 / per_decade
    c_idx = np.arange(math.floor(math.log10(C_min) / step + 1e-9),
                      math.ceil(math.log10(C_max) / step - 1e-9) + 1)
    n_idx = np.arange(math.floor(math.log10(N_min) / step + 1e-9),
                      math.ceil(math.log10(N_max) / step - 1e-9) + 1)
    if n_idx.size < 3:
        raise ValueError("N_max / N_min must span at least three lattice points")
    t_idx = np.arange(c_idx[0] - n_idx[-1], c_idx[-1] - n_idx[0] + 1)
    if n_idx.size * t_idx.size > max_points:
        raise ValueError(
            f"C_min..C_max and N_min..N_max at per_decade={per_decade} need a lattice of "
            f"{n_idx.size} widths x {t_idx.size} times = {n_idx.size * t_idx.size:,} points, "
            f"above max_points={max_points:,}: narrow the ranges, lower per_decade, or raise "
            "max_points")
    C = 10.0 ** (c_idx * step)
    N_grid = 10.0 ** (n_idx * step)
    with np.errstate(over="ignore", under="ignore"):
        times = 10.0 ** (t_idx * step)
    if not (times[0] >= T_RANGE[0] and times[-1] <= T_RANGE[1]):
        raise ValueError(
            f"the training times C/N span {times[0]:.3g} (C_min / N_max) to {times[-1]:.3g} "
            f"(C_max / N_min), outside the solver's range [{T_RANGE[0]:g}, {T_RANGE[1]:g}]: "
            "narrow C_min..C_max or N_min..N_max")
    res = scaling_law_dynamics(eigvals, target_power, P, N_grid, times, noise, nodes=nodes,
                               tol=tol, max_iter=max_iter, throw=False)
    loss_nt = res.loss[:, 0, :]                                  # (nN, nT)
    # iso-compute lines: t index = c - n
    ti = c_idx[:, None] - n_idx[None, :] - t_idx[0]              # (nC, nN)
    loss_grid = loss_nt[np.arange(n_idx.size)[None, :], ti]
    # keep t >= the smallest lattice time (always true by construction)
    i_min = np.argmin(loss_grid, axis=1)
    at_boundary = (i_min == 0) | (i_min == n_idx.size - 1)
    j = np.clip(i_min, 1, n_idx.size - 2)
    rows = np.arange(C.size)
    y0, y1, y2 = (np.log(np.maximum(loss_grid[rows, j + d], 1e-300)) for d in (-1, 0, 1))
    curv = y0 - 2 * y1 + y2
    shift = np.where(curv > 0, 0.5 * (y0 - y2) / np.where(curv > 0, curv, 1.0), 0.0)
    shift = np.where(at_boundary, i_min - j, np.clip(shift, -1.0, 1.0))
    log_n = (n_idx[j] + shift) * step * math.log(10.0)
    log_l = y1 + 0.5 * (y2 - y0) * shift + 0.5 * curv * shift**2
    log_l = np.where(at_boundary, np.log(loss_grid[rows, i_min]), log_l)
    N_opt = np.exp(log_n)
    t_opt = C / N_opt
    loss_opt = np.exp(log_l)
    fitted = {}
    ok = ~at_boundary & np.isfinite(loss_opt) & (loss_opt > 0)  # a failed solve is not fitted
    if ok.sum() >= 2:
        fitted = {
            "N": -fit_power_law(C[ok], N_opt[ok]).exponent,
            "t": -fit_power_law(C[ok], t_opt[ok]).exponent,
            "loss": fit_power_law(C[ok], loss_opt[ok]).exponent,
        }
    result = ComputeOptimalResult(
        C=C, N_opt=N_opt, t_opt=t_opt, loss_opt=loss_opt, at_boundary=at_boundary,
        N_grid=N_grid, loss_grid=loss_grid, fitted=fitted, predicted=predicted,
        converged=res.converged, residual=res.residual, iterations=res.iterations,
    )
    return finish(result, throw=throw, solver="compute_optimal",
                  hint="the kappa solves of scaling_law_dynamics on the (width, time) lattice "
                       "missed tol; pass throw=False to inspect the flagged result")
