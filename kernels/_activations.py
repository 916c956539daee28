r"""Dual kernels of elementwise activations: closed forms and 2-D Gauss-Hermite quadrature.

For a centred Gaussian pair :math:`(u, v) \sim \mathcal N(0, [[k_{11}, k_{12}], [k_{12}, k_{22}]])`
every activation here returns the pair

.. math::
    \hat\phi(k_{11}, k_{22}, k_{12}) = \mathbb E[\phi(u)\phi(v)], \qquad
    \hat\phi'(k_{11}, k_{22}, k_{12}) = \mathbb E[\phi'(u)\phi'(v)],

the maps that carry the NNGP and the NTK through a nonlinearity (Lee et al. 2018,
arXiv 1711.00165; Jacot et al. 2018, arXiv 1806.07572). All methods broadcast over their
arguments (rows ``(b, 1)``, columns ``(1, n)``, cross ``(b, n)``) and are jittable.

Activations are frozen (hashable) dataclasses so that they can be static arguments of ``jit``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

from theorysim.checks import as_finite_array, check_bool, check_scalar

from . import _kinks

_TWO_PI = 2.0 * math.pi


def _atan_coefficients(degree: int) -> tuple[float, ...]:
    """Polynomial ``p`` with ``atan(u) = u p(u^2)`` on ``|u| <= tan(pi/8)``.

    The Taylor series of ``atan(sqrt(z))/sqrt(z)`` (30 terms, exact to rounding on
    ``z <= tan(pi/8)^2``) economised by Chebyshev truncation to ``degree``: max error 1.1e-16
    at degree 11 (float64), 6e-10 at degree 5 (float32).
    """
    zmax = math.tan(math.pi / 8) ** 2
    taylor = np.polynomial.Polynomial([(-1) ** k / (2 * k + 1) for k in range(30)])
    cheb = taylor.convert(kind=np.polynomial.Chebyshev, domain=[0.0, zmax])
    short = np.polynomial.Chebyshev(cheb.coef[:degree + 1], domain=[0.0, zmax])
    return tuple(float(c) for c in short.convert(kind=np.polynomial.Polynomial).coef)


_ATAN_COEF = {8: _atan_coefficients(11), 4: _atan_coefficients(5), 2: _atan_coefficients(5)}
_TAN_PI_8 = math.tan(math.pi / 8)


def atan2_upper(y, x):
    """``atan2(y, x)`` for ``y >= 0`` (angles in ``[0, pi]``) from mul/add/div/select only.

    XLA lowers ``atan2`` on CPU to a scalar libm call (~17 ns per element); this vectorises
    (~3x faster) and is accurate to a few ulps: reduction to ``t = min/max in [0, 1]``, then to
    ``|u| <= tan(pi/8)`` by ``u = (t - 1)/(t + 1)``, then :func:`_atan_coefficients`.
    """
    dtype = jnp.result_type(y, x)
    coef = _ATAN_COEF[jnp.dtype(dtype).itemsize]
    ax = jnp.abs(x)
    swap = y > ax
    num = jnp.where(swap, ax, y)
    den = jnp.where(swap, y, ax)
    t = num / jnp.where(den > 0, den, 1.0)
    big = t > _TAN_PI_8
    u = jnp.where(big, (t - 1.0) / (t + 1.0), t)
    z = u * u
    p = jnp.full_like(z, coef[-1])
    for c in coef[-2::-1]:
        p = p * z + c
    a = u * p + jnp.where(big, 0.25 * math.pi, 0.0)
    a = jnp.where(swap, 0.5 * math.pi - a, a)
    return jnp.where(x < 0, math.pi - a, a)


def _asin_coefficients(degree: int) -> tuple[float, ...]:
    """Polynomial ``g`` with ``asin(w) = w + w z g(z)``, ``z = w^2``, on ``z <= 1/4``.

    The Taylor series of ``(asin(sqrt(z))/sqrt(z) - 1)/z`` (60 exact rational terms, converged
    to rounding on ``z <= 1/4``) economised by Chebyshev truncation to ``degree``: the dropped
    tail is 1.3e-17 at degree 12 (float64) and 3.7e-9 at degree 5 (float32); it enters
    ``asin`` multiplied by ``z <= 1/4``.
    """
    taylor = np.polynomial.Polynomial(
        [float(Fraction(math.comb(2 * k, k), 4**k * (2 * k + 1))) for k in range(1, 61)])
    cheb = taylor.convert(kind=np.polynomial.Chebyshev, domain=[0.0, 0.25])
    short = np.polynomial.Chebyshev(cheb.coef[:degree + 1], domain=[0.0, 0.25])
    return tuple(float(c) for c in short.convert(kind=np.polynomial.Polynomial).coef)


_ASIN_COEF = {8: _asin_coefficients(12), 4: _asin_coefficients(5), 2: _asin_coefficients(5)}


def _asin_parts(x):
    """Return ``(a, big)``: ``asin(|x|) = a`` where ``|x| <= 1/2``, else ``pi/2 - 2a``.

    Cephes' reduction: ``|x| > 1/2`` uses ``asin(|x|) = pi/2 - 2 asin(sqrt((1-|x|)/2))``
    (``1 - |x|`` is exact there). One square root, no division, a degree-12 (float64) / 5
    (float32) polynomial: vectorises on CPU, where XLA calls scalar libm for ``asin``/``atan2``.
    """
    coef = _ASIN_COEF[jnp.dtype(jnp.result_type(x)).itemsize]
    ax = jnp.abs(x)
    big = ax > 0.5
    z = jnp.where(big, 0.5 - 0.5 * ax, ax * ax)
    w = jnp.where(big, jnp.sqrt(z), ax)
    p = jnp.full_like(z, coef[-1])
    for c in coef[-2::-1]:
        p = p * z + c
    return w + (w * z) * p, big


def arcsin_poly(x):
    """``arcsin(x)`` for ``|x| <= 1`` from mul/add/select and one sqrt (a few ulps)."""
    a, big = _asin_parts(x)
    pos = jnp.where(big, 0.5 * math.pi - 2.0 * a, a)
    return jnp.where(x < 0, -pos, pos)


def arccos_poly(x):
    """``arccos(x)`` for ``|x| <= 1``; exact ``0`` at ``x = 1`` and accurate near it."""
    a, big = _asin_parts(x)
    pos = jnp.where(big, 2.0 * a, 0.5 * math.pi - a)
    return jnp.where(x < 0, math.pi - pos, pos)


def _cosine(k12, inv1, inv2):
    """``cos(theta) = k12 inv1 inv2`` (``inv = 1/sqrt(k)``), snapped to ``+-1`` within 4 eps.

    A ``cos`` within a few ulps of ``+-1`` is rounding noise (on the diagonal of K(X, X)
    ``k12 == k11 == k22`` up to ulps): it is set to ``+-1`` so that the angle there is exactly
    zero. Zero variance (``inv = 0``) gives ``cos = 1`` (angle zero), as ``atan2(0, 0) = 0``.
    """
    inv = inv1 * inv2
    c = jnp.where(inv > 0, k12 * inv, 1.0)
    tiny = 4.0 * jnp.finfo(jnp.result_type(c)).eps
    return jnp.where(1.0 - jnp.abs(c) <= tiny, jnp.sign(c), c)


def _inv_sqrt(k):
    """``1/sqrt(k)`` for ``k > 0``, else ``0`` (applied to the (b, 1)/(1, n) variances).

    The guard is inside the square root, so that nothing of it is left to evaluate per entry
    of a (b, n) block (XLA keeps expensive per-row ops out of a fusion that broadcasts them).
    """
    return jax.lax.rsqrt(jnp.where(k > 0, k, jnp.inf))


def _angle(k11, k22, k12):
    """Return ``(s sin(theta), theta)`` with ``s = sqrt(k11 k22)``, ``cos(theta) = k12 / s``.

    The reciprocal square roots are taken of ``k11`` and ``k22`` themselves (shapes ``(b, 1)``,
    ``(1, n)`` for a block: one per row/column), so the ``(b, n)`` part has no division and
    every square root there has a single use. That matters on XLA:CPU: an expensive op whose
    result is used twice is materialised, and all the cheap arithmetic feeding it is then
    recomputed in each consumer (it made the depth-3 float64 kernel recompute each layer's
    polynomial several times). ``sin(theta) = sqrt((1-|c|)(1+|c|))`` (``1 - |c|`` exact near
    ``|c| = 1``); the angle is exactly zero where :func:`_cosine` snaps ``c`` to 1.
    """
    i1, i2 = _inv_sqrt(k11), _inv_sqrt(k22)
    c = _cosine(k12, i1, i2)
    ac = jnp.abs(c)
    s = jnp.sqrt(jnp.maximum(k11, 0.0)) * jnp.sqrt(jnp.maximum(k22, 0.0))
    sin_s = s * jnp.sqrt(jnp.maximum((1.0 - ac) * (1.0 + ac), 0.0))
    return sin_s, arccos_poly(c)


#: the largest integer parameter of an activation, by field name (unrolled recursions and
#: quadrature nodes: a larger value would compile or run for hours); others: 10**6.
_INT_MAX = {"degree": 256, "order": 4096}


class Activation:
    """Base class: subclasses implement :meth:`dual` and :meth:`__call__` (the function).

    Subclasses are frozen dataclasses; their numeric fields are checked on construction
    (finite ``float`` fields, ``int`` fields in ``0 .. _INT_MAX``, real ``bool`` flags):
    ``LeakyRelu(alpha=inf)`` is a ``ValueError`` naming ``alpha``, not a NaN kernel later.
    """

    #: extra cost factor of :meth:`dual` relative to a closed form (used to size blocks).
    cost: int = 1

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v, tp = getattr(self, f.name), str(f.type)
            if tp == "float":
                check_scalar(f.name, v, lo=-math.inf, hi=math.inf, lo_open=True, hi_open=True)
            elif tp == "int":
                check_scalar(f.name, v, lo=0, hi=_INT_MAX.get(f.name, 10**6), integer=True)
            elif tp == "bool":
                check_bool(f.name, v)
            elif tp == "tuple[float, ...]":
                as_finite_array(f.name, v, ndim=1, min_size=1)

    def dual(self, k11, k22, k12, *, derivative: bool = True):
        """Return ``(E[phi(u) phi(v)], E[phi'(u) phi'(v)] or None)``."""
        raise NotImplementedError

    def __call__(self, x):
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Identity(Activation):
    r""":math:`\phi(x) = x`: :math:`\hat\phi = k_{12}`, :math:`\hat\phi' = 1`."""

    def dual(self, k11, k22, k12, *, derivative=True):
        return k12, (jnp.ones_like(k12) if derivative else None)

    def __call__(self, x):
        return x


@dataclasses.dataclass(frozen=True)
class LeakyRelu(Activation):
    r""":math:`\phi(x) = \max(x, 0) + \alpha \min(x, 0)`; ``alpha = 0`` is ReLU.

    Arc-cosine kernels of order 1 and 0 (Cho & Saul 2009):
    :math:`\mathbb E[\mathrm{relu}(u)\mathrm{relu}(v)] = (s\sin\theta + (\pi-\theta)k_{12})/2\pi`,
    :math:`\mathbb E[1_{u>0}1_{v>0}] = (\pi-\theta)/2\pi`, with :math:`s = \sqrt{k_{11}k_{22}}`,
    :math:`\cos\theta = k_{12}/s`. With ``alpha``,
    :math:`\phi = \mathrm{relu}(x) - \alpha\,\mathrm{relu}(-x)` gives
    :math:`(1+\alpha^2)\,\mathbb E[\mathrm{relu}\,\mathrm{relu}]
    - 2\alpha\,\mathbb E[\mathrm{relu}(u)\mathrm{relu}(-v)]` and
    :math:`\hat\phi' = (1+\alpha^2)(\pi-\theta)/2\pi + 2\alpha\theta/2\pi`.
    """

    alpha: float = 0.0

    def dual(self, k11, k22, k12, *, derivative=True):
        sin_s, theta = _angle(k11, k22, k12)
        a = self.alpha
        pp = (sin_s + (math.pi - theta) * k12) / _TWO_PI        # E relu(u) relu(v)
        if a == 0.0:
            nngp = pp
        else:
            pm = (sin_s - theta * k12) / _TWO_PI                  # E relu(u) relu(-v)
            nngp = (1.0 + a * a) * pp - 2.0 * a * pm
        if not derivative:
            return nngp, None
        dpp = (math.pi - theta) / _TWO_PI                         # E 1[u>0] 1[v>0]
        if a == 0.0:
            return nngp, dpp
        dpm = theta / _TWO_PI                                     # E 1[u>0] 1[v<0]
        return nngp, (1.0 + a * a) * dpp + 2.0 * a * dpm

    def __call__(self, x):
        return jnp.where(x > 0, x, self.alpha * x)


def Relu() -> LeakyRelu:
    """ReLU, ``LeakyRelu(alpha=0)``."""
    return LeakyRelu(0.0)


@dataclasses.dataclass(frozen=True)
class Abs(Activation):
    r""":math:`\phi(x) = |x|`: :math:`\hat\phi = 2(s\sin\theta + (\pi/2-\theta)k_{12})/\pi`,
    :math:`\hat\phi' = 1 - 2\theta/\pi`."""

    def dual(self, k11, k22, k12, *, derivative=True):
        sin_s, theta = _angle(k11, k22, k12)
        nngp = (2.0 / math.pi) * (sin_s + (0.5 * math.pi - theta) * k12)
        return nngp, (1.0 - theta * (2.0 / math.pi) if derivative else None)

    def __call__(self, x):
        return jnp.abs(x)


@dataclasses.dataclass(frozen=True)
class Sign(Activation):
    r""":math:`\phi(x) = \mathrm{sign}(x)`: :math:`\hat\phi = 1 - 2\theta/\pi`; the derivative is
    zero almost everywhere, so :math:`\hat\phi' = 0` (as in neural-tangents)."""

    def dual(self, k11, k22, k12, *, derivative=True):
        _, theta = _angle(k11, k22, k12)
        return 1.0 - theta * (2.0 / math.pi), (jnp.zeros_like(theta) if derivative else None)

    def __call__(self, x):
        return jnp.sign(x)


@dataclasses.dataclass(frozen=True)
class Step(Activation):
    r""":math:`\phi(x) = 1_{x>0}`: :math:`\hat\phi = (\pi-\theta)/2\pi`, :math:`\hat\phi' = 0`."""

    def dual(self, k11, k22, k12, *, derivative=True):
        _, theta = _angle(k11, k22, k12)
        return (math.pi - theta) / _TWO_PI, (jnp.zeros_like(theta) if derivative else None)

    def __call__(self, x):
        return (x > 0).astype(jnp.result_type(x, float))


@dataclasses.dataclass(frozen=True)
class Erf(Activation):
    r""":math:`\phi(x) = a\,\mathrm{erf}(b x) + c` (``amplitude``, ``scale``, ``shift``).

    .. math::
        \hat\phi = \frac{2a^2}{\pi}\arcsin\frac{2b^2k_{12}}{\sqrt{(1+2b^2k_{11})(1+2b^2k_{22})}}
        + c^2,\qquad
        \hat\phi' = \frac{4a^2b^2}{\pi}\,\big[(1+2b^2k_{11})(1+2b^2k_{22})-4b^4k_{12}^2\big]^{-1/2}.

    (Williams 1997.)
    """

    amplitude: float = 1.0
    scale: float = 1.0
    shift: float = 0.0

    def dual(self, k11, k22, k12, *, derivative=True):
        a, b2, c = self.amplitude, self.scale**2, self.shift
        # arcsin(q / sqrt(p)) with p = (1 + 2b^2 k11)(1 + 2b^2 k22), q = 2b^2 k12: the inverse
        # square roots are per row/column, the (b, n) part is a polynomial arcsin (_angle).
        i1, i2 = _inv_sqrt(1.0 + 2.0 * b2 * k11), _inv_sqrt(1.0 + 2.0 * b2 * k22)
        inv = i1 * i2
        cos = jnp.clip((2.0 * b2 * k12) * inv, -1.0, 1.0)   # |cos| < 1: p - q^2 > 0
        nngp = (2.0 * a * a / math.pi) * arcsin_poly(cos)
        if c != 0.0:
            nngp = nngp + c * c
        if not derivative:
            return nngp, None
        ac = jnp.abs(cos)
        # (p - q^2)^(-1/2) = inv / sqrt(1 - cos^2)
        gap = jnp.maximum((1.0 - ac) * (1.0 + ac), jnp.finfo(jnp.result_type(ac)).tiny)
        return nngp, (4.0 * a * a * b2 / math.pi) * inv * jax.lax.rsqrt(gap)

    def __call__(self, x):
        return self.amplitude * jax.scipy.special.erf(self.scale * x) + self.shift


@dataclasses.dataclass(frozen=True)
class Sin(Activation):
    r""":math:`\phi(x) = a\sin(bx + c)`; ``Cos`` is ``c = pi/2``.

    .. math::
        \hat\phi = \tfrac{a^2}{2}\big[e^{-b^2(k_{11}+k_{22}-2k_{12})/2}
        - \cos(2c)\,e^{-b^2(k_{11}+k_{22}+2k_{12})/2}\big],

    and :math:`\hat\phi'` is :math:`a^2b^2/2` times the same bracket with ``+cos(2c)``.
    """

    amplitude: float = 1.0
    scale: float = 1.0
    shift: float = 0.0

    def dual(self, k11, k22, k12, *, derivative=True):
        a2, b2 = self.amplitude**2, self.scale**2
        c2 = math.cos(2.0 * self.shift)
        minus = jnp.exp(-0.5 * b2 * (k11 + k22 - 2.0 * k12))
        plus = jnp.exp(-0.5 * b2 * (k11 + k22 + 2.0 * k12))
        nngp = 0.5 * a2 * (minus - c2 * plus)
        return nngp, (0.5 * a2 * b2 * (minus + c2 * plus) if derivative else None)

    def __call__(self, x):
        return self.amplitude * jnp.sin(self.scale * x + self.shift)


def Cos(amplitude: float = 1.0, scale: float = 1.0) -> Sin:
    """:math:`a\\cos(bx) = a\\sin(bx + \\pi/2)`."""
    return Sin(amplitude, scale, 0.5 * math.pi)


# ----------------------------------------------------------------------------- quadrature

@dataclasses.dataclass(frozen=True)
class Elementwise(Activation):
    r"""Any elementwise JAX function, dual kernels by 2-D Gauss-Hermite quadrature.

    With :math:`u = \sqrt{k_{11}}\,z_1`, :math:`v = \sqrt{k_{22}}(\rho z_1 + \sqrt{1-\rho^2}z_2)`
    and probabilists' Gauss-Hermite nodes/weights :math:`(z_i, w_i)` of ``order`` points,

    .. math::
        \mathbb E[f(u)g(v)] \approx \sum_{i,j} w_i w_j\, f(u_i)\, g(v_{ij}).

    The derivative is ``jax.jvp`` of ``fn`` with a unit tangent (or ``deriv`` when given).
    Accuracy: exact for polynomials of degree < 2*order; for analytic activations (gelu, tanh,
    softplus, sin, ...) at pre-activation variances up to ~10 the default ``order = 64`` agrees
    with closed forms / neural-tangents to better than 1e-9 relative (tested at 1e-7).
    The cost per kernel entry is ``order**2`` evaluations (memory ``order`` per entry).

    Kinked activations (``kinks``: the points where ``fn`` or its derivative jumps, found by
    :func:`~theorysim.kernels._kinks.locate_kinks` for callables) use the split rule of
    :mod:`theorysim.kernels._kinks` instead, with ``order // 8`` Gauss-Legendre nodes per
    piece: Gauss-Hermite would converge only algebraically there (ReLU's derivative map: 1e-3
    at 256 nodes), the split rule geometrically (1e-15 at the default order, both maps).

    Args:
      fn: elementwise function ``R -> R`` written with ``jax.numpy``.
      order: number of Gauss-Hermite nodes per dimension.
      deriv: optional explicit derivative of ``fn``.
      name: label used in error messages.
      kinks: points where ``fn`` or ``fn'`` jumps; ``None`` (default): located numerically;
        ``()``: smooth (Gauss-Hermite). A kinked rule needs ``order >= 32``, so that the
        error estimate's three rules (``order // 8``, ``3 order // 32`` and ``order // 16``
        nodes per piece) differ; instances below 32 exist only inside that estimate.
    """

    fn: Callable
    order: int = 256
    deriv: Callable | None = None
    name: str = "callable"
    kinks: tuple[float, ...] | None = None

    def __post_init__(self):
        if not callable(self.fn):
            raise ValueError(f"fn must be an elementwise callable, got {self.fn!r}")
        super().__post_init__()
        if self.order < 1:
            raise ValueError(f"order must be >= 1, got {self.order}")
        if self.kinks is None:
            object.__setattr__(self, "kinks", _kinks.locate_kinks(self.fn))
        if self.kinks and self.order < 16:
            raise ValueError(f"order must be >= 32 for an activation with kinks (at "
                             f"{list(self.kinks)}), got {self.order}")

    @property
    def cost(self) -> int:  # type: ignore[override]
        return self.order

    def __call__(self, x):
        return self.fn(x)

    def derivative(self, x):
        if self.deriv is not None:
            return self.deriv(x)
        return jax.jvp(self.fn, (x,), (jnp.ones_like(x),))[1]

    def dual(self, k11, k22, k12, *, derivative=True):
        fns = [self.fn] + ([self.derivative] if derivative else [])
        if self.kinks:
            out = _kinks.split_expectations(fns, self.kinks, self.order // 8, k11, k22,
                                            k12)
            return out[0], (out[1] if derivative else None)
        z, w = _hermite_nodes(self.order)
        dtype = jnp.result_type(k12)
        z = jnp.asarray(z, dtype)
        w = jnp.asarray(w, dtype)
        s1 = jnp.sqrt(k11)
        s2 = jnp.sqrt(k22)
        s = s1 * s2
        safe = jnp.where(s > 0, s, 1.0)
        rho = jnp.clip(jnp.where(s > 0, k12 / safe, 1.0), -1.0, 1.0)
        sin = jnp.sqrt(jnp.maximum(1.0 - rho * rho, 0.0))
        shape = jnp.broadcast_shapes(jnp.shape(k11), jnp.shape(k22), jnp.shape(k12))
        rho = jnp.broadcast_to(rho, shape)
        sin = jnp.broadcast_to(sin, shape)
        s1 = jnp.broadcast_to(s1, shape)
        s2 = jnp.broadcast_to(s2, shape)
        # inner[..., j] grid: v_ij = s2 (rho z_i + sin z_j); loop over i keeps memory O(order).

        def body(acc, zi_wi):
            zi, wi = zi_wi
            u = s1 * zi
            v = s2[..., None] * (rho[..., None] * zi + sin[..., None] * z)
            out = []
            for f, a in zip(fns, acc, strict=True):
                out.append(a + wi * f(u) * jnp.tensordot(f(v), w, axes=1))
            return tuple(out), None

        init = tuple(jnp.zeros(shape, dtype) for _ in fns)
        acc, _ = jax.lax.scan(body, init, (z, w))
        return acc[0], (acc[1] if derivative else None)


def _hermite_nodes(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss-Hermite nodes and weights normalised to sum to one."""
    z, w = np.polynomial.hermite_e.hermegauss(order)
    return z, w / w.sum()


