"""ridge_risk (THEORY.md 1), the kappa core and power_law_spectrum."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests._tolerances import assert_allclose
from theorysim.theory import power_law_spectrum, ridge_risk
from theorysim.theory._kappa import newton_kappa, solve_kappa
from theorysim.theory._spectra import gauss_compress


def exact_kappa_residual(lam, kappa, P, ridge, N=np.inf):
    """Relative defect of the kappa equation from full NumPy sums (independent of the solver)."""
    kappa = np.asarray(kappa, float)[..., None]
    df1 = np.sum(np.where(lam > 0, lam / (lam + kappa + (lam == 0)), 0.0), axis=-1)
    kappa = kappa[..., 0]
    a = 1 - df1 / P
    b = 1 - df1 / N
    scale = kappa + ridge
    return np.where(scale > 0, np.abs(kappa * a * b - ridge) / np.where(scale > 0, scale, 1), 0)


@cache
def theory_md() -> dict:
    """THEORY.md's stated numbers, frozen with their sources in ``tests/data``."""
    path = Path(__file__).resolve().parents[1] / "data" / "theory_md_numbers.json"
    return json.loads(path.read_text())


def md_spectrum(section: dict):
    """The power-law spectrum a THEORY.md section states its numbers for."""
    s = section["spectrum"]
    return power_law_spectrum(s["M"], s["b"], s["a"])


def assert_stated_digits(actual, stated: list[str]):
    """``actual`` rounds to each stated value at the stated number of digits (THEORY.md gives
    4 significant digits except 0.00743, which has 3)."""
    for a, s in zip(np.ravel(actual), stated, strict=True):
        decimals = len(s.split(".")[1])
        assert abs(a - float(s)) <= 0.5 * 10.0**-decimals, (a, s)


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.8, 1.25, 2.0, 4.0])
@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_isotropic_exact(alpha, noise):
    M = 200
    rng = np.random.default_rng(0)
    tp = rng.exponential(size=M) / M  # lam = 1, so |w|^2 = sum(tp)
    r = ridge_risk(np.ones(M), tp, alpha * M, 0.0, noise)
    w2 = tp.sum()
    if alpha < 1:
        assert_allclose(r.kappa, 1 / alpha - 1)
        assert_allclose(r.gamma, alpha)
        assert_allclose(r.error, (1 - alpha) * w2 + noise**2 * alpha / (1 - alpha))
    else:
        assert r.kappa == 0.0
        assert_allclose(r.error, noise**2 / (alpha - 1))
    assert_allclose(r.bias + r.variance, r.error)


@pytest.mark.parametrize("compress", [False, True])
def test_theory_md_values(compress):
    md = theory_md()["ridge"]
    lam, tp = md_spectrum(md)
    r = ridge_risk(lam, tp, [p["P"] for p in md["points"]], md["ridge"], compress=compress)
    assert_stated_digits(r.error, [p["error"] for p in md["points"]])
    assert r.converged and r.residual <= 1e-12 and r.iterations >= 1


@pytest.mark.parametrize("compress", [False, True])
def test_kappa_residual_on_grid(compress):
    lam, tp = power_law_spectrum(1500, 1.3, 1.8)
    P = np.geomspace(1, 5000, 41)[:, None]
    ridge = np.r_[0.0, np.geomspace(1e-12, 1e3, 16)][None, :]
    r = ridge_risk(lam, tp, P, ridge, 0.1, compress=compress)
    assert r.kappa.shape == (41, 17)
    assert np.all(r.point_residual <= 1e-10)
    assert np.all(exact_kappa_residual(lam, r.kappa, P, ridge) <= 1e-10)
    assert np.all(np.isfinite(r.error) | ((ridge == 0) & (P == 1500)))
    assert not np.any(np.isnan(r.error))


def test_compressed_matches_exact():
    rng = np.random.default_rng(1)
    M = 3000
    lam = np.exp(rng.uniform(-25, 3, M))
    tp = lam * rng.exponential(size=M) ** 2
    P = np.geomspace(2, 1e5, 30)[:, None]
    ridge = np.array([0.0, 1e-9, 1e-3, 1.0])
    a = ridge_risk(lam, tp, P, ridge, 0.2, compress=False)
    b = ridge_risk(lam, tp, P, ridge, 0.2, compress=True)
    # Gauss compression error ~1e-15 on the sums; the ridgeless P ~ M points amplify it by
    # 1/(1 - gamma), hence 1e-9 rather than the float64 default
    assert_allclose(b.kappa, a.kappa, rtol=1e-9, atol=0)
    assert_allclose(b.error, a.error, rtol=1e-9, atol=0)


