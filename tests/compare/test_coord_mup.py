"""coord-check and mup-transfer at small sizes: each experiment's own criterion holds.

Sizes measured to pass with margin (2026-11-28, seed 0): coord-check at widths 64..1024,
depth 2, 3 Adam steps: max |muP exponent| 0.10 (criterion < 0.15), min SP exponent 0.70
(> 0.2); mup-transfer at widths 64, 256 and a 2-log2-unit grid: muP optimum range 0, SP
slope -1.0 per doubling (predicted -1 for Adam).
"""

from __future__ import annotations

import numpy as np
import pytest

from theorysim.compare import get_experiment, run


def _run(name, tmp_path, sets):
    exp = get_experiment(name)
    return run(exp, exp.make_config("quick", sets), tmp_path, figures=False)


def test_coord_check_mup_is_flat_and_sp_grows(tmp_path):
    res = _run("coord-check", tmp_path,
               {"widths": "64,256,1024", "depth": "2", "steps": "3", "seeds": "2"})
    m = res.report.metrics
    assert m["max |muP exponent|"] < 0.15, m
    assert m["min SP exponent (layers >= 2)"] > 0.2, m
    assert res.report.passed is True
    # the table's fitted exponents follow the predicted ones (0 for muP, 1 for SP layers >= 2)
    for row in res.report.table:
        assert abs(row["fitted"] - row["expected"]) < 0.5, row


@pytest.mark.slow  # ~30 s unloaded (est.): 7 lr x 2 seeds x 2 widths x 2 params of Adam
def test_mup_transfer_optimum_stays_under_mup_and_moves_under_sp(tmp_path):
    res = _run("mup-transfer", tmp_path, {"widths": "64,256", "n_lr": "7", "steps": "100",
                                          "seeds": "2", "n_test": "256"})
    m = res.report.metrics
    assert m["muP optimum range (log2)"] <= 1.0, m
    assert m["SP optimum slope per doubling"] < m["muP optimum slope per doubling"] - 0.25, m
    assert res.report.passed is True
    ds = res.dataset
    assert np.isfinite(ds["final_loss"].sel(param="mup")).all()
