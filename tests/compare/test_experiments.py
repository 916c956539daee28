"""The issue-2 experiments at small sizes: theory and simulation agree where they should.

Every assertion here is a number that can fail: z-scores against seed/split standard errors,
and relative deviations bounded by a measured, named finite-size effect.
"""

from __future__ import annotations

import numpy as np
import pytest

from theorysim.compare import get_experiment, run
from theorysim.compare._stats import seed_stats, z_scores


def _run(name, tmp_path, **sets):
    exp = get_experiment(name)
    cfg = exp.make_config("quick", {k: str(v) for k, v in sets.items()})
    return cfg, run(exp, cfg, tmp_path, figures=False)


def test_digits_linear_kernel_matches_gram_spectrum_theory(tmp_path):
    cfg, res = _run("digits-kernel-curve", tmp_path, P_min=20, P_max=400, n_P=3, splits=24)
    ds = res.dataset
    for kernel in ("linear", "rbf"):
        for quantity in ("population", "train"):
            sim = seed_stats(ds[f"sim_{kernel}_{quantity}"], dim="split")
            th = ds[f"theory_{kernel}_{quantity}_at_P"].values
            z = z_scores(th, sim.mean, sim.sem)
            rel = np.abs(sim.mean.values / th - 1)
            if kernel == "linear":
                assert np.all(np.abs(z) <= 3), (quantity, z)
            elif quantity == "population":
                # The deterministic equivalent's finite-P bias for the fast-decaying RBF
                # spectrum, measured at 3.3% (P=37), 1.5% (P=268), 0.3% (P=1000) on the
                # population error with 64 splits: bound it rather than the z-score.
                assert np.all(rel <= 0.05), (quantity, rel)
            # (the RBF training-error prediction carries a larger bias, 9% at P=89: unchecked)
    # the learning curve decreases and the report carries the per-point table
    assert np.all(np.diff(ds["theory_linear_population_at_P"].values) < 0)
    assert len(res.report.table) == 2 * ds.sizes["P"]


def test_random_feature_grid_agrees_within_three_standard_errors(tmp_path):
    cfg, res = _run("random-feature-grid", tmp_path, M=300, N_max=64, P_max=64, n_grid=3,
                    P_slice=32, n_slice=5, seeds=24)
    ds = res.dataset
    g = seed_stats(ds["sim_grid"])
    zg = z_scores(ds["theory_grid"].values, g.mean.values, g.sem.values)
    s = seed_stats(ds["sim_slice"])
    zs = z_scores(ds["theory_slice_at_N"].values, s.mean.values, s.sem.values)
    assert np.all(np.abs(zg) <= 3), zg
    assert np.all(np.abs(zs) <= 3), zs
    # the double-descent bump: theory at N = P exceeds theory at the neighbouring N
    n = ds["N_slice"].values
    th = ds["theory_slice_at_N"].values
    at = int(np.flatnonzero(n == cfg.P_slice)[0])
    assert th[at] > th[at - 1] and th[at] > th[at + 1]
    assert res.report.passed is True


def test_scaling_law_dynamics_flow_and_gd(tmp_path):
    """The experiment end to end, gradient flow and discrete GD (lr = 1): the simulated bands
    cover the theory (its own criterion) and GD theory is the time-domain solver's."""
    from theorysim.theory import scaling_law_dynamics_gd

    small = dict(M=300, widths="32,128", seeds=12, n_t=5, t_max=100, C_min=30, C_max=3e3)
    cfg, res = _run("scaling-law-dynamics", tmp_path / "flow", **small)
    assert res.report.passed, res.report.metrics
    cfg_gd, res_gd = _run("scaling-law-dynamics", tmp_path / "gd", lr=1.0, **small)
    assert res_gd.report.passed, res_gd.report.metrics
    ds = res_gd.dataset
    steps = np.round(ds["t"].values).astype(int)
    lam, tp = cfg_gd.task.spectrum()
    want = scaling_law_dynamics_gd(lam, tp, [np.inf], [32.0, 128.0], 1.0, 100).loss
    np.testing.assert_allclose(ds["theory_at"].values, want[..., steps], rtol=1e-10)
    # GD with lr = 1 is visibly not gradient flow at early times
    flow = res.dataset["theory_at"].values
    assert np.max(np.abs(ds["theory_at"].values[..., 0] / flow[..., 0] - 1)) > 0.05


def test_scaling_law_dynamics_gd_config_errors():
    exp = get_experiment("scaling-law-dynamics")
    with pytest.raises(ValueError, match="t_max / lr"):
        exp.make_config("quick", {"lr": "0.1"})
    with pytest.raises(ValueError, match="t_min"):
        exp.make_config("quick", {"lr": "2", "t_max": "1000"})
    with pytest.raises(ValueError, match="lr"):
        exp.make_config("quick", {"lr": "-1"})
