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
(RK4 for gradient flow, Euler steps for GD) with the error read off them,
:math:`\Delta = y - \langle z\phi(h) - z(0)\phi(h(0))\rangle/\gamma_0`; no outer iteration
is needed. For ReLU, neurons slide on the kink of a training point (Filippov sliding mode);
the returned NTK gives them their Filippov slope, so that it is the kernel that drives
:math:`\dot\Delta = -K\Delta/P` (see :mod:`theorysim.theory._dmft_kink` for what was found
and :func:`~theorysim.theory.sliding_ntk` for the same observable on networks).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from theorysim.checks import check_key, check_scalar

from ._dmft_common import (
    DMFTResult,
    activation_pair,
    check_dynamics,
    check_problem,
    check_solver_args,
    finish,
    psd_sqrt,
)
from ._dmft_kink import filippov_slopes


@partial(jax.jit, static_argnames=("activation", "n_train", "kernels", "lazy", "scheme"))
def particle_solve(h0, z0, phi0, y, t, gamma0, n_sub, *, activation: str, n_train: int,
                   kernels: bool, lazy: bool = False, scheme: str = "rk4"):
    r"""Jittable core: particles ``h0 (S, P_all)``, ``z0 (S,)`` and the error stepped over
    each interval ``[t_n, t_{n+1}]`` in ``n_sub[n]`` equal steps of ``scheme`` (``"rk4"``:
    classical Runge-Kutta for gradient flow; ``"euler"``: exactly gradient descent).

    Unless ``lazy`` (``gamma0 = 0``), the error is read off the particles,
    :math:`\Delta = y - (f - f_0)` with :math:`f = \langle z\phi(h)\rangle/\gamma_0`, rather than
    integrated from :math:`K\Delta`: exact for every activation. The recorded ReLU NTK uses
    Filippov slopes for neurons sliding on a kink (``_dmft_kink``).

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

    def euler(state, hstep):
        return axpy(hstep, rhs(state), state)

    stepper = rk4 if scheme == "rk4" else euler

    def interval(state, xs):
        dt, n = xs
        state = jax.lax.fori_loop(0, n, lambda _, s: stepper(s, dt / n), state)
        return state, record(state, dt / n)

    def record(state, step):
        """Outputs at a grid time; the NTK with ReLU neurons on the kink at their Filippov
        slope (``step`` = the time step, see :mod:`theorysim.theory._dmft_kink`)."""
        h, z, _, _ = state
        d, fte = error(state)
        if activation == "relu" and not lazy:
            ph = act(h)
            g = filippov_slopes(h, z, d, phi0, gamma0, step) * z[:, None]
            K = (ph.T @ ph + (g.T @ g) * phi0) / S
        else:
            K, ph, g = ntk_of(h, z)
        out = (d, fte, K)
        return out + ((ph, g) if kernels else ())

    f0 = jnp.zeros((h0.shape[1] - P,), h0.dtype)
    state0 = (h0, z0, y, f0)
    _, traj = jax.lax.scan(interval, state0, (jnp.diff(t), n_sub))
    first = record(state0, t[1] / n_sub[0])
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
    dynamics: str = "flow",
    lr: float | None = None,
    flow_tol: float = 1e-4,
    n_samples: int = 4096,
    X_test: Float[Array, "Q D"] | None = None,
    max_step: float = 0.02,
    n_groups: int = 8,
    max_iter: int = 6,
    max_steps: int = 10**6,
    throw: bool = True,
) -> DMFTResult:
    r"""Mean-field DMFT of a two-layer network trained by gradient flow or GD at richness gamma0.

    .. math::
        f(x) = \frac{1}{\gamma_0 N}\sum_{i=1}^N w_i\,\phi(w^0_i\cdot x/\sqrt D),\qquad
        \dot\theta = -\gamma_0^2 N\,\nabla_\theta\frac1{2P}\sum_\mu(f(x_\mu)-y_\mu)^2,

    in the limit :math:`N\to\infty` at fixed :math:`\gamma_0`, with standard Gaussian
    initialisation. The error obeys :math:`\dot\Delta = -\frac1P K(t)\Delta` with
    :math:`K(t) = \Phi^1(t,t) + G^1(t,t)\odot\Phi^0`. ``gamma0 = 0`` is the lazy (NTK) limit,
    where :math:`\Delta(t) = e^{-Kt/P}y`.

    Dynamics (the same arguments for every DMFT solver): ``dynamics="gd", lr=eta`` is gradient
    descent with step ``eta * gamma0**2 * N`` on that loss, i.e. explicit Euler steps of size
    ``eta`` for the particles (exact at infinite width; ``t`` must be multiples of ``eta``).
    ``dynamics="flow"`` is gradient flow by RK4 with at most ``max_step`` per step, halved
    (up to ``max_iter`` rounds) until the largest change of ``delta`` and ``ntk`` between two
    resolutions, relative to their largest entry, is below ``flow_tol``; that change is the
    reported ``flow_error`` and ``residual``.

    Regime: mean-field / muP limit (Bordelon & Pehlevan 2022, arXiv 2205.09653); finite-N
    corrections are :math:`O(1/N)` in the mean (arXiv 2304.03408). ``n_samples`` neurons are
    simulated as particles, so the Monte-Carlo error behaves like that of a width-``n_samples``
    network; it is estimated by batch means over ``n_groups`` independent particle systems of
    ``n_samples // n_groups`` neurons each. The initial particles of each group are
    moment-matched (sample mean 0, sample covariance exactly :math:`\Phi^0\oplus 1`) when a
    group has at least ``2 (P_all + 1)`` of them, which makes the linear network exact and cuts
    the variance elsewhere at an :math:`O(1/n)` bias. ``n_samples`` is rounded down to a
    multiple of ``n_groups``.

    Args:
      X: ``(P, D)`` training inputs. y: ``(P,)`` targets.
      t: ``(T,)`` positive, strictly increasing output times (the grid is ``[0, *t]``).
      gamma0: richness ``>= 0``.
      key: PRNG key (keyword-only) for the particles.
      activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"linear"``.
      dynamics: ``"flow"`` (gradient flow) or ``"gd"`` (gradient descent, needs ``lr``).
      lr: GD step in DMFT time (only with ``dynamics="gd"``).
      flow_tol: target relative time-integration error for ``dynamics="flow"``.
      n_samples: number of particles ``>= 2``.
      X_test: optional ``(Q, D)`` test inputs (passive particles).
      max_step: largest first RK4 step ``> 0`` (gradient flow).
      n_groups: groups for the batch-means standard error (``2 <= n_groups <= n_samples``).
      max_iter: step-halving rounds (gradient flow).
      max_steps: cap on the total number of time steps (guards against a tiny ``lr``).
      throw: raise :class:`theorysim.ConvergenceError` if not converged.

    ReLU: neurons that slide on the kink of a training point (both sides push them onto it)
    enter ``ntk`` and ``g`` with their Filippov slope instead of :math:`1[h>0]` at an instant
    (found in issue 13: the instantaneous kernel misses the measured :math:`\dot\Delta` by
    ~15% at gamma0 = 2 while the Filippov kernel reproduces it; details in
    ``theorysim.theory._dmft_kink``). The same observable on networks:
    :func:`~theorysim.theory.sliding_ntk`.

    Returns:
      :class:`DMFTResult` with ``phi``, ``g`` of shape ``(1, T+1, P_all, T+1, P_all)``.

    Example:
      >>> r = dmft_two_layer(np.ones((1, 4)), np.ones(1), np.linspace(0.1, 5, 50), 0.5,
      ...                    key=jax.random.key(0), activation="linear")
      >>> round(float(r.ntk[-1, 0, 0]), 3)  # 2 sqrt(1 + gamma0^2 y^2) at t = inf
      2.236
    """
    problem = check_problem(X, y, t, gamma0, X_test)
    check_solver_args(n_samples=n_samples, activation=activation, max_iter=max_iter,
                      throw=throw)
    check_scalar("max_step", max_step, lo=0.0, hi=1e6, lo_open=True)
    check_key("key", key)
    check_scalar("n_groups", n_groups, lo=2, hi=n_samples, integer=True)
    dyn = check_dynamics(dynamics, lr, flow_tol, problem.t, max_steps=max_steps)
    dts = np.diff(problem.t)
    if dyn.kind == "gd":
        n_sub = np.diff(dyn.steps)
    else:
        n_sub = np.maximum(1, np.ceil(dts / max_step)).astype(np.int64)
        if n_sub.sum() * 2 ** (max_iter - 1) > max_steps:
            raise ValueError(f"max_step={max_step:g} and max_iter={max_iter} allow "
                             f"{int(n_sub.sum() * 2 ** (max_iter - 1))} RK4 steps, more than "
                             f"max_steps={max_steps}; raise max_step, lower max_iter, or "
                             "raise max_steps")
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
        args = dict(activation=activation, n_train=problem.n_train,
                    lazy=problem.gamma0 == 0.0,
                    scheme="euler" if dyn.kind == "gd" else "rk4")
        yj, tj = jnp.asarray(problem.y), jnp.asarray(problem.t)

        def full(ns):
            return particle_solve(h0, z0, phi0, yj, tj, gamma0, jnp.asarray(ns), kernels=True,
                                  **args)

        out = full(n_sub)
        errs, rounds = [], 1
        if dyn.kind == "flow":
            while rounds < max_iter + 1:
                n_sub = 2 * n_sub
                new = full(n_sub)
                errs.append(_rel_change(new, out))
                out, rounds = new, rounds + 1
                if errs[-1] <= dyn.flow_tol:
                    break
        d, fte, K, phi1, g1 = out
        gh = h0.reshape(n_groups, m, -1)
        gz = z0.reshape(n_groups, m)
        group = jax.vmap(lambda a, b: particle_solve(a, b, phi0, yj, tj, gamma0,
                                                     jnp.asarray(n_sub), kernels=False,
                                                     **args)[:3])
        dg, _, Kg = group(gh, gz)
        loss_g = 0.5 * jnp.mean(dg * dg, axis=2)
        scale = 1.0 / math.sqrt(n_groups)
        ntk_se = jnp.std(Kg, axis=0, ddof=1) * scale
        loss_se = jnp.std(loss_g, axis=0, ddof=1) * scale
    ferr = errs[-1] if errs else 0.0
    if dyn.kind == "flow" and not errs:
        ferr = math.inf
    return finish(problem, delta=d, ntk=K, phi=phi1[None], g=g1[None], residuals=errs or [0.0],
                  residual=ferr, iterations=max(len(errs), 1), converged=ferr <= dyn.flow_tol,
                  n_samples=n_groups * m, ntk_se=ntk_se, loss_se=loss_se,
                  method="two_layer_particles", test_predictions=fte, dyn=dyn,
                  flow_error=ferr, throw=throw,
                  hint="raise max_iter (step halvings) or flow_tol")


def _rel_change(new, old) -> float:
    """Largest change of ``delta`` and ``ntk`` between two resolutions, relative to their
    largest entry."""
    err = 0.0
    for a, b in ((new[0], old[0]), (new[2], old[2])):
        scale = max(float(jnp.max(jnp.abs(a))), 1e-300)
        err = max(err, float(jnp.max(jnp.abs(a - b))) / scale)
    return err if math.isfinite(err) else math.inf
