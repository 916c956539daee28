"""``ridge-learning-curve``: E_g vs P for linear ridge regression on a power-law task.

Theory: the deterministic equivalent ``theorysim.theory.ridge_risk`` (THEORY.md 1; Bordelon,
Canatar, Pehlevan 2020, arXiv 2002.02561). Simulation: ridge regression on Gaussian features
of the same spectrum, many seeds per P, error measured exactly against the clean target.
The report gives per-P agreement in standard errors and the fitted decay exponent vs the
predicted min(a - 1, 2b).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from theorysim.sims import linear_ridge_error
from theorysim.theory import ridge_risk

from .._compare import Check, Prediction, Sweep, power_fit, solve
from .._configio import param
from .._experiment import register
from .._plots import reference_power_law
from .._stats import seed_stats
from .._tasks import PGridConfig, PowerLawConfig


@dataclasses.dataclass(frozen=True)
class RidgeCurveConfig(PowerLawConfig, PGridConfig):
    """Config of ``ridge-learning-curve`` (``theorysim show ridge-learning-curve``)."""

    ridge: float = param(1e-5, "per-sample ridge (THEORY.md 1 convention)", lo=0.0)
    seeds: int = param(32, "simulation seeds per P", lo=2)
    fit_max: float = param(0.25, "largest P in the exponent fit, as a fraction of M (finite M "
                           "bends the curve near P = M)", lo=0.0, lo_open=True, hi=1.0)

    def check(self):
        super().check()
        if sum(p <= self.fit_max * self.M for p in self.P_values) < 2:
            raise ValueError(f"fit_max: fewer than 2 of P = {self.P_values} lie in the fit "
                             f"range P <= fit_max * M = {self.fit_max * self.M:g}; raise "
                             "fit_max or n_P, or lower P_min")


def _fit(cfg, ds, quantity: str):
    """Power-law fit of the theory or the simulation's seed mean on P <= fit_max M, weighted by
    the simulation's SE."""
    st = seed_stats(ds["sim_error"])
    y = st.mean if quantity == "sim" else ds["theory_error"]
    return power_fit(ds["P"], y, st.sem, where=ds["P"] <= cfg.fit_max * cfg.M)


@register
class RidgeLearningCurve(Sweep):
    name = "ridge-learning-curve"
    summary = "E_g vs P for ridge regression on a power-law task: theory vs simulation"
    config_type = RidgeCurveConfig
    presets = {"quick": {}, "full": {"M": 2000, "P_max": 2000, "n_P": 12, "seeds": 32}}
    labels = {"P": "training samples $P$", "error": "generalisation error $E_g$"}
    heading = "ridge learning curve, M={M}, a={a}, b={b}, ridge={ridge}"
    notes = ("exponents fitted on P <= fit_max * M = {fit_max} * {M}",)

    def sample(self, cfg, point, key):
        return {"error": linear_ridge_error(key, *cfg.spectrum(), point["P"], cfg.ridge,
                                            noise=cfg.noise, n_seeds=cfg.seeds)}

    def predict(self, cfg, P):
        r = solve(ridge_risk, *cfg.spectrum(), np.asarray(P, float), cfg.ridge, cfg.noise)
        return Prediction({"error": r.error, "bias": r.bias}, {"ridge_risk": r})

    def checks(self, cfg, ds):
        """The decay exponent of the simulation on P <= fit_max M vs min(a-1, 2b)."""
        sim = _fit(cfg, ds, "sim")
        return (Check("sim exponent", sim.exponent, cfg.learning_curve_exponent, 0.1,
                      sim.exponent_stderr),)

    def summarize(self, cfg, ds):
        return {"theory exponent fitted": _fit(cfg, ds, "theory").exponent}, (), True

    def decorate(self, fig, axes, cfg, ds):
        ax = axes[0]
        if cfg.noise > 0:
            ax.plot(ds["P_line"], ds["theory_bias_line"], ":", color="0.4", lw=1, label="bias")
        (sim,), pred, P = self.checks(cfg, ds), cfg.learning_curve_exponent, ds["P_line"].values
        reference_power_law(ax, P, -pred, (P[0], float(ds["theory_error_line"][0])),
                            label=f"$P^{{-{pred:.3g}}}$ predicted; sim fit "
                                  f"${sim.fitted:.3f} \\pm {sim.stderr:.3f}$")
        ax.set_title(f"ridge regression, $M={cfg.M}$, ridge = {cfg.ridge:g}")
