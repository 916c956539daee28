r"""Nonlinearities: every map is an :class:`~theorysim.kernels.Activation`'s ``dual``, the same
code :func:`theorysim.kernels.mlp_kernel` uses:
:math:`K \mapsto \mathbb E[\phi(u)\phi(v)]`, :math:`\Theta \mapsto \Theta\,\mathbb E[\phi'(u)
\phi'(v)]` with :math:`(u, v)` Gaussian of covariance :math:`[[K_{11}, K_{12}],[K_{12},
K_{22}]]` at each pair of positions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from theorysim.checks import check_scalar

from .. import _activations as act
from .. import _dual as dual
from .._analytic import quadrature_error
from .._kinks import locate_kinks
from ._core import KState, Layer, outer


class _Nonlinearity(Layer):
    def __init__(self, activation: act.Activation, name: str, fn: Callable | None = None):
        self.activation, self.name, self.fn = activation, name, fn

    def apply(self, params, x, **kwargs):
        return (self.fn or self.activation)(x)

    def kernel(self, st: KState) -> KState:
        self.require_gaussian(st)
        (k11, k22), c1, c2 = outer(st, lambda v: v)
        want = st.ntk is not None
        nngp, dphi = self.activation.dual(k11, k22, st.nngp, derivative=want)
        err, nodes = st.quad_err, st.quad_nodes
        if isinstance(self.activation, act.Elementwise):
            # error estimate: the same rule with half and a quarter of the nodes
            def at(m):
                return dataclasses.replace(self.activation, order=m).dual(
                    k11, k22, st.nngp, derivative=want)

            err = jnp.maximum(err, quadrature_error(at, self.activation.order, (nngp, dphi)))
            nodes = max(nodes, self.activation.order)
        covs = []
        for c, (a, b) in ((st.cov1, c1), (st.cov2, c2)):
            covs.append(None if c is None else self.activation.dual(a, b, c, derivative=False)[0])
        return st.replace(nngp=nngp, ntk=st.ntk * dphi if want else None, cov1=covs[0],
                          cov2=covs[1], is_input=False, gaussian=False, quad_err=err,
                          quad_nodes=nodes)



def _layer(activation, name, fn=None):
    return _Nonlinearity(activation, name, fn).triple()


def _num(name, v):
    return check_scalar(name, v)


def Relu(do_stabilize: bool = False):
    """:math:`\\max(x, 0)` (arc-cosine kernel; exact zero angle on the diagonal)."""
    return _layer(act.LeakyRelu(0.0), "Relu")


def LeakyRelu(alpha: float, do_stabilize: bool = False):
    """:math:`\\max(x, 0) + \\alpha\\min(x, 0)`."""
    return _layer(act.LeakyRelu(_num("alpha", alpha)), "LeakyRelu")


def Abs(do_stabilize: bool = False):
    """:math:`|x|`."""
    return _layer(act.Abs(), "Abs")


def ABRelu(a: float, b: float, do_stabilize: bool = False):
    """:math:`a\\min(x, 0) + b\\max(x, 0)`."""
    return _layer(dual.ABRelu(_num("a", a), _num("b", b)), "ABRelu")


def Sign():
    """:math:`\\mathrm{sign}(x)` (NTK contribution zero, as neural-tangents)."""
    return _layer(act.Sign(), "Sign")


def Erf(a: float = 1.0, b: float = 1.0, c: float = 0.0):
    """:math:`a\\,\\mathrm{erf}(bx) + c`."""
    return _layer(act.Erf(_num("a", a), _num("b", b), _num("c", c)), "Erf")


def Sigmoid_like():
    """neural-tangents' erf approximation of the logistic sigmoid."""
    return Erf(a=0.5, b=1 / 2.4020563531719796, c=0.5)


def Sin(a: float = 1.0, b: float = 1.0, c: float = 0.0):
    """:math:`a\\sin(bx + c)`."""
    return _layer(act.Sin(_num("a", a), _num("b", b), _num("c", c)), "Sin")


def Cos(a: float = 1.0, b: float = 1.0, c: float = 0.0):
    """:math:`a\\cos(bx + c)`."""
    return _layer(act.Sin(_num("a", a), _num("b", b), _num("c", c) + math.pi / 2), "Cos")


def Gelu(approximate: bool = False):
    """Exact GELU :math:`x\\Phi(x)` (``approximate=True`` uses the tanh form in ``apply_fn``
    while the kernel stays the exact one, as in neural-tangents)."""
    if not isinstance(approximate, bool):
        raise ValueError(f"approximate must be a bool, got {approximate!r}")
    fn = (lambda x: jax.nn.gelu(x, approximate=True)) if approximate else None
    return _layer(act.Gelu(), "Gelu", fn)


def Exp(a: float = 1.0, b: float = 1.0):
    """:math:`a e^{bx}`."""
    return _layer(dual.Exp(_num("a", a), _num("b", b)), "Exp")


def Gaussian(a: float = 1.0, b: float = -1.0):
    """:math:`a e^{bx^2}`."""
    return _layer(dual.Gaussian(_num("a", a), _num("b", b)), "Gaussian")


