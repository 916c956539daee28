"""Infinite-width NNGP/NTK kernels, empirical kernels, kernel spectra and kernel predictions.

Every function here takes arrays and frozen configs and returns arrays or small result
dataclasses; nothing here knows about files, plots or the CLI. ``theorysim.kernels.stax`` is
neural-tangents' layer API (``serial``, ``Dense``, ``Conv``, pooling, attention, ...) on the
same kernel code as :func:`mlp_kernel`.

Dtype rule (neural-tangents' rule): kernel matrices, predictions and Monte-Carlo estimates are
``jax.Array`` computed in JAX's default float dtype: float32, or float64 inside
``jax.enable_x64(True)``. Inputs are converted to that dtype; a float64 request made
explicitly (``dtype=np.float64``) without x64 raises ``ValueError`` instead of silently
returning float32. Empirical kernels are in the dtype of the network's outputs. The spectra
(:func:`sphere_spectrum`, :func:`gaussian_rbf_spectrum`, :func:`gram_spectrum`) and
:func:`max_learning_rate` are host-side NumPy float64 (they feed the float64 theory solvers).
"""

from . import predict as predict  # noqa: E402  (neural-tangents' predict names)
from . import stax as stax  # noqa: E402  (after Kernel: stax builds on it)
from ._activations import Abs as Abs
from ._activations import Activation as Activation
from ._activations import Cos as Cos
from ._activations import Elementwise as Elementwise
from ._activations import Erf as Erf
from ._activations import Gelu as Gelu
from ._activations import Identity as Identity
from ._activations import LeakyRelu as LeakyRelu
from ._activations import Relu as Relu
from ._activations import Sign as Sign
from ._activations import Sin as Sin
from ._activations import Step as Step
from ._analytic import Kernel as Kernel
from ._analytic import MLPKernel as MLPKernel
from ._analytic import mlp_kernel as mlp_kernel
from ._batch import batch as batch
from ._dual import hermite as Hermite
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