def test_gauss_compress_sums():
    """100,000 power-law modes -> ~100 nodes; the spectral sums agree to ~1e-15 for all kappa;
    repeated and clustered eigenvalues are merged exactly."""
    lam, tp = power_law_spectrum(100_000, 1.5, 2.0)
    rng = np.random.default_rng(2)
    clustered = np.r_[np.ones(700), np.full(300, 1e-3), np.exp(rng.normal(0, 0.01, 500))]
    kappa = np.geomspace(1e-14, 1e4, 60)[:, None]
    sums = (lambda x: x / (x + kappa), lambda x: (kappa / (x + kappa)) ** 2)
    for ev, w in [(lam, tp), (lam, np.ones_like(lam)), (clustered, np.ones_like(clustered))]:
        nodes, weights = gauss_compress(ev, w)
        assert nodes.size <= 200
        for f in sums:
            exact = np.sum(w * f(ev), axis=1)
            assert np.all(np.abs(np.sum(weights * f(nodes), axis=1) - exact) <= 1e-13 * exact)


def test_isotropic_compressed():
    r = ridge_risk(np.ones(1000), np.full(1000, 1e-3), [250.0, 2000.0], 0.0, 0.3, compress=True)
    assert_allclose(r.error, [0.75 + 0.09 / 3, 0.09])


def test_ridge_to_infinity_gives_null_predictor():
    lam, tp = power_law_spectrum(300, 1.2, 1.7)
    r = ridge_risk(lam, tp, [10, 1000], 1e12, 0.5)
    # E = sum(tp) (1 - O(lam/ridge)) + O(noise^2 / ridge P): 1e-10 relative at ridge 1e12
    assert_allclose(r.error, tp.sum(), rtol=1e-10)
    assert_allclose(r.kappa, 1e12, rtol=1e-12)


def test_ridgeless_overparameterised_and_peak():
    lam, tp = power_law_spectrum(50, 1.0, 2.0)
    P = np.array([49, 50, 51, 100])
    noisy = ridge_risk(lam, tp, P, 0.0, 0.5)
    assert np.isinf(noisy.error[1]) and np.isinf(noisy.variance[1])
    assert np.all(np.isfinite(noisy.error[[0, 2, 3]]))
    assert_allclose(noisy.error[2:], 0.25 * 50 / (P[2:] - 50))
    assert np.all(noisy.kappa[1:] == 0)
    clean = ridge_risk(lam, tp, P, 0.0, 0.0)
    assert clean.error[1] == 0.0  # square noiseless system recovers the target
    assert not np.any(np.isnan(clean.mode_errors)) and not np.any(np.isnan(noisy.mode_errors))


def test_mode_errors_sum_to_bias():
    lam, tp = power_law_spectrum(200, 1.5, 2.0)
    r = ridge_risk(lam, tp, np.array([5.0, 50, 500]), np.array([[0.0], [1e-2]]), 0.3)
    assert r.mode_errors.shape == (2, 3, 200)
    assert_allclose(r.mode_errors.sum(-1), r.bias, rtol=1e-12)


def test_zero_eigenvalues():
    lam = np.r_[np.ones(20), np.zeros(5)]
    tp = np.r_[np.full(20, 0.05), np.zeros(5)]
    r = ridge_risk(lam, tp, [10.0, 20.0, 40.0], 0.0, 0.1)
    iso = ridge_risk(np.ones(20), np.full(20, 0.05), [10.0, 20.0, 40.0], 0.0, 0.1)
    assert_allclose(r.error, iso.error)


