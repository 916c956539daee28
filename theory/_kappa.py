"""The self-consistent effective ridge kappa of ridge and random-feature regression.

.. math::

    \\kappa \\Big(1 - \\frac{\\mathrm{df}_1(\\kappa)}{P}\\Big)
           \\Big(1 - \\frac{\\mathrm{df}_1(\\kappa)}{N}\\Big) = \\lambda_{\\rm ridge},
    \\qquad \\mathrm{df}_1(\\kappa) = \\sum_k m_k \\frac{\\lambda_k}{\\lambda_k + \\kappa},
    \\quad \\mathrm{df}_2(\\kappa) = \\sum_k m_k \\frac{\\lambda_k^2}{(\\lambda_k + \\kappa)^2}.

``N = inf`` is ridge regression (THEORY.md 1), finite ``N`` linear random features
(THEORY.md 2), ``P = inf`` the online / population limit. ``ridge`` is per sample (THEORY.md
conventions; a kernel Gram regularised as ``K + ridge' I`` has ``ridge' = P ridge``).
References: arXiv 2002.02561, 2006.13198, 2405.00592, 2402.01092.

Private, jittable API (reused by the scaling-law solver of THEORY.md 3)
-----------------------------------------------------------------------
All functions are pure ``jax.numpy``; call them inside ``jax.enable_x64(True)`` with float64
inputs. ``lam`` and ``mult`` are 1-D of equal length: the eigenvalues and their multiplicities
(weights; ``mult = 1`` for a plain spectrum, Gauss weights for a compressed one, 0 for padding).
Zero eigenvalues are allowed (they do not count in df1/df2).

``spectral_sums(lam, mult, kappa) -> (df1, df2)``
    scalar ``kappa`` (real >= 0, or complex off the negative real axis); vmap it for grids.

``solve_kappa(lam, mult, P, N, ridge, max_iter=200) -> KappaSolution``
    scalar real ``P > 0``, ``N > 0`` (``jnp.inf`` allowed for either) and ``ridge >= 0``;
    vmap over grids. Safeguarded Newton in ``u = log kappa`` inside a bracket, in a
    ``lax.while_loop`` (stops when the relative defect ``|F| <= 32 eps``, or the bracket
    collapses, or after ``max_iter``). Brackets (THEORY.md 1):
    ``ridge > 0``: ``[ridge, ridge + sum(m lam) (1/P + 1/N)]``, values of u with
    ``df1 >= min(N, P)`` (the unphysical branch) count as "below the root".
    ``ridge = 0`` and ``min(N, P) < M_eff`` (number of positive eigenvalues, weighted): the root
    of ``df1 = min(N, P)`` in ``[(M_eff - n) / sum(m / lam), sum(m lam) / n]``.
    ``ridge = 0`` and ``min(N, P) >= M_eff``: ``kappa = 0`` (no iteration).
    Fields: ``kappa``, ``df1``, ``df2`` at the solution, ``residual`` (relative, see
    :func:`relative_residual`), ``iterations``.

``relative_residual(kappa, df1, P, N, ridge)``
    ``|kappa (1 - df1/P)(1 - df1/N) - ridge| / (kappa + ridge)`` (0 when both vanish): the
    equation's defect relative to the size of its terms; for ``ridge = 0`` it is
    ``|(1 - df1/P)(1 - df1/N)|``.

``newton_kappa(lam, mult, P, N, s, kappa0, n_iter=40) -> (kappa, residual)``
    complex (or real) ``s``: plain Newton in ``kappa`` from the caller's start ``kappa0`` for a
    fixed number of steps (continuation along a Laplace contour is the caller's job: start from
    the solution at a nearby ``s``; THEORY.md 3 warns of a spurious root where
    ``df1 > max(N, P)``). ``residual = |g(kappa)| / (|kappa| + |s|)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["KappaSolution", "newton_kappa", "relative_residual", "solve_kappa",
           "spectral_sums"]


class KappaSolution(NamedTuple):
    kappa: jax.Array
    df1: jax.Array
    df2: jax.Array
    residual: jax.Array
    iterations: jax.Array


def spectral_sums(lam, mult, kappa):
    """``(df1, df2)`` at one ``kappa``; zero eigenvalues contribute nothing (also at 0)."""
    pos = lam > 0
    s = jnp.where(pos, lam / jnp.where(pos, lam + kappa, 1.0), 0.0)
    return jnp.sum(mult * s), jnp.sum(mult * s * s)


def _one_minus(df1, n):
    """``1 - df1 / n`` with ``n = inf`` giving exactly 1."""
    return jnp.where(jnp.isinf(n), 1.0, 1.0 - df1 / jnp.where(jnp.isinf(n), 1.0, n))


def relative_residual(kappa, df1, P, N, ridge):
    """``|kappa (1 - df1/P)(1 - df1/N) - ridge| / (kappa + ridge)``; 0 when both vanish."""
    factor = _one_minus(df1, P) * _one_minus(df1, N)
    scale = kappa + ridge
    safe = jnp.where(scale > 0, scale, 1.0)
    return jnp.where(scale > 0, jnp.abs(kappa * factor - ridge) / safe, 0.0)


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

    def inv(m):  # 1 / m, 0 for m = inf
        return jnp.where(jnp.isinf(m), 0.0, 1.0 / jnp.where(jnp.isinf(m), 1.0, m))

    scale = kappa + ridge
    F_pos = jnp.where(physical, (kappa * a * b - ridge) / scale, -jnp.inf)
    dF_pos = kappa * (a * b + spread * (b * inv(P) + a * inv(N))) / scale
    safe_df1 = jnp.where(df1 > 0, df1, 1.0)
    F_zero = jnp.where(df1 > 0, jnp.log(n) - jnp.log(safe_df1), jnp.inf)
    dF_zero = spread / safe_df1
    F = jnp.where(ridge > 0, F_pos, F_zero)
    dF = jnp.where(ridge > 0, dF_pos, dF_zero)
    return F, dF


def solve_kappa(lam, mult, P, N, ridge, max_iter: int = 200) -> KappaSolution:
    """Solve the kappa equation at one ``(P, N, ridge)`` (see the module docstring)."""
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

    inv_n = jnp.where(jnp.isinf(P), 0.0, 1.0 / P) + jnp.where(jnp.isinf(N), 0.0, 1.0 / N)
    tiny = jnp.finfo(dtype).tiny
    hi_pos = jnp.log(ridge + trace * inv_n)
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
        tol = 32 * eps * jnp.where(ridge > 0, 1.0, 1.0 + jnp.abs(u))
        hit = jnp.abs(F) <= tol
        hi = jnp.where(F > 0, u, hi)
        lo = jnp.where(F > 0, lo, u)
        step = F / jnp.where(dF > 0, dF, 1.0)
        u_newton = u - step
        ok = jnp.isfinite(u_newton) & (dF > 0) & (u_newton > lo) & (u_newton < hi)
        u_next = jnp.where(ok, u_newton, 0.5 * (lo + hi))
        collapsed = (hi - lo) <= 4 * eps * (1.0 + jnp.abs(u))
        u_out = jnp.where(hit, u, u_next)
        return u_out, lo, hi, it + 1, hit | collapsed

    done0 = zero_kappa | (hi0 <= lo0)
    u0 = jnp.where(done0, lo0, hi0)
    u, _, _, iters, _ = lax.while_loop(cond, body, (u0, lo0, hi0, jnp.asarray(0), done0))
    kappa = jnp.where(zero_kappa, 0.0, jnp.exp(u))
    df1, df2 = spectral_sums(lam, mult, kappa)
    res = relative_residual(kappa, df1, P, N, ridge)
    return KappaSolution(kappa, df1, df2, res, iters)


def newton_kappa(lam, mult, P, N, s, kappa0, n_iter: int = 40):
    """Fixed-step Newton for ``kappa (1 - df1/P)(1 - df1/N) = s``, complex ``s`` allowed."""
    P = jnp.asarray(P)
    N = jnp.asarray(N)

    def g_and_dg(k):
        df1, df2 = spectral_sums(lam, mult, k)
        a = _one_minus(df1, P)
        b = _one_minus(df1, N)
        d_df1 = -(df1 - df2) / k  # d df1 / d kappa
        inv_P = jnp.where(jnp.isinf(P), 0.0, 1.0 / P)
        inv_N = jnp.where(jnp.isinf(N), 0.0, 1.0 / N)
        dg = a * b - k * d_df1 * (inv_P * b + inv_N * a)
        return k * a * b - s, dg

    def body(_, k):
        g, dg = g_and_dg(k)
        return k - g / dg

    kappa = lax.fori_loop(0, n_iter, body, jnp.asarray(kappa0) + 0 * s)
    g, _ = g_and_dg(kappa)
    return kappa, jnp.abs(g) / (jnp.abs(kappa) + jnp.abs(s))
