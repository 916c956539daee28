r"""The self-consistent effective ridge kappa: one solver for ridge, random features and the
Laplace-domain scaling-law solver.

.. math::

    \kappa \Big(1 - \frac{\mathrm{df}_1(\kappa)}{P}\Big)
           \Big(1 - \frac{\mathrm{df}_1(\kappa)}{N}\Big) = s,
    \qquad \mathrm{df}_1(\kappa) = \sum_k m_k \frac{\lambda_k}{\lambda_k + \kappa},
    \quad \mathrm{df}_2(\kappa) = \sum_k m_k \frac{\lambda_k^2}{(\lambda_k + \kappa)^2}.

``s`` is the per-sample ridge (real, ``>= 0``) for :func:`~theorysim.theory.ridge_risk` and
:func:`~theorysim.theory.random_feature_risk`, and the Laplace variable (complex) for
:func:`~theorysim.theory.scaling_law_dynamics`. ``N = inf`` is ridge regression (THEORY.md 1),
finite ``N`` linear random features (THEORY.md 2), ``P = inf`` the online / population limit.
References: arXiv 2002.02561, 2006.13198, 2405.00592, 2402.01092.

Private, jittable API
---------------------
All functions are pure ``jax.numpy``; call them inside ``jax.enable_x64(True)`` with float64
inputs. ``lam`` and ``mult`` are 1-D of equal length: the eigenvalues and their multiplicities
(weights; ``mult = 1`` for a plain spectrum, Gauss weights for a compressed one, 0 for padding).
Zero eigenvalues are allowed (they do not count in df1/df2).

Tolerance convention (the solver contract): both solvers iterate until their residual is at most
``tol``, then take one more Newton step (quadratic convergence makes that step reach float64
resolution without a second, hidden tolerance), and report the residual of the value they
return; a point is converged when that residual is ``<= tol``.

``spectral_sums(lam, mult, kappa) -> (df1, df2)``
    scalar ``kappa`` (real >= 0, or complex off the negative real axis); vmap it for grids.

``solve_kappa(lam, mult, P, N, ridge, tol, max_iter) -> KappaSolution``
    real root for scalar ``P > 0``, ``N > 0`` (``jnp.inf`` allowed for either) and
    ``ridge >= 0``; vmap over grids. Safeguarded Newton in ``u = log kappa`` inside a bracket,
    in a ``lax.while_loop``. Brackets (THEORY.md 1):
    ``ridge > 0``: ``[ridge, ridge + sum(m lam) (1/P + 1/N)]``; values of u with
    ``df1 >= min(N, P)`` (the unphysical branch, where the spurious roots with
    ``df1 > max(N, P)`` live) count as "below the root".
    ``ridge = 0`` and ``min(N, P) < M_eff`` (number of positive eigenvalues, weighted): the root
    of ``df1 = min(N, P)`` in ``[(M_eff - n) / sum(m / lam), sum(m lam) / n]``.
    ``ridge = 0`` and ``min(N, P) >= M_eff``: ``kappa = 0`` (no iteration, residual 0).
    The residual is the equation's relative defect: ``|kappa a b - ridge| / (kappa + ridge)``
    (``a = 1 - df1/P``, ``b = 1 - df1/N``) for ``ridge > 0``, and ``|log(df1 / min(N, P))|``
    for ``ridge = 0``. The loop also stops when the bracket has shrunk to float64 resolution
    (the residual then says whether ``tol`` was met).

``newton_kappa(lam, mult, P, N, s, kappa0, tol, max_iter) -> NewtonSolution``
    complex (or real) ``s``: Newton in ``kappa`` from the caller's start ``kappa0``
    (continuation along a Laplace contour is the caller's job: start from the solution at a
    nearby ``s``; THEORY.md 3 warns of a spurious root where ``df1 > max(N, P)``).
    ``residual = |g(kappa)| / (|kappa| + |s|)`` with ``g = kappa a b - s``; ``slope`` is
    ``dg / dkappa`` at the returned kappa (the continuation predictor).

``kappa_equation(lam, mult, P, N, s, kappa) -> (g, dg)``
    ``g = kappa a b - s`` and its derivative in ``kappa``.

Public host-side helper
-----------------------
``spectral_edge(lam, mult, P, N) -> x_max`` (NumPy): the top of the deterministic-equivalent
spectrum of :math:`BC` (random features) from the same equation on the negative real axis.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["KAPPA_TOL", "KappaSolution", "NewtonSolution", "kappa_equation", "newton_kappa",
           "solve_kappa", "spectral_edge", "spectral_sums"]

#: default tolerance of the kappa solves (relative defect of the equation)
KAPPA_TOL = 1e-12


class KappaSolution(NamedTuple):
    kappa: jax.Array
    df1: jax.Array
    df2: jax.Array
    residual: jax.Array
    iterations: jax.Array


class NewtonSolution(NamedTuple):
    kappa: jax.Array
    residual: jax.Array
    iterations: jax.Array
    slope: jax.Array


def spectral_sums(lam, mult, kappa):
    """``(df1, df2)`` at one ``kappa``; zero eigenvalues contribute nothing (also at 0)."""
    pos = lam > 0
    s = jnp.where(pos, lam / jnp.where(pos, lam + kappa, 1.0), 0.0)
    return jnp.sum(mult * s), jnp.sum(mult * s * s)


def _inv(n):
    """``1 / n`` with ``n = inf`` giving exactly 0."""
    return jnp.where(jnp.isinf(n), 0.0, 1.0 / jnp.where(jnp.isinf(n), 1.0, n))


def _one_minus(df1, n):
    """``1 - df1 / n`` with ``n = inf`` giving exactly 1."""
    return jnp.where(jnp.isinf(n), 1.0, 1.0 - df1 / jnp.where(jnp.isinf(n), 1.0, n))


def _equation(lam, mult, u, P, N, ridge, n):
    """Increasing function of ``u = log kappa`` vanishing at the root, and its derivative.

    ``ridge > 0``: ``F = kappa (1 - df1/P)(1 - df1/N) - ridge``, convex in ``u`` for ridge
    regression (so Newton from the upper bracket never overshoots), ``-inf`` on the unphysical
    side ``df1 >= n``; scaled by ``1 / (kappa + ridge)`` so ``|F|`` is the relative residual.
    ``ridge = 0``: ``F = log(n) - log(df1)`` (``df1 = n`` in log form, well conditioned).
    """
    kappa = jnp.exp(u)
    df1, df2 = spectral_sums(lam, mult, kappa)
    a = _one_minus(df1, P)
    b = _one_minus(df1, N)
    physical = (a > 0) & (b > 0)
    spread = df1 - df2  # = -d df1 / du >= 0
    scale = kappa + ridge
    F_pos = jnp.where(physical, (kappa * a * b - ridge) / scale, -jnp.inf)
    dF_pos = kappa * (a * b + spread * (b * _inv(P) + a * _inv(N))) / scale
    safe_df1 = jnp.where(df1 > 0, df1, 1.0)
    F_zero = jnp.where(df1 > 0, jnp.log(n) - jnp.log(safe_df1), jnp.inf)
    dF_zero = spread / safe_df1
    F = jnp.where(ridge > 0, F_pos, F_zero)
    dF = jnp.where(ridge > 0, dF_pos, dF_zero)
    return F, dF


def solve_kappa(lam, mult, P, N, ridge, tol=KAPPA_TOL, max_iter: int = 200) -> KappaSolution:
    """Solve the kappa equation at one real ``(P, N, ridge)`` (see the module docstring)."""
    dtype = lam.dtype
    P = jnp.asarray(P, dtype)
    N = jnp.asarray(N, dtype)
    ridge = jnp.asarray(ridge, dtype)
    n = jnp.minimum(P, N)
    pos = lam > 0
    m_eff = jnp.sum(jnp.where(pos, mult, 0.0))
    trace = jnp.sum(mult * lam)
    inv_trace = jnp.sum(jnp.where(pos, mult / jnp.where(pos, lam, 1.0), 0.0))
    zero_kappa = (ridge <= 0) & (n >= m_eff)

    tiny = jnp.finfo(dtype).tiny
    hi_pos = jnp.log(ridge + trace * (_inv(P) + _inv(N)))
    lo_pos = jnp.log(jnp.maximum(ridge, tiny))
    gap = jnp.maximum(m_eff - n, 0.0)
    lo_zero = jnp.log(jnp.maximum(gap / jnp.where(inv_trace > 0, inv_trace, 1.0), tiny))
    hi_zero = jnp.log(jnp.maximum(trace / jnp.where(jnp.isfinite(n), n, 1.0), tiny))
    lo0 = jnp.where(ridge > 0, lo_pos, lo_zero)
    hi0 = jnp.where(ridge > 0, hi_pos, hi_zero)
    eps = jnp.finfo(dtype).eps

    def cond(state):
        _, _, _, it, done = state
        return (~done) & (it < max_iter)

    def body(state):
        u, lo, hi, it, _ = state
        F, dF = _equation(lam, mult, u, P, N, ridge, n)
        hit = jnp.abs(F) <= tol
        hi = jnp.where(F > 0, u, hi)
        lo = jnp.where(F > 0, lo, u)
        u_newton = u - F / jnp.where(dF > 0, dF, 1.0)
        ok = jnp.isfinite(u_newton) & (dF > 0) & (u_newton > lo) & (u_newton < hi)
        # within tol: one more Newton step (the polish), never a bisection
        u_next = jnp.where(ok, u_newton, jnp.where(hit, u, 0.5 * (lo + hi)))
        collapsed = (hi - lo) <= 4 * eps * (1.0 + jnp.abs(u))
        return u_next, lo, hi, it + 1, hit | collapsed

    done0 = zero_kappa | (hi0 <= lo0)
    u0 = jnp.where(done0, lo0, hi0)
    u, _, _, iters, _ = lax.while_loop(cond, body, (u0, lo0, hi0, jnp.asarray(0), done0))
    F, _ = _equation(lam, mult, u, P, N, ridge, n)
    kappa = jnp.where(zero_kappa, 0.0, jnp.exp(u))
    df1, df2 = spectral_sums(lam, mult, kappa)
    res = jnp.where(zero_kappa, 0.0, jnp.abs(F))
    return KappaSolution(kappa, df1, df2, res, iters)


def kappa_equation(lam, mult, P, N, s, kappa):
    """``g = kappa (1 - df1/P)(1 - df1/N) - s`` and ``dg / dkappa`` (complex allowed)."""
    df1, df2 = spectral_sums(lam, mult, kappa)
    a = _one_minus(df1, P)
    b = _one_minus(df1, N)
    d_df1 = -(df1 - df2) / kappa  # d df1 / d kappa
    dg = a * b - kappa * d_df1 * (_inv(P) * b + _inv(N) * a)
    return kappa * a * b - s, dg


def newton_kappa(lam, mult, P, N, s, kappa0, tol=KAPPA_TOL, max_iter: int = 40
                 ) -> NewtonSolution:
    """Newton for ``kappa (1 - df1/P)(1 - df1/N) = s`` from ``kappa0``, complex ``s`` allowed
    (see the module docstring)."""
    P = jnp.asarray(P)
    N = jnp.asarray(N)
    x0 = jnp.asarray(kappa0) + 0 * s
    real = jnp.zeros((), x0.real.dtype)

    def err_of(g, x):
        return jnp.abs(g) / (jnp.abs(s) + jnp.abs(x))

    def cond(state):
        _, it, done = state
        return (~done) & (it < max_iter)

    def body(state):
        x, it, _ = state
        g, dg = kappa_equation(lam, mult, P, N, s, x)
        hit = err_of(g, x) <= tol
        return x - g / dg, it + 1, hit  # within tol: this step is the polish

    x, it, _ = lax.while_loop(cond, body, (x0, jnp.asarray(0), real > 0))
    g, dg = kappa_equation(lam, mult, P, N, s, x)
    return NewtonSolution(x, err_of(g, x), it, dg)


def spectral_edge(lam, mult, P, N) -> np.ndarray:
    r"""Top of the deterministic-equivalent spectrum of :math:`BC` (``B = A^T A/N``,
    ``C = Psi^T Psi/P``; ``P = N = inf``: the top eigenvalue of the population covariance).

    The resolvent of :math:`BC` at ridge :math:`-x` solves the kappa equation with
    :math:`s = -x`; for :math:`x` above the spectrum the physical root is real with
    :math:`\kappa = -y < -\lambda_1`. Writing :math:`q(y) = \sum_k m_k\lambda_k/(y-\lambda_k)`,
    the equation reads :math:`x = f(y) = y(1 + q/P)(1 + q/N)`, and the spectrum ends where that
    map stops being invertible (free-probability edge):

    .. math::
        x_{\max} = \min_{y > \lambda_1} y\Big(1 + \frac{q(y)}{P}\Big)\Big(1 + \frac{q(y)}{N}\Big).

    Gradient descent :math:`v \to (1 - \eta BC)v` is stable iff :math:`\eta < 2/x_{\max}`.
    NumPy float64 over broadcast ``P``, ``N`` (``inf`` allowed): a log grid in
    :math:`y - \lambda_1` (the minimiser lies below :math:`f(2\lambda_1 + 2\,\mathrm{tr})`
    since :math:`f(y) \ge y`), then golden-section refinement (relative accuracy ~1e-12).
    """
    lam = np.asarray(lam, np.float64)
    mult = np.asarray(mult, np.float64)
    keep = (lam > 0) & (mult > 0)
    lam, w = lam[keep], (mult * lam)[keep]
    top, trace = float(np.max(lam)), float(np.sum(w))
    P, N = np.broadcast_arrays(np.asarray(P, np.float64), np.asarray(N, np.float64))
    out = np.empty(P.shape)
    golden = (np.sqrt(5.0) - 1.0) / 2.0
    for idx in np.ndindex(P.shape):
        ip = 0.0 if np.isinf(P[idx]) else 1.0 / P[idx]
        iN = 0.0 if np.isinf(N[idx]) else 1.0 / N[idx]

        def f(u, ip=ip, iN=iN):  # u = log(y - top), 1-D
            y = top + np.exp(u)
            q = (w[:, None] / (y[None, :] - lam[:, None])).sum(0)
            return y * (1.0 + q * ip) * (1.0 + q * iN)

        y0 = 2.0 * top + 2.0 * trace
        bound = max(float(f(np.array([np.log(y0 - top)]))[0]), 2.0 * top)
        grid = np.linspace(np.log(1e-14 * top), np.log(bound - top), 257)
        vals = f(grid)
        j = int(np.clip(np.argmin(vals), 1, grid.size - 2))
        a, b = grid[j - 1], grid[j + 1]
        for _ in range(80):
            c, d = b - golden * (b - a), a + golden * (b - a)
            fc, fd = f(np.array([c, d]))
            a, b = (a, d) if fc < fd else (c, b)
        out[idx] = min(float(f(np.array([0.5 * (a + b)]))[0]), float(vals.min()))
    return out
