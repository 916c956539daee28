"""``mup-transfer --set model=transformer --set optimizer=sgd``: its preset and its criterion.

SGD needs its own sizes for transformers (the two-key variant of ``MupTransfer``; the module
docstring of ``compare/experiments/mup_transfer.py`` gives the measurements): D = 1 in-context
regression leaves the context-free plateau within ~100 SGD steps (D = 2: ~300), so 200 steps
suffice for the quick preset, on a grid from 2^-9 (SP's optima) to 2^2; the full preset runs
600 steps with SP's grid 7 log2 below muP's (``sp_lr_shift``). Both average the test loss over
their last steps (``loss_tail``): SGD's iterate noise at batch 16 is most of the seed noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from theorysim.compare import get_experiment, run

SETS = {"model": "transformer", "optimizer": "sgd"}


def test_transformer_sgd_preset_and_overrides():
    """Both variants apply, then the transformer + SGD sizes; ``--set`` values win, and neither
    the MLP's SGD preset nor the transformer's Adam preset changes."""
    exp = get_experiment("mup-transfer")
    cfg = exp.make_config("quick", SETS)
    assert cfg.batch == 32  # the transformer variant's, under the combined one
    assert (cfg.D, cfg.steps, cfg.seeds, cfg.n_lr) == (1, 200, 4, 12)
    assert np.log2(cfg.lrs[0]) == -9 and np.log2(cfg.lrs[-1]) == 2
    assert np.allclose(np.diff(np.log2(cfg.lrs)), 1.0)  # one log2 unit per grid step
    assert cfg.widths == (32, 128) and cfg.depths == (2, 8)  # from the transformer variant
    assert exp.make_config("quick", {**SETS, "D": "2", "steps": "50"}).D == 2
    assert exp.make_config("quick", {**SETS, "D": "2", "steps": "50"}).steps == 50
    mlp = exp.make_config("quick", {"optimizer": "sgd"})
    assert (mlp.D, mlp.log2_lr_min, mlp.seeds) == (16, -6.0, 2)
    adam = exp.make_config("quick", {"model": "transformer"})
    assert (adam.D, adam.steps, adam.seeds, adam.loss_tail) == (2, 100, 6, 0)
    full = exp.make_config("full", SETS)
    assert full.D == 1 and full.widths[-1] == 1024 and full.depths == (2, 4, 8, 16)
    assert (full.steps, full.batch, full.seeds, full.n_lr) == (600, 16, 4, 10)
    assert full.loss_steps == tuple(range(500, 601, 10))  # SGD's iterate noise: module doc
    assert cfg.loss_steps == tuple(range(160, 201, 4))
    assert np.allclose(np.diff(np.log2(full.lrs)), 1.0) and full.lrs[-1] == 8.0
    assert np.log2(full.grid("sp")).tolist() == list(range(-13, -3))  # SP: 7 log2 lower
    assert full.grid("mup") == full.lrs
    assert exp.make_config("full", {**SETS, "batch": "8"}).batch == 8  # --set still wins
    full_adam = exp.make_config("full", {"model": "transformer"})
    assert (full_adam.D, full_adam.steps, full_adam.batch, full_adam.n_lr) == (2, 100, 16, 17)
    assert np.allclose(np.diff(np.log2(full_adam.lrs)), 1.0)
    assert full_adam.log2_lr_min == -17  # SP's optimum at width 1024 is 2^-15 (module doc)
    assert full_adam.loss_steps == (100,) and mlp.loss_steps == (200,)
    with pytest.raises(ValueError, match="preset"):
        exp.make_config("huge", SETS)


def test_transformer_sgd_leaves_the_plateau_within_100_steps():
    """The SGD path of the experiment (muP, width 32, 1/L branches): after 100 steps at rate
    1/2 the test loss is well below the context-free plateau (log loss -0.9; measured -1.97
    with 4 seeds), at rate 2^-9 it is still on it. ~10 s."""
    exp = get_experiment("mup-transfer")
    cfg = exp.make_config("quick", {**SETS, "steps": "100", "seeds": "2", "n_lr": "2",
                                    "log2_lr_min": "-9", "log2_lr_max": "-1"})
    ds = exp.simulate(cfg, {"param": "mup", "width": 32, "depth": 2})
    loss = np.log(ds["final_loss"].squeeze()).mean("seed").values
    assert loss[0] > -1.0, loss  # 2^-9: on the plateau
    assert loss[1] < -1.5, loss  # 2^-1: in-context regression learned


@pytest.mark.slow  # 269 CPU-s (user+sys), 2026-12-07: 5 ensembles, 12 lr x 4 seeds
def test_transformer_sgd_quick_preset_passes(tmp_path):
    """Quick preset: widths 32, 128 (4 heads), depths 2, 8 (1/L branches), 200 SGD steps, 4
    seeds, 12 rates 2^-9..2^2, final loss the mean over steps 160..200 (``loss_tail=0.2``).
    Measured 2026-12-07 (seed 0): muP optimum range over width 0.30 (bootstrap SE 0.25), over
    depth 0.19 (0.31); SP slope -0.93 (0.13) per doubling (predicted -1); optima muP -1.15,
    -0.85 (widths 32, 128), -0.97 (depth 8); SP -5.15, -7.0. (The last step's loss alone, the
    preset before: range 0.05 with SE 0.57, SP slope -1.36 with SE 0.39.)"""
    exp = get_experiment("mup-transfer")
    res = run(exp, exp.make_config("quick", SETS), tmp_path, figures=False)
    m = res.report.metrics
    assert m["mup optimum range (log2)"] <= 1.0, m
    assert m["mup optimum range over depth (log2)"] <= 1.0, m
    assert m["sp optimum slope per doubling"] < -0.5, m  # predicted -1
    assert res.report.passed is True
    assert {r["depth"] for r in res.report.table} == {2, 8}
    assert np.isfinite(m["mup optimum range (log2), last step's loss"])  # shown, not judged


def test_show_lists_the_combined_transformer_sgd_variant():
    """``theorysim show mup-transfer`` lists the two-key variant (model=transformer with
    optimizer=sgd) with its preset values, under its first key."""
    from theorysim.compare.cli import _variant_lines

    exp = get_experiment("mup-transfer")
    lines = _variant_lines(exp, exp.describe())
    both = [ln for ln in lines if "model=transformer optimizer=sgd also sets" in ln]
    assert len(both) == 1 and "full: D=1 steps=600 batch=16" in both[0], lines
    model_at = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("model ="))
    opt_at = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("optimizer ="))
    assert model_at < lines.index(both[0]) < opt_at


def test_rate_chunks_give_the_same_losses_as_one_program(monkeypatch):
    """``simulate`` splits the rate grid into several compiled ensembles when one would not fit
    in memory (``_lrs_per_program``; an OOM kill at width 1024): members are keyed by seed, so
    one rate per program gives the very numbers of the whole grid in one program. ~15 s."""
    from theorysim.compare.experiments import mup_transfer

    exp = get_experiment("mup-transfer")
    cfg = exp.make_config("quick", {**SETS, "steps": "5", "seeds": "2", "n_lr": "3"})
    point = {"param": "mup", "width": 16, "depth": 1}
    assert mup_transfer._lrs_per_program(cfg, point) == 3
    whole = exp.simulate(cfg, point)["final_loss"].values
    monkeypatch.setattr(mup_transfer, "_lrs_per_program", lambda cfg, point: 1)
    chunked = exp.simulate(cfg, point)["final_loss"]
    assert chunked.sizes["lr"] == 3 and np.isfinite(whole).all()
    np.testing.assert_array_equal(chunked.values, whole)
    assert np.allclose(np.log2(chunked["lr"].values), np.log2(cfg.lrs))


def test_shifted_sp_grid_reaches_the_report_with_its_own_edges(tmp_path):
    """``sp_lr_shift``: SP trains on the grid shifted below muP's; the merged dataset holds both
    grids on one rate coordinate (NaN where a parameterisation has no member), each optimum is
    found on its own grid, and the edge test uses that grid's ends (the MLP: the same code path,
    compiled faster). ~5 s."""
    exp = get_experiment("mup-transfer")
    cfg = exp.make_config("quick", {"optimizer": "sgd", "widths": "16,32", "steps": "10",
                                    "n_lr": "4", "log2_lr_min": "-6", "log2_lr_max": "0",
                                    "sp_lr_shift": "-3", "n_test": "64", "batch": "16"})
    res = run(exp, cfg, tmp_path, figures=False)
    loss = res.dataset["final_loss"]
    assert np.allclose(np.log2(loss["lr"].values), [-9, -7, -6, -5, -4, -3, -2, 0])
    sp, mup = (loss.sel(param=p).notnull().any(["width", "depth", "seed"]) for p in ("sp", "mup"))
    assert np.allclose(np.log2(loss["lr"][sp].values), [-9, -7, -5, -3])
    assert np.allclose(np.log2(loss["lr"][mup].values), [-6, -4, -2, 0])
    for r in res.report.table:  # inside the parameterisation's own grid
        lo, hi = (-9, -3) if r["param"] == "sp" else (-6, 0)
        assert lo <= r["log2 optimal lr"] <= hi, r


def test_loss_tail_averages_the_recorded_tail(monkeypatch):
    """``loss_tail``: the final loss is the mean test loss at ``loss_steps`` (11 records over
    the last fraction ``loss_tail`` of the steps, here 6..10 after rounding), a member that blows
    up inside the window stays non-finite, and the last step's loss is kept beside it; ``0``
    keeps the last step alone. The MLP path, ~5 s."""
    from theorysim.compare.experiments import mup_transfer

    exp = get_experiment("mup-transfer")
    sets = {"optimizer": "sgd", "widths": "16,32", "steps": "10", "n_lr": "3", "n_test": "64",
            "batch": "16"}
    cfg = exp.make_config("quick", {**sets, "loss_tail": "0.4"})
    assert cfg.loss_steps == (6, 7, 8, 9, 10)
    assert exp.make_config("quick", sets).loss_steps == (10,)
    runs, train_fn = [], mup_transfer.train

    def recording_train(*a, **kw):
        runs.append(res := train_fn(*a, **kw))
        return res

    point = {"param": "mup", "width": 16, "depth": 1}
    monkeypatch.setattr(mup_transfer, "train", recording_train)
    ds = exp.simulate(cfg, point)
    (raw,) = runs
    tl = raw.to_xarray()["test_loss"].isel(gamma0=0, drop=True)
    assert tl["step"].values.tolist() == [0, 6, 7, 8, 9, 10]
    tail = tl.sel(step=[6, 7, 8, 9, 10])
    want, got = tail.mean("step").values, ds["final_loss"].squeeze(["param", "depth"]).values
    blown = ~np.isfinite(tail).all("step").values  # 2^-2 blows up inside the window here
    assert blown.any() and not blown.all()
    assert (~np.isfinite(got) == blown).all()  # not averaged over its finite records
    np.testing.assert_allclose(got[~blown], want[~blown], rtol=1e-6)
    np.testing.assert_allclose(ds["last_step_loss"].squeeze(["param", "depth"]).values,
                               tl.sel(step=10).values, rtol=1e-6)
    assert not np.allclose(want[~blown], tl.sel(step=10).values[~blown])  # not the last step
    assert "last_step_loss" not in exp.simulate(exp.make_config("quick", sets), point)
    with pytest.raises(ValueError, match="loss_tail"):
        exp.make_config("quick", {**sets, "loss_tail": "1.5"})
    assert exp.make_config("quick", {**SETS, "steps": "5"}).loss_steps == (4, 5)  # a fraction


def test_report_judges_the_window_mean_and_shows_the_last_step():
    """The criterion reads ``final_loss`` (the window's mean); the last step's optimum range is
    reported beside it and does not decide: here the window's muP optima coincide (range 0,
    SP -1 per doubling) while the last step's muP optima spread over 3 log2 units."""
    import xarray as xr

    exp = get_experiment("mup-transfer")
    cfg = exp.make_config("quick", {"widths": "64,128,256", "n_lr": "9", "log2_lr_min": "-8",
                                    "log2_lr_max": "0", "loss_tail": "0.1"})
    x = np.log2(cfg.lrs)
    opt = {("sp", 64): -3.0, ("sp", 128): -4.0, ("sp", 256): -5.0}
    shape = ("param", "width", "depth", "seed", "lr")
    coords = {"param": ["sp", "mup"], "width": [64, 128, 256], "depth": [2], "seed": [0, 1],
              "lr": list(cfg.lrs)}

    def curves(mup_optima):
        v = np.empty((2, 3, 1, 2, len(x)))
        for i, p in enumerate(("sp", "mup")):
            for j, w in enumerate((64, 128, 256)):
                c = opt[p, w] if p == "sp" else mup_optima[j]
                v[i, j] = np.exp(0.3 * (x - c) ** 2 - 2.0)
        return xr.DataArray(v, dims=shape, coords=coords)

    ds = xr.Dataset({"final_loss": curves([-4.0, -4.0, -4.0]),
                     "last_step_loss": curves([-6.0, -4.5, -3.0])})
    rep = exp.report(cfg, ds)
    m = rep.metrics
    assert abs(m["mup optimum range (log2)"]) < 1e-6 and rep.passed is True, m
    assert abs(m["sp optimum slope per doubling"] + 1.0) < 1e-6, m
    assert abs(m["mup optimum range (log2), last step's loss"] - 3.0) < 1e-6, m
    bad = ds["final_loss"].copy()
    bad[:, :, :, :, -1] = 1e10  # a blow-up at the top rate does not set the axis
    fig = exp.plot(cfg, ds.assign(final_loss=bad))
    first = float(np.exp(0.3 * (x[0] + 3.0) ** 2 - 2.0))  # the highest untrained loss: SP 64
    assert all(np.isclose(ax.get_ylim()[1], 10 * first, rtol=1e-6) for ax in fig.axes[:1])
    assert max(ax.get_ylim()[1] for ax in fig.axes) < 1e4  # panels: untrained 16..245
