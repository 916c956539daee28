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
Conditioning: as :math:`t \\to \\infty` the nodes approach ``s = 0`` and the kappa equation
loses about :math:`\\log_{10}(\\kappa/s)` digits, so keep :math:`t \\lesssim 10^7` times the
slowest relaxation time scale rather than using ``t = 1e12`` for "infinity".
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
    check_increasing,
    check_scalar,
    check_size_grid,
    check_spectrum,
)

__all__ = ["ScalingDynamicsResult", "scaling_law_dynamics"]

_REAL_ITERS = 80
_CPLX_ITERS = 40
_TOL = 1e-13


@dataclasses.dataclass(frozen=True)
class ScalingDynamicsResult:
    """Deterministic-equivalent learning curves of the random-feature gradient-flow model.

    Attributes:
        t: ``(T,)`` times.
        N: ``(nN,)`` widths (``inf`` = kernel limit).
        P: ``(nP,)`` sample counts (``inf`` = online / population gradient flow).
        loss: ``(nN, nP, T)`` test loss :math:`L(t)` against the clean target.
        loss_mean: ``(nN, nP, T)`` loss of the mean (draw-averaged) predictor,
            :math:`\\sum_k \\lambda_k w_k^2 H_k(t)^2` (NaN unless ``modes=True``).
        modes: ``(nN, nP, T, M)`` mean-residual profile :math:`H_k(t)` (``None`` unless asked).
        residual: ``(nN, nP, T)`` worst relative residual of the kappa equation on the contour.
        iterations: ``(nN, nP, T)`` Newton iterations (real root + continuation over all
            nodes) of the contour that served each time.
        nodes: Talbot nodes per dimension.
        converged: whether every residual is below ``1e-10``.
    """

    t: np.ndarray
    N: np.ndarray
    P: np.ndarray
    loss: np.ndarray
    loss_mean: np.ndarray
    modes: np.ndarray | None
    residual: np.ndarray
    iterations: np.ndarray
    nodes: int
    converged: bool


def _talbot(n: int):
    """Unit-r fixed-Talbot nodes and weights on the upper half contour (k = 0..n-1)."""
    theta = np.pi * np.arange(n) / n
    s = np.empty(n, complex)
    c = np.empty(n, complex)
    s[0] = 1.0
    c[0] = 1.0 / (2 * n)
    th = theta[1:]
    cot = 1.0 / np.tan(th)
    s[1:] = th * (cot + 1j)
    sigma = th + (th * cot - 1.0) * cot
    c[1:] = (1.0 + 1j * sigma) / (2 * n)
    return s, c


def _mode_sums(kappa, lam):
    """df1 = sum lam/(lam+kappa) and S2 = sum lam/(lam+kappa)^2 for one kappa."""
    q = lam / (lam + kappa)
    return jnp.sum(q), jnp.sum(q * q / lam)


def _real_root(s, inv_n, inv_p, lam):
    """Physical real root of kappa(1-df1/P)(1-df1/N) = s > 0 by safeguarded Newton.

    Bracket [s, s + sum(lam)(1/N + 1/P)]; points with df1 >= min(N, P) count as below the root,
    which excludes the spurious roots where df1 > max(N, P).
    """
    hi = s + jnp.sum(lam) * (inv_n + inv_p)
    lo = s

    def body(state):
        x0, lo0, hi0, it, err0 = state
        x, lo, hi = x0, lo0, hi0
        d, s2 = _mode_sums(x, lam)
        a = 1.0 - d * inv_p
        b = 1.0 - d * inv_n
        phys = (a > 0) & (b > 0)
        g = x * a * b - s
        above = phys & (g > 0)
        lo = jnp.where(above, lo, x)
        hi = jnp.where(above, x, hi)
        hp = a * b + x * s2 * (inv_p * b + inv_n * a)
        xn = x - g / hp
        ok = phys & (xn >= lo) & (xn <= hi)
        xn = jnp.where(ok, xn, jnp.sqrt(lo * hi))
        err = jnp.where(phys, jnp.abs(g) / (s + x), jnp.inf)
        xn = jnp.where(err <= _TOL, x, xn)  # err belongs to x: return x once it is converged
        # under vmap the loop runs until every point is done: freeze the finished ones
        done = (err0 <= _TOL) | (hi0 - lo0 <= 1e-15 * hi0)
        keep = lambda new, old: jnp.where(done, old, new)
        return (keep(xn, x0), keep(lo, lo0), keep(hi, hi0), it + jnp.where(done, 0, 1),
                keep(err, err0))

    def cond(state):
        _, lo, hi, it, err = state
        return (it < _REAL_ITERS) & (err > _TOL) & (hi - lo > 1e-15 * hi)

    x, _, _, it, _ = jax.lax.while_loop(cond, body, (hi, lo, hi, 0, jnp.inf))
    return x, it


