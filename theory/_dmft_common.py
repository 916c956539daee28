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
with step ``t_{m+1} - t_m`` at infinite width. ``gamma0 = 0`` uses :math:`\Delta(t) = e^{-Kt/P}y`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from theorysim.checks import as_finite_array, check_choice, check_scalar

ACTIVATIONS = ("relu", "tanh", "linear", "erf")


@dataclasses.dataclass(frozen=True)
class DMFTResult:
    r"""Order parameters of a DMFT solve on the time grid ``t`` (which starts at 0).

    Attributes:
      t: ``(T+1,)`` times (DMFT units, see module docstring), ``t[0] = 0``.
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
      residuals: ``(n_iter,)`` self-consistency residual after each outer iteration (max abs
        change of the kernels and of Delta, relative to their scale).
      n_iter: outer iterations used.
      converged: whether the last residual is below ``tol``.
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
    residuals: np.ndarray
    n_iter: int
    converged: bool
    n_samples: int
    ntk_se: np.ndarray | None
    train_loss_se: np.ndarray | None
    method: str


class DMFTConvergenceError(RuntimeError):
    """Raised when a DMFT fixed point does not reach ``tol`` (message gives the residual)."""


@dataclasses.dataclass(frozen=True)
class Problem:
    """Validated host-side inputs (NumPy float64)."""

    X: np.ndarray  # (P_all, D): train then test
    y: np.ndarray  # (P,)
    t: np.ndarray  # (T+1,) with t[0] = 0
    gamma0: float
    n_train: int

    @property
    def n_all(self) -> int:
        return self.X.shape[0]


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
    gamma0 = check_scalar("gamma0", gamma0, lo=0.0)
    if X_test is None:
        X_all = X
    else:
        X_test = as_finite_array("X_test", X_test, ndim=2)
        if X_test.shape[1] != X.shape[1]:
            raise ValueError(f"X_test must have {X.shape[1]} columns like X, got "
                             f"{X_test.shape[1]}")
        X_all = np.concatenate([X, X_test], axis=0)
    return Problem(X_all, y, np.concatenate([[0.0], t]), gamma0, X.shape[0])


def check_solver_args(*, n_samples=None, damping=None, tol=None, max_iter=None,
                      activation=None, depth=None) -> None:
    """Validate the numerical controls shared by the solvers."""
    if n_samples is not None:
        check_scalar("n_samples", n_samples, lo=2, integer=True)
    if damping is not None:
        check_scalar("damping", damping, lo=0.0, hi=1.0, lo_open=True)
    if tol is not None:
        check_scalar("tol", tol, lo=0.0, lo_open=True)
    if max_iter is not None:
        check_scalar("max_iter", max_iter, lo=1, integer=True)
    if activation is not None:
        check_choice("activation", activation, ACTIVATIONS)
    if depth is not None:
        check_scalar("depth", depth, lo=1, integer=True)


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


def error_dynamics(ntk, y, t, n_train: int, f_ref=None, d_ref=None):
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
        c = V.T @ d
        return d - V @ (jnp.exp(z) * c), (K[P:, :P] @ (V @ (h * phi1 * c))) / P

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


def finish(problem: Problem, *, delta, ntk, phi, g, residuals, n_iter, converged, n_samples,
           ntk_se, loss_se, method, test_predictions, tol, raise_on_failure) -> DMFTResult:
    """Pack NumPy float64 results; refuse NaN; raise on non-convergence if asked."""
    arrays = dict(delta=delta, ntk=ntk, phi=phi, g=g, test_predictions=test_predictions)
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
    residuals = np.asarray(residuals, dtype=np.float64)
    for name, arr in arrays.items():
        if not np.all(np.isfinite(arr)):
            raise DMFTConvergenceError(
                f"DMFT ({method}) produced non-finite {name} (last residual "
                f"{residuals[-1] if residuals.size else float('nan'):.3g}); reduce the time step "
                "or gamma0")
    if not converged and raise_on_failure:
        raise DMFTConvergenceError(
            f"DMFT ({method}) did not converge in {n_iter} iterations: residual "
            f"{residuals[-1]:.3g} > tol {tol:.3g}; increase max_iter or lower damping")
    d = arrays["delta"]
    return DMFTResult(
        t=problem.t.copy(), delta=d, train_loss=0.5 * np.mean(d * d, axis=1),
        predictions=problem.y[None, :] - d, test_predictions=arrays["test_predictions"],
        ntk=arrays["ntk"], phi=arrays["phi"], g=arrays["g"], residuals=residuals,
        n_iter=int(n_iter), converged=bool(converged), n_samples=int(n_samples),
        ntk_se=None if ntk_se is None else np.asarray(ntk_se, np.float64),
        train_loss_se=None if loss_se is None else np.asarray(loss_se, np.float64),
        method=method,
    )
