"""``ridge-learning-curve``: E_g vs P for linear ridge regression on a power-law task.

Theory: the deterministic equivalent ``theorysim.theory.ridge_risk`` (THEORY.md 1; Bordelon,
Canatar, Pehlevan 2020, arXiv 2002.02561). Simulation: ridge regression on Gaussian features
of the same spectrum, many seeds per P, error measured exactly against the clean target.
The report gives per-P agreement in standard errors and the fitted decay exponent vs the
predicted min(a - 1, 2b).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import xarray as xr

from theorysim.checks import check_scalar
from theorysim.sims import linear_ridge_error
from theorysim.theory import fit_power_law, ridge_risk

from .._experiment import Experiment, ExperimentConfig, Report, register
from .._plots import figure, theory_vs_sim
from .._stats import agreement_rows, seed_stats
from .._tasks import PowerLawGaussian


@dataclasses.dataclass(frozen=True)
class RidgeCurveConfig(ExperimentConfig):
    """Config of ``ridge-learning-curve``.

    Attributes:
        M, a, b, noise: the :class:`PowerLawGaussian` task.
        ridge: per-sample ridge (THEORY.md 1 convention), >= 0.
        P_min, P_max, n_P: log-spaced training-set sizes (rounded to integers).
        seeds: simulation seeds per P (>= 2).
        fit_max: largest P used in the exponent fit, as a fraction of M (finite M bends the
            curve down as P approaches M).
        z_max: agreement criterion: every point within ``z_max`` standard errors.
    """

    M: int = 1000
    a: float = 2.0
    b: float = 1.5
    noise: float = 0.0
    ridge: float = 1e-5
    P_min: int = 10
    P_max: int = 1000
    n_P: int = 10
    seeds: int = 32
    fit_max: float = 0.25
    z_max: float = 3.0

    def __post_init__(self):
        PowerLawGaussian(self.M, self.a, self.b, self.noise)
        check_scalar("ridge", self.ridge, lo=0.0)
        check_scalar("P_min", self.P_min, lo=1, integer=True)
        check_scalar("P_max", self.P_max, lo=self.P_min, integer=True)
        check_scalar("n_P", self.n_P, lo=2, integer=True)
        check_scalar("seeds", self.seeds, lo=2, integer=True)
        check_scalar("fit_max", self.fit_max, lo=0.0, lo_open=True, hi=1.0)
        check_scalar("z_max", self.z_max, lo=0.0, lo_open=True)

    @property
    def task(self) -> PowerLawGaussian:
        return PowerLawGaussian(self.M, self.a, self.b, self.noise)

    @property
    def P_values(self) -> list[int]:
        grid = np.geomspace(self.P_min, self.P_max, self.n_P)
        return sorted({int(round(p)) for p in grid})


@register
class RidgeLearningCurve(Experiment):
    name = "ridge-learning-curve"
    summary = "E_g vs P for ridge regression on a power-law task: theory vs simulation"
    config_type = RidgeCurveConfig
    presets = {
        "quick": {},
        "full": {"M": 2000, "P_max": 2000, "n_P": 12, "seeds": 32},
    }

    def points(self, cfg):
        return [{"P": p} for p in cfg.P_values]

    def simulate(self, cfg, point):
        eigvals, target_power = cfg.task.spectrum()
        key = jax.random.fold_in(jax.random.key(cfg.seed), point["P"])
        err = linear_ridge_error(key, eigvals, target_power, point["P"], cfg.ridge,
                                 noise=cfg.noise, n_seeds=cfg.seeds)
        return xr.Dataset(
            {"sim_error": (("P", "seed"), np.asarray(err, dtype=np.float64)[None, :])},
            coords={"P": [point["P"]], "seed": np.arange(cfg.seeds)},
        )

    def theory(self, cfg):
        eigvals, target_power = cfg.task.spectrum()
        P_line = np.unique(np.geomspace(cfg.P_min, cfg.P_max, 200).round())
        line = ridge_risk(eigvals, target_power, P_line, cfg.ridge, cfg.noise)
        at = ridge_risk(eigvals, target_power, np.asarray(cfg.P_values, float), cfg.ridge,
                        cfg.noise)
        return xr.Dataset(
            {
                "theory_error": ("P_theory", line.error),
                "theory_bias": ("P_theory", line.bias),
                "theory_variance": ("P_theory", line.variance),
                "theory_at_P": ("P", at.error),
                "kappa_at_P": ("P", at.kappa),
            },
            coords={"P_theory": P_line, "P": cfg.P_values},
        )

    def _fits(self, cfg, ds, stats):
        P = ds["P"].values.astype(float)
        sel = P <= cfg.fit_max * cfg.M
        fit_sim = fit_power_law(P[sel], stats.mean.values[sel], stats.sem.values[sel])
        fit_th = fit_power_law(P[sel], ds["theory_at_P"].values[sel], stats.sem.values[sel])
        return fit_th, fit_sim

    def report(self, cfg, ds):
        stats = seed_stats(ds["sim_error"])
        rows = agreement_rows("P", ds["P"].values, ds["theory_at_P"].values, stats)
        z = np.array([r["z"] for r in rows])
        fit_th, fit_sim = self._fits(cfg, ds, stats)
        predicted = cfg.task.learning_curve_exponent
        passed = bool(np.all(np.abs(z) <= cfg.z_max)
                      and abs(fit_sim.exponent - predicted) <= 0.1)
        return Report(
            title=f"ridge learning curve, M={cfg.M}, a={cfg.a}, b={cfg.b}, ridge={cfg.ridge}",
            table=rows,
            metrics={
                "max |z|": float(np.max(np.abs(z))),
                f"points within {cfg.z_max} SE": float(np.mean(np.abs(z) <= cfg.z_max)),
                "exponent predicted min(a-1,2b)": predicted,
                "exponent fitted (theory)": fit_th.exponent,
                "exponent fitted (sim)": fit_sim.exponent,
                "exponent fitted (sim) stderr": fit_sim.exponent_stderr,
            },
            notes=(
                f"exponents fitted on P <= {cfg.fit_max} M = {cfg.fit_max * cfg.M:g}",
                f"criterion: all |z| <= {cfg.z_max} and |sim exponent - predicted| <= 0.1",
            ),
            passed=passed,
        )

    def plot(self, cfg, ds):
        stats = seed_stats(ds["sim_error"])
        fit_th, fit_sim = self._fits(cfg, ds, stats)
        fig, axes = figure(1, 1, width=4.2)
        ax = axes[0, 0]
        theory_vs_sim(ax, ds["P_theory"], ds["theory_error"], ds["P"], stats, color="C0",
                      label="$E_g$")
        if cfg.noise > 0:
            ax.plot(ds["P_theory"], ds["theory_bias"], ":", color="C0", lw=1, label="bias")
        P = ds["P_theory"].values
        predicted = cfg.task.learning_curve_exponent
        ax.plot(P, fit_th.prefactor * P ** (-predicted), "--", color="0.5", lw=0.8,
                label=f"$P^{{-{predicted:.3g}}}$ predicted; sim fit "
                      f"${fit_sim.exponent:.3f} \\pm {fit_sim.exponent_stderr:.3f}$")
        ax.set_xlabel("training samples $P$")
        ax.set_ylabel("generalisation error $E_g$")
        ax.set_title(f"ridge regression, $M={cfg.M}$, ridge ${cfg.ridge:g}$")
        ax.legend()
        return fig
