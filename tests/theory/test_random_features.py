"""random_feature_risk (THEORY.md 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._tolerances import assert_allclose
from tests.theory.test_ridge import (
    assert_stated_digits,
    exact_kappa_residual,
    md_spectrum,
    theory_md,
)
from theorysim.theory import power_law_spectrum, random_feature_risk, ridge_risk

LAM, TP = power_law_spectrum(400, 1.5, 2.0)


def test_theory_md_values():
    md = theory_md()["random_features"]
    lam, tp = md_spectrum(md)
    for p in md["points"]:
        K = math.inf if p["ensemble"] == "inf" else p["ensemble"]
        r = random_feature_risk(lam, tp, p["P"], p["N"], md["ridge"], ensemble=K)
        assert_stated_digits([r.error], [p["error"]])
        assert r.converged and r.residual <= 1e-12


@pytest.mark.parametrize("compress", [False, True])
def test_kappa_residual_grid(compress):
    P = np.geomspace(1, 3000, 25)[:, None, None]
    N = np.geomspace(1, 3000, 23)[None, :, None]
    ridge = np.array([0.0, 1e-10, 1e-4, 1.0])
    r = random_feature_risk(LAM, TP, P, N, ridge, 0.1, compress=compress)
    assert r.kappa.shape == (25, 23, 4)
    assert np.all(r.point_residual <= 1e-10)
    assert np.all(exact_kappa_residual(LAM, r.kappa, P, ridge, N) <= 1e-10)
    assert not np.any(np.isnan(r.error))
    # the equation is symmetric in N and P
    sym = random_feature_risk(LAM, TP, N[0, :, 0][:, None], P[:, 0, 0][None, :], ridge[2])
    assert_allclose(sym.kappa.T, r.kappa[..., 2], rtol=1e-12)


def test_infinite_N_recovers_ridge():
    P = np.geomspace(5, 2000, 9)[:, None]
    ridge = np.array([0.0, 1e-4, 1e-1])
    rr = ridge_risk(LAM, TP, P, ridge, 0.3)
    exact = random_feature_risk(LAM, TP, P, np.inf, ridge, 0.3)
    assert_allclose(exact.error, rr.error, rtol=1e-12)
    assert_allclose(exact.kappa, rr.kappa, rtol=1e-12)
    big = random_feature_risk(LAM, TP, P, 1e9, ridge, 0.3)
    # corrections are O(df1 / N) ~ 1e-7 at N = 1e9
    assert_allclose(big.error[np.isfinite(rr.error)], rr.error[np.isfinite(rr.error)], rtol=1e-5)


def test_ensemble_formula():
    P, N = np.array([50.0, 100.0, 300.0]), np.array([[30.0], [100.0], [400.0]])
    e1 = random_feature_risk(LAM, TP, P, N, 1e-3, 0.2)
    einf = random_feature_risk(LAM, TP, P, N, 1e-3, 0.2, ensemble=math.inf)
    assert np.all(e1.error >= einf.error * (1 - 1e-12))  # averaging draws never hurts
    for K in (2, 5, 40):
        eK = random_feature_risk(LAM, TP, P, N, 1e-3, 0.2, ensemble=K)
        assert_allclose(eK.error, einf.error + (e1.error - einf.error) / K, rtol=1e-12)
        assert_allclose(eK.mode_errors.sum(-1), eK.bias, rtol=1e-12)
    # the draw-averaged predictor at N = inf is plain ridge regression
    rr = ridge_risk(LAM, TP, P, 1e-3, 0.2)
    inf_n = random_feature_risk(LAM, TP, P, np.inf, 1e-3, 0.2, ensemble=math.inf)
    assert_allclose(inf_n.error, rr.error, rtol=1e-12)


def test_interpolation_peak_is_inf_not_nan():
    N = np.array([50.0, 99.0, 100.0, 101.0, 200.0, 1000.0])
    r = random_feature_risk(LAM, TP, 100, N, 0.0)
    assert np.isinf(r.error[2]) and np.all(np.isfinite(np.delete(r.error, 2)))
    assert not np.any(np.isnan(r.mode_errors))
    ens = random_feature_risk(LAM, TP, 100, N, 0.0, ensemble=math.inf)
    assert np.all(np.isfinite(ens.error))  # the averaged predictor has no peak at N = P
    # N = P = M: square invertible A and design; noiseless recovers the target exactly,
    # noisy diverges; N = P > M is not a peak (rank M < P): noise^2 M / (P - M)
    assert random_feature_risk(LAM, TP, 400, 400, 0.0).error == 0.0
    assert np.isinf(random_feature_risk(LAM, TP, 400, 400, 0.0, 0.1).error)
    assert_allclose(random_feature_risk(LAM, TP, 500, 500, 0.0, 0.1).error, 0.01 * 400 / 100)


@settings(max_examples=30, deadline=None)
@given(M=st.integers(1, 40), seed=st.integers(0, 2**32 - 1), noise=st.floats(0.0, 1.0))
def test_properties_random_spectra(M, seed, noise):
    rng = np.random.default_rng(seed)
    lam = np.exp(-rng.uniform(0, 15, M))
    tp = lam * rng.exponential(size=M)
    P = np.array([0.5, 1.0, 3.0])[:, None, None] * M
    N = np.array([0.3, 1.0, 2.0, np.inf])[None, :, None] * M
    ridge = np.array([0.0, 1e-6, 1e-2, 1.0])
    r = random_feature_risk(lam, tp, P, N, ridge, noise)
    assert not np.any(np.isnan(r.error))
    assert np.all(r.error >= 0) and np.all(np.isfinite(r.error[..., 1:]))
    fin = np.isfinite(r.error)
    assert_allclose(r.bias[fin] + r.variance[fin], r.error[fin], rtol=1e-12)
    assert np.all(r.point_residual <= 1e-10)
    assert np.all(exact_kappa_residual(lam, r.kappa, P, ridge, N) <= 1e-10)
    assert np.all(np.diff(r.kappa[..., 1:], axis=-1) >= 0)
    einf = random_feature_risk(lam, tp, P, N, ridge, noise, ensemble=math.inf)
    assert np.all(einf.error <= r.error * (1 + 1e-10))


@pytest.mark.parametrize("kwargs, name", [
    ({"N": 0}, "N"),
    ({"N": [-1.0]}, "N"),
    ({"N": np.nan}, "N"),
    ({"P": 0}, "P"),
    ({"ridge": -1.0}, "ridge"),
    ({"noise": -1.0}, "noise"),
    ({"ensemble": 0}, "ensemble"),
    ({"ensemble": 2.5}, "ensemble"),
    ({"ensemble": -math.inf}, "ensemble"),
    ({"eigvals": [1.0, -1.0]}, "eigvals"),
    ({"target_power": [1.0]}, "eigvals and target_power"),
])
def test_bad_input(kwargs, name):
    args = {"eigvals": [1.0, 0.5], "target_power": [1.0, 0.5], "P": 3, "N": 4,
            "ridge": 0.0, "noise": 0.0, "ensemble": 1} | kwargs
    with pytest.raises(ValueError, match=name):
        random_feature_risk(**args)
