"""The ``dmft-vs-width`` experiment end to end on a tiny config (no files written)."""

from __future__ import annotations

import numpy as np

from theorysim.compare._experiment import get_experiment


def test_dmft_vs_width_tiny_run():
    exp = get_experiment("dmft-vs-width")
    cfg = exp.config_type(widths=(64, 1024), gamma0s=(1.0,), steps=20, records=3, seeds=4,
                          samples=2000, eta=0.05)
    sims = [exp.simulate(cfg, p) for p in exp.points(cfg)]
    ds = exp.combine(cfg, exp.theory(cfg), sims)
    rep = exp.report(cfg, ds)
    slope = rep.metrics["NTK-fluctuation slope (gamma0=1.0)"]
    # two widths, 4 seeds: the single-run kernel distance falls roughly like N^-1/2
    assert -0.8 < slope < -0.25, slope
    assert np.isfinite(rep.metrics["max |z| at N=1024 (gamma0=1.0)"])
    assert len(rep.table) == 2
    # the mean-loss gap comes with its noise floor; with 2 widths no slope is fitted
    assert all(r["gap noise floor"] > 0 for r in rep.table)
    assert np.isnan(rep.metrics["loss-gap slope (gamma0=1.0)"])
    fig = exp.plot(cfg, ds)
    assert len(fig.axes) == 3
