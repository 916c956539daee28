"""Linear simulations: Gaussian features with a given spectrum, ridge and random-feature ridge.

Empirical counterparts of THEORY.md 1-2. Features :math:`\\psi = z \\odot \\sqrt{\\lambda}` with
:math:`z \\sim \\mathcal N(0, I_M)`; target :math:`y = \\psi \\cdot w + \\sigma \\epsilon` with
:math:`w_k = \\sqrt{\\mathrm{target\\_power}_k / \\lambda_k}`. Ridge is per sample:
:math:`\\min (1/P) \\sum (y - f)^2 + \\lambda |\\theta|^2`. The generalisation error is computed
exactly from the learned weights with the known covariance,
:math:`E_g = \\sum_k \\lambda_k (\\hat w_k - w_k)^2` (clean target, no test sample), so the only
randomness is the training draw (and ``A`` for random features).

Numerics: we work in the whitened coordinates :math:`v_k = \\sqrt{\\lambda_k}\\,\\theta_k`, in
which :math:`E_g = |v - v^*|^2`, :math:`v^*_k = \\sqrt{\\mathrm{target\\_power}_k}`, and solve the
smaller of the primal (``M x M`` or ``N x N``) and dual (``P x P``) systems by Cholesky
(``ridge = 0`` with ``P < M`` gives the minimum-norm interpolator through the dual).
Float32 by default (float64 only inside ``jax.enable_x64(True)``). In float32 the Gram matrix
must stay well conditioned: its condition number is about ``trace / (P ridge + tail)``; keep
``P * ridge`` above ~1e-4 of the trace (per-sample ridge ~1e-5 for the power laws used in the
tests) or use float64 (see tests/sims/test_linear.py for the measured float32 error).
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from theorysim.checks import (
    as_finite_array,
    check_key,
    check_magnitude,
    check_scalar,
    check_spectrum,
)
from theorysim.contract import check_throw

from ._memory import check_fits, check_limit
from ._precision import check_dtype, finite_or_raise

__all__ = ["linear_ridge_error", "random_feature_ridge_error", "sample_gaussian_features"]

#: memory budget (bytes) for one vmapped batch of seeds
_BATCH_BYTES = 256 * 2**20


def _check_key(key) -> jax.Array:
    return check_key("key", key)


def _check_spectrum(eigvals, target_power=None):
    if target_power is None:
        return as_finite_array("eigvals", eigvals, ndim=1, nonneg=True, min_size=1)
    return check_spectrum(eigvals, target_power)


#: the most seeds (one PRNG key each, drawn at once; 10^6 seeds of even a tiny problem run
#: for hours; sizes are bounded by the memory checks instead)
MAX_SEEDS = 10**6


def _check_count(name: str, value) -> int:
    if isinstance(value, (np.ndarray, jax.Array)) and np.ndim(value) == 0:
        value = value.item()
    return check_scalar(name, value, lo=1, hi=math.inf, hi_open=True, integer=True)


def sample_gaussian_features(key: jax.Array, eigvals: ArrayLike, n: int,
                             dtype=jnp.float32, *,
                             max_memory_gb: float | None = None) -> Float[Array, "n M"]:
    """``n`` Gaussian feature vectors with covariance ``diag(eigvals)``.

    .. math:: \\psi_{ik} = \\sqrt{\\lambda_k}\\, z_{ik}, \\quad z_{ik} \\sim \\mathcal N(0, 1)

    Args:
        key: a ``jax.random`` key.
        eigvals: ``(M,)`` nonnegative variances.
        n: number of samples (Python int, static shape).
        dtype: float32 (default) or float64 (needs ``jax.enable_x64(True)``).
        max_memory_gb: memory the samples may use (default: the host's); a larger ``n x M``
            is refused up front.

    Returns:
        ``(n, M)`` array of ``dtype``.

    Example:
        >>> import jax
        >>> sample_gaussian_features(jax.random.key(0), [1.0, 0.25], 5).shape
        (5, 2)
    """
    key = _check_key(key)
    lam = _check_spectrum(eigvals)
    n = _check_count("n", n)
    dt = check_dtype(dtype)
    check_fits({"features": n * lam.size * dt.itemsize}, limit_gb=check_limit(max_memory_gb),
               blame=f"n ({n})",
               caller="sample_gaussian_features")
    z = jax.random.normal(key, (n, lam.size), dt)
    return z * jnp.sqrt(jnp.asarray(lam, dt))


def _chol_solve(K, b):
    c = jax.scipy.linalg.cho_factor(K, lower=True)
    return jax.scipy.linalg.cho_solve(c, b)


def _ridge_fit(F, y, P, ridge):
    """Coefficients ``c`` minimising ``|y - F c|^2 / P + ridge |c|^2`` (dual if ``P < cols``)."""
    rows, cols = F.shape
    shift = P * ridge
    if rows < cols:
        alpha = _chol_solve(F @ F.T + shift * jnp.eye(rows, dtype=F.dtype), y)
        return F.T @ alpha
    return _chol_solve(F.T @ F + shift * jnp.eye(cols, dtype=F.dtype), F.T @ y)


_SINGULAR = ("the ridge system is singular or too ill-conditioned for the dtype; raise ridge "
             "or use float64")


def _batch_size(n_seeds: int, per_seed_elems: int, itemsize: int) -> int:
    return int(max(1, min(n_seeds, _BATCH_BYTES // max(1, 3 * per_seed_elems * itemsize))))


def _in_batches(fn, keys, batch: int):
    """``fn`` (a jitted vmap over a batch of keys) over all keys in equal host-side batches.

    The last batch is padded with repeated keys (results dropped), so one executable serves
    every batch. Not ``lax.map(batch_size=...)``: on jaxlib 0.10's CPU runtime a while loop
    around the Cholesky custom call plus a remainder batch hung (deterministically, all threads
    idle) when the executable was re-run with new inputs.
    """
    n = keys.shape[0]
    pad = (-n) % batch
    if pad:
        keys = jnp.concatenate([keys, keys[:pad]])
    out = [fn(keys[i:i + batch]) for i in range(0, keys.shape[0], batch)]
    return (out[0] if len(out) == 1 else jnp.concatenate(out))[:n]


@partial(jax.jit, static_argnames=("P",))
def _ridge_errors(keys, sqrt_lam, v_star, ridge, noise, *, P):
    dt = sqrt_lam.dtype
    M = sqrt_lam.shape[0]

    def one(key):
        kz, ke = jax.random.split(key)
        z = jax.random.normal(kz, (P, M), dt)
        y = z @ v_star + noise * jax.random.normal(ke, (P,), dt)
        # regress on X = z * sqrt_lam; in whitened coordinates v = sqrt_lam * theta
        theta = _ridge_fit(z * sqrt_lam, y, P, ridge)
        return jnp.sum((sqrt_lam * theta - v_star) ** 2)

    return jax.vmap(one)(keys)


@partial(jax.jit, static_argnames=("rows", "cols", "primal"))
def _rf_errors(keys, sqrt_lam, v_star, ridge, noise, P, N, *, rows, cols, primal):
    """Errors on a ``rows x cols`` problem holding ``P <= rows`` samples and ``N <= cols``
    features, the rest masked to exact zeros (so one program serves every smaller P, N)."""
    dt = sqrt_lam.dtype
    M = sqrt_lam.shape[0]
    row_ok, col_ok = jnp.arange(rows) < P, jnp.arange(cols) < N
    shift = P.astype(dt) * ridge

    def one(key):
        kz, ke, ka = jax.random.split(key, 3)
        z = jax.random.normal(kz, (rows, M), dt)
        A = jax.random.normal(ka, (cols, M), dt)
        y = jnp.where(row_ok, z @ v_star + noise * jax.random.normal(ke, (rows,), dt), 0.0)
        # feature map psi -> F: (cols, M), rows beyond N zero
        W = jnp.where(col_ok[:, None], A * sqrt_lam / jnp.sqrt(N.astype(dt)), 0.0)
        F = jnp.where(row_ok[:, None], z @ W.T, 0.0)  # (rows, cols) = psi A^T / sqrt(N)
        if primal:  # masked features: a unit diagonal and a zero right-hand side, so c = 0
            c = _chol_solve(F.T @ F + jnp.diag(jnp.where(col_ok, shift, 1.0)), F.T @ y)
        else:
            c = F.T @ _chol_solve(F @ F.T + jnp.diag(jnp.where(row_ok, shift, 1.0)), y)
        return jnp.sum((W.T @ c - v_star) ** 2)  # v = sqrt_lam * A^T c / sqrt(N)

    return jax.vmap(one)(keys)


def _common(key, eigvals, target_power, P, ridge, noise, n_seeds, dtype, throw, max_memory_gb,
            *, N=None, caller: str, size=None):
    """Check the arguments (and that one draw of the ``size = (P, N)`` problem it is computed
    on fits in memory), then split the keys."""
    key = _check_key(key)
    check_throw(throw)
    check_limit(max_memory_gb)
    lam, tp = _check_spectrum(eigvals, target_power)
    P = _check_count("P", P)
    ridge = check_scalar("ridge", ridge, lo=0.0, hi=math.inf, hi_open=True)
    noise = check_scalar("noise", noise, lo=0.0, hi=math.inf, hi_open=True)
    n_seeds = check_scalar("n_seeds", n_seeds, lo=1, hi=MAX_SEEDS, integer=True)
    dt = check_dtype(dtype)
    if dt == np.dtype(jnp.bfloat16):
        raise ValueError("dtype must be float32 or float64 for the linear solvers, got bfloat16")
    for name, v in (("ridge", ridge), ("noise", noise)):  # in dt, and their squares too
        check_magnitude(name, np.asarray(v), dt)
    M = lam.size
    if N is None:
        per_seed, blame = P * M + min(P, M) ** 2, f"P ({P}) or the number of modes M ({M})"
    else:
        N = _check_count("N", N)
        if size is not None and (not isinstance(size, tuple | list) or len(size) != 2):
            raise ValueError(f"pad_to must be a pair (P_max, N_max), got {size!r}")
        Pc, Nc = (P, N) if size is None else (
            check_scalar("pad_to[0] (P_max)", size[0], lo=P, hi=math.inf, hi_open=True,
                        integer=True),
            check_scalar("pad_to[1] (N_max)", size[1], lo=N, hi=math.inf, hi_open=True,
                        integer=True))
        per_seed = Pc * M + Nc * M + Pc * Nc + min(Pc, Nc) ** 2
        blame = f"P ({P}), N ({N}) or the number of modes M ({M})"
    check_fits({"one draw's matrices": 3 * per_seed * dt.itemsize}, limit_gb=max_memory_gb,
               blame=blame, caller=caller)
    keys = jax.random.split(key, n_seeds)
    args = (jnp.asarray(np.sqrt(lam), dt), jnp.asarray(np.sqrt(tp), dt),
            jnp.asarray(ridge, dt), jnp.asarray(noise, dt))
    return keys, args, P, N, n_seeds, dt, _batch_size(n_seeds, per_seed, dt.itemsize)


def linear_ridge_error(key: jax.Array, eigvals: ArrayLike, target_power: ArrayLike, P: int,
                       ridge: float, noise: float = 0.0, n_seeds: int = 32,
                       dtype=jnp.float32, *, max_memory_gb: float | None = None,
                       throw: bool = True) -> Float[Array, " n_seeds"]:
    """Generalisation error of ridge regression on ``P`` Gaussian samples, one per seed.

    .. math::

        \\hat\\theta = \\arg\\min_\\theta \\frac1P |y - X\\theta|^2 + \\lambda|\\theta|^2,
        \\qquad E_g = \\sum_k \\lambda_k (\\hat\\theta_k - w_k)^2

    (clean target, exact over the test distribution). Solved by Cholesky of the primal
    ``M x M`` system when ``P >= M``, else of the dual ``P x P`` one (``ridge = 0``: the
    minimum-norm interpolator). Theory: :func:`theorysim.theory.ridge_risk`.

    Args:
        key: a ``jax.random`` key (split into ``n_seeds`` independent draws).
        eigvals: ``(M,)`` feature variances; target_power: ``(M,)`` ``lam_k w_k^2``.
        P: training-set size (Python int, static shape).
        ridge: per-sample ridge ``>= 0``; noise: label-noise std ``>= 0``.
        n_seeds: independent draws, vmapped (in memory-bounded batches) in one jitted program.
        dtype: float32 (default) or float64 (needs ``jax.enable_x64(True)``).
        max_memory_gb: memory one draw may use (default: the host's); larger ``P`` x ``M``
            is refused up front.
        throw: raise :class:`theorysim.ConvergenceError` when an error is non-finite (a
            singular system: ``ridge = 0`` with zero eigenvalues, or float32 round-off);
            ``False`` returns it.

    Returns:
        ``(n_seeds,)`` errors of ``dtype``.

    Example:
        >>> import jax, numpy as np
        >>> lam = 1.0 / np.arange(1, 21) ** 2
        >>> err = linear_ridge_error(jax.random.key(0), lam, lam, P=10, ridge=1e-3, n_seeds=4)
        >>> err.shape, bool(np.all(err < lam.sum()))
        ((4,), True)
    """
    keys, args, P, _, n_seeds, dt, batch = _common(key, eigvals, target_power, P, ridge, noise,
                                                   n_seeds, dtype, throw, max_memory_gb,
                                                   caller="linear_ridge_error")
    out = _in_batches(partial(_ridge_errors, sqrt_lam=args[0], v_star=args[1],
                              ridge=args[2], noise=args[3], P=P), keys, batch)
    return finite_or_raise(out, throw=throw, caller="linear_ridge_error", hint=_SINGULAR)


def random_feature_ridge_error(key: jax.Array, eigvals: ArrayLike, target_power: ArrayLike,
                               P: int, N: int, ridge: float, noise: float = 0.0,
                               n_seeds: int = 32,
                               dtype=jnp.float32, *, max_memory_gb: float | None = None,
                               throw: bool = True,
                               pad_to: tuple[int, int] | None = None) -> Float[Array, " n_seeds"]:
    """Generalisation error of linear random-feature ridge regression, one per seed.

    .. math::

        f(x) = v \\cdot A\\psi(x)/\\sqrt N, \\quad A_{ij} \\sim \\mathcal N(0,1),\\quad
        \\hat v = \\arg\\min_v \\frac1P |y - F v|^2 + \\lambda |v|^2,\\quad
        E_g = \\sum_k \\lambda_k \\big((A^T\\hat v)_k/\\sqrt N - w_k\\big)^2

    with ``F = Psi A^T / sqrt(N)`` (``P x N``); primal (``N x N``) when ``P >= N``, else dual.
    ``A`` and the data are redrawn per seed. Theory:
    :func:`theorysim.theory.random_feature_risk`.

    Args:
        key, eigvals, target_power, P, ridge, noise, n_seeds, dtype, max_memory_gb, throw:
            as in :func:`linear_ridge_error`.
        N: number of random features (Python int).
        pad_to: ``(P_max, N_max)``: compute on that larger problem with the extra samples and
            features masked to zeros, so that every ``P <= P_max``, ``N <= N_max`` shares one
            compiled program (two: primal and dual) instead of one per shape. The draws are
            the same as unpadded (the first P samples and N features of the larger draw,
            counter-based PRNG); results agree to float rounding; the work is that of the
            larger problem.

    Returns:
        ``(n_seeds,)`` errors of ``dtype``.
    """
    keys, args, P, N, n_seeds, dt, batch = _common(key, eigvals, target_power, P, ridge, noise,
                                                   n_seeds, dtype, throw, max_memory_gb, N=N,
                                                   caller="random_feature_ridge_error",
                                                   size=pad_to)
    rows, cols = (P, N) if pad_to is None else (int(pad_to[0]), int(pad_to[1]))
    primal = P >= N  # the smaller of the N x N and P x P systems (padded: N, P <= min)
    shape = dict(rows=rows, cols=min(rows, cols)) if primal else dict(rows=min(rows, cols),
                                                                     cols=cols)
    out = _in_batches(partial(_rf_errors, sqrt_lam=args[0], v_star=args[1], ridge=args[2],
                              noise=args[3], P=jnp.asarray(P), N=jnp.asarray(N),
                              primal=primal, **shape), keys, batch)
    return finite_or_raise(out, throw=throw, caller="random_feature_ridge_error",
                           hint=_SINGULAR)
