r"""DMFT of a two-layer network in the mean-field / muP limit: a mean-field particle method.

For one hidden layer the response functions vanish and each neuron's pre-activations
:math:`h\in\mathbb R^{P_{all}}` and readout weight :math:`z` evolve deterministically given
the error :math:`\Delta(t)` (Bordelon & Pehlevan 2022, arXiv 2205.09653, section 4):

.. math::
    \dot h_\mu = \frac{\gamma_0}{P}\sum_{a\le P}\Phi^0_{\mu a}\Delta_a\,\phi'(h_a)z,\qquad
    \dot z = \frac{\gamma_0}{P}\sum_{a\le P}\Delta_a\phi(h_a),\qquad
    \dot\Delta = -\frac1P K\Delta,

with :math:`h(0)\sim\mathcal N(0,\Phi^0)`, :math:`\Phi^0 = XX^\top/D`,
:math:`z(0)\sim\mathcal N(0,1)` and
:math:`K = \langle\phi(h)\phi(h)^\top\rangle + \langle g g^\top\rangle\odot\Phi^0`,
:math:`g = \phi'(h)z`. The self-consistency is solved exactly by integrating the particles
(classical RK4) with the error read off them,
:math:`\Delta = y - \langle z\phi(h) - z(0)\phi(h(0))\rangle/\gamma_0`; no outer iteration
is needed. (For ReLU this matters: neurons pinned at the kink make the integrated
:math:`K\Delta` drift from the network's own output by a step-size independent amount.)
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from theorysim.checks import check_scalar

from ._dmft_common import (
    DMFTResult,
    activation_pair,
    check_problem,
    check_solver_args,
    finish,
    psd_sqrt,
)


@partial(jax.jit, static_argnames=("activation", "n_train", "n_sub", "kernels", "lazy"))
def particle_solve(h0, z0, phi0, y, t, gamma0, *, activation: str, n_train: int, n_sub: int,
                   kernels: bool, lazy: bool = False):
    r"""Jittable core: RK4 for particles ``h0 (S, P_all)``, ``z0 (S,)`` and the error.

    Unless ``lazy`` (``gamma0 = 0``), the error is read off the particles,
    :math:`\Delta = y - (f - f_0)` with :math:`f = \langle z\phi(h)\rangle/\gamma_0`, rather than
    integrated from :math:`K\Delta`: the two agree for smooth activations, but for ReLU neurons
    pinned at the kink (Filippov sliding) make :math:`\phi'(h)` in :math:`K` ambiguous, and the
    integrated error then drifts from the network's by a step-size independent amount.

    Returns ``delta (T1, P)``, ``f_test (T1, Q)``, ``ntk (T1, P_all, P_all)`` and, with
    ``kernels``, ``Phi^1, G^1`` as ``(T1, P_all, T1, P_all)`` (else ``None``).
    """
    act, dact = activation_pair(activation)
    P = n_train
    S = h0.shape[0]

    def ntk_of(h, z):
        ph = act(h)
        g = dact(h) * z[:, None]
        return (ph.T @ ph + (g.T @ g) * phi0) / S, ph, g

    c0 = z0 @ act(h0)

    def error(state):
        h, z, d, fte = state
        if lazy:
            return d, fte
        fa = (z @ act(h) - c0) / (gamma0 * S)
        return y - fa[:P], fa[P:]

    def rhs(state):
        h, z, _, _ = state
        d, _ = error(state)
        K, ph, g = ntk_of(h, z)
        dh = (gamma0 / P) * (g[:, :P] * d[None, :]) @ phi0[:, :P].T
        dz = (gamma0 / P) * (ph[:, :P] @ d)
        return (dh, dz, -(K[:P, :P] @ d) / P, (K[P:, :P] @ d) / P)

    def axpy(a, x, y_):
        return jax.tree_util.tree_map(lambda u, v: u + a * v, y_, x)

    def rk4(state, hstep):
        k1 = rhs(state)
        k2 = rhs(axpy(0.5 * hstep, k1, state))
        k3 = rhs(axpy(0.5 * hstep, k2, state))
        k4 = rhs(axpy(hstep, k3, state))
        inc = jax.tree_util.tree_map(lambda a, b, c, d: (a + 2 * b + 2 * c + d) / 6.0,
                                     k1, k2, k3, k4)
        return axpy(hstep, inc, state)

    def interval(state, dt):
        state = jax.lax.fori_loop(0, n_sub, lambda _, s: rk4(s, dt / n_sub), state)
        return state, record(state)

    def record(state):
        h, z, _, _ = state
        d, fte = error(state)
        K, ph, g = ntk_of(h, z)
        out = (d, fte, K)
        return out + ((ph, g) if kernels else ())

    f0 = jnp.zeros((h0.shape[1] - P,), h0.dtype)
    state0 = (h0, z0, y, f0)
    _, traj = jax.lax.scan(interval, state0, jnp.diff(t))
    first = record(state0)
    traj = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, traj)
    if not kernels:
        return traj[0], traj[1], traj[2], None, None
    d, fte, K, ph, g = traj
    phi1 = jnp.einsum("nsa,msb->namb", ph, ph) / S
    g1 = jnp.einsum("nsa,msb->namb", g, g) / S
    return d, fte, K, phi1, g1


def _whiten(eps):
    """Moment matching: make the sample mean 0 and the sample covariance the identity."""
    eps = eps - eps.mean(axis=0)
    cov = eps.T @ eps / eps.shape[0]
    chol = jnp.linalg.cholesky(cov)  # eps L^{-T}, by a triangular solve (no inverse)
    return jax.scipy.linalg.solve_triangular(chol, eps.T, lower=True).T


def dmft_two_layer(
    X: Float[Array, "P D"],
    y: Float[Array, " P"],
    t: Float[Array, " T"],
    gamma0: float,
    *,
    key: Array,
    activation: str = "relu",
    n_samples: int = 4096,
    X_test: Float[Array, "Q D"] | None = None,
    max_step: float = 0.02,
    n_groups: int = 8,
) -> DMFTResult:
    r"""Mean-field DMFT of a two-layer network trained by gradient flow at richness gamma0.

    .. math::
        f(x) = \frac{1}{\gamma_0 N}\sum_{i=1}^N w_i\,\phi(w^0_i\cdot x/\sqrt D),\qquad
        \dot\theta = -\gamma_0^2 N\,\nabla_\theta\frac1{2P}\sum_\mu(f(x_\mu)-y_\mu)^2,

    in the limit :math:`N\to\infty` at fixed :math:`\gamma_0`, with standard Gaussian
    initialisation. DMFT time ``t`` equals ``eta * steps`` of gradient descent with learning
    rate ``eta * gamma0**2 * N`` on that loss (the ``1/(2P)`` mean-squared error). The error
    obeys :math:`\dot\Delta = -\frac1P K(t)\Delta` with
    :math:`K(t) = \Phi^1(t,t) + G^1(t,t)\odot\Phi^0`. ``gamma0 = 0`` is the lazy (NTK) limit,
    where :math:`\Delta(t) = e^{-Kt/P}y`.

    Regime: mean-field / muP limit (Bordelon & Pehlevan 2022, arXiv 2205.09653); finite-N
    corrections are :math:`O(1/N)` in the mean (arXiv 2304.03408). ``n_samples`` neurons are
    simulated as particles (RK4 with at most ``max_step`` per step), so the Monte-Carlo error
    behaves like that of a width-``n_samples`` network; it is estimated by batch means over
    ``n_groups`` independent particle systems of ``n_samples // n_groups`` neurons each. The
    initial particles of each group are moment-matched (sample mean 0, sample covariance exactly
    :math:`\Phi^0\oplus 1`) when a group has at least ``2 (P_all + 1)`` of them, which makes the
    linear network exact and cuts the variance elsewhere at an :math:`O(1/n)` bias.
    ``n_samples`` is rounded down to a multiple of ``n_groups``.

    Args:
      X: ``(P, D)`` training inputs. y: ``(P,)`` targets.
      t: ``(T,)`` positive, strictly increasing output times (the grid is ``[0, *t]``).
      gamma0: richness ``>= 0``.
      key: PRNG key (keyword-only) for the particles.
      activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"linear"``.
      n_samples: number of particles ``>= 2``.
      X_test: optional ``(Q, D)`` test inputs (passive particles).
      max_step: largest RK4 step ``> 0``.
      n_groups: groups for the batch-means standard error (``2 <= n_groups <= n_samples``).

    Returns:
      :class:`DMFTResult` with ``phi``, ``g`` of shape ``(1, T+1, P_all, T+1, P_all)``;
      ``residuals = [0.]`` and ``n_iter = 1`` (the coupled ODE is the fixed point).

    Example:
      >>> r = dmft_two_layer(np.ones((1, 4)), np.ones(1), np.linspace(0.1, 5, 50), 0.5,
      ...                    key=jax.random.key(0), activation="linear")
    """
    problem = check_problem(X, y, t, gamma0, X_test)
    check_solver_args(n_samples=n_samples, activation=activation)
    check_scalar("max_step", max_step, lo=0.0, lo_open=True)
    check_scalar("n_groups", n_groups, lo=2, hi=n_samples, integer=True)
    n_sub = max(1, math.ceil(float(np.max(np.diff(problem.t))) / max_step))
    D = problem.X.shape[1]
    with jax.enable_x64(True):
        Xa = jnp.asarray(problem.X)
        phi0 = Xa @ Xa.T / D
        root, _ = psd_sqrt(phi0)
        m = n_samples // n_groups
        eps = jax.random.normal(key, (n_groups, m, problem.n_all + 1), jnp.float64)
        if m >= 2 * (problem.n_all + 1):
            eps = jax.vmap(_whiten)(eps)
        eps = eps.reshape(n_groups * m, -1)
        h0 = eps[:, :-1] @ root
        z0 = eps[:, -1]
        args = dict(activation=activation, n_train=problem.n_train, n_sub=n_sub,
                    lazy=problem.gamma0 == 0.0)
        yj, tj = jnp.asarray(problem.y), jnp.asarray(problem.t)
        d, fte, K, phi1, g1 = particle_solve(h0, z0, phi0, yj, tj, gamma0, kernels=True,
                                             **args)
        gh = h0[: m * n_groups].reshape(n_groups, m, -1)
        gz = z0[: m * n_groups].reshape(n_groups, m)
        group = jax.vmap(lambda a, b: particle_solve(a, b, phi0, yj, tj, gamma0,
                                                     kernels=False, **args)[:3])
        dg, _, Kg = group(gh, gz)
        loss_g = 0.5 * jnp.mean(dg * dg, axis=2)
        scale = 1.0 / math.sqrt(n_groups)
        ntk_se = jnp.std(Kg, axis=0, ddof=1) * scale
        loss_se = jnp.std(loss_g, axis=0, ddof=1) * scale
    return finish(problem, delta=d, ntk=K, phi=phi1[None], g=g1[None], residuals=[0.0],
                  n_iter=1, converged=True, n_samples=n_samples, ntk_se=ntk_se,
                  loss_se=loss_se, method="two_layer_particles", test_predictions=fte,
                  tol=0.0, raise_on_failure=False)
