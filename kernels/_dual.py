r"""More closed-form dual activations (neural-tangents' set), NaN-free on the diagonal.

Same interface as :mod:`theorysim.kernels._activations`: ``dual(k11, k22, k12)`` returns
:math:`(\mathbb E[\phi(u)\phi(v)], \mathbb E[\phi'(u)\phi'(v)])` for
:math:`(u, v) \sim \mathcal N(0, [[k_{11}, k_{12}], [k_{12}, k_{22}]])`. Formulas are written
without dividing by :math:`\sqrt{k_{11}k_{22}}` or :math:`\sin\theta` wherever possible, so
that the diagonal of :math:`K(X, X)` (angle zero) and zero-variance inputs stay finite
(neural-tangents' ``RectifiedMonomial`` returns NaN there; its issue #197).
References: Cho & Saul 2009 (arc-cosine kernels), Williams 1997, Daniely et al. 2016
(arXiv 1602.05897, Hermite expansions), Novak et al. 2020 (arXiv 1912.02803).
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np

from theorysim.checks import check_scalar

from ._activations import _TWO_PI, Activation, _angle


@dataclasses.dataclass(frozen=True)
class ABRelu(Activation):
    r""":math:`\phi(x) = a\min(x, 0) + b\max(x, 0)`:
    :math:`\hat\phi = \frac{(a-b)^2}{2\pi}s\sin\theta + \big(\frac{a^2+b^2}{2}
    - \frac{(a-b)^2}{2\pi}\theta\big)k_{12}`, :math:`\hat\phi' = \frac{a^2+b^2}{2}
    - \frac{(a-b)^2}{2\pi}\theta`."""

    a: float = 0.0
    b: float = 1.0

    def dual(self, k11, k22, k12, *, derivative=True):
        sin_s, theta = _angle(k11, k22, k12)
        f = (self.a - self.b) ** 2 / _TWO_PI
        dot = 0.5 * (self.a**2 + self.b**2) - f * theta
        return f * sin_s + dot * k12, (dot if derivative else None)

    def __call__(self, x):
        return self.a * jnp.minimum(x, 0) + self.b * jnp.maximum(x, 0)


@dataclasses.dataclass(frozen=True)
class RectifiedMonomial(Activation):
    r""":math:`\phi(x) = 1_{x\ge0}x^n`: arc-cosine kernel of order ``n`` (Cho & Saul 2009),
    :math:`\hat\phi = \hat J_n/2\pi` with :math:`\hat J_0 = \pi-\theta`,
    :math:`\hat J_1 = s\sin\theta + (\pi-\theta)k_{12}` and, for :math:`n\ge2`,
    :math:`\hat J_n = (2n-1)k_{12}\hat J_{n-1} + (n-1)^2(k_{11}k_{22}-k_{12}^2)\hat J_{n-2}`
    (no division: finite on the diagonal); :math:`\hat\phi' = n^2\hat J_{n-1}/2\pi` (Price)."""

    degree: int = 1

    def _j(self, n, k11, k22, k12):
        sin_s, theta = _angle(k11, k22, k12)
        gap = sin_s * sin_s
        j_prev, j = None, math.pi - theta
        if n == 0:
            return j
        j_prev, j = j, sin_s + (math.pi - theta) * k12
        for m in range(2, n + 1):
            j_prev, j = j, (2 * m - 1) * k12 * j + (m - 1) ** 2 * gap * j_prev
        return j

    def dual(self, k11, k22, k12, *, derivative=True):
        n = self.degree
        nngp = self._j(n, k11, k22, k12) / _TWO_PI
        if not derivative:
            return nngp, None
        if n == 0:
            return nngp, jnp.zeros_like(nngp)
        return nngp, (n * n) * self._j(n - 1, k11, k22, k12) / _TWO_PI

    def __call__(self, x):
        return jnp.where(x >= 0, x**self.degree if self.degree else jnp.ones_like(x), 0.0)


@dataclasses.dataclass(frozen=True)
class Polynomial(Activation):
    r""":math:`\phi(x) = \sum_i c_i x^i` by its Hermite expansion (Daniely et al. 2016):
    :math:`\hat\phi = \sum_l d_l(k_{11})d_l(k_{22})k_{12}^l`,
    :math:`d_l(q) = \sum_m c_{l+2m}\frac{(l+2m)!}{2^m m!\sqrt{l!}} q^m`,
    :math:`\hat\phi' = \sum_l l\,d_l(k_{11})d_l(k_{22})k_{12}^{l-1}` (Price). Exact for any
    variances (no unit-variance assumption)."""

    coef: tuple[float, ...] = (0.0, 1.0)

    def _d(self):
        c = self.coef
        deg = len(c)
        out = []
        for l in range(deg):
            terms = []
            for m in range((deg - 1 - l) // 2 + 1):
                i = l + 2 * m
                terms.append(c[i] * math.factorial(i) / (2**m * math.factorial(m)
                                                          * math.sqrt(math.factorial(l))))
            out.append(tuple(terms))
        return out

    def dual(self, k11, k22, k12, *, derivative=True):
        def poly(q, terms):
            acc = jnp.zeros_like(q)
            for t in reversed(terms):
                acc = acc * q + t
            return acc

        nngp = jnp.zeros_like(k12)
        dphi = jnp.zeros_like(k12)
        for l, terms in enumerate(self._d()):
            w = poly(k11, terms) * poly(k22, terms)
            nngp = nngp + w * k12**l
            if derivative and l >= 1:
                dphi = dphi + l * w * k12 ** (l - 1)
        return nngp, (dphi if derivative else None)

    def __call__(self, x):
        return jnp.polyval(jnp.asarray(self.coef[::-1], jnp.result_type(x)), x)


def monomial(degree: int) -> Polynomial:
    """:math:`x^n` as a :class:`Polynomial`."""
    degree = check_scalar("degree", degree, lo=0, hi=256, integer=True)
    return Polynomial((0.0,) * degree + (1.0,))


def hermite(degree: int) -> Polynomial:
    """Normalised probabilists' Hermite polynomial :math:`He_n/\\sqrt{n!}` (exact for any
    variance; at unit variance :math:`\\hat\\phi = k_{12}^n`, neural-tangents' formula)."""
    degree = check_scalar("degree", degree, lo=0, hi=256, integer=True)
    p = np.polynomial.hermite_e.herme2poly([0] * degree + [1]) / math.sqrt(math.factorial(degree))
    return Polynomial(tuple(float(c) for c in p))


