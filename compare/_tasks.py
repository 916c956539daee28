"""Tasks: a data distribution and a target that know both their spectrum and their sampler.

Theory needs the spectrum (eigenvalues lam_k and target powers lam_k w_k^2); simulations need
samples. A task provides both from one definition, so the two halves of a comparison cannot
drift apart.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from theorysim.checks import check_scalar
from theorysim.sims import sample_gaussian_features
from theorysim.theory import power_law_spectrum


@dataclasses.dataclass(frozen=True)
class PowerLawGaussian:
    """Gaussian features psi ~ N(0, diag(lam)) with a power-law spectrum and a linear target.

    .. math::

        \\lambda_k = k^{-b}, \\qquad \\lambda_k w_k^2 = k^{-a}, \\qquad
        y = \\sum_k w_k \\psi_k + \\epsilon, \\quad \\epsilon \\sim N(0, \\text{noise}^2)

    (``noise`` is the label-noise standard deviation sigma, as in ``ridge_risk``.)
    Ridgeless, noiseless learning curves decay as ``P^-min(a-1, 2b)`` (Bordelon, Canatar,
    Pehlevan 2020, arXiv 2002.02561).

    Args:
        M: number of modes (features), >= 1.
        a: target-power exponent, > 1 (so the total target power is finite as M -> inf).
        b: spectral exponent, > 0.
        noise: label-noise standard deviation sigma, >= 0.
    """

    M: int
    a: float
    b: float
    noise: float = 0.0

    def __post_init__(self):
        check_scalar("M", self.M, lo=1, integer=True)
        check_scalar("a", self.a, lo=1.0, lo_open=True)
        check_scalar("b", self.b, lo=0.0, lo_open=True)
        check_scalar("noise", self.noise, lo=0.0)

    def spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """(eigvals, target_power), float64, each of shape (M,)."""
        spec = power_law_spectrum(self.M, self.b, self.a)
        return np.asarray(spec.eigvals), np.asarray(spec.target_power)

    @property
    def learning_curve_exponent(self) -> float:
        """Predicted ridgeless, noiseless decay exponent of E_g(P): min(a - 1, 2b)."""
        return min(self.a - 1.0, 2.0 * self.b)

    @property
    def weights(self) -> np.ndarray:
        """Target weights w_k = sqrt(target_power_k / lam_k) (positive; the sign is irrelevant
        for Gaussian features)."""
        eigvals, target_power = self.spectrum()
        return np.sqrt(target_power / eigvals)

    def sample(self, key: jax.Array, n: int, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
        """Draw ``n`` samples: features (n, M) and noisy labels (n,)."""
        check_scalar("n", n, lo=1, integer=True)
        k_x, k_eps = jax.random.split(key)
        eigvals, _ = self.spectrum()
        psi = sample_gaussian_features(k_x, eigvals, n, dtype=dtype)
        y = psi @ jnp.asarray(self.weights, dtype=dtype)
        eps = jax.random.normal(k_eps, (n,), dtype=dtype)
        return psi, y + jnp.asarray(self.noise, dtype=dtype) * eps
