"""Linear simulations (sims/_linear.py) and their agreement with THEORY.md 1-2.

The simulated error is exact over the test distribution (no test sample), so its only noise
is the training draw: the standard error over seeds is the whole uncertainty.

Ridge choice: 1e-5 (per sample) for the power-law checks. It is small enough that
kappa(P) >> ridge up to P ~ M/4 (so the curve shows the ridgeless exponent), and large enough
that the float32 Gram systems stay accurate: test_float32_accuracy measures the float32 error
against float64 on the same draw (< 1e-3 relative, while the seed-to-seed spread is ~20%).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests._tolerances import assert_allclose
from theorysim.sims import (
    linear_ridge_error,
    random_feature_ridge_error,
    sample_gaussian_features,
)
from theorysim.sims._linear import _ridge_fit
from theorysim.theory import fit_power_law, power_law_spectrum, random_feature_risk, ridge_risk

RIDGE = 1e-5


def test_feature_covariance():
    lam = np.array([2.0, 1.0, 0.25, 0.0])
    n = 20000
    psi = sample_gaussian_features(jax.random.key(0), lam, n)
    assert psi.shape == (n, 4) and psi.dtype == jnp.float32
    cov = np.cov(np.asarray(psi, np.float64), rowvar=False)
    # the sample variance has standard error lam sqrt(2/n); off-diagonals lam_i lam_j / n
    se = np.sqrt(np.outer(lam, lam) * (1 + np.eye(4)) / n)
    assert np.all(np.abs(cov - np.diag(lam)) <= 5 * se + 1e-12)


def test_dtype_policy():
    lam, tp = power_law_spectrum(20, 1.0, 2.0)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="enable_x64"):
        linear_ridge_error(key, lam, tp, 10, 1e-3, dtype=jnp.float64)
    with pytest.raises(ValueError, match="enable_x64"):
        sample_gaussian_features(key, lam, 5, dtype=jnp.float64)
    assert linear_ridge_error(key, lam, tp, 10, 1e-3, n_seeds=3).dtype == jnp.float32
    with jax.enable_x64(True):
        e = random_feature_ridge_error(key, lam, tp, 10, 7, 1e-3, n_seeds=3, dtype=jnp.float64)
        assert e.dtype == jnp.float64 and e.shape == (3,)


@pytest.mark.parametrize("rows, cols, ridge", [(30, 12, 0.1), (12, 30, 0.1), (12, 30, 0.0),
                                               (30, 12, 0.0)])
def test_ridge_fit_matches_normal_equations(rows, cols, ridge):
    rng = np.random.default_rng(rows + cols)
    F = rng.standard_normal((rows, cols))
    y = rng.standard_normal(rows)
    with jax.enable_x64(True):
        c = np.asarray(_ridge_fit(jnp.asarray(F), jnp.asarray(y), rows, jnp.asarray(ridge)))
    if ridge > 0:
        ref = np.linalg.solve(F.T @ F + rows * ridge * np.eye(cols), F.T @ y)
    else:  # least squares / minimum-norm interpolator
        ref = np.linalg.lstsq(F, y, rcond=None)[0]
    assert_allclose(c, ref, rtol=1e-8, atol=1e-10)  # Cholesky vs LAPACK solve/SVD


@pytest.mark.parametrize("P, ridge", [(100, 0.0), (1000, RIDGE), (1000, 1e-6)])
def test_float32_accuracy(P, ridge):
    M = 1000
    lam, tp = power_law_spectrum(M, 1.5, 2.0)
    z = np.random.default_rng(P).standard_normal((P, M)).astype(np.float32)
    sl, vs = np.sqrt(lam), np.sqrt(tp)

    def err(dt):
        zz, s, v = jnp.asarray(z, dt), jnp.asarray(sl, dt), jnp.asarray(vs, dt)
        theta = _ridge_fit(zz * s, zz @ v, P, jnp.asarray(ridge, dt))
        return float(jnp.sum((s * theta - v) ** 2))

    e32 = err(jnp.float32)
    with jax.enable_x64(True):
        e64 = err(jnp.float64)
    assert abs(e32 - e64) <= 1e-3 * e64


def _theory_vs_sim(M, P_values, n_seeds, key):
    lam, tp = power_law_spectrum(M, 1.5, 2.0)
    P = np.asarray(P_values)
    theory = ridge_risk(lam, tp, P.astype(float), RIDGE).error
    sims = np.stack([np.asarray(linear_ridge_error(jax.random.fold_in(key, int(p)), lam, tp,
                                                   int(p), RIDGE, n_seeds=n_seeds), np.float64)
                     for p in P])
    mean = sims.mean(1)
    sem = sims.std(1, ddof=1) / np.sqrt(n_seeds)
    z = (mean - theory) / sem
    assert np.all(np.abs(z) <= 3.0), z
    # finite M bends the curve down as P -> M: fit the exponent on P <= M/4
    sel = P <= M / 4
    fit_th = fit_power_law(P[sel], theory[sel])
    fit_sim = fit_power_law(P[sel], mean[sel], sem[sel])
    assert abs(fit_th.exponent - 1.0) <= 0.1, fit_th  # min(a - 1, 2b) = 1
    assert abs(fit_sim.exponent - 1.0) <= 0.1, fit_sim
    return z, fit_th, fit_sim


def test_theory_vs_simulation_quick():
    """Quick twin of the slow check: M = 1000, 5 values of P in [10, 400], 32 seeds."""
    _theory_vs_sim(1000, [10, 25, 63, 158, 398], 32, jax.random.key(0))


@pytest.mark.slow
def test_theory_vs_simulation_full():
    """PowerLawGaussian(M=2000, a=2, b=1.5): 12 log-spaced P in [10, 2000], 32 seeds."""
    P = np.unique(np.geomspace(10, 2000, 12).round().astype(int))
    assert P.size == 12
    _theory_vs_sim(2000, P, 32, jax.random.key(0))


def test_random_features_vs_theory():
    """THEORY.md 2 points: M = 400, ridge 1e-3, (P, N) = (100, 50), (100, 200), (300, 50)."""
    lam, tp = power_law_spectrum(400, 1.5, 2.0)
    key = jax.random.key(1)
    for P, N in [(100, 50), (100, 200), (300, 50)]:
        e = np.asarray(random_feature_ridge_error(jax.random.fold_in(key, P * 1000 + N), lam,
                                                  tp, P, N, 1e-3, n_seeds=32), np.float64)
        theory = float(random_feature_risk(lam, tp, P, N, 1e-3).error)
        sem = e.std(ddof=1) / np.sqrt(e.size)
        assert abs(e.mean() - theory) <= 3 * sem, (P, N, e.mean(), theory, sem)


def test_noise_and_interpolation_in_simulation():
    """Isotropic ridgeless with noise: E = sigma^2 alpha / (1 - alpha) + (1 - alpha)|w|^2."""
    M, P, sigma = 200, 100, 0.5
    lam, tp = np.ones(M), np.full(M, 1.0 / M)
    with jax.enable_x64(True):  # ridge = 0 at P = M/2 is well conditioned; float64 anyway
        e = np.asarray(linear_ridge_error(jax.random.key(3), lam, tp, P, 0.0, sigma,
                                          n_seeds=64, dtype=jnp.float64))
    theory = float(ridge_risk(lam, tp, P, 0.0, sigma).error)
    assert_allclose(theory, sigma**2 + 0.5)
    # finite-size corrections are O(1/M) ~ 1%, far below 3 standard errors here
    assert abs(e.mean() - theory) <= 3 * e.std(ddof=1) / np.sqrt(e.size)


@pytest.mark.parametrize("kwargs, name", [
    ({"P": 0}, "P"),
    ({"P": 2.5}, "P"),
    ({"N": 0}, "N"),
    ({"N": -3}, "N"),
    ({"ridge": -1.0}, "ridge"),
    ({"ridge": float("nan")}, "ridge"),
    ({"noise": -0.1}, "noise"),
    ({"n_seeds": 0}, "n_seeds"),
    ({"eigvals": [1.0, -1.0]}, "eigvals"),
    ({"eigvals": [1.0, float("inf")]}, "eigvals"),
    ({"target_power": [1.0, -1.0]}, "target_power"),
    ({"target_power": [1.0, 1.0, 1.0]}, "eigvals and target_power"),
    ({"key": 0}, "key"),
])
def test_bad_input(kwargs, name):
    args = {"key": jax.random.key(0), "eigvals": [1.0, 0.5], "target_power": [1.0, 0.5],
            "P": 4, "N": 3, "ridge": 0.0, "noise": 0.0, "n_seeds": 2} | kwargs
    with pytest.raises(ValueError, match=name):
        random_feature_ridge_error(**args)
    args.pop("N")
    if name != "N":
        with pytest.raises(ValueError, match=name):
            linear_ridge_error(**args)


def test_batched_seeds_rerun_does_not_hang():
    """Regression: seeds in memory-bounded batches (P=599, M=1000 -> batch 22 of 32), the
    executable re-run with new inputs. With ``lax.map(batch_size=...)`` around the Cholesky
    custom call this hung on jaxlib 0.10's CPU runtime (all threads idle); run in a subprocess
    so a hang fails the test instead of stalling the suite."""
    import subprocess
    import sys

    code = (
        "import jax, numpy as np\n"
        "from theorysim.sims import linear_ridge_error\n"
        "from theorysim.theory import power_law_spectrum\n"
        "for a in (2.0, 1.5):\n"
        "    s = power_law_spectrum(1000, 1.5, a)\n"
        "    for P in (359, 599):\n"
        "        e = linear_ridge_error(jax.random.fold_in(jax.random.key(0), P), s.eigvals,\n"
        "                               s.target_power, P, 1e-5, n_seeds=32)\n"
        "        assert np.all(np.isfinite(np.asarray(e)))\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
