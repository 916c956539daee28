"""fit_power_law: weighted least squares in log-log."""

from __future__ import annotations

import numpy as np
import pytest

from tests._tolerances import assert_allclose
from theorysim.theory import fit_power_law


def test_exact_power_law():
    x = np.geomspace(10, 1e4, 12)
    fit = fit_power_law(x, 3.0 * x**-1.25)
    assert_allclose(fit.exponent, 1.25)
    assert_allclose(fit.prefactor, 3.0)
    assert fit.exponent_stderr < 1e-12
    assert_allclose(fit(x), 3.0 * x**-1.25)
    same = fit_power_law(x, 3.0 * x**-1.25, sigma=0.1 * x**-1.25)
    assert_allclose(same.exponent, 1.25)


def test_weights_ignore_uncertain_points():
    x = np.geomspace(1, 100, 8)
    y = 2.0 * x**-0.5
    y[-1] *= 10.0  # an outlier with a huge error bar must not move the fit
    sigma = 1e-3 * y
    sigma[-1] = 1e6 * y[-1]
    fit = fit_power_law(x, y, sigma)
    assert abs(fit.exponent - 0.5) < 1e-6


def test_stderr_matches_monte_carlo():
    rng = np.random.default_rng(0)
    x = np.geomspace(10, 1000, 10)
    rel = 0.05
    fits = [fit_power_law(x, x**-1.0 * (1 + rel * rng.standard_normal(x.size)),
                          sigma=rel * x**-1.0) for _ in range(400)]
    exps = np.array([f.exponent for f in fits])
    stderr = np.mean([f.exponent_stderr for f in fits])
    # 400 replicates: the spread is known to ~4% (1/sqrt(2*400)); allow 15% for the
    # delta-method approximation at 5% relative noise
    assert abs(exps.std(ddof=1) / stderr - 1) < 0.15
    assert abs(exps.mean() - 1.0) < 4 * stderr / np.sqrt(400)


@pytest.mark.parametrize("x, y, sigma, name", [
    ([1.0], [1.0], None, "x"),
    ([1.0, -2.0], [1.0, 1.0], None, "x"),
    ([1.0, 2.0], [1.0, 0.0], None, "y"),
    ([1.0, 2.0], [1.0, np.nan], None, "y"),
    ([1.0, 2.0, 3.0], [1.0, 1.0], None, "x and y"),
    ([1.0, 2.0], [1.0, 1.0], [0.1, 0.0], "sigma"),
    ([1.0, 2.0], [1.0, 1.0], [0.1], "x and sigma"),
    ([2.0, 2.0], [1.0, 1.0], None, "distinct"),
])
def test_bad_input(x, y, sigma, name):
    with pytest.raises(ValueError, match=name):
        fit_power_law(x, y, sigma)
