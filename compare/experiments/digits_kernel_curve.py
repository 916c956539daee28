"""``digits-kernel-curve``: kernel regression learning curves on real data (scikit-learn digits).

Theory (Canatar, Bordelon, Pehlevan 2021, arXiv 2006.13198): take the population to be the
whole digits set (n = 1797 images). The kernel operator on it has the eigenvalues of K/n and
the one-hot target has power ``c_k^2 = |U_k^T y|^2 / n`` in eigenvector k; these feed
``ridge_risk``. Simulation: KRR trained on P images drawn iid from the set (with replacement,
as the theory assumes) and tested on the images not drawn (held out), over many random
splits, for an RBF and a linear kernel.

Held-out vs population error: the theory's E_g averages over the whole population, which
includes the drawn images, where the error is the training error E_tr = (ridge/kappa)^2 E_g
(Canatar et al. 2021). The population error (all n images) is therefore what the theory
predicts exactly, and it is the agreement criterion. The held-out error is also reported, with
the prediction (E_g - f E_tr) / (1 - f), f = 1 - (1 - 1/n)^P the expected fraction of images
drawn: this is approximate once P/n is not small (images drawn twice are fit better than the
multiplicity-weighted E_tr says; measured -1.3% at P = 1000). Drawing without replacement
would violate the theory's iid assumption: it shifts the population error at P = 1000 by 3%
(measured), which is why the draws are iid.

Known finite-size effect: the deterministic equivalent is exact as P and the effective
dimension grow; for the RBF kernel, whose spectrum decays fast, it underestimates the error by
about 3% at P ~ 40 and 0.3% at P = 1000 (measured with 64 splits). The report shows the
relative deviation per point, so the trend is visible. The training-error prediction of the
RBF kernel is further off (9% at P = 89, measured); for the linear kernel it agrees within
3 SE.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import xarray as xr

from theorysim.checks import check_scalar
from theorysim.sims import kernel_regression_split_errors
from theorysim.theory import fit_power_law, ridge_risk

from .._experiment import Experiment, ExperimentConfig, Report, register
from .._plots import figure, theory_vs_sim
from .._stats import agreement_rows, seed_stats, z_scores

KERNELS = ("rbf", "linear")
N_DIGITS = 1797  # images in scikit-learn's load_digits


@functools.cache
def digits_data() -> tuple[np.ndarray, np.ndarray]:
    """Digits images scaled to [0, 1] (n, 64), and centred one-hot targets (n, 10)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    X = data.data.astype(np.float64) / 16.0
    Y = np.eye(10)[data.target]
    return X, Y - Y.mean(axis=0)


@functools.cache
def digits_gram(kernel: str, rbf_scale: float) -> np.ndarray:
    """The Gram matrix of the whole digits set (cached)."""
    return gram(kernel, digits_data()[0], rbf_scale)


def gram(kernel: str, X: np.ndarray, rbf_scale: float) -> np.ndarray:
    """Gram matrix of a data set: RBF exp(-|x-x'|^2 / (2 l^2)) with l = rbf_scale times the
    median pairwise distance, or linear (x - mean) . (x' - mean) / d."""
    if kernel == "linear":
        Xc = X - X.mean(axis=0)
        return Xc @ Xc.T / X.shape[1]
    sq = np.sum(X**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)
    ell2 = (rbf_scale**2) * np.median(d2[np.triu_indices_from(d2, k=1)])
    return np.exp(-d2 / (2 * ell2))


