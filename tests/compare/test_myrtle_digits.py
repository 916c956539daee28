"""``myrtle-digits``: the Myrtle-5 CNN NTK's KRR learning curve on digits against its
Gram-spectrum theory (and the MLP NTK's)."""

from __future__ import annotations

import numpy as np
import pytest

from theorysim.compare import compare, get_experiment, run


def test_config_bounds_and_registration():
    exp = get_experiment("myrtle-digits")
    cfg = exp.make_config("quick", {})
    assert cfg.P_max < cfg.n_pop and set(exp.kernels) == {"myrtle", "mlp"}
    with pytest.raises(ValueError, match="P_max"):
        exp.make_config("quick", {"n_pop": "100", "P_max": "200"})


@pytest.mark.slow
def test_myrtle_kernel_regression_matches_its_spectrum_theory(tmp_path):
    exp = get_experiment("myrtle-digits")
    cfg = exp.make_config("quick", {"n_pop": "300", "P_max": "75", "n_P": "3"})
    res = run(exp, cfg, tmp_path, figures=False)
    ds = res.dataset
    excess = compare(ds, "population", rel_max=cfg.rel_max).excess.values
    assert np.all(excess <= 3), excess
    assert np.all(np.diff(ds["theory_population"].values, axis=-1) < 0)
    assert res.report.passed is True
    assert all(r["converged"] for r in res.report.diagnostics)
