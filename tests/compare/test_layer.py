"""The comparison layer: declared config fields, theory diagnostics in the dataset and the
report, FAILED on a non-converged theory, seeds, the agreement criterion and `theorysim show`."""

from __future__ import annotations

import dataclasses
import math
import typing

import numpy as np
import pytest
from typer.testing import CliRunner

from theorysim.compare import (
    FAMILY_ALPHA,
    Check,
    ExperimentConfig,
    PopulationCurve,
    PopulationCurveConfig,
    Prediction,
    Sweep,
    agreement,
    by_category,
    config_from_dict,
    config_to_dict,
    field_bounds,
    get_experiment,
    param,
    power_fit,
    power_fits,
    registry,
    run,
    table_rows,
    theory_checks,
)
from theorysim.compare.cli import app
from theorysim.kernels import gram_spectrum


@dataclasses.dataclass(frozen=True)
class LineConfig(ExperimentConfig):
    x_max: int = param(8, "largest x", lo=2, hi=100)
    seeds: int = param(64, "seeds per x", lo=2)
    slope: float = param(2.0, "true slope", lo=0.0)
    converge: bool = param(True, "whether the fake solver converges")
    z_max: float = param(3.0, "criterion", lo=0.0, lo_open=True)

    @property
    def double_slope(self) -> float:
        return 2 * self.slope


@dataclasses.dataclass(frozen=True)
class FakeResult:
    y: np.ndarray
    converged: bool
    residual: float
    iterations: int


class Line(Sweep):
    """y = slope * x measured with unit Gaussian noise; the 'solver' is a closed form that
    can be told not to converge."""

    name = "test-line"
    summary = "a straight line"
    config_type = LineConfig
    dims = ("x",)
    compared = ("y",)
    line = "x"

    def grid(self, cfg):
        return {"x": list(range(1, cfg.x_max + 1))}

    def sample(self, cfg, point, key):
        import jax

        noise = np.asarray(jax.random.normal(key, (cfg.seeds,)))
        return {"y": cfg.slope * point["x"] + noise}

    def predict(self, cfg, x):
        res = FakeResult(cfg.slope * np.asarray(x, float), cfg.converge,
                         1e-14 if cfg.converge else 0.5, 3)
        return Prediction({"y": res.y}, {"fake": res})


def test_a_sweep_is_grid_sample_predict(tmp_path):
    exp = Line()
    cfg = LineConfig()
    res = run(exp, cfg, tmp_path, figures=True)
    ds = res.dataset
    assert ds["sim_y"].dims == ("x", "seed") and ds["theory_y_line"].dims == ("x_line",)
    assert ds.sizes["x_line"] == 8  # the fine grid of integer x, duplicates merged
    assert bool(ds["theory_converged"].all()) and float(ds["theory_residual"].max()) < 1e-13
    assert res.report.passed is True
    assert [r["solver"] for r in res.report.diagnostics] == ["fake", "fake (fine grid)"]
    assert res.report.criterion.startswith("y: no point beyond the family-wise bound")
    assert len(res.report.table) == 8 and {"theory", "sim", "sem", "z"} <= set(res.report.table[0])
    assert (res.run_dir / "figure.png").stat().st_size > 0


def test_a_theory_that_did_not_converge_fails_the_report_with_the_reason(tmp_path):
    res = run(Line(), LineConfig(converge=False), tmp_path, figures=False)
    assert res.report.passed is False
    assert "did not converge (residual 0.5 after 3 iterations)" in res.report.notes[0]
    assert not bool(res.dataset["theory_converged"].any())


