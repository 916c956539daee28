r"""``batch``: an ``n1 x n2`` kernel in ``batch_size`` blocks, spread over the local devices.

Each entry :math:`K(x_i, x_j)` of an infinite-width kernel depends only on :math:`x_i`,
:math:`x_j` (per-example kernels: no batch statistics), so the matrix is assembled from
independent ``(batch_size, batch_size)`` blocks. The list of block pairs is split evenly over
a 1-D device mesh (``jax.sharding``, ``shard_map``; no ``pmap``); each device runs its pairs
one after another (``lax.map``), so the peak memory is one block's temporaries per device plus
the output. Diagonal blocks of :math:`K(X, X)` use the same symmetric path as the unbatched
call (exact zero angles on the diagonal), so results equal the unbatched call to rounding.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from theorysim.checks import as_finite_array, check_scalar

from ._analytic import Kernel, conclude

try:  # jax >= 0.4.35
    from jax import shard_map as _shard_map
except ImportError:  # pragma: no cover
    from jax.experimental.shard_map import shard_map as _shard_map


def _devices(device_count):
    devs = jax.local_devices()
    if device_count == -1:
        return devs
    n = check_scalar("device_count", device_count, lo=1, integer=True)
    if n > len(devs):
        raise ValueError(f"device_count must be -1 or at most the {len(devs)} local devices, "
                         f"got {device_count}")
    return devs[:n]


def batch(kernel_fn, batch_size: int = 0, device_count: int = -1, store_on_device: bool = True):
    r"""Wrap ``kernel_fn(x1, x2=None, get=None)`` to compute in blocks over local devices.

    Args:
      kernel_fn: a ``theorysim.kernels.stax`` ``kernel_fn``.
      batch_size: rows per block; ``n1`` and ``n2`` must be multiples of it (``0``: one block).
      device_count: devices to use, ``-1`` for all local devices.
      store_on_device: accepted for neural-tangents compatibility (results are device arrays).

    Returns:
      A function with ``kernel_fn``'s signature returning the same values as the unbatched call
      (to rounding: blocks are computed by the same code).

    Example:
      >>> from theorysim.kernels import stax
      >>> _, _, kfn = stax.serial(stax.Dense(64), stax.Relu(), stax.Dense(1))
      >>> kb = batch(kfn, batch_size=2)
      >>> kb(jnp.ones((4, 3)), get="nngp").shape
      (4, 4)
    """
    from .stax._core import KernelFn, _format, _parse_get

    if not isinstance(kernel_fn, KernelFn):
        raise ValueError("kernel_fn must be a theorysim.kernels.stax kernel_fn (the third entry "
                         f"of a layer triple), got {type(kernel_fn).__name__}")
    batch_size = check_scalar("batch_size", batch_size, lo=0, integer=True)
    devices = _devices(device_count)
    if not isinstance(store_on_device, bool):
        raise ValueError(f"store_on_device must be a bool, got {store_on_device!r}")

    def batched(x1, x2=None, get=None, *, diagonal_spatial: bool = False):
        get_, names = _parse_get(get)
        if any(n not in ("nngp", "ntk") for n in names):
            raise ValueError("batch computes get='nngp' and/or 'ntk' only")
        a1 = as_finite_array("x1", x1, min_size=1)
        a2 = None if x2 is None else as_finite_array("x2", x2, min_size=1)
        n1 = a1.shape[0]
        n2 = n1 if a2 is None else a2.shape[0]
        bs = batch_size or max(n1, n2)
        for name, n in (("x1", n1), ("x2", n2)):
            if n % bs:
                raise ValueError(f"{name} has {n} rows, not a multiple of batch_size={bs}")
        if a2 is not None and a2.shape[1:] != a1.shape[1:]:
            raise ValueError(f"x2 must have the same shape as x1 after the batch axis "
                             f"{a1.shape[1:]}, got {a2.shape[1:]}")
        if not isinstance(diagonal_spatial, bool):
            raise ValueError(f"diagonal_spatial must be a bool, got {diagonal_spatial!r}")
        layer = kernel_fn.layer
        # shapes and errors: one tiny unbatched call (raises ValueError before any compute)
        probe = kernel_fn(a1[:1], None if a2 is None else a2[:1], get=None,
                          diagonal_spatial=diagonal_spatial)
        full = bool(layer.needs_full(not diagonal_spatial)) and a1.ndim > 2
        want_ntk = "ntk" in names
        cross = kernel_fn.program(full, want_ntk, False)
        sym = kernel_fn.program(full, want_ntk, True)
        dtype = jnp.result_type(float)
        x1b = jnp.asarray(a1, dtype).reshape((n1 // bs, bs) + a1.shape[1:])
        x2b = x1b if a2 is None else jnp.asarray(a2, dtype).reshape((n2 // bs, bs)
                                                                    + a2.shape[1:])
        out = _run(cross, sym, x1b, x2b, a2 is None, tuple(devices), want_ntk)
        sp = probe.nngp.shape[2:]
        nb1, nb2 = x1b.shape[0], x2b.shape[0]

        def assemble(blocks):
            blocks = blocks[: nb1 * nb2].reshape((nb1, nb2, bs, bs) + sp)
            blocks = jnp.moveaxis(blocks, 2, 1)
            return blocks.reshape((nb1 * bs, nb2 * bs) + sp)

        res = {"nngp": assemble(out[0]), "ntk": assemble(out[1]) if want_ntk else None,
               "cov1": None, "cov2": None}
        # the probe call ran the contract on the quadrature estimate; finiteness checked here
        res["kernel"] = conclude(Kernel(res["nngp"], res["ntk"], probe.converged,
                                        probe.residual, probe.iterations),
                                 throw=True, solver="batch(kernel_fn)")
        return _format(res, get_, names)

    return batched


def _run(cross, sym, x1b, x2b, symmetric, devices, want_ntk):
    return _compiled_run()(cross, sym, x1b, x2b, symmetric, devices, want_ntk)


@functools.cache
def _compiled_run():
    from .stax._core import jit

    return jit(_run_blocks, static_argnames=("cross", "sym", "symmetric", "devices",
                                             "want_ntk"))


def _run_blocks(cross, sym, x1b, x2b, symmetric, devices, want_ntk):
    nb1, nb2 = x1b.shape[0], x2b.shape[0]
    n_dev = len(devices)
    pairs = np.array([(i, j) for i in range(nb1) for j in range(nb2)], np.int32)
    pad = (-len(pairs)) % n_dev
    pairs = np.concatenate([pairs, np.repeat(pairs[:1], pad, axis=0)])
    mesh = Mesh(np.array(devices), ("d",))

    def local(p, xa, xb):
        def one(ij):
            a, b = xa[ij[0]], xb[ij[1]]
            if symmetric:
                return jax.lax.cond(ij[0] == ij[1], lambda: _parts(sym(a, None), want_ntk),
                                    lambda: _parts(cross(a, b), want_ntk))
            return _parts(cross(a, b), want_ntk)

        return jax.lax.map(one, p)

    spec = PartitionSpec("d")
    return _shard_map(local, mesh=mesh, in_specs=(spec, PartitionSpec(), PartitionSpec()),
                      out_specs=spec)(jnp.asarray(pairs), x1b, x2b)


def _parts(out, want_ntk):
    return out["nngp"], (out["ntk"] if want_ntk else jnp.zeros_like(out["nngp"]))