def _gelu_exact(x):
    return 0.5 * x * (1.0 + jax.scipy.special.erf(x / math.sqrt(2.0)))


@dataclasses.dataclass(frozen=True)
class Gelu(Activation):
    r"""Exact GELU :math:`\phi(x) = x\Phi(x)`, closed form.

    Writing :math:`\Phi(u) = P(g_1 \le u)` with independent :math:`g_i \sim N(0,1)`,
    :math:`a = u - g_1`, :math:`b = v - g_2`, :math:`S = \mathrm{Cov}(a, b)`,

    .. math::
        \mathbb E[\phi(u)\phi(v)] = k_{12}P + c_u^\top(M - SP)c_v,\quad
        P = \tfrac{\pi-\theta}{2\pi},\quad M - SP = \tfrac{\sqrt{\det S}}{2\pi}
        \begin{pmatrix}k_{12}/S_{22} & 1\\ 1 & k_{12}/S_{11}\end{pmatrix},

    :math:`c_u = S^{-1}(k_{11}, k_{12})`, :math:`c_v = S^{-1}(k_{12}, k_{22})`,
    :math:`\cos\theta = k_{12}/\sqrt{S_{11}S_{22}}`. The derivative kernel follows from
    Price's theorem, :math:`\mathbb E[\phi'(u)\phi'(v)] = \partial_{k_{12}}\mathbb E[\phi(u)
    \phi(v)]`, evaluated by forward-mode autodiff.
    """

    @staticmethod
    def _nngp(k11, k22, k12):
        s1, s2 = k11 + 1.0, k22 + 1.0
        det = s1 * s2 - k12 * k12
        sin_s = jnp.sqrt(jnp.maximum(det, 0.0))
        theta = jnp.arctan2(sin_s, k12)
        cu1, cu2 = k11 * s2 - k12 * k12, k12
        cv1, cv2 = k12, k22 * s1 - k12 * k12
        quad = cu1 * cv1 * k12 / s2 + cu1 * cv2 + cu2 * cv1 + cu2 * cv2 * k12 / s1
        return k12 * (math.pi - theta) / _TWO_PI + sin_s * quad / (_TWO_PI * det * det)

    def dual(self, k11, k22, k12, *, derivative=True):
        if not derivative:
            return self._nngp(k11, k22, k12), None
        k12 = jnp.broadcast_to(k12, jnp.broadcast_shapes(jnp.shape(k11), jnp.shape(k22),
                                                         jnp.shape(k12)))
        return jax.jvp(lambda c: self._nngp(k11, k22, c), (k12,), (jnp.ones_like(k12),))

    def __call__(self, x):
        return _gelu_exact(x)


