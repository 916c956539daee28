r"""Kernel spectra that feed :func:`theorysim.theory.ridge_risk`.

* Dot-product kernels :math:`K(x\cdot x')` on :math:`S^{d-1}` (uniform measure), Funk-Hecke:

  .. math::
      \lambda_l = \frac{|S^{d-2}|}{|S^{d-1}|}\int_{-1}^{1} K(t)\,Q_l(t)\,(1-t^2)^{(d-3)/2}dt,
      \qquad N(d, l) = \frac{2l+d-2}{l}\binom{l+d-3}{l-1},

  :math:`Q_l` the Gegenbauer polynomial normalised to :math:`Q_l(1) = 1`; then
  :math:`K(t) = \sum_l \lambda_l N(d,l) Q_l(t)` (addition theorem). Gauss-Gegenbauer
  (Gauss-Jacobi with :math:`a = b = (d-3)/2`) quadrature.
* Gaussian RBF :math:`e^{-|x-x'|^2/2\ell^2}` on :math:`x \sim N(0, \sigma^2 I_d)`: closed form
  (Rasmussen & Williams 2006, sec. 4.3.1; Canatar et al. 2021, arXiv 2006.13198).
* Empirical: eigen-decomposition of a Gram matrix normalised by the sample size.

Convention of THEORY.md 1: eigenvalues :math:`\lambda_k` of the integral operator under the data
measure, target power :math:`\lambda_k w_k^2`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
from jaxtyping import Array, Float
from scipy import special

from theorysim.checks import as_finite_array, check_gram_and_targets, check_scalar


@dataclasses.dataclass(frozen=True)
class DegreeSpectrum:
    """Eigenvalues grouped by degree ``l``: each of ``degeneracy[l]`` modes has
    ``eigenvalue[l]`` (float64 NumPy arrays)."""

    degree: np.ndarray
    eigenvalue: np.ndarray
    degeneracy: np.ndarray
    d: int

    def per_mode(self, power_per_degree=None) -> tuple[np.ndarray, np.ndarray]:
        """Expand to one entry per mode: ``(eigvals, target_power)`` for ``ridge_risk``.

        ``power_per_degree[l]`` is the TOTAL target power of degree ``l`` (spread evenly over
        its modes); default: zero target power.
        """
        reps = self.degeneracy.astype(np.int64)
        eig = np.repeat(self.eigenvalue, reps)
        if power_per_degree is None:
            return eig, np.zeros_like(eig)
        p = as_finite_array("power_per_degree", power_per_degree, ndim=1, nonneg=True)
        if p.shape != self.eigenvalue.shape:
            raise ValueError(f"power_per_degree must have shape {self.eigenvalue.shape}, got "
                             f"{p.shape}")
        return eig, np.repeat(p / self.degeneracy, reps)

    def reconstruct(self, t) -> np.ndarray:
        r""":math:`\sum_l \lambda_l N(d,l) Q_l(t)` (dot-product kernels on the sphere)."""
        t = np.asarray(t, np.float64)
        q = gegenbauer_normalised(self.d, int(self.degree[-1]), t)
        return np.tensordot(self.eigenvalue * self.degeneracy, q, axes=1)


@dataclasses.dataclass(frozen=True)
class GramSpectrum:
    """Empirical spectrum (unpacks as ``eigvals, target_power``), eigenvalues descending."""

    eigvals: np.ndarray
    target_power: np.ndarray

    def __iter__(self):
        return iter((self.eigvals, self.target_power))


#: quadrature nodes / degrees accepted by :func:`sphere_spectrum` (Gauss-Jacobi nodes cost
#: O(n^2); far beyond what any kernel needs), the largest Gegenbauer table (entries: 2 GiB),
#: and the largest sphere dimension.
MAX_NODES = 1 << 15
MAX_TABLE = 1 << 28
MAX_SPHERE_DIM = 10**6


def sphere_degeneracy(d: int, l: np.ndarray) -> np.ndarray:
    """Number of degree-``l`` spherical harmonics on :math:`S^{d-1}`."""
    out = np.empty(len(l))
    for i, li in enumerate(np.asarray(l, np.int64)):
        li = int(li)
        exact = 1 if li == 0 else (2 * li + d - 2) * math.comb(li + d - 3, li - 1) // li
        out[i] = float(exact) if exact.bit_length() < 1020 else math.inf  # beyond float64
    return out


def gegenbauer_normalised(d: int, max_degree: int, t: np.ndarray) -> np.ndarray:
    """``Q_l(t)`` for ``l = 0..max_degree`` (rows), normalised so that ``Q_l(1) = 1``.

    Three-term recurrence of :math:`C^{(\\alpha)}_l` with :math:`\\alpha = (d-2)/2`, written for
    the normalised polynomials (Chebyshev ``T_l`` when ``d = 2``), stable for high degree.
    """
    t = np.asarray(t, np.float64)
    q = np.empty((max_degree + 1,) + t.shape)
    q[0] = 1.0
    if max_degree >= 1:
        q[1] = t
    alpha = (d - 2) / 2.0
    for l in range(1, max_degree):
        # Q_{l+1} = [(2l + 2a) t Q_l - l Q_{l-1}] / (l + 2a)  (a = alpha; a = 0: Chebyshev)
        q[l + 1] = ((2 * l + 2 * alpha) * t * q[l] - l * q[l - 1]) / (l + 2 * alpha)
    return q


def _legendre_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes/weights: SciPy's start, two Newton steps on the recurrence."""
    t = special.roots_legendre(n)[0]
    for _ in range(2):
        p_prev, p = np.ones_like(t), t.copy()
        for k in range(1, n):
            p_prev, p = p, ((2 * k + 1) * t * p - k * p_prev) / (k + 1)
        dp = n * (t * p - p_prev) / (t * t - 1.0)
        t = t - p / dp
    p_prev, p = np.ones_like(t), t.copy()
    for k in range(1, n):
        p_prev, p = p, ((2 * k + 1) * t * p - k * p_prev) / (k + 1)
    dp = n * (t * p - p_prev) / (t * t - 1.0)
    return t, 2.0 / ((1.0 - t * t) * dp * dp)


