"""``random-feature-grid``: E_g of linear random-feature ridge regression over an N x P grid.

Theory: ``theorysim.theory.random_feature_risk`` (THEORY.md 2; Atanasov, Zavatone-Veth,
Pehlevan 2024, arXiv 2405.00592). Simulation: the model f(x) = v . A psi(x) / sqrt(N) with
A iid Gaussian, ridge on v, on Gaussian features of a power-law task. Panels: the theory and
simulation heat maps of log10 E_g, and the double-descent slice at fixed P across N = P, with
the infinite-ensemble curve for reference.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import xarray as xr

from theorysim.checks import check_scalar
from theorysim.sims import random_feature_ridge_error
from theorysim.theory import random_feature_risk

from .._experiment import Experiment, ExperimentConfig, Report, register
from .._plots import figure, theory_vs_sim
from .._stats import seed_stats, z_scores
from .._tasks import PowerLawGaussian


@dataclasses.dataclass(frozen=True)
class RFGridConfig(ExperimentConfig):
    """Config of ``random-feature-grid``.

    Attributes:
        M, a, b, noise: the :class:`PowerLawGaussian` task (noise = label-noise standard deviation).
        ridge: per-sample ridge on the readout v, >= 0.
        N_min, N_max, P_min, P_max, n_grid: the log-spaced square grid.
        P_slice: P of the double-descent slice; n_slice: N values across it.
        seeds: draws of (A, data) per point.
        z_max: a point agrees when within z_max standard errors.
    """

    M: int = 1000
    a: float = 2.0
    b: float = 1.5
    noise: float = 0.05
    ridge: float = 1e-4
    N_min: int = 16
    N_max: int = 256
    P_min: int = 16
    P_max: int = 256
    n_grid: int = 5
    P_slice: int = 64
    n_slice: int = 7
    seeds: int = 32
    z_max: float = 3.0

    def __post_init__(self):
        PowerLawGaussian(self.M, self.a, self.b, self.noise)
        check_scalar("ridge", self.ridge, lo=0.0)
        for lo, hi in (("N_min", "N_max"), ("P_min", "P_max")):
            check_scalar(lo, getattr(self, lo), lo=1, integer=True)
            check_scalar(hi, getattr(self, hi), lo=getattr(self, lo), integer=True)
        check_scalar("n_grid", self.n_grid, lo=2, integer=True)
        check_scalar("P_slice", self.P_slice, lo=1, integer=True)
        check_scalar("n_slice", self.n_slice, lo=3, integer=True)
        check_scalar("seeds", self.seeds, lo=2, integer=True)
        check_scalar("z_max", self.z_max, lo=0.0, lo_open=True)

    @property
    def task(self) -> PowerLawGaussian:
        return PowerLawGaussian(self.M, self.a, self.b, self.noise)

    def grid(self, lo: int, hi: int) -> list[int]:
        return sorted({int(round(x)) for x in np.geomspace(lo, hi, self.n_grid)})

    @property
    def slice_N(self) -> list[int]:
        lo, hi = self.P_slice / 8, self.P_slice * 8
        return sorted({int(round(x)) for x in np.geomspace(lo, hi, self.n_slice)}
                      | {self.P_slice})


def _sim(cfg: RFGridConfig, key_ints: tuple[int, ...], P: int, N: int) -> np.ndarray:
    eigvals, target_power = cfg.task.spectrum()
    key = jax.random.key(cfg.seed)
    for i in key_ints:
        key = jax.random.fold_in(key, i)
    err = random_feature_ridge_error(key, eigvals, target_power, P, N, cfg.ridge,
                                     noise=cfg.noise, n_seeds=cfg.seeds)
    return np.asarray(err, dtype=np.float64)


@register
class RandomFeatureGrid(Experiment):
    name = "random-feature-grid"
    summary = "random-feature ridge regression over an N x P grid, double descent at N = P"
    config_type = RFGridConfig
    presets = {"quick": {}, "full": {"M": 2000, "N_max": 1024, "P_max": 1024, "n_grid": 9,
                                     "P_slice": 128, "n_slice": 15, "seeds": 64}}

    def points(self, cfg):
        grid = [{"N": n, "P": p} for n in cfg.grid(cfg.N_min, cfg.N_max)
                for p in cfg.grid(cfg.P_min, cfg.P_max)]
        return grid + [{"N_slice": n} for n in cfg.slice_N]

    def simulate(self, cfg, point):
        seeds = np.arange(cfg.seeds)
        if "N_slice" in point:
            n = point["N_slice"]
            err = _sim(cfg, (1, n), cfg.P_slice, n)
            return xr.Dataset({"sim_slice": (("N_slice", "seed"), err[None])},
                              coords={"N_slice": [n], "seed": seeds})
        n, p = point["N"], point["P"]
        err = _sim(cfg, (0, n, p), p, n)
        return xr.Dataset({"sim_grid": (("N", "P", "seed"), err[None, None])},
                          coords={"N": [n], "P": [p], "seed": seeds})

    def theory(self, cfg):
        eigvals, target_power = cfg.task.spectrum()
        N = np.asarray(cfg.grid(cfg.N_min, cfg.N_max), float)[:, None]
        P = np.asarray(cfg.grid(cfg.P_min, cfg.P_max), float)[None, :]
        grid = random_feature_risk(eigvals, target_power, P, N, cfg.ridge, cfg.noise)
        n_line = np.unique(np.concatenate([
            np.geomspace(cfg.P_slice / 8, cfg.P_slice * 8, 300).round(), [cfg.P_slice]]))
        line = random_feature_risk(eigvals, target_power, cfg.P_slice, n_line, cfg.ridge,
                                   cfg.noise)
        inf = random_feature_risk(eigvals, target_power, cfg.P_slice, n_line, cfg.ridge,
                                  cfg.noise, ensemble=math.inf)
        pts = random_feature_risk(eigvals, target_power, cfg.P_slice,
                                  np.asarray(cfg.slice_N, float), cfg.ridge, cfg.noise)
        return xr.Dataset(
            {
                "theory_grid": (("N", "P"), grid.error),
                "theory_slice": ("N_line", line.error),
                "theory_slice_ensemble_inf": ("N_line", inf.error),
                "theory_slice_at_N": ("N_slice", pts.error),
            },
            coords={"N": N[:, 0].astype(int), "P": P[0].astype(int),
                    "N_line": n_line, "N_slice": cfg.slice_N},
        )

    def _z(self, ds):
        g = seed_stats(ds["sim_grid"])
        s = seed_stats(ds["sim_slice"])
        zg = z_scores(ds["theory_grid"].values, g.mean.values, g.sem.values)
        zs = z_scores(ds["theory_slice_at_N"].values, s.mean.values, s.sem.values)
        return g, s, zg, zs

    def report(self, cfg, ds):
        g, s, zg, zs = self._z(ds)
        rows = []
        for i, n in enumerate(ds["N"].values):
            for j, p in enumerate(ds["P"].values):
                rows.append({"N": int(n), "P": int(p), "theory": float(ds["theory_grid"][i, j]),
                             "sim": float(g.mean[i, j]), "sem": float(g.sem[i, j]),
                             "z": float(zg[i, j])})
        for i, n in enumerate(ds["N_slice"].values):
            rows.append({"N": int(n), "P": cfg.P_slice,
                         "theory": float(ds["theory_slice_at_N"][i]), "sim": float(s.mean[i]),
                         "sem": float(s.sem[i]), "z": float(zs[i])})
        z = np.concatenate([zg.ravel(), zs])
        within = float(np.mean(np.abs(z) <= cfg.z_max))
        at = int(np.flatnonzero(ds["N_slice"].values == cfg.P_slice)[0])
        below = ds["N_slice"].values < cfg.P_slice
        dip = float(np.min(s.mean.values[below])) if below.any() else math.nan
        return Report(
            title=f"random-feature ridge regression grid (ridge={cfg.ridge}, noise={cfg.noise})",
            table=tuple(rows),
            metrics={"max |z|": float(np.max(np.abs(z))),
                     f"points within {cfg.z_max} SE": within,
                     "slice: P": cfg.P_slice,
                     "slice: theory E_g at N = P": float(ds["theory_slice_at_N"][at]),
                     "slice: sim E_g at N = P": float(s.mean[at]),
                     "slice: sim E_g(N = P) / min over N < P (peak height)":
                         float(s.mean[at]) / dip},
            notes=(f"{z.size} points; with calibrated errors about {z.size * 0.0027:.2f} are "
                   f"expected beyond 3 SE by chance",),
            passed=bool(np.all(np.abs(z) <= cfg.z_max)),
        )

    def plot(self, cfg, ds):
        g, s, _, _ = self._z(ds)
        fig, axes = figure(3, 1, width=3.3)
        th = np.log10(ds["theory_grid"].values)
        sim = np.log10(g.mean.values)
        vmin, vmax = np.nanmin([th.min(), sim.min()]), np.nanmax([th.max(), sim.max()])
        for ax, data, title in ((axes[0, 0], th, "theory"), (axes[0, 1], sim, "simulation")):
            im = ax.pcolormesh(ds["P"].values, ds["N"].values, data, shading="nearest",
                               vmin=vmin, vmax=vmax, cmap="viridis")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("samples $P$")
            ax.set_ylabel("features $N$")
            ax.set_title(rf"$\log_{{10}} E_g$, {title}")
        fig.colorbar(im, ax=axes[0, :2], shrink=0.8)
        ax = axes[0, 2]
        theory_vs_sim(ax, ds["N_line"], ds["theory_slice"], ds["N_slice"], s, color="C3",
                      label="single model")
        ax.plot(ds["N_line"], ds["theory_slice_ensemble_inf"], "--", color="0.4", lw=1,
                label="ensemble $K=\\infty$")
        ax.axvline(cfg.P_slice, color="0.7", lw=0.8, ls=":")
        ax.set_xlabel("features $N$")
        ax.set_ylabel("$E_g$")
        ax.set_title(f"double descent at $N=P={cfg.P_slice}$")
        ax.legend(loc="lower left")
        return fig
