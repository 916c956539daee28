"""Dynamical model of neural scaling laws: random features trained by gradient flow.

Bordelon, Atanasov, Pehlevan 2024 (arXiv 2402.01092); THEORY.md section 3.

The student :math:`f(x) = w \\cdot A\\psi(x)/\\sqrt{N}` (``A`` in :math:`R^{N\\times M}` iid
:math:`N(0,1)`) is trained from :math:`w = 0` by gradient flow on the P-sample squared loss
:math:`\\frac{1}{2P}\\sum_\\mu (f(x_\\mu) - y_\\mu)^2`. The residual
:math:`v(t) = w^* - A^\\top w(t)/\\sqrt N` obeys :math:`\\dot v = -BCv` with
:math:`B = A^\\top A/N`, :math:`C = \\Psi^\\top\\Psi/P`, and the test loss is
:math:`L(t) = v^\\top\\Lambda v` (clean target). Its deterministic equivalent is known in the
Laplace domain (variable ``s``): with :math:`\\kappa_2(s)` the physical root of

.. math::
    \\kappa_2 (1 - \\mathrm{df}_1(\\kappa_2)/P)(1 - \\mathrm{df}_1(\\kappa_2)/N) = s,

:math:`\\kappa_1 = \\kappa_2(1 - \\mathrm{df}_1/N)`,
:math:`T = \\sum \\lambda w^2\\kappa_2/(\\kappa_2+\\lambda)`,
:math:`R = \\sum \\kappa_2/(\\kappa_2+\\lambda)`,
:math:`E_\\infty(s_1,s_2) = [\\kappa_1(s_2)T(s_1) - \\kappa_1(s_1)T(s_2)]
/(\\kappa_1(s_2)-\\kappa_1(s_1))`,
:math:`RR` the same with :math:`R` for :math:`T`,
:math:`\\gamma(s_1,s_2) = [M - R(s_1) - R(s_2) + RR(s_1,s_2)]/P`,

.. math::
    \\hat L(s_1, s_2) = \\frac{E_\\infty(s_1, s_2) + \\sigma^2}{(1 - \\gamma(s_1, s_2))\\, s_1 s_2},

and :math:`L(t)` is the two-dimensional inverse Laplace transform at :math:`t_1 = t_2 = t`.
The mean residual is :math:`\\langle v_k\\rangle(t) = H_k(t) w^*_k`, with
:math:`H_k(s) = \\kappa_2(s)/(s(\\kappa_2(s) + \\lambda_k))`.

Inversion: the fixed Talbot rule (Abate & Valko 2004) with ``n`` nodes on the contour
:math:`s = r\\theta(\\cot\\theta + i)`, :math:`r = 2n/(5t)`, applied in each variable (a
product rule for the 2-D inverse; the diagonal node pairs use the analytic limit of the
difference quotients). :math:`\\kappa_2` is solved by safeguarded Newton at the real node and
continued along the contour (predictor + Newton), which keeps it on the physical branch (the
spurious roots with :math:`\\mathrm{df}_1 > \\max(N, P)` are never visited). Times within a
factor ``time_block`` share one contour (tuned to the block's geometric-mean time), which cuts
the kappa solves by the block size at ~1e-8 relative cost in accuracy.
Conditioning: as :math:`t \\to \\infty` the nodes approach ``s = 0``; the difference
quotients of :math:`\\kappa_1` across node pairs then cancel to a relative precision of about
:math:`\\epsilon\\,\\kappa/|s|`, and the Talbot sum (weights up to :math:`e^{2n/5}` per dimension)
amplifies that: measured at ``N = 200, P = 20, M = 2000`` the loss at ``t = 1e12`` is 0.2% /
3.6% / 44% off at 12 / 16 / 20 nodes, while every kappa solve meets its ``1e-12`` tolerance.
The kappa residual therefore cannot certify the inversion; each call also inverts with
``nodes - 4`` nodes and reports the difference as ``point_inversion_error`` (relative to
:math:`L(0)`; it estimates the coarser rule's truncation error where truncation dominates, and
the finer rule's cancellation error where that dominates, which grows with the node count), and
a point is converged only if it is below ``inversion_tol``. ``t = inf`` (``np.inf`` as the last
time) is the exact limit: gradient flow from ``w = 0`` ends at the minimum-norm least-squares
solution, so :math:`L(\\infty)` is the ridgeless random-feature risk
(:func:`~theorysim.theory.random_feature_risk` at ``ridge = 0``, the same kappa solver).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from theorysim.checks import (
    as_finite_array,
    check_bool,
    check_increasing,
    check_scalar,
    check_size_grid,
    check_spectrum,
)
from theorysim.contract import check_throw, finish

from ._kappa import KAPPA_TOL, kappa_equation, newton_kappa, solve_kappa
from ._random_features import random_feature_risk
from ._ridge import check_noise

__all__ = ["ScalingDynamicsResult", "scaling_law_dynamics"]



@dataclasses.dataclass(frozen=True)
class ScalingDynamicsResult:
    """Deterministic-equivalent learning curves of the random-feature gradient-flow model.

    Attributes:
        t: ``(T,)`` the times evaluated (the time-grid convention of :mod:`theorysim.theory`);
            a last ``inf`` is the closed-form limit.
        N: ``(nN,)`` widths (``inf`` = kernel limit).
        P: ``(nP,)`` sample counts (``inf`` = online / population gradient flow).
        loss: ``(nN, nP, T)`` test loss :math:`L(t)` against the clean target.
        loss_mean: ``(nN, nP, T)`` loss of the mean (draw-averaged) predictor,
            :math:`\\sum_k \\lambda_k w_k^2 H_k(t)^2` (``None`` unless ``modes=True``).
        modes: ``(nN, nP, T, M)`` mean-residual profile :math:`H_k(t)` (``None`` unless asked).
        point_residual: ``(nN, nP, T)`` worst relative residual of the kappa equation on the
            contour that served each time (``t = inf``: of the ridgeless kappa solve).
        point_inversion_error: ``(nN, nP, T)`` estimated error of the inverse Laplace transform,
            ``|L_n(t) - L_{n-4}(t)| / L(0)`` (``n`` = ``nodes``; 0 at ``t = inf``).
        point_iterations: ``(nN, nP, T)`` Newton iterations (real root + continuation over all
            nodes) of that contour.
        nodes: Talbot nodes per dimension.
        converged: every ``point_residual <= tol`` (the tolerance the kappa solves iterate to),
            every ``point_inversion_error <= inversion_tol``, the loss finite and not clearly
            negative (a failed inversion).
        residual, iterations: the worst kappa residual and most iterations over the grid (the
            solver contract, :mod:`theorysim.contract`).
        inversion_error: the worst ``point_inversion_error``.
    """

    #: ``inf`` widths / sample counts / time are the documented limits (the ridgeless loss at
    #: ``t = inf`` is ``inf`` only at the interpolation threshold ``N = P < M``: flagged)
    _allow_inf = ("N", "P", "t")

    t: np.ndarray
    N: np.ndarray
    P: np.ndarray
    loss: np.ndarray
    loss_mean: np.ndarray | None
    modes: np.ndarray | None
    point_residual: np.ndarray
    point_iterations: np.ndarray
    point_inversion_error: np.ndarray
    nodes: int
    converged: bool
    residual: float
    iterations: int
    inversion_error: float


def _talbot(n: int):
    """Unit-r fixed-Talbot nodes and weights on the upper half contour (k = 0..n-1)."""
    return _talbot_at(np.pi * np.arange(n) / n, n)


def _talbot_at(theta: np.ndarray, n: int):
    """The fixed-Talbot contour point and the ``n``-node rule's weight at angles ``theta``."""
    s = np.empty(theta.size, complex)
    c = np.empty(theta.size, complex)
    s[0] = 1.0
    c[0] = 1.0 / (2 * n)
    th = theta[1:]
    cot = 1.0 / np.tan(th)
    s[1:] = th * (cot + 1j)
    sigma = th + (th * cot - 1.0) * cot
    c[1:] = (1.0 + 1j * sigma) / (2 * n)
    return s, c


