"""Analytic predictions: deterministic equivalents for ridge, kernel and random-feature
regression, the dynamical model of scaling laws, DMFT of feature learning, and scaling-law fits.

Public solvers compute in float64 (inside a ``jax.enable_x64(True)`` scope) and return small
result dataclasses of NumPy float64 arrays.

Conventions shared by the ridge / random-feature / scaling-law family
---------------------------------------------------------------------
- Argument order: the spectrum first (``eigvals, target_power``), then the sizes (``P``, then
  ``N``), then regularisation or time (``ridge``; ``t``; ``lr, n_steps``), then ``noise`` and
  keyword-only options (``tol``, ``max_iter``, ``throw``, ...).
- Time grid: every dynamics result carries the times it was evaluated at as ``result.t``, and
  the last axis of ``result.loss`` runs along it. :func:`scaling_law_dynamics` (gradient flow)
  evaluates at the given strictly increasing ``t > 0``; :func:`scaling_law_dynamics_gd`
  (discrete GD) at every step ``n = 0..n_steps`` (``result.steps``), reported as the
  gradient-flow time ``t = lr * n`` it approximates (so ``result.t[0] = 0``).
- Solver contract (:mod:`theorysim.contract`): every result has ``converged``, ``residual``
  (worst over the grid) and ``iterations`` (most over the grid); per-point diagnostics are
  ``point_residual`` / ``point_iterations``. ``tol`` is the tolerance the solver iterates to
  and the one that decides ``converged``; ``max_iter`` caps the iterations; ``throw=True``
  raises :class:`theorysim.ConvergenceError`, ``throw=False`` returns the flagged result.
"""

from ._compute_optimal import ComputeOptimalResult as ComputeOptimalResult
from ._compute_optimal import compute_optimal as compute_optimal
from ._dmft import dmft as dmft
from ._dmft_common import DMFTResult as DMFTResult
from ._dmft_deep_linear import dmft_deep_linear as dmft_deep_linear
from ._dmft_finite import FiniteWidthResult as FiniteWidthResult
from ._dmft_finite import check_finite_width as check_finite_width
from ._dmft_finite import dmft_two_layer_finite_width as dmft_two_layer_finite_width
from ._dmft_kink import sliding_ntk as sliding_ntk
from ._dmft_two_layer import dmft_two_layer as dmft_two_layer
from ._fits import PowerLawFit as PowerLawFit
from ._fits import fit_power_law as fit_power_law
from ._random_features import random_feature_risk as random_feature_risk
from ._ridge import RidgeRisk as RidgeRisk
from ._ridge import ridge_risk as ridge_risk
from ._scaling_dynamics import ScalingDynamicsResult as ScalingDynamicsResult
from ._scaling_dynamics import scaling_law_dynamics as scaling_law_dynamics
from ._scaling_dynamics_gd import MAX_STEPS as GD_MAX_STEPS
from ._scaling_dynamics_gd import ScalingDynamicsGDResult as ScalingDynamicsGDResult
from ._scaling_dynamics_gd import scaling_law_dynamics_gd as scaling_law_dynamics_gd
from ._spectra import PowerLawSpectrum as PowerLawSpectrum
from ._spectra import ScalingExponents as ScalingExponents
from ._spectra import power_law_spectrum as power_law_spectrum
from ._spectra import scaling_exponents as scaling_exponents
