"""Quick twins of the ``ntk-learning-curve`` / ``digits-ntk-curve`` experiments."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from theorysim import kernels as K
from theorysim.compare import SphereHarmonics, compare
from theorysim.compare.experiments.digits_kernel_curve import DigitsNTKConfig, DigitsNTKCurve
from theorysim.compare.experiments.ntk_curves import NTKCurveConfig, NTKLearningCurve
from theorysim.sims import EnsembleSpec, ModelConfig, TrainConfig, train


def _run(exp, cfg):
    sims = [exp.simulate(cfg, p) for p in exp.points(cfg)]
    ds = exp.combine(cfg, exp.theory(cfg), sims)
    return exp.report(cfg, ds)


def test_sphere_ntk_curve_quick_twin():
    """Theory (Funk-Hecke + ridge_risk) vs KRR over 12 seeds at P = 20, 100 by the
    experiment's family-wise criterion (|z| <= 3 over 6 seeds was no 1% test: P(|t_5| > 3) = 3%
    a point; its first 6 draws give z = 3.04 at P = 20, 48 draws 0.88)."""
    cfg = NTKCurveConfig(P_min=20, P_max=100, n_P=2, seeds=12, n_test=200, net_P_max=0)
    report = _run(NTKLearningCurve(), cfg)
    z = np.array([row["z"] for row in report.table])
    assert z.size == 2 and np.all(np.isfinite(z)) and report.passed, report.table


def test_engine_ntk_matches_mlp_kernel_at_init():
    """The sims engine's NTK-parameterised ReLU MLP (no bias) has, at init, the empirical NTK of
    ``mlp_kernel(2, "relu")`` (W_std=1, b_std=0, input covariance x x^T/d) on sphere points.

    Per network the max entry-wise relative deviation is ~4.5/sqrt(N) (measured: 15% at
    N = 1024, 6% at N = 4096); the mean over S networks is then ~4.5/sqrt(S N); tolerance
    4/sqrt(S N) = 0.044 at N = 1024, S = 8 (measured 0.024). A wrong normalisation (1/d, 1/2)
    would be off by >= 50%.
    """
    n, d, width, seeds = 6, 10, 1024, 8
    x = SphereHarmonics(d, 1.0, 1.0).sample(jax.random.key(0), n)[0]
    with jax.enable_x64(True):
        k_inf = np.asarray(K.mlp_kernel(2, "relu", parameterization="ntk")(x).ntk)
    res = train(ModelConfig(width, 2, "ntk", "relu"),
                TrainConfig(steps=0, lr=1.0, observables=("ntk",)), x=x, y=np.zeros(n),
                ensemble=EnsembleSpec(seeds=tuple(range(seeds))))
    k_emp = res.records["ntk"][:, 0]
    scale = np.abs(k_inf).max()
    per_net = np.abs(k_emp - k_inf).max(axis=(1, 2)) / scale
    mean_dev = np.abs(k_emp.mean(0) - k_inf).max() / scale
    assert mean_dev < 4.0 / np.sqrt(seeds * width), (mean_dev, per_net)
    # typical (median) per-network deviation ~4/sqrt(N) (measured 0.12 at N = 1024); single
    # networks reach ~9/sqrt(N), so only the median is bounded, at 1.5x the measured value
    assert np.median(per_net) < 6.0 / np.sqrt(width), per_net


@pytest.mark.slow  # suite budget: ~20-70 s on 2 cores
def test_trained_net_quick_twin():
    """NTK nets of the quick preset (width 256, gamma0 = 1/8) trained by GD (centred output,
    tau = lr * steps = 2e4) vs the infinite-width NTK gradient flow at the same tau, paired
    over 3 draws at P = 10, 25.

    Measured finite-width deviation at P <= 25, N = 256, gamma0 = 1/8: +0.9 +- 0.9%,
    +1.1 +- 1.1% (16 draws); per-draw scatter ~4%; bound 0.06. Networks interpolate (train
    loss < 1e-5) and GD-at-tau equals KRR within 1% at these P.
    """
    cfg = NTKCurveConfig(P_min=10, P_max=25, n_P=2, seeds=3, net_seeds=3, n_test=300,
                         net_P_max=25)
    exp = NTKLearningCurve()
    sims = [exp.simulate(cfg, p) for p in exp.points(cfg)]
    ds = exp.combine(cfg, exp.theory(cfg), sims)
    net, gd = compare(ds, "net", against="gd"), compare(ds, "gd", against="error")
    assert np.all(np.isfinite(net.stats.mean)), net
    assert np.all(np.abs(net.rel) <= 0.06), net.rel
    assert np.all(np.abs(gd.rel) <= 0.01), gd.rel  # GD at tau vs KRR on the same draws
    assert float(ds["sim_net_train_loss"].max()) < 1e-5
    report = exp.report(cfg, ds)
    assert report.passed, report.table


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
    with pytest.raises(ValueError, match="net_seeds"):
        NTKCurveConfig(seeds=4, net_seeds=5)
    with pytest.raises(ValueError, match="net_lr"):
        NTKCurveConfig(net_lr=0.0)
    with pytest.raises(ValueError, match="P_max"):
        DigitsNTKConfig(P_max=5000)
