"""Kernel ridge regression on random train/held-out splits of a finite dataset.

Given the Gram matrix ``K`` of a whole dataset (n points) and targets ``y``, each split draws
``P`` training points without replacement, fits

.. math::

    \\hat f(x) = K(x, X) \\, (K(X, X) + P \\, \\lambda \\, I)^{-1} y

(per-sample ridge ``lambda``: the THEORY.md convention ridge' = P * ridge for the Gram matrix)
by a Cholesky solve, and measures the squared error on the n - P held-out points and on all n
points. All splits run in one jitted, vmapped program.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._precision import check_dtype


@functools.partial(jax.jit, static_argnames=("P", "n_splits"))
def _split_errors(key, K, y, P, ridge, n_splits):
    n = K.shape[0]

    def one(k):
        perm = jax.random.permutation(k, n)
        tr, te = perm[:P], perm[P:]
        K_tt = K[tr][:, tr] + P * ridge * jnp.eye(P, dtype=K.dtype)
        chol = jax.scipy.linalg.cho_factor(K_tt, lower=True)
        alpha = jax.scipy.linalg.cho_solve(chol, y[tr])
        f_all = K[:, tr] @ alpha
        sq = jnp.sum((y - f_all) ** 2, axis=-1)
        return jnp.mean(sq[te]), jnp.mean(sq)

    return jax.vmap(one)(jax.random.split(key, n_splits))


def kernel_regression_split_errors(
    key: Array, K: Float[Array, "n n"], y: Float[Array, "n c"], P: int, ridge: float,
    *, n_splits: int = 32, dtype=jnp.float32,
) -> tuple[Float[Array, " splits"], Float[Array, " splits"]]:
    """Held-out and whole-set squared errors of KRR over ``n_splits`` random splits.

    Args:
        key: PRNG key.
        K: Gram matrix of the whole dataset, (n, n), symmetric positive semi-definite.
        y: targets, (n,) or (n, c); the error is summed over the c outputs.
        P: training-set size, 1 <= P < n.
        ridge: per-sample ridge, > 0 (the Gram matrix is regularised by P * ridge).
        n_splits: number of random splits, >= 2.
        dtype: computation dtype (float32 default; float64 needs x64 enabled).

    Returns:
        (held_out, whole): arrays of shape (n_splits,).
    """
    check_dtype(dtype)
    K = np.asarray(K)
    y = np.asarray(y)
    y = y[:, None] if y.ndim == 1 else y
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square (n, n) matrix, got shape {K.shape}")
    if y.shape[0] != K.shape[0]:
        raise ValueError(f"y must have {K.shape[0]} rows to match K, got {y.shape[0]}")
    if not (isinstance(P, int | np.integer) and 1 <= P < K.shape[0]):
        raise ValueError(f"P must be an integer in [1, {K.shape[0] - 1}], got {P!r}")
    if not ridge > 0:
        raise ValueError(f"ridge must be > 0, got {ridge!r}")
    if not (isinstance(n_splits, int | np.integer) and n_splits >= 2):
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    if not (np.all(np.isfinite(K)) and np.all(np.isfinite(y))):
        raise ValueError("K and y must be finite")
    return _split_errors(key, jnp.asarray(K, dtype), jnp.asarray(y, dtype), int(P),
                         jnp.asarray(ridge, dtype), int(n_splits))
