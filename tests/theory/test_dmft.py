"""DMFT solvers: exact limits, cross-checks between the three solvers, convergence flags, bad
input, and (slow) agreement with finite-width mean-field networks from the training engine."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import scipy.linalg

from tests._tolerances import assert_allclose
from theorysim.kernels import mlp_kernel
from theorysim.theory import (
    DMFTConvergenceError,
    dmft,
    dmft_deep_linear,
    dmft_two_layer,
)


def _data(P=4, D=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(P, D)), rng.normal(size=P)


def _ntk(depth, activation, X):
    with jax.enable_x64(True):
        return np.asarray(mlp_kernel(depth, activation)(X).ntk, np.float64)


def _lazy_delta(K, y, t):
    P = y.shape[0]
    return np.stack([scipy.linalg.expm(-K * s / P) @ y for s in t])


# ------------------------------------------------------------ THEORY.md 4 exact numbers


@pytest.mark.parametrize(("gamma0", "kinf"), [(0.5, 2.236), (1.0, 2.828)])
def test_two_layer_linear_p1_kernel_limit(gamma0, kinf):
    """Linear 2-layer, P = 1, |x|^2 = D: K(inf) = 2 sqrt(1 + gamma0^2 y^2), df/dt = K (y - f)."""
    X, y = np.ones((1, 4)), np.ones(1)
    t = np.linspace(0.05, 20, 400)
    r = dmft_two_layer(X, y, t, gamma0, key=jax.random.key(0), activation="linear",
                       n_samples=256)
    exact = 2 * np.sqrt(1 + gamma0**2)
    # moment-matched particles make the linear network exact: only RK4 error is left
    assert_allclose(r.ntk[-1, 0, 0], exact, rtol=1e-8)
    assert round(r.ntk[-1, 0, 0], 3) == kinf
    # df/dt = K (y - f): compare a centred difference with K Delta at interior points
    f, h = r.predictions[:, 0], r.t[1] - r.t[0]  # uniform grid, spacing 0.05
    dfdt = (-f[4:] + 8 * f[3:-1] - 8 * f[1:-3] + f[:-4]) / (12 * h)
    rhs = r.ntk[2:-2, 0, 0] * r.delta[2:-2, 0]
    # fourth-order stencil: error ~ h^4 |f^(5)|/30 ~ 1e-5 |f'| for K <~ 3
    np.testing.assert_allclose(dfdt, rhs, rtol=1e-4, atol=1e-8)


def test_deep_linear_p1_first_order_in_time_step():
    """The deep linear solver (depth 1) reaches the exact K(inf) with an O(dt) error."""
    X, y = np.ones((1, 4)), np.ones(1)
    errs = []
    for T in (50, 100, 200):
        r = dmft_deep_linear(X, y, np.linspace(15 / T, 15, T), 0.5)
        errs.append(abs(r.ntk[-1, 0, 0] - 2 * np.sqrt(1.25)))
        assert r.converged and r.residuals[-1] <= 1e-10
    order = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    # first order, approached from above (pre-asymptotic at T = 50)
    assert np.all((order > 0.9) & (order < 1.4)), order
    assert errs[-1] < 0.02


# ------------------------------------------------------------ lazy limit gamma0 -> 0


def test_deep_linear_lazy_limit_is_static_ntk():
    X, y = _data(P=4)
    Xt = _data(P=2, seed=1)[0]
    t = np.linspace(0.1, 5, 20)
    for depth in (1, 3):
        r = dmft_deep_linear(X, y, t, 0.0, depth=depth, X_test=Xt)
        K = _ntk(depth, "linear", np.concatenate([X, Xt]))
        assert_allclose(r.ntk[-1], K, rtol=1e-9, atol=1e-12)
        assert_allclose(r.delta, _lazy_delta(K[:4, :4], y, r.t), rtol=1e-8, atol=1e-10)
        # test predictions of kernel gradient flow: K_te,tr K^-1 (y - Delta)
        pred = K[4:, :4] @ np.linalg.solve(K[:4, :4], (y[None] - r.delta).T)
        assert_allclose(r.test_predictions, pred.T, rtol=1e-7, atol=1e-9)


def test_two_layer_relu_lazy_limit_matches_mlp_kernel():
    X, y = _data(P=5)
    t = np.linspace(0.2, 8, 20)
    r = dmft_two_layer(X, y, t, 1e-6, key=jax.random.key(1), n_samples=8192)
    K = _ntk(1, "relu", X)
    z = np.abs(r.ntk[0] - K) / r.ntk_se[0]
    assert np.max(z) < 4.5, np.max(z)  # 25 entries, Monte-Carlo z-scores
    exact = 0.5 * np.mean(_lazy_delta(K, y, r.t) ** 2, axis=1)
    assert np.max(np.abs(r.train_loss - exact)[1:] / r.train_loss_se[1:]) < 4.0
    assert_allclose(r.ntk[-1], r.ntk[0], rtol=1e-5)  # no kernel motion in the lazy limit


def test_deep_relu_lazy_limit_matches_mlp_kernel():
    X, y = _data(P=3)
    t = np.linspace(0.5, 4, 8)
    r = dmft(X, y, t, 1e-6, key=jax.random.key(2), depth=2, activation="relu", n_samples=2048)
    K = _ntk(2, "relu", X)
    z = np.abs(r.ntk[0] - K) / r.ntk_se[0]
    assert np.max(z) < 4.5, np.max(z)
    assert r.converged


# ------------------------------------------------------------ solver cross-checks


def test_two_layer_particles_match_deep_linear_solver():
    """Linear activation, depth 1: particle method (RK4) vs matrix algebra (left rectangle)."""
    X, y = _data(P=3)
    Xt = _data(P=1, seed=3)[0]
    t = np.linspace(0.025, 4, 160)
    a = dmft_deep_linear(X, y, t, 1.0, X_test=Xt)
    b = dmft_two_layer(X, y, t, 1.0, X_test=Xt, key=jax.random.key(0), activation="linear",
                       n_samples=512)
    # b is exact up to RK4; a has an O(dt) = O(0.025) left-rectangle error
    np.testing.assert_allclose(a.train_loss, b.train_loss, atol=2e-3)
    np.testing.assert_allclose(a.phi, b.phi, atol=2e-2)
    np.testing.assert_allclose(a.test_predictions, b.test_predictions, atol=2e-2)


def test_monte_carlo_solver_matches_deep_linear_on_linear_activation():
    """Depth 2 (responses A, B non-zero), same grid: sampling solver vs matrix algebra."""
    X, y = _data(P=3)
    t = np.linspace(0.2, 3, 15)
    a = dmft_deep_linear(X, y, t, 1.0, depth=2)
    b = dmft(X, y, t, 1.0, key=jax.random.key(0), depth=2, activation="linear",
             n_samples=1024)
    assert b.converged and b.n_iter < 200
    z = np.abs(a.train_loss - b.train_loss)[1:] / b.train_loss_se[1:]
    assert np.max(z) < 4.0, z
    z = np.abs(a.ntk - b.ntk) / np.maximum(b.ntk_se, 1e-12)
    assert np.max(z) < 5.0, np.max(z)  # max over 16 x 9 correlated entries
    # feature learning happened: the kernel moved by many standard errors
    assert np.max(np.abs(a.ntk[-1] - a.ntk[0]) / b.ntk_se[-1]) > 10


def test_monte_carlo_depth1_relu_close_to_particles():
    X, y = _data(P=3)
    t = np.linspace(0.05, 2, 40)
    a = dmft(X, y, t, 1.0, key=jax.random.key(0), depth=1, n_samples=2048)
    b = dmft_two_layer(X, y, t, 1.0, key=jax.random.key(0), n_samples=2048)
    # different samples and a first-order (dt = 0.05) vs RK4 scheme: loose absolute tolerance
    np.testing.assert_allclose(a.train_loss, b.train_loss, atol=0.02 * b.train_loss[0])


def test_monte_carlo_depth2_tanh_converges_with_responses():
    """Nonlinear depth 2 (Stein responses): the damped iteration reaches tol and learns."""
    X, y = _data(P=3, D=10)
    r = dmft(X, y, 0.05 * np.arange(1, 16), 1.0, key=jax.random.key(0), depth=2,
             activation="tanh", n_samples=512, max_iter=80)
    assert r.converged and r.residuals[-1] <= 1e-6 and r.n_iter < 80
    assert r.train_loss[-1] < 0.9 * r.train_loss[0]
    assert np.all(np.isfinite(r.train_loss_se)) and np.all(r.ntk_se[1:] > 0)


# ------------------------------------------------------------ diagnostics and bad input


def test_non_convergence_raises_or_flags():
    X, y = _data(P=3)
    t = np.linspace(0.2, 3, 10)
    with pytest.raises(DMFTConvergenceError, match="residual"):
        dmft_deep_linear(X, y, t, 1.0, depth=2, max_iter=2)
    r = dmft_deep_linear(X, y, t, 1.0, depth=2, max_iter=2, raise_on_failure=False)
    assert not r.converged and r.n_iter == 2 and r.residuals.shape == (2,)
    assert np.all(np.isfinite(r.residuals)) and r.residuals[-1] > 1e-10
    with pytest.raises(DMFTConvergenceError, match="residual"):
        dmft(X, y, t, 1.0, key=jax.random.key(0), max_iter=2, n_samples=64)


def test_residuals_decrease_and_results_are_float64():
    X, y = _data(P=3)
    r = dmft_deep_linear(X, y, np.linspace(0.2, 3, 10), 1.0, depth=2)
    assert r.residuals[-1] < 1e-3 * r.residuals[0]
    for arr in (r.delta, r.ntk, r.phi, r.g, r.train_loss):
        assert arr.dtype == np.float64 and np.all(np.isfinite(arr))
    assert r.phi.shape == (2, 11, 3, 11, 3) and r.t[0] == 0.0


X0, Y0, T0 = np.ones((2, 3)), np.ones(2), np.linspace(0.1, 1, 5)
BAD = [
    (dict(t=np.array([0.0, 1.0])), "t"),
    (dict(t=np.array([-1.0, 1.0])), "t"),
    (dict(t=np.array([1.0, 0.5])), "t must be strictly increasing"),
    (dict(t=np.array([])), "t"),
    (dict(gamma0=-0.1), "gamma0"),
    (dict(X=np.zeros((0, 3)), y=np.zeros(0)), "X"),
    (dict(X=np.array([[np.nan, 1, 1], [1, 1, 1]])), "X"),
    (dict(y=np.array([1.0, np.inf])), "y"),
    (dict(y=np.ones(3)), "y"),
]


@pytest.mark.parametrize(("kw", "msg"), BAD)
@pytest.mark.parametrize("solver", ["two_layer", "deep_linear", "dmft"])
def test_bad_input_raises_value_error(kw, msg, solver):
    args = dict(X=X0, y=Y0, t=T0, gamma0=0.5)
    args.update(kw)
    fn = {"two_layer": lambda **a: dmft_two_layer(**a, key=jax.random.key(0)),
          "deep_linear": dmft_deep_linear,
          "dmft": lambda **a: dmft(**a, key=jax.random.key(0))}[solver]
    with pytest.raises(ValueError, match=msg):
        fn(**args)


@pytest.mark.parametrize(("kw", "msg"), [(dict(n_samples=1), "n_samples"),
                                         (dict(depth=0), "depth"),
                                         (dict(activation="softsign"), "activation"),
                                         (dict(damping=0.0), "damping")])
def test_bad_solver_controls(kw, msg):
    with pytest.raises(ValueError, match=msg):
        dmft(X0, Y0, T0, 0.5, key=jax.random.key(0), **kw)
    if "n_samples" in kw:
        with pytest.raises(ValueError, match=msg):
            dmft_two_layer(X0, Y0, T0, 0.5, key=jax.random.key(0), **kw)


# ------------------------------------------------------------ finite-width networks (slow)


@pytest.mark.slow
@pytest.mark.parametrize("gamma0", [0.1, 1.0])
def test_two_layer_matches_width_4096_mean_field_networks(gamma0):
    """Full-batch GD of width-4096 mean-field ReLU networks (the project's training engine,
    16 seeds, output centred at initialisation) vs dmft_two_layer: within 3 standard errors."""
    from theorysim.sims import EnsembleSpec, ModelConfig, TrainConfig, train

    X, y = _data(P=8, D=10)
    y = np.sign(y)
    eta, steps = 0.02, 250
    rec = tuple(range(0, steps + 1, 25))
    th = dmft_two_layer(X, y, eta * np.array(rec[1:], float), gamma0, key=jax.random.key(0),
                        n_samples=40000)
    res = train(ModelConfig(width=4096, depth=1, parameterization="mean_field",
                            activation="relu", gamma0=gamma0, centre=True),
                TrainConfig(steps=steps, lr=eta, record_steps=rec, observables=("loss",)),
                x=X.astype(np.float32), y=y.astype(np.float32),
                ensemble=EnsembleSpec(seeds=tuple(range(16))))
    L = np.asarray(res.to_xarray().loss).reshape(16, -1)
    se = np.sqrt(L.var(0, ddof=1) / 16 + th.train_loss_se**2)
    z = np.abs(L.mean(0) - th.train_loss)[1:] / se[1:]
    assert np.max(z) < 3.0, z


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("gamma0", [0.1, 1.0])
def test_deep_network_matches_width_4096_networks_on_the_gd_grid(gamma0, activation):
    """Depth 2 (three weight layers) tanh and ReLU: dmft on the grid t = eta * step (its
    left-rectangle memory is the discrete-time DMFT of GD with that step) vs 16 width-4096
    mean-field networks trained by the engine (centred outputs): within 3 combined standard
    errors.

    Measured (2026-11-24, error="ntk"): tanh gamma0 = 0.1 within 0.1%, gamma0 = 1 within 1%
    (< 1 SE; the DMFT Monte-Carlo error at S = 2048 dominates); ReLU within 0.3% / 0.9%
    (|z| <= 1.05).

    ReLU: with finitely many samples the fixed-point map is piecewise (each sample's
    phi'(h) = 1[h > 0] flips as the kernels move), so the residual stalls at a level that falls
    like 1/S instead of reaching tol: median of the last 20 residuals 9.1e-3 / 2.8e-3 / 7.0e-4
    at S = 512 / 2048 / 8192 (gamma0 = 1, response_cut = 1e-2). The solver flags this
    (converged = False); the test checks that the stall is at that Monte-Carlo level."""
    from theorysim.sims import EnsembleSpec, ModelConfig, TrainConfig, train

    X, y = _data(P=6, D=10)
    y = np.sign(y)
    eta, steps = 0.05, 40
    rec = tuple(range(0, steps + 1, 8))
    kw = dict(response_cut=1e-2, max_iter=120, raise_on_failure=False) if activation == "relu" \
        else {}
    th = dmft(X, y, eta * np.arange(1, steps + 1), gamma0, key=jax.random.key(0), depth=2,
              activation=activation, n_samples=2048, chunk_size=256, tol=1e-5, **kw)
    if activation == "relu":
        assert np.median(th.residuals[-20:]) < 1e-2
    res = train(ModelConfig(width=4096, depth=2, parameterization="mean_field",
                            activation=activation, gamma0=gamma0, centre=True),
                TrainConfig(steps=steps, lr=eta, record_steps=rec, observables=("loss",)),
                x=X.astype(np.float32), y=y.astype(np.float32),
                ensemble=EnsembleSpec(seeds=tuple(range(16))))
    L = np.asarray(res.to_xarray().loss).reshape(16, -1)
    idx = list(rec)
    se = np.sqrt(L.var(0, ddof=1) / 16 + th.train_loss_se[idx] ** 2)
    z = np.abs(L.mean(0) - th.train_loss[idx])[1:] / se[1:]
    assert np.max(z) < 3.0, z
