"""Quick twins of the ``ntk-learning-curve`` / ``digits-ntk-curve`` experiments."""

from __future__ import annotations

import numpy as np
import pytest

from theorysim.compare.experiments.ntk_curves import (
    DigitsNTKConfig,
    DigitsNTKCurve,
    NTKCurveConfig,
    NTKLearningCurve,
)


def _run(exp, cfg):
    sims = [exp.simulate(cfg, p) for p in exp.points(cfg)]
    ds = exp.combine(cfg, exp.theory(cfg), sims)
    return exp.report(cfg, ds)


def test_sphere_ntk_curve_quick_twin():
    """Theory (Funk-Hecke + ridge_risk) vs KRR over seeds within 3 SE at P = 20, 100."""
    cfg = NTKCurveConfig(P_min=20, P_max=100, n_P=2, seeds=6, n_test=200)
    report = _run(NTKLearningCurve(), cfg)
    z = np.array([row["z"] for row in report.table])
    assert z.size == 2 and np.all(np.abs(z) <= 3.0), report.table


@pytest.mark.slow
def test_sphere_ntk_curve_quick_preset():
    exp = NTKLearningCurve()
    assert _run(exp, exp.make_config("quick")).passed


@pytest.mark.slow
def test_digits_ntk_curve_quick_preset():
    exp = DigitsNTKCurve()
    assert _run(exp, DigitsNTKConfig()).passed


def test_bad_config_raises():
    with pytest.raises(ValueError, match="ridge"):
        NTKCurveConfig(ridge=0.0)
    with pytest.raises(ValueError, match="P_max"):
        DigitsNTKConfig(P_max=5000)
