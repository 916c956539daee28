"""Time-domain DMFT of the random-feature model under discrete GD (THEORY.md 3, the second
route): closed forms, the exact first step, agreement with the Laplace-domain solver as
lr -> 0, simulations of discrete GD, bad input."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from tests._tolerances import assert_allclose
from tests.theory.test_ridge import theory_md
from theorysim import ConvergenceError
from theorysim.sims import random_feature_dynamics
from theorysim.theory import power_law_spectrum, scaling_law_dynamics, scaling_law_dynamics_gd

K300 = np.arange(1, 301, dtype=np.float64)
LAM300, TP300 = K300**-1.5, K300**-2.0          # THEORY.md 3 check point: M=300, P=60, N=120


def _first_step(lam, lw2, lr, N, P, noise=0.0, finite=False):
    r"""E L_1 for v_1 = (I - lr B C) w* - lr B Psi^T eps / P, from the Wishart second moments
    E[B X B] = X + (X + tr(X) I)/N and E[C X C] = Lam X Lam + (Lam X Lam + tr(Lam X) Lam)/P.
    ``finite=False`` drops the X/N and Lam X Lam/P terms, which vanish at proportional
    asymptotics (they are O(lam_1^2 / N) corrections from the top modes)."""
    fn, fp = (1.0 / N, 1.0 / P) if finite else (0.0, 0.0)
    Y = lam * (1 + fn) + lam.sum() / N                   # E[B Lam B], diagonal
    quad = np.sum(lw2 * lam * Y) * (1 + fp) + np.sum(lam * Y) * (lw2.sum() + noise**2) / P
    return lw2.sum() - 2 * lr * np.sum(lam * lw2) + lr**2 * quad


def test_infinite_width_and_data_is_plain_gd():
    lr, n = 0.3, 40
    r = scaling_law_dynamics_gd(LAM300, TP300, math.inf, math.inf, lr, n, modes=True)
    decay = (1 - lr * LAM300[None, :]) ** np.arange(n + 1)[:, None]
    assert_allclose(r.modes[0, 0], decay, rtol=1e-12, atol=1e-15)
    assert_allclose(r.loss[0, 0], (TP300 * decay**2).sum(1), rtol=1e-12)
    assert r.converged and r.t[-1] == pytest.approx(lr * n)


@pytest.mark.parametrize("N,P,noise", [(120.0, 60.0, 0.0), (50.0, 400.0, 0.5),
                                       (math.inf, 80.0, 0.3), (70.0, math.inf, 0.0)])
def test_first_step_is_the_proportional_second_moment(N, P, noise):
    lr = 0.9
    r = scaling_law_dynamics_gd(LAM300, TP300, P, N, lr, 3, noise=noise)
    assert_allclose(r.loss[0, 0, 1], _first_step(LAM300, TP300, lr, N, P, noise), rtol=1e-12)


def test_small_steps_converge_to_the_laplace_solver():
    """GD -> gradient flow as lr -> 0 at fixed t = lr n, with an O(lr) difference: two
    Richardson levels over lr = 0.1, 0.05, 0.025 reproduce the Laplace-domain loss and mean
    residual (the remainder is O(lr^3), largest for the top mode, lr * lam_1 = 0.1)."""
    times = np.array([1.0, 10.0])
    lap = scaling_law_dynamics(LAM300, TP300, 60, 120, times, modes=True)
    levels = []
    for lr in (0.1, 0.05, 0.025):
        idx = np.round(times / lr).astype(int)
        r = scaling_law_dynamics_gd(LAM300, TP300, 60, 120, lr, int(idx[-1]), modes=True)
        assert r.converged
        levels.append((r.loss[0, 0, idx], r.modes[0, 0, idx]))
    for j in range(2):
        r1 = [2 * levels[i + 1][j] - levels[i][j] for i in range(2)]
        extrap = (4 * r1[1] - r1[0]) / 3
        want = lap.loss[0, 0] if j == 0 else lap.modes[0, 0]
        assert np.max(np.abs(extrap - want)) < 2e-5
    # one-level differences shrink like lr (first order)
    d = [np.abs(levels[i][0] - lap.loss[0, 0]) for i in range(3)]
    assert np.all(d[1] < 0.6 * d[0]) and np.all(d[2] < 0.6 * d[1])


def test_noise_enters_like_the_laplace_solver():
    times = np.array([2.0])
    lap = scaling_law_dynamics(LAM300, TP300, 200, 100, times, noise=0.5).loss[0, 0, 0]
    vals = []
    for lr in (0.1, 0.05, 0.025):
        n = int(round(times[0] / lr))
        vals.append(scaling_law_dynamics_gd(LAM300, TP300, 200, 100, lr, n, noise=0.5)
                    .loss[0, 0, n])
    r1 = [2 * vals[1] - vals[0], 2 * vals[2] - vals[1]]
    assert abs((4 * r1[1] - r1[0]) / 3 - lap) < 2e-5


def _gd_vs_sim(Ns, P, lr, steps, n_seeds, key):
    lam, tp = power_law_spectrum(1000, 1.5, 2.0)
    th = scaling_law_dynamics_gd(lam, tp, P, np.asarray(Ns, float), lr, int(steps[-1]))
    out = []
    for i, n_ in enumerate(Ns):
        sim = np.asarray(random_feature_dynamics(jax.random.fold_in(key, i), lam, tp,
                                                 lr * steps, n_, P, n_seeds=n_seeds, lr=lr),
                         np.float64)
        se = sim.std(axis=0, ddof=1) / math.sqrt(n_seeds)
        out.append((sim.mean(axis=0), se, th.loss[i, 0, steps]))
    return lam, tp, out


@pytest.mark.slow  # suite budget: ~20-70 s on 2 cores
def test_discrete_gd_theory_vs_simulation():
    """lr = 1 (far from gradient flow: the top mode is removed in one step), M = 1000,
    P = 512, 32 seeds: DMFT within 3 SE of simulated GD at N = 256 and 1024, steps 1..300.

    At N = 64 the simulation sits ~10% above DMFT at the first steps (z ~ 4). That is the
    top mode's finite-size fluctuation: E[B Lam B] = Lam + (Lam + tr Lam)/N, and proportional
    asymptotics keep only tr Lam / N; the lam_1^2 / N term is ~1/64 against L_1 ~ 0.19. The
    exact finite-N first step accounts for it: the simulation matches it, DMFT matches the
    proportional one to 1e-12."""
    steps = np.array([1, 2, 4, 10, 30, 100, 300])
    _, _, rows = _gd_vs_sim([256, 1024], 512, 1.0, steps, 32, jax.random.key(7))
    for mean, se, th in rows:
        z = (mean - th) / se
        assert np.all(np.abs(z) < 3.0), z
    lam, tp, [(mean, se, th)] = _gd_vs_sim([64], 512, 1.0, steps[:1], 1024, jax.random.key(8))
    assert_allclose(th[0], _first_step(lam, tp, 1.0, 64, 512), rtol=1e-12)
    assert abs(mean[0] - _first_step(lam, tp, 1.0, 64, 512, finite=True)) < 3 * se[0]
    assert (mean[0] - th[0]) > 4 * se[0]        # the named finite-size effect is resolved


@pytest.mark.slow
def test_theory_md_late_times_by_the_time_domain_route():
    """THEORY.md 3 first listed L(100) = 0.0814 and L(1000) = 0.0813; the Laplace solver gives
    0.08126 and 0.08137 (THEORY.md's current listing). The time-domain route (independent: no
    kappa root, no inversion) agrees with the Laplace solver, not with the earlier listing: one
    Richardson level over lr = 1, 0.5 is within 1.7e-7 at t = 100 and 4.5e-10 at t = 1000
    (two levels over lr = 0.5, 0.25, 0.125 reach 2e-11 at t = 100)."""
    md = [p for p in theory_md()["scaling_law_dynamics"]["loss"] if p["t"] in (100.0, 1000.0)]
    lap = scaling_law_dynamics(LAM300, TP300, 60, 120, [100.0, 1000.0]).loss[0, 0]
    vals = {}
    for lr in (1.0, 0.5):
        n = int(round(1000 / lr))
        r = scaling_law_dynamics_gd(LAM300, TP300, 60, 120, lr, n)
        vals[lr] = r.loss[0, 0, [int(round(100 / lr)), n]]
    extrap = 2 * vals[0.5] - vals[1.0]
    assert np.max(np.abs(extrap - lap)) < 1e-6
    assert np.max(np.abs(extrap - [float(p["two_routes"]) for p in md])) < 1e-6
    assert abs(extrap[0] - float(md[0]["listed_earlier"])) > 1e-4


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"lr": math.inf}, "lr"),
        ({"n_steps": 0}, "n_steps"),
        ({"n_steps": 5000}, "n_steps"),
        ({"n_steps": 2.5}, "n_steps"),
        ({"N": 0.0}, "N"),
        ({"P": [10.0, math.nan]}, "P"),
        ({"noise": -0.1}, "noise"),
        ({"eigvals": np.r_[LAM300[:-1], 0.0]}, "eigvals"),
        ({"target_power": TP300[:-1]}, "target_power"),
        ({"tol": 0.0}, "tol"),
    ],
)
def test_bad_input(kwargs, name):
    args = {"eigvals": LAM300, "target_power": TP300, "lr": 0.1, "n_steps": 10, "N": 10.0,
            "P": 10.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        scaling_law_dynamics_gd(**args)


def test_unstable_learning_rate_raises():
    with pytest.raises(ConvergenceError, match="stability"):
        scaling_law_dynamics_gd(LAM300, TP300, math.inf, math.inf, 50.0, 400)
    flagged = scaling_law_dynamics_gd(LAM300, TP300, math.inf, math.inf, 50.0, 400, throw=False)
    assert not flagged.converged and not np.all(np.isfinite(flagged.loss))


@pytest.mark.slow  # suite budget: ~20-70 s on 2 cores
def test_stability_edge():
    """lr_max = 2 / x_max, x_max the top of the deterministic-equivalent spectrum of BC: the
    exact 2 / lam_1 at N = P = inf, the Marchenko-Pastur edge (1 + sqrt(M/N))^2 for a flat
    spectrum at P = inf, and where the predicted loss starts to diverge at finite N, P: just
    below the edge it stays bounded and converged, just above it grows while still finite
    (the 1e203-and-converged case of the past) and is flagged, and throw=True names lr."""
    r = scaling_law_dynamics_gd(LAM300, TP300, math.inf, math.inf, 0.1, 2)
    assert_allclose(r.lr_max, [[2.0]], rtol=1e-12)
    flat = scaling_law_dynamics_gd(np.ones(300), np.full(300, 1 / 300), math.inf, 120.0, 0.1, 2)
    assert_allclose(flat.lr_max, [[2.0 / (1.0 + math.sqrt(300 / 120)) ** 2]], rtol=1e-9)
    edge = float(scaling_law_dynamics_gd(LAM300, TP300, 60.0, 120.0, 0.1, 2).lr_max[0, 0])
    below = scaling_law_dynamics_gd(LAM300, TP300, 60.0, 120.0, 0.99 * edge, 400)
    assert below.converged and below.loss[0, 0, -1] < below.loss[0, 0, 0]
    above = scaling_law_dynamics_gd(LAM300, TP300, 60.0, 120.0, 1.01 * edge, 400, throw=False)
    L = above.loss[0, 0]
    assert np.all(np.isfinite(L)) and L[-1] > 2 * L[0] and L[-1] > 1.5 * L[300]
    assert not above.converged
    with pytest.raises(ConvergenceError, match=rf"lr={1.01 * edge:g} is past the GD stability"):
        scaling_law_dynamics_gd(LAM300, TP300, [60.0, math.inf], 120.0, 1.01 * edge, 400)
