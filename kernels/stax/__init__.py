r"""neural-tangents' ``stax`` on current JAX: layers as ``(init_fn, apply_fn, kernel_fn)``.

Port neural-tangents code by changing one import::

    from theorysim.kernels import stax          # was: from neural_tangents import stax

Every layer returns ``(init_fn, apply_fn, kernel_fn)``: ``init_fn(key, input_shape) ->
(output_shape, params)`` and ``apply_fn(params, x)`` are a finite network (channel-last inputs
``(N, *S, C)``); ``kernel_fn(x1, x2=None, get=None)`` is its infinite-width NNGP/NTK with
neural-tangents' conventions (input covariance ``x1 x2^T / C``, ``W_std``, ``b_std``,
``parameterization="ntk" | "standard"``). Results are ``jax.Array`` in JAX's default float
dtype: float64 inside ``jax.enable_x64(True)``, float32 otherwise.

Off-diagonal spatial covariances are carried only when a later layer needs them (pooling,
attention); a convolutional network read out by ``Flatten`` keeps only same-position
covariances (neural-tangents' ``diagonal_spatial``, chosen automatically).

Example:
  >>> import jax.numpy as jnp
  >>> from theorysim.kernels import stax
  >>> _, _, kernel_fn = stax.serial(stax.Dense(512, W_std=1.5, b_std=0.1), stax.Relu(),
  ...                               stax.Dense(1, W_std=1.5, b_std=0.1))
  >>> kernel_fn(jnp.ones((3, 4)), get="ntk").shape
  (3, 3)
  >>> _, _, cnn = stax.serial(stax.Conv(8, (3, 3), padding="SAME"), stax.Relu(),
  ...                         stax.GlobalAvgPool(), stax.Dense(1))
  >>> cnn(jnp.ones((2, 4, 4, 3)), get="nngp").shape
  (2, 2)
"""

from ._attention import GlobalSelfAttention as GlobalSelfAttention
from ._combinators import FanInConcat as FanInConcat
from ._combinators import FanInProd as FanInProd
from ._combinators import FanInSum as FanInSum
from ._combinators import FanOut as FanOut
from ._combinators import parallel as parallel
from ._combinators import repeat as repeat
from ._combinators import serial as serial
from ._elementwise import ABRelu as ABRelu
from ._elementwise import Abs as Abs
from ._elementwise import Cos as Cos
from ._elementwise import Elementwise as Elementwise
from ._elementwise import ElementwiseNumerical as ElementwiseNumerical
from ._elementwise import Erf as Erf
from ._elementwise import Exp as Exp
from ._elementwise import ExpNormalized as ExpNormalized
from ._elementwise import Gabor as Gabor
from ._elementwise import Gaussian as Gaussian
from ._elementwise import Gelu as Gelu
from ._elementwise import Hermite as Hermite
from ._elementwise import LeakyRelu as LeakyRelu
from ._elementwise import MaxPool as MaxPool
from ._elementwise import Monomial as Monomial
from ._elementwise import Polynomial as Polynomial
from ._elementwise import Rbf as Rbf
from ._elementwise import RectifiedMonomial as RectifiedMonomial
from ._elementwise import Relu as Relu
from ._elementwise import Sigmoid_like as Sigmoid_like
from ._elementwise import Sign as Sign
from ._elementwise import Sin as Sin
from ._linear import AvgPool as AvgPool
from ._linear import Conv as Conv
from ._linear import Dense as Dense
from ._linear import Dropout as Dropout
from ._linear import Flatten as Flatten
from ._linear import GlobalAvgPool as GlobalAvgPool
from ._linear import GlobalSumPool as GlobalSumPool
from ._linear import Identity as Identity
from ._linear import LayerNorm as LayerNorm
from ._linear import SumPool as SumPool
