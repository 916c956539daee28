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

from .._compare import Check, Prediction, Sweep, seed_mean_fit, solve
from .._configio import param
from .._experiment import register
from .._plots import predicted_slope
from .._tasks import PGridConfig, PowerLawConfig


@dataclasses.dataclass(frozen=True)
class RidgeCurveConfig(PowerLawConfig, PGridConfig):
    """Config of ``ridge-learning-curve`` (``theorysim show ridge-learning-curve``)."""

    ridge: float = param(1e-5, "per-sample ridge (THEORY.md 1 convention)", lo=0.0)
    seeds: int = param(32, "simulation seeds per P", lo=2, hi=10**5)
    fit_max: float = param(0.25, "largest P in the exponent fit, as a fraction of M (finite M "
                           "bends the curve near P = M)", lo=0.0, lo_open=True, hi=1.0)

    def check(self):
        super().check()
        if sum(p <= self.fit_max * self.M for p in self.P_values) < 2:
            raise ValueError(f"fit_max: fewer than 2 of P = {self.P_values} lie in the fit "
                             f"range P <= fit_max * M = {self.fit_max * self.M:g}; raise "
                             "fit_max or n_P, or lower P_min")


@register
class RidgeLearningCurve(Sweep):
    name = "ridge-learning-curve"
    summary = "E_g vs P for ridge regression on a power-law task: theory vs simulation"
    config_type = RidgeCurveConfig
    presets = {"quick": {}, "full": {"M": 2000, "P_max": 2000, "n_P": 12, "seeds": 32}}
    labels = {"P": "training samples $P$", "error": "generalisation error $E_g$"}
    extra_lines = {"bias": "bias"}
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
        fit = seed_mean_fit(ds, "error", "P", where=ds["P"] <= cfg.fit_max * cfg.M)
        return (Check.exponent("sim exponent", fit, cfg.learning_curve_exponent, 0.1),)

    def summarize(self, cfg, ds):
        fit = seed_mean_fit(ds, "error", "P", theory=True, where=ds["P"] <= cfg.fit_max * cfg.M)
        return {"theory exponent fitted": fit.exponent}, (), True

    def decorate(self, fig, axes, cfg, ds):
        predicted_slope(axes[0], ds["P_line"], *self.checks(cfg, ds),
                        float(ds["theory_error_line"][0]))
        axes[0].set_title(f"ridge regression, $M={cfg.M}$, ridge = {cfg.ridge:g}")
