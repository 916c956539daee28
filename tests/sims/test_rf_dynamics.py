"""Random-feature student trained by gradient flow / online SGD (sims only, no theory)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import expm

from tests._tolerances import assert_allclose
from theorysim.sims import random_feature_dynamics, random_feature_online_sgd

K = np.arange(1, 41, dtype=np.float64)
LAM, TP = K**-1.5, K**-2.0
T = np.array([0.5, 3.0, 30.0, 300.0])


def _draw(key, N, P, dtype):
    """Re-draw seed 0's A, training inputs and noise the way the simulation does."""
    k_a, k_x, k_e = jax.random.split(jax.random.split(key, 1)[0], 3)
    a = np.asarray(jax.random.normal(k_a, (N, LAM.size), dtype), np.float64)
    psi = np.asarray(jax.random.normal(k_x, (P, LAM.size), dtype), np.float64) * np.sqrt(LAM)
    eps = np.asarray(jax.random.normal(k_e, (P,), dtype), np.float64)
    return a, psi, eps


@pytest.mark.parametrize("N,P", [(30, 12), (12, 30)])
def test_full_batch_is_exact_gradient_flow(N, P):
    """v(t) = exp(-t B C) w* (plus the noise drive), against a dense matrix exponential."""
    key, sigma = jax.random.key(4), 0.3
    with jax.enable_x64(True):
        got = np.asarray(random_feature_dynamics(key, LAM, TP, T, N, P, n_seeds=1, noise=sigma,
                                                 dtype=jnp.float64))[0]
        a, psi, eps = _draw(key, N, P, jnp.float64)
    w_star = np.sqrt(TP / LAM)
    y = psi @ w_star + sigma * eps
    F = a @ psi.T / math.sqrt(N)
    # gradient flow on w: dw/dt = -(F F^T / P) w + F y / P, from w = 0 (augmented exponential)
    gen = np.zeros((N + 1, N + 1))
    gen[:N, :N] = -F @ F.T / P
    gen[:N, N] = F @ y / P
    want = []
    for t in T:
        w = expm(gen * t)[:N, N]
        v = w_star - a.T @ w / math.sqrt(N)
        want.append(np.sum(LAM * v * v))
    assert_allclose(got, want, rtol=1e-8, atol=1e-12)


