"""The power-law task config: one definition gives the theory's spectrum (the simulations draw
Gaussian features from the same spectrum) and the predicted learning-curve exponent."""

import numpy as np
import pytest

from theorysim.compare import PowerLawConfig, log_grid


def test_spectrum_is_the_power_law():
    cfg = PowerLawConfig(M=50, a=2.0, b=1.5, noise=0.1)
    eigvals, target_power = cfg.spectrum()
    k = np.arange(1, 51)
    np.testing.assert_allclose(eigvals, k**-1.5, rtol=1e-12)
    np.testing.assert_allclose(target_power, k**-2.0, rtol=1e-12)
    assert cfg.learning_curve_exponent == 1.0
    assert PowerLawConfig(M=5, a=4.0, b=0.5).learning_curve_exponent == 1.0


def test_log_grid_is_sorted_unique_integers():
    assert log_grid(10, 1000, 3) == [10, 100, 1000]
    assert log_grid(1, 2, 10) == [1, 2]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"M": 0}, "M must be in"), ({"a": 1.0}, "a must be in"), ({"b": 0.0}, "b must be in"),
     ({"noise": -0.1}, "noise must be in"), ({"M": 2.5}, "M must be a finite integer"),
     ({"a": "2"}, "a must be a number"), ({"b": float("nan")}, "b must not be NaN"),
     ({"noise": float("inf")}, "noise must be"), ({"seed": True}, "seed must be a number")],
)
def test_bad_task_parameters_name_the_argument(kwargs, needle):
    args = {"M": 10, "a": 2.0, "b": 1.0, "noise": 0.0} | kwargs
    with pytest.raises(ValueError, match=needle):
        PowerLawConfig(**args)


def test_digits_read_without_importing_sklearn_equal_load_digits():
    """``digits_data`` reads scikit-learn's packaged CSV directly (no ~1 s sklearn import in
    the run); the arrays are exactly those of ``load_digits``, and sklearn stays unimported."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from theorysim.compare._datasets import _digits_pixels_and_labels

    pixels, labels = _digits_pixels_and_labels()
    ref = load_digits()
    np.testing.assert_array_equal(pixels, ref.data)
    np.testing.assert_array_equal(labels, ref.target)
    code = ("import sys; from theorysim.compare._datasets import digits_data; X, Y = "
            "digits_data(); print(X.shape, Y.shape, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")[0]
    assert out == "(1797, 64) (1797, 10) False", out
