"""``myrtle-digits``: kernel regression with a Myrtle-style CNN NTK on scikit-learn digits.

Kernel: the infinite-width NTK (``kernels.stax``) of a Myrtle CNN (Shankar et al. 2020,
arXiv 2003.02237: 3x3 convolutions + ReLU, average pooling, one readout), here Myrtle-5 for
8x8x1 images: [conv, relu] x 2, pool 2, conv, relu, pool 2, conv, relu, global pool, dense;
against the NTK of a depth-3 ReLU MLP on the same 64 pixels. The population is a fixed random
subset of ``n_pop`` digits images (pixels standardised); each Gram matrix is normalised to unit
mean diagonal, so that one ridge serves both.

Theory and simulation as in ``digits-kernel-curve`` (Canatar, Bordelon, Pehlevan 2021, arXiv
2006.13198): ``ridge_risk`` on the eigenvalues of K/n_pop and the target powers
``|U_k^T y|^2 / n_pop``, against KRR on P images drawn iid from the population, error over
the whole population. The deterministic equivalent is exact only as P and the effective
dimension grow. Criterion: the Myrtle NTK curve only, with no declared deviation (``rel_max`` =
0): measured with the quick preset (24 splits) within +1.0% of the theory at every P, |z| <=
0.7 (with a smaller population, n_pop = 300, the Myrtle curve is +2.9% above the theory at P =
75 = n_pop / 4, z 3.0: measured, not explained here). The MLP NTK curve is drawn and tabulated
as a labelled reference, outside the criterion: KRR on the population lies above the theory
(+9.7% at P = 66, +6.9% at P = 125, z 4.5 and 7.6; n_pop = 500, 24 splits). That gap is not the
deterministic equivalent's finite-P bias: KRR on Gaussian features with the MLP's spectrum,
target powers, P and ridge (400 draws) is within +1.1% (P = 20) and +0.6% (P = 40) of the
theory, while KRR on the population is +1.9 +- 0.5% and +3.8 +- 0.4% above it (400 splits). It
comes from the non-Gaussian eigenfunctions of the MLP NTK on the finite population (the
theory's Gaussian-equivalence assumption fails); no correction for it is derived here, so it is
not part of any pass/fail test. P_max is kept <= n_pop / 4.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import xarray as xr

from theorysim import kernels as K
from theorysim.kernels import stax
from theorysim.sims import kernel_regression_split_errors

from .._compare import Prediction
from .._configio import param
from .._datasets import N_DIGITS, digits_data
from .._experiment import register
from .digits_kernel_curve import DigitsCurveConfig, DigitsKernelCurve, held_out_theory


@dataclasses.dataclass(frozen=True)
class MyrtleDigitsConfig(DigitsCurveConfig):
    """Config of ``myrtle-digits``."""

    n_pop: int = param(600, "population: digits images drawn once (kernel cost ~ n_pop^2)",
                       lo=20, hi=N_DIGITS)
    P_max: int = param(400, "largest training set (< n_pop)", lo="P_min", hi="n_pop",
                       hi_open=True)
    rel_max: float = param(0.0, "declared systematic relative deviation of the Myrtle NTK "
                           "curve (0: none; the MLP curve is a reference outside the criterion)",
                           lo=0.0, hi=1.0)


def myrtle5():
    """Myrtle-5 for 8x8 inputs (stax triple; the kernel does not depend on the widths)."""
    def block():
        return stax.serial(stax.Conv(64, (3, 3), padding="SAME", W_std=2**0.5), stax.Relu())
    pool = stax.AvgPool((2, 2), (2, 2))
    return stax.serial(block(), block(), pool, block(), pool, block(), stax.GlobalAvgPool(),
                       stax.Dense(1))


@functools.cache
def population(kernel: str, n_pop: int, seed: int):
    """Normalised Gram matrix (n_pop, n_pop), centred one-hot targets, (eigvals, powers)."""
    X, Y = digits_data()
    idx = np.sort(np.random.default_rng(seed).choice(N_DIGITS, n_pop, replace=False))
    x, y = (X[idx] - X[idx].mean()) / X[idx].std(), Y[idx] - Y[idx].mean(axis=0)
    with jax.enable_x64(True):
        if kernel == "myrtle":       # tiled over example pairs by kernel_fn itself
            gram = myrtle5()[2](x.reshape(-1, 8, 8, 1), get="ntk")
        else:
            gram = K.mlp_kernel(3, "relu", 2**0.5, 0.0)(x, get="ntk").ntk
    gram = np.asarray(gram, np.float64)
    gram = gram / np.mean(np.diag(gram))
    spec = K.gram_spectrum(gram, y)
    return gram, y, (spec.eigvals, spec.target_power)


@register
class MyrtleDigits(DigitsKernelCurve):
    name = "myrtle-digits"
    summary = "KRR with the Myrtle-5 CNN NTK vs the MLP NTK on digits: Gram-spectrum theory"
    config_type = MyrtleDigitsConfig
    presets = {"quick": {"n_pop": 500, "P_max": 125, "n_P": 5, "splits": 24},
               "full": {"n_pop": 1792, "P_max": 448, "n_P": 8, "splits": 64}}
    kernels = ("myrtle", "mlp")
    heading = ("digits ({n_pop} images): Myrtle-5 CNN NTK vs depth-3 MLP NTK, KRR "
               "(ridge={ridge}, {splits} splits)")
    notes = ("theory: ridge_risk on gram_spectrum of the population (Gram matrices with unit "
             "mean diagonal); z, rel. dev.: population error (iid draws)",
             "criterion: the Myrtle NTK rows only; the MLP NTK rows are a reference outside "
             "it: KRR on the population lies above the theory (measured +9.7% at P = 66, n_pop "
             "= 500) because the MLP NTK's eigenfunctions on the digits are not Gaussian; KRR "
             "on Gaussian features with the same spectrum is within +1.1% (P = 20) and +0.6% "
             "(P = 40) of it (400 draws), so this is not the finite-P bias (module docstring)")
    reference = "mlp"

    def rel_max(self, cfg):
        return xr.DataArray([cfg.rel_max if k != self.reference else 0.0 for k in self.kernels],
                            dims="kernel", coords={"kernel": list(self.kernels)})

    def comparisons(self, cfg, ds):
        """As :meth:`Sweep.comparisons`, with the reference kernel's values taken out of the
        criterion (z and excess undefined there)."""
        comps = super().comparisons(cfg, ds)
        keep = ds["kernel"] != self.reference
        return {q: dataclasses.replace(c, z=c.z.where(keep), excess=c.excess.where(keep))
                if q in self.compared else c for q, c in comps.items()}

    def rows(self, cfg, ds, comps):
        """The table with every kernel's z and relative deviation (the reference's too)."""
        return super().rows(cfg, ds, super().comparisons(cfg, ds))

    def criterion(self, cfg):
        return (f"{super().criterion(cfg)}; kernel={self.reference} is a reference shown "
                "outside the criterion (non-Gaussian eigenfunctions: see the notes)")

    def sample(self, cfg, point, key):
        gram, y, _ = population(point["kernel"], cfg.n_pop, cfg.seed)
        return kernel_regression_split_errors(key, gram, y, point["P"], cfg.ridge,
                                              n_splits=cfg.splits)._asdict()

    def predict(self, cfg, kernel, P):
        out = [held_out_theory(cfg, population(k, cfg.n_pop, cfg.seed)[2], P) for k in kernel]
        return Prediction({q: np.stack([v[q] for v, _ in out]) for q in out[0][0]},
                          {f"ridge_risk ({k})": r for k, (_, r) in zip(kernel, out,
                                                                       strict=True)})

    def extras(self, cfg, coords):
        return Prediction({"eigvals": (("kernel", "mode"), np.stack(
            [population(k, cfg.n_pop, cfg.seed)[2][0] for k in self.kernels]))})
