"""Analytic predictions: deterministic equivalents for ridge, kernel and random-feature
regression, the dynamical model of scaling laws, DMFT of feature learning, and scaling-law fits.

Public solvers compute in float64 (inside a ``jax.enable_x64(True)`` scope) and return small
result dataclasses of NumPy float64 arrays.
"""

from ._compute_optimal import ComputeOptimalResult as ComputeOptimalResult
from ._compute_optimal import ScalingExponents as ScalingExponents
from ._compute_optimal import compute_optimal as compute_optimal
from ._compute_optimal import scaling_exponents as scaling_exponents
from ._dmft import dmft as dmft
from ._dmft_common import DMFTConvergenceError as DMFTConvergenceError
from ._dmft_common import DMFTResult as DMFTResult
from ._dmft_deep_linear import dmft_deep_linear as dmft_deep_linear
from ._dmft_two_layer import dmft_two_layer as dmft_two_layer
from ._fits import PowerLawFit as PowerLawFit
from ._fits import fit_power_law as fit_power_law
from ._random_features import random_feature_risk as random_feature_risk
from ._ridge import RidgeRisk as RidgeRisk
from ._ridge import ridge_risk as ridge_risk
from ._scaling_dynamics import ScalingDynamicsResult as ScalingDynamicsResult
from ._scaling_dynamics import scaling_law_dynamics as scaling_law_dynamics
from ._scaling_dynamics_gd import ScalingDynamicsGDResult as ScalingDynamicsGDResult
from ._scaling_dynamics_gd import scaling_law_dynamics_gd as scaling_law_dynamics_gd
from ._spectra import PowerLawSpectrum as PowerLawSpectrum
from ._spectra import power_law_spectrum as power_law_spectrum
