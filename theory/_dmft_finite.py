r"""Leading finite-width corrections to the DMFT of two-layer mean-field networks.

A width-:math:`N` two-layer mean-field network (the setting of
:func:`~theorysim.theory.dmft_two_layer`) is a system of :math:`N` neurons
:math:`\theta_i = (h_i, z_i)` drawn i.i.d. from :math:`\rho_0 = \mathcal N(0,\Phi^0\oplus 1)` and
coupled only through the training error. With :math:`\psi_n(\theta;\Delta) =
z_n\phi(h_n)/\gamma_0` the output of one neuron after ``n`` GD steps driven by the error
trajectory :math:`\Delta = (\Delta_0,\Delta_1,\dots)` (the single-site dynamics of the DMFT), the
network's error solves the causal fixed point

.. math::
    \Delta = y - \langle\psi(\theta;\Delta)\rangle_N,\qquad
    \langle f\rangle_N = \mathbb E_{\rho_0} f + N^{-1/2}\,\xi[f],\quad
    \mathbb E\,\xi[f]\xi[g] = \mathrm{Cov}_{\rho_0}(f, g),

and the DMFT solution :math:`\Delta^*` is its :math:`N\to\infty` limit. Expanding
:math:`\Delta = \Delta^* + N^{-1/2}\epsilon_1 + N^{-1}\epsilon_2` (Bordelon & Pehlevan 2023,
arXiv 2304.03408: the fluctuations of the order parameters are Gaussian at order
:math:`N^{-1/2}` with a propagator set by the sensitivities of the single-site averages, and
averages of observables have a power series in :math:`1/N`), with the causal (strictly lower
triangular in time) sensitivity :math:`A = \mathbb E_{\rho_0}\partial\psi/\partial\Delta` and
:math:`M = (I + A)^{-1}`:

.. math::
    \epsilon_1 = \xi[\iota_\Delta],\quad \iota_\Delta(\theta) = -M\,\psi(\theta;\Delta^*);\qquad
    \mathbb E\,\epsilon_2 = -M\Big(\tfrac12\,\mathbb E_{\rho_0}\partial^2\psi[C_1]
        + \mathbb E_{\rho_0}\big[\partial\psi(\theta)\cdot\iota_\Delta(\theta)\big]\Big),

with :math:`C_1 = \mathrm{Cov}_{\rho_0}(\iota_\Delta)`. Any other observable
:math:`O = \langle o(\theta;\Delta)\rangle_N`, here the NTK
:math:`\kappa = \phi(h)\phi(h)^\top + z^2\phi'(h)\phi'(h)^\top\odot\Phi^0`, fluctuates as
:math:`\xi[\iota_O]` with influence function :math:`\iota_O = o + (\mathbb E\partial o)\,
\iota_\Delta`. So, to leading order,

.. math::
    N\,\mathrm{Var}\,K_{\mu\nu}(t) = \mathrm{Var}_{\rho_0}\iota_{K,\mu\nu}(t),\quad
    N\,\mathrm{Cov}\,\Delta(t) = C_1(t, t),\quad
    N\,(\mathbb E\mathcal L_N - \mathcal L_\infty)(t) = \tfrac1P\Delta^*(t)\cdot
        \mathbb E\epsilon_2(t) + \tfrac1{2P}\mathrm{tr}\,C_1(t,t).

This is the paper's propagator written for the particle representation: :math:`\xi[\psi]` is
its source noise, :math:`(I + A)^{-1}` the propagator that feeds it back through
:math:`\Delta`; the mean shift needs the second-order term (the paper's :math:`O(1/N)`
correction of averages). All averages over :math:`\rho_0` are computed with particles
(scrambled Sobol points, randomised quasi-Monte Carlo); the sensitivities are forward-mode
derivatives of the particle dynamics (:math:`A` and :math:`\mathbb E\partial\kappa` by
Jacobian-vector products, the own-direction and second-order terms with one tangent per
particle, the second-order one along an independent particle's :math:`\iota_\Delta`).

ReLU: the corrections are those of the Gaussian-smoothed network
:math:`\phi_w(h) = \mathbb E\,\mathrm{relu}(h + w\epsilon) = h\Phi(h/w) + w\varphi(h/w)`
(:math:`w` = ``kink_width``), primal and derivatives alike, so every sensitivity is the exact
pathwise derivative of a smooth system, which becomes the ReLU network as :math:`w\to0`
(:math:`\Delta^*` and ``ntk`` stay those of the ReLU network itself). A neuron that the ReLU
network slides on a kink (Filippov, :mod:`theorysim.theory._dmft_kink`) comes to rest in the
smoothed one at :math:`h^* = w\Phi^{-1}(\alpha)`, where :math:`\phi_w'(h^*) = \alpha` is the
Filippov slope: the smoothed NTK tends to the sliding-mode kernel of
:func:`~theorysim.theory.sliding_ntk` (the networks' observable), and the response of a
sliding neuron relaxes at the rate :math:`|c_1|\varphi(h^*/w)/w`, i.e. it is pinned to the kink
as :math:`w\to0`. GD with step ``lr`` is stable there while ``lr |c_1| / w`` stays below about
5 (``c_1 = gamma0 z Phi0_mumu Delta_mu / P``).

An earlier version smoothed only the derivative of :math:`1[h>0]` (a custom JVP) around the
hard, chattering GD path. That is the linearisation of no dynamics: a sliding neuron's response
relaxed only on the time :math:`w\sqrt{2\pi}/|c_1|` (which grows as the errors decay), neurons
arriving at a sliding kink were counted half from each side instead of with the Filippov
weights :math:`1-\alpha` and :math:`\alpha`, and there was no limit :math:`w\to0` (below
:math:`w\approx0.1` it blew up). At ReLU gamma0 = 1.5 it left :math:`N\,\mathrm{Var}\,K_{22}(t{=}3)`
at 8.90 against 10.34 in the networks (mean over N = 128..1024, SE 0.12; two entries beyond 3 SE,
issue 13), and widening its smoothing moved it further out. The smoothed network, same
particles, gives 9.40 / 9.84 / 9.66 at :math:`w` = 0.2 / 0.1 / 0.05, and
:math:`N\,\mathrm{Var}\,K_{00}(3)` 10.16 / 11.03 / 11.66 against 12.52 (theory SE 0.45 at
8192 particles): the smoothing bias falls with :math:`w` (K_00 by 0.87, then 0.63 per
halving; no clean power law at this particle count). At the default 0.05 the largest gap left
(K_00, 0.86) is 1.9 theory SE; smaller :math:`w` would need more particles (the kink terms'
particle noise grows as :math:`w` shrinks).

The curvature term :math:`\mathbb E_{\rho_0}\partial^2\psi[C_1]` is taken exactly (through
the particle mean) along the top eigendirections of :math:`C_1` and, for the rest, along the
influence function of an independent particle (a random pairing). Pairing each Sobol point
with the one ``S/2`` further on, as an earlier version did, pairs it with itself (scrambled
Sobol points ``s`` and ``s + S/2`` differ only in their last digit): that computed
:math:`\mathbb E\,\partial^2\psi(\theta)[\iota(\theta),\iota(\theta)]` and put the mean shifts
20-75% off for a linear network at P = 1 (exact answer known: the network is a function of
three Wishart moments) and the ReLU loss gap 5-20% high (issue 13).

Verified (issue 13, D = 7, P = 6 on the sphere, GD lr = 0.05, t = 0..3, 4096 seeds of plain
JAX networks per width, the slow test's whole grid run once, 2026-12-07): the linear P = 1
network against its exact O(1/N) expansion (every statistic within 1% of its largest entry, GD
and gradient flow); tanh and ReLU at gamma0 = 0.5 and 1.5, N = 128, 256, 512, 1024: N x loss
gap within |z| <= 1.18 at every time and width (e.g. ReLU gamma0 = 1.5: theory 0.111 / 0.467
/ 0.892 / 0.473 at t = 0 / 1 / 2 / 3, networks 0.111-0.113 / 0.458-0.475 / 0.883-0.923 /
0.462-0.495 over the four widths); N Var K: all 84 entries (21 x 4 times) within 3 SE for tanh
at both gamma0 (max |z| 2.42). ReLU with the smoothed network at the default ``kink_width =
0.05`` (2026-12-07, same networks): 84 / 84 at every width, max |z| 1.76 / 1.74 / 1.31 / 1.36
(gamma0 = 0.5) and 2.18 / 1.89 / 2.19 / 1.51 (gamma0 = 1.5) at N = 128 / 256 / 512 / 1024, loss
gap |z| <= 0.9; the earlier derivative-only smoothing (above) had 83 / 84 / 83 / 84 at gamma0 =
1.5 (max |z| 3.34 and 3.27 at t = 3).

Dynamics (the family's convention, :mod:`theorysim.theory._dmft_common`): ``dynamics="gd",
lr=eta`` is solved exactly in discrete time. Gradient flow (the default) is the first-order
Richardson extrapolation :math:`R(h) = 2F(h/2) - F(h)` of the GD solutions :math:`F` (the GD
corrections are smooth in the step, :math:`F(h) = F(0) + ah + bh^2 + \dots`, so
:math:`R(h) = F(0) - bh^2/2 + O(h^3)`), returned from the two finest of the steps
``h, h/2, h/4`` (``h = max_step``). Its error is estimated from the same expansion:
:math:`R(h/2) - F(0) \approx (R(h/2) - R(h))/3`, which is ``flow_error`` (relative to each
statistic's largest entry). All levels use the same particles, so the estimate sees the
discretisation only, not the quasi-Monte-Carlo error. Checked against the exact P = 1 flow
(tests): the estimate is within a factor 2 of the actual discretisation error. An earlier
version reported :math:`|F(h/2) - F(h)|`, the error of the coarser GD level, about
:math:`2/(ah)` times too large, and its default tolerance failed at the default step.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float
from scipy.special import ndtri

from theorysim.checks import check_bool, check_key, check_scalar
from theorysim.contract import finish

from ._dmft_common import activation_pair, check_dynamics, check_problem, check_solver_args
from ._dmft_kink import filippov_slopes


@dataclasses.dataclass(frozen=True)
class FiniteWidthResult:
    r"""Infinite-width DMFT order parameters and their leading :math:`1/N` corrections at the
    output times ``t`` (which start at 0). Corrections are stated times :math:`N`: a width-N
    network has :math:`\mathrm{Var}\,K = ` ``ntk_var / N`` and
    :math:`\mathbb E\mathcal L_N = ` ``train_loss + loss_gap / N`` to leading order.

    Attributes:
      t: ``(T+1,)`` output times (DMFT units), ``t[0] = 0``.
      delta: ``(T+1, P)`` infinite-width error :math:`\Delta^*`.
      delta_steps: ``(n+1, P)`` :math:`\Delta^*` after every GD step ``0..n`` (the finer
        step for gradient flow): the error that drives the single-site dynamics.
      train_loss: ``(T+1,)`` :math:`\mathcal L_\infty = \frac1{2P}|\Delta^*|^2`.
      train_loss_se: ``(T+1,)`` its standard error (scatter over independent scramblings).
      ntk: ``(T+1, P, P)`` infinite-width NTK (ReLU: Filippov slopes on the kink), from the
        same ``n_mean`` points as ``delta``.
      ntk_var: ``(T+1, P, P)`` :math:`N\,\mathrm{Var}\,K_{\mu\nu}(t)` over initialisations.
      ntk_var_se: standard error of ``ntk_var`` (particle scatter).
      delta_cov: ``(T+1, P, P)`` :math:`N\,\mathrm{Cov}(\Delta_\mu(t), \Delta_\nu(t))` (the
        prediction covariance on the training points).
      delta_shift: ``(T+1, P)`` :math:`N\,(\mathbb E\Delta_N - \Delta^*)`.
      ntk_shift: ``(T+1, P, P)`` :math:`N\,(\mathbb E K_N - K_\infty)`.
      loss_gap: ``(T+1,)`` :math:`N\,(\mathbb E\mathcal L_N - \mathcal L_\infty)`.
      loss_gap_se: its standard error (particle scatter).
      converged: every output finite, the causal solve exact (``residual`` below 1e-8) and,
        for gradient flow, ``flow_error <= flow_tol`` (the estimated error of the
        extrapolation, module docstring).
      residual: largest of the causal-solve residual (and the largest sensitivity of an
        output to a later error, which causality makes 0) relative to the source, and (flow)
        ``flow_error``.
      iterations: GD resolutions solved (1 for GD; 3 or more for gradient flow).
      dynamics, lr, flow_error: as in :class:`~theorysim.theory.DMFTResult`.
      centered: whether the network output has its initial value subtracted.
      n_samples: particles of the sensitivities; n_mean: points of :math:`\Delta^*`.
      method: ``"two_layer_finite_width"``.
    """

    t: np.ndarray
    delta: np.ndarray
    delta_steps: np.ndarray
    train_loss: np.ndarray
    train_loss_se: np.ndarray
    ntk: np.ndarray
    ntk_var: np.ndarray
    ntk_var_se: np.ndarray
    delta_cov: np.ndarray
    delta_shift: np.ndarray
    ntk_shift: np.ndarray
    loss_gap: np.ndarray
    loss_gap_se: np.ndarray
    converged: bool
    residual: float
    iterations: int
    dynamics: str
    lr: float | None
    flow_error: float
    centered: bool
    n_samples: int
    n_mean: int
    method: str = "two_layer_finite_width"


def _activation(activation: str, kink_width: float):
    r"""``(phi, phi')`` of the dynamics whose corrections are computed. ReLU: the Gaussian
    smoothing :math:`\phi_w(h) = \mathbb E\,\mathrm{relu}(h + w\epsilon) = h\Phi(h/w) +
    w\varphi(h/w)` with :math:`w` = ``kink_width`` (primal and derivatives alike: the exact
    dynamics of a smooth network, extrapolated to :math:`w\to0`, module docstring)."""
    if activation != "relu":
        return activation_pair(activation)
    w = kink_width
    c = 1.0 / math.sqrt(2.0 * math.pi)

    def smooth_relu(h):
        return h * jax.scipy.special.ndtr(h / w) + w * c * jnp.exp(-0.5 * (h / w) ** 2)

    return smooth_relu, (lambda h: jax.scipy.special.ndtr(h / w))


#: eigendirections of C_1 along which the curvature is taken exactly (rest: random pairs)
_N_TOP = 16


def _evolve(H0, Z0, delta, phi0, *, gamma0, lr, activation, kink_width, per_particle):
    r"""Run ``S`` neurons through GD driven by the error ``delta`` (``(T+1, P)`` shared, or
    ``(S, T+1, P)`` per particle); return the particle means of :math:`\psi_n` ``(T+1, P)`` and
    :math:`\kappa_n` ``(T+1, P, P)`` and, with ``per_particle``, :math:`\psi` ``(T+1, S, P)``
    and the states ``H (T+1, S, P)``, ``Z (T+1, S)``."""
    act, slope = _activation(activation, kink_width)
    P = phi0.shape[0]
    c = gamma0 / P
    xs = jnp.moveaxis(delta, -2, 0)  # (T+1, [S,] P)

    def body(carry, d):
        H, Z = carry
        ph = act(H)
        psi = Z[:, None] * ph / gamma0
        sl = slope(H)
        g = sl * Z[:, None]
        kap = (ph.T @ ph + (g.T @ g) * phi0) / H.shape[0]
        H1 = H + lr * c * Z[:, None] * ((d * sl) @ phi0)
        Z1 = Z + lr * c * jnp.sum(ph * d, axis=-1)
        out = (psi.mean(0), kap)
        return (H1, Z1), out + ((psi, H, Z) if per_particle else ())

    _, out = jax.lax.scan(body, (H0, Z0), xs)
    return out


def _infinite_width(H0, Z0, y, phi0, n_steps, *, gamma0, lr, activation):
    r""":math:`\Delta^*` ``(n_steps+1, P)`` of the particle system (error read off the
    particles, initial output subtracted) and its NTK ``(n_steps+1, P, P)`` (ReLU: Filippov
    slopes on the kink)."""
    act, slope = activation_pair(activation)
    c = gamma0 / phi0.shape[0]
    f0 = (Z0 @ act(H0)) / (gamma0 * H0.shape[0])

    def body(carry, _):
        H, Z = carry
        ph = act(H)
        d = y - ((Z @ ph) / (gamma0 * H.shape[0]) - f0)
        sl = filippov_slopes(H, Z, d, phi0, gamma0, lr) if activation == "relu" else slope(H)
        g = sl * Z[:, None]
        kap = (ph.T @ ph + (g.T @ g) * phi0) / H.shape[0]
        H1 = H + lr * c * Z[:, None] * ((d * slope(H)) @ phi0)
        Z1 = Z + lr * c * (ph @ d)
        return (H1, Z1), (d, kap)

    _, out = jax.lax.scan(body, (H0, Z0), None, length=n_steps + 1)
    return out


def _sobol_gaussian(n: int, dim: int, seed: int) -> np.ndarray:
    """``n`` scrambled Sobol points mapped to standard Gaussians ``(n, dim)`` (float64)."""
    from scipy.stats import qmc  # lazy: scipy.stats costs ~0.5 s at every import of theorysim

    u = qmc.Sobol(dim, scramble=True, seed=seed).random(n)
    return ndtri(np.clip(u, 1e-300, 1.0 - 2**-53))


def _particles(key, n, root, n_rep):
    """``n_rep`` independent scramblings of ``n`` points of :math:`\\rho_0`: ``H (n_rep, n, P)``
    and ``Z (n_rep, n)``."""
    P = root.shape[0]
    seeds = np.asarray(jax.random.randint(key, (n_rep,), 0, 2**31 - 1))
    eps = np.stack([_sobol_gaussian(n, P + 1, int(s)) for s in seeds])
    return jnp.asarray(eps[..., :P] @ np.asarray(root)), jnp.asarray(eps[..., P])


def _jacobian(fun, x, chunk: int):
    """Forward-mode Jacobian of ``fun`` at ``x`` in chunks of ``chunk`` directions: a tree of
    arrays ``(*out_shape, x.size)``."""
    L = x.size
    n_chunks = -(-L // chunk)
    eye = jnp.eye(n_chunks * chunk, L, dtype=x.dtype).reshape(n_chunks, chunk, *x.shape)
    cols = jax.lax.map(jax.vmap(lambda v: jax.jvp(fun, (x,), (v,))[1]), eye)
    return jax.tree_util.tree_map(
        lambda a: jnp.moveaxis(a.reshape(n_chunks * chunk, *a.shape[2:])[:L], 0, -1), cols)


@partial(jax.jit, static_argnames=("activation", "centered", "chunk", "rec", "kink_width"))
def _corrections(H, Z, dstar, phi0, gamma0, lr, kink_width, pair, *, activation, centered,
                 chunk, rec):
    """The :math:`1/N` corrections at the GD step ``lr`` given :math:`\\Delta^*` (module
    doc); ``rec`` the recorded step indices; ``pair`` a random permutation of the particles
    (the curvature of particle ``s`` is taken along the influence function of ``pair[s]``)."""
    S = H.shape[0]
    T1, P = dstar.shape
    kw = dict(phi0=phi0, gamma0=gamma0, lr=lr, activation=activation, kink_width=kink_width)
    rec = jnp.asarray(rec)

    def means(d):
        m_psi, m_kap = _evolve(H, Z, d, per_particle=False, **kw)
        return m_psi, m_kap[rec]

    A, B = _jacobian(means, dstar, chunk)  # (T1, P, T1, P), (R, P, P, T1, P)
    A = A.reshape(T1 * P, T1 * P)
    B = B.reshape(rec.shape[0], P, P, T1 * P)
    I_A = jnp.eye(T1 * P, dtype=A.dtype) + A
    causal_leak = jnp.max(jnp.abs(jnp.triu(A)))

    def solve(rhs):  # (S, L) -> (I + A)^{-1} rhs per particle
        return jax.scipy.linalg.solve_triangular(I_A, rhs.T, lower=True,
                                                 unit_diagonal=True).T

    _, _, psi, Hs, Zs = _evolve(H, Z, dstar, per_particle=True, **kw)
    psi = jnp.moveaxis(psi, 1, 0)  # (S, T1, P)
    if centered:
        psi = psi - psi[:, :1]
    src = (psi - psi.mean(0)).reshape(S, T1 * P)
    iota = -solve(src)  # influence function of Delta, (S, L)
    solve_res = jnp.max(jnp.abs(iota @ I_A.T + src)) / jnp.maximum(jnp.max(jnp.abs(src)),
                                                                    1e-300)
    # per-particle NTK at the recorded steps at Delta*, and its influence function
    act, slope = _activation(activation, kink_width)

    def kappa_at(h, z):
        ph = act(h)
        g = slope(h) * z[:, None]
        return ph[:, :, None] * ph[:, None, :] + (g[:, :, None] * g[:, None, :]) * phi0

    kap = jax.vmap(kappa_at)(Hs[rec], Zs[rec])  # (R, S, P, P)
    kap_mean = kap.mean(1)
    iota_k = (kap - kap_mean[:, None]) + jnp.einsum("rabl,sl->rsab", B, iota)
    ntk_var_i = iota_k**2
    iota3 = iota.reshape(S, T1, P)
    dcov = jnp.einsum("sna,snb->nab", iota3, iota3) / S
    # second order: own-direction term and the curvature along an independent particle's iota
    dshared = jnp.broadcast_to(dstar, (S, T1, P))

    def pp(d):
        _, m_kap, p, _, _ = _evolve(H, Z, d, per_particle=True, **kw)
        return m_kap[rec], jnp.moveaxis(p, 1, 0)

    own_k, own_p = jax.jvp(pp, (dshared,), (iota3,))[1]
    # curvature along C_1 = Cov(iota): exactly (through the particle mean) on its top
    # ``n_top`` eigendirections, by pairing each particle with an independent one (a random
    # permutation) on the rest. (Not a shift by S/2: scrambled Sobol points s and s + S/2
    # differ only in their last digit, so that was the particle's own direction,
    # E psi''[iota(theta), iota(theta)] instead of E psi''[C_1]: 20-75% off for a linear
    # network at P = 1, where the exact answer is known.)
    n_top = min(_N_TOP, T1 * P)
    lam, U = jnp.linalg.eigh(iota.T @ iota / S)
    lam, U = lam[-n_top:], U[:, -n_top:]

    def curv_along(u):
        return jax.jvp(lambda d: jax.jvp(means, (d,), (u,))[1], (dstar,), (u,))[1]

    top_p, top_k = jax.lax.map(curv_along, (U.T * jnp.sqrt(jnp.maximum(lam, 0.0))[:, None]
                                            ).reshape(n_top, T1, P))
    other = (iota - (iota @ U) @ U.T)[pair].reshape(S, T1, P)
    curv_k, curv_p = jax.jvp(lambda d: jax.jvp(pp, (d,), (other,))[1], (dshared,),
                             (other,))[1]
    curv_k = curv_k + top_k.sum(0)
    curv_p = curv_p + top_p.sum(0)
    src2 = (own_p + 0.5 * curv_p).reshape(S, T1 * P)
    shift_i = -solve(src2)  # per-particle contributions to N (E Delta - Delta*)
    shift = shift_i.mean(0).reshape(T1, P)
    ntk_shift = jnp.einsum("rabl,l->rab", B, shift.reshape(-1)) + own_k + 0.5 * curv_k
    gap_i = (jnp.einsum("np,snp->sn", dstar, shift_i.reshape(S, T1, P))
             + 0.5 * jnp.sum(iota3**2, axis=2)) / P
    sq = math.sqrt(S)
    return dict(ntk=kap_mean, ntk_var=ntk_var_i.mean(1),
                ntk_var_se=ntk_var_i.std(1, ddof=1) / sq, delta_cov=dcov[rec],
                delta_shift=shift[rec], ntk_shift=ntk_shift, loss_gap=gap_i.mean(0)[rec],
                loss_gap_se=gap_i.std(0, ddof=1)[rec] / sq,
                residual=jnp.maximum(causal_leak, solve_res))


def check_finite_width(X, y, t, gamma0, *, key=None, activation="tanh", dynamics="flow",
                       lr=None, flow_tol=1e-2, max_step=0.1, centered=False,
                       n_samples=8192, n_mean=2**18, n_scrambles=4, kink_width=0.05, chunk=16,
                       max_steps=2000, max_memory_gb=4.0, throw=True) -> float:
    """Validate the arguments of :func:`dmft_two_layer_finite_width` exactly as it does, with
    no compute (``ValueError`` naming the argument); return the estimated working memory in
    GB of its finest GD level (callers that run simulations first can fail early).

    >>> round(check_finite_width(np.eye(2), np.ones(2), [1.0], 1.0), 3)
    0.11
    """
    return _plan(X, y, t, gamma0, **{k: v for k, v in locals().items()
                                     if k not in ("X", "y", "t", "gamma0")})[3]


def _plan(X, y, t, gamma0, *, key, activation, dynamics, lr, flow_tol, max_step, centered,
          n_samples, n_mean, n_scrambles, kink_width, chunk, max_steps, max_memory_gb, throw):
    """The validated problem, the GD steps of the first round (coarse to fine), the dynamics
    and the memory estimate (GB) of the finest step."""
    problem = check_problem(X, y, t, gamma0)
    check_scalar("gamma0", gamma0, lo=0.0, hi=1e6, lo_open=True)
    check_solver_args(activation=activation, throw=throw)
    if key is not None:
        check_key("key", key)
    check_bool("centered", centered)
    for name, n, lo in (("n_samples", n_samples, 64), ("n_mean", n_mean, n_samples)):
        check_scalar(name, n, lo=lo, hi=2**24, integer=True)
        if int(n) & (int(n) - 1):
            raise ValueError(f"{name} must be a power of 2 (Sobol points), got {n}")
    check_scalar("n_scrambles", n_scrambles, lo=2, hi=64, integer=True)
    check_scalar("kink_width", kink_width, lo=0.0, hi=10.0, lo_open=True)
    check_scalar("chunk", chunk, lo=1, hi=4096, integer=True)
    check_scalar("max_step", max_step, lo=0.0, hi=1e3, lo_open=True)
    check_scalar("max_memory_gb", max_memory_gb, lo=0.0, lo_open=True)
    if dynamics == "flow":
        dyn = check_dynamics("flow", lr, flow_tol, problem.t, max_steps=max_steps)
        try:
            check_dynamics("gd", max_step, flow_tol, problem.t, max_steps=max_steps)
        except ValueError as err:
            raise ValueError(f"max_step: with dynamics='flow' the output times must be "
                             f"multiples of max_step={max_step:g} ({err})") from None
        steps = [max_step, max_step / 2, max_step / 4]
        n = int(round(problem.t[-1] / steps[-1]))
        if n > max_steps:
            raise ValueError(f"max_steps: gradient flow solves GD down to max_step / 4 = "
                             f"{steps[-1]:g}, {n} steps to t={problem.t[-1]:g}, more than "
                             f"max_steps={max_steps}; raise max_step or max_steps")
    else:
        dyn = check_dynamics(dynamics, lr, flow_tol, problem.t, max_steps=max_steps)
        steps = [dyn.lr]
    gb = _memory_gb(problem, steps[-1], n_samples, chunk)
    if gb > max_memory_gb:
        raise ValueError(f"max_memory_gb: this call needs about {gb:.2g} GB (GD step "
                         f"{steps[-1]:g}, n_samples = {n_samples}); lower n_samples or chunk, "
                         "coarsen lr (max_step), or raise max_memory_gb")
    return problem, steps, dyn, gb


def _memory_gb(problem, step, n_samples, chunk) -> float:
    P = problem.n_train
    L = (int(round(problem.t[-1] / step)) + 1) * P
    return 8 * (L * L * (1 + P * P) + n_samples * (chunk * (P + 1) * (P + 2) + 12 * L
                                                    + 4 * (P + 1) * L // P)) / 1e9


#: statistics extrapolated to gradient flow, and those whose change is the flow error
_FLOW_KEYS = ("delta", "ntk", "ntk_var", "delta_cov", "delta_shift", "ntk_shift", "loss_gap")
_ERROR_KEYS = ("delta", "ntk", "ntk_var", "loss_gap")


def _richardson(coarse: dict, fine: dict) -> dict:
    """First-order Richardson extrapolation ``2 fine - coarse`` (GD steps ``2h`` and ``h``)."""
    best = dict(fine)
    for k in _FLOW_KEYS:
        best[k] = 2.0 * fine[k] - coarse[k]
    for k in ("ntk_var_se", "loss_gap_se", "train_loss_se"):
        best[k] = np.sqrt(4.0 * fine[k] ** 2 + coarse[k] ** 2)
    return best


def dmft_two_layer_finite_width(
    X: Float[Array, "P D"],
    y: Float[Array, " P"],
    t: Float[Array, " T"],
    gamma0: float,
    *,
    key: Array,
    activation: str = "tanh",
    dynamics: str = "flow",
    lr: float | None = None,
    flow_tol: float = 1e-2,
    max_step: float = 0.1,
    centered: bool = False,
    n_samples: int = 8192,
    n_mean: int = 2**18,
    n_scrambles: int = 4,
    kink_width: float = 0.05,
    chunk: int = 16,
    max_steps: int = 2000,
    max_memory_gb: float = 4.0,
    throw: bool = True,
) -> FiniteWidthResult:
    r"""Leading-order finite-width theory of a two-layer mean-field network: :math:`N` times
    the variance of the NTK and of the predictions over initialisations, and :math:`N` times
    the shift of the mean error, NTK and training loss (module docstring; Bordelon & Pehlevan
    2023, arXiv 2304.03408).

    The network and its training are those of :func:`~theorysim.theory.dmft_two_layer`,
    :math:`f(x) = rac1{\gamma_0N}\sum_i z_i\phi(w_i\cdot x/\sqrt D)` with standard Gaussian
    initialisation, trained on :math:`rac1{2P}\sum_\mu (f_\mu - y_\mu)^2` by gradient flow
    (``dynamics="flow"``, the default of every DMFT solver: Richardson extrapolation of GD at
    the steps ``max_step / 2`` and ``max_step / 4``, error estimate from ``max_step`` too, all
    three halved until ``flow_error <= flow_tol`` while ``max_steps`` and ``max_memory_gb``
    allow; output times must be multiples of ``max_step``) or by GD with step
    ``lr * gamma0**2 * N`` (``dynamics="gd", lr=eta``). By default the output is not centred
    (the real network: :math:`f(0)
e0` at finite :math:`N` adds
    :math:`\mathbb E\phi(h)^2/\gamma_0^2` to ``N Var f(0)``); ``centered=True`` subtracts the
    initial output :math:`f(x; 	heta_0)`.

    Regime: leading order in :math:`1/N` at fixed ``gamma0 > 0`` (the expansion holds while the
    corrections stay small: ``ntk_var / N`` against ``ntk**2``). Averages over the initial
    distribution use ``n_samples`` randomised-QMC particles for the sensitivities and
    ``n_scrambles`` scramblings of ``n_mean`` points for :math:`\Delta^*` (its scatter is
    ``train_loss_se``); ``ntk_var_se`` and ``loss_gap_se`` are the particle scatter of the
    corresponding averages. The default ``flow_tol`` (1e-2, not the 1e-4 of the infinite-width
    solvers) is at the level of that particle error at the default ``n_samples``: a finer time
    integration would not make the corrections more accurate.

    Args:
      X: ``(P, D)`` training inputs. y: ``(P,)`` targets.
      t: ``(T,)`` positive, strictly increasing output times (multiples of ``lr`` for GD, of
        ``max_step`` for gradient flow).
      gamma0: richness ``> 0``.
      key: PRNG key (keyword-only) for the scramblings.
      activation: ``"tanh"``, ``"erf"``, ``"relu"`` or ``"linear"``.
      dynamics: ``"flow"`` (gradient flow, no ``lr``) or ``"gd"`` (needs ``lr``).
      lr: the GD step in DMFT time.
      flow_tol: gradient flow: largest accepted estimated error (``flow_error``) of ``delta``,
        ``ntk``, ``ntk_var`` and ``loss_gap``, relative to their largest entry.
      max_step: gradient flow: the coarsest GD step of the extrapolation.
      centered: subtract the initial network output.
      n_samples: particles of the sensitivities (``>= 64``). n_mean: points for
        :math:`\Delta^*` (``>= n_samples``); both powers of 2.
      n_scrambles: independent scramblings of the ``n_mean`` points (``>= 2``).
      kink_width: ReLU: the corrections are those of the Gaussian-smoothed network
        :math:`\mathbb E\,\mathrm{relu}(h + w\epsilon)` with this :math:`w` (``> 0``; bias
        falling with :math:`w`, module docstring). Smaller values need ``lr`` below about
        ``5 w / |c_1|`` for GD to hold sliding neurons (module docstring) and more particles.
      chunk: Jacobian directions per vectorised pass. max_steps: cap on GD steps.
      max_memory_gb: refuse calls whose estimated working memory exceeds this
        (:func:`check_finite_width` gives the estimate without computing).
      throw: raise :class:`theorysim.ConvergenceError` if not converged.

    Returns:
      :class:`FiniteWidthResult`.

    Example:
      A linear network at the start of training: ``N Var K_00 = Var(h^2 + z^2)`` with
      :math:`h, z` independent standard normals, i.e. 4.

      >>> r = dmft_two_layer_finite_width(np.eye(2) * 2 ** 0.5, np.ones(2), [0.1], 1.0,
      ...     key=jax.random.key(0), activation="linear", dynamics="gd", lr=0.05,
      ...     n_samples=4096)
      >>> round(float(r.ntk_var[0, 0, 0]), 1)
      4.0
    """
    problem, steps, dyn, _ = _plan(
        X, y, t, gamma0, key=key, activation=activation, dynamics=dynamics, lr=lr,
        flow_tol=flow_tol, max_step=max_step, centered=centered, n_samples=n_samples,
        n_mean=n_mean, n_scrambles=n_scrambles, kink_width=kink_width, chunk=chunk,
        max_steps=max_steps, max_memory_gb=max_memory_gb, throw=throw)
    centered = bool(centered)
    with jax.enable_x64(True):
        Xa = jnp.asarray(problem.X)
        phi0 = Xa @ Xa.T / Xa.shape[1]
        lam, V = jnp.linalg.eigh(phi0)
        root = (V * jnp.sqrt(jnp.maximum(lam, 0.0))) @ V.T
        k_mean, k_sens = jax.random.split(key)
        Hm, Zm = _particles(k_mean, n_mean, root, n_scrambles)
        k_sens, k_pair = jax.random.split(k_sens)
        Hs, Zs = _particles(k_sens, n_samples, root, 1)
        pair = jax.random.permutation(k_pair, n_samples)
        yj = jnp.asarray(problem.y)
        cache: dict[float, dict] = {}

        def level(step):
            if step in cache:
                return cache[step]
            n_steps = int(round(problem.t[-1] / step))
            rec = tuple(int(v) for v in np.round(problem.t / step))
            run = jax.jit(partial(_infinite_width, n_steps=n_steps, gamma0=float(gamma0),
                                  lr=step, activation=activation))
            dreps, kreps = jax.vmap(lambda h, z: run(h, z, yj, phi0))(Hm, Zm)
            dstar = dreps.mean(0)
            loss_reps = 0.5 * jnp.mean(dreps[:, list(rec)] ** 2, axis=2)
            out = _corrections(Hs[0], Zs[0], dstar, phi0, float(gamma0), step,
                               float(kink_width), pair, activation=activation,
                               centered=centered, chunk=chunk, rec=rec)
            out = {k: np.asarray(v) for k, v in out.items()}
            out["delta"] = np.asarray(dstar)[list(rec)]
            out["ntk"] = np.asarray(kreps.mean(0))[list(rec)]  # the n_mean points, as delta
            out["delta_steps"] = np.asarray(dstar)
            out["train_loss_se"] = np.asarray(loss_reps.std(0, ddof=1)) / math.sqrt(n_scrambles)
            cache[step] = out
            return out

        flow_err = 0.0
        if dyn.kind == "gd":
            best = level(steps[0])
        while dyn.kind == "flow":
            s1, s2, s3 = steps
            best = _richardson(level(s2), level(s3))
            rough = _richardson(level(s1), level(s2))
            flow_err = 0.0
            for k in _ERROR_KEYS:
                scale = max(float(np.max(np.abs(best[k]))), 1e-300)
                flow_err = max(flow_err, float(np.max(np.abs(best[k] - rough[k]))) / 3 / scale)
            finer = s3 / 2
            if (flow_err <= flow_tol or not math.isfinite(flow_err)
                    or problem.t[-1] / finer > max_steps + 0.5
                    or _memory_gb(problem, finer, n_samples, chunk) > max_memory_gb):
                break
            steps = [s2, s3, finer]
    solve_res = max(float(s["residual"]) for s in cache.values())
    d = best["delta"]
    result = FiniteWidthResult(
        t=problem.t.copy(), delta=d, delta_steps=best["delta_steps"],
        train_loss=0.5 * np.mean(d * d, axis=1),
        train_loss_se=best["train_loss_se"], ntk=best["ntk"], ntk_var=best["ntk_var"],
        ntk_var_se=best["ntk_var_se"], delta_cov=best["delta_cov"],
        delta_shift=best["delta_shift"], ntk_shift=best["ntk_shift"],
        loss_gap=best["loss_gap"], loss_gap_se=best["loss_gap_se"],
        converged=bool(solve_res < 1e-8 and flow_err <= flow_tol),
        residual=max(solve_res, flow_err), iterations=len(cache), dynamics=dyn.kind,
        lr=dyn.lr, flow_error=flow_err, centered=centered, n_samples=n_samples,
        n_mean=n_mean)
    return finish(result, throw=throw, solver="DMFT finite-width (two layer)",
                  hint="flow: raise max_steps or max_memory_gb (finer steps), or flow_tol")
