"""The issue-2 experiments at small sizes: theory and simulation agree where they should.

Every assertion here is a number that can fail: z-scores against seed/split standard errors,
and relative deviations bounded by a measured, named finite-size effect.
"""

from __future__ import annotations

import numpy as np
import pytest

from theorysim.compare import compare, get_experiment, run


def _run(name, tmp_path, **sets):
    exp = get_experiment(name)
    cfg = exp.make_config("quick", {k: str(v) for k, v in sets.items()})
    return cfg, run(exp, cfg, tmp_path, figures=False)


def test_digits_linear_kernel_matches_gram_spectrum_theory(tmp_path):
    cfg, res = _run("digits-kernel-curve", tmp_path, P_min=20, P_max=400, n_P=3, splits=24)
    ds = res.dataset
    for quantity in ("population", "train"):
        z = compare(ds, quantity).z.sel(kernel="linear").values
        assert np.all(np.abs(z) <= 3), (quantity, z)
    # The deterministic equivalent's finite-P bias for the fast-decaying RBF spectrum,
    # measured at 3.3% (P=37), 1.5% (P=268), 0.3% (P=1000) on the population error with 64
    # splits, is declared (rel_max = 3%): beyond it the deviation is within 3 SE. (The RBF
    # training-error prediction carries a larger bias, 9% at P=89, and is not compared.)
    excess = compare(ds, "population", rel_max=cfg.rel_max).excess.sel(kernel="rbf").values
    assert np.all(excess <= 3), excess
    # the learning curve decreases, the report carries the per-point table and passes
    assert np.all(np.diff(ds["theory_population"].sel(kernel="linear").values) < 0)
    assert len(res.report.table) == 2 * ds.sizes["P"]
    assert res.report.passed is True
    assert all(r["converged"] for r in res.report.diagnostics)


@pytest.mark.slow  # suite budget: ~20-70 s on 2 cores
def test_random_feature_grid_agrees_within_three_standard_errors(tmp_path):
    cfg, res = _run("random-feature-grid", tmp_path, M=300, N_max=64, P_max=64, n_grid=3,
                    P_slice=32, n_slice=5, seeds=24)
    ds = res.dataset
    z = compare(ds, "error").z.values
    assert np.isfinite(z).sum() == len(res.report.table) >= 9 + 3
    assert np.nanmax(np.abs(z)) <= 3, z
    # the double-descent bump: theory at N = P exceeds theory at the neighbouring N
    th = ds["theory_error"].sel(P=cfg.P_slice)
    n = list(ds["N"].values)
    at = n.index(cfg.P_slice)
    assert th[at] > th[at - 1] and th[at] > th[at + 1]
    assert res.report.passed is True


@pytest.mark.slow  # suite budget: ~20-70 s on 2 cores
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
    lam, tp = cfg_gd.spectrum()
    want = scaling_law_dynamics_gd(lam, tp, [np.inf], [32.0, 128.0], 1.0, 100).loss
    np.testing.assert_allclose(ds["theory_loss"].values, want[..., steps], rtol=1e-10)
    # GD with lr = 1 is visibly not gradient flow at early times
    flow = res.dataset["theory_loss"].values
    assert np.max(np.abs(ds["theory_loss"].values[..., 0] / flow[..., 0] - 1)) > 0.05


def test_scaling_law_dynamics_gd_config_errors():
    exp = get_experiment("scaling-law-dynamics")
    with pytest.raises(ValueError, match="t_max / lr"):
        exp.make_config("quick", {"lr": "0.1"})
    with pytest.raises(ValueError, match="t_min"):
        exp.make_config("quick", {"lr": "2", "t_max": "1000"})
    with pytest.raises(ValueError, match="lr"):
        exp.make_config("quick", {"lr": "-1"})
