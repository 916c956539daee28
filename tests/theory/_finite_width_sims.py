"""Plain JAX width-N two-layer mean-field networks trained by full-batch GD, vmapped over seeds
(no theorysim code): the check of ``theory.dmft_two_layer_finite_width``.

``f(x) = z . phi(W x / sqrt(D)) / (gamma0 N)``, W and z standard normal, GD with step
``lr gamma0^2 N`` on ``mean((f - y)^2) / 2``. The NTK is the parameter-Jacobian kernel
(``gamma0^2 N J J^T``) for smooth activations and, for ReLU, the Filippov-slope kernel of
``theory.sliding_ntk`` (re-implemented here so that it vmaps; the tests check it against
``sliding_ntk``).
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


def filippov(h, z, d, phi0, gamma0, step):
    """ReLU slopes with sliding neurons at their Filippov slope (``theory.sliding_ntk``)."""
    P = d.shape[0]
    s = (h > 0).astype(h.dtype)
    coef = gamma0 / P * z[:, None]
    v = coef * ((s * d) @ phi0)
    c1 = coef * jnp.diag(phi0)[None] * d[None]
    c0 = v - c1 * s
    band = 2 * step * (jnp.abs(c0) + jnp.abs(c0 + c1))
    slide = (jnp.abs(h) <= band) & (c1 < 0) & (c0 > 0) & (c0 + c1 < 0)
    return jnp.where(slide, -c0 / jnp.where(slide, c1, 1.0), s)

@partial(jax.jit, static_argnames=("N", "act", "rec", "chunk", "centered"))
def simulate(keys, X, y, gamma0, lr, drive, *, N, act, rec, chunk=256, centered=False):
    """Per seed (one key each): losses ``(seeds, R)`` and NTKs ``(seeds, R, P, P)`` at the
    recorded steps ``rec`` (increasing), the outputs ``(seeds, steps+1, P)`` of the same
    initial neurons driven by the error trajectory ``drive (steps+1, P)`` instead of their
    own (zero-mean control variates), and the errors ``(seeds, R, P)``."""
    P, D = X.shape
    phi = {"tanh": jnp.tanh, "relu": jax.nn.relu}[act]
    phi0 = X @ X.T / D
    def f(params, x):
        W, z = params
        return z @ phi(W @ x.T / math.sqrt(D)) / (gamma0 * N)
    def loss(params, f0):
        r = f(params, X) - f0 - y
        return 0.5 * jnp.mean(r * r)
    def ntk(params, f0):
        W, z = params
        h = W @ X.T / math.sqrt(D)
        if act == "relu":
            d = y - (f(params, X) - f0)
            g = filippov(h, z, d, phi0, gamma0, lr) * z[:, None]
            ph = phi(h)
            return (ph.T @ ph + (g.T @ g) * phi0) / N
        J = jax.jacobian(f)(params, X)  # tangent kernel from the parameter Jacobian
        Jf = jnp.concatenate([J[0].reshape(P, -1), J[1]], axis=1)
        return gamma0**2 * N * Jf @ Jf.T
    def one(key):
        kw, kz = jax.random.split(key)
        params = (jax.random.normal(kw, (N, D), X.dtype), jax.random.normal(kz, (N,), X.dtype))
        f0 = f(params, X) if centered else jnp.zeros(P, X.dtype)

        def body(carry, d_drive):
            p, q = carry
            g = jax.grad(loss)(p, f0)
            p = jax.tree_util.tree_map(lambda a, b: a - lr * gamma0**2 * N * b, p, g)
            fq = f(q, X)
            # the same neurons driven by the given error: grad of -(1/P) d . f
            gq = jax.grad(lambda qq: -jnp.mean(d_drive * f(qq, X)))(q)
            q = jax.tree_util.tree_map(lambda a, b: a - lr * gamma0**2 * N * b, q, gq)
            return (p, q), fq

        # observables only at the recorded steps (the NTK costs ~P gradients): segments of
        # plain steps between them
        carry, fqs, obs, start = (params, params), [], [], 0
        for r in rec:
            if r > start:
                carry, fq = jax.lax.scan(body, carry, drive[start:r])
                fqs.append(fq)
            p = carry[0]
            obs.append((loss(p, f0), ntk(p, f0), y - (f(p, X) - f0)))
            start = r
        if drive.shape[0] > start:
            fqs.append(jax.lax.scan(body, carry, drive[start:])[1])
        ls, Ks, ds = (jnp.stack(o) for o in zip(*obs, strict=True))
        return ls, Ks, jnp.concatenate(fqs), ds
    nk = keys.shape[0]
    out = jax.lax.map(jax.vmap(one), keys.reshape(nk // chunk, chunk))
    return jax.tree_util.tree_map(lambda a: a.reshape(nk, *a.shape[2:]), out)

def gap_with_control(L, fq, fstar, rec, every=5):
    """Seed mean of ``L (seeds, R)`` with control variates ``fq - fstar`` at every ``every``-th
    step up to each recorded step (``fq``: the neurons driven by the infinite-width error, so
    ``E fq = fstar`` whatever the finite-width theory says; coefficients by least squares, an
    unbiased variance reduction). Returns ``(mean, se)`` per recorded step."""
    n = L.shape[0]
    means, ses = [], []
    for j, step in enumerate(rec):
        idx = np.arange(0, step + 1, every)
        C = (fq[:, idx] - fstar[idx]).reshape(n, -1)
        if C.shape[1] == 0:
            means.append(L[:, j].mean())
            ses.append(L[:, j].std(ddof=1) / math.sqrt(n))
            continue
        Cc = C - C.mean(0)
        beta, *_ = np.linalg.lstsq(Cc, L[:, j] - L[:, j].mean(), rcond=None)
        adj = L[:, j] - C @ beta
        means.append(adj.mean())
        ses.append(adj.std(ddof=C.shape[1] + 1) / math.sqrt(n))
    return np.array(means), np.array(ses)
