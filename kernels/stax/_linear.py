r"""Linear layers: ``Dense``, ``Conv``, pooling, ``Flatten``, ``Identity``, ``LayerNorm``,
``Dropout`` (neural-tangents' arguments; channel-last inputs ``(N, *S, C)``).

Kernel maps (Novak et al. 2019, arXiv 1810.05148; Arora et al. 2019, arXiv 1904.11955):
with :math:`\mathcal A` the filter average
:math:`(\mathcal A K)_{o o'} = \frac{1}{|F|}\sum_{f\in F} K_{s o + f,\, s o' + f}` (zero
padding for ``SAME``, wrap-around for ``CIRCULAR``), a convolution maps
:math:`K \mapsto \sigma_w^2 \mathcal A K + \sigma_b^2`,
:math:`\Theta \mapsto \sigma_w^2\mathcal A K + \sigma_b^2 + \sigma_w^2 \mathcal A\Theta`
(standard parameterisation: :math:`C_{in}|F|\,\mathcal A K + \sigma_w^2\mathcal A\Theta + 1`),
i.e. the Dense map of :func:`theorysim.kernels.mlp_kernel` after :math:`\mathcal A`. Pooling
averages over both positions of each pair, ``Flatten`` over the diagonal positions.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp

from theorysim.checks import check_choice, check_scalar, check_std

from .._recursion import dense_nngp, dense_ntk
from ._core import KState, Layer, expand, prod, variances

PADDINGS = ("SAME", "VALID", "CIRCULAR")


def _std(name, value, *, allow_none=False, positive=True):
    if value is None and allow_none:
        return None
    return check_std(name, value, positive=positive)


def _param(parameterization):
    if not isinstance(parameterization, str):
        raise ValueError(f"parameterization must be 'ntk' or 'standard', got {parameterization!r}")
    p = parameterization.lower()
    check_choice("parameterization", p, ("ntk", "standard"))
    return p


def _tuple(name, value, n=None, lo=1):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * (n or 1)
    if not isinstance(value, tuple | list) or not value:
        raise ValueError(f"{name} must be a tuple of integers, got {value!r}")
    out = tuple(check_scalar(f"{name}[{i}]", v, lo=lo, integer=True) for i, v in enumerate(value))
    if n is not None and len(out) != n:
        raise ValueError(f"{name} must have {n} entries, got {out}")
    return out


def _padding(padding):
    if not isinstance(padding, str) or padding.upper() not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    return padding.upper()


def _check_channel_axes(batch_axis, channel_axis, who):
    if batch_axis != 0 or channel_axis not in (-1,):
        raise ValueError(f"{who}: only batch_axis=0 and channel_axis=-1 (channel-last, NHWC) "
                         f"are supported, got batch_axis={batch_axis}, "
                         f"channel_axis={channel_axis}; transpose the inputs")


# ----------------------------------------------------------------------------- Dense

class _Dense(Layer):
    name = "Dense"

    def __init__(self, out_dim, W_std, b_std, parameterization):
        self.out_dim, self.W_std, self.b_std, self.param = out_dim, W_std, b_std, parameterization

    def init(self, key, shape):
        c = shape[-1]
        k1, k2 = jax.random.split(key)
        w = jax.random.normal(k1, (c, self.out_dim))
        b = None if self.b_std is None else jax.random.normal(k2, (1,) * (len(shape) - 1)
                                                              + (self.out_dim,))
        if self.param == "standard":
            w = w * (self.W_std / math.sqrt(c))
            b = None if b is None else b * self.b_std
        return tuple(shape[:-1]) + (self.out_dim,), (w, b)

    def apply(self, params, x, **kwargs):
        w, b = params
        out = jnp.tensordot(x, w, (-1, 0))
        if self.param == "ntk":
            out = out * (self.W_std / math.sqrt(x.shape[-1]))
            if b is not None:
                out = out + self.b_std * b
        elif b is not None:
            out = out + b
        return out

    def kernel(self, st: KState) -> KState:
        return affine_layer(st, self.W_std, self.b_std, self.param, st.channels, self.out_dim)


def affine_layer(st: KState, W_std, b_std, param, fan_in, out_channels) -> KState:
    """The Dense map of :mod:`theorysim.kernels._recursion` on every part of the state."""
    w2 = W_std**2
    b2 = 0.0 if b_std is None else b_std**2
    bias = 0.0 if b_std is None else 1.0      # neural-tangents: b_std=None means no bias
    ntk = st.ntk
    if st.want_ntk:
        ntk = dense_ntk(st.nngp, st.ntk, w2, b2, param == "standard", bias, fan_in)
    cov = [None if c is None else dense_nngp(c, w2, b2) for c in (st.cov1, st.cov2)]
    return st.replace(nngp=dense_nngp(st.nngp, w2, b2), ntk=ntk, cov1=cov[0], cov2=cov[1],
                      channels=out_channels, is_input=False, gaussian=True)


def Dense(out_dim: int, W_std: float = 1.0, b_std: float | None = None, batch_axis: int = 0,
          channel_axis: int = -1, parameterization: str = "ntk", s=(1, 1)):
    r"""Fully-connected layer on the channel axis.

    ``ntk``: :math:`z = \frac{\sigma_w}{\sqrt{C}} x W + \sigma_b b`, :math:`W, b \sim N(0,1)`;
    ``standard``: :math:`W \sim N(0, \sigma_w^2/C)`, :math:`b \sim N(0, \sigma_b^2)`.
    ``b_std=None`` means no bias (as neural-tangents; ``b_std=0.0`` keeps a zero-variance but
    trainable bias, which adds 1 to the standard-parameterisation NTK).
    """
    out_dim = check_scalar("out_dim", out_dim, lo=1, integer=True)
    W_std = _std("W_std", W_std)
    b_std = _std("b_std", b_std, allow_none=True, positive=False)
    _check_channel_axes(batch_axis, channel_axis, "Dense")
    if tuple(s) != (1, 1):
        raise ValueError(f"s must be (1, 1) (width scalings are not supported), got {s!r}")
    return _Dense(out_dim, W_std, b_std, _param(parameterization)).triple()


# ----------------------------------------------------------------------------- Conv

def _pads(length, window, stride, padding):
    if padding == "VALID":
        return (0, 0)
    return jax.lax.padtype_to_pads((length,), (window,), (stride,), "SAME")[0]


def _pad_axis(k, axis, pads, circular):
    if pads == (0, 0):
        return k
    widths = [(0, 0)] * k.ndim
    widths[axis] = pads
    return jnp.pad(k, widths, mode="wrap" if circular else "constant")


def _out_len(length, window, stride):
    return (length - window) // stride + 1


def _slice(k, axis, start, stride, n):
    return jax.lax.slice_in_dim(k, start, start + stride * (n - 1) + 1, stride, axis)


def filter_average(k, axes, window, stride, padding):
    r""":math:`(\mathcal A K)_{o o'} = \frac1{|F|}\sum_{f\in F} K_{so+f, so'+f}` over every
    spatial axis at once: ``axes[i]`` holds the axes of spatial axis ``i`` (one for a diagonal
    layout, a pair for a full layout), ``window[i]``, ``stride[i]`` its filter size and
    stride; zero or circular padding. All axes are padded in one step and the ``|F|``
    shifted windows summed in one expression, so that XLA materialises one padded copy of
    ``K`` (a per-axis pass would materialise a padded intermediate per spatial axis)."""
    circular = padding == "CIRCULAR"
    widths = [(0, 0)] * k.ndim
    starts = []
    for ax, w, s in zip(axes, window, stride, strict=True):
        n = k.shape[ax[0]]
        pads = _pads(n, w, s, "SAME" if circular else padding)
        for a in ax:
            widths[a] = pads
        m = _out_len(n + sum(pads), w, s)
        starts.append([(ax, f, s, m) for f in range(w)])
    if any(p != (0, 0) for p in widths):            # one pad op: one padded copy
        k = jnp.pad(k, widths, mode="wrap" if circular else "constant")
    out = None
    for combo in itertools.product(*starts):
        term = k
        for ax, f, s, m in combo:
            for a in ax:
                term = _slice(term, a, f, s, m)
        out = term if out is None else out + term
    return out / math.prod(window)


def box_sum(k, axis, window, stride, padding, normalize_edges, avg):
    """Window sums (pooling) along one axis; ``avg`` divides by the window (or valid count)."""
    n = k.shape[axis]
    circular = padding == "CIRCULAR"
    pads = _pads(n, window, stride, "SAME" if circular else padding)
    kp = _pad_axis(k, axis, pads, circular)
    m = _out_len(kp.shape[axis], window, stride)
    out = sum(_slice(kp, axis, f, stride, m) for f in range(window))
    if not avg:
        return out
    if padding == "SAME" and normalize_edges:
        ones = _pad_axis(jnp.ones((n,), k.dtype), 0, pads, False)
        counts = sum(_slice(ones, 0, f, stride, m) for f in range(window))
        shape = [1] * out.ndim
        shape[axis] = m
        return out / counts.reshape(shape)
    return out / window


class _Conv(Layer):
    name = "Conv"

    def __init__(self, out_chan, filter_shape, strides, padding, W_std, b_std, param):
        self.out_chan, self.filter_shape, self.strides = out_chan, filter_shape, strides
        self.padding, self.W_std, self.b_std, self.param = padding, W_std, b_std, param

    @property
    def nsp(self):
        return len(self.filter_shape)

    def out_spatial(self, spatial):
        if len(spatial) != self.nsp:
            raise ValueError(f"Conv with filter_shape {self.filter_shape} needs inputs with "
                             f"{self.nsp} spatial axes (N, *S, C), got spatial shape {spatial}")
        out = []
        for i, (n, f, s) in enumerate(zip(spatial, self.filter_shape, self.strides,
                                          strict=True)):
            if self.padding == "VALID":
                if f > n:
                    raise ValueError(f"Conv filter_shape[{i}] = {f} is larger than the input "
                                     f"size {n} with padding VALID")
                out.append(_out_len(n, f, s))
            else:
                out.append(-(-n // s))
        return tuple(out)

    def init(self, key, shape):
        spatial, c = tuple(shape[1:-1]), shape[-1]
        out = self.out_spatial(spatial)
        k1, k2 = jax.random.split(key)
        w = jax.random.normal(k1, self.filter_shape + (c, self.out_chan))
        b = None if self.b_std is None else jax.random.normal(k2, (1,) * (1 + self.nsp)
                                                              + (self.out_chan,))
        if self.param == "standard":
            w = w * (self.W_std / math.sqrt(c * prod(self.filter_shape)))
            b = None if b is None else b * self.b_std
        return (shape[0],) + out + (self.out_chan,), (w, b)

    def apply(self, params, x, **kwargs):
        w, b = params
        self.out_spatial(tuple(x.shape[1:-1]))
        spec = "".join("HWDXYZ"[i] for i in range(self.nsp))
        dn = ("N" + spec + "C", spec + "IO", "N" + spec + "C")
        padding = self.padding
        if padding == "CIRCULAR":
            pads = [_pads(n, f, s, "SAME") for n, f, s in
                    zip(x.shape[1:-1], self.filter_shape, self.strides, strict=True)]
            x = jnp.pad(x, [(0, 0)] + pads + [(0, 0)], mode="wrap")
            padding = "VALID"
        out = jax.lax.conv_general_dilated(x, w, self.strides, padding, dimension_numbers=dn)
        if self.param == "ntk":
            out = out * (self.W_std / math.sqrt(x.shape[-1] * prod(self.filter_shape)))
            if b is not None:
                out = out + self.b_std * b
        elif b is not None:
            out = out + b
        return out

    def kernel(self, st: KState) -> KState:
        out = self.out_spatial(st.spatial)

        def avg(k, batch_ndim):
            axes = [(batch_ndim + 2 * i, batch_ndim + 2 * i + 1) if st.full
                    else (batch_ndim + i,) for i in range(self.nsp)]
            return filter_average(k, axes, self.filter_shape, self.strides, self.padding)

        st = st.map(avg).replace(spatial=out)
        fan_in = st.channels * prod(self.filter_shape)
        return affine_layer(st, self.W_std, self.b_std, self.param, fan_in, self.out_chan)


def Conv(out_chan: int, filter_shape, strides=None, padding: str = "VALID",
         W_std: float = 1.0, b_std: float | None = None, dimension_numbers=None,
         parameterization: str = "ntk", s=(1, 1)):
    r"""Convolution over 1, 2 or 3 spatial axes, channel-last (``NWC``, ``NHWC``, ``NDHWC``).

    ``filter_shape`` and ``strides`` have one entry per spatial axis; ``padding`` is
    ``"SAME"``, ``"VALID"`` or ``"CIRCULAR"``. Weights ``(*filter_shape, C_in, out_chan)``;
    normalisation by the fan-in :math:`C_{in}|F|` (module docstring for the kernel).
    """
    out_chan = check_scalar("out_chan", out_chan, lo=1, integer=True)
    filter_shape = _tuple("filter_shape", filter_shape)
    if len(filter_shape) > 3:
        raise ValueError(f"filter_shape must have 1 to 3 entries, got {filter_shape}")
    strides = (1,) * len(filter_shape) if strides is None else _tuple(
        "strides", strides, len(filter_shape))
    padding = _padding(padding)
    W_std = _std("W_std", W_std)
    b_std = _std("b_std", b_std, allow_none=True, positive=False)
    if dimension_numbers is not None:
        spec = "".join("HWDXYZ"[i] for i in range(len(filter_shape)))
        if tuple(dimension_numbers) != ("N" + spec + "C", spec + "IO", "N" + spec + "C"):
            raise ValueError(f"dimension_numbers: only channel-last ('N{spec}C', '{spec}IO', "
                             f"'N{spec}C') is supported, got {dimension_numbers!r}")
    if tuple(s) != (1, 1):
        raise ValueError(f"s must be (1, 1), got {s!r}")
    return _Conv(out_chan, filter_shape, strides, padding, W_std, b_std,
                 _param(parameterization)).triple()


# ----------------------------------------------------------------------------- pooling

class _Pool(Layer):
    def __init__(self, avg, window, strides, padding, normalize_edges):
        self.avg, self.window, self.strides = avg, window, strides
        self.padding, self.normalize_edges = padding, normalize_edges
        self.name = "AvgPool" if avg else "SumPool"

    def out_spatial(self, spatial):
        if len(spatial) != len(self.window):
            raise ValueError(f"{self.name} with window_shape {self.window} needs inputs with "
                             f"{len(self.window)} spatial axes, got spatial shape {spatial}")
        out = []
        for i, (n, f, s) in enumerate(zip(spatial, self.window, self.strides, strict=True)):
            if self.padding == "VALID":
                if f > n:
                    raise ValueError(f"{self.name} window_shape[{i}] = {f} is larger than the "
                                     f"input size {n} with padding VALID")
                out.append(_out_len(n, f, s))
            else:
                out.append(-(-n // s))
        return tuple(out)

    def init(self, key, shape):
        return (shape[0],) + self.out_spatial(tuple(shape[1:-1])) + (shape[-1],), ()

    def apply(self, params, x, **kwargs):
        self.out_spatial(tuple(x.shape[1:-1]))
        for i in range(len(self.window)):
            x = box_sum(x, 1 + i, self.window[i], self.strides[i], self.padding,
                        self.normalize_edges, self.avg)
        return x

    def needs_full(self, out_full):
        return True

    def kernel(self, st: KState) -> KState:
        out = self.out_spatial(st.spatial)
        if not st.full:
            raise ValueError(f"{self.name} needs the full spatial covariance; "
                             "diagonal_spatial=True cannot be used before pooling")

        def pool(k, batch_ndim):
            for i in range(len(self.window)):
                for a in (batch_ndim + 2 * i, batch_ndim + 2 * i + 1):
                    k = box_sum(k, a, self.window[i], self.strides[i], self.padding,
                                self.normalize_edges, self.avg)
            return k

        return st.map(pool).replace(spatial=out)


def _pool(avg, window_shape, strides, padding, normalize_edges, batch_axis, channel_axis):
    window = _tuple("window_shape", window_shape)
    strides = (1,) * len(window) if strides is None else _tuple("strides", strides, len(window))
    if not isinstance(normalize_edges, bool):
        raise ValueError(f"normalize_edges must be a bool, got {normalize_edges!r}")
    _check_channel_axes(batch_axis, channel_axis, "AvgPool" if avg else "SumPool")
    return _Pool(avg, window, strides, _padding(padding), normalize_edges).triple()


def AvgPool(window_shape, strides=None, padding: str = "VALID", normalize_edges: bool = False,
            batch_axis: int = 0, channel_axis: int = -1):
    """Average pooling (``strides`` default to 1, as in neural-tangents)."""
    return _pool(True, window_shape, strides, padding, normalize_edges, batch_axis, channel_axis)


def SumPool(window_shape, strides=None, padding: str = "VALID", batch_axis: int = 0,
            channel_axis: int = -1):
    """Sum pooling."""
    return _pool(False, window_shape, strides, padding, False, batch_axis, channel_axis)


class _GlobalPool(Layer):
    def __init__(self, avg):
        self.avg = avg
        self.name = "GlobalAvgPool" if avg else "GlobalSumPool"

    def init(self, key, shape):
        return (shape[0], shape[-1]), ()

    def apply(self, params, x, **kwargs):
        axes = tuple(range(1, x.ndim - 1))
        return jnp.mean(x, axes) if self.avg else jnp.sum(x, axes)

    def needs_full(self, out_full):
        return True

    def kernel(self, st: KState) -> KState:
        if not st.spatial:
            return st
        if not st.full:
            raise ValueError(f"{self.name} needs the full spatial covariance")

        def pool(k, batch_ndim):
            axes = tuple(range(batch_ndim, k.ndim))
            return jnp.mean(k, axes) if self.avg else jnp.sum(k, axes)

        return st.map(pool).replace(spatial=(), full=False)


def GlobalAvgPool(batch_axis: int = 0, channel_axis: int = -1):
    """Mean over all spatial axes."""
    _check_channel_axes(batch_axis, channel_axis, "GlobalAvgPool")
    return _GlobalPool(True).triple()


def GlobalSumPool(batch_axis: int = 0, channel_axis: int = -1):
    """Sum over all spatial axes."""
    _check_channel_axes(batch_axis, channel_axis, "GlobalSumPool")
    return _GlobalPool(False).triple()


class _Flatten(Layer):
    name = "Flatten"

    def init(self, key, shape):
        return (shape[0], prod(shape[1:])), ()

    def apply(self, params, x, **kwargs):
        return x.reshape(x.shape[0], -1)

    def needs_full(self, out_full):
        return False

    def kernel(self, st: KState) -> KState:
        if not st.spatial:
            return st
        nsp = len(st.spatial)

        def flat(k, batch_ndim):
            if st.full:
                for _ in range(nsp):
                    k = jnp.diagonal(k, axis1=batch_ndim, axis2=batch_ndim + 1)
            return jnp.mean(k, tuple(range(batch_ndim, k.ndim)))

        return st.map(flat).replace(spatial=(), full=False, gaussian=False,
                                    channels=st.channels * prod(st.spatial))


def Flatten(batch_axis: int = 0, batch_axis_out: int = 0):
    """Flatten all non-batch axes; the kernel averages the same-position covariances."""
    if batch_axis != 0 or batch_axis_out != 0:
        raise ValueError("Flatten: only batch_axis=0 and batch_axis_out=0 are supported")
    return _Flatten().triple()


class _Identity(Layer):
    name = "Identity"

    def kernel(self, st):
        return st


def Identity():
    """The identity layer."""
    return _Identity().triple()


# ----------------------------------------------------------------------------- LayerNorm

def _check_axes(axis, ndim):
    """LayerNorm's axes must exist in inputs of rank ``ndim`` (``a % ndim`` would wrap them)."""
    bad = [a for a in axis if not -ndim <= a < ndim]
    if bad:
        raise ValueError(f"LayerNorm axis {bad[0]} is out of range for inputs of rank {ndim} "
                         f"(axes {-ndim}..{ndim - 1}), got axis={axis}")


