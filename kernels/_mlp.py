r"""A dense MLP matching :func:`mlp_kernel`'s conventions, and its fast per-layer empirical NTK.

For :math:`z^{l+1} = c_l h^l W_l + \beta b_l` (NTK parameterisation: :math:`c_l =
\sigma_w/\sqrt{n_l}`, :math:`\beta = \sigma_b`, :math:`W, b \sim N(0, 1)`; standard:
:math:`c_l = \beta = 1`, :math:`W \sim N(0, \sigma_w^2/n_l)`, :math:`b \sim N(0, \sigma_b^2)`)
and backward gradients :math:`\delta^{l}_o = \partial f_o/\partial z^{l}`, the NTK is

.. math::
    \Theta_{ij}^{oo'} = \sum_l \big(c_l^2\, h^l_i\cdot h^l_j + \beta^2\big)\,
    \delta^{l+1}_{i,o}\cdot\delta^{l+1}_{j,o'},

a sum over layers of a forward-feature Gram times a backward-gradient Gram: two matrix
products per layer, no per-example Jacobians.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from theorysim.checks import check_choice, check_scalar, check_std

from ._activations import Activation, Elementwise


@dataclasses.dataclass(frozen=True)
class DenseMLP:
    """Fully-connected network ``[Dense(width), activation] * len(widths) + Dense(out_dim)``.

    Parameters are a list of dicts ``{"W": (n_in, n_out), "b": (n_out,)}`` (``"b"`` only when
    ``b_std > 0``). The infinite-width limit of this network is
    ``mlp_kernel(len(widths), activation, W_std, b_std, parameterization, width)``.

    Args:
      widths: hidden widths. out_dim: number of outputs. activation: an :class:`Activation`.
      W_std, b_std, parameterization: as in :func:`mlp_kernel`.
    """

    widths: tuple[int, ...]
    activation: Activation
    out_dim: int = 1
    W_std: float = 1.0
    b_std: float = 0.0
    parameterization: str = "ntk"

    def __post_init__(self):
        if not isinstance(self.widths, tuple | list):
            raise ValueError(f"widths must be a tuple of hidden widths, got {self.widths!r}")
        object.__setattr__(self, "widths", tuple(
            check_scalar("widths", n, lo=1, integer=True) for n in self.widths))
        if not isinstance(self.activation, Activation):
            raise ValueError("activation must be an Activation (e.g. theorysim.kernels.Relu()), "
                             f"got {self.activation!r}")
        check_scalar("out_dim", self.out_dim, lo=1, integer=True)
        check_std("W_std", self.W_std)
        check_std("b_std", self.b_std, positive=False)
        check_choice("parameterization", self.parameterization, ("ntk", "standard"))

    def n_params(self, d_in: int) -> int:
        """Number of parameters for inputs of dimension ``d_in``."""
        sizes = (d_in, *self.widths, self.out_dim)
        bias = 1 if self.b_std > 0 else 0
        return sum((a + bias) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    def init(self, key: jax.Array, d_in: int, dtype=jnp.float32) -> list[dict]:
        """Gaussian initial parameters (keyword ``dtype``: float32 unless asked).

        ``dtype=float64`` needs x64 (``jax.enable_x64(True)``): it is refused otherwise rather
        than silently returning float32.
        """
        if jnp.dtype(dtype).itemsize > jnp.dtype(jnp.result_type(float)).itemsize:
            raise ValueError(f"dtype={jnp.dtype(dtype)} needs jax.enable_x64(True); without x64 "
                             "JAX would silently return float32")
        sizes = (d_in, *self.widths, self.out_dim)
        keys = jax.random.split(key, len(sizes) - 1)
        params = []
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=True):
            kw, kb = jax.random.split(k)
            w = jax.random.normal(kw, (n_in, n_out), dtype)
            layer = {"W": w if self.parameterization == "ntk" else w * (self.W_std /
                                                                          math.sqrt(n_in))}
            if self.b_std > 0:
                b = jax.random.normal(kb, (n_out,), dtype)
                layer["b"] = b if self.parameterization == "ntk" else b * self.b_std
            params.append(layer)
        return params

    def _scales(self, n_in):
        if self.parameterization == "ntk":
            return self.W_std / math.sqrt(n_in), self.b_std
        return 1.0, 1.0

    def forward(self, params, x):
        """Return ``(features, preactivations, output)``; ``features[l]`` is ``h^l``."""
        feats, pre = [x], []
        h = x
        for i, layer in enumerate(params):
            c, beta = self._scales(layer["W"].shape[0])
            z = c * (h @ layer["W"])
            if "b" in layer:
                z = z + beta * jnp.reshape(layer["b"], (-1,))
            if i == len(params) - 1:
                return feats, pre, z
            pre.append(z)
            h = self.activation(z)
            feats.append(h)
        raise ValueError("params must hold at least one layer")

    def __call__(self, params, x):
        """Network outputs ``(n, out_dim)``."""
        return self.forward(params, x)[2]

    def _derivative(self, z):
        act = self.activation
        if isinstance(act, Elementwise):
            return act.derivative(z)
        return jax.jvp(act, (z,), (jnp.ones_like(z),))[1]

    def backward(self, params, pre):
        """Backward gradients ``delta^{l+1} = df/dz^{l+1}`` for the hidden layers, each
        ``(n, out_dim, n_{l+1})``; the readout's is the identity and is not stored."""
        deltas = []
        delta = None
        for i in range(len(params) - 1, 0, -1):
            c, _ = self._scales(params[i]["W"].shape[0])
            wt = c * params[i]["W"].T                                   # (n_out, n_in)
            back = jnp.broadcast_to(wt, (pre[i - 1].shape[0],) + wt.shape) if delta is None \
                else delta @ wt
            delta = back * self._derivative(pre[i - 1])[:, None, :]
            deltas.append(delta)
        return deltas[::-1]


@functools.partial(jax.jit, static_argnames=("mlp", "trace"))
def per_layer_ntk(mlp: DenseMLP, params, x1, x2, *, trace: bool = True):
    """Empirical NTK of :class:`DenseMLP` by the per-layer Gram formula.

    Returns ``(n1, n2)`` (mean over outputs of the diagonal blocks) with ``trace``, else
    ``(n1, n2, out, out)``.
    """
    f1, p1, _ = mlp.forward(params, x1)
    f2, p2, _ = mlp.forward(params, x2)
    d1 = mlp.backward(params, p1)
    d2 = mlp.backward(params, p2)
    out = params[-1]["W"].shape[1]
    total = 0.0
    for i, layer in enumerate(params):
        c, beta = mlp._scales(layer["W"].shape[0])
        fwd = (c * c) * (f1[i] @ f2[i].T)
        if "b" in layer:
            fwd = fwd + beta * beta
        if i == len(params) - 1:                      # readout: delta = identity
            eye = jnp.eye(out, dtype=fwd.dtype)
            total = total + (fwd if trace else fwd[:, :, None, None] * eye)
        elif trace:
            g1, g2 = d1[i], d2[i]
            bwd = g1.reshape(g1.shape[0], -1) @ g2.reshape(g2.shape[0], -1).T / out
            total = total + fwd * bwd
        else:
            bwd = jnp.einsum("iaw,jbw->ijab", d1[i], d2[i])
            total = total + fwd[:, :, None, None] * bwd
    return total
