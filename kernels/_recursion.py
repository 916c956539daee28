r"""The layer recursion of NNGP/NTK for a deep fully-connected network, jittable and blocked.

Dense layer with weight std :math:`\sigma_w`, bias std :math:`\sigma_b`, fan-in :math:`n`:

.. math::
    \Sigma' = \sigma_w^2 \Sigma + \sigma_b^2, \qquad
    \Theta' = \Sigma' + \sigma_w^2\Theta \ \text{(NTK param.)}, \qquad
    \Theta' = n\Sigma + \sigma_w^2\Theta + 1_{\text{bias}} \ \text{(standard param.)};

nonlinearity: :math:`\Sigma' = \hat\phi(\Sigma)`, :math:`\Theta' = \Theta\,\hat\phi'(\Sigma)`.
The input covariance is :math:`x_1 x_2^\top / d_{in}` (neural-tangents' convention).
References: Lee et al. 2018 (arXiv 1711.00165), Jacot et al. 2018 (1806.07572),
Novak et al. 2020 (1912.02803).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from ._activations import Activation

#: elements of one (rows x columns) block. XLA materialises several block-sized intermediates
#: per layer (around each transcendental op); blocks of ~2**15 elements (128-256 KB) keep them
#: in cache, which measured 2-3x faster than one 2000 x 2000 block on CPU.
BLOCK_ELEMENTS = 1 << 15
MIN_ROWS = 8


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    """Static description of the network (hashable: a ``jit`` static argument)."""

    depth: int
    activation: Activation
    W_std: float = 1.0
    b_std: float = 0.0
    parameterization: str = "ntk"
    width: int | None = None


def dense_nngp(k, w2: float, b2: float):
    """NNGP after a Dense layer: ``W_std^2 k + b_std^2`` (shared with ``stax.Dense``/``Conv``)."""
    return w2 * k + b2


def dense_ntk(k12, theta, w2: float, b2: float, standard: bool, bias: float, fan_in):
    """NTK after a Dense layer from the input NNGP ``k12`` and NTK ``theta`` (``None``: zero).

    NTK parameterisation: ``W_std^2 k12 + b_std^2 + W_std^2 theta``; standard:
    ``fan_in k12 + bias + W_std^2 theta`` (``bias`` is 1.0 with a trainable bias, else 0.0).
    Shared by :func:`kernel_recursion` and ``stax.Dense``/``stax.Conv``.
    """
    t = fan_in * k12 + bias if standard else dense_nngp(k12, w2, b2)
    return t if theta is None else t + w2 * theta


def kernel_recursion(cfg: MLPConfig, k11, k22, k12, d_in: int, *, ntk: bool = True):
    """Carry input covariances through ``depth`` (Dense, activation) pairs and a final Dense.

    ``k11``, ``k22``, ``k12`` are the input-layer covariances (``x.x'/d_in``), broadcastable to
    each other: ``(b, 1), (1, n), (b, n)`` for a block, or equal vectors for a diagonal.
    Returns ``(nngp, ntk_or_None)``.
    """
    w2, b2 = cfg.W_std**2, cfg.b_std**2
    standard = cfg.parameterization == "standard"
    bias = 1.0 if cfg.b_std > 0 else 0.0
    theta = None  # NTK of the inputs (no parameters): zero

    def dense(k11, k22, k12, theta, fan_in):
        if ntk:
            theta = dense_ntk(k12, theta, w2, b2, standard, bias, fan_in)
        return (dense_nngp(k11, w2, b2), dense_nngp(k22, w2, b2), dense_nngp(k12, w2, b2),
                theta)

    fan_in = d_in
    for _ in range(cfg.depth):
        k11, k22, k12, theta = dense(k11, k22, k12, theta, fan_in)
        d11, _ = cfg.activation.dual(k11, k11, k11, derivative=False)
        d22, _ = cfg.activation.dual(k22, k22, k22, derivative=False)
        k12, dphi = cfg.activation.dual(k11, k22, k12, derivative=ntk)
        if ntk:
            theta = theta * dphi
        k11, k22 = d11, d22
        fan_in = cfg.width if standard else None
    _, _, k12, theta = dense(k11, k22, k12, theta, fan_in)
    return k12, theta


@functools.partial(jax.jit, static_argnames=("cfg", "ntk", "symmetric"))
def _block(cfg: MLPConfig, x1, x2, q1, q2, offset=0, *, ntk: bool, symmetric: bool = False):
    d_in = x1.shape[-1]
    k12 = (x1 @ x2.T) / d_in
    if symmetric:
        # K(X, X): make the diagonal bitwise equal to q so that angles there are exactly zero.
        rows = jax.lax.broadcasted_iota(jnp.int32, k12.shape, 0) + offset
        cols = jax.lax.broadcasted_iota(jnp.int32, k12.shape, 1)
        k12 = jnp.where(rows == cols, q1[:, None], k12)
    return kernel_recursion(cfg, q1[:, None], q2[None, :], k12, d_in, ntk=ntk)


@functools.partial(jax.jit, static_argnames=("cfg", "ntk", "rows", "symmetric"))
def _blocked(cfg: MLPConfig, x1, x2, q1, q2, *, ntk: bool, rows: int, symmetric: bool):
    n1 = x1.shape[0]
    nb = -(-n1 // rows)
    pad = nb * rows - n1
    x1p = jnp.pad(x1, ((0, pad), (0, 0))).reshape(nb, rows, x1.shape[1])
    q1p = jnp.pad(q1, (0, pad), constant_values=1.0).reshape(nb, rows)

    def one(args):
        xb, qb, offset = args
        return _block(cfg, xb, x2, qb, q2, offset, ntk=ntk, symmetric=symmetric)

    offsets = jnp.arange(nb, dtype=jnp.int32) * rows
    nngp, theta = jax.lax.map(one, (x1p, q1p, offsets))
    nngp = nngp.reshape(nb * rows, -1)[:n1]
    if theta is not None:
        theta = theta.reshape(nb * rows, -1)[:n1]
    return nngp, theta


def block_rows(cfg: MLPConfig, n2: int, budget: int = BLOCK_ELEMENTS) -> int:
    """Rows per block so that one block's temporaries stay near ``budget`` elements."""
    return max(MIN_ROWS, budget // (max(n2, 1) * cfg.activation.cost))


def evaluate(cfg: MLPConfig, x1, x2, *, ntk: bool = True, budget: int = BLOCK_ELEMENTS):
    """NNGP (and NTK) between the rows of ``x1`` and ``x2``, in row blocks when large."""
    d_in = x1.shape[-1]
    q1 = jnp.sum(x1 * x1, axis=-1) / d_in
    symmetric = x2 is x1
    q2 = q1 if symmetric else jnp.sum(x2 * x2, axis=-1) / d_in
    rows = block_rows(cfg, x2.shape[0], budget)
    if x1.shape[0] <= rows:
        return _block(cfg, x1, x2, q1, q2, ntk=ntk, symmetric=symmetric)
    return _blocked(cfg, x1, x2, q1, q2, ntk=ntk, rows=rows, symmetric=symmetric)


@functools.partial(jax.jit, static_argnames=("cfg", "d_in", "ntk"))
def diagonal(cfg: MLPConfig, q, d_in: int, *, ntk: bool = True):
    """NNGP (and NTK) of each point with itself, from ``q = x.x/d_in``."""
    return kernel_recursion(cfg, q, q, q, d_in, ntk=ntk)
