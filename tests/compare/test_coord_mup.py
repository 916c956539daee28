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


@pytest.mark.slow  # 227 CPU-s (user+sys; 12 min wall at load 16-23): 5 ensembles, 13 lr x 6 seeds
def test_mup_transfer_transformer_quick_preset(tmp_path):
    """Transformer quick preset: widths 32, 128 (4 heads), depths 2, 8 with 1/L branches,
    in-context regression (D 2, 4 pairs), 100 Adam steps, 6 seeds. Measured 2026-12-07 (seed 0):
    muP optimum range over width 0.43 (bootstrap SE 0.59) and over depth 0.28 (0.26), SP slope
    -1.25 (0.15) per doubling (predicted -1); with 4 seeds 0.38 (0.72), 0.22 (0.31), -1.27."""
    res = _run("mup-transfer", tmp_path, {"model": "transformer"})
    m = res.report.metrics
    assert m["mup optimum range (log2)"] <= 1.0 and m["mup optimum range over depth (log2)"] <= 1.0
    assert m["sp optimum slope per doubling"] < -0.5, m  # predicted -1
    assert res.report.passed is True
    assert {r["depth"] for r in res.report.table} == {2, 8}


@pytest.mark.slow  # ~30 s unloaded (est.): 7 lr x 2 seeds x 2 widths x 2 params of Adam
def test_mup_transfer_optimum_stays_under_mup_and_moves_under_sp(tmp_path):
    res = _run("mup-transfer", tmp_path, {"widths": "64,256", "n_lr": "7", "steps": "100",
                                          "log2_lr_max": "0", "seeds": "2", "n_test": "256"})
    m = res.report.metrics
    assert m["mup optimum range (log2)"] <= 1.0, m
    assert m["sp optimum slope per doubling"] < m["mup optimum slope per doubling"] - 0.25, m
    assert res.report.passed is True
    ds = res.dataset
    assert np.isfinite(ds["final_loss"].sel(param="mup")).all()


def test_mup_transfer_points_and_grids():
    """The transformer variant sweeps width (SP and muP) and, at the first width, muP over depth;
    the sgd variant brings its own rate grid; the parabola-refined optimum is sub-grid."""
    from theorysim.compare import curve_minimum

    exp = get_experiment("mup-transfer")
    cfg = exp.make_config("quick", {"model": "transformer", "optimizer": "sgd"})
    pts = exp.points(cfg)
    assert len(pts) == 2 * len(cfg.widths) + len(cfg.depths) - 1
    assert {(p["param"], p["width"], p["depth"]) for p in pts if p["depth"] != cfg.depths[0]} \
        == {("mup", cfg.widths[0], L) for L in cfg.depths[1:]}
    assert cfg.lrs[0] == 2.0**-9 and exp.make_config("quick").lrs[0] == 2.0**-12
    x = np.log2(cfg.lrs)
    for k in (1, 2):
        assert abs(curve_minimum(x, (x - 0.3) ** 2, k) - 0.3) < 1e-9  # exact for a parabola
    assert curve_minimum(x, -x) == x[-1]  # an edge minimum stays at the edge
    assert exp.make_config("quick", {"model": "transformer"}).branch_scale == "depth"


def test_curve_minima_leaves_out_a_blow_up_and_resamples_seeds():
    """Five-point vertex of the seed-mean log loss; a blown-up neighbour (finite but huge, past
    the stable rates) is not fitted; a seed resample is one bootstrap draw."""
    import xarray as xr

    from theorysim.compare import curve_minima, curve_minimum

    x = np.arange(-10.0, 3.0)
    y = np.where(x < -5, (x + 6.6) ** 2 / 8 - 1.5, -0.9)  # a well, then collapse at the baseline
    y[x == -5] = 17.0  # one blown-up point
    v = xr.DataArray(np.exp(np.stack([y, y + 0.01])), dims=("seed", "lr"),
                     coords={"lr": 2.0**x})
    assert abs(float(curve_minima(v, "lr")) + 6.6) < 0.3
    assert abs(curve_minimum(x, y, 2) + 6.6) > 0.5  # fitted through the blow-up: pulled off
    assert abs(float(curve_minima(v, "lr", seeds=[1, 1])) - float(curve_minima(v, "lr"))) < 1e-9
    # a curve sampled on part of a shared grid (NaN before its first rate) is fitted the same
    pad = xr.DataArray(np.full((2, 3), np.nan), dims=("seed", "lr"), coords={"lr": 2.0**(x[0]
                       - np.arange(3, 0, -1))})
    padded = xr.concat([pad, v], "lr")
    assert float(curve_minima(padded, "lr")) == float(curve_minima(v, "lr"))
    with pytest.raises(ValueError, match="half_width"):
        curve_minimum(x, y, 0)


