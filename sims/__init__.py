"""Finite-width simulations: parameterised networks, the one training engine, observables,
ensembles and sharding. Float32 by default; float64 on request (with x64 enabled).
"""

from ._adapt import activation_updates as activation_updates
from ._adapt import with_params as with_params
from ._cnn import CNN as CNN
from ._cnn import CNNConfig as CNNConfig
from ._config import EnsembleSpec as EnsembleSpec
from ._config import TrainConfig as TrainConfig
from ._engine import train as train
from ._krr import kernel_regression_split_errors as kernel_regression_split_errors
from ._linear import linear_ridge_error as linear_ridge_error
from ._linear import random_feature_ridge_error as random_feature_ridge_error
from ._linear import sample_gaussian_features as sample_gaussian_features
from ._models import MLP as MLP
from ._models import ResidualMLP as ResidualMLP
from ._models import make_model as make_model
from ._param import ModelConfig as ModelConfig
from ._param import layer_scale as layer_scale
from ._precision import check_dtype as check_dtype
from ._result import TrainResult as TrainResult
from ._rf_dynamics import random_feature_dynamics as random_feature_dynamics
from ._rf_dynamics import random_feature_online_sgd as random_feature_online_sgd
from ._sampler import Sampler as Sampler
from ._transformer import Transformer as Transformer
from ._transformer import TransformerConfig as TransformerConfig
from ._transformer import attention_logit_scale as attention_logit_scale