def test_the_seed_drives_every_draw():
    exp, cfg = Line(), LineConfig(x_max=2, seeds=4)
    a = exp.simulate(cfg, {"x": 1})["sim_y"].values
    b = exp.simulate(cfg, {"x": 1})["sim_y"].values
    c = exp.simulate(dataclasses.replace(cfg, seed=1), {"x": 1})["sim_y"].values
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [({"x_max": 1}, r"x_max must be in \[2, 100\], got 1"),
     ({"x_max": 2.5}, "x_max must be a finite integer"),
     ({"seeds": "64"}, "seeds must be a number"),
     ({"slope": math.inf}, "slope must be"),
     ({"converge": "yes"}, "converge must be a bool"),
     ({"seed": -1}, "seed must be in")],
)
def test_declared_ranges_are_checked_generically(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        LineConfig(**kwargs)


def test_config_round_trips_through_its_manifest_form():
    exp = get_experiment("scaling-law-dynamics")
    cfg = exp.make_config("full")
    assert math.isinf(cfg.P[-1])
    assert config_from_dict(exp.config_type, config_to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="unknown config keys"):
        config_from_dict(exp.config_type, {"bogus": 1})


@pytest.mark.parametrize(
    ("name", "sets", "key"),
    [("ridge-learning-curve", {"n_P": "2"}, "fit_max"),
     ("ridge-learning-curve", {"fit_max": "0.001"}, "fit_max"),
     ("digits-kernel-curve", {"P_min": "10", "P_max": "10"}, "n_P"),
     ("scaling-law-dynamics", {"C_max": "200"}, "C_max"),
     ("coord-check", {"widths": "64"}, "widths"),
     ("mup-transfer", {"widths": "64"}, "widths"),
     ("random-feature-grid", {"P_max": "8"}, "P_max")],
)
def test_late_failures_are_caught_when_the_config_is_built(name, sets, key):
    with pytest.raises(ValueError, match=key):
        get_experiment(name).make_config("quick", sets)


def test_every_quick_config_validates_and_every_field_is_declared():
    for name, cls in registry().items():
        exp = cls()
        for preset in exp.presets:
            exp.make_config(preset)
        rows = exp.describe()
        assert rows and all(r["meaning"] for r in rows), name


def test_every_int_field_of_every_experiment_is_bounded():
    """Every count (int field or int-tuple entry) has a finite upper bound, declared or the
    class-wide MAX_COUNT, and a value just above it is refused naming the field."""
    n = 0
    for name, cls in registry().items():
        cfg = cls().make_config("quick")
        hints = typing.get_type_hints(type(cfg))
        for field, (_, hi) in field_bounds(cfg).items():
            tp = hints[field]
            if int not in (tp, *typing.get_args(tp)):
                continue
            assert math.isfinite(hi), (name, field)
            value = getattr(cfg, field)
            bad = (*value[:-1], int(hi) + 1) if isinstance(value, tuple) else int(hi) + 1
            with pytest.raises(ValueError, match=field):
                dataclasses.replace(cfg, **{field: bad})
            n += 1
    assert n >= 50  # every experiment's counts were enumerated


def test_the_theory_is_checked_before_any_simulation(tmp_path, monkeypatch):
    """A config whose theory cannot be computed fails in the runner's preflight, before any
    point is simulated (ntk-learning-curve: degree-200 degeneracies on S^9999 exceed float64)."""
    exp = get_experiment("ntk-learning-curve")
    cfg = exp.make_config("quick", {"d": "10000", "max_degree": "200"})

    def never(*args, **kwargs):
        raise AssertionError("simulated before the theory was checked")

    monkeypatch.setattr(type(exp), "sample", never)
    with pytest.raises(ValueError, match="max_degree"):
        run(exp, cfg, tmp_path, figures=False)
    assert not list(tmp_path.rglob("*.zarr"))


def test_show_lists_keys_defaults_ranges_and_meaning():
    result = CliRunner().invoke(app, ["show", "ridge-learning-curve"])
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("fit_max"))
    assert "0.25" in line and "(0, 1]" in line and "fraction of M" in line
    bad = CliRunner().invoke(app, ["show", "nope"])
    assert bad.exit_code == 2


