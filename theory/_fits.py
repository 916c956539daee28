"""Power-law fits of learning curves: weighted least squares in log-log coordinates."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from jaxtyping import ArrayLike

from theorysim.checks import as_finite_array, check_same_length

__all__ = ["PowerLawFit", "fit_power_law"]


@dataclass(frozen=True)
class PowerLawFit:
    """``y ~ prefactor * x**(-exponent)``; ``exponent_stderr`` from the weighted fit."""

    exponent: float
    prefactor: float
    exponent_stderr: float

    def __call__(self, x: ArrayLike) -> np.ndarray:
        """The fitted curve at ``x``."""
        return self.prefactor * np.asarray(x, np.float64) ** (-self.exponent)


def fit_power_law(x: ArrayLike, y: ArrayLike, sigma: ArrayLike | None = None) -> PowerLawFit:
    """Fit :math:`y \\approx c\\, x^{-\\alpha}` by weighted least squares on
    :math:`\\log y = \\log c - \\alpha \\log x`.

    .. math::

        \\min_{\\alpha, c} \\sum_i \\frac{(\\log y_i - \\log c + \\alpha \\log x_i)^2}{s_i^2},
        \\qquad s_i = \\sigma_i / y_i

    (delta method: the standard error of :math:`\\log y_i` is :math:`\\sigma_i / y_i`).
    Without ``sigma`` all points weigh the same and ``exponent_stderr`` comes from the
    residual scatter (0 for an exact power law); with ``sigma`` it is the formal standard error
    :math:`\\sqrt{(X^T W X)^{-1}_{11}}` of the weighted fit.

    Args:
        x: ``(n,)`` positive abscissae (n >= 2, at least two distinct).
        y: ``(n,)`` positive values.
        sigma: ``(n,)`` positive standard errors of ``y``, or ``None``.

    Returns:
        :class:`PowerLawFit`.

    Example:
        >>> x = np.array([10.0, 100.0, 1000.0])
        >>> fit = fit_power_law(x, 3.0 * x**-0.5)
        >>> round(fit.exponent, 12), round(fit.prefactor, 12)
        (0.5, 3.0)
    """
    x = as_finite_array("x", x, ndim=1, positive=True, min_size=2)
    y = as_finite_array("y", y, ndim=1, positive=True, min_size=2)
    check_same_length(("x", "y"), x, y)
    if np.unique(x).size < 2:
        raise ValueError("x must hold at least two distinct values")
    lx, ly = np.log(x), np.log(y)
    if sigma is None:
        w = np.ones_like(lx)
    else:
        s = as_finite_array("sigma", sigma, ndim=1, positive=True)
        check_same_length(("x", "sigma"), x, s)
        w = (y / s) ** 2
    X = np.stack([np.ones_like(lx), -lx], axis=1)
    XtW = X.T * w
    cov = np.linalg.inv(XtW @ X)  # 2x2 normal equations: the covariance is needed anyway
    coef = cov @ (XtW @ ly)
    if sigma is None:
        resid = ly - X @ coef
        dof = lx.size - 2
        scale = float(resid @ resid) / dof if dof > 0 else 0.0
        stderr = math.sqrt(max(cov[1, 1] * scale, 0.0))
    else:
        stderr = math.sqrt(cov[1, 1])
    return PowerLawFit(float(coef[1]), float(math.exp(coef[0])), stderr)
