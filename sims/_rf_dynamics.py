"""Linear random-feature student trained by gradient flow (full batch) or online SGD.

Bordelon, Atanasov, Pehlevan 2024 (arXiv 2402.01092). Features :math:`\\psi(x)` with
:math:`E[\\psi_k\\psi_l] = \\lambda_k\\delta_{kl}` (Gaussian), target
:math:`y = w^*\\cdot\\psi + \\epsilon` with :math:`\\lambda_k (w^*_k)^2` = ``target_power``,
student :math:`f = w\\cdot A\\psi/\\sqrt N`, ``A`` iid :math:`N(0, 1)`, trained from ``w = 0``.

Full batch: gradient flow :math:`\\dot w = -\\nabla_w \\frac{1}{2P}\\sum_\\mu (f_\\mu - y_\\mu)^2`
solved exactly through the thin SVD of the ``N x P`` feature matrix, giving
the loss at all requested times at once. ``P = inf``: gradient flow on the population loss,
:math:`v(t) = e^{-tB\\Lambda}w^*` through the symmetric matrix
:math:`\\Lambda^{1/2}B\\Lambda^{1/2}`. Online SGD: a fresh batch every step.
The test loss is against the clean target, :math:`L = v^\\top\\Lambda v` with the residual
:math:`v = w^* - A^\\top w/\\sqrt N`.

This module does not import ``theorysim.theory``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from theorysim.checks import (
    check_increasing,
    check_key,
    check_magnitude,
    check_scalar,
    check_spectrum,
)
from theorysim.contract import check_throw

from ._linear import MAX_SEEDS
from ._memory import check_fits, check_limit
from ._precision import finite_or_raise

__all__ = ["random_feature_dynamics", "random_feature_online_sgd"]


#: default cap on the number of online-SGD steps (override: ``max_steps=``)
MAX_STEPS = 10**8


def _check_common(key, eigvals, target_power, t, dtype, throw, max_memory_gb):
    check_key("key", key)
    check_throw(throw)
    check_limit(max_memory_gb)
    lam, lw2 = check_spectrum(eigvals, target_power, positive=True)
    times = check_increasing("t", t)
    dtype = jnp.dtype(dtype)
    if dtype not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if dtype == jnp.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError("dtype float64 needs x64 enabled (use `with jax.enable_x64(True):`)")
    return lam, lw2, times, dtype


def random_feature_dynamics(
    key: Array,
    eigvals: Float[Array, " M"],
    target_power: Float[Array, " M"],
    t: Float[Array, " T"],
    N: int,
    P: int | float,
    *,
    n_seeds: int = 32,
    noise: float = 0.0,
    lr: float | None = None,
    dtype=jnp.float32,
    max_memory_gb: float | None = None,
    throw: bool = True,
) -> Float[Array, "seeds T"]:
    """Test loss of the random-feature student trained by full-batch gradient flow (or GD).

    .. math::
        w(t) = U\\,\\mathrm{diag}\\Big(\\frac{1 - e^{-\\varsigma^2 t/P}}{\\varsigma}\\Big)
        V^\\top y,\\qquad F = A\\Psi^\\top/\\sqrt N = U\\,\\mathrm{diag}(\\varsigma)\\,V^\\top

    (thin SVD, rank ``min(N, P)``), and
    :math:`L(t) = \\sum_k \\lambda_k v_k(t)^2`. Each seed draws its own ``A``, training inputs
    and label noise. With ``lr``, discrete gradient descent with that step is run for
    ``t / lr`` steps instead: :math:`1 - e^{-\\varsigma^2t/P}` becomes
    :math:`1 - (1 - \\eta\\varsigma^2/P)^{t/\\eta}` (still exact, through the same SVD).

    Args:
        key: PRNG key (keyword-free first argument, the only randomness).
        eigvals: ``(M,)`` feature spectrum, > 0.
        target_power: ``(M,)`` :math:`\\lambda_k (w^*_k)^2 \\ge 0` (``w^*_k >= 0``).
        t: ``(T,)`` strictly increasing positive times.
        N: width (integer >= 1).
        P: training-set size (integer >= 1), or ``inf`` for population gradient flow.
        n_seeds: independent draws (>= 1).
        noise: label-noise standard deviation (training labels only).
        lr: ``None`` (gradient flow) or a GD learning rate ``> 0``; every ``t / lr`` must then
            be a whole number (>= 1) of steps.
        dtype: float32 (default) or float64 (needs x64 enabled).
        max_memory_gb: memory one seed's draw may use (default: host RAM); larger ``N``,
            ``P`` are refused up front.
        throw: raise :class:`theorysim.ConvergenceError` when a loss is non-finite (GD with
            ``lr`` above the stability limit ``2 P / varsigma_max^2``); ``False`` returns it.

    Returns:
        ``(n_seeds, T)`` test losses.
    """
    lam, lw2, times, dtype = _check_common(key, eigvals, target_power, t, dtype, throw,
                                           max_memory_gb)
    N = check_scalar("N", N, lo=1, integer=True)
    if not (isinstance(P, float) and math.isinf(P) and P > 0):
        P = check_scalar("P", P, lo=1, integer=True)
    n_seeds = check_scalar("n_seeds", n_seeds, lo=1, hi=MAX_SEEDS, integer=True)
    noise = check_scalar("noise", noise, lo=0.0, hi=math.inf, hi_open=True)
    check_magnitude("noise", np.asarray(noise), dtype)  # noise^2 must fit the dtype
    if lr is not None:
        lr = check_scalar("lr", lr, lo=0.0, lo_open=True, hi=math.inf, hi_open=True)
        steps = times / lr
        if np.any(np.abs(steps - np.round(steps)) > 1e-9 * np.maximum(steps, 1.0)):
            raise ValueError("with lr, every time t must be a whole number of steps t / lr")
        if np.round(steps[0]) < 1:
            raise ValueError(f"t must be >= lr (at least one GD step); t[0] = {times[0]:.3g} "
                             f"with lr = {lr:.3g} rounds to 0 steps")
    rows = P if not math.isinf(P) else 0
    k = min(N, rows) if rows else min(N, lam.size)
    numbers = N * lam.size + rows * lam.size + 2 * N * rows + k * (N + rows + lam.size)
    check_fits({"one seed's features and SVD": numbers * dtype.itemsize,
                "losses": n_seeds * times.size * dtype.itemsize},
               limit_gb=max_memory_gb, blame=f"N ({N}) or P ({P})",
               caller="random_feature_dynamics")
    w_star = np.sqrt(lw2 / lam)
    args = (jnp.asarray(lam, dtype), jnp.asarray(w_star, dtype), jnp.asarray(times, dtype),
            jnp.asarray(0.0 if lr is None else lr, dtype))
    keys = jax.random.split(key, n_seeds)
    gd = lr is not None
    if math.isinf(P):
        out = _population_flow(keys, *args, N=N, gd=gd)
    else:
        out = _full_batch(keys, *args, jnp.asarray(noise, dtype), N=N, P=P, gd=gd)
    return finite_or_raise(out, throw=throw, caller="random_feature_dynamics",
                           hint="with lr, GD is unstable above lr = 2 P / varsigma_max^2; "
                                "lower lr")


def _decay_minus_one(rate, times, lr, gd: bool):
    """:math:`e^{-rt} - 1` (flow) or :math:`(1 - \\eta r)^{t/\\eta} - 1` (GD), as
    ``(T, k)`` for ``rate (k,)``."""
    if not gd:
        return jnp.expm1(-times[:, None] * rate)
    steps = jnp.round(times / lr)[:, None]
    base = 1.0 - lr * rate                               # may be negative (lr * rate < 2)
    odd = jnp.mod(steps, 2.0) == 1.0
    mag = jnp.exp(steps * jnp.log(jnp.abs(base)))
    return jnp.where((base < 0) & odd, -mag, mag) - 1.0


@functools.partial(jax.jit, static_argnames=("N", "P", "gd"))
def _full_batch(keys, lam, w_star, times, lr, sigma, *, N, P, gd):
    dtype = lam.dtype
    M = lam.shape[0]
    sqrt_lam = jnp.sqrt(lam)

    def one(key):
        k_a, k_x, k_e = jax.random.split(key, 3)
        a = jax.random.normal(k_a, (N, M), dtype)
        psi = jax.random.normal(k_x, (P, M), dtype) * sqrt_lam
        y = psi @ w_star + sigma * jax.random.normal(k_e, (P,), dtype)
        feats = a @ psi.T / math.sqrt(N)                     # (N, P)
        # thin SVD of the features (not eigh of the Gram, which squares the condition number)
        u, sv, vt = jnp.linalg.svd(feats, full_matrices=False)   # rank min(N, P)
        mu = sv * sv / P
        thr = sv[0] * max(N, P) * 10 * jnp.finfo(dtype).eps
        live = sv > thr
        sv_safe = jnp.where(live, sv, 1.0)
        # w(t) = U diag((1 - exp(-mu t)) / sv) V^T y
        phi = jnp.where(live[None, :], -_decay_minus_one(mu, times, lr, gd) / sv_safe, 0.0)
        c = vt @ y
        g = a.T @ u / math.sqrt(N)                           # (M, min(N, P))
        theta = (phi * c) @ g.T                              # (T, M)
        v = w_star - theta
        return jnp.sum(lam * v * v, axis=-1)

    return jax.lax.map(one, keys)


@functools.partial(jax.jit, static_argnames=("N", "gd"))
def _population_flow(keys, lam, w_star, times, lr, *, N, gd):
    dtype = lam.dtype
    M = lam.shape[0]
    sqrt_lam = jnp.sqrt(lam)

    def one(key):
        a = jax.random.normal(key, (N, M), dtype) * sqrt_lam / math.sqrt(N)
        # Lambda^{1/2} B Lambda^{1/2} = a^T a and L = |exp(-t a^T a) Lambda^{1/2} w*|^2; with the
        # thin SVD a = U S V^T: exp(-t a^T a) z = z + V^T diag(expm1(-t S^2)) V z
        _, sv, vt = jnp.linalg.svd(a, full_matrices=False)   # (k,), (k, M), k = min(N, M)
        z = sqrt_lam * w_star
        coef = _decay_minus_one(sv * sv, times, lr, gd)      # (T, k)
        out = z + (coef * (vt @ z)) @ vt                     # (T, M)
        return jnp.sum(out * out, axis=-1)

    return jax.lax.map(one, keys)


def random_feature_online_sgd(
    key: Array,
    eigvals: Float[Array, " M"],
    target_power: Float[Array, " M"],
    t: Float[Array, " T"],
    N: int,
    *,
    lr: float = 0.05,
    batch: int = 32,
    n_seeds: int = 32,
    noise: float = 0.0,
    dtype=jnp.float32,
    max_steps: int = MAX_STEPS,
    max_memory_gb: float | None = None,
    throw: bool = True,
) -> Float[Array, "seeds T"]:
    """Test loss of the random-feature student trained by online SGD (fresh samples each step).

    .. math::
        w \\leftarrow w - \\frac{\\eta}{b}\\sum_{\\mu=1}^{b}
        (f(x_\\mu) - y_\\mu)\\,A\\psi(x_\\mu)/\\sqrt N,

    time :math:`t = \\eta \\times` steps (the loss at the step nearest ``t / lr``). As
    :math:`\\eta \\to 0` this approaches population gradient flow (theory with ``P = inf``);
    SGD noise adds an :math:`O(\\eta/b)` excess.

    Args:
        key: PRNG key.
        eigvals, target_power, t: as in :func:`random_feature_dynamics`.
        N: width.
        lr: learning rate :math:`\\eta > 0`.
        batch: fresh samples per step.
        n_seeds: independent runs (each its own ``A`` and data stream).
        noise: label-noise standard deviation.
        dtype: float32 (default) or float64 (needs x64 enabled).
        max_steps: largest number of steps ``t[-1] / lr`` accepted (default 10^8).
        max_memory_gb: memory the run may use (default: host RAM).
        throw: raise :class:`theorysim.ConvergenceError` when a loss is non-finite (``lr``
            above the SGD stability limit); ``False`` returns the losses as they are.

    Every ``t`` must be at least ``lr / 2`` (it is rounded to whole steps, and 0 steps would
    silently return the initial loss).

    Returns:
        ``(n_seeds, T)`` test losses.
    """
    lam, lw2, times, dtype = _check_common(key, eigvals, target_power, t, dtype, throw,
                                           max_memory_gb)
    N = check_scalar("N", N, lo=1, integer=True)
    lr = check_scalar("lr", lr, lo=0.0, lo_open=True, hi=math.inf, hi_open=True)
    batch = check_scalar("batch", batch, lo=1, integer=True)
    n_seeds = check_scalar("n_seeds", n_seeds, lo=1, hi=MAX_SEEDS, integer=True)
    noise = check_scalar("noise", noise, lo=0.0, hi=math.inf, hi_open=True)
    check_magnitude("noise", np.asarray(noise), dtype)  # noise^2 must fit the dtype
    max_steps = check_scalar("max_steps", max_steps, lo=1, integer=True)
    raw_steps = times / lr
    if raw_steps[-1] > max_steps:
        raise ValueError(f"t[-1] / lr = {raw_steps[-1]:.3g} steps exceeds max_steps={max_steps}; "
                         "shorten t, raise lr, or pass max_steps= to allow it")
    steps_at = np.rint(raw_steps).astype(np.int64)
    if steps_at[0] < 1:
        raise ValueError(f"t must be >= lr / 2 (at least one SGD step); t[0] = {times[0]:.3g} "
                         f"with lr = {lr:.3g} rounds to 0 steps")
    n_steps = int(steps_at[-1])
    check_fits({"losses of every step": n_seeds * (n_steps + 1) * dtype.itemsize,
                "step keys": n_steps * 8,
                "one seed's features": (N + batch) * lam.size * dtype.itemsize},
               limit_gb=max_memory_gb, blame=f"t[-1] / lr ({n_steps} steps), n_seeds "
               f"({n_seeds}), N ({N}) or batch ({batch})", caller="random_feature_online_sgd")
    w_star = np.sqrt(lw2 / lam)
    keys = jax.random.split(key, n_seeds)
    losses = _online(keys, jnp.asarray(lam, dtype), jnp.asarray(w_star, dtype),
                     jnp.asarray(lr, dtype), jnp.asarray(noise, dtype),
                     N=N, batch=batch, n_steps=n_steps)
    return finite_or_raise(losses[:, steps_at], throw=throw, caller="random_feature_online_sgd",
                           hint=f"lr = {lr:.3g} is above the SGD stability limit; lower it")


@functools.partial(jax.jit, static_argnames=("N", "batch", "n_steps"))
def _online(keys, lam, w_star, lr, sigma, *, N, batch, n_steps):
    dtype = lam.dtype
    M = lam.shape[0]
    sqrt_lam = jnp.sqrt(lam)

    def one(key):
        k_a, k_run = jax.random.split(key)
        a = jax.random.normal(k_a, (N, M), dtype)

        def step(v, k):
            k_x, k_e = jax.random.split(k)
            psi = jax.random.normal(k_x, (batch, M), dtype) * sqrt_lam
            r = psi @ v - sigma * jax.random.normal(k_e, (batch,), dtype)   # f - y = -(r)
            grad_theta = psi.T @ r / batch                                  # (M,)
            v = v - lr * (a.T @ (a @ grad_theta)) / N
            return v, jnp.sum(lam * v * v)

        _, ls = jax.lax.scan(step, w_star, jax.random.split(k_run, n_steps))
        return jnp.concatenate([jnp.sum(lam * w_star * w_star)[None], ls])

    return jax.lax.map(one, keys)