def test_agreement_and_power_fit():
    ok, m = agreement(np.array([0.1, -2.9, np.nan]), z_max=3.0)
    assert ok and tuple(m["points within 3 SE"]) == (2, 2)
    # a declared systematic deviation: |diff| - rel_max |theory| in SE units
    ok, _ = agreement(np.array([4.0]), z_max=3.0, excess=np.array([1.0]))
    assert ok
    # 27 normal z: the Bonferroni bound is 3.74 SE and one point beyond 3 SE is chance
    ok, m = agreement(np.array([1.0] * 26 + [3.6]), z_max=3.0)
    assert ok and m["family-wise bound (SE)"] == pytest.approx(3.74, abs=0.01)
    assert not agreement(np.array([1.0] * 26 + [3.8]), z_max=3.0)[0]
    # several moderately off points fail: a systematic deviation
    assert not agreement(np.array([1.0] * 22 + [3.3] * 5), z_max=3.0)[0]
    # values sharing draws (one sweep point along time) count as one off point
    z = np.array([1.0] * 20 + [3.3] * 5)
    assert agreement(z, z_max=3.0, groups=[*range(20), *[20] * 5])[0]
    # few seeds: the Student t bound is wider (7 dof, 27 values: 7.15 SE)
    ok, m = agreement(np.array([1.0] * 26 + [7.0]), z_max=3.0, dof=7)
    assert ok and m["family-wise bound (SE)"] == pytest.approx(7.15, abs=0.01)
    fit = power_fit([10, 20, 40, 80], [1.0, 0.5, 0.25, 0.125])
    assert fit.exponent == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("m", "seeds"), [(27, 32), (6, 12), (21, 4)])
def test_a_correct_theory_fails_at_most_at_the_family_wise_rate(m, seeds):
    """2000 simulated experiments whose theory is right: the criterion fails at most
    FAMILY_ALPHA (1%) of the time (3 binomial SE of slack), where "every point within 3 SE"
    fails 7-70% of the time; a 2.5-SE bias at each of 27 points fails nearly always."""
    rng = np.random.default_rng(m * 100 + seeds)
    x = rng.standard_normal((2000, m, seeds))
    z = x.mean(-1) / (x.std(-1, ddof=1) / np.sqrt(seeds))
    fails = np.mean([not agreement(row, dof=seeds - 1)[0] for row in z])
    assert fails <= FAMILY_ALPHA + 3 * np.sqrt(FAMILY_ALPHA / 2000), fails
    assert np.mean(np.any(np.abs(z) > 3, axis=1)) > 0.05  # the old rule
    if m == 27:
        zb = z[:300] + 2.5
        assert np.mean([not agreement(row, dof=seeds - 1)[0] for row in zb]) > 0.9


class FittedLine(Line):
    """Line with a theory-side check (its own slope against ``target``), a reported config
    property, notes and a panel title formatted with it, and the simulation's fitted exponent
    against the theory's."""

    name = "test-fitted-line"
    reported = {"twice the slope": "double_slope"}
    notes = ("slope {slope:g}, doubled {double_slope:g}",)
    panel_title = "slope {double_slope:g} / 2"
    target = 2.0

    def extras(self, cfg, coords):
        return Prediction({}, attrs={"other": 1.0},
                          checks=[Check("theory slope", cfg.slope, self.target, 0.1)])

    def checks(self, cfg, ds):
        return (Check.fit_vs_theory("growth", ds, "y", "x", z_max=cfg.z_max),)


def test_theory_checks_are_stored_and_decide_with_the_criterion(tmp_path):
    res = run(FittedLine(), LineConfig(slope=2.0), tmp_path / "ok", figures=True)
    ds, m = res.dataset, res.report.metrics
    assert ds.attrs["other"] == 1.0 and theory_checks(ds)["theory slope"].passed
    assert m["theory slope fitted"] == 2.0 and m["twice the slope"] == 4.0
    # y = 2x: the simulation's exponent (-1 up to noise) against the theory's, exactly -1
    assert m["growth predicted"] == pytest.approx(-1.0, abs=1e-12)
    assert abs(m["growth fitted"] + 1.0) < 4 * m["growth fitted stderr"]
    assert m["growth fitted stderr"] < 0.02  # 64 unit-noise seeds on y = 2x, x = 1..8: 0.013
    assert res.report.passed is True and "slope 2, doubled 4" in res.report.notes
    assert "|theory slope fitted - predicted| <= 0.1" in res.report.criterion
    exp = FittedLine()
    exp.target = 3.0  # the theory's own check fails: so does the report, the rest passing
    bad = run(exp, LineConfig(slope=2.0), tmp_path / "bad", figures=False)
    assert bad.report.passed is False and not theory_checks(bad.dataset)["theory slope"].passed


