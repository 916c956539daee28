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

from .._compare import Prediction, Sweep, power_fit, solve
from .._configio import param
from .._experiment import register
from .._plots import legend, reference_power_law
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


@register
class RidgeLearningCurve(Sweep):
    name = "ridge-learning-curve"
    summary = "E_g vs P for ridge regression on a power-law task: theory vs simulation"
    config_type = RidgeCurveConfig
    presets = {"quick": {}, "full": {"M": 2000, "P_max": 2000, "n_P": 12, "seeds": 32}}
    labels = {"P": "training samples $P$", "error": "generalisation error $E_g$"}

    def grid(self, cfg):
        return {"P": cfg.P_values}

    def sample(self, cfg, point, key):
        eigvals, target_power = cfg.spectrum()
        return {"error": linear_ridge_error(key, eigvals, target_power, point["P"], cfg.ridge,
                                            noise=cfg.noise, n_seeds=cfg.seeds)}

    def predict(self, cfg, P):
        r = solve(ridge_risk, *cfg.spectrum(), np.asarray(P, float), cfg.ridge,
                  cfg.noise)
        return Prediction({"error": r.error, "bias": r.bias}, {"ridge_risk": r})

    def title(self, cfg):
        return f"ridge learning curve, M={cfg.M}, a={cfg.a}, b={cfg.b}, ridge={cfg.ridge}"

    def fits(self, cfg, ds) -> tuple[float, float, float]:
        """Fitted exponents of theory and simulation on P <= fit_max M, and the sim's SE."""
        st = seed_stats(ds["sim_error"])
        P, sel = ds["P"].values, ds["P"].values <= cfg.fit_max * cfg.M
        th = power_fit(P, ds["theory_error"].values, st.sem.values, where=sel)
        sim = power_fit(P, st.mean.values, st.sem.values, where=sel)
        return th.exponent, sim.exponent, sim.exponent_stderr

    def summarize(self, cfg, ds):
        th, sim, sim_se = self.fits(cfg, ds)
        pred = cfg.learning_curve_exponent
        metrics = {"exponent predicted min(a-1,2b)": pred, "exponent fitted (theory)": th,
                   "exponent fitted (sim)": sim, "exponent fitted (sim) stderr": sim_se}
        return metrics, (f"exponents fitted on P <= {cfg.fit_max} M = "
                         f"{cfg.fit_max * cfg.M:g}",), abs(sim - pred) <= 0.1

    def criterion(self, cfg):
        return f"{super().criterion(cfg)} and |sim exponent - min(a-1,2b)| <= 0.1"

    def plot(self, cfg, ds):
        fig = super().plot(cfg, ds)
        ax = fig.axes[0]
        if cfg.noise > 0:
            ax.plot(ds["P_line"], ds["theory_bias_line"], ":", color="0.4", lw=1, label="bias")
        _, sim, sim_se = self.fits(cfg, ds)
        pred = cfg.learning_curve_exponent
        P = ds["P_line"].values
        reference_power_law(ax, P, -pred, (P[0], float(ds["theory_error_line"][0])),
                            label=f"$P^{{-{pred:.3g}}}$ predicted; sim fit "
                                  f"${sim:.3f} \\pm {sim_se:.3f}$")
        ax.set_title(f"ridge regression, $M={cfg.M}$, ridge = {cfg.ridge:g}")
        legend(ax)
        return fig
