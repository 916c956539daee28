"""Kernel ridge regression on random train/held-out splits of a finite dataset.

Given the Gram matrix ``K`` of a whole dataset (n points) and targets ``y``, each split draws
``P`` training points (iid from the n points, i.e. with replacement, as the deterministic
equivalent assumes; or without replacement), fits

.. math::

    \\hat f(x) = K(x, X) \\, (K(X, X) + P \\, \\lambda \\, I)^{-1} y

(per-sample ridge ``lambda``: the THEORY.md convention ridge' = P * ridge for the Gram matrix)
by a Cholesky solve, and measures the squared error on the held-out points (those not drawn),
on all n points (the population error), and on the training draws. All splits run in one
jitted, vmapped program.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from theorysim.checks import check_bool, check_gram_and_targets, check_key, check_scalar
from theorysim.contract import check_throw

from ._memory import check_fits, check_limit
from ._precision import check_dtype, finite_or_raise


class KRRSplitErrors(NamedTuple):
    """Per-split squared errors (summed over outputs, averaged over points)."""

    held_out: Float[Array, " splits"]  # over the points not drawn for training
    population: Float[Array, " splits"]  # over all n points
    train: Float[Array, " splits"]  # over the P training draws
    distinct: Float[Array, " splits"]  # number of distinct training points


@functools.partial(jax.jit, static_argnames=("P", "n_splits", "replace"))
def _split_errors(key, K, y, P, ridge, n_splits, replace):
    n = K.shape[0]

    def one(k):
        tr = jax.random.choice(k, n, (P,), replace=replace)
        K_tt = K[tr][:, tr] + P * ridge * jnp.eye(P, dtype=K.dtype)
        chol = jax.scipy.linalg.cho_factor(K_tt, lower=True)
        alpha = jax.scipy.linalg.cho_solve(chol, y[tr])
        sq = jnp.sum((y - K[:, tr] @ alpha) ** 2, axis=-1)
        held = jnp.ones(n, dtype=bool).at[tr].set(False)
        n_held = jnp.sum(held)
        return (jnp.sum(jnp.where(held, sq, 0.0)) / n_held, jnp.mean(sq), jnp.mean(sq[tr]),
                n - n_held)

    return jax.vmap(one)(jax.random.split(key, n_splits))


def kernel_regression_split_errors(
    key: Array, K: Float[Array, "n n"], y: Float[Array, "n c"], P: int, ridge: float,
    *, n_splits: int = 32, replace: bool = True, dtype=jnp.float32,
    max_memory_gb: float | None = None, throw: bool = True,
) -> KRRSplitErrors:
    """Squared errors of KRR over ``n_splits`` random training draws.

    Args:
        key: PRNG key.
        K: Gram matrix of the whole dataset, (n, n), symmetric positive semi-definite.
        y: targets, (n,) or (n, c); the error is summed over the c outputs.
        P: training-set size, 1 <= P < n.
        ridge: per-sample ridge, > 0 (the Gram matrix is regularised by P * ridge).
        n_splits: number of random splits, >= 2.
        replace: draw the P training points with replacement (iid, the default) or not.
        dtype: computation dtype (float32 default; float64 needs x64 enabled).
        max_memory_gb: memory the vmapped splits may use (default: the host's); more is
            refused up front.
        throw: raise :class:`theorysim.ConvergenceError` when an error is non-finite (``K``
            not positive semi-definite, or too ill-conditioned for the dtype at this ridge).

    Returns:
        :class:`KRRSplitErrors`, each field of shape (n_splits,).

    Example:
        >>> import jax, numpy as np
        >>> x = np.linspace(-1, 1, 12)
        >>> K = np.exp(-(x[:, None] - x[None, :]) ** 2)
        >>> e = kernel_regression_split_errors(jax.random.key(0), K, np.sin(3 * x), 6, 1e-3,
        ...                                    n_splits=4)
        >>> e.held_out.shape
        (4,)
    """
    check_key("key", key)
    dt = check_dtype(dtype)
    K, y = check_gram_and_targets("K", K, "y", y)
    _check_gram(K)
    y = y[:, None] if y.ndim == 1 else y
    P = check_scalar("P", P, lo=1, integer=True)
    ridge = check_scalar("ridge", ridge, lo=0.0, lo_open=True, hi=np.inf, hi_open=True)
    n_splits = check_scalar("n_splits", n_splits, lo=2, integer=True)
    replace = check_bool("replace", replace)
    throw = check_throw(throw)
    if P >= K.shape[0]:  # the held-out error needs points outside the training draw
        raise ValueError(f"P must be < n = {K.shape[0]} (the data set's size: held-out points "
                         f"must remain), got {P}")
    n = K.shape[0]
    check_fits({"Gram matrix": n * n * dt.itemsize,
                "vmapped splits": n_splits * (3 * P * P + 2 * n * P) * dt.itemsize},
               limit_gb=check_limit(max_memory_gb), blame=f"P ({P}) or n_splits ({n_splits})",
               caller="kernel_regression_split_errors")
    out = KRRSplitErrors(*_split_errors(key, jnp.asarray(K, dtype), jnp.asarray(y, dtype), P,
                                        jnp.asarray(ridge, dtype), n_splits, replace))
    finite_or_raise(np.stack([out.held_out, out.population, out.train]), throw=throw,
                    caller="kernel_regression_split_errors",
                    hint="K may not be positive semi-definite, or the ridge is too small for "
                         "the dtype; check K or raise ridge")
    return out


def _check_gram(K: np.ndarray) -> None:
    """``ValueError`` unless the Gram matrix is symmetric (to float32 round-off) with a
    nonnegative diagonal (the cheap necessary conditions of positive semi-definiteness)."""
    if np.any(np.diag(K) < 0):
        raise ValueError("K must be positive semi-definite; its diagonal has negative entries "
                         f"(min {np.diag(K).min():.3g})")
    scale = float(np.max(np.abs(K))) if K.size else 0.0
    gap = float(np.max(np.abs(K - K.T))) if K.size else 0.0
    if gap > 1e-5 * max(scale, np.finfo(np.float64).tiny):
        raise ValueError(f"K must be symmetric (a Gram matrix), got max |K - K^T| = {gap:.3g} "
                         f"for max |K| = {scale:.3g}")
