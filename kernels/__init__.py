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
