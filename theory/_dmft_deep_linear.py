r"""DMFT of deep linear networks: the field equations are linear, so every order parameter
follows from matrix algebra on the (time x point) grid, with no sampling.

With :math:`\phi(h) = h` the single-site equations of Bordelon & Pehlevan (2022, arXiv
2205.09653) for layer :math:`l = 1..L` read, as vectors on the flattened grid,

.. math::
    h^l = u^l + \mathcal K_l z^l,\quad z^l = r^l + \mathcal J_l h^l,\quad
    \mathcal K_l = A^{l-1} + Q_{\Phi^{l-1}},\quad \mathcal J_l = B^l + Q_{G^{l+1}},

with sources :math:`u^l\sim\mathcal N(0,\Phi^{l-1})`, :math:`r^l\sim\mathcal N(0,G^{l+1})`
(independent), :math:`A^0 = B^L = 0`, :math:`G^{L+1} = 1`, and :math:`Q_X` the causal memory
operator of :func:`theorysim.theory._dmft_common.memory_operator`. With
:math:`S_l = (I - \mathcal K_l\mathcal J_l)^{-1}` (unit lower triangular: the memory is strictly
causal),

.. math::
    \Phi^l = S_l(\Phi^{l-1} + \mathcal K_l G^{l+1}\mathcal K_l^\top)S_l^\top,\quad
    G^l = M_l G^{l+1} M_l^\top + \mathcal J_l S_l\Phi^{l-1}S_l^\top\mathcal J_l^\top,\quad
    M_l = I + \mathcal J_l S_l\mathcal K_l,

and the responses are :math:`A^l = \partial h^l/\partial r^l = S_l\mathcal K_l`,
:math:`B^{l-1} = \partial z^l/\partial u^l = \mathcal J_l S_l`. These maps and the error
dynamics are iterated to self-consistency with damping.
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
    check_dynamics,
    check_problem,
    check_solver_args,
    finish,
    memory_operator,
    solve_dynamics,
)
from ._dmft_common import (
    error_dynamics as _error_dynamics,
)


def equal_time(kernel, T1: int, n_all: int):
    """``(T1, P_all, P_all)`` equal-time blocks :math:`X(t_n, t_n)` of a flattened kernel."""
    k = kernel.reshape(T1, n_all, T1, n_all)
    idx = jnp.arange(T1)
    return k[idx, :, idx, :]


def ntk_from_kernels(phis, gs, T1: int, n_all: int):
    r""":math:`K(t) = \sum_{l=0}^L G^{l+1}(t,t)\odot\Phi^l(t,t)` from lists ``phis`` (l = 0..L)
    and ``gs`` (l = 1..L+1) of flattened kernels."""
    return sum(equal_time(p, T1, n_all) * equal_time(g, T1, n_all)
               for p, g in zip(phis, gs, strict=True))


@partial(jax.jit, static_argnames=("depth", "n_train", "max_iter", "lazy", "euler"))
def deep_linear_core(phi0, y, t, gamma0, damping, tol, *, depth: int, n_train: int,
                     max_iter: int, lazy: bool = False, euler: bool = False):
    r"""Jittable damped fixed point. Returns ``(delta, f_test, ntk, Phi[1..L], G[1..L],
    residuals (max_iter,), n_iter)``. ``lazy`` (for ``gamma0 = 0``) takes the error from the
    kernel, :math:`\dot\Delta = -K\Delta/P`; otherwise the output is read off the fields,
    :math:`f_\mu(t) = \langle z^L(t) h^L_\mu(t)\rangle/\gamma_0`."""
    error_dynamics = partial(_error_dynamics, euler=euler)
    T1 = t.shape[0]
    n_all = phi0.shape[0]
    N = T1 * n_all
    L = depth
    eye = jnp.eye(N, dtype=phi0.dtype)
    ones = jnp.ones((N, N), phi0.dtype)
    Phi0 = jnp.tile(phi0, (T1, T1))
    zeros = jnp.zeros((N, N), phi0.dtype)

    def kernels_to_delta(phis, gs):
        ntk = ntk_from_kernels([Phi0, *phis], [*gs, ones], T1, n_all)
        d, fte = error_dynamics(ntk, y, t, n_train)
        return d, fte, ntk

    def update(state):
        # Phi^1..L, G^1..L, A^1..L-1, B^1..L-1, f read off the fields (T1, P_all), and the
        # error d_ref (T1, P) that drove those fields
        phis, gs, As, Bs, f_ref, d_ref = state
        ntk = ntk_from_kernels([Phi0, *phis], [*gs, ones], T1, n_all)
        if lazy:
            d, _ = error_dynamics(ntk, y, t, n_train)
        else:
            d, _ = error_dynamics(ntk, y, t, n_train, f_ref, d_ref)
        P_all = [Phi0, *phis]
        G_all = [*gs, ones]
        A_all = [zeros, *As]  # A^0..A^{L-1}
        B_all = [*Bs, zeros]  # B^1..B^L
        new_phi, new_g, new_A, new_B = [], [], [], []
        for i in range(L):  # layer l = i + 1
            K = A_all[i] + memory_operator(P_all[i], d, t, n_train, gamma0)
            J = B_all[i] + memory_operator(G_all[i + 1], d, t, n_train, gamma0)
            S = jax.scipy.linalg.solve_triangular(eye - K @ J, eye, lower=True,
                                                  unit_diagonal=True)
            SK = S @ K
            JS = J @ S
            new_phi.append(S @ P_all[i] @ S.T + SK @ G_all[i + 1] @ SK.T)
            M = eye + J @ SK
            new_g.append(M @ G_all[i + 1] @ M.T + JS @ P_all[i] @ JS.T)
            if i < L - 1:
                new_A.append(SK)
            if i > 0:
                new_B.append(JS)
        if lazy:
            dk, fte, _ = kernels_to_delta(new_phi, new_g)
            new_f = jnp.concatenate([y[None, :] - dk, fte], axis=1)
        else:  # <h^L z^L> on the diagonal, z^L = w^L(t) the readout
            cross = S @ P_all[L - 1] @ JS.T + SK @ G_all[L] @ M.T
            new_f = jnp.diagonal(cross).reshape(T1, n_all) / gamma0
        return new_phi, new_g, new_A, new_B, new_f, d

    def body(carry):
        state, res, it = carry
        new = update(state)
        scale = jax.tree_util.tree_map(lambda a: jnp.max(jnp.abs(a)), state)
        diff = jax.tree_util.tree_map(lambda a, b, s: jnp.max(jnp.abs(a - b)) / jnp.maximum(s, 1.0),
                                      new, state, scale)
        r = jnp.max(jnp.asarray(jax.tree_util.tree_leaves(diff)))
        state = jax.tree_util.tree_map(lambda a, b: (1 - damping) * a + damping * b, state, new)
        return state, res.at[it].set(r), it + 1

    def cond(carry):
        _, res, it = carry
        last = res[jnp.maximum(it - 1, 0)]
        return (it < max_iter) & ((it == 0) | (last > tol))  # NaN residual stops too

    d0, fte0, _ = kernels_to_delta([Phi0] * L, [ones] * L)
    f0 = jnp.concatenate([y[None, :] - d0, fte0], axis=1)
    state0 = ([Phi0] * L, [ones] * L, [zeros] * (L - 1), [zeros] * (L - 1), f0, d0)
    res0 = jnp.full((max_iter,), jnp.nan, phi0.dtype)
    state, res, it = jax.lax.while_loop(cond, body, (state0, res0, 0))
    ntk = ntk_from_kernels([Phi0, *state[0]], [*state[1], ones], T1, n_all)
    d, fte = error_dynamics(ntk, y, t, n_train, *(() if lazy else (state[4], state[5])))
    return (d, fte, ntk, jnp.stack(state[0]),
            jnp.stack(state[1]), res, it)


def dmft_deep_linear(
    X: Float[Array, "P D"],
    y: Float[Array, " P"],
    t: Float[Array, " T"],
    gamma0: float,
    *,
    depth: int = 1,
    dynamics: str = "flow",
    lr: float | None = None,
    flow_tol: float = 1e-4,
    X_test: Float[Array, "Q D"] | None = None,
    damping: float = 0.5,
    tol: float = 1e-10,
    max_iter: int = 500,
    max_grid: int = 1600,
    throw: bool = True,
) -> DMFTResult:
    r"""DMFT of a deep linear network (``depth`` hidden layers) trained by gradient flow or GD.

    .. math::
        f(x) = \frac{1}{\gamma_0 N} w^L\cdot h^L,\quad h^{l+1} = W^l h^l/\sqrt N,\quad
        h^1 = W^0x/\sqrt D,\qquad
        \dot\theta = -\gamma_0^2N\,\nabla_\theta\frac1{2P}\sum_\mu(f(x_\mu)-y_\mu)^2,

    at infinite width and fixed richness :math:`\gamma_0`. Time ``t`` is gradient-flow time on
    the ``1/(2P)`` mean-squared error with learning rate :math:`\gamma_0^2 N`.

    Dynamics (the same arguments for every DMFT solver): ``dynamics="gd", lr=eta`` solves
    gradient descent with step ``eta * gamma0**2 * N`` exactly (the memory integrals on the step
    grid ``eta * k`` with the left-rectangle rule are the discrete-time DMFT of GD; outputs at
    ``t``, which must be multiples of ``eta``). ``dynamics="flow"`` solves gradient flow: the
    GD solution is smooth in the step, so GD solves on ``[0, *t]`` refined 1, 2, 4 times are
    Richardson-extrapolated to step 0 (third order), with the grid refined further until the
    estimated error ``flow_error`` (change against the second-order extrapolation) is below
    ``flow_tol``; ``converged`` requires both. Exact check: one hidden layer, ``P = 1``,
    :math:`|x|^2 = D`: :math:`K(\infty) = 2\sqrt{1+\gamma_0^2y^2}`.

    The order parameters solve the linear field equations of the module docstring by damped
    fixed-point iteration (no sampling); the output is
    :math:`f_\mu = \langle z^L h^L_\mu\rangle/\gamma_0` from the field covariances
    (``gamma0 = 0``: :math:`\Delta = e^{-Kt/P}y`).

    Regime: infinite width, muP / mean-field scaling (Bordelon & Pehlevan 2022, arXiv
    2205.09653). Cost per iteration :math:`O(L (TP)^3)` dense algebra on a grid of ``T``
    times, memory :math:`O(L (TP)^2)`.

    Args:
      X: ``(P, D)`` training inputs. y: ``(P,)`` targets.
      t: ``(T,)`` positive, strictly increasing output times; the result's grid is ``[0, *t]``.
      gamma0: richness ``>= 0``.
      depth: hidden layers ``L >= 1``.
      dynamics: ``"flow"`` (gradient flow) or ``"gd"`` (gradient descent, needs ``lr``).
      lr: GD step in DMFT time (only with ``dynamics="gd"``).
      flow_tol: target relative time-integration error for ``dynamics="flow"``.
      X_test: optional ``(Q, D)`` test inputs.
      damping: weight of the new iterate in ``(0, 1]``.
      tol: target residual (max change of the kernels relative to their scale).
      max_iter: iteration cap (per grid).
      max_grid: largest ``(grid times) * P_all`` solved (memory / time guard): a GD step grid
        beyond it is a ``ValueError``; gradient flow stops refining there.
      throw: raise :class:`theorysim.ConvergenceError` if not converged.

    Returns:
      :class:`DMFTResult` (``n_samples = 0``, no standard errors).

    Example:
      >>> r = dmft_deep_linear(np.ones((1, 4)), np.ones(1), np.linspace(0.5, 5, 10), 0.5)
      >>> bool(abs(r.ntk[-1, 0, 0] / (2 * np.sqrt(1.25)) - 1) < 1e-2)
      True
    """
    problem = check_problem(X, y, t, gamma0, X_test)
    check_solver_args(damping=damping, tol=tol, max_iter=max_iter, depth=depth, throw=throw)
    max_grid = check_scalar("max_grid", max_grid, lo=2, integer=True)
    dyn = check_dynamics(dynamics, lr, flow_tol, problem.t, max_steps=max_grid)
    n_all = problem.n_all
    base = (problem.t.shape[0] if dyn.kind == "flow" else int(dyn.steps[-1]) + 1) * n_all
    if base * (4 if dyn.kind == "flow" else 1) > max_grid:
        raise ValueError(f"the time grid has {base // n_all} times x {n_all} points"
                         f"{' (x4 for the flow extrapolation)' if dyn.kind == 'flow' else ''}, "
                         f"more than max_grid={max_grid}: use fewer output times t (or a larger "
                         "lr), or raise max_grid (memory ~ 8 L (T P)^2 bytes, time ~ (T P)^3)")

    def solve(grid):
        with jax.enable_x64(True):
            Xa = jnp.asarray(problem.X)
            phi0 = Xa @ Xa.T / problem.X.shape[1]
            d, fte, ntk, phis, gs, res, it = deep_linear_core(
                phi0, jnp.asarray(problem.y), jnp.asarray(grid), problem.gamma0,
                float(damping), float(tol), depth=int(depth), n_train=problem.n_train,
                max_iter=int(max_iter), lazy=problem.gamma0 == 0.0,
                euler=dyn.kind == "gd")
            it = int(it)
            res = np.asarray(res[:it])
            T1 = grid.shape[0]
            shape = (int(depth), T1, n_all, T1, n_all)
            r = float(res[-1]) if it else math.inf
            return dict(delta=d, fte=fte, ntk=ntk, phi=np.asarray(phis).reshape(shape),
                        g=np.asarray(gs).reshape(shape), residuals=res, residual=r,
                        iterations=it, converged=bool(it > 0 and r <= tol))

    sol, ferr = solve_dynamics(solve, problem.t, dyn, n_all=n_all, levels=3, max_grid=max_grid)
    return finish(problem, delta=sol["delta"], ntk=sol["ntk"], phi=sol["phi"], g=sol["g"],
                  residuals=sol["residuals"], residual=sol["residual"],
                  iterations=sol["iterations"],
                  converged=sol["converged"] and ferr <= dyn.flow_tol, n_samples=0,
                  ntk_se=None, loss_se=None, method="deep_linear", test_predictions=sol["fte"],
                  dyn=dyn, flow_error=ferr if dyn.kind == "flow" else 0.0, throw=throw,
                  hint="increase max_iter, lower damping, or (flow) raise max_grid/flow_tol")