@settings(max_examples=40, deadline=None)
@example(M=2, seed=1, log_span=3.0, noise=0.0)  # error above the null risk (below)
@given(
    M=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
    log_span=st.floats(0.0, 25.0),
    noise=st.floats(0.0, 2.0),
)
def test_properties_random_spectra(M, seed, log_span, noise):
    rng = np.random.default_rng(seed)
    lam = np.exp(-rng.uniform(0, log_span, M))
    tp = lam * rng.exponential(size=M)
    P = np.array([0.3, 0.9, 1.0, 1.7, 6.0])[:, None] * M
    ridge = np.r_[0.0, np.geomspace(1e-8, 10.0, 6)][None, :]
    r = ridge_risk(lam, tp, P, ridge, noise)
    assert not np.any(np.isnan(r.error))
    assert np.all(r.error >= 0) and np.all(r.bias >= 0) and np.all(r.variance >= 0)
    fin = np.isfinite(r.error)
    assert np.all(fin[:, 1:])  # any ridge > 0 keeps the error finite
    assert_allclose(r.bias[fin] + r.variance[fin], r.error[fin], rtol=1e-12)
    assert np.all(r.point_residual <= 1e-10)
    assert np.all(exact_kappa_residual(lam, r.kappa, P, ridge) <= 1e-10)
    # kappa increases with ridge and decreases with P; the noise part decreases with ridge
    assert np.all(np.diff(r.kappa, axis=1) >= -1e-12 * r.kappa[:, 1:])
    assert np.all(np.diff(r.kappa, axis=0) <= 1e-12 * r.kappa[:-1])
    v = r.variance[:, 1:]
    assert np.all(np.diff(v, axis=1) <= 1e-9 * v[:, :-1])
    # E = (sum_k tp_k kappa^2/(lam_k+kappa)^2 + noise^2 gamma) / (1 - gamma) and kappa/(lam+kappa)
    # <= 1 bound it by (sum tp + noise^2 gamma) / (1 - gamma). Not by the null risk sum tp: with
    # fewer samples than modes and a small ridge, ridge regression overfits a noiseless target
    # too (the pinned example: P = 0.6, ridge 1e-8, E = 0.342 > sum tp = 0.326).
    g = r.gamma[:, 1:]
    assert np.all(r.error[:, 1:] <= (tp.sum() + noise**2 * g) / (1 - g) * (1 + 1e-12))


def test_newton_kappa_complex_matches_real():
    lam, _ = power_law_spectrum(300, 1.5, 2.0)
    with jax.enable_x64(True):
        lam_j = jnp.asarray(lam)
        mult = jnp.ones_like(lam_j)
        real = solve_kappa(lam_j, mult, 60.0, 120.0, 0.01)
        k, res, _, _ = newton_kappa(lam_j, mult, 60.0, 120.0, 0.01 + 0j, real.kappa * 1.1 + 0j)
        assert abs(complex(k) - float(real.kappa)) <= 1e-12 * float(real.kappa)
        s = 0.01 + 0.005j
        k2, res2, _, _ = newton_kappa(lam_j, mult, 60.0, 120.0, s, k)
        assert float(res2) <= 1e-12 and float(real.residual) <= 1e-12
        df1 = np.sum(lam / (lam + complex(k2)))
        assert abs(complex(k2) * (1 - df1 / 60) * (1 - df1 / 120) - s) <= 1e-12 * abs(s)


def test_power_law_spectrum():
    spec = power_law_spectrum(5, 1.5, 2.0)
    lam, tp = spec
    assert_allclose(lam, np.arange(1, 6) ** -1.5)
    assert_allclose(tp, np.arange(1, 6) ** -2.0)
    assert spec.exponents.samples == 1.0
    assert power_law_spectrum(10, 0.3, 3.0).exponents.samples == pytest.approx(0.6)
    for kwargs, name in [({"M": 0}, "M"), ({"M": 2.5}, "M"), ({"b": 0.0}, "b"),
                         ({"a": 1.0}, "a"), ({"a": float("nan")}, "a")]:
        args = {"M": 10, "b": 1.0, "a": 2.0} | kwargs
        with pytest.raises(ValueError, match=name):
            power_law_spectrum(**args)


@pytest.mark.parametrize("kwargs, name", [
    ({"eigvals": [1.0, -1.0]}, "eigvals"),
    ({"eigvals": [1.0, np.inf]}, "eigvals"),
    ({"eigvals": [1.0, np.nan]}, "eigvals"),
    ({"target_power": [1.0, -0.5]}, "target_power"),
    ({"target_power": [1.0, np.inf]}, "target_power"),
    ({"target_power": [1.0, 1.0, 1.0]}, "eigvals and target_power"),
    ({"P": 0}, "P"),
    ({"P": [-3.0, 4.0]}, "P"),
    ({"P": np.nan}, "P"),
    ({"ridge": -1e-3}, "ridge"),
    ({"ridge": np.inf}, "ridge"),
    ({"noise": -0.1}, "noise"),
    ({"noise": np.inf}, "noise"),
])
def test_bad_input(kwargs, name):
    args = {"eigvals": [1.0, 0.5], "target_power": [1.0, 0.5], "P": 3, "ridge": 0.0,
            "noise": 0.0} | kwargs
    with pytest.raises(ValueError, match=name):
        ridge_risk(**args)