class _LayerNorm(Layer):
    name = "LayerNorm"

    def __init__(self, axis, eps):
        self.axis, self.eps = axis, eps

    def _spatial_axes(self, ndim):
        _check_axes(self.axis, ndim)
        axes = {a % ndim for a in self.axis}
        if ndim - 1 not in axes:
            raise ValueError(f"LayerNorm axis must include the channel axis (-1) for the "
                             f"infinite-width kernel to exist, got axis={self.axis}")
        if 0 in axes:
            raise ValueError("LayerNorm over the batch axis has no per-example kernel; "
                             f"got axis={self.axis}")
        return tuple(sorted(a - 1 for a in axes if a != ndim - 1))

    def apply(self, params, x, **kwargs):
        _check_axes(self.axis, x.ndim)
        axes = tuple(a % x.ndim for a in self.axis)
        mean = jnp.mean(x, axes, keepdims=True)
        var = jnp.var(x, axes, keepdims=True)
        return (x - mean) / jnp.sqrt(self.eps + var)

    def needs_full(self, out_full):
        return out_full

    def kernel(self, st: KState) -> KState:
        self.require_gaussian(st)
        sp_axes = self._spatial_axes(len(st.spatial) + 2)

        def norm(v):
            v = v + self.eps
            if sp_axes:
                v = jnp.mean(v, tuple(1 + a for a in sp_axes), keepdims=True)
            return v

        v1, v2 = variances(st)
        n1 = norm(v1)
        n2 = n1 if v2 is v1 else norm(v2)
        r1 = jnp.broadcast_to(n1, v1.shape)
        r2 = jnp.broadcast_to(n2, v2.shape)
        scale = jnp.sqrt(expand(r1, st.full, pair=True, first=True)
                         * expand(r2, st.full, pair=True, first=False))
        nngp = st.nngp / scale
        ntk = None if st.ntk is None else st.ntk / scale
        covs = []
        for c, r in ((st.cov1, r1), (st.cov2, r2)):
            if c is None:
                covs.append(None)
            else:
                covs.append(c / jnp.sqrt(expand(r, st.full, pair=False, first=True)
                                         * expand(r, st.full, pair=False, first=False)))
        return st.replace(nngp=nngp, ntk=ntk, cov1=covs[0], cov2=covs[1], is_input=False)


