r"""Kernel regression learning curves on a finite population: the data set is the distribution.

Canatar, Bordelon, Pehlevan 2021 (arXiv 2006.13198): take the n points of a data set as the
whole population. The kernel operator on it has the eigenvalues of :math:`K/n` and a target
:math:`y` has power :math:`c_k^2 = |U_k^T y|^2/n` in eigenvector k; ``theory.ridge_risk`` on
them predicts the error of KRR on P points drawn iid (with replacement) from the set, averaged
over the whole population, drawn points included. There the error is the training error
:math:`E_{tr} = (\lambda/\kappa)^2 E_g`, so the prediction for the points not drawn (held out)
is :math:`(E_g - f E_{tr})/(1 - f)`, :math:`f = 1 - (1 - 1/n)^P` the expected fraction drawn
(approximate once P/n is not small: points drawn twice are fit better than the
multiplicity-weighted :math:`E_{tr}` says).

:class:`PopulationCurve` is that comparison as a :class:`~theorysim.compare.Sweep` over
(kernel, P): an experiment on a data set declares its kernels and one ``population`` mapping
(kernel -> Gram matrix, targets, spectrum); the simulation is
``sims.kernel_regression_split_errors`` over ``splits`` random draws, the criterion the
population error, the held-out error shown beside it, the second panel the Gram spectra.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import numpy as np

from theorysim.sims import kernel_regression_split_errors
from theorysim.theory import ridge_risk

from ._compare import Prediction, Sweep, solve
from ._configio import param
from ._plots import spectra
from ._tasks import PGridConfig

__all__ = ["PopulationCurve", "PopulationCurveConfig", "held_out_theory"]


@dataclasses.dataclass(frozen=True)
class PopulationCurveConfig(PGridConfig):
    """Fields of a KRR learning curve on a finite population."""

    ridge: float = param(1e-3, "per-sample ridge (Gram matrix + P ridge)", lo=0.0, lo_open=True)
    n_P: int = param(8, "log-spaced training-set sizes", lo=2, hi=1000)
    splits: int = param(32, "random draws of the training set per P", lo=2, hi=10**5)
    rel_max: float = param(0.03, "declared systematic relative deviation (the deterministic "
                           "equivalent's finite-P bias)", lo=0.0, hi=1.0)


def held_out_theory(cfg: PopulationCurveConfig, spectrum, P: np.ndarray):
    """The population, training and held-out errors at ``P`` (module docstring) from the
    population's ``spectrum = (eigenvalues of K/n, target powers)``, and the solver result.

    >>> lam = 1.0 / np.arange(1, 101) ** 2
    >>> errors, r = held_out_theory(PopulationCurveConfig(ridge=1e-3), (lam, lam), [10, 50])
    >>> bool(np.all(errors["train"] < errors["population"]))
    True
    >>> bool(np.all(errors["population"] < errors["held_out"]))
    True
    """
    lam, power = spectrum
    r = solve(ridge_risk, lam, power, np.asarray(P, float), cfg.ridge)
    train = (cfg.ridge / r.kappa) ** 2 * r.error
    frac = 1.0 - (1.0 - 1.0 / lam.shape[0]) ** np.asarray(P, float)
    return {"population": r.error, "train": train,
            "held_out": (r.error - frac * train) / (1.0 - frac)}, r


class PopulationCurve(Sweep):
    """KRR learning curves of ``kernels`` on a finite population (module docstring).

    Subclasses declare ``kernels``, ``data_name`` (the figure's title) and
    ``population(cfg, kernel)``; the config is a :class:`PopulationCurveConfig`.
    """

    kernels: ClassVar[tuple[str, ...]] = ()
    data_name: ClassVar[str] = "population"
    dims, compared, shown = ("kernel", "P"), ("population",), ("held_out",)
    key_dims = ("P", "kernel")
    line_points = 150
    panels, panel_width, colors = 2, 3.6, ("C0", "C3")

    @abc.abstractmethod
    def population(self, cfg, kernel: str):
        """(Gram matrix (n, n), targets (n, outputs), (eigenvalues of K/n, target powers))."""

    def grid(self, cfg):
        return {"kernel": self.kernels, "P": cfg.P_values}

    def sample(self, cfg, point, key):
        gram, y, _ = self.population(cfg, point["kernel"])
        return kernel_regression_split_errors(key, gram, y, point["P"], cfg.ridge,
                                              n_splits=cfg.splits)._asdict()

    def predict(self, cfg, kernel, P):
        out = {k: held_out_theory(cfg, self.population(cfg, k)[2], P) for k in kernel}
        return Prediction.stack({k: Prediction(v, {"ridge_risk": r}) for k, (v, r) in out.items()})

    def extras(self, cfg, coords):
        return Prediction({"eigvals": (("kernel", "mode"), np.stack(
            [self.population(cfg, k)[2][0] for k in self.kernels]))})

    def decorate(self, fig, axes, cfg, ds):
        axes[0].set_title(f"{self.data_name}: KRR ({', '.join(self.kernels)}), theory vs random "
                          "training sets")
        spectra(axes[1], {k: ds["eigvals"].sel(kernel=k).values for k in ds["kernel"].values},
                self.colors, ylabel=r"eigenvalue $\lambda_k$ of $K/n$", title="Gram spectra")
