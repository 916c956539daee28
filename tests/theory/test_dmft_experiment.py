"""The ``dmft-vs-width`` experiment end to end on a tiny config (no files written)."""

from __future__ import annotations

import numpy as np

from theorysim.compare._experiment import get_experiment


def test_dmft_vs_width_tiny_run():
    exp = get_experiment("dmft-vs-width")
    cfg = exp.config_type(widths=(32, 64), gamma0s=(1.0,), times=(0.25, 0.5), seeds=512,
                          samples=1024)
    sims = [exp.simulate(cfg, p) for p in exp.points(cfg)]
    ds = exp.combine(cfg, exp.theory(cfg), sims)
    rep = exp.report(cfg, ds)
    # the stated criterion: every (width, t) point of both quantities within 3 SE
    assert "3 SE" in rep.criterion and "loss_gap" in rep.criterion, rep.criterion
    assert rep.passed, (rep.metrics, rep.table)
    assert len(rep.table) == 4
    # the loss gap is resolved: N x gap well above its SE at every point
    assert all(r["theory"] > 0 for r in rep.table)
    assert all(abs(r["loss_gap theory"]) > 3 * 0.02 for r in rep.table)
    fig = exp.plot(cfg, ds)
    assert len(fig.axes) == 2
    assert np.isfinite(rep.metrics["max |z|"])