def sphere_spectrum(kernel_fn: Callable, d: int, max_degree: int, *,
                    n_nodes: int = 2048) -> DegreeSpectrum:
    r"""Mercer eigenvalues of a dot-product kernel :math:`K(x\cdot x')` on :math:`S^{d-1}`.

    Funk-Hecke with Gauss-Gegenbauer quadrature of ``n_nodes`` points (module docstring);
    eigenvalues are w.r.t. the uniform PROBABILITY measure on the unit sphere. Exact for
    polynomial kernels of degree < 2 ``n_nodes``; kernels with an endpoint singularity (the
    ReLU NTK behaves like :math:`(1-t)^{1/2}` at ``t = 1``) converge algebraically, still to
    ~1e-12 relative for ``l`` up to a few tens with the default nodes.

    Args:
      kernel_fn: ``K(t)`` for cosines ``t`` in ``[-1, 1]``, vectorised (NumPy or JAX); for the
        analytic kernels use e.g. ``lambda t: k.dot_product(t, q=1 / d).ntk`` (unit sphere).
      d: ambient dimension ``>= 2``. max_degree: largest degree ``l >= 0``.
      n_nodes: quadrature nodes ``>= max_degree + 1``.

    Returns:
      :class:`DegreeSpectrum` with ``eigenvalue[l]`` and ``degeneracy[l]``.
    """
    if not callable(kernel_fn):
        raise ValueError(f"kernel_fn must be a callable K(t), got {kernel_fn!r}")
    d = check_scalar("d", d, lo=2, hi=MAX_SPHERE_DIM, integer=True)
    max_degree = check_scalar("max_degree", max_degree, lo=0, hi=MAX_NODES - 1, integer=True)
    n_nodes = check_scalar("n_nodes", n_nodes, lo=1, hi=MAX_NODES, integer=True)
    if n_nodes < max_degree + 1:
        raise ValueError(f"max_degree = {max_degree} needs n_nodes >= max_degree + 1 = "
                         f"{max_degree + 1} quadrature nodes, got n_nodes = {n_nodes} (default "
                         "2048): pass n_nodes=")
    if (max_degree + 1) * n_nodes > MAX_TABLE:
        raise ValueError(f"max_degree = {max_degree} with n_nodes = {n_nodes} needs a "
                         f"{(max_degree + 1) * n_nodes * 8 / 2**30:.3g} GiB table of Gegenbauer "
                         f"values (at most {MAX_TABLE * 8 / 2**30:g} GiB): lower max_degree "
                         "or n_nodes")
    degeneracy = sphere_degeneracy(d, np.arange(max_degree + 1))
    if not np.all(np.isfinite(degeneracy)):
        raise ValueError(f"max_degree = {max_degree} on S^{d - 1} (d = {d}): the degree-"
                         f"{int(np.argmin(np.isfinite(degeneracy)))} degeneracy exceeds float64; "
                         "lower max_degree or d")
    a = (d - 3) / 2.0
    if a == 0.0:  # d = 3: SciPy's Legendre nodes lose ~1e-13; refine them by Newton
        t, w = _legendre_nodes(n_nodes)
    else:
        t, w = special.roots_jacobi(n_nodes, a, a)
    values = np.asarray(kernel_fn(t), np.float64)
    if values.shape != t.shape:
        raise ValueError(f"kernel_fn must map cosines (n,) to values (n,), got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("kernel_fn returned non-finite values on [-1, 1]")
    c_d = math.exp(math.lgamma(d / 2) - math.lgamma((d - 1) / 2)) / math.sqrt(math.pi)
    q = gegenbauer_normalised(d, max_degree, t)
    lam = c_d * (q * (w * values)).sum(axis=1)
    return DegreeSpectrum(np.arange(max_degree + 1), lam, degeneracy, d)


def gaussian_rbf_spectrum(d: int, lengthscale: float, max_degree: int,
                          data_std: float = 1.0) -> DegreeSpectrum:
    r"""Spectrum of :math:`e^{-|x-x'|^2/(2\ell^2)}` under :math:`x \sim N(0, \sigma^2 I_d)`.

    With :math:`a = 1/(4\sigma^2)`, :math:`b = 1/(2\ell^2)`, :math:`c = \sqrt{a^2+2ab}`,
    :math:`A = a+b+c`, :math:`B = b/A`, the eigenvalues are
    :math:`\lambda_k = (2a/A)^{d/2}B^{k}` for total degree :math:`k` (Hermite-function
    products), with degeneracy :math:`\binom{k+d-1}{d-1}`.

    Args:
      d: input dimension ``>= 1``. lengthscale: :math:`\ell > 0`. max_degree: ``>= 0``.
      data_std: :math:`\sigma > 0`.
    """
    d = check_scalar("d", d, lo=1, integer=True)
    ell = check_scalar("lengthscale", lengthscale, lo=0.0, lo_open=True, hi=math.inf,
                       hi_open=True)
    max_degree = check_scalar("max_degree", max_degree, lo=0, hi=MAX_NODES, integer=True)
    sigma = check_scalar("data_std", data_std, lo=0.0, lo_open=True, hi=math.inf, hi_open=True)
    a = 1.0 / (4.0 * sigma**2)
    b = 1.0 / (2.0 * ell**2)
    big_a = a + b + math.sqrt(a * a + 2.0 * a * b)
    k = np.arange(max_degree + 1)
    lam = (2.0 * a / big_a) ** (d / 2.0) * (b / big_a) ** k
    deg = np.array([math.comb(int(ki) + d - 1, d - 1) for ki in k], np.float64)
    return DegreeSpectrum(k, lam, deg, d)


def gram_spectrum(K: Float[Array, "n n"], y: Float[Array, "n ..."]) -> GramSpectrum:
    r"""Empirical spectrum and target powers from a Gram matrix on ``n`` samples.

    With :math:`K/n = U\,\mathrm{diag}(\lambda)\,U^\top` (eigenvalues descending; tiny negative
    rounding values clipped to 0), the kernel's features are :math:`\psi_k(x_i) =
    \sqrt{n\lambda_k}\,U_{ik}` (variance :math:`\lambda_k`, THEORY.md 1) and the target
    :math:`y = \sum_k w_k\psi_k` has :math:`w_k = U_k^\top y/\sqrt{n\lambda_k}`, so its power
    in mode k is :math:`\lambda_k w_k^2 = (U_k^\top y)^2/n` (summed over columns of ``y``;
    the powers sum to :math:`|y|^2/n`). Feeds
    ``theorysim.theory.ridge_risk(eigvals, target_power, P, ridge, noise)`` directly.

    Args:
      K: ``(n, n)`` symmetric Gram matrix. y: ``(n,)`` or ``(n, c)`` targets.
    """
    k, yy = check_gram_and_targets("K", K, "y", y)
    scale = float(np.max(np.abs(k)))
    if float(np.max(np.abs(k - k.T))) > 1e-8 * max(scale, 1e-300):
        raise ValueError("K must be a symmetric Gram matrix")
    n = k.shape[0]
    lam, u = np.linalg.eigh(0.5 * (k + k.T) / n)
    if lam[0] < -1e-6 * max(abs(lam[-1]), 1e-300):
        raise ValueError(f"K is not positive semi-definite: smallest eigenvalue {n * lam[0]:.3g}")
    lam, u = np.maximum(lam[::-1], 0.0), u[:, ::-1]
    proj = u.T @ yy
    power = proj**2 if proj.ndim == 1 else (proj**2).sum(axis=1)
    return GramSpectrum(lam, power / n)
