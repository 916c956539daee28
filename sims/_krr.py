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

from theorysim.checks import check_gram_and_targets

from ._precision import check_dtype


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

    Returns:
        :class:`KRRSplitErrors`, each field of shape (n_splits,).
    """
    check_dtype(dtype)
    K, y = check_gram_and_targets("K", K, "y", y)
    y = y[:, None] if y.ndim == 1 else y
    if not (isinstance(P, int | np.integer) and P >= 1):
        raise ValueError(f"P must be an integer >= 1, got {P!r}")
    if not ridge > 0:
        raise ValueError(f"ridge must be > 0, got {ridge!r}")
    if not (isinstance(n_splits, int | np.integer) and n_splits >= 2):
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    if not replace and P >= K.shape[0]:
        raise ValueError(f"P must be < {K.shape[0]} when drawing without replacement, got {P}")
    out = _split_errors(key, jnp.asarray(K, dtype), jnp.asarray(y, dtype), int(P),
                        jnp.asarray(ridge, dtype), int(n_splits), bool(replace))
    return KRRSplitErrors(*out)