def _padded_talbot(n: int, size: int):
    """The ``n``-node rule padded to ``size`` half-contour nodes with zero-weight nodes.

    The pads sit on the contour halfway between the rule's first nodes (so the continuation of
    kappa along the contour still meets the nodes in order, and no two nodes coincide, which
    keeps every difference quotient of the 2-D transform finite); their weight is exactly 0, so
    the padded sum is the ``n``-node sum. With it, the ``nodes`` rule and the ``nodes - 4``
    error-estimate rule have one shape and run as one compiled program.
    """
    theta = np.pi * np.arange(n) / n
    extra = size - n
    pads = np.pi * (np.arange(extra) + 0.5) / n
    order = np.argsort(np.concatenate([theta, pads]), kind="stable")
    s, c = _talbot_at(np.concatenate([theta, pads])[order], n)
    c[np.concatenate([np.zeros(n, bool), np.ones(extra, bool)])[order]] = 0.0
    return s, c


def _kappa_on_contour(s_nodes, N, P, lam, tol, max_iter):
    """kappa_2 at the half-contour nodes: the real root at the real node
    (:func:`~theorysim.theory._kappa.solve_kappa`), continued along the contour (Euler
    predictor + :func:`~theorysim.theory._kappa.newton_kappa`), which keeps it on the physical
    branch. Returns kappa, iterations (all nodes) and the worst residual."""
    mult = jnp.ones_like(lam)
    real = solve_kappa(lam, mult, P, N, s_nodes[0].real, tol, max_iter)
    k0 = real.kappa.astype(s_nodes.dtype)
    _, hp0 = kappa_equation(lam, mult, P, N, s_nodes[0], k0)

    def step(carry, s_new):
        x, s_prev, hp = carry
        sol = newton_kappa(lam, mult, P, N, s_new, x + (s_new - s_prev) / hp, tol, max_iter)
        return (sol.kappa, s_new, sol.slope), (sol.kappa, sol.iterations, sol.residual)

    _, (ks, its, ress) = jax.lax.scan(step, (k0, s_nodes[0], hp0), s_nodes[1:])
    kappa = jnp.concatenate([k0[None], ks])
    return kappa, real.iterations + jnp.sum(its), jnp.maximum(real.residual, jnp.max(ress))


