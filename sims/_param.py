r"""abc-parameterisations of fully-connected networks: the presets and the model config.

Every weight layer ``l`` with fan-in :math:`n` computes

.. math::

    h^{l+1} = a_l\, W^l \phi(h^l) + b^l, \qquad W^l_{ij} \sim \mathcal N(0, \sigma_l^2),
    \qquad \text{SGD step } \Delta W^l = -\eta\, c_l\, \gamma_0^2\, \partial_W \mathcal L,

with a forward multiplier :math:`a_l`, an initial variance :math:`\sigma_l^2` and a per-layer
learning-rate scale :math:`c_l` (Adam: :math:`\Delta W^l = -\eta\, c^{\rm Adam}_l \gamma_0\,
\mathrm{adam}(\partial_W \mathcal L)`), following the abc-parameterisation of Yang & Hu,
arXiv 2011.14522 (Tensor Programs IV). :math:`D` is the input dimension, :math:`N` the width,
:math:`\gamma_0` the richness of Bordelon & Pehlevan (arXiv 2205.09653). The output layer always
carries an extra :math:`1/\gamma_0` and every learning rate an extra :math:`\gamma_0^2` (SGD) or
:math:`\gamma_0` (Adam), so :math:`\gamma_0 \to 0` is the lazy (NTK) limit in every preset.
Biases (optional) start at zero with multiplier 1.

=============  ======  ===================  ============  =========  ================
preset         layer   a (multiplier)       sigma^2       c (SGD)    c (Adam)
=============  ======  ===================  ============  =========  ================
``sp``         input   1                    1/d           1          1
               hidden  1                    1/d           1          1
               output  1/gamma0             1/d           1          1
``ntk``        input   1/sqrt(d)            1             1          1
               hidden  1/sqrt(d)            1             1          1
               output  1/(gamma0 sqrt(d))   1             1          1
``mean_field`` input   1/sqrt(d)            1             N          sqrt(d)
               hidden  1/sqrt(d)            1             N          1/sqrt(d)
               output  1/(gamma0 d)         1             d          1
``mup``        input   1                    1/d           N/d        1
               hidden  1                    1/d           N/d        1/d
               output  1/gamma0             1/d^2         1/d        1/d
=============  ======  ===================  ============  =========  ================

Here :math:`d` is the layer's fan-in: :math:`D` for the input layer and :math:`N` for the hidden
and output layers of an MLP (so that, for MLPs, ``mean_field`` hidden rows read
:math:`a = 1/\sqrt N`, :math:`c = N`, and ``mup`` hidden rows :math:`\sigma^2 = 1/N`,
:math:`c = 1`).
Convolutions and attention use the same rows with their own fan-in (channels x kernel area,
:mod:`._cnn`; :math:`N` or the MLP-block width, :mod:`._transformer`); the SGD rate keeps the
width :math:`N` of the layer's output features, so that the one-step feature change is
:math:`O(1)` whatever the kernel area.

``mean_field`` is exactly the DMFT convention of THEORY.md section 4: :math:`h^1 = W^0 x/\sqrt D`,
:math:`h^{l+1} = W^l\phi(h^l)/\sqrt N`, :math:`f = w^L\cdot\phi(h^L)/(\gamma_0 N)`, SGD learning
rate :math:`\eta\gamma_0^2 N`. ``mup`` is the "unit multiplier" form of muP (Yang et al.,
arXiv 2203.03466, Table 3: SGD rates :math:`\eta\,\mathrm{fan\_out}`, :math:`\eta`,
:math:`\eta/\mathrm{fan\_in}`; Adam rates :math:`\eta`, :math:`\eta/\mathrm{fan\_in}`,
:math:`\eta/\mathrm{fan\_in}`). The two are related by the abc symmetry
:math:`(a, \sigma, c) \to (a\theta, \sigma/\theta, c/\theta^2)`, so under SGD (and under Adam up
to its epsilon) they give the same function-space trajectory; the tests check this. Bias rates:
``sp``/``ntk`` 1; ``mup``/``mean_field`` N for input/hidden biases, 1 for the output bias (SGD),
1 for all biases (Adam).

Expected width exponents (checked by the tests): initial output variance :math:`N^0` (sp, ntk),
:math:`N^{-1}` (mup, mean_field); preactivation change after one SGD step at fixed :math:`\eta`:
:math:`N^0` in every hidden layer (mup, mean_field), :math:`N^{-1/2}` (ntk), and for sp
:math:`N^{-1/2}` in the first layer, :math:`N^{+1/2}` in deeper layers, output :math:`N^{+1}`.

Residual networks (``residual=True``) use depth-muP branches
:math:`h^{l+1} = h^l + L^{-1/2}\, a_l W^l \phi(h^l)` (Bordelon et al. arXiv 2309.16620;
Yang et al. arXiv 2310.02244, Depth-muP): SGD rates unchanged, Adam rates of the hidden
(branch) layers multiplied by :math:`L^{-1/2}`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from theorysim.checks import check_scalar

PRESETS = ("sp", "ntk", "mean_field", "mup")
LAYER_KINDS = ("input", "hidden", "output")

ACTIVATIONS: dict[str, Callable] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "linear": lambda z: z,
    "erf": jax.scipy.special.erf,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
}


@dataclasses.dataclass(frozen=True)
class LayerScale:
    """The abc numbers of one weight layer (gamma0 factors excluded; see module docstring)."""

    multiplier: float
    init_std: float
    lr_sgd: float
    lr_adam: float
    bias_lr_sgd: float
    bias_lr_adam: float


def layer_scale(preset: str, kind: str, fan_in: int, width: int) -> LayerScale:
    """abc numbers for a layer of ``kind`` in {"input", "hidden", "output"} (module docstring).

    Args:
        preset: one of :data:`PRESETS`.
        kind: ``input``, ``hidden`` or ``output``.
        fan_in: d, the number of inputs summed into one output unit (D for the input layer of
            an MLP, N for its hidden and output layers, channels x kernel area for a
            convolution).
        width: N, the network width (sets the SGD rates of the input and hidden layers).

    The output multiplier here excludes the :math:`1/\\gamma_0` factor, which the model applies
    at call time so that gamma0 can be a traced (vmapped) hyperparameter.

    Example:
        >>> layer_scale("mup", "hidden", 64, 64).lr_sgd
        1.0
    """
    if kind not in LAYER_KINDS:
        raise ValueError(f"kind must be one of {list(LAYER_KINDS)}, got {kind!r}")
    n, d = float(width), float(fan_in)
    if preset == "sp":
        return LayerScale(1.0, 1.0 / math.sqrt(d), 1.0, 1.0, 1.0, 1.0)
    if preset == "ntk":
        return LayerScale(1.0 / math.sqrt(d), 1.0, 1.0, 1.0, 1.0, 1.0)
    bias_sgd = 1.0 if kind == "output" else n
    if preset == "mean_field":
        mult = {"input": 1.0 / math.sqrt(d), "hidden": 1.0 / math.sqrt(d), "output": 1.0 / d}
        sgd = {"input": n, "hidden": n, "output": d}
        adam = {"input": math.sqrt(d), "hidden": 1.0 / math.sqrt(d), "output": 1.0}
        return LayerScale(mult[kind], 1.0, sgd[kind], adam[kind], bias_sgd, 1.0)
    if preset == "mup":
        std = {"input": 1.0 / math.sqrt(d), "hidden": 1.0 / math.sqrt(d), "output": 1.0 / d}
        sgd = {"input": n / d, "hidden": n / d, "output": 1.0 / d}
        adam = {"input": 1.0, "hidden": 1.0 / d, "output": 1.0 / d}
        return LayerScale(1.0, std[kind], sgd[kind], adam[kind], bias_sgd, 1.0)
    raise ValueError(f"parameterization must be one of {list(PRESETS)}, got {preset!r}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A fully-connected network of ``depth`` hidden layers of ``width`` units.

    Args:
        width: N, units per hidden layer (>= 1).
        depth: L, number of hidden layers (>= 1); there are L + 1 weight matrices.
        parameterization: one of ``sp``, ``ntk``, ``mean_field``, ``mup`` (module docstring).
        activation: a name in :data:`ACTIVATIONS` or a callable.
        gamma0: richness (> 0); output multiplier 1/gamma0, SGD rates x gamma0^2.
        out_dim: number of outputs (classes for cross-entropy).
        bias: add biases (initialised at zero).
        residual: residual blocks with depth-muP branch scale 1/sqrt(L).
        centre: train and report f(x) - f_0(x), the output minus its value at initialisation.
    """

    width: int
    depth: int = 2
    parameterization: str = "mean_field"
    activation: str | Callable = "relu"
    gamma0: float = 1.0
    out_dim: int = 1
    bias: bool = False
    residual: bool = False
    centre: bool = False

    def __post_init__(self):
        validate_model_config(self)


