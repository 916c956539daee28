"""Infinite-width NNGP/NTK kernels, empirical kernels, kernel spectra and kernel predictions.

Every function here takes arrays and frozen configs and returns arrays or small result
dataclasses; nothing here knows about files, plots or the CLI.
"""

from ._activations import Abs as Abs
from ._activations import Activation as Activation
from ._activations import Cos as Cos
from ._activations import Elementwise as Elementwise
from ._activations import Erf as Erf
from ._activations import Gelu as Gelu
from ._activations import Hermite as Hermite
from ._activations import Identity as Identity
from ._activations import LeakyRelu as LeakyRelu
from ._activations import Relu as Relu
from ._activations import Sign as Sign
from ._activations import Sin as Sin
from ._activations import Step as Step
from ._analytic import Kernel as Kernel
from ._analytic import MLPKernel as MLPKernel
from ._analytic import mlp_kernel as mlp_kernel
from ._empirical import MonteCarloKernel as MonteCarloKernel
from ._empirical import empirical_nngp as empirical_nngp
from ._empirical import empirical_ntk as empirical_ntk
from ._empirical import monte_carlo_kernel as monte_carlo_kernel
from ._mlp import DenseMLP as DenseMLP
from ._predict import Posterior as Posterior
from ._predict import Prediction as Prediction
from ._predict import gp_inference as gp_inference
from ._predict import gradient_descent_mse as gradient_descent_mse
from ._predict import gradient_descent_mse_ensemble as gradient_descent_mse_ensemble
from ._predict import kernel_ridge as kernel_ridge
from ._predict import max_learning_rate as max_learning_rate
from ._spectra import DegreeSpectrum as DegreeSpectrum
from ._spectra import GramSpectrum as GramSpectrum
from ._spectra import gaussian_rbf_spectrum as gaussian_rbf_spectrum
from ._spectra import gram_spectrum as gram_spectrum
from ._spectra import sphere_spectrum as sphere_spectrum