def LayerNorm(axis=-1, eps: float = 1e-12, batch_axis: int = 0, channel_axis: int = -1):
    r"""Normalise over ``axis`` (must include the channel axis): :math:`K_{12} \mapsto
    K_{12}/\sqrt{(\epsilon + \bar v_1)(\epsilon + \bar v_2)}`, :math:`\bar v` the variance
    averaged over the normalised spatial axes."""
    axis = (axis,) if isinstance(axis, int) and not isinstance(axis, bool) else tuple(axis)
    for a in axis:
        if isinstance(a, bool) or not isinstance(a, int):
            raise ValueError(f"axis must be integers, got {axis!r}")
    eps = check_scalar("eps", eps, lo=0.0)
    _check_channel_axes(batch_axis, channel_axis, "LayerNorm")
    return _LayerNorm(axis, eps).triple()


# ----------------------------------------------------------------------------- Dropout

class _Dropout(Layer):
    name = "Dropout"

    def __init__(self, rate, mode):
        self.rate, self.mode = rate, mode

    def apply(self, params, x, *, rng=None, **kwargs):
        if self.mode == "test" or self.rate == 1.0:
            return x
        if rng is None:
            raise ValueError("Dropout in 'train' mode needs apply_fn(..., rng=key)")
        keep = jax.random.bernoulli(rng, self.rate, x.shape)
        return jnp.where(keep, x / self.rate, 0.0)

    def kernel(self, st: KState) -> KState:
        if self.mode == "test":
            return st
        if st.is_input:
            raise ValueError("Dropout cannot be applied to the input layer (its kernel is not "
                             "defined there); put it after a Dense or Conv layer")
        factor = 1.0 / self.rate

        def diag_mul(k, batch_ndim, same_batch):
            nsp = len(st.spatial)
            mask = None
            if same_batch:
                n = k.shape[0]
                eye = jnp.eye(n, dtype=bool)
                mask = eye.reshape(eye.shape + (1,) * (k.ndim - 2))
            if st.full:
                for i in range(nsp):
                    a = batch_ndim + 2 * i
                    m = k.shape[a]
                    e = jnp.eye(m, dtype=bool)
                    shape = [1] * k.ndim
                    shape[a], shape[a + 1] = m, m
                    e = e.reshape(shape)
                    mask = e if mask is None else mask & e
            if mask is None:
                return k * factor
            return jnp.where(mask, k * factor, k)

        nngp = diag_mul(st.nngp, 2, True) if st.symmetric else st.nngp
        ntk = st.ntk
        if ntk is not None and st.symmetric:
            ntk = diag_mul(ntk, 2, True)
        cov = [None if c is None else diag_mul(c, 1, False) for c in (st.cov1, st.cov2)]
        return st.replace(nngp=nngp, ntk=ntk, cov1=cov[0], cov2=cov[1], gaussian=False)


def Dropout(rate: float, mode: str = "train"):
    """Dropout with KEEP probability ``rate`` (neural-tangents' convention); ``apply_fn``
    needs ``rng=`` in train mode. Kernel: same-example same-position entries times 1/rate."""
    rate = check_scalar("rate", rate, lo=0.0, hi=1.0, lo_open=True)
    check_choice("mode", mode, ("train", "test"))
    return _Dropout(rate, mode).triple()

