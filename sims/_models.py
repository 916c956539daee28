r"""Flax NNX fully-connected networks with an explicit abc-parameterisation.

.. math::

    h^1 = a_0 W^0 x, \qquad h^{l+1} = a_l W^l \phi(h^l) \;\; (\text{or } h^l + L^{-1/2} a_l W^l
    \phi(h^l) \text{ residual}), \qquad f = \frac{a_L}{\gamma_0} W^L \phi(h^L),

with the multipliers, init variances and learning-rate scales of :mod:`._param` (arXiv
2011.14522, 2205.09653, 2309.16620, 2310.02244). Besides ``__call__`` the models expose
``features(x, gamma0, perturb)`` returning the output and the preactivations
:math:`h^1..h^L` (``perturb`` adds a term to each :math:`h^l`, so that a vjp with respect to it
gives :math:`\partial f/\partial h^l`), ``lr_scales(optimizer)`` (per-parameter learning-rate
scales keyed by parameter path) and ``output_multiplier(gamma0)``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from ._cnn import CNN, CNNConfig
from ._param import LayerScale, ModelConfig, activation_fn, layer_scale
from ._transformer import Transformer, TransformerConfig


class ScaledDense(nnx.Module):
    r"""One weight layer :math:`z \mapsto a\, z W + b`, :math:`W_{ij}\sim\mathcal N(0,\sigma^2)`.

    Args:
        fan_in, fan_out: input and output sizes.
        scale: the abc numbers of the layer.
        bias: whether to add a bias (initialised at zero).
        rngs: NNX random streams (``params`` stream used).
        dtype: parameter dtype.
    """

    def __init__(self, fan_in: int, fan_out: int, scale: LayerScale, *, bias: bool,
                 rngs: nnx.Rngs, dtype=jnp.float32):
        self.scale = scale
        self.kernel = nnx.Param(
            scale.init_std * jax.random.normal(rngs.params(), (fan_in, fan_out), dtype))
        self.bias = nnx.Param(jnp.zeros((fan_out,), dtype)) if bias else None

    def __call__(self, z, multiplier=1.0):
        out = (self.scale.multiplier * multiplier) * (z @ self.kernel[...])
        if self.bias is not None:
            out = out + self.bias[...]
        return out


class MLP(nnx.Module):
    """Fully-connected network of ``cfg.depth`` hidden layers (see module docstring).

    Args:
        cfg: the model config (width, depth, preset, activation, gamma0, ...).
        in_dim: input dimension D.
        rngs: NNX random streams.
        dtype: parameter dtype (float32 by default; float64 needs x64 enabled).

    Example:
        >>> from flax import nnx
        >>> model = MLP(ModelConfig(width=64, depth=2), in_dim=10, rngs=nnx.Rngs(0))
        >>> model(jnp.ones((5, 10))).shape
        (5, 1)
    """

    branch_scale = 1.0

    def __init__(self, cfg: ModelConfig, in_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim < 1:
            raise ValueError(f"in_dim must be an integer >= 1, got {in_dim!r}")
        self.cfg = cfg
        self.in_dim = in_dim
        n, p = cfg.width, cfg.parameterization
        sizes = [in_dim] + [n] * cfg.depth + [cfg.out_dim]
        kinds = ["input"] + ["hidden"] * (cfg.depth - 1) + ["output"]
        self.layers = nnx.List([
            ScaledDense(sizes[i], sizes[i + 1], layer_scale(p, kinds[i], sizes[i], n),
                        bias=cfg.bias, rngs=rngs, dtype=dtype)
            for i in range(len(kinds))
        ])
        self.kinds = tuple(kinds)

    def _gamma0(self, gamma0):
        return self.cfg.gamma0 if gamma0 is None else gamma0

    def output_multiplier(self, gamma0=None):
        """The output multiplier a_L / gamma0."""
        return self.layers[-1].scale.multiplier / self._gamma0(gamma0)

    def features(self, x, gamma0=None, perturb=None):
        """Return ``(f, [h^1, ..., h^L])`` for inputs ``x`` of shape (P, D).

        ``perturb`` (optional list of L arrays of shape (P, N)) is added to each h^l.
        """
        phi = activation_fn(self.cfg.activation)
        hs = []
        h = self.layers[0](x)
        if perturb is not None:
            h = h + perturb[0]
        hs.append(h)
        for i, layer in enumerate(self.layers[1:-1], start=1):
            h = self._hidden_step(layer, h, phi)
            if perturb is not None:
                h = h + perturb[i]
            hs.append(h)
        f = self.layers[-1](phi(h), 1.0 / self._gamma0(gamma0))
        return f, hs

    def _hidden_step(self, layer, h, phi):
        return layer(phi(h))

    def __call__(self, x, gamma0=None):
        return self.features(x, gamma0)[0]

    def lr_scales(self, optimizer: str) -> dict[str, float]:
        """Per-parameter learning-rate scales ``{"layers/i/kernel": c, ...}`` (gamma0 excluded)."""
        out = {}
        for i, layer in enumerate(self.layers):
            s = layer.scale
            c_w = s.lr_adam if optimizer == "adam" else s.lr_sgd
            c_b = s.bias_lr_adam if optimizer == "adam" else s.bias_lr_sgd
            if optimizer == "adam" and self.kinds[i] == "hidden":
                c_w *= self.branch_scale
            out[f"layers/{i}/kernel"] = c_w
            if layer.bias is not None:
                out[f"layers/{i}/bias"] = c_b
        return out


class ResidualMLP(MLP):
    r"""Residual MLP with depth-muP branches :math:`h^{l+1} = h^l + L^{-1/2} a_l W^l\phi(h^l)`.

    Same arguments as :class:`MLP`; Adam rates of the branch layers carry an extra
    :math:`L^{-1/2}` (arXiv 2310.02244), SGD rates do not (arXiv 2309.16620).
    """

    def __init__(self, cfg: ModelConfig, in_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        super().__init__(cfg, in_dim, rngs=rngs, dtype=dtype)
        self.branch_scale = 1.0 / math.sqrt(cfg.depth)

    def _hidden_step(self, layer, h, phi):
        return h + layer(phi(h), self.branch_scale)


MODEL_CONFIGS = (ModelConfig, CNNConfig, TransformerConfig)
"""The built-in model configs accepted by :func:`make_model` and :func:`theorysim.sims.train`."""

BUILTIN_MODELS = (MLP, CNN, Transformer)


def make_model(cfg, in_dim: int, *, key, dtype=jnp.float32):
    """Build the model of ``cfg`` for flattened inputs with ``in_dim`` columns.

    ``cfg`` is a :class:`ModelConfig` (an :class:`MLP`, or a :class:`ResidualMLP` if
    ``cfg.residual``), a :class:`CNNConfig` (in_dim = H*W*C of its ``input_shape``) or a
    :class:`TransformerConfig` (in_dim = T for token ids, T*token_dim for real vectors,
    T <= max_len). Raises ``ValueError`` naming the argument when ``in_dim`` does not fit.

    Example:
        >>> cfg = CNNConfig(width=4, input_shape=(4, 4, 1), depth=1)
        >>> make_model(cfg, 16, key=jax.random.key(0))(jnp.ones((2, 16))).shape
        (2, 1)
    """
    if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim < 1:
        raise ValueError(f"in_dim must be an integer >= 1, got {in_dim!r}")
    rngs = nnx.Rngs(params=key)
    if isinstance(cfg, ModelConfig):
        cls = ResidualMLP if cfg.residual else MLP
        return cls(cfg, in_dim, rngs=rngs, dtype=dtype)
    if isinstance(cfg, CNNConfig):
        flat = math.prod(cfg.input_shape)
        if in_dim != flat:
            raise ValueError(f"x must be images of input_shape={cfg.input_shape} "
                             f"({flat} values per image), got {in_dim} values per row")
        return CNN(cfg, rngs=rngs, dtype=dtype)
    if isinstance(cfg, TransformerConfig):
        cfg.seq_len(in_dim)
        return Transformer(cfg, rngs=rngs, dtype=dtype)
    raise ValueError("cfg must be a ModelConfig, CNNConfig or TransformerConfig, "
                     f"got {type(cfg).__name__}")
