"""``dmft_two_layer_finite_width`` against plain JAX networks (``_finite_width_sims``).

Compared, times N: the variance over seeds of the NTK entries and the mean-loss gap
``E L_N - L_inf`` (seed mean with zero-mean control variates: the same initial neurons driven
by the infinite-width error, whose mean is known exactly; this removes the O(N^-1/2) seed noise
without using the finite-width theory). z-scores combine the simulation SE and the theory's
reported SE.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from theorysim.theory import dmft_two_layer_finite_width, sliding_ntk

from ._finite_width_sims import filippov, gap_with_control, simulate


def _task(D=7, P=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, D))
    X *= math.sqrt(D) / np.linalg.norm(X, axis=1, keepdims=True)
    return X, rng.standard_normal(P)


def _compare(r, X, y, act, gamma0, lr, N, seeds, key):
    """z-scores of N Var K (upper-triangle entries, (R, n_entries)) and of N x loss gap (R,)."""
    rec = tuple(int(round(v / lr)) for v in r.t)
    with jax.enable_x64(True):
        L, K, fq, _ = simulate(jax.random.split(jax.random.key(key), seeds), X, y, gamma0, lr,
                               r.delta_steps, N=N, act=act, rec=rec, chunk=min(seeds, 256))
    L, K, fq = np.asarray(L), np.asarray(K), np.asarray(fq)
    m, se = gap_with_control(L, fq, y - r.delta_steps, rec)
    gap = N * (m - r.train_loss)
    z_gap = (gap - r.loss_gap) / np.sqrt(N**2 * (se**2 + r.train_loss_se**2)
                                         + r.loss_gap_se**2)
    Kc = K - K.mean(0)
    var = N * (Kc**2).mean(0) * seeds / (seeds - 1)
    var_se = N * (Kc**2).std(0) / math.sqrt(seeds)
    iu = np.triu_indices(X.shape[0])
    z_k = ((var - r.ntk_var) / np.sqrt(var_se**2 + r.ntk_var_se**2))[:, iu[0], iu[1]]
    return z_k, z_gap, gap


def test_linear_network_at_init_is_exact():
    # K_00 = h^2 + z^2 with h, z independent standard normals: N Var K_00 = 4; the loss gap
    # at t = 0 is Var f(0) / (2) averaged over points = E h^2 / (2 gamma0^2) = 0.5
    r = dmft_two_layer_finite_width(np.eye(2) * 2**0.5, np.ones(2), [0.1], 1.0,
                                    key=jax.random.key(0), activation="linear", lr=0.05,
                                    n_samples=4096)
    assert r.converged and r.ntk_var.dtype == np.float64
    assert r.ntk_var[0, 0, 0] == pytest.approx(4.0, rel=0.02)
    assert r.ntk_var[0, 0, 1] == pytest.approx(1.0, rel=0.03)  # Var(h_0 h_1) = 1
    assert r.loss_gap[0] == pytest.approx(0.5, rel=0.02)
    assert r.residual < 1e-8


def test_tanh_short_training_matches_networks():
    X, y = _task(D=5, P=4)
    r = dmft_two_layer_finite_width(X, y, [0.5], 1.0, key=jax.random.key(1), lr=0.05,
                                    n_samples=2048, n_mean=2**14)
    z_k, z_gap, gap = _compare(r, X, y, "tanh", 1.0, 0.05, N=64, seeds=1024, key=5)
    assert np.max(np.abs(z_k)) < 4.0, z_k  # 20 correlated entries
    assert np.max(np.abs(z_gap)) < 3.0, (z_gap, gap, r.loss_gap)
    # the gap is resolved (not a pass by noise): its theory SE is a few % of it
    assert np.all(r.loss_gap_se[1:] < 0.1 * np.abs(r.loss_gap[1:]))


def test_vmapped_filippov_kernel_matches_sliding_ntk():
    rng = np.random.default_rng(3)
    X, _ = _task(D=5, P=4)
    h = rng.standard_normal((64, 4)) * 0.05
    z = rng.standard_normal(64)
    d = rng.standard_normal(4)
    phi0 = X @ X.T / X.shape[1]
    with jax.enable_x64(True):
        s = np.asarray(filippov(h, z, d, phi0, 1.0, 0.05))
    assert np.any((s > 0) & (s < 1))  # some neurons slide
    g = s * z[:, None]
    K = (np.maximum(h, 0).T @ np.maximum(h, 0) + (g.T @ g) * phi0) / 64
    # sliding_ntk evaluates the slopes in JAX's default float32 (outside an x64 scope): 1e-6
    np.testing.assert_allclose(K, sliding_ntk(h, z, d, X, 1.0, step=0.05), rtol=1e-6)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"gamma0": 0.0}, "gamma0"),
    ({"n_samples": 1000}, "n_samples must be a power of 2"),
    ({"n_mean": 2**10, "n_samples": 2**12}, "n_mean"),
    ({"dynamics": "flow", "lr": 0.05}, "lr must be None"),
    ({"lr": 0.03}, "multiples of lr"),
    ({"activation": "gelu"}, "activation"),
    ({"kink_width": 0.0}, "kink_width"),
    ({"centered": "no"}, "centered"),
    ({"max_memory_gb": 1e-6}, "max_memory_gb"),
])
def test_bad_input_is_refused_before_compute(kwargs, needle):
    X, y = _task(D=5, P=4)
    args = dict(gamma0=1.0, key=jax.random.key(0), lr=0.05)
    args.update(kwargs)
    g = args.pop("gamma0")
    with pytest.raises(ValueError, match=needle):
        dmft_two_layer_finite_width(X, y, [0.5], g, **args)


@pytest.mark.slow
@pytest.mark.parametrize(("act", "gamma0"), [("tanh", 0.5), ("tanh", 1.5), ("relu", 0.5),
                                             ("relu", 1.5)])
def test_width_128_to_1024_networks(act, gamma0):
    """The issue-13 setting: D = 7, P = 6 on the sphere, lr = 0.05, t = 1, 2, 3; 4096 seeds
    per width. NTK variance x N: >= 97% of the 21 entries x 4 times within 3 SE, none beyond
    4.5; loss gap x N within 3 SE at every time (tanh; for ReLU it is reported, not asserted:
    see the solver's docstring)."""
    X, y = _task()
    r = dmft_two_layer_finite_width(X, y, [1.0, 2.0, 3.0], gamma0, key=jax.random.key(1),
                                    activation=act, lr=0.05, n_samples=8192)
    for N in (128, 256, 512, 1024):
        z_k, z_gap, gap = _compare(r, X, y, act, gamma0, 0.05, N=N, seeds=4096, key=11 + N)
        print(f"{act} gamma0={gamma0} N={N}: NTK var max|z| {np.max(np.abs(z_k)):.2f}, "
              f"gap x N sim {np.round(gap, 4)} theory {np.round(r.loss_gap, 4)} "
              f"z {np.round(z_gap, 2)}")
        assert np.mean(np.abs(z_k) <= 3.0) >= 0.97 and np.max(np.abs(z_k)) < 4.5, (N, z_k)
        if act == "tanh":
            assert np.max(np.abs(z_gap)) < 3.0, (N, z_gap)