@functools.cache
def _spectrum(kernel: str, rbf_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of K/n (clipped at 0) and target powers summed over the 10 outputs."""
    _, Y = digits_data()
    K = digits_gram(kernel, rbf_scale)
    n = K.shape[0]
    lam, U = np.linalg.eigh(K / n)
    power = np.sum((U.T @ Y) ** 2, axis=1) / n
    return np.clip(lam, 0.0, None), power


@dataclasses.dataclass(frozen=True)
class DigitsCurveConfig(ExperimentConfig):
    """Fields shared by the KRR learning-curve experiments on digits.

    Attributes:
        ridge: per-sample ridge (Gram matrix regularised by P * ridge), > 0.
        P_min, P_max, n_P: log-spaced training-set sizes; P_max < 1797.
        splits: random train/held-out splits per P (>= 2).
        z_max: agreement criterion in standard errors.
    """

    ridge: float = 1e-3
    P_min: int = 10
    P_max: int = 1000
    n_P: int = 8
    splits: int = 32
    z_max: float = 3.0

    def __post_init__(self):
        check_scalar("ridge", self.ridge, lo=0.0, lo_open=True)
        check_scalar("P_min", self.P_min, lo=1, integer=True)
        check_scalar("P_max", self.P_max, lo=self.P_min, hi=N_DIGITS - 1, integer=True)
        check_scalar("n_P", self.n_P, lo=2, integer=True)
        check_scalar("splits", self.splits, lo=2, integer=True)
        check_scalar("z_max", self.z_max, lo=0.0, lo_open=True)

    @property
    def P_values(self) -> list[int]:
        return sorted({int(round(p)) for p in np.geomspace(self.P_min, self.P_max, self.n_P)})


@dataclasses.dataclass(frozen=True)
class DigitsConfig(DigitsCurveConfig):
    """Config of ``digits-kernel-curve``: :class:`DigitsCurveConfig` plus ``rbf_scale``, the
    RBF length scale in units of the median pairwise distance."""

    rbf_scale: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check_scalar("rbf_scale", self.rbf_scale, lo=0.0, lo_open=True)


def held_out_theory(cfg: DigitsConfig, kernel: str, P: np.ndarray) -> dict[str, np.ndarray]:
    """Theory for the population error, the training error and the held-out error at P."""
    lam, power = _spectrum(kernel, cfg.rbf_scale)
    n = lam.shape[0]
    r = ridge_risk(lam, power, P, cfg.ridge)
    train = (cfg.ridge / r.kappa) ** 2 * r.error
    frac = 1.0 - (1.0 - 1.0 / n) ** np.asarray(P, float)
    return {"population": r.error, "train": train,
            "held_out": (r.error - frac * train) / (1.0 - frac)}


@register
class DigitsKernelCurve(Experiment):
    name = "digits-kernel-curve"
    summary = "KRR learning curves on scikit-learn digits (RBF, linear): Gram-spectrum theory"
    config_type = DigitsConfig
    presets = {"quick": {}, "full": {"n_P": 12, "splits": 128}}

    def points(self, cfg):
        return [{"kernel": k, "P": p} for k in KERNELS for p in cfg.P_values]

    def simulate(self, cfg, point):
        kernel, P = point["kernel"], point["P"]
        _, Y = digits_data()
        K = digits_gram(kernel, cfg.rbf_scale)
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(cfg.seed), P),
                                 KERNELS.index(kernel))
        errs = kernel_regression_split_errors(key, K, Y, P, cfg.ridge, n_splits=cfg.splits)
        coords = {"P": [P], "split": np.arange(cfg.splits)}
        return xr.Dataset(
            {f"sim_{kernel}_{name}": (("P", "split"), np.asarray(v, np.float64)[None])
             for name, v in errs._asdict().items()},
            coords=coords,
        )

    def theory(self, cfg):
        P_line = np.unique(np.geomspace(cfg.P_min, cfg.P_max, 150).round())
        P_pts = np.asarray(cfg.P_values, float)
        data = {}
        for kernel in KERNELS:
            line = held_out_theory(cfg, kernel, P_line)
            pts = held_out_theory(cfg, kernel, P_pts)
            data[f"theory_{kernel}_held_out"] = ("P_theory", line["held_out"])
            data[f"theory_{kernel}_population"] = ("P_theory", line["population"])
            data[f"theory_{kernel}_held_out_at_P"] = ("P", pts["held_out"])
            data[f"theory_{kernel}_population_at_P"] = ("P", pts["population"])
            data[f"theory_{kernel}_train_at_P"] = ("P", pts["train"])
            lam, _ = _spectrum(kernel, cfg.rbf_scale)
            data[f"eigvals_{kernel}"] = ("mode", lam[::-1])
        return xr.Dataset(data, coords={"P_theory": P_line, "P": cfg.P_values,
                                        "mode": np.arange(N_DIGITS)})

    def report(self, cfg, ds):
        rows, metrics, zs = [], {}, []
        P = ds["P"].values.astype(float)
        for kernel in KERNELS:
            pop = seed_stats(ds[f"sim_{kernel}_population"], dim="split")
            th = ds[f"theory_{kernel}_population_at_P"].values
            held = seed_stats(ds[f"sim_{kernel}_held_out"], dim="split")
            th_held = ds[f"theory_{kernel}_held_out_at_P"].values
            rel = pop.mean.values / th - 1.0
            z_held = z_scores(th_held, held.mean, held.sem)
            r = agreement_rows("P", P.astype(int), th, pop, kernel=np.full(P.size, kernel),
                               rel_dev=rel, held_theory=th_held, held_sim=held.mean.values,
                               held_z=z_held)
            rows += r
            z = np.array([x["z"] for x in r])
            zs.append(z)
            fit = fit_power_law(P, pop.mean.values, pop.sem.values)
            fit_th = fit_power_law(P, th, pop.sem.values)  # same weights as the sim fit
            metrics[f"{kernel}: max |z| population"] = float(np.max(np.abs(z)))
            metrics[f"{kernel}: max |z| held-out"] = float(np.max(np.abs(z_held)))
            metrics[f"{kernel}: max |relative deviation|"] = float(np.max(np.abs(rel)))
            metrics[f"{kernel}: local exponent (sim)"] = fit.exponent
            metrics[f"{kernel}: local exponent (theory)"] = fit_th.exponent
        z = np.concatenate(zs)
        metrics[f"points within {cfg.z_max} SE"] = float(np.mean(np.abs(z) <= cfg.z_max))
        return Report(
            title=f"digits KRR learning curves (ridge={cfg.ridge}, {cfg.splits} splits)",
            table=tuple(rows),
            metrics=metrics,
            notes=("theory: ridge_risk on the eigenvalues of K/n of the full set; z, rel_dev: "
                   "population error; held_*: held-out error (approximate theory, see the "
                   "module docstring)",
                   "the deterministic equivalent has a finite-P bias for the fast-decaying RBF "
                   "spectrum (a few % at P < 200, shrinking with P): with many splits it shows "
                   "as |z| > 3",
                   "exponents are local log-log slopes over the P range, not asymptotic"),
            passed=bool(np.all(np.abs(z) <= cfg.z_max)),
        )

    def plot(self, cfg, ds):
        fig, axes = figure(2, 1, width=3.6)
        ax = axes[0, 0]
        for c, kernel in zip(("C0", "C3"), KERNELS, strict=True):
            stats = seed_stats(ds[f"sim_{kernel}_population"], dim="split")
            theory_vs_sim(ax, ds["P_theory"], ds[f"theory_{kernel}_population"], ds["P"],
                          stats, color=c, label=kernel)
            held = seed_stats(ds[f"sim_{kernel}_held_out"], dim="split")
            ax.plot(ds["P_theory"], ds[f"theory_{kernel}_held_out"], ":", color=c, lw=1)
            ax.plot(ds["P"], held.mean, "x", color=c, ms=4,
                    label=f"{kernel} held-out (dotted: theory)")
        ax.set_xlabel("training images $P$")
        ax.set_ylabel("squared error (population, held-out)")
        ax.set_title("digits: KRR, theory vs splits")
        ax.legend()
        ax = axes[0, 1]
        for c, kernel in zip(("C0", "C3"), KERNELS, strict=True):
            lam = ds[f"eigvals_{kernel}"].values
            lam = lam[lam > 1e-14 * lam.max()]
            ax.loglog(np.arange(1, lam.size + 1), lam, color=c, lw=1.2, label=kernel)
        ax.set_xlabel("mode $k$")
        ax.set_ylabel(r"eigenvalue $\lambda_k$ of $K/n$")
        ax.set_title("Gram spectra")
        ax.legend()
        return fig