def _newton_complex(x, s, inv_n, inv_p, lam):
    """Newton from ``x`` for complex ``s``; returns kappa, iterations, relative residual and
    the last derivative ``dh/dkappa`` (used as the continuation predictor)."""

    def body(state):
        x, it, err0, hp0 = state
        d, s2 = _mode_sums(x, lam)
        a = 1.0 - d * inv_p
        b = 1.0 - d * inv_n
        g = x * a * b - s
        hp = a * b + x * s2 * (inv_p * b + inv_n * a)
        done = err0 <= _TOL  # under vmap: freeze the finished points
        err = jnp.abs(g) / (jnp.abs(s) + jnp.abs(x))
        return (jnp.where(done, x, x - g / hp), it + jnp.where(done, 0, 1),
                jnp.where(done, err0, err), jnp.where(done, hp0, hp))

    def cond(state):
        _, it, err, _ = state
        return (it < _CPLX_ITERS) & (err > _TOL)

    init = (x, 0, jnp.asarray(jnp.inf, x.real.dtype), jnp.ones_like(x))
    return jax.lax.while_loop(cond, body, init)


def _kappa_on_contour(s_nodes, inv_n, inv_p, lam):
    """kappa_2 at the half-contour nodes, continued from the real node (Euler predictor +
    Newton), which keeps it on the physical branch. Returns kappa, iterations, worst
    residual."""
    k0, it0 = _real_root(s_nodes[0].real, inv_n, inv_p, lam)
    k0 = k0.astype(s_nodes.dtype)
    d, s2 = _mode_sums(k0, lam)
    a, b = 1.0 - d * inv_p, 1.0 - d * inv_n
    hp0 = a * b + k0 * s2 * (inv_p * b + inv_n * a)
    res0 = jnp.abs(k0 * a * b - s_nodes[0]) / (jnp.abs(s_nodes[0]) + jnp.abs(k0))

    def step(carry, s_new):
        x, s_prev, hp = carry
        xn, it, res, hpn = _newton_complex(x + (s_new - s_prev) / hp, s_new, inv_n, inv_p, lam)
        return (xn, s_new, hpn), (xn, it, res)

    _, (ks, its, ress) = jax.lax.scan(step, (k0, s_nodes[0], hp0), s_nodes[1:])
    kappa = jnp.concatenate([k0[None], ks])
    return kappa, it0 + jnp.sum(its), jnp.maximum(res0, jnp.max(ress))


def _contour_solution(r, inv_n, inv_p, lam, lw2, noise2, s_unit, c_unit):
    """Everything one Talbot contour (scale ``r``) needs: the full symmetric node set, the
    weights, the 2-D transform matrix Lhat(s_j, s_k) and the half-node kappa."""
    s = r * s_unit
    kappa2, iters, res = _kappa_on_contour(s, inv_n, inv_p, lam)
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
                   modes):
    """Loss at every time for one (N, P): one contour per time block."""
    sol = jax.vmap(_contour_solution, in_axes=(0,) + (None,) * 7)(
        r_block, inv_n, inv_p, lam, lw2, noise2, s_unit, c_unit)
    sf, cf, lhat, kappa, iters, res = sol
    sf_t, cf_t, lhat_t = sf[block_of], cf[block_of], lhat[block_of]       # per time
    w = cf_t * jnp.exp(sf_t * times[:, None])                              # (T, m)
    loss = jnp.real(jnp.einsum("tj,tjk,tk->t", w, lhat_t, w)) - noise2
    prof = None
    if modes:
        n = s_unit.shape[0]
        s_half = sf[:, :n]
        g = kappa[:, :, None] / (s_half[:, :, None] * (kappa[:, :, None] + lam))  # (B, n, M)
        wh = cf_t[:, :n] * jnp.exp(sf_t[:, :n] * times[:, None])
        wh = wh.at[:, 1:].multiply(2.0)
        # scatter each time's weights into its block instead of gathering (T, n, M) arrays
        onehot = block_of[:, None] == jnp.arange(r_block.shape[0])[None, :]      # (T, B)
        wfull = jnp.where(onehot[:, :, None], wh[:, None, :], 0.0)               # (T, B, n)
        prof = jnp.real(jnp.einsum("tbj,bjm->tm", wfull, g))
    return loss, iters[block_of], res[block_of], prof