def ExpNormalized(gamma: float = 1.0, shift: float = -1.0, do_clip: bool = False):
    """neural-tangents' normalised-exponential kernel map (kernel only, no finite network)."""
    return _layer(dual.ExpNormalized(_num("gamma", gamma), _num("shift", shift), bool(do_clip)),
                  "ExpNormalized")


def Gabor():
    """:math:`e^{-x^2}\\sin x`."""
    return _layer(dual.Gabor(), "Gabor")


def Rbf(gamma: float = 1.0):
    """:math:`\\sqrt2\\sin(\\sqrt{2\\gamma}x + \\pi/4)` (random Fourier features of an RBF)."""
    return _layer(dual.Rbf(check_scalar("gamma", gamma, lo=0.0, lo_open=True)), "Rbf")


def _degree(degree):
    return check_scalar("degree", degree, lo=0, integer=True)


def Monomial(degree: int):
    """:math:`x^n` (any ``n >= 0``; exact Hermite-expansion closed form)."""
    return _layer(dual.monomial(_degree(degree)), "Monomial")


def RectifiedMonomial(degree: int):
    """:math:`1_{x\\ge0}x^n`; finite on the diagonal (neural-tangents returns NaN there)."""
    return _layer(dual.RectifiedMonomial(_degree(degree)), "RectifiedMonomial")


def Polynomial(coef):
    """:math:`\\sum_i c_i x^i`."""
    if isinstance(coef, str) or not hasattr(coef, "__len__"):
        raise ValueError(f"coef must be a sequence of numbers, got {coef!r}")
    return _layer(dual.Polynomial(tuple(_num(f"coef[{i}]", c) for i, c in enumerate(coef))),
                  "Polynomial")


def Hermite(degree: int):
    """Normalised Hermite polynomial :math:`He_n(x)/\\sqrt{n!}` (exact at any variance)."""
    return _layer(dual.hermite(_degree(degree)), "Hermite")


def Elementwise(fn: Callable | None = None, nngp_fn: Callable | None = None,
                d_nngp_fn: Callable | None = None):
    """Any elementwise ``fn``; kernels from ``nngp_fn(cov12, var1, var2)`` (and ``d_nngp_fn``,
    default: its derivative in ``cov12`` by autodiff), or by 2-D Gauss-Hermite quadrature of
    ``fn`` (256 nodes per dimension; split at the kinks of a kinked ``fn``, located
    numerically) when ``nngp_fn`` is ``None``; quadrature kernels carry an
    error estimate and follow the solver contract (``kernel_fn(..., tol=, throw=)``)."""
    if fn is None and nngp_fn is None:
        raise ValueError("Elementwise needs fn or nngp_fn")
    if fn is not None and not callable(fn):
        raise ValueError(f"fn must be callable, got {fn!r}")
    if nngp_fn is None:
        return _layer(act.Elementwise(fn, order=256, name=getattr(fn, "__name__", "fn")),
                      "Elementwise")
    if not callable(nngp_fn) or (d_nngp_fn is not None and not callable(d_nngp_fn)):
        raise ValueError("nngp_fn and d_nngp_fn must be callables (cov12, var1, var2) -> float")
    if d_nngp_fn is None:
        d_nngp_fn = jax.grad(nngp_fn)
    return _layer(dual.KernelFunctions(fn, nngp_fn, d_nngp_fn), "Elementwise")


#: smallest order of the split rule for kinked callables (16 Gauss-Legendre nodes per piece).
#: Measured for ReLU through two layers (variances ~1-10): 4 nodes per piece (order 32) are
#: 6e-2 off, 8 (order 64) 5e-5, 12 (order 96) 6e-9, 16 (order 128) 3e-13.
KINKED_MIN_ORDER = 128


def ElementwiseNumerical(fn: Callable, deg: int, df: Callable | None = None):
    """``fn`` by 2-D Gauss-Hermite quadrature with ``deg`` nodes per dimension; a kinked
    ``fn`` (kinks located numerically) by the split rule of ``theorysim.kernels._kinks``
    with ``max(deg, 128) // 8`` Gauss-Legendre nodes per piece. Any ``deg`` is accepted, as
    in neural-tangents; for a kinked ``fn`` a ``deg`` below 128 is raised to 128
    (:data:`KINKED_MIN_ORDER`: fewer nodes per piece miss the default tolerance, see there),
    and the kernel's ``iterations`` reports the order used."""
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {fn!r}")
    # NumPy's Gauss-Hermite weights overflow beyond ~300 nodes
    deg = check_scalar("deg", deg, lo=2, hi=256, integer=True)
    kinks = locate_kinks(fn)
    if kinks:
        deg = max(deg, KINKED_MIN_ORDER)
    return _layer(act.Elementwise(fn, order=deg, deriv=df, name=getattr(fn, "__name__", "fn"),
                                  kinks=kinks), "ElementwiseNumerical")


def MaxPool(*args, **kwargs):
    """Not available: max pooling has no closed-form infinite-width kernel."""
    raise ValueError("MaxPool has no closed-form infinite-width kernel; estimate it with "
                     "theorysim.kernels.monte_carlo_kernel over the finite network, or use "
                     "AvgPool")