def is_int(v) -> bool:
    """True for a Python or NumPy integer that is not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


_is_int = is_int


def check_gamma0(g) -> None:
    """``ValueError`` unless gamma0 is a finite number > 0 (Python or NumPy scalar)."""
    check_scalar("gamma0", g, lo=0.0, lo_open=True, hi=math.inf, hi_open=True)


#: deepest built-in model accepted: every layer is traced and compiled separately, so a
#: 10^6-layer config would compile for hours before its first step.
MAX_DEPTH = 1000


def check_depth(depth) -> None:
    """``ValueError`` unless ``depth`` is an integer in ``1 .. MAX_DEPTH``."""
    if not _is_int(depth) or not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be an integer in [1, {MAX_DEPTH}] (each layer is "
                         f"compiled separately), got {depth!r}")


def validate_model_config(cfg: ModelConfig) -> None:
    """Raise ``ValueError`` naming the bad field of ``cfg``."""
    if not _is_int(cfg.width) or cfg.width < 1:
        raise ValueError(f"width must be an integer >= 1, got {cfg.width!r}")
    check_depth(cfg.depth)
    if not _is_int(cfg.out_dim) or cfg.out_dim < 1:
        raise ValueError(f"out_dim must be an integer >= 1, got {cfg.out_dim!r}")
    check_preset_activation_gamma0(cfg, ("bias", "residual", "centre"))


def check_preset_activation_gamma0(cfg, bools: tuple[str, ...] = ()) -> None:
    """``ValueError`` naming the field unless ``cfg.parameterization`` is a preset,
    ``cfg.activation`` a name in :data:`ACTIVATIONS` or a callable, ``cfg.gamma0`` finite
    and > 0, and every field named in ``bools`` a bool (the checks every model config shares)."""
    if cfg.parameterization not in PRESETS:
        raise ValueError(
            f"parameterization must be one of {list(PRESETS)}, got {cfg.parameterization!r}")
    if not callable(cfg.activation) and (not isinstance(cfg.activation, str)
                                         or cfg.activation not in ACTIVATIONS):
        raise ValueError(
            f"activation must be a callable or one of {sorted(ACTIVATIONS)}, "
            f"got {cfg.activation!r}")
    check_gamma0(cfg.gamma0)
    for name in bools:
        if not isinstance(getattr(cfg, name), bool):
            raise ValueError(f"{name} must be a bool, got {getattr(cfg, name)!r}")


def activation_fn(activation: str | Callable) -> Callable:
    """The activation function for a name in :data:`ACTIVATIONS` or a callable."""
    if callable(activation):
        return activation
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be a callable or one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return ACTIVATIONS[activation]
