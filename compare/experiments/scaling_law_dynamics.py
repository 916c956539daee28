"""``scaling-law-dynamics``: loss curves of random features trained by gradient flow or GD.

Theory: ``theorysim.theory.scaling_law_dynamics`` (THEORY.md 3; Bordelon, Atanasov, Pehlevan
2024, arXiv 2402.01092) and the compute-optimal frontier ``compute_optimal``; with ``lr > 0``
the curves come from the time-domain DMFT of discrete GD, ``scaling_law_dynamics_gd``.
Simulation: the linear random-feature student trained by exact gradient flow or GD (full batch
for finite ``P``, population for ``P = inf``), many draws of ``A`` and of the data per width.
Panels: L vs t for several N (theory lines over simulation bands); L vs compute C = N t with
the theory frontier and its fitted vs predicted exponents; L vs N at the largest time.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from theorysim.sims import random_feature_dynamics
from theorysim.theory import (
    GD_MAX_STEPS,
    compute_optimal,
    scaling_law_dynamics,
    scaling_law_dynamics_gd,
)

from .._compare import Check, Prediction, Sweep, compare, power_fit, solve, theory_checks
from .._configio import param
from .._experiment import register
from .._plots import legend, predicted_slope, theory_vs_sim
from .._tasks import PowerLawConfig


@dataclasses.dataclass(frozen=True)
class ScalingDynamicsConfig(PowerLawConfig):
    """Config of ``scaling-law-dynamics`` (``theorysim show scaling-law-dynamics``)."""

    widths: tuple[int, ...] = param((64, 256, 1024), "simulated widths N", lo=1, hi=2**16)
    P: tuple[float, ...] = param((math.inf,), "training-set sizes (inf: population / online)",
                                 lo=1, hi=2**20, inf_ok=True)
    t_min: float = param(1.0, "first recorded time", lo=0.0, lo_open=True)
    t_max: float = param(1e4, "last recorded time", lo="t_min", lo_open=True, hi=1e9)
    n_t: int = param(9, "log-spaced recorded times", lo=2, hi=1000)
    seeds: int = param(32, "draws of A and data per (N, P)", lo=2, hi=10**5)
    C_min: float = param(1e2, "compute range of the frontier (theory, P = inf): from",
                         lo=0.0, lo_open=True)
    C_max: float = param(1e5, "compute range of the frontier: to (>= 10 C_min for a fit)",
                         lo="C_min", lo_open=True)
    tol_exponent: float = param(0.1, "allowed |fitted - predicted| frontier exponent", lo=0.0,
                                lo_open=True)
    lr: float = param(0.0, "0: gradient flow; > 0: discrete GD with this step (times rounded "
                      "to whole steps)", lo=0.0)

    def check(self):
        if self.C_max < 10 * self.C_min:
            raise ValueError(f"C_max must be at least 10 C_min for the frontier fit, got "
                             f"{self.C_max:g} < 10 * {self.C_min:g}")
        if self.lr > 0 and round(self.t_max / self.lr) > GD_MAX_STEPS:
            raise ValueError(f"t_max / lr must be at most {GD_MAX_STEPS} GD steps, got "
                             f"{self.t_max / self.lr:g} (raise lr or lower t_max)")
        if self.lr > 0 and self.t_min < self.lr:
            raise ValueError(f"t_min must be at least one step lr = {self.lr:g}, got "
                             f"{self.t_min:g}")

    def times(self, n: int) -> np.ndarray:
        """``n`` log-spaced times in [t_min, t_max], whole GD steps when lr > 0."""
        t = np.geomspace(self.t_min, self.t_max, n)
        return self.lr * np.unique(np.round(t / self.lr)) if self.lr > 0 else t


@functools.cache
def _gd(cfg, N: tuple, P: tuple):
    return solve(scaling_law_dynamics_gd, *cfg.spectrum(), np.asarray(P, float),
                 np.asarray(N, float), cfg.lr, int(round(cfg.t_max / cfg.lr)), cfg.noise)


@register
class ScalingLawDynamics(Sweep):
    name = "scaling-law-dynamics"
    summary = "random features trained by gradient flow or GD: L(t), compute frontier, L(N)"
    config_type = ScalingDynamicsConfig
    presets = {
        "quick": {"widths": (32, 128, 512), "M": 600, "seeds": 16, "n_t": 7, "C_max": 3e4},
        "full": {"M": 2000, "widths": (64, 256, 1024), "P": (512.0, math.inf), "n_t": 13,
                 "seeds": 32},
    }
    dims, trailing, compared, line = ("N", "P"), ("t",), ("loss",), "t"
    labels = {"t": "time $t$", "loss": "test loss $L(t)$"}
    panels, panel_width = 3, 3.6
    notes = ("frontier: theory at P = inf over C in [{C_min:g}, {C_max:g}], widths 1..M; "
             "predicted exponents use the single-model width exponent min(a-1, b) (THEORY.md "
             "3 writes min(a-1, 2b), equal when a-1 <= b)",)

    def grid(self, cfg):
        return {"N": list(cfg.widths), "P": list(cfg.P), "t": cfg.times(cfg.n_t)}

    def line_grid(self, cfg, values):
        return cfg.times(64)

    def sample(self, cfg, point, key):
        P = point["P"] if math.isinf(point["P"]) else int(point["P"])
        return {"loss": random_feature_dynamics(key, *cfg.spectrum(), cfg.times(cfg.n_t),
                                                point["N"], P, n_seeds=cfg.seeds,
                                                noise=cfg.noise, lr=cfg.lr or None)}

    def predict(self, cfg, N, P, t):
        if cfg.lr > 0:
            r = _gd(cfg, tuple(N), tuple(P))
            return Prediction({"loss": r.loss[..., np.round(t / cfg.lr).astype(int)]},
                              {"scaling_law_dynamics_gd": r})
        r = solve(scaling_law_dynamics, *cfg.spectrum(), P, N, t, cfg.noise)
        return Prediction({"loss": r.loss}, {"scaling_law_dynamics": r})

    def extras(self, cfg, coords):
        """L vs N at t_max and t -> inf, and the compute-optimal frontier."""
        lam, tp = cfg.spectrum()
        P = np.asarray(cfg.P, float)
        N_line = np.geomspace(min(cfg.widths) / 4, max(cfg.widths) * 4, 48)
        r = solve(scaling_law_dynamics, lam, tp, P, N_line, [cfg.t_max, math.inf], cfg.noise)
        vs_n, solvers = np.array(r.loss), {"scaling_law_dynamics (L vs N)": r}
        if cfg.lr > 0:
            # one vmapped call over all widths; narrow widths can put lr past the stability
            # edge lr_max, where the flagged (throw=False) loss grows geometrically: NaN there
            gd = _gd(cfg, tuple(N_line), tuple(cfg.P))
            end = gd.loss[:, :, -1]
            vs_n[:, :, 0] = np.where((cfg.lr < gd.lr_max) & np.isfinite(end), end, np.nan)
        front = solve(compute_optimal, lam, tp, cfg.C_min, cfg.C_max, N_min=1.0,
                      N_max=float(cfg.M), per_decade=4, a=cfg.a, b=cfg.b, noise=cfg.noise)
        coords.update(N_line=N_line, t_end=[cfg.t_max, math.inf], C=front.C)
        checks = [Check(f"frontier {k} exponent", front.fitted.get(k, np.nan), getattr(
            front.predicted, f"compute_{k}"), cfg.tol_exponent) for k in ("N", "t", "loss")]
        return Prediction({"theory_vs_N": (("N_line", "P", "t_end"), vs_n),
                           "frontier_loss": ("C", front.loss_opt)},
                          {**solvers, "compute_optimal": front},
                          {"predicted_width": front.predicted.width}, checks)

    def title(self, cfg):
        how = f"GD, lr={cfg.lr:g}" if cfg.lr > 0 else "flow"
        return f"scaling-law dynamics ({how}), M={cfg.M}, a={cfg.a}, b={cfg.b}"

    def decorate(self, fig, axes, cfg, ds):
        ax_t, ax_c, ax_n = axes
        ax_t.set_title(self.title(cfg).split(",")[0])
        j = int(np.argmax(ds["P"].values))  # panels 2-3: the largest P
        self.draw(ax_c, cfg, ds, where={"P": ds["P"].values[j]}, x=lambda sel: sel["N"])
        fit = theory_checks(ds)["frontier loss exponent"]
        front = ax_c.plot(ds["C"], ds["frontier_loss"], "k--", lw=1.2,
                          label=(f"frontier (P=∞): fit $C^{{-{fit.fitted:.3f}}}$, "
                                 f"pred. $C^{{-{fit.predicted:.3f}}}$"))
        ax_c.set(xlabel="compute $C = N t$", ylabel="test loss", title="compute-optimal frontier")
        # its N curves are the first panel's (same colours, named in that legend): only the
        # frontier here, inside the empty lower left, so no legend runs into the first one's
        legend(ax_c, handles=front, loc="lower left", bbox_to_anchor=(0.0, 0.0), ncols=1,
               frameon=False)
        N_line, (l_end, l_inf) = ds["N_line"].values, ds["theory_vs_N"].values[:, j].T
        end = compare(ds, "loss").stats.map(lambda a: a[:, j, -1])
        theory_vs_sim(ax_n, N_line, l_end, ds["N"].values, end, label=f"t={cfg.t_max:g}")
        keep = N_line <= cfg.M / 2  # t = inf: the loss vanishes for N >= M at P = inf
        ax_n.plot(N_line[keep], l_inf[keep], ":", color="k", lw=1, label="theory, t=∞")
        small = N_line <= cfg.M / 4
        if small.sum() >= 2:
            fit = Check.exponent("t=∞ exponent", power_fit(N_line, l_inf, where=small),
                                 ds.attrs["predicted_width"], 0.0)
            predicted_slope(ax_n, N_line[small], fit, l_inf[0], var="N")
        ax_n.set(xscale="log", yscale="log", xlabel="width $N$", ylabel="test loss",
                 title=f"L vs N, P={ds['P'].values[j]:g}")
        legend(ax_n)
