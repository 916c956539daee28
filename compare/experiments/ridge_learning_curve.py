r"""``ridge-learning-curve``: E_g vs P for linear ridge regression on a power-law task.

Theory: the deterministic equivalent ``theorysim.theory.ridge_risk`` (THEORY.md 1; Bordelon,
Canatar, Pehlevan 2020, arXiv 2002.02561). Simulation: ridge regression on Gaussian features of
the same spectrum, many seeds per P, error measured exactly against the clean target. Reported:
per-P agreement in SE, and the simulation's decay exponent against the theory's, both fitted on
the same P <= fit_max M with the same weights (``Check.fit_vs_theory``).

Why not against the asymptotic min(a - 1, 2b): finite M steepens the curve before P reaches M.
When the target tail sets the error (a - 1 < 2b), ridgeless E_g(P) is about the target power
beyond the learned modes k > k* ~ P, a sum that stops at M:

.. math::

    E_g(P) \approx \sum_{k \gtrsim P}^{M} k^{-a} \approx
    \frac{P^{1-a} - M^{1-a}}{a - 1}, \qquad
    -\frac{d \log E_g}{d \log P} \approx \frac{a - 1}{1 - (P/M)^{a-1}},

so the local exponent exceeds a - 1 by a factor 1/(1 - (P/M)^{a-1}): for a = 1.5, M = 1000 on
the quick grid's P <= M/4 (10 .. 215) it runs from 0.56 to 0.93, and this approximation fits
0.66 there, not 0.5. The deterministic equivalent carries the effect exactly: its fit, weighted
like the simulation's, is 0.646 against the simulation's 0.641 +- 0.008 (seed 0, 32 seeds); on
the same P its unweighted fit is 0.61 at M = 1000, 0.56 at M = 2000 and 0.51 .. 0.48 at
M = 10^4 .. 10^6 (the asymptotic value, up to small-P corrections). So the exponent check
compares like with like, within ``z_max`` SE of the simulation's fit; min(a - 1, 2b) is
reported and drawn as the P << M reference.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from theorysim.sims import linear_ridge_error
from theorysim.theory import ridge_risk

from .._compare import Check, Prediction, Sweep, solve
from .._configio import param
from .._experiment import register
from .._plots import reference_power_law
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
    panel_title = "ridge regression, $M={M}$, ridge = {ridge:g}"
    notes = ("exponents fitted on P <= fit_max * M = {fit_max} * {M}",
             "exponent criterion: the simulation's fit against the theory's at the same M = {M}, "
             "fitted on the same P with the same weights; finite M steepens the curve, so the "
             "asymptotic min(a-1, 2b) = {learning_curve_exponent:g} (P << M) is a reference, "
             "not the prediction")
    reported = {"asymptotic exponent min(a-1, 2b)": "learning_curve_exponent"}

    def sample(self, cfg, point, key):
        return {"error": linear_ridge_error(key, *cfg.spectrum(), point["P"], cfg.ridge,
                                            noise=cfg.noise, n_seeds=cfg.seeds)}

    def predict(self, cfg, P):
        r = solve(ridge_risk, *cfg.spectrum(), np.asarray(P, float), cfg.ridge, cfg.noise)
        return Prediction({"error": r.error, "bias": r.bias}, {"ridge_risk": r})

    def checks(self, cfg, ds):
        """The decay exponent of the simulation on P <= fit_max M against the theory's at the
        same M, same P and weights, within ``z_max`` SE (module docstring: finite M steepens
        both)."""
        return (Check.fit_vs_theory("sim exponent", ds, "error", "P", z_max=cfg.z_max,
                                    where=ds["P"] <= cfg.fit_max * cfg.M),)

    def decorate(self, fig, axes, cfg, ds):
        (check,) = self.checks(cfg, ds)
        x, asym = np.asarray(ds["P_line"], float), cfg.learning_curve_exponent
        reference_power_law(
            axes[0], x, -asym, (x[0], float(ds["theory_error_line"][0])),
            label=f"$P^{{-{asym:.3g}}}$, the $P \\ll M$ asymptote\nfit on $P \\leq "
                  f"{cfg.fit_max:g}M$: sim ${check.fitted:.3f} \\pm {check.stderr:.3f}$,\n"
                  f"theory (same $M$) ${check.predicted:.3f}$")
