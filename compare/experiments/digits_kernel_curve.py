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

Known finite-size effect, part of the prediction: the deterministic equivalent is exact as P
and the effective dimension grow; for the RBF kernel, whose spectrum decays fast, it
underestimates the error by about 3% at P ~ 40 and 0.3% at P = 1000 (measured with 64 splits;
up to 4.9% at P = 37 with the quick preset's 32 splits, where this bias is 2-4 SE). The
criterion therefore allows the RBF kernel a declared systematic deviation ``rel_max`` (3%) on
top of ``z_max`` standard errors, and the linear kernel none; the report shows the relative
deviation per point, so the trend with P is visible. The training-error prediction of the RBF
kernel is further off (9% at P = 89, measured); for the linear kernel it agrees within 3 SE.

``digits-ntk-curve``: the same with the infinite-width NTK of a depth-2 ReLU network
(``kernels.mlp_kernel``); its finite-P deviation, also declared as ``rel_max``, measured 2.7%
at P = 10 and <= 1% from P = 37 on (32 splits).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from theorysim.sims import kernel_regression_split_errors
from theorysim.theory import ridge_risk

from .._compare import Prediction, Sweep, solve
from .._configio import param
from .._datasets import N_DIGITS, digits_data, digits_gram, digits_spectrum
from .._experiment import register
from .._plots import legend
from .._tasks import PGridConfig


@dataclasses.dataclass(frozen=True)
class DigitsCurveConfig(PGridConfig):
    """Fields shared by the KRR learning-curve experiments on digits."""

    ridge: float = param(1e-3, "per-sample ridge (Gram matrix + P ridge)", lo=0.0, lo_open=True)
    P_max: int = param(1000, "largest training set (< 1797 images)", lo="P_min",
                       hi=N_DIGITS - 1)
    n_P: int = param(8, "log-spaced training-set sizes", lo=2, hi=1000)
    splits: int = param(32, "random draws of the training set per P", lo=2, hi=10**5)
    rel_max: float = param(0.03, "declared systematic relative deviation (the deterministic "
                           "equivalent's finite-P bias; RBF/NTK only)", lo=0.0, hi=1.0)


@dataclasses.dataclass(frozen=True)
class DigitsConfig(DigitsCurveConfig):
    """Config of ``digits-kernel-curve``."""

    rbf_scale: float = param(1.0, "RBF length scale / median pairwise distance", lo=0.0,
                             lo_open=True)


@dataclasses.dataclass(frozen=True)
class DigitsNTKConfig(DigitsCurveConfig):
    """Config of ``digits-ntk-curve``."""

    depth: int = param(2, "hidden layers of the ReLU NTK", lo=0, hi=64)

def held_out_theory(cfg: DigitsCurveConfig, spectrum, P: np.ndarray):
    """Theory for the population, training and held-out errors at P, and the solver result."""
    lam, power = spectrum
    r = solve(ridge_risk, lam, power, np.asarray(P, float), cfg.ridge)
    train = (cfg.ridge / r.kappa) ** 2 * r.error
    frac = 1.0 - (1.0 - 1.0 / lam.shape[0]) ** np.asarray(P, float)
    return {"population": r.error, "train": train,
            "held_out": (r.error - frac * train) / (1.0 - frac)}, r


@register
class DigitsKernelCurve(Sweep):
    name = "digits-kernel-curve"
    summary = "KRR learning curves on scikit-learn digits (RBF, linear): Gram-spectrum theory"
    config_type = DigitsConfig
    presets = {"quick": {}, "full": {"n_P": 12, "splits": 128}}
    kernels: tuple[str, ...] = ("rbf", "linear")
    dims, compared, shown = ("kernel", "P"), ("population",), ("held_out",)
    key_dims = ("P", "kernel")
    line_points = 150
    labels = {"P": "training images $P$", "population": "population squared error"}
    panels, panel_width, colors = 2, 3.6, ("C0", "C3")
    heading = "digits KRR learning curves (ridge={ridge}, {splits} splits)"
    notes = ("theory: ridge_risk on the eigenvalues of K/n of the full set; z, rel. dev.: "
             "population error (iid draws); held_out: held-out error (approximate theory, see "
             "the module docstring)",
             "the deterministic equivalent underestimates the RBF error at small P (3.3% at "
             "P = 37, 0.3% at P = 1000, measured with 64 splits): this declared bias is part "
             "of the RBF prediction; the linear kernel must agree within z_max SE")

    def grid(self, cfg):
        return {"kernel": self.kernels, "P": cfg.P_values}

    def kernel_args(self, cfg) -> dict:
        """The config's kernel parameters (``compare._datasets.gram``)."""
        return {"rbf_scale": cfg.rbf_scale}

    def sample(self, cfg, point, key):
        gram = digits_gram(point["kernel"], **self.kernel_args(cfg))
        return kernel_regression_split_errors(key, gram, digits_data()[1], point["P"],
                                              cfg.ridge, n_splits=cfg.splits)._asdict()

    def predict(self, cfg, kernel, P):
        out = [held_out_theory(cfg, digits_spectrum(k, **self.kernel_args(cfg)), P)
               for k in kernel]
        values = {q: np.stack([v[q] for v, _ in out]) for q in out[0][0]}
        return Prediction(values, {f"ridge_risk ({k})": r for k, (_, r) in
                                   zip(kernel, out, strict=True)})

    def extras(self, cfg, coords):
        return Prediction({"eigvals": (("kernel", "mode"), np.stack(
            [digits_spectrum(k, **self.kernel_args(cfg))[0] for k in self.kernels]))})

    def rel_max(self, cfg):
        return xr.DataArray([0.0 if k == "linear" else cfg.rel_max for k in self.kernels],
                            dims="kernel", coords={"kernel": list(self.kernels)})

    def decorate(self, fig, axes, cfg, ds):
        axes[0].set_title(f"digits: KRR ({', '.join(self.kernels)}), theory vs random "
                          "training sets")
        for c, kernel in zip(self.colors, ds["kernel"].values, strict=False):
            lam = ds["eigvals"].sel(kernel=kernel).values
            lam = lam[lam > 1e-14 * lam.max()]
            axes[1].loglog(np.arange(1, lam.size + 1), lam, color=c, lw=1.2, label=kernel)
        axes[1].set(xlabel="mode $k$", ylabel=r"eigenvalue $\lambda_k$ of $K/n$",
                    title="Gram spectra")
        legend(axes[1], loc="upper right", bbox_to_anchor=(1.0, 1.0))


@register
class DigitsNTKCurve(DigitsKernelCurve):
    name = "digits-ntk-curve"
    summary = "NTK (depth-2 ReLU) KRR learning curve on scikit-learn digits: Gram-spectrum theory"
    config_type = DigitsNTKConfig
    kernels, key_dims = ("ntk",), ("P",)
    heading = "digits NTK (depth {depth} ReLU) KRR, ridge={ridge}"
    notes = ("population error over the whole set with iid draws (as digits-kernel-curve); "
             "theory: ridge_risk on gram_spectrum of the full set; its finite-P deviation "
             "(2.7% at P = 10, <= 1% from P = 37 on, 32 splits) is declared as rel_max",)

    def kernel_args(self, cfg):
        return {"depth": cfg.depth}
