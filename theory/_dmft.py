r"""DMFT of deep nonlinear networks in the mean-field / muP limit: alternating Monte Carlo.

Single-site equations of Bordelon & Pehlevan (2022, arXiv 2205.09653) for layer
:math:`l = 1..L`, on the flattened (time x point) grid:

.. math::
    h^l = u^l + (A^{l-1} + Q_{\Phi^{l-1}})\,g^l,\qquad
    z^l = r^l + (B^l + Q_{G^{l+1}})\,\phi(h^l),\qquad g^l = \phi'(h^l)\odot z^l,

with independent sources :math:`u^l\sim\mathcal N(0,\Phi^{l-1})`,
:math:`r^l\sim\mathcal N(0,G^{l+1})`, :math:`A^0 = B^L = 0`, :math:`G^{L+1} = 1`, the causal
memory operator :math:`Q_X` of :func:`~theorysim.theory._dmft_common.memory_operator`, and the
responses :math:`A^l = \langle\partial\phi(h^l)/\partial r^l\rangle`,
:math:`B^l = \langle\partial g^{l+1}/\partial u^{l+1}\rangle`.

One outer iteration: (i) :math:`\Delta` from :math:`K(t)` (exponential Euler; with
``error="fields"`` corrected to the outputs :math:`f = \langle z^L\phi(h^L)\rangle/\gamma_0` read
off the previous fields); (ii) sources
from the current :math:`\Phi, G` (symmetric square roots; the same white noise every
iteration, so the map is deterministic); (iii) fields per sample by forward time stepping
(the memory is strictly causal, so one pass solves the fixed point exactly: cost
:math:`O(T^2P^2)` per sample and layer, never :math:`(TP)^3`); (iv) responses by Gaussian
integration by parts (Stein), :math:`\langle\partial F/\partial r\rangle C^{1/2} =
\langle F\epsilon^\top\rangle` for :math:`r = C^{1/2}\epsilon`, estimated with antithetic
copies (:math:`r\to-r`, resp. :math:`u\to-u`) and a least-squares fit on :math:`\epsilon`
and a causal ridge regression of each time on the past sources (exact for linear networks once
the sample count exceeds ``T P``; for nonlinear ones the ridge, ``response_cut`` times the
largest source eigenvalue, shrinks the weak directions, which the iteration needs to stay
stable; see :func:`causal_response`); (v) new
:math:`\Phi, G`; damped update. A solve that reaches ``max_iter`` returns the mean of its last
quarter of iterates, and counts as converged if one more iteration changes that mean by less
than its Monte-Carlo floor (ReLU stalls; see :func:`dmft`). Samples are processed in chunks,
so memory is :math:`O(L(TP)^2 + \text{chunk}\cdot TP)`.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from theorysim.checks import check_choice, check_key, check_scalar

from ._dmft_common import (
    DMFTResult,
    activation_pair,
    causal_mask,
    check_dynamics,
    check_problem,
    check_solver_args,
    finish,
    memory_operator,
    psd_sqrt,
    solve_dynamics,
)
from ._dmft_common import (
    error_dynamics as _error_dynamics,
)
from ._dmft_deep_linear import equal_time, ntk_from_kernels


def causal_factor(C, cut: float):
    r"""Time-ordered (Cholesky) factors of a source covariance for causal Stein responses.

    Returns ``(R, (Lr, C))``: the sampling factor ``R = L^T`` (sources ``u = eps @ R``,
    :math:`C \approx LL^T` with ``L`` lower triangular in the time-major order, relative jitter
    1e-12) and the Cholesky factor ``Lr`` of the ridged covariance
    :math:`C + \rho I`, :math:`\rho` = ``cut`` times the largest eigenvalue of ``C``, that
    :func:`causal_response` uses. Why time-ordered: a symmetric root would make the Stein
    estimate :math:`\langle F\epsilon^\top\rangle C^{-1/2} = \langle\partial F/\partial u
    \rangle P_C` with :math:`P_C` the (non-causal) projector on the range of ``C``; truncating
    that to the past is wrong whenever ``C`` is singular (e.g. :math:`\Phi^1` of a linear
    network, of rank ``P + T``), which biased ``dmft(activation="linear")`` at depth 2 by
    +2.5%."""
    C = 0.5 * (C + C.T)
    n = C.shape[0]
    eye = jnp.eye(n, dtype=C.dtype)
    diag = jnp.maximum(jnp.max(jnp.diagonal(C)), 1e-300)
    top = jnp.maximum(jnp.linalg.eigvalsh(C)[-1], diag)
    Lf = jnp.linalg.cholesky(C + 1e-12 * diag * eye)
    Lr = jnp.linalg.cholesky(C + (cut * top + 1e-12 * diag) * eye)
    return Lf.T, (Lr, Lf)


def causal_response(M, factor, strict):
    r"""The strictly causal response :math:`D = \langle\partial F/\partial u\rangle` from the
    Stein estimate ``M`` :math:`= \langle F\epsilon^\top\rangle = D L` (sources
    :math:`u = L\epsilon`), by causal ridge regression: every row ``n`` (time :math:`t_n`) is
    regressed on the past sources only,

    .. math::
        D_{n,<n} = \langle F_n u_{<n}^\top\rangle\,(C_{<n,<n} + \rho I)^{-1},\qquad
        \langle F u^\top\rangle = M L^\top .

    The past blocks are leading blocks of the time-major order, so one Cholesky factor
    :math:`C + \rho I = L_\rho L_\rho^\top` serves every row: ``D = strict(strict(X)
    L_rho^{-T}) L_rho^{-1}`` (leading blocks of triangular inverses are the inverses of the
    leading blocks). At :math:`\rho \to 0` this is exact on the range of ``C`` (the only
    directions the response ever acts on: the fields it multiplies have covariance ``C``),
    so linear networks stay exact; for nonlinear ones :math:`\rho` shrinks the response
    smoothly in the directions of each past block with source variance below :math:`\rho`,
    where the Monte-Carlo estimate is noise. (Dropping weak *innovations* instead, i.e.
    cutting Cholesky pivots, zeroes the response to everything a smooth source adds after
    the first few times, and switching pivots on and off as the kernels move stalled the
    deep ReLU iteration at a residual of 0.07.)"""
    Lr, Lf = factor
    X = (strict * M) @ Lf.T
    Y = strict * jax.scipy.linalg.solve_triangular(Lr, (strict * X).T, lower=True).T
    D = jax.scipy.linalg.solve_triangular(Lr, Y.T, lower=True, trans="T").T
    return strict * D


def solve_fields(u, r, K, J, *, activation: str, n_all: int):
    """Forward time stepping of one layer's fields for a batch: ``u, r (B, T1*P_all)``,
    ``K, J (N, N)`` strictly causal. Returns ``phi(h), g, z`` as ``(B, N)``."""
    act, dact = activation_pair(activation)
    B, N = u.shape
    T1 = N // n_all
    Krows = K.reshape(T1, n_all, N)
    Jrows = J.reshape(T1, n_all, N)
    u3 = u.reshape(B, T1, n_all).transpose(1, 0, 2)
    r3 = r.reshape(B, T1, n_all).transpose(1, 0, 2)

    def step(carry, xs):
        pbuf, gbuf, zbuf, n = carry
        kr, jr, un, rn = xs
        h = un + gbuf @ kr.T
        z = rn + pbuf @ jr.T
        ph = act(h)
        g = dact(h) * z
        pbuf = jax.lax.dynamic_update_slice(pbuf, ph, (0, n * n_all))
        gbuf = jax.lax.dynamic_update_slice(gbuf, g, (0, n * n_all))
        zbuf = jax.lax.dynamic_update_slice(zbuf, z, (0, n * n_all))
        return (pbuf, gbuf, zbuf, n + 1), None

    zeros = jnp.zeros((B, N), u.dtype)
    (pbuf, gbuf, zbuf, _), _ = jax.lax.scan(step, (zeros, zeros, zeros, 0),
                                            (Krows, Jrows, u3, r3))
    return pbuf, gbuf, zbuf


@partial(jax.jit, static_argnames=("depth", "n_train", "max_iter", "activation", "n_chunks",
                                   "chunk", "lazy", "whiten", "euler", "n_avg"))
def dmft_core(phi0, y, t, gamma0, damping, tol, key, *, depth: int, n_train: int,
              max_iter: int, activation: str, n_chunks: int, chunk: int, lazy: bool = False,
              euler: bool = False, response_cut: float = 1e-9, whiten: bool = False,
              n_avg: int = 0):
    """Jittable alternating Monte-Carlo fixed point. Returns ``(delta, f_test, ntk, Phi, G,
    residuals, n_iter, chunk_ntk)`` with ``chunk_ntk (n_chunks, T1, P_all, P_all)``.

    ``whiten``: the white noise of each layer, ``(eps_u, eps_r)`` jointly (``2 T1 P_all``
    components), is moment-matched over all samples (sample mean 0, sample covariance the
    identity; needs ``n_chunks * chunk > 2 T1 P_all``)."""
    error_dynamics = partial(_error_dynamics, euler=euler)
    T1 = t.shape[0]
    n_all = phi0.shape[0]
    N = T1 * n_all
    L = depth
    dtype = phi0.dtype
    ones = jnp.ones((N, N), dtype)
    zeros = jnp.zeros((N, N), dtype)
    Phi0 = jnp.tile(phi0, (T1, T1))
    strict = causal_mask(T1, n_all, dtype)
    root_u1, _ = psd_sqrt(Phi0)
    root_rL, _ = psd_sqrt(ones)
    S_all = n_chunks * chunk

    def raw(c):
        return jax.random.normal(jax.random.fold_in(key, c), (L, 2, chunk, N), dtype)

    if whiten:
        def first(c):
            return raw(c).sum(2), ()

        mean = _chunk_sum(first, n_chunks)[0] / S_all  # (L, 2, N)

        def second(c):
            e = (raw(c) - mean[:, :, None]).transpose(0, 2, 1, 3).reshape(L, chunk, 2 * N)
            return jnp.einsum("lbi,lbj->lij", e, e), ()

        cov = _chunk_sum(second, n_chunks)[0] / S_all
        chol = jnp.linalg.cholesky(cov)  # (L, 2N, 2N)

        def noise(c):
            e = (raw(c) - mean[:, :, None]).transpose(0, 2, 1, 3).reshape(L, chunk, 2 * N)
            w = jax.vmap(lambda lo, x: jax.scipy.linalg.solve_triangular(
                lo, x.T, lower=True).T)(chol, e)
            return w.reshape(L, chunk, 2, N).transpose(0, 2, 1, 3)
    else:
        noise = raw

    # fixed least-squares normaliser <eps eps^T>^{-1} per layer and source
    def eps_gram(c):
        e = noise(c)
        return jnp.einsum("lsbi,lsbj->lsij", e, e), ()

    gram = _chunk_sum(eps_gram, n_chunks)[0] / S_all
    gram_inv = jnp.linalg.pinv(gram, hermitian=True)

    def kernels_to_delta(phis, gs):
        ntk = ntk_from_kernels([Phi0, *[phis[i] for i in range(L)]],
                               [*[gs[i] for i in range(L)], ones], T1, n_all)
        return (*error_dynamics(ntk, y, t, n_train), ntk)

    def update(state):
        phis, gs, As, Bs, f_ref, d_ref = state
        ntk_cur = ntk_from_kernels([Phi0, *[phis[i] for i in range(L)]],
                                   [*[gs[i] for i in range(L)], ones], T1, n_all)
        if lazy:
            d, _ = error_dynamics(ntk_cur, y, t, n_train)
        else:
            d, _ = error_dynamics(ntk_cur, y, t, n_train, f_ref, d_ref)
        P_all = [Phi0, *[phis[i] for i in range(L)]]
        G_all = [*[gs[i] for i in range(L)], ones]
        A_all = [zeros, *[As[i] for i in range(L - 1)]]
        B_all = [*[Bs[i] for i in range(L - 1)], zeros]
        Ks = [A_all[i] + memory_operator(P_all[i], d, t, n_train, gamma0) for i in range(L)]
        Js = [B_all[i] + memory_operator(G_all[i + 1], d, t, n_train, gamma0) for i in range(L)]
        roots_u = [(root_u1, None)] + [causal_factor(P_all[i], response_cut)
                                       for i in range(1, L)]
        roots_r = [causal_factor(G_all[i + 1], response_cut)
                   for i in range(L - 1)] + [(root_rL, None)]

        def chunk_stats(c):
            """Per layer: the (N, N) statistics to sum over chunks, and the small per-chunk
            equal-time kernels / readout kept for batch-mean standard errors."""
            e = noise(c)
            sums, per_chunk = [], []
            for i in range(L):
                big, st = {}, {}
                u = e[i, 0] @ roots_u[i][0]
                r = e[i, 1] @ roots_r[i][0]
                us, rs = [u], [r]
                if i < L - 1:
                    us.append(u)
                    rs.append(-r)
                if i > 0:
                    us.append(-u)
                    rs.append(r)
                ph, g, z = solve_fields(jnp.concatenate(us), jnp.concatenate(rs), Ks[i],
                                        Js[i], activation=activation, n_all=n_all)
                k = len(us)
                if i == L - 1:  # readout: sum over samples of z^L(t) phi(h^L(t)) - (t = 0)
                    zp = (z * ph).reshape(k * chunk, T1, n_all)
                    st["zphi"] = (zp - zp[:, :1]).sum(0) / k
                big.update({"phi": ph.T @ ph / k, "g": g.T @ g / k})
                ph3 = ph.reshape(k * chunk, T1, n_all)
                g3 = g.reshape(k * chunk, T1, n_all)
                st["phi_tt"] = jnp.einsum("bnp,bnq->npq", ph3, ph3) / (k * chunk)
                st["g_tt"] = jnp.einsum("bnp,bnq->npq", g3, g3) / (k * chunk)
                j = 1
                if i < L - 1:
                    diff = 0.5 * (ph[:chunk] - ph[chunk:2 * chunk])
                    big["A"] = diff.T @ e[i, 1]
                    j = 2
                if i > 0:
                    diff = 0.5 * (g[:chunk] - g[j * chunk:(j + 1) * chunk])
                    big["B"] = diff.T @ e[i, 0]
                sums.append(big)
                per_chunk.append(st)
            return sums, per_chunk

        sums, stats = _chunk_sum(chunk_stats, n_chunks)
        S = n_chunks * chunk
        new_phi = [sums[i]["phi"] / S for i in range(L)]
        new_g = [sums[i]["g"] / S for i in range(L)]
        # A^l (layer index i = l - 1): response of phi^l to r^l; B^l: of g^{l+1} to u^{l+1}
        new_A = [causal_response(sums[i]["A"] / S @ gram_inv[i, 1], roots_r[i][1], strict)
                 for i in range(L - 1)]
        new_B = [causal_response(sums[i + 1]["B"] / S @ gram_inv[i + 1, 0],
                                 roots_u[i + 1][1], strict) for i in range(L - 1)]
        phi_c = jnp.stack([jnp.broadcast_to(phi0, (n_chunks, T1, n_all, n_all))]
                          + [stats[i]["phi_tt"] for i in range(L)])
        g_c = jnp.stack([stats[i]["g_tt"] for i in range(L)]
                        + [jnp.ones((n_chunks, T1, n_all, n_all), dtype)])
        chunk_ntk = (phi_c * g_c).sum(0)
        chunk_f = stats[L - 1]["zphi"] / (chunk * jnp.where(lazy, 1.0, gamma0))
        if lazy:
            dk, fte = error_dynamics(ntk_from_kernels([Phi0, *new_phi], [*new_g, ones], T1,
                                                      n_all), y, t, n_train)
            new_f = jnp.concatenate([y[None, :] - dk, fte], axis=1)
        else:
            new_f = chunk_f.mean(0)
        # Monte-Carlo floor of this solve: the largest standard error of an equal-time kernel
        # entry (scatter over the chunks / sqrt(n_chunks)), on the residual's scale
        # max(max|X|, 1)
        floor = jnp.max(jnp.stack([
            jnp.max(jnp.std(stats[i][k], axis=0, ddof=1)) / jnp.maximum(jnp.max(jnp.abs(x)), 1.0)
            for i in range(L) for k, x in (("phi_tt", new_phi[i]), ("g_tt", new_g[i]))]))
        floor = floor / math.sqrt(n_chunks)
        return (jnp.stack(new_phi), jnp.stack(new_g), _stack(new_A, N, dtype),
                _stack(new_B, N, dtype), new_f, d), (chunk_ntk, chunk_f), floor

    def residual_parts(new, state):
        return jnp.stack([jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(b)), 1.0)
                          if a.size else jnp.zeros((), dtype)
                          for a, b in zip(new, state, strict=True)])

    def body(carry):
        state, res, it, _, acc = carry
        new, chunk_out, _ = update(state)
        r = jnp.max(residual_parts(new, state))
        state = tuple((1 - damping) * b + damping * a for a, b in zip(new, state, strict=True))
        w = (it >= max_iter - n_avg).astype(dtype)
        acc = tuple(s + w * a for s, a in zip(acc, state, strict=True))
        return state, res.at[it].set(r), it + 1, chunk_out, acc

    def cond(carry):
        res, it = carry[1], carry[2]
        return (it < max_iter) & ((it == 0) | (res[jnp.maximum(it - 1, 0)] > tol))

    d0, fte0, _ = kernels_to_delta(jnp.stack([Phi0] * L), jnp.stack([ones] * L))
    f0 = jnp.concatenate([y[None, :] - d0, fte0], axis=1)
    state0 = (jnp.stack([Phi0] * L), jnp.stack([ones] * L), _stack([zeros] * (L - 1), N, dtype),
              _stack([zeros] * (L - 1), N, dtype), f0, d0)
    res0 = jnp.full((max_iter,), jnp.nan, dtype)
    chunk0 = (jnp.zeros((n_chunks, T1, n_all, n_all), dtype),
              jnp.zeros((n_chunks, T1, n_all), dtype))
    acc0 = tuple(jnp.zeros_like(a) for a in state0)
    state, res, it, chunk_out, acc = jax.lax.while_loop(
        cond, body, (state0, res0, 0, chunk0, acc0))
    averaged = (n_avg > 0) & (it == max_iter) & (res[max_iter - 1] > tol)
    state = tuple(jnp.where(averaged, a / max(n_avg, 1), s) for a, s in zip(acc, state,
                                                                            strict=True))
    # the residual of the returned state itself: |F(x) - x| (one more map evaluation)
    new, _, floor = update(state)
    final = jnp.max(residual_parts(new, state))
    ntk = ntk_from_kernels([Phi0, *[state[0][i] for i in range(L)]],
                           [*[state[1][i] for i in range(L)], ones], T1, n_all)
    d, fte = error_dynamics(ntk, y, t, n_train, *(() if lazy else (state[4], state[5])))
    return (d, fte, ntk, state[0], state[1], res, it, chunk_out,
            dict(final=final, averaged=averaged, floor=floor))


def _chunk_sum(fn, n_chunks: int):
    """Run ``fn(c) -> (summed, per_chunk)`` over chunks ``c = 0..n_chunks-1`` in a scan:
    ``summed`` is accumulated in the carry, ``per_chunk`` stacked along a leading axis.

    Accumulating in the carry (rather than stacking ``(n_chunks, N, N)`` arrays and reducing)
    keeps memory at one copy of each statistic, and avoids a leading-axis reduction that
    XLA:CPU runs ~20x below memory bandwidth."""
    shapes = jax.eval_shape(fn, jnp.zeros((), jnp.int32))[0]
    zero = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)

    def body(acc, c):
        summed, per_chunk = fn(c)
        return jax.tree.map(jnp.add, acc, summed), per_chunk

    return jax.lax.scan(body, zero, jnp.arange(n_chunks))


def _stack(mats, N, dtype):
    return jnp.stack(mats) if mats else jnp.zeros((0, N, N), dtype)


def dmft(
    X: Float[Array, "P D"],
    y: Float[Array, " P"],
    t: Float[Array, " T"],
    gamma0: float,
    *,
    key: Array,
    depth: int = 2,
    activation: str = "relu",
    dynamics: str = "flow",
    lr: float | None = None,
    flow_tol: float = 1e-4,
    n_samples: int = 4096,
    X_test: Float[Array, "Q D"] | None = None,
    damping: float = 0.5,
    tol: float = 1e-6,
    max_iter: int = 200,
    chunk_size: int = 512,
    n_groups: int = 4,
    response_cut: float | None = None,
    error: str | None = None,
    max_grid: int = 2048,
    throw: bool = True,
) -> DMFTResult:
    r"""DMFT of a deep nonlinear network (``depth`` hidden layers) at richness gamma0.

    .. math::
        h^1 = W^0x/\sqrt D,\quad h^{l+1} = W^l\phi(h^l)/\sqrt N,\quad
        f = \frac{w^L\cdot\phi(h^L)}{\gamma_0 N},\qquad
        \dot\theta = -\gamma_0^2N\,\nabla_\theta\frac1{2P}\sum_\mu(f(x_\mu)-y_\mu)^2,

    at infinite width N and fixed :math:`\gamma_0`; the error obeys
    :math:`\dot\Delta = -\frac1PK(t)\Delta`,
    :math:`K(t) = \sum_{l=0}^L G^{l+1}(t,t)\odot\Phi^l(t,t)`. Time ``t`` is gradient-flow time on
    the ``1/(2P)`` mean-squared error with learning rate :math:`\gamma_0^2N`. Algorithm: see
    the module docstring.

    Dynamics (the same arguments for every DMFT solver): ``dynamics="gd", lr=eta`` solves GD
    with step ``eta * gamma0**2 * N``: the memory integrals use the left-rectangle rule on the
    step grid ``eta * k``, which is the discrete-time DMFT of GD (``t`` must be multiples of
    ``eta``). ``dynamics="flow"``: GD solves on ``[0, *t]`` refined 1, 2 and 4 times,
    Richardson-extrapolated to step 0 (third order, as in :func:`dmft_deep_linear`);
    ``flow_error`` is the change against the second-order extrapolation, and the grid is
    refined until it is below ``flow_tol`` or within 4 Monte-Carlo standard errors entrywise
    (the levels use independent samples), or until ``max_grid``.

    Monte-Carlo error (Bordelon & Pehlevan 2022, arXiv 2205.09653, regime: infinite width,
    muP / mean-field). The bias of the linear case reported in issue 13 (+1.6% to +2.3% at
    depth 2, gamma0 = 0.75) was not a sampling effect: the Stein estimate of the responses with
    a symmetric square root of a singular source covariance returns the response times the
    (non-causal) projector on its range, and truncating that to the past is wrong; the
    responses now use a time-ordered (Cholesky) factor and are exact (see
    :func:`causal_factor`). The white noise of each layer's sources is moment-matched (sample
    mean 0, sample covariance exactly the identity, when there are more than ``2 G`` samples).
    For ``activation="linear"`` every statistic the iteration uses is then a second moment of
    the noise, so the result is exact: it equals :func:`dmft_deep_linear` on the same grid to
    the fixed-point tolerance (depth 2 and 3, tested).
    For nonlinear activations the moment matching cuts the variance; the bias left is
    :math:`O(G/S)` (``G`` = ``n_groups``). The result is the mean of ``n_groups`` independent
    solves with ``n_samples / n_groups`` samples each (each a full fixed point, so the feedback
    of the noise through the iteration is included), and ``ntk_se`` and ``train_loss_se`` are
    their standard deviation divided by ``sqrt(n_groups)``: the standard error of that mean by
    construction. (Issue 13: the earlier estimate, one solve with all ``n_samples`` and the
    standard error extrapolated from the groups, scattered over keys 1.3-1.55x more than it
    reported.) ``residual``, ``residuals`` and ``converged`` are those of the least converged
    solve; ``iterations`` the most any solve used.

    Args:
      X: ``(P, D)`` training inputs. y: ``(P,)`` targets.
      t: ``(T,)`` positive, strictly increasing output times; the result's grid is ``[0, *t]``.
      gamma0: richness ``>= 0``.
      key: PRNG key (keyword-only); the same noise is reused every iteration.
      depth: hidden layers ``L >= 1``.
      activation: ``"relu"``, ``"tanh"``, ``"erf"`` or ``"linear"``.
      dynamics: ``"flow"`` (gradient flow) or ``"gd"`` (gradient descent, needs ``lr``).
      lr: GD step in DMFT time (only with ``dynamics="gd"``).
      flow_tol: target relative time-integration error for ``dynamics="flow"``.
      n_samples: field samples per layer ``>= 2`` (rounded down to whole chunks); antithetic
        copies for the responses come on top. With ``depth >= 2`` each of the ``n_groups``
        error solves needs more than ``G = (grid times) * P_all`` of them on the finest grid
        (the least-squares response fit): fewer is a ``ValueError``. The moment matching needs
        more than ``2 G`` per solve; below that the noise is not matched (and a linear network
        keeps an :math:`O(G/S)` bias).
      X_test: optional ``(Q, D)`` test inputs.
      damping: weight of the new iterate in ``(0, 1]``.
      tol: target residual (max change of the kernels relative to their scale).
      max_iter: iteration cap (per solve). A solve that reaches it without meeting ``tol``
        returns the mean of its last ``max_iter // 4`` iterates (the centre of a Monte-Carlo
        stall, below), and its ``residual`` is the change one more iteration makes to that
        mean.
      chunk_size: samples per chunk (memory).
      n_groups: independent solves for the standard errors (``>= 2``).
      response_cut: ridge of the causal response regression, relative to the largest
        eigenvalue of the source covariance (``depth >= 2``; :func:`causal_response`). Default
        ``1e-9`` for ``"linear"`` (where the estimate is exact) and ``1e-3`` otherwise: smaller
        values let Monte-Carlo noise in weak directions destabilise the iteration (observed for
        tanh at depth 2), larger ones shrink the responses in weak directions.
      error: how the error is obtained: ``"ntk"`` steps :math:`\dot\Delta = -K\Delta/P` with
        :math:`K = \sum_l G^{l+1}\Phi^l`; ``"fields"`` reads
        :math:`f = \langle z^L\phi(h^L)\rangle/\gamma_0` off the fields (exactly the discrete
        GD dynamics, and right for ReLU neurons sliding on the kink, but at ``depth >= 2`` it
        receives the lower layers' kernel contributions only through the estimated responses,
        so a response error becomes an error in the loss: measured 2.5% at gamma0 = 0.1, tanh,
        depth 2, with the earlier symmetric-root responses). Default: ``"fields"`` for
        ``"linear"`` (responses exact), ``depth = 1``, and ReLU with ``dynamics="gd"``;
        ``"ntk"`` otherwise.

        Why ReLU GD reads the fields (issue 13, 2026-12-07; depth 2, gamma0 = 1, P = 6,
        D = 10, y = sign, lr 0.05, 40 steps, against 16 width-4096 networks, whose widths
        1024 / 2048 / 4096 agree). GD moves each pre-activation by
        :math:`h_{n+1} - h_n = c_0 + c_1\,1[h_n > 0]`; a neuron with :math:`c_1 < 0 < c_0`
        and :math:`c_0 + c_1 < 0` chatters across the kink every step (a sliding mode, about
        1% of the layer-2 (neuron, point) pairs per step here), and the instantaneous
        :math:`1[h_n > 0]` in :math:`K_n` is not the slope that moves the output. So
        ``"ntk"`` (:math:`\Delta_{n+1} = (1 - \eta K_n/P)\Delta_n`) is biased by construction:
        on the networks themselves that recursion loses 0.00175 of loss at step 40,
        independent of the width (1024 / 2048) and of lr (0.05 / 0.025), and the DMFT
        ``"ntk"`` loss is 0.3332 +- 0.0007 against the networks' 0.3370 +- 0.0011 (4 x 2048
        samples). ``"fields"`` steps the fields with the instantaneous slope, exactly as GD
        does; its error is in the responses. The ridge of :func:`causal_response` shrinks
        them, which slows the output early on, linearly in ``response_cut``: step-8 loss
        minus networks (networks' SE 0.00018, one solve of S = 2048) +0.00137 / +0.00024 /
        -0.00020 / -0.00036 / -0.0004 at ``response_cut`` 1e-2 / 3e-3 / 1e-3 / 3e-4 / 1e-4;
        the solve-to-solve scatter is 0.0004 there, so below 1e-3 the shrinkage is not
        resolved. Smaller ridges let the iteration chatter more (the stall below: median
        residual 3.0e-3 / 7.2e-3 / 1.5e-2 / 1.9e-2 / 2.1e-2). At the default 1e-3, 4 solves
        of 2048: loss minus networks +0.00018 / -0.00011 / -0.00041 / -0.00063 / -0.00067 at
        steps 8 / 16 / 24 / 32 / 40 (SE of the theory 0.00023 ... 0.00096; combined |z| <=
        0.62), where ``"ntk"`` on the same keys (at ``response_cut=1e-2``) is lower by
        0.0032 +- 0.0004 at step 40.
        Per solve the scatter at step 40 is 0.0019 (S = 2048); no 1/S trend is resolved
        (one key: +0.0011 / -0.0025 / -0.0013 at S = 1024 / 2048 / 4096 with nested
        samples). ``dynamics="flow"`` keeps ``"ntk"`` (the flow refinement with
        ``"fields"`` has not been measured), which carries the same sliding-mode bias for
        ReLU: pass ``error="fields"`` to avoid it.
      max_grid: largest ``(grid times) * P_all`` solved (memory ~ ``8 L (T P)^2`` bytes per
        kernel): a larger GD step grid is a ``ValueError``; gradient flow stops refining there.
      throw: raise :class:`theorysim.ConvergenceError` if not converged.
        ReLU at ``depth >= 2``: with finitely many samples the map is piecewise (each
        sample's :math:`\phi'(h)` flips as the kernels move) and the residual stalls at a
        level falling like ``1/S`` (``S = n_samples / n_groups``, the samples of one solve):
        with ``error="fields"``, ``response_cut=1e-3`` in the setting above, median of the
        last 20 residuals 2.7e-2 / 1.5e-2 / 7.6e-3 at S = 1024 / 2048 / 4096. The stall is
        all in the gradient kernels :math:`G^l` (the sliding neurons' on/off pattern): the
        outputs change by < 4e-4 per iteration and the step-40 loss over the last 30 of 60
        iterates has a standard deviation of 1-3e-5 (S = 2048). Such a solve counts as
        converged when the residual of its returned (averaged, see ``max_iter``) state is
        below its Monte-Carlo floor, the largest standard error of an equal-time kernel
        entry (scatter over the chunks of samples; 5.4e-2 / 1.2e-1 at S = 2048 / 1024 here,
        against residuals 1.2e-2 to 2.2e-2): the kernels cannot be resolved further with
        that sample set. ``activation="linear"`` has no floor (its statistics are exact).

    Returns:
      :class:`DMFTResult`.

    Example:
      >>> X, y = np.eye(2, 3), np.array([1.0, -1.0])
      >>> r = dmft(X, y, [0.5, 1.0], 1.0, key=jax.random.key(0), depth=2,
      ...          activation="linear", dynamics="gd", lr=0.25, n_samples=256, n_groups=2)
      >>> bool(r.train_loss[-1] < r.train_loss[0])
      True
    """
    problem = check_problem(X, y, t, gamma0, X_test)
    check_solver_args(n_samples=n_samples, damping=damping, tol=tol, max_iter=max_iter,
                      activation=activation, depth=depth, throw=throw)
    check_scalar("chunk_size", chunk_size, lo=1, hi=1e7, integer=True)
    check_key("key", key)
    check_scalar("n_groups", n_groups, lo=2, hi=n_samples // 2, integer=True)
    max_grid = check_scalar("max_grid", max_grid, lo=2, integer=True)
    dyn = check_dynamics(dynamics, lr, flow_tol, problem.t, max_steps=max_grid)
    if error is None:
        error = ("fields" if (activation == "linear" or depth == 1
                              or (activation == "relu" and dyn.kind == "gd")) else "ntk")
    check_choice("error", error, ("ntk", "fields"))
    ntk_route = problem.gamma0 == 0.0 or error == "ntk"
    if response_cut is None:
        response_cut = 1e-9 if activation == "linear" else 1e-3
    check_scalar("response_cut", response_cut, lo=0.0, hi=1.0, lo_open=True)
    n_all = problem.n_all
    T1 = problem.t.shape[0] if dyn.kind == "flow" else int(dyn.steps[-1]) + 1
    finest = (4 * T1 - 3 if dyn.kind == "flow" else T1) * n_all
    if finest > max_grid:
        raise ValueError(f"the time grid has {finest // n_all} times x {n_all} points, more "
                         f"than max_grid={max_grid}: use fewer output times t (or a larger lr), "
                         "or raise max_grid")
    per_group = n_samples // n_groups
    if depth >= 2 and per_group <= finest:
        raise ValueError(f"n_samples={n_samples} is too small for depth >= 2 on a grid of "
                         f"{finest} (time, point) pairs: each of the n_groups={n_groups} error "
                         f"solves needs more than {finest} samples for the least-squares "
                         f"response fit; use n_samples >= {n_groups * (finest + 1)} (more than "
                         f"{n_groups * 2 * finest} also moment-matches the noise, which makes "
                         "linear networks exact)")
    def run(grid, key_, S):
        n_chunks = min(S, max(2, math.ceil(S / chunk_size)))
        chunk = S // n_chunks
        N = grid.shape[0] * n_all
        with jax.enable_x64(True):
            Xa = jnp.asarray(problem.X)
            phi0 = Xa @ Xa.T / problem.X.shape[1]
            d, fte, ntk, phis, gs, res, it, _, extra = dmft_core(
                phi0, jnp.asarray(problem.y), jnp.asarray(grid), problem.gamma0,
                float(damping), float(tol), key_, depth=int(depth), n_train=problem.n_train,
                max_iter=int(max_iter), activation=activation, n_chunks=n_chunks, chunk=chunk,
                lazy=ntk_route, response_cut=float(response_cut), euler=dyn.kind == "gd",
                whiten=n_chunks * chunk > 2 * N, n_avg=int(max_iter) // 4)
            it = int(it)
            res = np.asarray(res[:it])
            # the residual of the returned state: the last iteration's change, or (averaged
            # after a stall) the change one more map evaluation makes to the average
            final = float(extra["final"]) if bool(extra["averaged"]) else float(res[-1])
            # a stall below the Monte-Carlo error of the kernels is as converged as this
            # sample set allows (linear: the statistics are exact, no floor)
            floor = 0.0 if activation == "linear" else float(extra["floor"])
        if not math.isfinite(final):
            final = math.inf
        return d, fte, ntk, phis, gs, res, it, final, final / max(tol, floor)

    def solve(grid):
        T1g = grid.shape[0]
        groups = [run(grid, jax.random.fold_in(key, 1 + k), per_group)
                  for k in range(n_groups)]
        dg, fg, Kg, pg, gg = (np.stack([np.asarray(gr[i]) for gr in groups])
                              for i in range(5))
        # the residuals reported are the least converged solve's (residual over its threshold)
        worst = int(np.argmax([gr[8] for gr in groups]))
        res, r, excess = groups[worst][5], groups[worst][7], groups[worst][8]
        scale = 1.0 / math.sqrt(n_groups)
        shape = (int(depth), T1g, n_all, T1g, n_all)
        # the estimate is the mean of the n_groups independent solves, so std / sqrt(G) is
        # its standard error (no extrapolation from a smaller sample size)
        return dict(delta=dg.mean(0), fte=fg.mean(0), ntk=Kg.mean(0),
                    phi=pg.mean(0).reshape(shape), g=gg.mean(0).reshape(shape),
                    residuals=res, residual=r, iterations=max(int(gr[6]) for gr in groups),
                    converged=excess <= 1.0,
                    ntk_se=Kg.std(0, ddof=1) * scale,
                    loss_se=(0.5 * np.mean(dg * dg, axis=2)).std(0, ddof=1) * scale)

    sol, ferr = solve_dynamics(solve, problem.t, dyn, n_all=n_all, levels=3,
                               max_grid=max_grid, noisy=True)
    flow_ok = ferr <= max(dyn.flow_tol, sol.get("flow_noise", 0.0))
    return finish(problem, delta=sol["delta"], ntk=sol["ntk"], phi=sol["phi"], g=sol["g"],
                  residuals=sol["residuals"], residual=sol["residual"],
                  iterations=sol["iterations"], converged=sol["converged"] and flow_ok,
                  n_samples=n_groups * per_group, ntk_se=sol["ntk_se"],
                  loss_se=sol["loss_se"], method="dmft_monte_carlo",
                  test_predictions=sol["fte"], dyn=dyn,
                  flow_error=ferr if dyn.kind == "flow" else 0.0, throw=throw,
                  hint="increase max_iter, lower damping, raise tol (ReLU: Monte-Carlo stall) "
                       "or (flow) max_grid")


__all__ = ["dmft", "dmft_core", "solve_fields", "equal_time"]
