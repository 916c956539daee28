r"""Time-domain DMFT of the random-feature model trained by discrete-time gradient descent.

The same model as :mod:`theorysim.theory._scaling_dynamics` (Bordelon, Atanasov, Pehlevan 2024,
arXiv 2402.01092; THEORY.md 3): residual :math:`v_{n+1} = v_n - \eta BCv_n`, ``v_0 = w*``,
:math:`B = A^\top A/N`, :math:`C = \Psi^\top\Psi/P`, test loss :math:`L_n = v_n^\top\Lambda v_n`.
Instead of the Laplace domain, the dynamical mean-field theory is solved on the step grid.

Single-site equations. Each random matrix (``Psi`` with ``P`` rows, ``A`` with ``N`` rows)
contributes a Gaussian field and a response term. For mode ``k``,

.. math::
    v_k = w^*_k\,G_k\mathbf 1 - G_k I\,\eta^A_k - \sqrt{\lambda_k}\,G_k I R_p\,\eta^Z_k,
    \qquad G_k = (1 + \lambda_k I R_p R_d)^{-1},

where ``I`` is the step sum :math:`(Ix)_n = \eta\sum_{m<n}x_m`, and the response operators
:math:`R_d = (1-R_b)^{-1}`, :math:`R_p = (1-R_m)^{-1}` close through

.. math::
    R_b = -\frac1P\sum_k\lambda_k G_k I R_p,\qquad R_m = -\frac1N\sum_k\lambda_k G_k I R_d.

The dynamics are time-translation invariant, so every response operator is a causal
convolution (lower-triangular Toeplitz): they commute, and since each depends only on earlier
lags they are solved exactly by one forward sweep over the lag, ``O(M T^2)``. (In the
continuum, :math:`R_pR_d = s/\kappa_2(s)` with
:math:`\kappa_2(1-\mathrm{df}_1/P)(1-\mathrm{df}_1/N) = s`, and the mean residual
:math:`G_k\mathbf 1` is :math:`H_k(s) = \kappa_2/(s(\kappa_2+\lambda_k))`: the Laplace solver's.)

The two-time correlations close linearly. With
:math:`E_v = \sum_k\lambda_k\langle v_kv_k^\top\rangle`, :math:`E_m = \sum_k\langle
m_km_k^\top\rangle` (:math:`m_k = \sqrt{\lambda_k}(\eta^Z_k + \sqrt{\lambda_k}R_dv_k)`), the
field covariances are
:math:`C_{\eta^Z} = R_d(E_v + \sigma^2\mathbf 1\mathbf 1^\top)R_d^\top/P`,
:math:`C_{\eta^A} = R_pE_mR_p^\top/N`, and

.. math::
    E_v &= \sum_k\lambda_k w_k^{*2} h_kh_k^\top + \sum_k\lambda_k (G_kI)C_{\eta^A}(G_kI)^\top
          + \sum_k\lambda_k^2 (G_kIR_p)C_{\eta^Z}(G_kIR_p)^\top,\\
    E_m &= \sum_k\lambda_k^2w_k^{*2}(R_dh_k)(R_dh_k)^\top + \sum_k\lambda_k G_kC_{\eta^Z}G_k^\top
          + \sum_k\lambda_k^2(R_dG_kI)C_{\eta^A}(R_dG_kI)^\top,

with :math:`h_k = G_k\mathbf 1` (the identity
:math:`1 - \lambda_kR_dG_kIR_p = G_k` makes :math:`E_m` this short). Each sum over modes is a
2-D causal convolution with a fixed kernel (for example
:math:`\sum_k\lambda_k g_k\otimes g_k`), computed once; the fixed point is found by Picard
iteration with FFT convolutions, ``O(T^2\log T)`` per iteration independent of ``M``. The
iteration is strictly causal, so it terminates exactly after at most ``T`` sweeps and in
practice converges geometrically. The loss is :math:`L_n = E_v(n, n)`.

``lr -> 0`` at fixed ``t = n * lr`` recovers gradient flow, with an ``O(lr)`` difference
(``tests/theory/test_scaling_dynamics_gd.py`` checks it against the Laplace solver with
Richardson extrapolation in the step).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from theorysim.checks import check_bool, check_scalar, check_size_grid, check_spectrum
from theorysim.contract import check_throw, finish

from ._kappa import spectral_edge
from ._ridge import check_noise

__all__ = ["MAX_STEPS", "ScalingDynamicsGDResult", "scaling_law_dynamics_gd"]

#: default cap on ``n_steps`` (memory grows like ``400 n_steps**2`` bytes per (N, P) pair:
#: 6.7 GB at the cap); the ``max_steps`` argument overrides it
MAX_STEPS = 4096
#: bytes per ``(n_steps + 1)**2`` of one (N, P) pair's working set (measured, see the docstring)
_BYTES_PER_T2 = 400
#: (N, P) pairs solved in one vmapped call are chosen to stay under this working set
_BATCH_BYTES = 2 * 2**30


@dataclasses.dataclass(frozen=True)
class ScalingDynamicsGDResult:
    """Time-domain DMFT learning curves of the random-feature model under discrete GD.

    Attributes:
        steps: ``(T+1,)`` step numbers ``0..n_steps``.
        t: ``(T+1,)`` times ``lr * steps`` (the gradient-flow time they approximate; the
            time-grid convention of :mod:`theorysim.theory`).
        lr: learning rate.
        N: ``(nN,)`` widths (``inf`` = kernel limit).
        P: ``(nP,)`` sample counts (``inf`` = population gradient descent).
        loss: ``(nN, nP, T+1)`` test loss :math:`L_n` against the clean target.
        loss_mean: ``(nN, nP, T+1)`` loss of the mean predictor
            :math:`\\sum_k\\lambda_kw_k^{*2}H_k(n)^2`.
        modes: ``(nN, nP, T+1, M)`` mean-residual profile :math:`H_k(n)` (``None`` unless asked).
        point_iterations: ``(nN, nP)`` Picard iterations of the correlation fixed point.
        point_residual: ``(nN, nP)`` final relative change of the correlations.
        lr_max: ``(nN, nP)`` the stability edge :math:`2/x_{\\max}`, :math:`x_{\\max}` the top
            of the deterministic-equivalent spectrum of :math:`BC`
            (:func:`~theorysim.theory._kappa.spectral_edge`); GD diverges for ``lr >= lr_max``.
        converged: every ``point_residual <= tol`` (the tolerance the Picard iteration runs to),
            ``lr < lr_max`` at every pair (past the edge the predicted loss grows geometrically:
            a finite value there is the start of a divergence, not a converged answer) and the
            loss finite. residual, iterations: the worst over the grid (the solver contract,
            :mod:`theorysim.contract`).
    """

    #: ``inf`` widths / sample counts are the documented limits
    _allow_inf = ("N", "P")

    steps: np.ndarray
    t: np.ndarray
    lr: float
    N: np.ndarray
    P: np.ndarray
    loss: np.ndarray
    loss_mean: np.ndarray
    modes: np.ndarray | None
    point_iterations: np.ndarray
    point_residual: np.ndarray
    lr_max: np.ndarray
    converged: bool
    residual: float
    iterations: int


def _conv_at(x, y, j, T1):
    """Lag-``j`` coefficient of the causal convolution, :math:`\\sum_{m\\le j} x_m y_{j-m}`
    (``x`` may carry leading batch axes)."""
    z = jnp.concatenate([y[::-1], jnp.zeros((T1,), y.dtype)])
    return x @ jax.lax.dynamic_slice(z, (T1 - 1 - j,), (T1,))


def _responses(lam, lr, inv_n, inv_p, T1):
    """Forward sweep over the lag: the Toeplitz responses ``G_k``, ``R_d``, ``R_p``."""
    dtype = lam.dtype
    M = lam.shape[0]
    e0 = jnp.zeros((T1,), dtype).at[0].set(1.0)
    zero = jnp.zeros((T1,), dtype)
    state0 = dict(G=jnp.zeros((M, T1), dtype).at[:, 0].set(1.0), Rb=zero, Rm=zero, Rd=e0,
                  Rp=e0, S=e0, Q=zero, Qp=zero, Qd=zero)

    def step(j, s):
        s = dict(s)
        s["Q"] = s["Q"].at[j].set(s["Q"][j - 1] + lr * s["S"][j - 1])
        s["Qp"] = s["Qp"].at[j].set(s["Qp"][j - 1] + lr * s["Rp"][j - 1])
        s["Qd"] = s["Qd"].at[j].set(s["Qd"][j - 1] + lr * s["Rd"][j - 1])
        s["G"] = s["G"].at[:, j].set(-lam * _conv_at(s["G"], s["Q"], j, T1))
        lg = lam @ s["G"]
        s["Rb"] = s["Rb"].at[j].set(-inv_p * _conv_at(lg, s["Qp"], j, T1))
        s["Rm"] = s["Rm"].at[j].set(-inv_n * _conv_at(lg, s["Qd"], j, T1))
        s["Rd"] = s["Rd"].at[j].set(_conv_at(s["Rb"], s["Rd"], j, T1))
        s["Rp"] = s["Rp"].at[j].set(_conv_at(s["Rm"], s["Rp"], j, T1))
        s["S"] = s["S"].at[j].set(_conv_at(s["Rp"], s["Rd"], j, T1))
        return s

    s = jax.lax.fori_loop(1, T1, step, state0)
    return s["G"], s["Rd"], s["Rp"]


def _causal_conv1(x, y):
    """Causal convolution along the last axis, truncated to its length (FFT, zero padded)."""
    T1 = x.shape[-1]
    n = 2 * T1
    return jnp.fft.irfft(jnp.fft.rfft(x, n) * jnp.fft.rfft(y, n), n)[..., :T1]


def _fft2(x):
    T1 = x.shape[-1]
    return jnp.fft.rfft2(x, (2 * T1, 2 * T1))


def _ifft2(f, T1):
    return jnp.fft.irfft2(f, (2 * T1, 2 * T1))[:T1, :T1]


def _solve(lam, lw2, lr, inv_n, inv_p, noise2, tol, *, T1: int, max_iter: int,
           want_modes: bool):
    """One (N, P) pair (``inv_n = 1/N``, ``inv_p = 1/P``)."""
    G, Rd, Rp = _responses(lam, lr, inv_n, inv_p, T1)
    H = jnp.cumsum(G, axis=1)                                  # mean residual h_k = G_k 1
    GI = lr * jnp.concatenate([jnp.zeros_like(H[:, :1]), H[:, :-1]], axis=1)   # G_k I
    GIRp = _causal_conv1(GI, Rp)
    RdGI = _causal_conv1(GI, Rd)
    RdH = _causal_conv1(H, Rd)

    def gram(a, w):  # sum_k w_k a_k a_k^T
        return (a * w[:, None]).T @ a

    Sv = gram(H, lw2)
    Sm = gram(RdH, lw2 * lam)
    f_KvA, f_KvZ = _fft2(gram(GI, lam)), _fft2(gram(GIRp, lam * lam))
    f_KmZ, f_KmA = _fft2(gram(G, lam)), _fft2(gram(RdGI, lam * lam))
    f_dd, f_pp = _fft2(jnp.outer(Rd, Rd)), _fft2(jnp.outer(Rp, Rp))
    ones = jnp.ones((T1, T1), lam.dtype)

    def sweep(Ev, Em):
        cz = _ifft2(f_dd * _fft2((Ev + noise2 * ones) * inv_p), T1)
        ca = _ifft2(f_pp * _fft2(Em * inv_n), T1)
        f_cz, f_ca = _fft2(cz), _fft2(ca)
        return (Sv + _ifft2(f_KvA * f_ca + f_KvZ * f_cz, T1),
                Sm + _ifft2(f_KmZ * f_cz + f_KmA * f_ca, T1))

    def cond(c):
        _, _, it, res = c
        return (it < max_iter) & (res > tol)

    def body(c):
        Ev, Em, it, _ = c
        Ev2, Em2 = sweep(Ev, Em)
        res = jnp.maximum(jnp.max(jnp.abs(Ev2 - Ev)) / jnp.max(jnp.abs(Ev2)),
                          jnp.max(jnp.abs(Em2 - Em)) / jnp.maximum(jnp.max(jnp.abs(Em2)),
                                                                     1e-300))
        return Ev2, Em2, it + 1, res

    Ev, _, it, res = jax.lax.while_loop(cond, body, (Sv, Sm, 0, jnp.asarray(jnp.inf, lam.dtype)))
    loss = jnp.diagonal(Ev)
    loss_mean = (lw2[:, None] * H * H).sum(0)
    return loss, loss_mean, (H.T if want_modes else None), it, res


@functools.partial(jax.jit, static_argnames=("T1", "want_modes"))
def _solve_pairs(lam, lw2, lr, inv_n, inv_p, noise2, tol, max_iter, *, T1: int,
                 want_modes: bool):
    """:func:`_solve` vmapped over a batch of (N, P) pairs (the Picard loop of a finished pair
    is frozen by the batched ``while_loop`` while the others iterate)."""
    one = functools.partial(_solve, T1=T1, max_iter=max_iter, want_modes=want_modes)
    return jax.vmap(one, in_axes=(None, None, None, 0, 0, None, None))(
        lam, lw2, lr, inv_n, inv_p, noise2, tol)


def scaling_law_dynamics_gd(
    eigvals: Float[Array, " M"],
    target_power: Float[Array, " M"],
    P,
    N,
    lr: float,
    n_steps: int,
    noise: float = 0.0,
    *,
    tol: float = 1e-12,
    max_iter: int = 2000,
    modes: bool = False,
    max_steps: int = MAX_STEPS,
    throw: bool = True,
) -> ScalingDynamicsGDResult:
    r"""Test loss of the random-feature model under discrete-time gradient descent (DMFT).

    .. math::
        w_{n+1} = w_n - \eta\,\nabla_w\frac1{2P}\sum_\mu(f(x_\mu) - y_\mu)^2,\quad w_0 = 0,
        \qquad L_n = E\,v_n^\top\Lambda v_n

    solved by the time-domain dynamical mean-field theory of the module docstring
    (Bordelon, Atanasov, Pehlevan 2024, arXiv 2402.01092) at proportional asymptotics.
    ``lr -> 0`` at fixed ``t = lr * n`` gives the gradient flow of
    :func:`scaling_law_dynamics` (difference ``O(lr)``). GD is stable while ``lr`` times the
    top eigenvalue of :math:`BC` stays below 2. The solver computes that edge from the
    deterministic-equivalent spectrum (``result.lr_max``; measured: at ``M = 300``,
    ``P = 60``, ``N = 120`` the predicted loss stays bounded at ``0.995 lr_max`` and grows
    from ``1.005 lr_max`` on, overflowing by ``1.03 lr_max``), and a pair with
    ``lr >= lr_max`` is not converged: with ``throw`` a :class:`~theorysim.ConvergenceError`
    names ``lr`` and the allowed range. Times follow the convention of
    :mod:`theorysim.theory`: ``loss[..., n]`` is after ``n`` steps, at ``t = lr * n``
    (``result.t``, from ``t = 0``).

    The (N, P) grid is one ``vmap`` (in batches that keep the working set under about 2 GB).
    Cost per pair: ``O(M T^2)`` for the responses plus ``O(T^2 log T)`` per Picard iteration
    (about 15-35 iterations), memory ``O(T^2)``: a dozen zero-padded ``(2T, T+1)`` complex FFT
    arrays, roughly ``400 T^2`` bytes (1.6 GB at ``T = 2000``). Measured on 2 CPU cores,
    M = 300, one pair: 1.2 s at T = 200, 8.6 s at T = 800, 78 s at T = 2000.

    Args:
        eigvals: ``(M,)`` feature spectrum :math:`\lambda_k > 0`.
        target_power: ``(M,)`` :math:`\lambda_k w_k^{*2} \ge 0`.
        P: sample count(s), scalar or 1-D, each > 0 (``inf`` = population GD).
        N: width(s), scalar or 1-D, each > 0 (``inf`` allowed).
        lr: learning rate :math:`\eta > 0`.
        n_steps: number of GD steps, ``1 <= n_steps <= max_steps``.
        noise: label-noise standard deviation (training labels only).
        tol: Picard tolerance on the relative change of the correlations.
        max_iter: Picard iteration cap.
        modes: also return the mean-residual profile :math:`H_k(n)`.
        max_steps: refuse ``n_steps`` above this up front (default :data:`MAX_STEPS`; memory
            ``400 n_steps^2`` bytes per pair); raise it on a machine with the memory.
        throw: raise :class:`~theorysim.ConvergenceError` when the Picard iteration missed
            ``tol``, ``lr`` is at or past the stability edge ``lr_max`` of a pair, or the loss
            is not finite; ``False`` returns the result flagged.

    Returns:
        :class:`ScalingDynamicsGDResult` with ``loss`` of shape ``(nN, nP, n_steps + 1)``.

    Raises:
        ValueError: bad input (before any compute).
        ConvergenceError: with ``throw``, no convergence or non-finite output.

    Example:
        >>> k = np.arange(1, 301.0)
        >>> r = scaling_law_dynamics_gd(k**-1.5, k**-2.0, P=60, N=120, lr=0.1, n_steps=100)
        >>> r.loss.shape, float(r.t[-1]), r.converged
        ((1, 1, 101), 10.0, True)
    """
    lam, lw2 = check_spectrum(eigvals, target_power, positive=True)
    samples, widths = check_size_grid("P", P), check_size_grid("N", N)
    lr = check_scalar("lr", lr, lo=0.0, lo_open=True, hi=math.inf, hi_open=True)
    max_steps = int(check_scalar("max_steps", max_steps, lo=1, integer=True))
    n_steps = int(check_scalar("n_steps", n_steps, lo=1, integer=True))
    if n_steps > max_steps:
        raise ValueError(
            f"n_steps = {n_steps:,} exceeds max_steps = {max_steps:,}: the time-domain DMFT "
            f"needs about {_BYTES_PER_T2 * (n_steps + 1) ** 2 / 1e9:.3g} GB per (N, P) pair "
            "(400 n_steps^2 bytes); use a larger lr, the gradient-flow solver "
            "scaling_law_dynamics, or pass max_steps= to override on a machine with the memory")
    noise2 = check_noise(noise) ** 2
    tol = check_scalar("tol", tol, lo=0.0, lo_open=True, hi=1.0, hi_open=True)
    max_iter = int(check_scalar("max_iter", max_iter, lo=1, hi=100_000, integer=True))
    modes = check_bool("modes", modes)
    throw = check_throw(throw)
    T1 = n_steps + 1
    shape = (widths.size, samples.size)
    lr_max = 2.0 / spectral_edge(lam, np.ones_like(lam), samples[None, :], widths[:, None])
    inv = np.stack(np.meshgrid(1.0 / widths, 1.0 / samples, indexing="ij"), -1).reshape(-1, 2)
    G = inv.shape[0]
    per_pair = _BYTES_PER_T2 * T1**2 + (8 * T1 * lam.size if modes else 0)
    batch = int(min(G, max(1, _BATCH_BYTES // per_pair)))
    pad = (-G) % batch
    inv = np.concatenate([inv, np.repeat(inv[:1], pad, axis=0)])   # equal batches, one compile
    parts = []
    with jax.enable_x64(True):
        spec = jnp.asarray(lam), jnp.asarray(lw2)
        for i in range(0, inv.shape[0], batch):
            out = _solve_pairs(*spec, lr, jnp.asarray(inv[i:i + batch, 0]),
                               jnp.asarray(inv[i:i + batch, 1]), noise2, tol, max_iter,
                               T1=T1, want_modes=modes)
            parts.append(jax.device_get(out))

    def gather(k, tail=()):
        return np.concatenate([np.asarray(p[k]) for p in parts])[:G].reshape(*shape, *tail)

    loss = gather(0, (T1,)).astype(np.float64)
    loss_mean = gather(1, (T1,)).astype(np.float64)
    prof = gather(2, (T1, lam.size)).astype(np.float64) if modes else None
    iters = gather(3)
    resid = gather(4).astype(np.float64)
    steps = np.arange(T1)
    stable = lr < lr_max
    result = ScalingDynamicsGDResult(
        steps=steps, t=lr * steps, lr=lr, N=widths, P=samples, loss=loss,
        loss_mean=loss_mean, modes=prof, point_iterations=iters, point_residual=resid,
        lr_max=lr_max, converged=bool(np.all(resid <= tol) and np.all(stable)),
        residual=float(np.max(np.where(np.isnan(resid), np.inf, resid))),
        iterations=int(np.max(iters)),
    )
    if np.all(stable):
        hint = "raise max_iter or tol"
    else:
        bad = np.argwhere(~stable)[0]
        hint = (f"lr={lr:g} is past the GD stability edge at {int((~stable).sum())} of "
                f"{stable.size} (N, P) pairs (e.g. N={widths[bad[0]]:g}, P={samples[bad[1]]:g}: "
                f"lr must be in (0, {float(lr_max[tuple(bad)]):.6g})); the whole grid is stable "
                f"for lr in (0, {float(lr_max.min()):.6g}): the loss diverges, it does not "
                "converge")
    return finish(result, throw=throw, solver="scaling_law_dynamics_gd", hint=hint)
