r"""neural-tangents' ``predict`` functions with its names, arguments and closures.

``from theorysim.kernels import predict`` replaces ``neural_tangents.predict``: each builder
returns a ``predict_fn`` as neural-tangents' does. The arithmetic is
:mod:`theorysim.kernels`' (:func:`~theorysim.kernels.gradient_descent_mse`,
:func:`~theorysim.kernels.gradient_descent_mse_ensemble`,
:func:`~theorysim.kernels.gp_inference`): one eigendecomposition for all times, Cholesky for
infinite time, checks for non-symmetric or indefinite kernels. Conventions (Lee et al. 2019,
arXiv 1902.06720): loss :math:`\frac{1}{2|Y|}\lVert f - Y\rVert^2`, ``diag_reg`` relative to
:math:`\mathrm{tr}K/n` unless ``diag_reg_absolute_scale=True``.

Example:
  >>> import jax.numpy as jnp
  >>> from theorysim.kernels import stax, predict
  >>> _, _, kernel_fn = stax.serial(stax.Dense(64), stax.Relu(), stax.Dense(1))
  >>> x_train, y_train = jnp.eye(4, 3), jnp.ones((4, 1))
  >>> predict_fn = predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train,
  ...                                                    diag_reg=1e-4)
  >>> predict_fn(x_test=x_train[:2], get="nngp").shape
  (2, 1)
"""

from __future__ import annotations

import collections
import math

import jax.numpy as jnp

from theorysim.checks import check_scalar

from . import _predict as _p
from ._analytic import Kernel

Gaussian = collections.namedtuple("Gaussian", ["mean", "covariance"])


def _as_kernel(name: str, k):
    """A ``Kernel`` as given; an array (neural-tangents accepts one) stands for both nngp and
    ntk; ``None`` stays ``None``; anything else is a ``ValueError`` naming ``name``."""
    if k is None or isinstance(k, Kernel):
        return k
    if hasattr(k, "nngp") or hasattr(k, "ntk"):  # neural-tangents' Kernel or namedtuple
        return Kernel(getattr(k, "nngp", None), getattr(k, "ntk", None))
    if not hasattr(k, "shape"):
        raise ValueError(f"{name} must be a Kernel or a kernel matrix, got {type(k).__name__}")
    return Kernel(k, k)


def _relative(k, diag_reg, absolute):
    diag_reg = check_scalar("diag_reg", diag_reg, lo=0.0)
    if not isinstance(absolute, bool):
        raise ValueError(f"diag_reg_absolute_scale must be a bool, got {absolute!r}")
    if not absolute or diag_reg == 0.0:
        return diag_reg
    n = k.shape[0]
    return diag_reg * n / float(jnp.trace(jnp.asarray(k)))


def _gets(get):
    if get is None:
        return None, ("nngp", "ntk")
    names = (get,) if isinstance(get, str) else tuple(get)
    for g in names:
        if g not in ("nngp", "ntk"):
            raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them, got {get!r}")
    return get, names


def _pack(get, names, values):
    if isinstance(get, str):
        return values[0]
    return collections.namedtuple("Prediction", names)(*values)


def gradient_descent_mse(k_train_train, y_train, learning_rate: float = 1.0,
                         diag_reg: float = 0.0, diag_reg_absolute_scale: bool = False,
                         trace_axes=(-1,)):
    """``predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)`` for a network
    linearised around initialisation and trained by gradient flow on MSE; returns
    ``fx_train_t`` or ``(fx_train_t, fx_test_t)`` when test inputs are given."""
    _p._check_train(k_train_train, y_train)  # ValueError now, not at the first prediction
    reg = _relative(k_train_train, diag_reg, diag_reg_absolute_scale)
    check_scalar("learning_rate", learning_rate, lo=0.0, lo_open=True, hi=math.inf,
                 hi_open=True)

    def predict_fn(t=None, fx_train_0=0.0, fx_test_0=None, k_test_train=None):
        out = _p.gradient_descent_mse(k_train_train, y_train, k_test_train, t=t,
                                      learning_rate=learning_rate, diag_reg=reg,
                                      fx_train_0=fx_train_0,
                                      fx_test_0=0.0 if fx_test_0 is None else fx_test_0)
        if k_test_train is None:
            return out.train
        return out.train, out.test

    return predict_fn


def gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, learning_rate: float = 1.0,
                                  diag_reg: float = 0.0, diag_reg_absolute_scale: bool = False,
                                  trace_axes=(-1,), **kernel_fn_train_train_kwargs):
    """``predict_fn(t=None, x_test=None, get=None, compute_cov=False)``: mean (and covariance)
    over initialisations of infinitely wide networks trained by gradient flow on MSE.
    ``x_test=None`` predicts on the training inputs."""
    if not callable(kernel_fn):
        raise ValueError(f"kernel_fn must be a kernel function (e.g. stax's third element), "
                         f"got {kernel_fn!r}")
    k_dd = kernel_fn(x_train, None, ("nngp", "ntk"), **kernel_fn_train_train_kwargs)
    reg = _relative(k_dd.ntk, diag_reg, diag_reg_absolute_scale)

    def predict_fn(t=None, x_test=None, get=None, compute_cov: bool = False, **kwargs):
        get_, names = _gets(get)
        xt = x_train if x_test is None else x_test
        k_td = kernel_fn(xt, x_train, ("nngp", "ntk"), **kwargs)
        k_tt = None
        if compute_cov:
            tt = kernel_fn(xt, None, "nngp", **kwargs)
            k_tt = Kernel(tt, tt)
        values = []
        for g in names:
            post = _p.gradient_descent_mse_ensemble(
                Kernel(k_dd.nngp, k_dd.ntk), y_train, Kernel(k_td.nngp, k_td.ntk), k_tt, t=t,
                get=g, learning_rate=learning_rate, diag_reg=reg)
            values.append(Gaussian(post.mean, post.cov) if compute_cov else post.mean)
        return _pack(get_, names, values)

    return predict_fn


def gp_inference(k_train_train, y_train, diag_reg: float = 0.0,
                 diag_reg_absolute_scale: bool = False, trace_axes=(-1,)):
    """``predict_fn(get=None, k_test_train=None, k_test_test=None)``: the Bayesian posterior
    (``"nngp"``) or the infinite-time NTK ensemble (``"ntk"``); a :class:`Gaussian` when
    ``k_test_test`` is given, else the mean. Each kernel is a ``Kernel`` or, as in
    neural-tangents, one array used for every ``get``."""
    k_train_train = _as_kernel("k_train_train", k_train_train)
    if k_train_train is None:
        raise ValueError("k_train_train must be a Kernel or a kernel matrix, got None")
    # validated here, when the predictor is built (square, symmetric, finite; y_train (n,) or
    # (n, c)), not at the first predict_fn call
    parts = [(f"k_train_train.{g}", getattr(k_train_train, g)) for g in ("nngp", "ntk")
             if getattr(k_train_train, g) is not None]
    if not parts:
        raise ValueError("k_train_train must hold an nngp or ntk matrix, got neither")
    for name, k in parts:
        _p._check_train(k, y_train, name)
    base = k_train_train.ntk if getattr(k_train_train, "ntk", None) is not None else \
        k_train_train.nngp
    reg = _relative(base, diag_reg, diag_reg_absolute_scale)

    def predict_fn(get=None, k_test_train=None, k_test_test=None):
        get_, names = _gets(get)
        if k_test_train is None:
            raise ValueError("k_test_train must be given (a Kernel with nngp and ntk)")
        k_test_train = _as_kernel("k_test_train", k_test_train)
        k_test_test = _as_kernel("k_test_test", k_test_test)
        values = []
        for g in names:
            post = _p.gp_inference(k_train_train, y_train, k_test_train, k_test_test, get=g,
                                   diag_reg=reg)
            values.append(post.mean if k_test_test is None else Gaussian(post.mean, post.cov))
        return _pack(get_, names, values)

    return predict_fn


def max_learning_rate(ntk_train_train, y_train_size: int | None = None,
                      momentum: float = 0.0, eps: float = 1e-12) -> float:
    """Largest stable discrete-GD learning rate, neural-tangents' formula."""
    if ntk_train_train is None or jnp.ndim(ntk_train_train) != 2:
        raise ValueError(f"ntk_train_train must be a square (n, n) kernel matrix, got "
                         f"{type(ntk_train_train).__name__} of shape "
                         f"{jnp.shape(ntk_train_train) if ntk_train_train is not None else None}")
    n = jnp.shape(ntk_train_train)[0] if y_train_size is None else y_train_size
    return _p.max_learning_rate(ntk_train_train, n, momentum)