def _contour_solution(r, inv_n, inv_p, lam, lw2, noise2, s_unit, c_unit, tol, max_iter):
    """Everything one Talbot contour (scale ``r``) needs: the full symmetric node set, the
    weights, the 2-D transform matrix Lhat(s_j, s_k) and the half-node kappa."""
    s = r * s_unit
    kappa2, iters, res = _kappa_on_contour(s, 1.0 / inv_n, 1.0 / inv_p, lam, tol, max_iter)
    inv = 1.0 / (lam[None, :] + kappa2[:, None])                # (n, M)
    q = lam[None, :] * inv
    d = jnp.sum(q, axis=1)
    s2 = jnp.sum(q * inv, axis=1)
    big_t = jnp.sum(lw2[None, :] * kappa2[:, None] * inv, axis=1)
    t_der = jnp.sum(lw2[None, :] * q * inv, axis=1)              # dT/dkappa2
    kappa1 = kappa2 * (1.0 - d * inv_n)
    k1_der = 1.0 - d * inv_n + kappa2 * s2 * inv_n               # dkappa1/dkappa2

    def full(z):  # nodes k = 0, 1..n-1, then the conjugates of 1..n-1
        return jnp.concatenate([z, jnp.conj(z[1:])])

    sf, cf = full(s), full(r * c_unit)
    k1f, tf, df_ = full(kappa1), full(big_t), full(d)
    # analytic diagonal limits of the difference quotients:
    # E(s, s) = T - k1 T'/k1',  DD(s, s) = d + k1 S2/k1'
    e_diag = full(big_t - kappa1 * t_der / k1_der)
    dd_diag = full(d + kappa1 * s2 / k1_der)
    k1a, k1b = k1f[:, None], k1f[None, :]
    eye = jnp.eye(sf.shape[0], dtype=bool)
    denom = jnp.where(eye, 1.0, k1b - k1a)
    e_inf = jnp.where(eye, e_diag[:, None], (k1b * tf[:, None] - k1a * tf[None, :]) / denom)
    dd = jnp.where(eye, dd_diag[:, None], (k1b * df_[:, None] - k1a * df_[None, :]) / denom)
    gamma = (df_[:, None] + df_[None, :] - dd) * inv_p
    lhat = (e_inf + noise2) / ((1.0 - gamma) * sf[:, None] * sf[None, :])
    return sf, cf, lhat, kappa2, iters, res