def test_panel_title_and_focus_on_are_declared(tmp_path):
    class Focused(FittedLine):
        focus_on = {"x": "x_max"}

    exp, cfg = Focused(), LineConfig(x_max=4)
    assert exp.focus(cfg) == {"x": 4} and FittedLine().focus(cfg) is None
    ds = run(FittedLine(), cfg, tmp_path, figures=False).dataset
    assert FittedLine().plot(cfg, ds).axes[0].get_title() == "slope 4 / 2"


def test_power_fits_table_rows_and_by_category():
    import xarray as xr

    w = np.array([1.0, 2.0, 4.0, 8.0])
    v = xr.DataArray(np.stack([w**0.5, 3 * w**-1.0]), dims=("layer", "width"),
                     coords={"layer": ["a", "b"], "width": w})
    np.testing.assert_allclose(power_fits(v, "width").values, [-0.5, 1.0], atol=1e-12)
    assert float(power_fits(v, "width", where=w < 5).sel(layer="b")) == pytest.approx(
        power_fit(w[:3], 3 * w[:3] ** -1.0).exponent, abs=1e-12)
    rows = table_rows(expected=xr.zeros_like(v.isel(width=0, drop=True)),
                      fitted=-power_fits(v, "width"))
    assert rows == ({"layer": "a", "expected": 0.0, "fitted": pytest.approx(0.5)},
                    {"layer": "b", "expected": 0.0, "fitted": pytest.approx(-1.0)})
    with pytest.raises(ValueError):  # columns in another coordinate order are refused
        table_rows(a=v.isel(width=0), b=v.isel(width=0).sel(layer=["b", "a"]))
    layers = np.array(["h1", "output"], dtype=object)  # as a merged dataset holds them
    obj = xr.DataArray([1.0, 2.0], dims="layer", coords={"layer": layers})
    assert table_rows(v=obj)[1] == {"layer": "output", "v": 2.0}
    r = by_category("kernel", {"rbf": 0.03, "linear": 0.0})
    assert r.dims == ("kernel",) and float(r.sel(kernel="linear")) == 0.0


@dataclasses.dataclass(frozen=True)
class GaussianPopulationConfig(PopulationCurveConfig):
    n: int = param(400, "population size", lo=20, hi=10**4)
    P_max: int = param(200, "largest training set", lo="P_min", hi="n", hi_open=True)
    n_P: int = param(4, "training-set sizes", lo=2, hi=100)


class GaussianPopulation(PopulationCurve):
    """A population of n Gaussian points in D = 16 with a noisy linear target: the linear
    kernel's learning curve from its Gram spectrum (one ``population`` mapping)."""

    name = "test-gaussian-population"
    summary = "linear KRR on a Gaussian point cloud"
    config_type = GaussianPopulationConfig
    kernels, data_name = ("linear",), "Gaussian points"

    def population(self, cfg, kernel):
        rng = np.random.default_rng(cfg.seed)
        x = rng.standard_normal((cfg.n, 16))
        y = (x @ rng.standard_normal(16) / 4 + 0.3 * rng.standard_normal(cfg.n))[:, None]
        spec = gram_spectrum(x @ x.T / 16, y)
        return x @ x.T / 16, y, (spec.eigvals, spec.target_power)

    def rel_max(self, cfg):
        return 0.0  # a linear kernel: the deterministic equivalent within z_max SE


def test_a_population_curve_is_one_population_mapping(tmp_path):
    exp, cfg = GaussianPopulation(), GaussianPopulationConfig(splits=48)
    res = run(exp, cfg, tmp_path, figures=True)
    ds = res.dataset
    assert ds["sim_population"].dims == ("kernel", "P", "seed") and len(res.report.table) == 4
    assert [r["solver"] for r in res.report.diagnostics] == ["ridge_risk (linear)",
                                                             "ridge_risk (linear) (fine grid)"]
    # points drawn twice are fit better: held out > population > train, in theory and simulation
    th = {q: ds[f"theory_{q}"].values for q in ("train", "population", "held_out")}
    assert np.all(th["train"] < th["population"]) and np.all(th["population"] < th["held_out"])
    assert np.all(ds["sim_held_out"].mean("seed") > ds["sim_population"].mean("seed"))
    assert res.report.passed is True, res.report.metrics
    assert ds["eigvals"].dims == ("kernel", "mode") and (res.run_dir / "figure.png").exists()
