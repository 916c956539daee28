"""Tasks: a data distribution and a target whose spectrum the theory reads and whose samples the
simulation draws, from one definition (so the two halves of a comparison cannot drift apart).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from theorysim.theory import power_law_spectrum

from ._configio import ExperimentConfig, param

__all__ = ["PGridConfig", "PowerLawConfig", "log_grid"]


def log_grid(lo: float, hi: float, n: int) -> list[int]:
    """``n`` log-spaced integers from ``lo`` to ``hi`` (rounded, duplicates merged).

    >>> log_grid(10, 1000, 5)
    [10, 32, 100, 316, 1000]
    """
    return sorted({int(round(p)) for p in np.geomspace(lo, hi, n)})


@dataclasses.dataclass(frozen=True)
class PowerLawConfig(ExperimentConfig):
    r"""Config fields of the power-law task: Gaussian features
    :math:`\psi \sim N(0, \mathrm{diag}(\lambda))` and a linear target,

    .. math::

        \lambda_k = k^{-b}, \qquad \lambda_k w_k^2 = k^{-a}, \qquad
        y = \sum_k w_k \psi_k + \epsilon, \quad \epsilon \sim N(0, \text{noise}^2).

    Ridgeless, noiseless learning curves decay as ``P^-min(a-1, 2b)`` (Bordelon, Canatar,
    Pehlevan 2020, arXiv 2002.02561). The simulations sample the features from
    :meth:`spectrum` (``theorysim.sims``); the theory reads the same spectrum.

    >>> cfg = PowerLawConfig(M=3, a=2.0, b=1.0)
    >>> cfg.spectrum()[1].round(3).tolist(), cfg.learning_curve_exponent
    ([1.0, 0.25, 0.111], 1.0)
    """

    M: int = param(1000, "number of modes (features)", lo=1, hi=10**7)
    a: float = param(2.0, "target-power exponent: lam_k w_k^2 = k^-a (> 1: finite power)",
                     lo=1.0, lo_open=True)
    b: float = param(1.5, "spectral exponent: lam_k = k^-b", lo=0.0, lo_open=True)
    noise: float = param(0.0, "label-noise standard deviation", lo=0.0)

    def spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """(eigvals, target_power), float64, each of shape (M,)."""
        spec = power_law_spectrum(self.M, self.b, self.a)
        return np.asarray(spec.eigvals), np.asarray(spec.target_power)

    @property
    def learning_curve_exponent(self) -> float:
        """Predicted ridgeless, noiseless decay exponent of E_g(P): min(a - 1, 2b)."""
        return min(self.a - 1.0, 2.0 * self.b)


@dataclasses.dataclass(frozen=True)
class PGridConfig(ExperimentConfig):
    """Config fields of a learning curve: log-spaced training-set sizes and the criterion."""

    P_min: int = param(10, "smallest training set", lo=1)
    P_max: int = param(1000, "largest training set", lo="P_min", hi=10**6)
    n_P: int = param(10, "log-spaced training-set sizes", lo=2, hi=1000)
    z_max: float = param(3.0, "criterion: standard errors allowed per point", lo=0.0,
                         lo_open=True)

    @property
    def P_values(self) -> list[int]:
        return log_grid(self.P_min, self.P_max, self.n_P)

    def check(self):
        if len(self.P_values) < 2:
            raise ValueError(f"n_P: P_min..P_max holds fewer than 2 distinct P "
                             f"({self.P_values}); a learning curve needs 2")