def _pair_solution(inv_n, inv_p, lam, lw2, noise2, times, r_block, block_of, s_unit, c_unit,
                   tol, modes, max_iter):
    """Loss at every time for one (N, P): one contour per time block, for the ``nodes`` rule
    (blocks ``0..B-1``, ``s_unit[0]``) and the padded ``nodes - 4`` rule (blocks ``B..2B-1``,
    ``s_unit[1]``) in one program."""
    n_block = r_block.shape[0] // 2
    rule = jnp.arange(2 * n_block) // n_block
    sol = jax.vmap(_contour_solution, in_axes=(0,) + (None,) * 5 + (0, 0) + (None,) * 2)(
        r_block, inv_n, inv_p, lam, lw2, noise2, s_unit[rule], c_unit[rule], tol, max_iter)
    sf, cf, lhat, kappa, iters, res = sol

    def loss_of(blocks):
        sf_t, cf_t, lhat_t = sf[blocks], cf[blocks], lhat[blocks]       # per time
        w = cf_t * jnp.exp(sf_t * times[:, None])                              # (T, m)
        return jnp.real(jnp.einsum("tj,tjk,tk->t", w, lhat_t, w)) - noise2

    loss, coarse = loss_of(block_of), loss_of(block_of + n_block)
    iters = jnp.maximum(iters[block_of], iters[block_of + n_block])
    res = jnp.maximum(res[block_of], res[block_of + n_block])
    prof = None
    if modes:
        n = s_unit.shape[1]
        s_half = sf[:n_block, :n]
        kap = kappa[:n_block]
        g = kap[:, :, None] / (s_half[:, :, None] * (kap[:, :, None] + lam))  # (B, n, M)
        cf_t, sf_t = cf[block_of], sf[block_of]
        wh = cf_t[:, :n] * jnp.exp(sf_t[:, :n] * times[:, None])
        wh = wh.at[:, 1:].multiply(2.0)
        # scatter each time's weights into its block instead of gathering (T, n, M) arrays
        onehot = block_of[:, None] == jnp.arange(n_block)[None, :]               # (T, B)
        wfull = jnp.where(onehot[:, :, None], wh[:, None, :], 0.0)               # (T, B, n)
        prof = jnp.real(jnp.einsum("tbj,bjm->tm", wfull, g))
    return loss, coarse, iters, res, prof


@functools.partial(jax.jit, static_argnames=("batch_size", "modes"))
def _solve_pairs(pairs, lam, lw2, noise2, times, r_block, block_of, s_unit, c_unit, tol,
                 max_iter, *, batch_size, modes):
    def one(row):
        return _pair_solution(row[0], row[1], lam, lw2, noise2, times, r_block, block_of,
                              s_unit, c_unit, tol, modes, max_iter)

    return jax.lax.map(one, pairs, batch_size=min(batch_size, pairs.shape[0]))


def _time_blocks(times: np.ndarray, ratio: float):
    """Group sorted times into blocks spanning at most ``ratio``; each block's contour is
    tuned for the geometric mean of its first and last time."""
    block_of = np.empty(times.size, np.int64)
    refs = []
    start = 0
    for i, ti in enumerate(times):
        if ti > times[start] * ratio * (1 + 1e-12):
            refs.append(math.sqrt(times[start] * times[i - 1]))
            start = i
        block_of[i] = len(refs)
    refs.append(math.sqrt(times[start] * times[-1]))
    return np.asarray(refs), block_of


