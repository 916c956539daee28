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
import math

import jax
import numpy as np
import xarray as xr

from theorysim.checks import check_scalar
from theorysim.sims import random_feature_dynamics
from theorysim.theory import (
    compute_optimal,
    fit_power_law,
    scaling_law_dynamics,
    scaling_law_dynamics_gd,
)
from theorysim.theory._scaling_dynamics_gd import MAX_STEPS as _MAX_GD_STEPS

from .._experiment import Experiment, ExperimentConfig, Report, register
from .._plots import figure, theory_vs_sim
from .._stats import seed_stats, z_scores
from .._tasks import PowerLawGaussian


@dataclasses.dataclass(frozen=True)
class ScalingDynamicsConfig(ExperimentConfig):
    """Config of ``scaling-law-dynamics``.

    Attributes:
        M, a, b, noise: the :class:`PowerLawGaussian` task (noise: label-noise std).
        widths: simulated widths N.
        P: training-set sizes (``inf``: population / online gradient flow).
        t_min, t_max, n_t: log-spaced times at which the simulations are recorded.
        seeds: draws of A and data per (N, P) (>= 2).
        C_min, C_max: compute range of the frontier (theory, ``P = inf``).
        z_max: agreement criterion: at least 95% of points within ``z_max`` SE, none beyond
            ``z_max + 0.5`` (max over many correlated points).
        tol_exponent: allowed |fitted - predicted| for the frontier exponents.
        lr: 0 for gradient flow; > 0 for discrete GD with this step (recorded times rounded to
            whole steps, at most 4096 steps up to ``t_max``; the compute frontier and the
            ``t = inf`` line stay gradient flow, which GD from ``w = 0`` shares at ``t = inf``).
    """

    M: int = 1000
    a: float = 2.0
    b: float = 1.5
    noise: float = 0.0
    widths: tuple[int, ...] = (64, 256, 1024)
    P: tuple[float, ...] = (math.inf,)
    t_min: float = 1.0
    t_max: float = 1e4
    n_t: int = 9
    seeds: int = 32
    C_min: float = 1e2
    C_max: float = 1e5
    z_max: float = 3.0
    tol_exponent: float = 0.1
    lr: float = 0.0

    def __post_init__(self):
        PowerLawGaussian(self.M, self.a, self.b, self.noise)
        if not self.widths or not self.P:
            raise ValueError("widths and P must be non-empty")
        for n in self.widths:
            check_scalar("widths", n, lo=1, integer=True)
        for p in self.P:
            if not (isinstance(p, float) and math.isinf(p) and p > 0):
                check_scalar("P", p, lo=1, integer=True)
        check_scalar("t_min", self.t_min, lo=0.0, lo_open=True)
        check_scalar("t_max", self.t_max, lo=self.t_min, lo_open=True)
        check_scalar("n_t", self.n_t, lo=2, integer=True)
        check_scalar("seeds", self.seeds, lo=2, integer=True)
        check_scalar("C_min", self.C_min, lo=0.0, lo_open=True)
        check_scalar("C_max", self.C_max, lo=self.C_min, lo_open=True)
        check_scalar("z_max", self.z_max, lo=0.0, lo_open=True)
        check_scalar("tol_exponent", self.tol_exponent, lo=0.0, lo_open=True)
        check_scalar("lr", self.lr, lo=0.0, hi=math.inf, hi_open=True)
        if self.lr > 0 and round(self.t_max / self.lr) > _MAX_GD_STEPS:
            raise ValueError(f"t_max / lr must be at most {_MAX_GD_STEPS} GD steps, got "
                             f"{self.t_max / self.lr:g} (raise lr or lower t_max)")
        if self.lr > 0 and self.t_min < self.lr:
            raise ValueError(f"t_min must be at least one step lr = {self.lr:g}, got "
                             f"{self.t_min:g}")

    @property
    def task(self) -> PowerLawGaussian:
        return PowerLawGaussian(self.M, self.a, self.b, self.noise)

    @property
    def times(self) -> np.ndarray:
        return _grid(self, self.n_t)


def _steps(cfg, n) -> np.ndarray:
    """GD step numbers of ``n`` log-spaced times in [t_min, t_max] (duplicates merged)."""
    return np.unique(np.round(np.geomspace(cfg.t_min, cfg.t_max, n) / cfg.lr).astype(int))


def _grid(cfg, n) -> np.ndarray:
    if cfg.lr > 0:
        return cfg.lr * _steps(cfg, n)
    return np.geomspace(cfg.t_min, cfg.t_max, n)


def _p_value(p):
    return math.inf if math.isinf(p) else int(p)