@dataclasses.dataclass(frozen=True)
class _HermitePoly:
    degree: int

    def __call__(self, x):
        # normalised probabilists' Hermite polynomial He_k / sqrt(k!) by the three-term recursion
        h_prev, h = jnp.ones_like(x), x
        if self.degree == 0:
            return h_prev
        for k in range(1, self.degree):
            h_prev, h = h, x * h - k * h_prev
        return h / math.sqrt(math.factorial(self.degree))


def Hermite(degree: int) -> Elementwise:
    r"""Normalised probabilists' Hermite polynomial :math:`He_k(x)/\sqrt{k!}`.

    Quadrature with ``degree + 1`` nodes is exact (polynomial integrand). At unit variance
    :math:`\hat\phi = k_{12}^k`, as assumed by neural-tangents' ``Hermite``.
    """
    order = max(degree + 2, 4)
    return Elementwise(_HermitePoly(int(degree)), order=order, name=f"hermite({degree})",
                       kinks=())


_NAMED: dict[str, Callable[[], Activation]] = {
    "identity": Identity,
    "linear": Identity,
    "relu": Relu,
    "leaky_relu": lambda: LeakyRelu(0.01),
    "abs": Abs,
    "sign": Sign,
    "step": Step,
    "erf": Erf,
    "sin": Sin,
    "cos": Cos,
    "gelu": Gelu,
}

ACTIVATION_NAMES = tuple(sorted(_NAMED))