def _inv(x: np.ndarray) -> np.ndarray:
    return np.where(np.isinf(x), 0.0, 1.0 / np.where(np.isinf(x), 1.0, x))


#: memory cap of the ``modes=True`` profile (bytes); above it the call is refused up front
MODES_MAX_BYTES = 4 * 2**30
#: accepted times: the Talbot nodes ``s ~ nodes / t`` and the products ``s1 s2`` of the 2-D
#: inverse stay inside the float64 range
T_RANGE = (1e-150, 1e150)
#: a loss below ``-INVERSION_SLACK * L(0)`` marks the inversion as failed (not converged)
INVERSION_SLACK = 1e-4


def _check_times(t) -> np.ndarray:
    """Strictly increasing positive times in :data:`T_RANGE`, optionally ending with ``inf``."""
    times = as_finite_array("t", np.atleast_1d(t), ndim=1, positive=True, allow_inf=True,
                            min_size=1)
    finite = times[np.isfinite(times)]
    if finite.size < times.size - 1 or (finite.size < times.size and np.isfinite(times[-1])):
        raise ValueError("t may hold inf only once, as its last entry (the t -> inf limit)")
    if finite.size:
        check_increasing("t", finite)
    if finite.size and (finite[0] < T_RANGE[0] or finite[-1] > T_RANGE[1]):
        raise ValueError(f"t must lie in [{T_RANGE[0]:g}, {T_RANGE[1]:g}] or be inf (the Laplace "
                         f"contour leaves the float64 range), got {finite[0]:g} .. "
                         f"{finite[-1]:g}")
    return times


