r"""Shared pieces of the DMFT solvers: the result dataclass, input checks, activations, the
causal memory operators on the (time x point) grid and the error dynamics.

Conventions (THEORY.md section 4; Bordelon & Pehlevan 2022, arXiv 2205.09653):
:math:`h^1 = W^0 x/\sqrt D`, :math:`h^{l+1} = W^l\phi(h^l)/\sqrt N`,
:math:`f = w^L\cdot\phi(h^L)/(\gamma_0 N)`, trained by gradient flow
:math:`\dot\theta = -\gamma_0^2 N\,\nabla_\theta \mathcal L` on
:math:`\mathcal L = \frac1{2P}\sum_\mu (f_\mu - y_\mu)^2`. The error
:math:`\Delta = y - f` then obeys :math:`\dot\Delta = -\frac1P K(t)\Delta`. A simulation with
SGD/GD step :math:`\eta\gamma_0^2 N` on that loss, run for :math:`t/\eta` steps, is at DMFT
time ``t``.

Fields and kernels live on the grid ``t_0 = 0 < t_1 < ... < t_T`` times ``P_all`` points (the
``P`` training points followed by the test points) and are flattened time-major:
index ``n * P_all + mu``. Memory integrals use the left-rectangle rule
:math:`\int_0^{t_n} ds\,F(s) \approx \sum_{m<n} (t_{m+1}-t_m) F(t_m)` (first order in the step;
exactly the discrete-time DMFT of gradient descent with step ``t_{m+1} - t_m``). In the deep
linear solver (and ``dmft(..., error="fields")``) the error is read off the fields,
:math:`f_\mu(t) = \langle z^L(t)\phi(h^L_\mu(t))\rangle/\gamma_0` (minus its value at
``t = 0``), with the kernel-driven step :math:`\dot\Delta = -K\Delta/P` used only as a stable
predictor inside the iteration (see :func:`error_dynamics`); those solvers then reproduce GD
with step ``t_{m+1} - t_m`` at infinite width.

One time convention for the family (issue 13): every DMFT solver takes
``dynamics="flow"`` (gradient flow; integrated to ``flow_tol`` with the error estimate in the
result's ``flow_error``) or ``dynamics="gd", lr=eta`` (GD with step ``eta gamma0^2 N``, output
times multiples of ``eta``; solved exactly on its step grid). A learning rate with gradient
flow is a ``ValueError`` naming ``lr``. The grid solvers (deep linear, Monte Carlo) reach
gradient flow by Richardson extrapolation of their GD solutions (:func:`solve_dynamics`), the
particle solver by RK4 with step halving. Results follow the solver contract
(:mod:`theorysim.contract`): ``converged``, ``residual``, ``iterations``, ``throw``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from theorysim.checks import as_finite_array, check_choice, check_scalar
from theorysim.contract import check_throw
from theorysim.contract import finish as contract_finish

ACTIVATIONS = ("relu", "tanh", "linear", "erf")


@dataclasses.dataclass(frozen=True)
class DMFTResult:
    r"""Order parameters of a DMFT solve at the output times ``t`` (which start at 0).

    Attributes:
      t: ``(T+1,)`` output times (DMFT units, see module docstring), ``t[0] = 0``.
      delta: ``(T+1, P)`` training error :math:`\Delta_\mu(t) = y_\mu - f_\mu(t)`.
      train_loss: ``(T+1,)`` :math:`\frac1{2P}\sum_\mu\Delta_\mu(t)^2`.
      predictions: ``(T+1, P)`` training predictions ``y - delta``.
      test_predictions: ``(T+1, Q)`` predictions on the test points (``Q = 0`` if none).
      ntk: ``(T+1, P_all, P_all)`` :math:`K(t) = \sum_{l=0}^L G^{l+1}(t,t)\odot\Phi^l(t,t)` over
        training then test points.
      phi: ``(L, T+1, P_all, T+1, P_all)`` feature kernels :math:`\Phi^l(t,s)`, l = 1..L
        (``Phi^0 = X X^T/D`` is constant and not stored).
      g: ``(L, T+1, P_all, T+1, P_all)`` gradient kernels :math:`G^l(t,s)`, l = 1..L
        (``G^{L+1} = 1``).
      converged: the fixed point reached ``tol`` and (gradient flow) the time-integration error
        estimate is below ``flow_tol``; all finite.
      residual: final self-consistency residual (max abs change of the kernels and of Delta in
        the last iteration, relative to their scale; for ``dmft_two_layer``, which has no fixed
        point, the time-integration error estimate).
      iterations: outer iterations used (largest over the grids solved; ``dmft_two_layer``:
        step-halving rounds).
      residuals: ``(iterations,)`` residual after each outer iteration (finest grid solved).
      dynamics: ``"flow"`` (gradient flow) or ``"gd"`` (gradient descent with step ``lr``).
      lr: the GD learning rate (DMFT time per step), ``None`` for gradient flow.
      flow_error: gradient flow: estimated error of the returned ``delta`` and ``ntk`` from the
        time discretisation (max abs difference to the next-coarser estimate, relative to the
        largest entry); ``0.0`` for GD (solved exactly on its step grid).
      n_samples: Monte-Carlo field samples (0 for the sampling-free deep linear solver).
      ntk_se: ``(T+1, P_all, P_all)`` Monte-Carlo standard error of ``ntk`` (None without
        sampling).
      train_loss_se: ``(T+1,)`` Monte-Carlo standard error of ``train_loss`` (None without
        sampling).
      method: which solver produced it.
    """

    t: np.ndarray
    delta: np.ndarray
    train_loss: np.ndarray
    predictions: np.ndarray
    test_predictions: np.ndarray
    ntk: np.ndarray
    phi: np.ndarray
    g: np.ndarray
    converged: bool
    residual: float
    iterations: int
    residuals: np.ndarray
    dynamics: str
    lr: float | None
    flow_error: float
    n_samples: int
    ntk_se: np.ndarray | None
    train_loss_se: np.ndarray | None
    method: str


@dataclasses.dataclass(frozen=True)
class Problem:
    """Validated host-side inputs (NumPy float64)."""

    X: np.ndarray  # (P_all, D): train then test
    y: np.ndarray  # (P,)
    t: np.ndarray  # (T+1,) output times with t[0] = 0
    gamma0: float
    n_train: int

    @property
    def n_all(self) -> int:
        return self.X.shape[0]


#: Largest absolute input entry / target accepted (squares must stay far from overflow).
MAX_ABS = 1e6


def check_problem(X, y, t, gamma0, X_test=None) -> Problem:
    """Validate the data, the time grid and gamma0; raise ``ValueError`` naming the argument."""
    X = as_finite_array("X", X, ndim=2, min_size=1)
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must have at least one row and one column, got shape {X.shape}")
    y = as_finite_array("y", y, ndim=1, min_size=1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have one entry per row of X ({X.shape[0]}), got {y.shape[0]}")
    t = as_finite_array("t", t, ndim=1, min_size=1, positive=True)
    if np.any(np.diff(t) <= 0):
        raise ValueError("t must be strictly increasing")
    gamma0 = check_scalar("gamma0", gamma0, lo=0.0, hi=1e6)
    if X_test is None:
        X_all = X
    else:
        X_test = as_finite_array("X_test", X_test, ndim=2)
        if X_test.shape[1] != X.shape[1]:
            raise ValueError(f"X_test must have {X.shape[1]} columns like X, got "
                             f"{X_test.shape[1]}")
        X_all = np.concatenate([X, X_test], axis=0)
    for name, arr in (("X", X), ("y", y), ("X_test", X_all[X.shape[0]:])):
        if arr.size and np.max(np.abs(arr)) > MAX_ABS:
            raise ValueError(f"{name} entries must be at most {MAX_ABS:g} in absolute value "
                             f"(rescale the data), got {np.max(np.abs(arr)):.3g}")
    return Problem(X_all, y, np.concatenate([[0.0], t]), gamma0, X.shape[0])


#: "not given" for :func:`check_solver_args` (``None`` is a value a user can pass, and must be
#: refused: ``activation=None`` used to slip through to the particle solve, 7 s later)
_UNSET = object()


def check_solver_args(*, n_samples=_UNSET, damping=_UNSET, tol=_UNSET, max_iter=_UNSET,
                      activation=_UNSET, depth=_UNSET, throw=_UNSET) -> None:
    """Validate the numerical controls shared by the solvers (the ones given)."""
    if n_samples is not _UNSET:
        check_scalar("n_samples", n_samples, lo=2, hi=1e8, integer=True)
    if damping is not _UNSET:
        check_scalar("damping", damping, lo=0.0, hi=1.0, lo_open=True)
    if tol is not _UNSET:
        check_scalar("tol", tol, lo=0.0, hi=1.0, lo_open=True)
    if max_iter is not _UNSET:
        check_scalar("max_iter", max_iter, lo=1, hi=1e6, integer=True)
    if activation is not _UNSET:
        check_choice("activation", activation, ACTIVATIONS)
    if depth is not _UNSET:
        check_scalar("depth", depth, lo=1, hi=100, integer=True)
    if throw is not _UNSET:
        check_throw(throw)


# ---------------------------------------------------------------- the time convention

DYNAMICS = ("flow", "gd")


@dataclasses.dataclass(frozen=True)
class Dynamics:
    """The validated dynamics of a call: gradient flow, or GD with step ``lr``.

    ``steps[n]`` is the number of GD steps to output time ``t[n]`` (``None`` for flow)."""

    kind: str
    lr: float | None
    flow_tol: float
    steps: np.ndarray | None


def check_dynamics(dynamics, lr, flow_tol, t: np.ndarray, *, max_steps) -> Dynamics:
    r"""Validate the dynamics arguments against the output grid ``t`` (which starts at 0).

    ``dynamics="flow"`` (gradient flow) takes no ``lr``; ``dynamics="gd"`` needs ``lr > 0``
    and output times on its step grid (integer multiples of ``lr``), at most ``max_steps``
    steps in all. Raises ``ValueError`` naming the argument."""
    check_choice("dynamics", dynamics, DYNAMICS)
    flow_tol = check_scalar("flow_tol", flow_tol, lo=0.0, hi=1.0, lo_open=True)
    check_scalar("max_steps", max_steps, lo=1, integer=True)
    if dynamics == "flow":
        if lr is not None:
            raise ValueError(f"lr must be None with dynamics='flow' (gradient flow has no "
                             f"learning rate), got lr={lr!r}; pass dynamics='gd' to solve GD "
                             "with that step")
        return Dynamics("flow", None, flow_tol, None)
    if lr is None:
        raise ValueError("lr is required with dynamics='gd' (the GD step in DMFT time)")
    lr = check_scalar("lr", lr, lo=0.0, hi=1e6, lo_open=True)
    ratio = t / lr
    steps = np.round(ratio)
    if np.any(np.abs(ratio - steps) > 1e-9 * np.maximum(ratio, 1.0)) or np.any(steps[1:] < 1):
        raise ValueError(f"t must be integer multiples of lr={lr:g} with dynamics='gd' (output "
                         "times on the GD step grid)")
    if steps[-1] > max_steps:
        raise ValueError(f"lr={lr:g} implies {int(steps[-1])} GD steps to t={t[-1]:g}, more "
                         f"than max_steps={max_steps}; raise lr or max_steps")
    return Dynamics("gd", lr, flow_tol, steps.astype(np.int64))


def refine(t: np.ndarray, r: int) -> np.ndarray:
    """The grid ``t`` (starting at 0) with every interval split into ``r`` equal parts; the
    original points are ``refine(t, r)[::r]``."""
    frac = np.arange(r) / r
    inner = (t[:-1, None] + frac[None, :] * np.diff(t)[:, None]).reshape(-1)
    return np.concatenate([inner, t[-1:]])


def activation_pair(name: str):
    """Return ``(phi, phi')`` as jittable elementwise functions."""
    if name == "relu":
        return (lambda h: jnp.maximum(h, 0.0)), (lambda h: (h > 0).astype(h.dtype))
    if name == "tanh":
        return jnp.tanh, (lambda h: 1.0 - jnp.tanh(h) ** 2)
    if name == "linear":
        return (lambda h: h), (lambda h: jnp.ones_like(h))
    if name == "erf":
        c = 2.0 / math.sqrt(math.pi)
        return jax.scipy.special.erf, (lambda h: c * jnp.exp(-h * h))
    raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got {name!r}")


# ---------------------------------------------------------------- jittable cores


def memory_operator(kernel, delta, t, n_train: int, gamma0: float):
    r"""The causal memory operator :math:`Q_X` on the flattened (time, point) grid.

    .. math::
        (Q_X v)_{n\mu} = \frac{\gamma_0}{P}\sum_{m<n}(t_{m+1}-t_m)
            \sum_{a\le P} X_{\mu a}(t_n, t_m)\,\Delta_a(t_m)\,v_a(t_m).

    Args:
      kernel: ``(T1*P_all, T1*P_all)`` the kernel X (flattened time-major).
      delta: ``(T1, P)`` training error.
      t: ``(T1,)`` grid. n_train: P. gamma0: richness.
    """
    T1 = t.shape[0]
    n_all = kernel.shape[0] // T1
    dt = jnp.concatenate([jnp.diff(t), jnp.zeros((1,), t.dtype)])
    pad = jnp.zeros((T1, n_all - n_train), delta.dtype)
    col = (dt[:, None] * jnp.concatenate([delta, pad], axis=1)).reshape(-1)
    causal = (jnp.arange(T1)[:, None] > jnp.arange(T1)[None, :]).astype(kernel.dtype)
    causal = jnp.repeat(jnp.repeat(causal, n_all, axis=0), n_all, axis=1)
    return (gamma0 / n_train) * kernel * causal * col[None, :]


def causal_mask(T1: int, n_all: int, dtype, strict: bool = True):
    """``(T1*P_all, T1*P_all)`` mask of entries with row time > (>=) column time."""
    n = jnp.arange(T1)
    m = (n[:, None] > n[None, :]) if strict else (n[:, None] >= n[None, :])
    return jnp.repeat(jnp.repeat(m.astype(dtype), n_all, axis=0), n_all, axis=1)


def error_dynamics(ntk, y, t, n_train: int, f_ref=None, d_ref=None, euler: bool = False):
    r"""Integrate :math:`\dot\Delta = -\frac1P K(t)\Delta` with :math:`K` piecewise constant.

    Exponential Euler: :math:`\Delta_{n+1} = e^{-(t_{n+1}-t_n)K_n/P}\Delta_n` (exact for a
    constant kernel), and test predictions
    :math:`f^{te}_{n+1} = f^{te}_n + \frac1P K^{te,tr}_n\int_0^{dt}e^{-sK_n/P}ds\,\Delta_n`.

    With ``f_ref (T1, P_all)`` (outputs read off the fields of the previous iterate) and
    ``d_ref (T1, P)`` (the error that drove them), each step adds the correction
    :math:`(f^{ref}_{n+1} - f^{ref}_n) - \mathrm{step}_n(\Delta^{ref}_n)`, so that at the fixed
    point :math:`\Delta = \Delta^{ref}` the error equals ``y - f_ref`` exactly (the discrete
    dynamics of the fields, including ReLU neurons sliding on the kink), while each iteration
    stays a stable time stepping in :math:`\Delta`.

    With ``euler`` the step is explicit Euler instead,
    :math:`\Delta_{n+1} = (1 - (t_{n+1}-t_n)K_n/P)\Delta_n` (gradient descent on the
    linearised network, for ``dynamics="gd"``).

    Args:
      ntk: ``(T1, P_all, P_all)``. y: ``(P,)``. t: ``(T1,)``.

    Returns:
      ``(delta (T1, P), test_predictions (T1, Q))``.
    """
    P = n_train
    dt = jnp.diff(t)
    n_all = ntk.shape[1]
    if f_ref is None:
        f_ref = jnp.zeros((t.shape[0], n_all), y.dtype)
        d_ref = jnp.zeros((t.shape[0], P), y.dtype)
        use_ref = 0.0
    else:
        use_ref = 1.0

    def increment(K, h, d):
        """Decrease of the train error and increase of the test output over one step."""
        lam, V = jnp.linalg.eigh(K[:P, :P])
        lam = jnp.maximum(lam, 0.0)
        z = -h * lam / P
        small = jnp.abs(z) < 1e-8
        phi1 = jnp.where(small, 1.0 + 0.5 * z, jnp.expm1(z) / jnp.where(small, 1.0, z))
        if euler:
            phi1, growth = jnp.ones_like(z), 1.0 + z
        else:
            growth = jnp.exp(z)
        c = V.T @ d
        return d - V @ (growth * c), (K[P:, :P] @ (V @ (h * phi1 * c))) / P

    def step(carry, xs):
        d, fte = carry
        K, h, fr0, fr1, dr = xs
        dec, inc = increment(K, h, d)
        dec_r, inc_r = increment(K, h, dr)
        corr = use_ref * ((fr1 - fr0) - jnp.concatenate([dec_r, inc_r]))
        d_new = d - dec - corr[:P]
        fte_new = fte + inc + corr[P:]
        return (d_new, fte_new), (d_new, fte_new)

    f0 = jnp.zeros((n_all - P,), y.dtype)
    xs = (ntk[:-1], dt, f_ref[:-1], f_ref[1:], d_ref[:-1])
    _, (ds, fs) = jax.lax.scan(step, (y, f0), xs)
    return jnp.concatenate([y[None], ds]), jnp.concatenate([f0[None], fs])


def psd_sqrt(C, rel_cut: float = 1e-9, pinv_cut: float | None = None):
    """Symmetric square root and pseudo-inverse square root of a PSD matrix (eigh-based).

    Eigenvalues below ``rel_cut`` (``pinv_cut`` for the pseudo-inverse) times the largest are
    dropped."""
    C = 0.5 * (C + C.T)
    lam, V = jnp.linalg.eigh(C)
    top = jnp.maximum(lam[-1], 1e-300)
    keep = lam > rel_cut * top
    keep_inv = lam > (rel_cut if pinv_cut is None else pinv_cut) * top
    lam = jnp.where(keep, lam, 0.0)
    s = jnp.sqrt(lam)
    sinv = jnp.where(keep_inv, 1.0 / jnp.where(keep_inv, s, 1.0), 0.0)
    return (V * s) @ V.T, (V * sinv) @ V.T


def gd_edge_ratio(ntk, n_train: int, dyn: Dynamics) -> float:
    r"""GD stability ratio :math:`\eta\,\lambda_{\max}(K^{tr}(t_{\rm end}))/P` at the last
    output time (0 for gradient flow or non-finite output, which the contract flags anyway):
    the step :math:`\Delta \to (1 - \eta K/P)\Delta` amplifies the top mode while it is
    at least 2. Only the end counts: a run that starts past the edge of :math:`K(0)` can
    recover as the kernel moves (catapult; measured for deep linear networks at
    ``1.05 x`` the initial edge, where the loss falls 100-fold in 8 steps)."""
    if dyn.kind != "gd":
        return 0.0
    K = np.asarray(ntk, np.float64)[-1, :n_train, :n_train]
    if not np.all(np.isfinite(K)):
        return 0.0
    top = np.linalg.eigvalsh(0.5 * (K + K.T))[-1]
    return float(dyn.lr * top / n_train)


def finish(problem: Problem, *, delta, ntk, phi, g, residuals, iterations, converged,
           n_samples, ntk_se, loss_se, method, test_predictions, dyn: Dynamics,
           flow_error: float = 0.0, residual: float | None = None, throw: bool,
           hint: str = "") -> DMFTResult:
    """Pack NumPy float64 results and apply the solver contract (:func:`theorysim.contract.
    finish`): non-finite output or non-convergence raises ``ConvergenceError`` with ``throw``."""
    arrays = dict(delta=delta, ntk=ntk, phi=phi, g=g, test_predictions=test_predictions)
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
    residuals = np.asarray(residuals, dtype=np.float64)
    if residual is None:
        residual = float(residuals[-1]) if residuals.size else math.inf
    d = arrays["delta"]
    edge = gd_edge_ratio(arrays["ntk"], problem.n_train, dyn)
    if edge >= 2.0:  # past the GD stability edge the error grows: a divergence, not an answer
        converged = False
        hint = (f"lr={dyn.lr:g} is past the GD stability edge: lr * lambda_max(K(t)) / P "
                f"is {edge:.3g} >= 2 at the last time (lr must stay below 2 P / lambda_max(K), "
                f"here {2.0 * dyn.lr / edge:.4g}); " + hint)
    result = DMFTResult(
        t=problem.t.copy(), delta=d, train_loss=0.5 * np.mean(d * d, axis=1),
        predictions=problem.y[None, :] - d, test_predictions=arrays["test_predictions"],
        ntk=arrays["ntk"], phi=arrays["phi"], g=arrays["g"], converged=bool(converged),
        residual=float(residual), iterations=int(iterations), residuals=residuals,
        dynamics=dyn.kind, lr=dyn.lr, flow_error=float(flow_error), n_samples=int(n_samples),
        ntk_se=None if ntk_se is None else np.asarray(ntk_se, np.float64),
        train_loss_se=None if loss_se is None else np.asarray(loss_se, np.float64),
        method=method,
    )
    return contract_finish(result, throw=throw, solver=f"DMFT ({method})", hint=hint)


# ---------------------------------------------------------------- grids and extrapolation

#: Richardson weights for first-order (left-rectangle / GD-step) schemes, coarse to fine.
RICHARDSON = {1: (1.0,), 2: (-1.0, 2.0), 3: (1.0 / 3.0, -2.0, 8.0 / 3.0)}


def _sub(sol: dict, idx: np.ndarray) -> dict:
    """The grid solution ``sol`` restricted to the time indices ``idx``."""
    out = dict(sol)
    for k in ("delta", "fte", "ntk", "ntk_se", "loss_se"):
        if out.get(k) is not None:
            out[k] = np.asarray(out[k])[idx]
    for k in ("phi", "g"):
        a = np.asarray(out[k])
        out[k] = a[:, idx][:, :, :, idx]
    return out


def _combine(sols: list[dict], weights) -> dict:
    out = dict(sols[-1])
    for k in ("delta", "fte", "ntk", "phi", "g"):
        out[k] = sum(w * np.asarray(s[k]) for w, s in zip(weights, sols, strict=True))
    for k in ("ntk_se", "loss_se"):  # independent Monte Carlo per level
        if out.get(k) is not None:
            out[k] = np.sqrt(sum(w**2 * np.asarray(s[k]) ** 2
                                 for w, s in zip(weights, sols, strict=True)))
    out["residual"] = max(float(s["residual"]) for s in sols)
    out["iterations"] = max(int(s["iterations"]) for s in sols)
    out["converged"] = all(bool(s["converged"]) for s in sols)
    return out


def _rel_diff(a: dict, b: dict) -> float:
    err = 0.0
    for k in ("delta", "ntk"):
        x, y = np.asarray(a[k]), np.asarray(b[k])
        scale = max(float(np.max(np.abs(y))), 1e-300)
        err = max(err, float(np.max(np.abs(x - y))) / scale)
    return err if math.isfinite(err) else math.inf


def solve_dynamics(solve, t_out: np.ndarray, dyn: Dynamics, *, n_all: int, levels: int,
                   max_grid: int, noisy: bool = False) -> tuple[dict, float]:
    r"""Run a first-order grid solver under the requested dynamics; return ``(solution at
    t_out, flow_error)``.

    ``solve(grid) -> dict`` solves the discrete-time DMFT whose memory integrals use the
    left-rectangle rule on ``grid``, i.e. GD with step ``grid[n+1] - grid[n]``; it returns
    ``delta, fte, ntk, phi, g`` on that grid plus ``residual, iterations, converged`` (and
    optionally ``ntk_se, loss_se``). GD: one solve on the step grid ``lr * k``. Gradient flow:
    solves on ``t_out`` refined ``r, 2r, ..`` times (``levels`` grids), Richardson
    extrapolation to step 0 (the GD solution is smooth in the step), error estimate = max
    change against the extrapolation from one level fewer; ``r`` doubles until the estimate is
    below ``dyn.flow_tol`` or the next finest grid would exceed ``max_grid`` (T+1)*P_all
    points. ``noisy`` (Monte-Carlo solvers with independent samples per grid): also stop when
    the change is within 4 combined standard errors (``ntk_se``) entrywise, and record the
    change as ``flow_noise`` (the level below which it cannot be resolved)."""
    if dyn.kind == "gd":
        grid = dyn.lr * np.arange(int(dyn.steps[-1]) + 1, dtype=np.float64)
        return _sub(solve(grid), dyn.steps), 0.0
    w = RICHARDSON[levels]
    lower = RICHARDSON[levels - 1] if levels > 1 else None
    cache: dict[int, dict] = {}

    def at(r):
        if r not in cache:
            cache[r] = _sub(solve(refine(t_out, r)), np.arange(t_out.shape[0]) * r)
        return cache[r]

    r = 1
    while True:
        sols = [at(r * 2**k) for k in range(levels)]
        best = _combine(sols, w)
        err = (math.inf if lower is None else _rel_diff(best, _combine(sols[1:], lower)))
        best["flow_noise"] = 0.0
        if noisy and math.isfinite(err):
            se = np.sqrt(sum(np.asarray(s["ntk_se"]) ** 2 for s in sols))
            z = np.abs(np.asarray(sols[-1]["ntk"]) - np.asarray(sols[0]["ntk"]))
            if np.max(z / np.maximum(se, 1e-300)) <= 4.0:
                best["flow_noise"] = err
        finer = (refine(t_out, r * 2**levels).shape[0]) * n_all
        if (err <= max(dyn.flow_tol, best["flow_noise"]) or finer > max_grid
                or not best["converged"]):
            return best, err
        r *= 2
