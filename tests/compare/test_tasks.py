"""PowerLawGaussian: one definition gives the theory's spectrum and the simulation's samples."""

import jax
import numpy as np
import pytest

from theorysim.compare import PowerLawGaussian


def test_spectrum_is_the_power_law():
    task = PowerLawGaussian(M=50, a=2.0, b=1.5, noise=0.1)
    eigvals, target_power = task.spectrum()
    k = np.arange(1, 51)
    np.testing.assert_allclose(eigvals, k**-1.5, rtol=1e-12)
    np.testing.assert_allclose(target_power, k**-2.0, rtol=1e-12)
    np.testing.assert_allclose(eigvals * task.weights**2, target_power, rtol=1e-12)
    assert task.learning_curve_exponent == 1.0
    assert PowerLawGaussian(M=5, a=4.0, b=0.5).learning_curve_exponent == 1.0


def test_samples_have_the_stated_covariance_and_label_variance():
    task = PowerLawGaussian(M=6, a=2.0, b=1.0, noise=0.5)
    n = 200_000
    psi, y = task.sample(jax.random.key(3), n)
    assert psi.shape == (n, 6) and y.shape == (n,) and psi.dtype == np.float32
    psi, y = np.asarray(psi, np.float64), np.asarray(y, np.float64)
    eigvals, target_power = task.spectrum()
    cov = psi.T @ psi / n
    # entries of a sample covariance have sd sqrt((lam_i lam_j + delta_ij lam_i^2) / n)
    sd = np.sqrt((np.outer(eigvals, eigvals) + np.diag(eigvals**2)) / n)
    assert np.all(np.abs(cov - np.diag(eigvals)) < 5 * sd)
    var_y = target_power.sum() + task.noise**2
    assert abs(y.var() - var_y) < 5 * var_y * np.sqrt(2 / n)
    resid = y - psi @ task.weights
    assert abs(resid.std() - task.noise) < 5 * task.noise / np.sqrt(2 * n)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"M": 0}, "M must be in"), ({"a": 1.0}, "a must be in"), ({"b": 0.0}, "b must be in"),
     ({"noise": -0.1}, "noise must be in")],
)
def test_bad_task_parameters_name_the_argument(kwargs, needle):
    args = {"M": 10, "a": 2.0, "b": 1.0, "noise": 0.0} | kwargs
    with pytest.raises(ValueError, match=needle):
        PowerLawGaussian(**args)
