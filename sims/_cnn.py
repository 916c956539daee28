r"""Convolutional networks with an explicit abc-parameterisation (Flax NNX).

For images :math:`x \in \mathbb R^{H\times W\times C}` (channel-last), ``L = depth`` conv layers
of ``N = width`` channels, each with a :math:`k_l \times k_l` kernel, stride :math:`s_l`,
``SAME``/``VALID`` padding and an optional :math:`p_l\times p_l` average pooling,

.. math::

    h^{1}_{i}(\alpha) = a_0 \sum_{j\le C,\;\delta\in\Delta_0} W^0_{ij\delta}\, x_j(s_0\alpha+\delta)
    + b^0_i, \qquad
    h^{l+1}_{i}(\alpha) = a_l \sum_{j \le N,\;\delta\in\Delta_l} W^l_{ij\delta}\,
    \mathrm{pool}_{p_{l-1}}\phi(h^l)_j(s_l\alpha+\delta) + b^l_i,

    f = \frac{a_L}{\gamma_0}\, W^L z, \qquad
    z = \tfrac{1}{|S|}\sum_{\alpha\in S}\mathrm{pool}\,\phi(h^L)(\alpha) \;(\text{``gap``})
    \;\text{ or }\; z = \mathrm{vec}\,\mathrm{pool}\,\phi(h^L) \;(\text{``flatten''}),

:math:`W_{ij\delta}\sim\mathcal N(0,\sigma_l^2)`. The abc numbers are those of the MLP table in
:mod:`._param` with the conv fan-in :math:`d_l` = channels x kernel area:

=====================  ==============================  ======================================
layer                  fan-in :math:`d`                 rows of the :mod:`._param` table
=====================  ==============================  ======================================
first conv (input)     :math:`C\,k_0^2`                 ``input``
conv :math:`l \ge 1`   :math:`N\,k_l^2`                 ``hidden``
readout (output)       :math:`N` (gap), :math:`N|S|`    ``output``
                       (flatten)
=====================  ==============================  ======================================

so e.g. ``mup`` has :math:`\sigma_l^2 = 1/(N k_l^2)` and SGD rate :math:`N/(N k_l^2) = k_l^{-2}`
for a hidden conv, ``mean_field`` has :math:`a_l = 1/\sqrt{N k_l^2}` and SGD rate :math:`N`;
the width :math:`N` of the layer's output features sets the SGD rate because
:math:`\partial f/\partial h^l = O(a_L)` per unit, and summing :math:`N k_l^2` products in the
update cancels the :math:`1/(N k_l^2)` of :math:`a_l^2` or :math:`\sigma_l^2`
(Yang & Hu arXiv 2011.14522; Yang et al. arXiv 2203.03466, where a conv is a dense layer with
fan-in channels x kernel area). Hence the width exponents are those of the MLPs: initial output
variance :math:`N^0` (sp, ntk), :math:`N^{-1}` (mup, mean_field); one-step preactivation change
at fixed :math:`\eta`: :math:`N^0` (mup, mean_field), :math:`N^{-1/2}` (ntk), and for sp
:math:`N^{-1/2}` (first layer), :math:`N^{1/2}` (deeper), :math:`N` (output).

``w_std`` multiplies every multiplier :math:`a_l`; ``b_std`` (if given) makes biases
:math:`b = b_{\rm std}\,\beta`, :math:`\beta \sim \mathcal N(0, 1)`. In ``ntk`` this is the
convention of neural-tangents' ``stax`` (``parameterization="ntk"``), so the network is the
finite-width version of the kernel that :mod:`theorysim.kernels` ``stax`` computes for
``Conv(N, (k, k), strides, padding, W_std, b_std) -> Relu -> ... -> GlobalAvgPool -> Dense``.

Inputs may be given channel-last ``(P, H, W, C)`` or flattened ``(P, H*W*C)`` (row-major), the
form :func:`theorysim.sims.train` passes them in.

**Speed on CPU.** Inside the engine's ``fori_loop`` XLA:CPU (jax 0.10.2) runs a conv
layer's gradient ~100x slower than the same jitted step called from Python: width 256, depth 2,
3 x 3 SAME, 64 digits images, full-batch GD: 17-19 CPU-s per step in ``train`` (``map`` and
``vmap`` alike) and in a bare ``jax.lax.fori_loop`` over ``jax.grad``, against 0.17 CPU-s for
the jitted gradient alone (measured 2026-12-07 under load 3-5); a transformer's dots show no
such loss. So on CPU a conv layer is computed as im2col: patches from pads and strided slices
times the reshaped kernel (one dot, loop-friendly): 0.15 CPU-s per step in the same loop.

**vmap and the input layer.** The first conv layer is im2col on every backend. Its input (the
data) is the same for all ensemble members, so under the engine's ``vmap`` strategy (the GPU
default) the per-example Jacobian of the ``ntk`` observable has a weight-gradient conv that is
grouped over examples with an unbatched input; JAX's conv batching rule (jax 0.10.2) raises
``NotImplementedError`` for exactly that case inside the engine.
With ``C_in k^2`` features (9 for digits) im2col costs the first layer nothing; deeper layers see
member-dependent inputs and keep ``lax.conv`` off CPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from theorysim.checks import check_std

from ._param import (
    LayerScale,
    activation_fn,
    check_depth,
    check_preset_activation_gamma0,
    is_int,
    layer_scale,
)

PADDINGS = ("SAME", "VALID")
READOUTS = ("gap", "flatten")


def _per_layer(name, value, depth):
    if is_int(value) or isinstance(value, str):
        vals = (value,) * depth
    elif isinstance(value, tuple | list):
        vals = tuple(value)
    else:  # e.g. 2.5: not one layer's value and not a per-layer sequence
        raise ValueError(f"{name} must be one integer or a tuple of {depth} (one per layer), "
                         f"got {value!r}")
    if len(vals) != depth:
        raise ValueError(f"{name} must be one value or {depth} values (depth), got {value!r}")
    return vals


@dataclasses.dataclass(frozen=True)
class CNNConfig:
    """A CNN of ``depth`` conv layers of ``width`` channels on ``input_shape`` images.

    Args:
        width: N, channels of every conv layer (>= 1).
        input_shape: (H, W, C) of the images.
        depth: L, number of conv layers (>= 1).
        kernel_size: k, one int or one per layer.
        strides: s, one int or one per layer (>= 1).
        padding: ``SAME`` or ``VALID``, one or one per layer.
        pool: average-pool window (= its stride) after each conv layer's activation, one int or
            one per layer; 1 means no pooling.
        readout: ``gap`` (global average pool) or ``flatten``.
        parameterization: ``sp``, ``ntk``, ``mean_field`` or ``mup`` (module docstring).
        activation: a name in ``ACTIVATIONS`` or a callable.
        gamma0: richness (> 0); output multiplier 1/gamma0, SGD rates x gamma0^2.
        out_dim: number of outputs.
        bias: add biases (zero at initialisation, multiplier 1) unless ``b_std`` is given.
        w_std: extra factor on every layer multiplier (neural-tangents' ``W_std``).
        b_std: if given, biases ``b_std * beta`` with ``beta ~ N(0, 1)`` (neural-tangents'
            ``b_std``); implies biases.
        centre: train and report f(x) - f_0(x).

    Example:
        >>> cfg = CNNConfig(width=8, input_shape=(8, 8, 1), depth=2, kernel_size=3)
        >>> cfg.spatial_shapes()
        ((8, 8), (8, 8))
    """

    width: int
    input_shape: tuple[int, int, int]
    depth: int = 2
    kernel_size: int | tuple[int, ...] = 3
    strides: int | tuple[int, ...] = 1
    padding: str | tuple[str, ...] = "SAME"
    pool: int | tuple[int, ...] = 1
    readout: str = "gap"
    parameterization: str = "mean_field"
    activation: str | Callable = "relu"
    gamma0: float = 1.0
    out_dim: int = 1
    bias: bool = False
    w_std: float = 1.0
    b_std: float | None = None
    centre: bool = False

    def __post_init__(self):
        for name in ("width", "depth", "out_dim"):
            v = getattr(self, name)
            if not is_int(v) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        check_depth(self.depth)
        shp = self.input_shape
        if (not isinstance(shp, tuple) or len(shp) != 3
                or not all(is_int(v) and v >= 1 for v in shp)):
            raise ValueError(f"input_shape must be a tuple (H, W, C) of integers >= 1, got {shp!r}")
        for name in ("kernel_size", "strides", "pool"):
            for v in _per_layer(name, getattr(self, name), self.depth):
                if not is_int(v) or v < 1:
                    raise ValueError(f"{name} must hold integers >= 1, got {getattr(self, name)!r}")
        for v in _per_layer("padding", self.padding, self.depth):
            if v not in PADDINGS:
                raise ValueError(f"padding must be one of {list(PADDINGS)}, got {self.padding!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {list(READOUTS)}, got {self.readout!r}")
        check_preset_activation_gamma0(self, ("bias", "centre"))
        check_std("w_std", self.w_std)
        if self.b_std is not None:
            check_std("b_std", self.b_std, positive=False)
        self.spatial_shapes()  # kernel/pool larger than the input: ValueError now

    @property
    def layers(self):
        """Per-layer ``(kernel_size, stride, padding, pool)``."""
        return tuple(zip(_per_layer("kernel_size", self.kernel_size, self.depth),
                         _per_layer("strides", self.strides, self.depth),
                         _per_layer("padding", self.padding, self.depth),
                         _per_layer("pool", self.pool, self.depth), strict=True))

    def spatial_shapes(self) -> tuple[tuple[int, int], ...]:
        """(H_l, W_l) of every conv layer's output h^l (before its pooling)."""
        hw = self.input_shape[:2]
        out = []
        for i, (k, s, pad, p) in enumerate(self.layers):
            if pad == "VALID" and k > min(hw):
                raise ValueError(f"kernel_size {k} of layer {i} is larger than its input "
                                 f"{hw} with VALID padding")
            hw = tuple(-(-(n - k + 1) // s) if pad == "VALID" else -(-n // s) for n in hw)
            out.append(hw)
            if p > min(hw):
                raise ValueError(f"pool {p} of layer {i} is larger than its input {hw}")
            hw = tuple(n // p for n in hw)
        return tuple(out)

    def readout_fan_in(self) -> int:
        """Fan-in of the readout: N (gap) or N x the number of final positions (flatten)."""
        if self.readout == "gap":
            return self.width
        hw, p = self.spatial_shapes()[-1], self.layers[-1][3]
        return self.width * (hw[0] // p) * (hw[1] // p)

    def layer_names(self) -> tuple[str, ...]:
        """Names of the recorded activations (``act_rms`` order): the preactivations h^l."""
        return tuple(f"conv{i}" for i in range(self.depth))

    def check_inputs(self, x, name: str = "x") -> np.ndarray:
        """Return x flattened to (P, H*W*C); ``ValueError`` naming ``name`` unless x is
        (P, H, W, C) or (P, H*W*C) for this model."""
        x = np.asarray(x)
        shp = x.shape
        flat = int(np.prod(self.input_shape))
        if not (shp[1:] == tuple(self.input_shape) or (len(shp) == 2 and shp[1] == flat)):
            h, w, c = self.input_shape
            raise ValueError(f"{name} must be images of shape (P, {h}, {w}, {c}) or (P, {flat}) "
                             f"flattened for input_shape={self.input_shape}, got {shp}")
        return x.reshape(shp[0], flat)


class ScaledConv(nnx.Module):
    r"""One conv layer :math:`z \mapsto a\,(W \star z) + b`, :math:`W\sim\mathcal N(0,\sigma^2)`."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: str,
                 scale: LayerScale, *, bias: bool, b_std: float | None, rngs: nnx.Rngs,
                 dtype=jnp.float32, im2col: bool = False):
        self.scale = scale
        self.stride, self.padding = stride, padding
        self.im2col = im2col
        self.kernel = nnx.Param(
            scale.init_std * jax.random.normal(rngs.params(), (kernel, kernel, c_in, c_out), dtype))
        self.b_mult = 1.0 if b_std is None else float(b_std)
        if b_std is not None:
            self.bias = nnx.Param(jax.random.normal(rngs.params(), (c_out,), dtype))
        else:
            self.bias = nnx.Param(jnp.zeros((c_out,), dtype)) if bias else None

    def __call__(self, z):
        w = self.kernel[...]
        if self.im2col or _on_cpu():  # module doc: "Speed on CPU", "vmap and the input layer"
            k = w.shape[0]
            out = _patches(z, k, self.stride, self.padding) @ w.reshape(k * k * w.shape[2], -1)
        else:
            out = jax.lax.conv_general_dilated(z, w, (self.stride, self.stride), self.padding,
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
        out = self.scale.multiplier * out
        if self.bias is not None:
            out = out + self.b_mult * self.bias[...]
        return out


def _on_cpu() -> bool:
    return jax.default_backend() == "cpu"


def _patches(z, k: int, stride: int, padding: str):
    """(P, H, W, C) -> (P, H', W', k*k*C) patches in (dy, dx, c) order, from pads and strided
    slices only (XLA's SAME padding: the odd pixel at the end)."""
    pads, sizes = [(0, 0)], []
    for n in z.shape[1:3]:
        out = -(-n // stride) if padding == "SAME" else (n - k) // stride + 1
        total = max((out - 1) * stride + k - n, 0) if padding == "SAME" else 0
        pads.append((total // 2, total - total // 2))
        sizes.append(out)
    zp = jnp.pad(z, [*pads, (0, 0)])
    return jnp.concatenate([zp[:, dy:dy + (sizes[0] - 1) * stride + 1:stride,
                               dx:dx + (sizes[1] - 1) * stride + 1:stride]
                            for dy in range(k) for dx in range(k)], axis=-1)


def _avg_pool(z, p):
    if p == 1:
        return z
    s = jax.lax.reduce_window(z, 0.0, jax.lax.add, (1, p, p, 1), (1, p, p, 1), "VALID")
    return s / (p * p)


class CNN(nnx.Module):
    """The CNN of a :class:`CNNConfig` (module docstring).

    Args:
        cfg: the config.
        rngs: NNX random streams (``params`` used).
        dtype: parameter dtype.

    Besides ``__call__(x, gamma0=None)`` it has ``features(x, gamma0)`` -> ``(f, [h^1..h^L])``,
    ``lr_scales(optimizer)`` and ``output_multiplier(gamma0)`` like the MLPs.

    Example:
        >>> cfg = CNNConfig(width=8, input_shape=(6, 6, 1), depth=2, parameterization="mup")
        >>> CNN(cfg, rngs=nnx.Rngs(0))(jnp.ones((3, 6, 6, 1))).shape
        (3, 1)
    """

    def __init__(self, cfg: CNNConfig, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.cfg = cfg
        n, p = cfg.width, cfg.parameterization
        c_prev = cfg.input_shape[2]
        convs = []
        for i, (k, s, pad, _) in enumerate(cfg.layers):
            kind = "input" if i == 0 else "hidden"
            sc = layer_scale(p, kind, c_prev * k * k, n)
            sc = dataclasses.replace(sc, multiplier=sc.multiplier * cfg.w_std)
            convs.append(ScaledConv(c_prev, n, k, s, pad, sc, bias=cfg.bias, b_std=cfg.b_std,
                                    rngs=rngs, dtype=dtype, im2col=i == 0))
            c_prev = n
        self.convs = nnx.List(convs)
        d_o = cfg.readout_fan_in()
        sc = layer_scale(p, "output", d_o, n)
        self.readout_scale = dataclasses.replace(sc, multiplier=sc.multiplier * cfg.w_std)
        self.readout = nnx.Param(
            self.readout_scale.init_std * jax.random.normal(rngs.params(), (d_o, cfg.out_dim),
                                                            dtype))
        if cfg.b_std is not None:
            self.readout_bias = nnx.Param(jax.random.normal(rngs.params(), (cfg.out_dim,), dtype))
        elif cfg.bias:
            self.readout_bias = nnx.Param(jnp.zeros((cfg.out_dim,), dtype))
        else:
            self.readout_bias = None

    def _gamma0(self, gamma0):
        return self.cfg.gamma0 if gamma0 is None else gamma0

    def output_multiplier(self, gamma0=None):
        """The readout multiplier a_L / gamma0."""
        return self.readout_scale.multiplier / self._gamma0(gamma0)

    def _images(self, x):
        if not isinstance(x, jax.core.Tracer):
            self.cfg.check_inputs(x)
        return jnp.reshape(x, (x.shape[0], *self.cfg.input_shape))

    def features(self, x, gamma0=None):
        """Return ``(f, [h^1, ..., h^L])``, each h^l of shape (P, H_l, W_l, N)."""
        phi = activation_fn(self.cfg.activation)
        z = self._images(x)
        hs = []
        for conv, (_, _, _, p) in zip(self.convs, self.cfg.layers, strict=True):
            h = conv(z)
            hs.append(h)
            z = _avg_pool(phi(h), p)
        z = jnp.mean(z, axis=(1, 2)) if self.cfg.readout == "gap" else z.reshape(z.shape[0], -1)
        f = self.output_multiplier(gamma0) * (z @ self.readout[...])
        if self.readout_bias is not None:
            b_mult = 1.0 if self.cfg.b_std is None else self.cfg.b_std
            f = f + b_mult * self.readout_bias[...]
        return f, hs

    def __call__(self, x, gamma0=None):
        return self.features(x, gamma0)[0]

    def lr_scales(self, optimizer: str) -> dict[str, float]:
        """Per-parameter learning-rate scales keyed by parameter path (gamma0 excluded)."""
        adam = optimizer == "adam"
        out = {}
        for i, conv in enumerate(self.convs):
            s = conv.scale
            out[f"convs/{i}/kernel"] = s.lr_adam if adam else s.lr_sgd
            if conv.bias is not None:
                out[f"convs/{i}/bias"] = s.bias_lr_adam if adam else s.bias_lr_sgd
        s = self.readout_scale
        out["readout"] = s.lr_adam if adam else s.lr_sgd
        if self.readout_bias is not None:
            out["readout_bias"] = s.bias_lr_adam if adam else s.bias_lr_sgd
        return out

    def layer_observables(self, x, gamma0, lr_scales, want) -> dict[str, jax.Array]:
        r"""act_rms (L,), feature_kernels (L, P, P) and ntk (P, P) on probe inputs x.

        act_rms is the RMS of the preactivations h^l; feature kernels are
        :math:`\phi(h^l_\mu)\cdot\phi(h^l_\nu)/(N |S_l|)` summed over all positions;
        the NTK comes from per-example gradients (memory P x C x parameters).
        """
        return _layer_observables(self, x, gamma0, lr_scales, want)

    def activations(self, x, gamma0=None) -> dict[str, jax.Array]:
        """The recorded activations (``act_rms``): preactivations h^l by layer name."""
        return dict(zip(self.cfg.layer_names(), self.features(x, gamma0)[1], strict=True))

    def representations(self, x, gamma0=None) -> list[jax.Array]:
        """The feature maps of ``feature_kernels``: phi(h^l) for every conv layer."""
        phi = activation_fn(self.cfg.activation)
        return [phi(h) for h in self.features(x, gamma0)[1]]


def _layer_observables(model, x, gamma0, lr_scales, want):
    """act_rms of ``model.activations``, feature kernels of ``model.representations``, and the
    NTK from per-example gradients (shared by :class:`CNN` and the transformer)."""
    from ._observe import generic_ntk, path_name  # local: _observe is a sibling module

    if "grad_kernels" in want:
        raise ValueError("observables: grad_kernels is defined for the MLPs only; "
                         "use act_rms, feature_kernels or ntk")
    out = {}
    if "act_rms" in want:
        acts = model.activations(x, gamma0)
        out["act_rms"] = jnp.stack([jnp.sqrt(jnp.mean(jnp.square(a))) for a in acts.values()])
    if "feature_kernels" in want:
        ks = []
        for a in model.representations(x, gamma0):
            z = a.reshape(a.shape[0], -1)
            ks.append(z @ z.T / z.shape[1])
        out["feature_kernels"] = jnp.stack(ks)
    if "ntk" in want:
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        scales = jax.tree_util.tree_map_with_path(
            lambda p, _: float(lr_scales.get(path_name(p), 1.0)), params)
        g0 = model._gamma0(gamma0)
        apply = lambda prm, xx: nnx.merge(graphdef, prm, rest)(xx, gamma0)
        out["ntk"] = generic_ntk(apply, params, x, scales, g0**2)
    return out