@dataclasses.dataclass(frozen=True)
class Exp(Activation):
    r""":math:`\phi = a e^{bx}`: :math:`\hat\phi = a^2 e^{b^2(k_{11}+k_{22})/2 + b^2k_{12}}`,
    :math:`\hat\phi' = b^2\hat\phi`."""

    a: float = 1.0
    b: float = 1.0

    def dual(self, k11, k22, k12, *, derivative=True):
        b2 = self.b**2
        nngp = self.a**2 * jnp.exp(b2 * (0.5 * (k11 + k22) + k12))
        return nngp, (b2 * nngp if derivative else None)

    def __call__(self, x):
        return self.a * jnp.exp(self.b * x)


@dataclasses.dataclass(frozen=True)
class Gaussian(Activation):
    r""":math:`\phi = a e^{bx^2}` (:math:`b < 1/(2k)`): with
    :math:`D = \sqrt{(1-2bk_{11})(1-2bk_{22}) - 4b^2k_{12}^2}`, :math:`\hat\phi = a^2/D`,
    :math:`\hat\phi' = 4a^2b^2k_{12}/D^3`."""

    a: float = 1.0
    b: float = -1.0

    def dual(self, k11, k22, k12, *, derivative=True):
        b = self.b
        det = jnp.sqrt((1 - 2 * b * k11) * (1 - 2 * b * k22) - 4 * b * b * k12 * k12)
        a2 = self.a**2
        nngp = a2 / det
        return nngp, (a2 * 4 * b * b * k12 / det**3 if derivative else None)

    def __call__(self, x):
        return self.a * jnp.exp(self.b * x * x)