@register
class ScalingLawDynamics(Experiment):
    name = "scaling-law-dynamics"
    summary = "random features trained by gradient flow or GD: L(t), compute frontier, L(N)"
    config_type = ScalingDynamicsConfig
    presets = {
        "quick": {"widths": (32, 128, 512), "M": 600, "seeds": 16, "n_t": 7, "C_max": 3e4},
        "full": {"M": 2000, "widths": (64, 256, 1024), "P": (512.0, math.inf), "n_t": 13,
                 "seeds": 32},
    }

    def points(self, cfg):
        return [{"N": int(n), "P": float(p)} for n in cfg.widths for p in cfg.P]

    def simulate(self, cfg, point):
        eigvals, target_power = cfg.task.spectrum()
        key = jax.random.fold_in(jax.random.key(cfg.seed), point["N"])
        key = jax.random.fold_in(key, 0 if math.isinf(point["P"]) else int(point["P"]))
        loss = random_feature_dynamics(key, eigvals, target_power, cfg.times, point["N"],
                                       _p_value(point["P"]), n_seeds=cfg.seeds,
                                       noise=cfg.noise, lr=cfg.lr or None)
        return xr.Dataset(
            {"sim_loss": (("N", "P", "seed", "t"),
                          np.asarray(loss, dtype=np.float64)[None, None])},
            coords={"N": [point["N"]], "P": [point["P"]], "seed": np.arange(cfg.seeds),
                    "t": cfg.times},
        )

    def theory(self, cfg):
        eigvals, target_power = cfg.task.spectrum()
        P = np.asarray(cfg.P, dtype=np.float64)
        N = np.asarray(cfg.widths, dtype=np.float64)
        t_line = _grid(cfg, 64)
        if cfg.lr > 0:
            n_max = int(round(cfg.t_max / cfg.lr))
            gd = scaling_law_dynamics_gd(eigvals, target_power, cfg.lr, n_max, N, P, cfg.noise)
            lines_loss = gd.loss[..., _steps(cfg, 64)]
            at_loss = gd.loss[..., _steps(cfg, cfg.n_t)]
            N_line = np.geomspace(min(cfg.widths) / 4, max(cfg.widths) * 4, 12)
            vs_n = np.array(scaling_law_dynamics(eigvals, target_power, [cfg.t_max, 1e12],
                                                 N_line, P, cfg.noise).loss)
            for i, n in enumerate(N_line):  # narrow widths can put lr past the stability edge
                try:
                    vs_n[i, :, 0] = scaling_law_dynamics_gd(
                        eigvals, target_power, cfg.lr, n_max, n, P, cfg.noise).loss[0, :, -1]
                except FloatingPointError:
                    vs_n[i, :, 0] = np.nan
        else:
            lines_loss = scaling_law_dynamics(eigvals, target_power, t_line, N, P,
                                              cfg.noise).loss
            at_loss = scaling_law_dynamics(eigvals, target_power, cfg.times, N, P,
                                           cfg.noise).loss
            N_line = np.geomspace(min(cfg.widths) / 4, max(cfg.widths) * 4, 48)
            vs_n = scaling_law_dynamics(eigvals, target_power, [cfg.t_max, 1e12], N_line, P,
                                        cfg.noise).loss
        front = compute_optimal(eigvals, target_power, cfg.C_min, cfg.C_max, N_min=1.0,
                                N_max=float(cfg.M), per_decade=4, a=cfg.a, b=cfg.b,
                                noise=cfg.noise)
        pred = front.predicted
        return xr.Dataset(
            {
                "theory_loss": (("N", "P", "t_theory"), lines_loss),
                "theory_at": (("N", "P", "t"), at_loss),
                "theory_vs_N": (("N_theory", "P", "t_end"), vs_n),
                "frontier_loss": ("C", front.loss_opt),
                "frontier_N": ("C", front.N_opt),
                "frontier_t": ("C", front.t_opt),
            },
            coords={"N": list(cfg.widths), "P": list(cfg.P), "t_theory": t_line, "t": cfg.times,
                    "N_theory": N_line, "t_end": [cfg.t_max, 1e12], "C": front.C},
            attrs={
                "fitted_compute_N": front.fitted.get("N", np.nan),
                "fitted_compute_t": front.fitted.get("t", np.nan),
                "fitted_compute_loss": front.fitted.get("loss", np.nan),
                "predicted_compute_N": pred.compute_N,
                "predicted_compute_t": pred.compute_t,
                "predicted_compute_loss": pred.compute_loss,
                "predicted_width": pred.width,
                "predicted_time": pred.time,
            },
        )

    def report(self, cfg, ds):
        stats = seed_stats(ds["sim_loss"])
        z = z_scores(ds["theory_at"].values, stats.mean.values, stats.sem.values)
        rows = []
        for i, n in enumerate(ds["N"].values):
            for j, p in enumerate(ds["P"].values):
                for k, t in enumerate(ds["t"].values):
                    rows.append({"N": int(n), "P": float(p), "t": float(t),
                                 "theory": float(ds["theory_at"].values[i, j, k]),
                                 "sim": float(stats.mean.values[i, j, k]),
                                 "sem": float(stats.sem.values[i, j, k]),
                                 "z": float(z[i, j, k])})
        a = ds.attrs
        within = float(np.mean(np.abs(z) <= cfg.z_max))
        exp_ok = all(abs(a[f"fitted_compute_{k}"] - a[f"predicted_compute_{k}"])
                     <= cfg.tol_exponent for k in ("N", "t", "loss"))
        passed = bool(within >= 0.95 and np.all(np.abs(z) < cfg.z_max + 0.5) and exp_ok)
        metrics = {
            "max |z|": float(np.max(np.abs(z))),
            f"points within {cfg.z_max} SE": within,
        }
        for k in ("N", "t", "loss"):
            metrics[f"frontier {k} exponent fitted"] = float(a[f"fitted_compute_{k}"])
            metrics[f"frontier {k} exponent predicted"] = float(a[f"predicted_compute_{k}"])
        return Report(
            title=(f"scaling-law dynamics ({f'GD, lr={cfg.lr:g}' if cfg.lr > 0 else 'flow'}), "
                   f"M={cfg.M}, a={cfg.a}, b={cfg.b}"),
            table=tuple(rows),
            metrics=metrics,
            notes=(
                "frontier: theory at P = inf over C in "
                f"[{cfg.C_min:g}, {cfg.C_max:g}], widths 1..M; predicted exponents use the "
                "single-model width exponent min(a-1, b) (THEORY.md 3 writes min(a-1, 2b), "
                "equal when a-1 <= b)",
                f"criterion: >= 95% of points within {cfg.z_max} SE, none beyond "
                f"{cfg.z_max + 0.5}, frontier exponents within {cfg.tol_exponent}",
            ),
            passed=passed,
        )

    def plot(self, cfg, ds):
        stats = seed_stats(ds["sim_loss"])
        fig, axes = figure(3, 1, width=3.6)
        ax_t, ax_c, ax_n = axes[0]
        P_vals = ds["P"].values
        j = int(np.argmax(P_vals))                        # panels 2-3: the largest P
        for i, n in enumerate(ds["N"].values):
            for jj, p in enumerate(P_vals):
                st = type(stats)(stats.mean[i, jj], stats.sem[i, jj], stats.lo[i, jj],
                                 stats.hi[i, jj], stats.n)
                label = f"N={n}" + ("" if len(P_vals) == 1 else f", P={p:g}")
                theory_vs_sim(ax_t, ds["t_theory"], ds["theory_loss"].values[i, jj],
                              ds["t"], st, color=f"C{i + len(ds['N']) * jj}", label=label)
                if jj == j:
                    theory_vs_sim(ax_c, n * ds["t_theory"].values,
                                  ds["theory_loss"].values[i, jj], n * ds["t"].values, st,
                                  color=f"C{i}", label=f"N={n}")
        ax_t.set_xlabel("time $t$")
        ax_t.set_ylabel("test loss $L(t)$")
        how = f"GD, lr={cfg.lr:g}" if cfg.lr > 0 else "gradient flow"
        ax_t.set_title(f"{how}, $M={cfg.M}$, $a={cfg.a}$, $b={cfg.b}$")
        ax_t.legend(fontsize=6)
        a = ds.attrs
        ax_c.plot(ds["C"], ds["frontier_loss"], "k--", lw=1.2,
                  label=(f"frontier (P=inf): fit $C^{{-{a['fitted_compute_loss']:.3f}}}$, "
                         f"pred. $C^{{-{a['predicted_compute_loss']:.3f}}}$"))
        ax_c.set_xlabel("compute $C = N t$")
        ax_c.set_ylabel("test loss")
        ax_c.set_title("compute-optimal frontier")
        ax_c.legend(fontsize=6)
        # L vs N at the largest time (and t -> inf), theory lines, sims at t_max
        N_line = ds["N_theory"].values
        ax_n.plot(N_line, ds["theory_vs_N"].values[:, j, 0], "-", color="C0",
                  label=f"theory, t={cfg.t_max:g}")
        # t = inf: the loss vanishes for N >= M at P = inf; draw it where it is resolved
        l_inf = ds["theory_vs_N"].values[:, j, 1]
        keep = N_line <= cfg.M / 2
        ax_n.plot(N_line[keep], l_inf[keep], ":", color="k", lw=1, label="theory, t=inf")
        small = N_line <= cfg.M / 4
        if small.sum() >= 2:
            fit = fit_power_law(N_line[small], l_inf[small])
            ax_n.plot([], [], " ", label=f"t=inf fit $N^{{-{fit.exponent:.2f}}}$, pred. "
                                         f"$N^{{-{a['predicted_width']:.2f}}}$")
        ax_n.errorbar(ds["N"].values, stats.mean.values[:, j, -1],
                      yerr=stats.sem.values[:, j, -1], fmt="o", ms=3.5, color="C0", mfc="white",
                      label=f"sim, t={cfg.t_max:g}")
        ax_n.set_xscale("log")
        ax_n.set_yscale("log")
        ax_n.set_xlabel("width $N$")
        ax_n.set_ylabel("test loss")
        ax_n.set_title(f"L vs N, P={P_vals[j]:g}")
        ax_n.legend(fontsize=6)
        return fig