def scaling_law_dynamics(
    eigvals: Float[Array, " M"],
    target_power: Float[Array, " M"],
    P,
    N,
    t: Float[Array, " T"],
    noise: float = 0.0,
    *,
    nodes: int = 16,
    time_block: float = 3.0,
    modes: bool = False,
    batch_size: int = 8,
    tol: float = KAPPA_TOL,
    inversion_tol: float = 1e-5,
    max_iter: int = 80,
    throw: bool = True,
) -> ScalingDynamicsResult:
    """Test loss of a random-feature model trained by gradient flow (deterministic equivalent).

    .. math::
        L(t) = \\mathcal{L}^{-1}_{s_1, s_2}\\left[\\frac{E_\\infty(s_1,s_2) + \\sigma^2}
        {(1-\\gamma(s_1,s_2))\\, s_1 s_2}\\right](t, t) - \\sigma^2

    (THEORY.md 3; Bordelon, Atanasov, Pehlevan 2024, arXiv 2402.01092). Regime: proportional
    asymptotics (``N``, ``P``, ``M`` large at fixed ratios), Gaussian-equivalent features;
    gradient flow :math:`dw/dt = -\\nabla_w \\frac{1}{2P}\\sum_\\mu (f - y)^2` from ``w = 0``,
    i.e. :math:`\\dot v = -BCv`. ``P = inf`` gives online (population) gradient flow, ``N = inf``
    the kernel limit. The loss is measured against the clean target (label noise of standard
    deviation ``noise`` enters the training labels only). Times follow the convention of
    :mod:`theorysim.theory`: ``loss[..., i]`` is at ``t[i]``, returned as ``result.t``.
    ``t = inf`` (``np.inf`` as the last time) is the end point of the flow, the minimum-norm
    least-squares solution: :math:`L(\\infty)` is the ridgeless random-feature risk
    (:func:`~theorysim.theory.random_feature_risk` at ``ridge = 0``; ``inf`` at the
    interpolation threshold ``N = P < M``) and :math:`H_k(\\infty) = \\kappa_2^*/(\\kappa_2^* +
    \\lambda_k)` with :math:`\\mathrm{df}_1(\\kappa_2^*) = \\min(N, P)`. Use it instead of a
    huge finite time: the inversion loses accuracy as :math:`t \\to \\infty` (module docstring),
    which ``point_inversion_error`` reports.

    Args:
        eigvals: ``(M,)`` feature spectrum :math:`\\lambda_k > 0`.
        target_power: ``(M,)`` :math:`\\lambda_k w_k^2 \\ge 0`.
        P: sample count(s), scalar or 1-D, each > 0 (``inf`` allowed).
        N: width(s), scalar or 1-D, each > 0 (``inf`` allowed).
        t: ``(T,)`` strictly increasing positive times in :data:`T_RANGE` (``1e-150..1e150``;
            accuracy is lost long before the upper end, see the module docstring), optionally
            ending with ``inf``.
        noise: label-noise standard deviation :math:`\\sigma \\ge 0` (as in ``ridge_risk``).
        nodes: fixed-Talbot nodes per dimension, 8..32 (16 gives about 1e-9 relative to
            :math:`L(0)`; more nodes lose digits to float64 cancellation). The error estimate
            also inverts with ``nodes - 4`` nodes, padded to ``nodes`` and run in the same
            compiled program (about 2x the work of one rule, half the compile time of two).
        time_block: times within this factor of each other share one contour (its scale tuned
            to the block's geometric-mean time); 1 = one contour per time. Must be in [1, 4].
        modes: also return the mean-residual profile :math:`H_k(t)` (memory ``nN*nP*T*M``
            floats, refused above :data:`MODES_MAX_BYTES`: split the call).
        batch_size: (N, P) pairs solved together (memory about ``batch_size * T * M`` complex).
        tol: tolerance on the relative residual of every kappa solve on the contours.
        inversion_tol: tolerance on ``point_inversion_error`` (relative to :math:`L(0)`).
            The estimate is conservative where truncation dominates (it measures the
            ``nodes - 4`` rule: 2.5e-6 at 12 nodes, 2e-7 at 16, for a 12-node or 16-node result
            accurate to ~1e-8 / ~1e-9), so the default 1e-5 passes 12..24 nodes at ordinary
            times and flags the large-``t`` failures (3e-3 at ``t = 1e12`` in the example of
            the module docstring).
        max_iter: cap on the Newton steps of each kappa solve (real root and each node).
        throw: raise :class:`~theorysim.ConvergenceError` when a kappa solve missed ``tol``,
            the inversion missed ``inversion_tol`` or the loss is not finite; ``False`` returns
            the result flagged.

    Returns:
        :class:`ScalingDynamicsResult`; ``loss`` has shape ``(nN, nP, T)``.

    Example:
        >>> k = np.arange(1, 301.0)
        >>> r = scaling_law_dynamics(k**-1.5, k**-2.0, P=60, N=120, t=[10.0, np.inf])
        >>> np.round(r.loss[0, 0], 3).tolist(), r.converged
        ([0.167, 0.096], True)
    """
    lam, lw2 = check_spectrum(eigvals, target_power, positive=True)
    samples, widths = check_size_grid("P", P), check_size_grid("N", N)
    times = _check_times(t)
    noise = check_noise(noise)
    noise2 = noise**2
    nodes = check_scalar("nodes", nodes, lo=8, hi=32, integer=True)
    time_block = check_scalar("time_block", time_block, lo=1.0, hi=4.0)
    modes = check_bool("modes", modes)
    batch_size = check_scalar("batch_size", batch_size, lo=1, hi=4096, integer=True)
    tol = check_scalar("tol", tol, lo=0.0, lo_open=True, hi=1.0, hi_open=True)
    inversion_tol = check_scalar("inversion_tol", inversion_tol, lo=0.0, lo_open=True,
                                 hi=1.0)
    max_iter = check_scalar("max_iter", max_iter, lo=1, hi=10_000, integer=True)
    throw = check_throw(throw)
    if modes:
        need = 8.0 * widths.size * samples.size * times.size * lam.size
        if need > MODES_MAX_BYTES:
            raise ValueError(
                f"modes=True needs {need / 2**30:.1f} GiB for the (nN, nP, T, M) = "
                f"({widths.size}, {samples.size}, {times.size}, {lam.size}) profile, above "
                f"{MODES_MAX_BYTES / 2**30:.0f} GiB: pass modes=False or split N, P or t "
                "over several calls")

    shape = (widths.size, samples.size)
    finite = times[np.isfinite(times)]
    pairs = np.stack(np.meshgrid(_inv(widths), _inv(samples), indexing="ij"), -1).reshape(-1, 2)
    parts = []  # (loss, residual, iterations, profile, inversion error) over time
    if finite.size:
        refs, block_of = _time_blocks(finite, time_block)

        s_fine, c_fine = _talbot(nodes)
        s_coarse, c_coarse = _padded_talbot(nodes - 4, nodes)
        r_fine, r_coarse = 2.0 * nodes / (5.0 * refs), 2.0 * (nodes - 4) / (5.0 * refs)
        with jax.enable_x64(True):
            out = _solve_pairs(
                jnp.asarray(pairs), jnp.asarray(lam), jnp.asarray(lw2), jnp.asarray(noise2),
                jnp.asarray(finite), jnp.asarray(np.concatenate([r_fine, r_coarse])),
                jnp.asarray(block_of), jnp.asarray(np.stack([s_fine, s_coarse])),
                jnp.asarray(np.stack([c_fine, c_coarse])), jnp.asarray(tol),
                jnp.asarray(max_iter), batch_size=batch_size, modes=modes)
            loss, coarse, iters, res, prof = jax.device_get(out)
        loss = np.asarray(loss, np.float64).reshape(*shape, -1)
        coarse = np.asarray(coarse, np.float64).reshape(*shape, -1)
        res = np.asarray(res, np.float64).reshape(*shape, -1)
        iters = np.asarray(iters).reshape(*shape, -1)
        if prof is not None:
            prof = np.asarray(prof, np.float64).reshape(*shape, finite.size, lam.size)
        err = np.abs(loss - coarse) / np.sum(lw2)
        parts.append((loss, res, iters, prof,
                      np.where(np.isfinite(err), err, np.inf)))
    if finite.size < times.size:
        end = random_feature_risk(lam, lw2, samples[None, :], widths[:, None], 0.0, noise,
                                  tol=tol, max_iter=max(int(max_iter), 200), throw=False)
        kappa = np.broadcast_to(end.kappa, shape)
        prof = (kappa[..., None, None] / (kappa[..., None, None] + lam) if modes else None)
        parts.append((np.asarray(end.error, np.float64)[..., None],
                      np.asarray(end.point_residual, np.float64)[..., None],
                      np.asarray(end.point_iterations)[..., None], prof, np.zeros((*shape, 1))))
    loss, res, iters, prof, inv_err = (
        None if parts[0][k] is None else np.concatenate([p[k] for p in parts], axis=2)
        for k in range(5))
    loss_mean = None if prof is None else np.sum(lw2 * prof**2, axis=-1)
    finite_res = np.where(np.isfinite(res), res, np.inf)
    # the loss is >= 0; a clearly negative value means the inversion failed (its error is
    # ~1e-9 L(0) at 16 nodes), even where every kappa solve met tol
    inverted = not np.any(loss < -INVERSION_SLACK * np.sum(lw2))
    accurate = bool(np.all(inv_err <= inversion_tol))
    result = ScalingDynamicsResult(
        t=times, N=widths, P=samples, loss=loss, loss_mean=loss_mean, modes=prof,
        point_residual=res, point_iterations=iters, point_inversion_error=inv_err,
        nodes=nodes, converged=bool(np.all(res <= tol)) and inverted and accurate,
        residual=float(np.max(finite_res)), iterations=int(np.max(iters)),
        inversion_error=float(np.max(inv_err)),
    )
    why = "" if inverted else "the inverse Laplace transform failed (negative loss); "
    if not accurate:
        why += (f"the inversion error estimate {float(np.max(inv_err)):.3g} exceeds "
                f"inversion_tol={inversion_tol:g} (times far beyond the slowest relaxation: "
                "use t = inf for the limit, fewer nodes, or raise inversion_tol); ")
    return finish(result, throw=throw, solver="scaling_law_dynamics",
                  hint=why + "times far beyond the slowest relaxation (t >~ 1e7 / lambda_min) "
                  "lose digits as the contour nears s = 0; raise max_iter or tol, or pass "
                  "throw=False to inspect the flagged result")