@dataclasses.dataclass(frozen=True)
class Gabor(Activation):
    r""":math:`\phi = e^{-x^2}\sin x` (neural-tangents' closed form)."""

    def dual(self, k11, k22, k12, *, derivative=True):
        prod = k11 * k22
        sum_ = k11 + k22
        diff = 4 * (prod - k12 * k12)
        denom = 2 * sum_ + diff + 1
        num = sum_ + diff + 2 * k12
        exp_left = jnp.exp(-num / (2 * denom))
        exp_right = jnp.exp(2 * k12 / denom)
        nngp = exp_left * (exp_right - 1) / (2 * jnp.sqrt(denom))
        if not derivative:
            return nngp, None
        shared = 1 + 2 * sum_ + 4 * (k12 * k12 + prod)
        dterm = 4 * k12 * (diff + 3 * sum_ + 2)
        t_dot = exp_left * ((shared - dterm) + exp_right * (shared + dterm)) / denom**2.5
        return nngp, t_dot / 2

    def __call__(self, x):
        return jnp.exp(-x * x) * jnp.sin(x)


@dataclasses.dataclass(frozen=True)
class Rbf(Activation):
    r""":math:`\phi = \sqrt2\sin(\sqrt{2\gamma}x + \pi/4)`:
    :math:`\hat\phi = e^{-\gamma(k_{11}+k_{22}-2k_{12})}`, :math:`\hat\phi' = 2\gamma\hat\phi`."""

    gamma: float = 1.0

    def dual(self, k11, k22, k12, *, derivative=True):
        nngp = jnp.exp(self.gamma * (2 * k12 - k11 - k22))
        return nngp, (2 * self.gamma * nngp if derivative else None)

    def __call__(self, x):
        return math.sqrt(2) * jnp.sin(math.sqrt(2 * self.gamma) * x + math.pi / 4)


@dataclasses.dataclass(frozen=True)
class ExpNormalized(Activation):
    r"""neural-tangents' ``ExpNormalized`` kernel map (no finite network):
    :math:`K \mapsto \sqrt{k_{11}k_{22}}\,e^{\gamma(k_{12}/\sqrt{k_{11}k_{22}} + \text{shift})}`,
    :math:`\Theta \mapsto \gamma\,\Theta\,e^{\gamma(\cdot)}`."""

    gamma: float = 1.0
    shift: float = -1.0
    do_clip: bool = False

    def dual(self, k11, k22, k12, *, derivative=True):
        s = jnp.sqrt(jnp.maximum(k11 * k22, 1e-30))
        c = k12 / s
        if self.do_clip:
            c = jnp.clip(c, -1.0, 1.0)
        e = jnp.exp(self.gamma * (c + self.shift))
        return s * e, (self.gamma * e if derivative else None)

    def __call__(self, x):
        raise ValueError("ExpNormalized has no finite-width network (as in neural-tangents); "
                         "only its kernel_fn exists")


@dataclasses.dataclass(frozen=True)
class KernelFunctions(Activation):
    """User closed forms ``nngp_fn(k12, k11, k22)`` and ``d_nngp_fn`` (neural-tangents'
    ``Elementwise(fn, nngp_fn, d_nngp_fn)``; argument order ``(cov12, var1, var2)``)."""

    fn: object
    nngp_fn: object
    d_nngp_fn: object

    def dual(self, k11, k22, k12, *, derivative=True):
        shape = jnp.broadcast_shapes(jnp.shape(k11), jnp.shape(k22), jnp.shape(k12))
        args = [jnp.broadcast_to(a, shape) for a in (k12, k11, k22)]
        nngp = jnp.vectorize(self.nngp_fn)(*args)
        if not derivative:
            return nngp, None
        return nngp, jnp.vectorize(self.d_nngp_fn)(*args)

    def __call__(self, x):
        if self.fn is None:
            raise ValueError("Elementwise was given no fn: it has no finite-width network")
        return self.fn(x)