def test_population_flow_is_exact():
    key, N = jax.random.key(5), 16
    with jax.enable_x64(True):
        got = np.asarray(random_feature_dynamics(key, LAM, TP, T, N, math.inf, n_seeds=1,
                                                 dtype=jnp.float64))[0]
        a = np.asarray(jax.random.normal(jax.random.split(key, 1)[0], (N, LAM.size),
                                         jnp.float64))
    B = a.T @ a / N
    w_star = np.sqrt(TP / LAM)
    want = [np.sum(LAM * (expm(-t * B @ np.diag(LAM)) @ w_star) ** 2) for t in T]
    assert_allclose(got, want, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("N,P", [(30, 12), (12, 30)])
def test_full_batch_gd_is_exact_discrete_gradient_descent(N, P):
    """With lr: w_{n+1} = w_n - lr grad (1/2P) sum (f - y)^2, iterated by hand; lr = 1.6 puts
    lr * mu above 1 for the top modes (negative 1 - lr * mu), still below the edge 2."""
    key, sigma = jax.random.key(6), 0.3
    steps = np.array([1, 2, 7, 40])
    with jax.enable_x64(True):
        a, psi, eps = _draw(key, N, P, jnp.float64)
    w_star = np.sqrt(TP / LAM)
    y = psi @ w_star + sigma * eps
    F = a @ psi.T / math.sqrt(N)
    top = np.linalg.eigvalsh(F @ F.T / P).max()
    lr = 1.6 / top
    with jax.enable_x64(True):
        got = np.asarray(random_feature_dynamics(key, LAM, TP, lr * steps, N, P, n_seeds=1,
                                                 noise=sigma, lr=lr, dtype=jnp.float64))[0]
    w, want = np.zeros(N), []
    for n in range(1, steps[-1] + 1):
        w = w - lr * (F @ (F.T @ w - y)) / P
        if n in steps:
            v = w_star - a.T @ w / math.sqrt(N)
            want.append(np.sum(LAM * v * v))
    assert_allclose(got, want, rtol=1e-8, atol=1e-12)


def test_population_gd_is_exact():
    key, N, lr = jax.random.key(5), 16, 0.7
    steps = np.array([1, 3, 20])
    with jax.enable_x64(True):
        got = np.asarray(random_feature_dynamics(key, LAM, TP, lr * steps, N, math.inf,
                                                 n_seeds=1, lr=lr, dtype=jnp.float64))[0]
        a = np.asarray(jax.random.normal(jax.random.split(key, 1)[0], (N, LAM.size),
                                         jnp.float64))
    step = np.eye(LAM.size) - lr * (a.T @ a / N) @ np.diag(LAM)
    w_star = np.sqrt(TP / LAM)
    want = [np.sum(LAM * (np.linalg.matrix_power(step, int(n)) @ w_star) ** 2) for n in steps]
    assert_allclose(got, want, rtol=1e-8, atol=1e-12)


def test_gd_bad_lr_and_fractional_steps():
    with pytest.raises(ValueError, match="lr"):
        random_feature_dynamics(jax.random.key(0), LAM, TP, T, 8, 10, lr=0.0)
    with pytest.raises(ValueError, match="whole number of steps"):
        random_feature_dynamics(jax.random.key(0), LAM, TP, [0.5, 0.75], 8, 10, lr=0.5)


def test_dtype_policy_and_shapes():
    out = random_feature_dynamics(jax.random.key(0), LAM, TP, T, 8, 10, n_seeds=3)
    assert out.shape == (3, T.size) and out.dtype == jnp.float32
    with jax.enable_x64(False), pytest.raises(ValueError, match="dtype"):
        random_feature_dynamics(jax.random.key(0), LAM, TP, T, 8, 10, dtype=jnp.float64)
    with pytest.raises(ValueError, match="dtype"):
        random_feature_dynamics(jax.random.key(0), LAM, TP, T, 8, 10, dtype=jnp.int32)


def test_online_sgd_approaches_population_flow():
    """Online SGD with a small step tracks population gradient flow (same A distribution)."""
    t = np.array([1.0, 5.0, 20.0])
    n = 64
    sgd = np.asarray(random_feature_online_sgd(jax.random.key(1), LAM, TP, t, 16, lr=0.02,
                                               batch=16, n_seeds=n), np.float64)
    flow = np.asarray(random_feature_dynamics(jax.random.key(2), LAM, TP, t, 16, math.inf,
                                              n_seeds=n), np.float64)
    se = np.sqrt(sgd.var(0, ddof=1) / n + flow.var(0, ddof=1) / n)
    z = (sgd.mean(0) - flow.mean(0)) / se
    # SGD noise adds an O(lr / batch) excess (~1e-3 relative here), far below the seed spread
    assert np.all(np.abs(z) < 3.5), z
    assert sgd.shape == (n, t.size)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"t": [0.0, 1.0]}, "t"),
        ({"t": [2.0, 1.0]}, "t"),
        ({"t": [1.0, math.inf]}, "t"),
        ({"N": 0}, "N"),
        ({"N": 2.5}, "N"),
        ({"P": 0}, "P"),
        ({"eigvals": np.r_[LAM[:-1], math.nan]}, "eigvals"),
        ({"target_power": TP[:-2]}, "target_power"),
        ({"n_seeds": 0}, "n_seeds"),
        ({"noise": -1.0}, "noise"),
    ],
)
def test_bad_input(kwargs, name):
    args = {"eigvals": LAM, "target_power": TP, "t": [1.0, 2.0], "N": 4, "P": 5}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        random_feature_dynamics(jax.random.key(0), **args)


def test_online_bad_input():
    with pytest.raises(ValueError, match="lr"):
        random_feature_online_sgd(jax.random.key(0), LAM, TP, [1.0], 4, lr=0.0)
    with pytest.raises(ValueError, match="batch"):
        random_feature_online_sgd(jax.random.key(0), LAM, TP, [1.0], 4, batch=0)
