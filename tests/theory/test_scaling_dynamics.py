"""The dynamical model of scaling laws (THEORY.md 3; arXiv 2402.01092): stated numbers, limits,
inversion convergence, exponents, theory vs the random-feature simulation, bad input."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from tests._tolerances import assert_allclose
from tests.theory.test_ridge import assert_stated_digits, theory_md
from theorysim import ConvergenceError
from theorysim.sims import random_feature_dynamics
from theorysim.theory import (
    compute_optimal,
    fit_power_law,
    power_law_spectrum,
    random_feature_risk,
    ridge_risk,
    scaling_exponents,
    scaling_law_dynamics,
)

K300 = np.arange(1, 301, dtype=np.float64)
LAM300, TP300 = K300**-1.5, K300**-2.0          # THEORY.md 3 check point: M=300, P=60, N=120


MD = theory_md()["scaling_law_dynamics"]


@pytest.fixture(scope="module")
def check_point():
    assert (MD["spectrum"]["M"], MD["P"], MD["N"]) == (300, 60, 120)  # LAM300, TP300
    times = [p["t"] for p in MD["loss"]]
    return scaling_law_dynamics(LAM300, TP300, MD["P"], MD["N"], times, modes=True)


def test_theory_md_numbers(check_point):
    r = check_point
    assert r.converged and r.residual < 1e-12
    h = MD["mode_residual"]
    i = [p["t"] for p in MD["loss"]].index(h["t"])
    assert_stated_digits([r.modes[0, 0, i, h["k"] - 1]], [h["H"]])
    loss = r.loss[0, 0]
    assert_stated_digits(loss, [p["L"] for p in MD["loss"]])
    # THEORY.md first listed L(100)=0.0814, L(1000)=0.0813 (a coarser prototype inversion, the
    # order of the two swapped). Our values are stable to 1e-8 over 12..24 Talbot nodes, the
    # t -> inf end meets the ridgeless random-feature formula to 1e-7 (test below), and the
    # independent time-domain DMFT of discrete GD, extrapolated to lr -> 0, gives the same to
    # 1e-7 (tests/theory/test_scaling_dynamics_gd.py, slow); THEORY.md now lists the two-route
    # values, which we pin to 1e-6, and the earlier listing to one unit of its third digit.
    for p, value in zip(MD["loss"], loss, strict=True):
        if "two_routes" in p:
            assert abs(value - float(p["two_routes"])) < 1e-6
            assert abs(value - float(p["listed_earlier"])) < 1.5e-4


def test_inversion_converged():
    t = np.geomspace(0.3, 3e4, 13)
    ref = scaling_law_dynamics(LAM300, TP300, [40.0, math.inf], [50.0, 400.0], t, nodes=20,
                               time_block=1.0)
    for nodes, block in [(12, 1.0), (16, 3.0), (24, 2.0)]:
        r = scaling_law_dynamics(LAM300, TP300, [40.0, math.inf], [50.0, 400.0], t,
                                 nodes=nodes, time_block=block)
        # Talbot error ~1e-8 at 12 nodes; float64 cancellation ~1e-8 at 24
        assert_allclose(r.loss, ref.loss, rtol=2e-6, atol=1e-9)


def test_infinite_width_and_data_closed_form():
    t = np.geomspace(0.1, 1e3, 9)
    r = scaling_law_dynamics(LAM300, TP300, math.inf, math.inf, t, modes=True)
    exact = np.sum(TP300 * np.exp(-2 * LAM300 * t[:, None]), axis=1)
    # Talbot with 16 nodes: ~1e-9 relative to L(0)
    assert_allclose(r.loss[0, 0], exact, rtol=1e-6, atol=1e-9)
    assert_allclose(r.modes[0, 0], np.exp(-LAM300 * t[:, None]), rtol=1e-6, atol=1e-9)
    assert_allclose(r.loss_mean[0, 0], exact, rtol=1e-6, atol=1e-9)


@pytest.mark.slow  # suite budget: ~20-70 s on 2 cores
def test_long_time_limits_match_static_theory():
    P = np.array([30.0, 100.0, 1000.0])
    N = np.array([30.0, 100.0, 1000.0])
    t_inf = [1e7]  # well past the slowest relaxation; larger t loses digits to s -> 0
    # N = inf, t -> inf: ridgeless kernel regression, with label noise
    r = scaling_law_dynamics(LAM300, TP300, P, math.inf, t_inf, noise=0.3)
    assert_allclose(r.loss[0, :, 0], ridge_risk(LAM300, TP300, P, 0.0, noise=0.3).error,
                    rtol=1e-6, atol=1e-10)
    # P = inf, t -> inf: single random-feature model at infinite data
    r = scaling_law_dynamics(LAM300, TP300, math.inf, N, t_inf)
    want = random_feature_risk(LAM300, TP300, math.inf, N, 0.0).error
    assert_allclose(r.loss[:, 0, 0], want, rtol=1e-6, atol=1e-10)
    # both finite (the THEORY.md check point and one P > N point), with noise
    for p_, n_ in [(60.0, 120.0), (200.0, 100.0)]:
        r = scaling_law_dynamics(LAM300, TP300, p_, n_, t_inf, noise=0.5)
        want = random_feature_risk(LAM300, TP300, p_, n_, 0.0, noise=0.5).error
        assert_allclose(r.loss[0, 0, 0], want, rtol=1e-6)


def test_t_inf_is_the_ridgeless_random_feature_limit():
    """t = inf is the closed form: the ridgeless random-feature risk (with label noise, the
    kernel and population limits, and the interpolation peak N = P, where it is inf and
    flagged), and H_k(inf) = kappa*/(kappa* + lam_k); finite times before it are unchanged."""
    P = np.array([30.0, 100.0, math.inf])
    N = np.array([60.0, 100.0, math.inf])
    t = [10.0, 1e3]
    r = scaling_law_dynamics(LAM300, TP300, P, N, [*t, math.inf], noise=0.3, modes=True,
                             throw=False)
    want = random_feature_risk(LAM300, TP300, P[None, :], N[:, None], 0.0, noise=0.3)
    assert_allclose(r.loss[..., -1], want.error, rtol=1e-14, atol=0.0)
    assert np.isinf(r.loss[1, 1, -1]) and not r.converged      # N = P = 100 < M
    kappa = np.broadcast_to(want.kappa, (3, 3))
    assert_allclose(r.modes[..., -1, :], kappa[..., None] / (kappa[..., None] + LAM300),
                    rtol=1e-14, atol=0.0)
    assert np.all(r.point_inversion_error[..., -1] == 0.0)
    finite = scaling_law_dynamics(LAM300, TP300, P, N, t, noise=0.3, throw=False)
    # (a different program: modes=True compiles other fusions, rounding differs by ~1e-13)
    assert_allclose(r.loss[..., :-1], finite.loss, rtol=1e-10, atol=0.0)
    # away from the threshold everything converges, and L(1e7) has reached the limit
    ok = scaling_law_dynamics(LAM300, TP300, 60.0, 120.0, [1e7, math.inf], noise=0.3)
    assert ok.converged and ok.t[-1] == math.inf
    assert_allclose(ok.loss[0, 0, 0], ok.loss[0, 0, 1], rtol=1e-6)


def test_huge_finite_time_is_flagged_not_converged():
    """t = 1e12 as "infinity": every kappa solve meets its tolerance, yet the difference
    quotients near s = 0 cancel and the Talbot sum amplifies that (3.6% off at N = 200, P = 20,
    M = 2000). The inversion error estimate (nodes vs nodes - 4) catches it: the result is
    flagged, the estimate bounds the actual error, and throw=True raises."""
    lam, tp = power_law_spectrum(2000, 1.5, 2.0)
    exact = random_feature_risk(lam, tp, 20.0, 200.0, 0.0).error
    r = scaling_law_dynamics(lam, tp, 20.0, 200.0, [1e3, 1e12], throw=False)
    assert r.residual < 1e-12                      # the kappa residual cannot see it
    assert not r.converged
    actual = np.abs(r.loss[0, 0] - exact) / np.sum(tp)
    assert actual[1] > 1e-3                         # the wrong answer the issue reported
    assert r.point_inversion_error[0, 0, 1] > 0.3 * actual[1]
    assert r.point_inversion_error[0, 0, 0] < 1e-7  # t = 1e3 is fine and says so
    with pytest.raises(ConvergenceError, match="inversion"):
        scaling_law_dynamics(lam, tp, 20.0, 200.0, [1e12])


def test_mean_profile_long_time_and_online_noise():
    # P = inf: H_k(inf) = kappa*/(kappa* + lam_k) with df1(kappa*) = N
    N = 40.0
    r = scaling_law_dynamics(LAM300, TP300, math.inf, N, [1e7], noise=0.7, modes=True)
    lo, hi = 1e-12, 10.0
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if np.sum(LAM300 / (LAM300 + mid)) > N else (lo, mid)
    kappa = math.sqrt(lo * hi)
    assert_allclose(r.modes[0, 0, 0], kappa / (kappa + LAM300), rtol=1e-6, atol=1e-9)
    assert np.all(r.loss_mean <= r.loss + 1e-12)
    # online training: label noise does not change the clean-target loss
    r0 = scaling_law_dynamics(LAM300, TP300, math.inf, N, [1e7])
    assert_allclose(r.loss, r0.loss, rtol=1e-8, atol=1e-12)


def test_online_loss_is_one_dimensional_inverse():
    """At P = inf, gamma = 0 and E_inf/(s1 s2) = [f(s1) - f(s2)]/(s2 - s1) with
    f = T(s)/s = sum_k lam_k w_k^2 H_k(s), whose 2-D inverse on the diagonal is f's 1-D inverse
    at 2t: L(t) = sum_k lam_k w_k^2 H_k(2t). This checks the 2-D product rule and its analytic
    diagonal limit against the 1-D rule."""
    t = np.geomspace(0.5, 2e3, 7)
    r2 = scaling_law_dynamics(LAM300, TP300, math.inf, [20.0, 150.0], t)
    r1 = scaling_law_dynamics(LAM300, TP300, math.inf, [20.0, 150.0], 2 * t, modes=True)
    via_modes = r1.modes[:, 0] @ TP300                          # (nN, T)
    assert_allclose(r2.loss[:, 0], via_modes, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("a,b", [pytest.param(2.0, 1.5, marks=pytest.mark.slow), (3.0, 1.2)])
def test_fitted_exponents(a, b):
    lam, tp = power_law_spectrum(2000, b, a)
    pred = scaling_exponents(a, b)
    t = np.geomspace(10, 1e3, 8)
    L_t = scaling_law_dynamics(lam, tp, math.inf, math.inf, t).loss.ravel()
    P = np.geomspace(20, 200, 6)
    L_p = scaling_law_dynamics(lam, tp, P, math.inf, [math.inf]).loss.ravel()
    N = np.geomspace(20, 200, 6)
    L_n = scaling_law_dynamics(lam, tp, math.inf, N, [math.inf]).loss.ravel()
    assert abs(fit_power_law(t, L_t).exponent - pred.time) < 0.1
    assert abs(fit_power_law(P, L_p).exponent - pred.samples) < 0.1
    assert abs(fit_power_law(N, L_n).exponent - pred.width) < 0.1
    front = compute_optimal(lam, tp, 1e2, 1e6, N_min=1.0, N_max=1e4, per_decade=4, a=a, b=b)
    assert front.at_boundary.sum() <= 1
    assert abs(front.fitted["N"] - pred.compute_N) < 0.1
    assert abs(front.fitted["t"] - pred.compute_t) < 0.1
    assert abs(front.fitted["loss"] - pred.compute_loss) < 0.1
    assert_allclose(front.N_opt * front.t_opt, front.C, rtol=1e-12)
    # the frontier is the lower envelope of the iso-compute lines
    assert np.all(front.loss_opt <= np.nanmin(front.loss_grid, axis=1) * (1 + 1e-9))


def _theory_vs_sim(M, Ns, P, n_seeds, key):
    lam, tp = power_law_spectrum(M, 1.5, 2.0)
    t = np.geomspace(1.0, 1e4, 9)
    theory = scaling_law_dynamics(lam, tp, P, np.asarray(Ns, float), t).loss[:, 0]
    zs = []
    for i, n_ in enumerate(Ns):
        sim = np.asarray(random_feature_dynamics(jax.random.fold_in(key, i), lam, tp, t, n_, P,
                                                 n_seeds=n_seeds), np.float64)
        se = sim.std(axis=0, ddof=1) / math.sqrt(n_seeds)
        zs.append((sim.mean(axis=0) - theory[i]) / se)
    return np.array(zs)


def _assert_agreement(z):
    # z = (sim mean - theory) / SE with 32 seeds: a t statistic with 31 dof. Criterion: at least
    # 95% of the (N, t) points within 3 SE, and none beyond 3.5 SE (the maximum over ~27
    # correlated points; a Bonferroni bound at 5% for 27 t_31 statistics is ~3.4). The
    # deterministic equivalent's own finite-size bias is under 1% at N >= 256 (checked with 512
    # seeds at M=1000, N=256, P=512: |z| <= 2.1) and 1.0-1.5% at N = 64, P = 512 (1024 seeds:
    # z = 1.9..3.3 at 1024 seeds, i.e. 0.3-0.6 SE at 32 seeds; 0.4% at P = inf). Its source is
    # the top modes: E[B Lam B] = Lam + (Lam + tr Lam)/N, and proportional asymptotics keep only
    # tr Lam / N (the discrete-GD tests resolve it exactly at the first step). That shift makes
    # one |z| slightly above 3 among ~27 correlated 32-seed points an expected event, hence
    # the criterion.
    assert np.mean(np.abs(z) < 3.0) >= 0.95, z
    assert np.all(np.abs(z) < 3.5), z


def test_theory_vs_simulation_quick():
    _assert_agreement(_theory_vs_sim(400, [32, 128], 200, 32, jax.random.key(11)))


@pytest.mark.slow
def test_theory_vs_simulation_full():
    # M = 1000, N in {64, 256, 1024}, 32 seeds, t in [1, 1e4]; full batch (P = 512) and online
    _assert_agreement(_theory_vs_sim(1000, [64, 256, 1024], 512, 32, jax.random.key(12)))
    _assert_agreement(_theory_vs_sim(1000, [64, 256, 1024], math.inf, 32, jax.random.key(13)))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"t": [0.0, 1.0]}, "t"),
        ({"t": [-1.0]}, "t"),
        ({"t": [1.0, 1.0]}, "t"),
        ({"t": [2.0, 1.0]}, "t"),
        ({"t": [1.0, math.nan]}, "t"),
        ({"N": 0.0}, "N"),
        ({"N": [10.0, -1.0]}, "N"),
        ({"P": 0.0}, "P"),
        ({"P": math.nan}, "P"),
        ({"eigvals": np.r_[LAM300[:-1], math.inf]}, "eigvals"),
        ({"eigvals": np.r_[LAM300[:-1], 0.0]}, "eigvals"),
        ({"target_power": TP300[:-1]}, "target_power"),
        ({"target_power": np.r_[TP300[:-1], math.nan]}, "target_power"),
        ({"noise": -0.1}, "noise"),
        ({"nodes": 100}, "nodes"),
        ({"t": [math.inf, 1.0]}, "t"),
        ({"t": [1.0, math.inf, math.inf]}, "t"),
        ({"t": [-math.inf]}, "t"),
        ({"inversion_tol": 0.0}, "inversion_tol"),
    ],
)
def test_bad_input(kwargs, name):
    args = {"eigvals": LAM300, "target_power": TP300, "t": [1.0, 2.0], "N": 10.0, "P": 10.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        scaling_law_dynamics(**args)


def test_compute_optimal_bad_input():
    with pytest.raises(ValueError, match="C_max"):
        compute_optimal(LAM300, TP300, 10.0, 5.0)
    with pytest.raises(ValueError, match="a and b"):
        compute_optimal(LAM300, TP300, 10.0, 100.0, a=2.0)
    with pytest.raises(ValueError, match="b"):
        scaling_exponents(2.0, 0.0)