@functools.partial(jax.jit, static_argnames=("batch_size", "modes"))
def _solve_pairs(pairs, lam, lw2, noise2, times, r_block, block_of, s_unit, c_unit, *,
                 batch_size, modes):
    def one(row):
        return _pair_solution(row[0], row[1], lam, lw2, noise2, times, r_block, block_of,
                              s_unit, c_unit, modes)

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


def scaling_law_dynamics(
    eigvals: Float[Array, " M"],
    target_power: Float[Array, " M"],
    t: Float[Array, " T"],
    N,
    P,
    noise: float = 0.0,
    *,
    nodes: int = 16,
    time_block: float = 3.0,
    modes: bool = False,
    batch_size: int = 8,
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
    deviation ``noise`` enters the training labels only).

    Args:
        eigvals: ``(M,)`` feature spectrum :math:`\\lambda_k > 0`.
        target_power: ``(M,)`` :math:`\\lambda_k w_k^2 \\ge 0`.
        t: ``(T,)`` strictly increasing positive times.
        N: width(s), scalar or 1-D, each > 0 (``inf`` allowed).
        P: sample count(s), scalar or 1-D, each > 0 (``inf`` allowed).
        noise: label-noise standard deviation :math:`\\sigma \\ge 0` (as in ``ridge_risk``).
        nodes: fixed-Talbot nodes per dimension, 8..32 (16 gives about 1e-9 relative to
            :math:`L(0)`; more nodes lose digits to float64 cancellation).
        time_block: times within this factor of each other share one contour (its scale tuned
            to the block's geometric-mean time); 1 = one contour per time. Must be in [1, 4].
        modes: also return the mean-residual profile :math:`H_k(t)` (memory ``nN*nP*T*M``).
        batch_size: (N, P) pairs solved together (memory about ``batch_size * T * M`` complex).

    Returns:
        :class:`ScalingDynamicsResult`; ``loss`` has shape ``(nN, nP, T)``.

    Example:
        >>> k = np.arange(1, 301.0)
        >>> r = scaling_law_dynamics(k**-1.5, k**-2.0, [10.0], 120, 60)
        >>> round(float(r.loss[0, 0, 0]), 3)
        0.167
    """
    lam, lw2 = check_spectrum(eigvals, target_power, positive=True)
    times = check_increasing("t", t)
    widths, samples = check_size_grid("N", N), check_size_grid("P", P)
    noise2 = check_scalar("noise", noise, lo=0.0, hi=math.inf, hi_open=True) ** 2
    nodes = check_scalar("nodes", nodes, lo=8, hi=32, integer=True)
    time_block = check_scalar("time_block", time_block, lo=1.0, hi=4.0)
    batch_size = check_scalar("batch_size", batch_size, lo=1, integer=True)

    s_unit, c_unit = _talbot(nodes)
    refs, block_of = _time_blocks(times, time_block)
    r_block = 2.0 * nodes / (5.0 * refs)
    pairs = np.stack(np.meshgrid(_inv(widths), _inv(samples), indexing="ij"), -1).reshape(-1, 2)
    with jax.enable_x64(True):
        out = _solve_pairs(
            jnp.asarray(pairs), jnp.asarray(lam), jnp.asarray(lw2), jnp.asarray(noise2),
            jnp.asarray(times), jnp.asarray(r_block), jnp.asarray(block_of),
            jnp.asarray(s_unit), jnp.asarray(c_unit), batch_size=batch_size, modes=modes)
        loss, iters, res, prof = jax.device_get(out)
    shape = (widths.size, samples.size, times.size)
    loss = np.asarray(loss, np.float64).reshape(shape)
    res = np.asarray(res, np.float64).reshape(shape)
    if not np.all(np.isfinite(loss)):
        raise FloatingPointError("scaling_law_dynamics produced non-finite losses; "
                                 f"worst kappa residual {np.nanmax(res):.3g}")
    if prof is not None:
        prof = np.asarray(prof, np.float64).reshape(*shape, lam.size)
        loss_mean = np.sum(lw2 * prof**2, axis=-1)
    else:
        loss_mean = np.full(shape, np.nan)
    return ScalingDynamicsResult(
        t=times, N=widths, P=samples, loss=loss, loss_mean=loss_mean, modes=prof,
        residual=res, iterations=np.asarray(iters).reshape(shape), nodes=nodes,
        converged=bool(np.all(res < 1e-10)),
    )
