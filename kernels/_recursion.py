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
import math

import jax
import jax.numpy as jnp
import numpy as np

from ._activations import Activation

#: elements of one square tile of K (side ``sqrt(BLOCK_ELEMENTS / activation.cost)``, 256 for
#: the closed forms). A tile's whole depth-L recursion is one XLA loop fusion whose inputs and
#: output (~1.5 MB in float64) stay in the per-core L2 cache, and which XLA:CPU splits over
#: its threads; see :func:`_blocked`.
BLOCK_ELEMENTS = 1 << 16
MIN_ROWS = 8
#: deeper recursions run their layers after the first as one ``fori_loop`` (a loop body
#: compiled once) instead of unrolled into one fusion, whose compile time grows faster than
#: the depth (measured under load ~20, 6 points: unrolled depth 8 9 s, 10 18 s, 30 187 s; as
#: a loop depth 9, 40 and 200 all 3 s).
UNROLL_DEPTH = 4


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


def kernel_recursion(cfg: MLPConfig, k11, k22, k12, d_in: int, *, ntk: bool = True,
                     variances=None):
    """Carry input covariances through ``depth`` (Dense, activation) pairs and a final Dense.

    ``k11``, ``k22``, ``k12`` are the input-layer covariances (``x.x'/d_in``), broadcastable to
    each other: ``(b, 1), (1, n), (b, n)`` for a block, or equal vectors for a diagonal.
    ``variances``: optional ``(v1, v2)``, each a sequence of the ``depth`` pre-activation
    variances of the rows / columns (:func:`layer_variances`, shaped like ``k11`` / ``k22``);
    given, they are used instead of carrying ``k11``/``k22`` through the layers here (same
    values: it only keeps that per-row/column work out of the per-entry fusion).
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

    def layer(index, carry, fan_in):
        k11, k22, k12, theta = dense(*carry, fan_in)
        if variances is not None:
            k11, k22 = variances[0][index], variances[1][index]
        d11, _ = cfg.activation.dual(k11, k11, k11, derivative=False)
        d22, _ = cfg.activation.dual(k22, k22, k22, derivative=False)
        k12, dphi = cfg.activation.dual(k11, k22, k12, derivative=ntk)
        if ntk:
            theta = theta * dphi
        return d11, d22, k12, theta

    carry = (k11, k22, k12, theta)
    hidden_fan_in = cfg.width if standard else None
    if cfg.depth <= UNROLL_DEPTH:
        for index in range(cfg.depth):
            carry = layer(index, carry, d_in if index == 0 else hidden_fan_in)
    else:  # layer 0 fixes the shapes of the carry; the others are one compiled loop body
        carry = layer(0, carry, d_in)
        carry = tuple(jnp.broadcast_to(c, jnp.broadcast_shapes(*map(jnp.shape, carry[:3])))
                      if i == 2 else c for i, c in enumerate(carry))
        carry = jax.lax.fori_loop(1, cfg.depth,
                                  lambda i, c: layer(i, c, hidden_fan_in), carry)
    _, _, k12, theta = dense(*carry, d_in if cfg.depth == 0 else hidden_fan_in)
    return k12, theta


def layer_variances(cfg: MLPConfig, q):
    """Pre-activation variance of each point at each of the ``depth`` layers, ``(depth, n)``.

    ``q = x.x/d_in``; entry ``l`` is the variance entering the ``l``-th activation (after the
    Dense layer), the diagonal that :func:`kernel_recursion` carries.
    """
    w2, b2 = cfg.W_std**2, cfg.b_std**2

    def step(k, _):
        pre = dense_nngp(k, w2, b2)
        return cfg.activation.dual(pre, pre, pre, derivative=False)[0], pre

    if cfg.depth > UNROLL_DEPTH:  # one compiled loop body (see UNROLL_DEPTH)
        return jax.lax.scan(step, jnp.asarray(q), None, length=cfg.depth)[1]
    out = []
    k = q
    for _ in range(cfg.depth):
        k, pre = step(k, None)
        out.append(pre)
    return jnp.stack(out) if out else jnp.zeros((0,) + jnp.shape(q), jnp.result_type(q))


def _tile(cfg: MLPConfig, x1, x2, q1, q2, row0=0, col0=0, *, ntk: bool, symmetric: bool,
          v1=None, v2=None):
    """NNGP/NTK of one tile: rows ``x1`` (starting at row ``row0`` of X), columns ``x2``;
    ``v1``, ``v2``: the rows'/columns' :func:`layer_variances` (computed here if ``None``)."""
    d_in = x1.shape[-1]
    k12 = (x1 @ x2.T) / d_in
    if symmetric:
        # K(X, X): make the diagonal bitwise equal to q so that angles there are exactly zero.
        rows = jax.lax.broadcasted_iota(jnp.int32, k12.shape, 0) + row0
        cols = jax.lax.broadcasted_iota(jnp.int32, k12.shape, 1) + col0
        k12 = jnp.where(rows == cols, q1[:, None], k12)
    v1 = layer_variances(cfg, q1) if v1 is None else v1
    v2 = layer_variances(cfg, q2) if v2 is None else v2
    return kernel_recursion(cfg, q1[:, None], q2[None, :], k12, d_in, ntk=ntk,
                            variances=(v1[:, :, None], v2[:, None, :]))


@functools.partial(jax.jit, static_argnames=("cfg", "ntk", "symmetric"))
def _block(cfg: MLPConfig, x1, x2, q1, q2, offset=0, *, ntk: bool, symmetric: bool = False):
    """One block, all at once (rows of ``x1`` start at row ``offset`` of X when symmetric)."""
    return _tile(cfg, x1, x2, q1, q2, offset, 0, ntk=ntk, symmetric=symmetric)


def _starts(n: int, side: int) -> list[int]:
    """Tile starts covering ``range(n)``; the last is clamped to ``n - side`` (no padding)."""
    return [min(i * side, n - side) for i in range(-(-n // side))]


@functools.partial(jax.jit, static_argnames=("cfg", "ntk", "rows", "symmetric"))
def _blocked(cfg: MLPConfig, x1, x2, q1, q2, *, ntk: bool, rows: int, symmetric: bool):
    """K in square tiles of side ``rows``, written into the outputs by a ``fori_loop``.

    Three things make this fast and its time steady on XLA:CPU (issue 12):

    * K(X, X) is symmetric: only tiles on and above the diagonal are computed, each written
      twice (as is and transposed), about half the work for large n;
    * NNGP and NTK of a tile leave the recursion as one complex array ``nngp + i ntk``. XLA:CPU
      has no multi-output loop fusion, so two outputs would be two fusions each recomputing the
      whole shared recursion (or materialising it in pieces); one complex output is one fusion
      that computes every shared value once per entry. The real and imaginary parts are
      written out in the *next* loop iteration (the tile is carried), where the algebraic
      simplifier cannot fold ``real(complex(a, b))`` back into ``a`` and undo the packing;
    * tiles are ~2**16 entries: one fusion per tile, large enough for XLA to split over its
      threads, small enough to stay in cache; the last start is clamped (overlapping tiles),
      so nothing is padded and no ``n x n`` temporary exists besides the outputs.
    """
    n1, n2 = x1.shape[0], x2.shape[0]
    t1, t2 = min(rows, n1), min(rows, n2)
    s1, s2 = _starts(n1, t1), _starts(n2, t2)
    if symmetric:
        pairs = [(a, b) for i, a in enumerate(s1) for b in s1[i:]]
    else:
        pairs = [(a, b) for a in s1 for b in s2]
    table = jnp.asarray(np.array(pairs, dtype=np.int32))
    dtype = jnp.result_type(x1)
    cdtype = jnp.complex128 if jnp.dtype(dtype).itemsize == 8 else jnp.complex64

    # per-row/column work once for all points, outside the loop (see kernel_recursion)
    v1 = layer_variances(cfg, q1)
    v2 = v1 if symmetric else layer_variances(cfg, q2)

    def compute(k):
        r0, c0 = table[k, 0], table[k, 1]
        xa = jax.lax.dynamic_slice_in_dim(x1, r0, t1)
        xb = jax.lax.dynamic_slice_in_dim(x2, c0, t2)
        qa = jax.lax.dynamic_slice_in_dim(q1, r0, t1)
        qb = jax.lax.dynamic_slice_in_dim(q2, c0, t2)
        va = jax.lax.dynamic_slice_in_dim(v1, r0, t1, axis=1)
        vb = jax.lax.dynamic_slice_in_dim(v2, c0, t2, axis=1)
        nngp, theta = _tile(cfg, xa, xb, qa, qb, r0, c0, ntk=ntk, symmetric=symmetric,
                            v1=va, v2=vb)
        return (nngp if theta is None else jax.lax.complex(nngp, theta)), r0, c0

    def write(outs, z, r0, c0):
        parts = (jnp.real(z), jnp.imag(z)) if ntk else (z,)
        new = []
        for out, part in zip(outs, parts, strict=True):
            out = jax.lax.dynamic_update_slice(out, part.astype(dtype), (r0, c0))
            if symmetric:
                out = jax.lax.dynamic_update_slice(out, part.T.astype(dtype), (c0, r0))
            new.append(out)
        return tuple(new)

    def body(k, carry):
        outs, z, r0, c0 = carry
        return (write(outs, z, r0, c0), *compute(k))

    # iteration k computes tile k and writes tile k - 1; iteration 0 writes a zero tile at
    # (0, 0), which tile 0 (computed there) overwrites one iteration later.
    outs = tuple(jnp.zeros((n1, n2), dtype) for _ in range(2 if ntk else 1))
    zero = jnp.zeros((t1, t2), cdtype if ntk else dtype)
    init = (outs, zero, jnp.int32(0), jnp.int32(0))
    outs = write(*jax.lax.fori_loop(0, len(pairs), body, init))
    return (outs[0], outs[1]) if ntk else (outs[0], None)


def block_rows(cfg: MLPConfig, n2: int, budget: int = BLOCK_ELEMENTS) -> int:
    """Side of the square tiles: ``sqrt(budget / activation.cost)``, at least ``MIN_ROWS``.

    ``n2`` is unused (kept for callers): tiles are square whatever the shape of K.
    """
    del n2
    return max(MIN_ROWS, math.isqrt(budget // cfg.activation.cost))


@functools.partial(jax.jit, static_argnames=("cfg", "ntk", "rows", "symmetric"))
def _evaluate(cfg: MLPConfig, x1, x2, *, ntk: bool, rows: int, symmetric: bool):
    d_in = x1.shape[-1]
    q1 = jnp.sum(x1 * x1, axis=-1) / d_in
    q2 = q1 if symmetric else jnp.sum(x2 * x2, axis=-1) / d_in
    if x1.shape[0] <= rows and x2.shape[0] <= rows:
        return _tile(cfg, x1, x2, q1, q2, ntk=ntk, symmetric=symmetric)
    return _blocked(cfg, x1, x2, q1, q2, ntk=ntk, rows=rows, symmetric=symmetric)


def evaluate(cfg: MLPConfig, x1, x2, *, ntk: bool = True, budget: int = BLOCK_ELEMENTS):
    """NNGP (and NTK) between the rows of ``x1`` and ``x2`` (``x2 is x1``: K(X, X), by symmetry),
    in square tiles of ~``budget`` entries when large; one jitted call."""
    symmetric = x2 is x1
    return _evaluate(cfg, x1, x1 if symmetric else x2, ntk=ntk,
                     rows=block_rows(cfg, x2.shape[0], budget), symmetric=symmetric)


@functools.partial(jax.jit, static_argnames=("cfg", "d_in", "ntk"))
def diagonal(cfg: MLPConfig, q, d_in: int, *, ntk: bool = True):
    """NNGP (and NTK) of each point with itself, from ``q = x.x/d_in``."""
    return kernel_recursion(cfg, q, q, q, d_in, ntk=ntk)