@pytest.mark.parametrize("args, needle", [
    (["coord-check", "--set", "model=rnn"], "model"),
    (["coord-check", "--set", "model=transformer", "--set", "vary=depth"], "vary"),
    (["coord-check", "--set", "model=transformer", "--set", "widths=64,100"], "widths"),
    (["mup-transfer", "--set", "depths=2,4"], "depths"),
    (["mup-transfer", "--set", "model=transformer", "--set", "widths=30,64"], "widths"),
    (["mup-transfer", "--set", "optimizer=lamb"], "optimizer"),
    (["cntk-vs-width", "--set", "widths=64"], "widths"),
    (["cntk-vs-width", "--set", "lr_frac=2"], "lr_frac"),
    (["cntk-vs-width", "--set", "n_test=5000"], "n_test"),
])
def test_hostile_sets_exit_2_naming_the_key(args, needle, tmp_path):
    from typer.testing import CliRunner

    from theorysim.compare.cli import app

    result = CliRunner().invoke(app, ["run", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert not any(tmp_path.iterdir())


def test_coord_check_variants_size_the_new_models():
    """model=cnn|transformer pick their own quick sizes; an explicit --set still wins."""
    exp = get_experiment("coord-check")
    cfg = exp.make_config("quick", {"model": "transformer", "vary": "d_head"})
    assert cfg.widths == (128, 256, 512) and cfg.P == 4
    _, model = cfg.network(256, "mup")
    assert (model.heads, model.d_head) == (4, 64)
    assert exp.make_config("quick", {"model": "cnn", "widths": "8,16"}).widths == (8, 16)
    assert list(cfg.expected())[1] == "block0/attn_logits" and cfg.expected()[
        "block0/attn_logits"] == 1.5
    assert model.zero_query  # the logit update's CLT part (sims/_transformer.py) is absent
    # SP output under Adam: N^(3/2) (cnn), N behind the saturated pre-LN readout (transformer)
    assert cfg.expected()["output"] == 1.0
    assert exp.make_config("quick", {"model": "cnn"}).expected()["output"] == 1.5


@pytest.mark.slow  # 56 s under load 5 (4 widths x 16 ntk CNNs, each compiled once)
def test_cntk_vs_width_kernel_and_predictions_approach_the_cntk(tmp_path):
    """Quick preset at 50 GD steps (measured 2026-12-06, seed 0, quick preset at 100 steps:
    kernel deviation exponent 0.51 +- 0.04, prediction deviation 0.61 +- 0.07, predicted 1/2)."""
    res = _run("cntk-vs-width", tmp_path, {"steps": "50"})
    m = res.report.metrics
    assert abs(m["kernel_dev decay exponent fitted"] - 0.5) <= 0.15, m
    assert abs(m["pred_dev decay exponent fitted"] - 0.5) <= 0.15, m
    assert m["discrete-vs-flow gap (CNTK, linearised)"] < m["smallest prediction deviation"] / 4
    assert res.report.passed is True
    ds = res.dataset
    assert float(ds["sim_kernel_dev"].mean("seed").isel(width=-1)) < float(
        ds["sim_kernel_dev"].mean("seed").isel(width=0)) / 2  # 8x the width: about 1/sqrt(8)


@pytest.mark.slow  # 147 s (cnn), 446 s (transformer) under load 5-12; d_head ~13 min at load 20
@pytest.mark.parametrize("model, vary", [("cnn", "heads"), ("transformer", "heads"),
                                         ("transformer", "d_head")])
def test_coord_check_new_models_quick_preset(model, vary, tmp_path):
    """Measured 2026-12-06 (seed 0, quick presets): cnn max |muP exponent| 0.02, min SP 0.99;
    transformer vary=heads (widths 128..512, P=4, before W^Q = 0 at init) max |muP| 0.09, min
    SP 0.60; vary=d_head with W^Q = 0: max |muP| 0.11, min SP 0.64, muP logits -0.05 and +0.03
    (-0.27 and -0.40 with a random W^Q)."""
    res = _run("coord-check", tmp_path, {"model": model, "vary": vary})
    m = res.report.metrics
    assert m["max |muP exponent|"] < 0.15 and m["min SP exponent (layers >= 2)"] > 0.2, m
    assert res.report.passed is True
    assert "block1/attn_logits" in res.dataset["layer"].values or model == "cnn"
