r"""The machinery under :mod:`theorysim.kernels.stax`: the kernel state, layers, ``kernel_fn``.

A layer is an object with ``init(key, shape)``, ``apply(params, x, **kw)``, ``kernel(state)``
and ``needs_full(out_full)``; the public ``(init_fn, apply_fn, kernel_fn)`` triple wraps it.

Kernel state for inputs of shape ``(N, *S, C)`` (channel last):

- ``nngp``, ``ntk``: ``(N1, N2, *sp)``; ``ntk is None`` means zero (the inputs carry no
  parameters) or not requested;
- ``cov1``, ``cov2``: the same-example covariances ``(N, *sp)``; ``cov1 is None`` when
  ``x2`` is ``x1`` (they are then the batch diagonal of ``nngp``, exactly);
- ``full``: ``sp`` is ``(H, H, W, W, ...)`` (every pair of positions, neural-tangents'
  layout) or ``(H, W, ...)`` (same position only: ``diagonal_spatial``). The layout is chosen
  before any compute by asking the network, from the readout back, whether off-diagonal spatial
  covariances are ever needed (pooling, attention: yes; ``Flatten``, convolutions feeding it,
  elementwise layers: no).

``kernel_fn(x1, x2=None)`` with more example pairs than one tile holds (:func:`tile_rows`)
is assembled from tiles of example pairs (:func:`tiled`; for ``x2=None`` the tiles on and
above the diagonal only), so the temporaries are one tile's and not the whole batch's.

Every map follows Novak et al. 2019 (arXiv 1810.05148) and neural-tangents 0.6.5
(Novak et al. 2020, arXiv 1912.02803); the Dense/activation steps are the ones of
:func:`theorysim.kernels.mlp_kernel` (``_recursion.dense_nngp``/``dense_ntk`` and
``Activation.dual``), so both agree by construction.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from theorysim.checks import as_finite_array, check_key, check_magnitude
from theorysim.contract import check_throw

from .._analytic import MAX_GB, Kernel, check_output_size, conclude, quadrature_tolerance


@dataclasses.dataclass(frozen=True)
class KState:
    """Kernel state passed between layers (see module docstring)."""

    nngp: jax.Array
    ntk: jax.Array | None
    cov1: jax.Array | None
    cov2: jax.Array | None
    full: bool
    spatial: tuple[int, ...]
    channels: int
    want_ntk: bool
    is_input: bool = False
    gaussian: bool = False          # pre-activations jointly Gaussian (after an affine layer)
    quad_err: float | jax.Array = 0.0   # largest quadrature error estimate so far (relative)
    quad_nodes: int = 0                 # nodes per dimension of the quadrature layers (max)

    def replace(self, **kw) -> KState:
        return dataclasses.replace(self, **kw)

    @property
    def symmetric(self) -> bool:
        return self.cov1 is None

    def map(self, fn, *, ntk: bool = True) -> KState:
        """Apply the same linear map to nngp, ntk (when present), cov1, cov2."""
        def g(x, batch_ndim):
            return None if x is None else fn(x, batch_ndim)
        return self.replace(nngp=fn(self.nngp, 2), ntk=g(self.ntk, 2) if ntk else self.ntk,
                            cov1=g(self.cov1, 1), cov2=g(self.cov2, 1), is_input=False)


# ----------------------------------------------------------------------------- diagonals

def spatial_diagonal(cov, full: bool, nsp: int):
    """``(N, *sp)`` same-example covariance -> per-position variance ``(N, *S)``."""
    if not full:
        return cov
    for _ in range(nsp):
        cov = jnp.diagonal(cov, axis1=1, axis2=2)
    return cov


def variances(st: KState):
    """Per-position variances ``(v1, v2)`` each ``(N, *S)``; ``v2 is v1`` when symmetric."""
    nsp = len(st.spatial)
    if st.symmetric:
        c = jnp.moveaxis(jnp.diagonal(st.nngp, axis1=0, axis2=1), -1, 0)
        v = spatial_diagonal(c, st.full, nsp)
        return v, v
    return (spatial_diagonal(st.cov1, st.full, nsp), spatial_diagonal(st.cov2, st.full, nsp))


def batch_cov(st: KState, which: int):
    """Same-example covariance ``(N, *sp)`` of ``x1`` (1) or ``x2`` (2)."""
    if st.symmetric:
        return jnp.moveaxis(jnp.diagonal(st.nngp, axis1=0, axis2=1), -1, 0)
    return st.cov1 if which == 1 else st.cov2


def expand(v, full: bool, *, pair: bool, first: bool):
    """Broadcast per-position values ``v (N, *S)`` against a kernel.

    ``pair=True``: against ``nngp (N1, N2, *sp)``, ``first`` picks the ``x1`` side;
    ``pair=False``: against ``cov (N, *sp)``, ``first`` picks the first position of each pair.
    """
    nsp = v.ndim - 1
    if pair:
        v = v[:, None] if first else v[None]
    lead = 2 if pair else 1
    if not full:
        return v
    shape = list(v.shape[:lead])
    for i in range(nsp):
        n = v.shape[lead + i]
        shape += [n, 1] if first else [1, n]
    return v.reshape(shape)


def outer(st: KState, f):
    """``(k11, k22)`` for nngp and ``[(a, b)]`` for cov1/cov2 from ``f(v)`` of the variances."""
    v1, v2 = variances(st)
    f1 = f(v1)
    f2 = f1 if v2 is v1 else f(v2)
    nn = (expand(f1, st.full, pair=True, first=True), expand(f2, st.full, pair=True, first=False))
    c1 = (expand(f1, st.full, pair=False, first=True), expand(f1, st.full, pair=False, first=False))
    c2 = (expand(f2, st.full, pair=False, first=True), expand(f2, st.full, pair=False, first=False))
    return nn, c1, c2


# ----------------------------------------------------------------------------- layer objects

class Layer:
    """Base layer: subclasses set ``name`` and override what they need."""

    name = "layer"

    def require_gaussian(self, st):
        """Raise unless the layer's input is Gaussian (it follows Dense/Conv/attention)."""
        if not st.gaussian:
            raise ValueError(f"{self.name} needs Gaussian inputs: put a Dense, Conv or "
                             "GlobalSelfAttention layer before it (its kernel map assumes "
                             "zero-mean Gaussian pre-activations; raw inputs, outputs of "
                             "nonlinearities, Flatten or Dropout are not)")

    def init(self, key, shape):
        return tuple(shape), ()

    def apply(self, params, x, **kwargs):
        return x

    def kernel(self, st):
        raise NotImplementedError

    def needs_full(self, out_full):
        return out_full

    def triple(self):
        return _InitFn(self), _ApplyFn(self), KernelFn(self)


class _InitFn:
    def __init__(self, layer):
        self.layer = layer

    def __call__(self, rng, input_shape):
        """``init_fn(rng, input_shape) -> (output_shape, params)`` as in neural-tangents."""
        check_key("rng", rng)
        shape = _check_shape(input_shape)
        if not shape or shape[0] != -1:
            return self.layer.init(rng, shape)
        # neural-tangents' batch placeholder: -1 as the batch size (parameters never depend
        # on it); the network is initialised for one example and the output keeps -1
        out, params = self.layer.init(rng, (1, *shape[1:]))
        return _batch_placeholder(out), params


def _batch_placeholder(out):
    """``out`` (a shape, or nested lists/tuples of shapes) with each batch size set to -1."""
    if isinstance(out, tuple) and all(isinstance(s, int | None) for s in out):
        return (-1, *out[1:]) if out else out
    return type(out)(_batch_placeholder(o) for o in out)


class _ApplyFn:
    def __init__(self, layer):
        self.layer = layer

    def __call__(self, params, inputs, **kwargs):
        """``apply_fn(params, inputs, rng=None)``: the finite network."""
        try:
            return self.layer.apply(params, inputs, **kwargs)
        except (TypeError, IndexError, KeyError) as err:
            if params is None:  # a layer without parameters ignores them: None is fine there
                raise ValueError("params must be the parameters init_fn returned, got None"
                                 ) from err
            raise


def _check_shape(shape):
    try:
        shape = tuple(int(s) if s is not None and s >= 0 else s for s in shape)
    except TypeError as err:
        raise ValueError(f"input_shape must be a tuple of sizes, got {shape!r}") from err
    if any(s is not None and s < 0 for s in shape[1:]) or (shape and shape[0] is not None
                                                            and shape[0] < -1):
        raise ValueError(f"input_shape must hold non-negative sizes (the batch size may be "
                         f"-1, neural-tangents' placeholder), got {shape}")
    return shape


def layer_of(obj, where: str = "layer") -> Layer:
    """The :class:`Layer` behind a stax triple (or a bare kernel_fn)."""
    if isinstance(obj, Layer):
        return obj
    if isinstance(obj, tuple | list) and len(obj) == 3 and isinstance(obj[2], KernelFn):
        return obj[2].layer
    if isinstance(obj, KernelFn):
        return obj.layer
    raise ValueError(f"{where} must be a theorysim.kernels.stax layer (an (init_fn, apply_fn, "
                     f"kernel_fn) triple from this module), got {type(obj).__name__}")


# ----------------------------------------------------------------------------- kernel_fn

_GETS = ("nngp", "ntk", "cov1", "cov2")


def _parse_get(get):
    if get is None:
        return None, ("nngp", "ntk")
    names = (get,) if isinstance(get, str) else tuple(get) if isinstance(get, tuple | list) \
        else None
    if not names or any(not isinstance(g, str) or g not in _GETS for g in names):
        raise ValueError(f"get must be None, one of {_GETS} or a tuple of them, got {get!r}")
    return get, names


def input_state(x1, x2, full: bool, want_ntk: bool) -> KState:
    """Input-layer covariances ``x1 x2^T / C`` (channels last)."""
    c = x1.shape[-1]
    spatial = tuple(x1.shape[1:-1])
    nsp = len(spatial)
    p = int(np.prod(spatial)) if nsp else 1

    def pairs(a, b, same_batch):
        a = a.reshape(a.shape[0], p, c)
        b = b.reshape(b.shape[0], p, c)
        if not full or nsp == 0:
            out = (jnp.einsum("npc,npc->np", a, b) if same_batch
                   else jnp.einsum("npc,mpc->nmp", a, b)) / c
            return out.reshape(out.shape[:-1] + spatial)
        out = (jnp.einsum("npc,nqc->npq", a, b) if same_batch
               else jnp.einsum("npc,mqc->nmpq", a, b)) / c
        lead = out.ndim - 2
        out = out.reshape(out.shape[:lead] + spatial + spatial)
        perm = list(range(lead))
        for i in range(nsp):
            perm += [lead + i, lead + nsp + i]
        return jnp.transpose(out, perm)

    if x2 is None:
        nngp = pairs(x1, x1, False)
        cov1 = cov2 = None
    else:
        nngp = pairs(x1, x2, False)
        cov1, cov2 = pairs(x1, x1, True), pairs(x2, x2, True)
    return KState(nngp, None, cov1, cov2, full, spatial, c, want_ntk, True)


class KernelFn:
    """``kernel_fn(x1, x2=None, get=None)``: the analytic infinite-width kernel of a layer.

    ``get=None`` returns a :class:`~theorysim.kernels.Kernel` (``nngp`` and ``ntk``); a name
    (``"nngp"``, ``"ntk"``, ``"cov1"``, ``"cov2"``) returns that array; a tuple returns a
    namedtuple in that order (neural-tangents' convention). Arrays are in JAX's default float
    dtype (float64 under ``jax.enable_x64(True)``). Shapes: ``(N1, N2)`` for vector outputs,
    ``(N1, N2, H, H, W, W, ...)`` when spatial axes remain (``(N1, N2, H, W, ...)`` with
    ``diagonal_spatial=True``).
    """

    def __init__(self, layer: Layer):
        self.layer = layer
        self._cache = {}

    def __call__(self, x1, x2=None, get=None, *, diagonal_spatial: bool = False,
                 diagonal_batch=None, max_gb: float | None = MAX_GB, tol: float | None = None,
                 throw: bool = True, **kwargs):
        get, names = _parse_get(get)
        throw = check_throw(throw)
        tol = quadrature_tolerance(tol)
        if not isinstance(diagonal_spatial, bool):
            raise ValueError(f"diagonal_spatial must be a bool, got {diagonal_spatial!r}")
        if kwargs:
            raise ValueError(f"unknown keyword arguments {sorted(kwargs)}")
        a1 = _check_input("x1", x1)
        if x2 is not None:
            a2 = _check_input("x2", x2)
            if a2.shape[1:] != a1.shape[1:]:
                raise ValueError(f"x2 must have the same spatial and channel shape as x1 "
                                 f"{a1.shape[1:]}, got {a2.shape[1:]}")
        dtype = jnp.result_type(float)
        full = bool(self.layer.needs_full(not diagonal_spatial)) and a1.ndim > 2
        want_ntk = "ntk" in names
        n2 = a1.shape[0] if x2 is None else a2.shape[0]
        rows = tile_rows(a1.shape, full, jnp.dtype(dtype).itemsize)
        self._check_size(a1.shape, n2, full, want_ntk, dtype, rows, max_gb)
        j1 = _device(x1, a1, dtype)
        j2 = None if x2 is None else _device(x2, a2, dtype)
        if a1.shape[0] * n2 > rows * rows:
            out = self._compiled_tiled(full, want_ntk, rows, x2 is None)(j1, j2)
        else:
            out = self._compiled(full, want_ntk, x2 is None)(j1, j2)
        return _format(_contract(out, tol, throw), get, names)

    def _check_size(self, shape, n2, full, want_ntk, dtype, rows, max_gb) -> None:
        """Refuse up front a call whose returned kernel, or one tile's spatial kernels if
        larger (what the layers hold), exceeds ``max_gb``, or whose work (example pairs x
        spatial entries) exceeds :data:`MAX_WORK`; ``max_gb=None`` disables both."""
        n1, sp = shape[0], prod(shape[1:-1]) ** (2 if full else 1)
        check_output_size(max(n1 * n2 * self._pair_entries(shape, full, want_ntk, dtype),
                              min(rows, n1) * min(rows, n2) * sp), 1 + want_ntk, max_gb)
        if max_gb is not None and n1 * n2 * sp > MAX_WORK:
            raise ValueError(f"x1 ({n1} examples of spatial shape {shape[1:-1]}) is too large: "
                             f"{n1 * n2 * sp:.3g} spatial kernel entries to compute "
                             f"(> {MAX_WORK:.0e}, hours on a CPU); use fewer or smaller inputs, "
                             "or pass max_gb=None to run it anyway")

    def _pair_entries(self, shape, full, want_ntk, dtype) -> int:
        """Entries of the returned kernel per example pair: its spatial shape, read off the
        traced program (no compute). A readout that pools returns one entry per pair however
        large the intermediate spatial kernels; the tiles bound those."""
        key = ("entries", tuple(shape[1:]), full, want_ntk, jnp.dtype(dtype).name)
        if key not in self._cache:
            x = jax.ShapeDtypeStruct((1,) + tuple(shape[1:]), dtype)
            outs = jax.eval_shape(self.program(full, want_ntk, True), x, None)
            outs = outs if isinstance(outs, list) else [outs]
            self._cache[key] = sum(prod(o["nngp"].shape) for o in outs)
        return self._cache[key]

    def _compiled(self, full, want_ntk, symmetric):
        key = (full, want_ntk, symmetric)
        if key not in self._cache:
            self._cache[key] = jit(self.program(full, want_ntk, symmetric))
        return self._cache[key]

    def program(self, full, want_ntk, symmetric):
        """The untiled kernel map ``(x1, x2) -> outputs`` (not jitted: for callers that
        trace it inside their own program, as :func:`theorysim.kernels.batch`); one function
        object per key, so that it can be a static argument."""
        key = ("program", full, want_ntk, symmetric)
        if key not in self._cache:
            layer = self.layer

            def run(x1, x2):
                st = layer.kernel(input_state(x1, x2, full, want_ntk))
                return _collect(st)

            self._cache[key] = run
        return self._cache[key]

    def _compiled_tiled(self, full, want_ntk, rows, symmetric):
        key = ("tiled", full, want_ntk, rows, symmetric)
        if key not in self._cache:
            layer = self.layer

            def tile(xa, xb):
                return layer.kernel(input_state(xa, xb, full, want_ntk))

            def run(x1, x2):
                return tiled(tile, x1, x2, rows, want_ntk)

            self._cache[key] = jit(run)
        return self._cache[key]


#: XLA:CPU option for every kernel program: YNNPACK fusions for dots only. The default
#: (jaxlib 0.10) also hands reductions, with the elementwise work that feeds them, to YNNPACK,
#: which runs them far slower on XLA:CPU than XLA's own loop fusions (measured, float64: the
#: mean over positions of a ReLU map of a (64, 64, 16, 16) kernel 98 ms vs 2.2 ms; a
#: GlobalSelfAttention network's ReLU -> GlobalAvgPool 140 ms vs ~10 ms).
COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}


@functools.cache
def compiler_options() -> tuple:
    """:data:`COMPILER_OPTIONS` where this jaxlib and backend accept them, else none (the
    option is XLA:CPU's and may not exist in other versions): probed once by compiling a
    one-op program."""
    if jax.default_backend() != "cpu":
        return ()
    try:
        jax.jit(lambda v: v + 1, compiler_options=COMPILER_OPTIONS).lower(1.0).compile()
    except Exception:  # noqa: BLE001  (an unknown option or value: compile without it)
        return ()
    return tuple(COMPILER_OPTIONS.items())


def jit(fn, **kwargs):
    """``jax.jit`` with :func:`compiler_options`."""
    return jax.jit(fn, compiler_options=dict(compiler_options()) or None, **kwargs)


#: entries of one tile's kernel (example pairs x spatial entries) in :func:`tiled`:
#: 2**22 (32 MiB in float64) keeps a tile's temporaries in the last-level cache.
TILE_ELEMENTS = 1 << 22
#: refusal threshold for one call's work: example pairs x spatial entries per pair (the
#: Myrtle-5 NTK of 1,792 8 x 8 digits is 1.3e10, a few minutes on 2 cores).
MAX_WORK = 10**11


def tile_rows(shape, full: bool, itemsize: int = 8, budget: int | None = None) -> int:
    """Examples per tile side for inputs of ``shape`` (``N, *S, C``): ``sqrt(budget / s)``
    with ``s`` the spatial entries of one example pair (``prod(S)**2`` in the full layout),
    at least 4 (``itemsize`` scales the budget to the same bytes as float64)."""
    sp = prod(shape[1:-1]) ** (2 if full else 1)
    budget = TILE_ELEMENTS if budget is None else budget
    return max(4, math.isqrt(budget * 8 // itemsize // max(sp, 1)))


def _swap_tile(z, st_full: bool, nsp: int):
    """``K(x_b, x_a)`` from a tile ``K(x_a, x_b)`` (``(t1, t2, *sp)``): swap the example
    axes and, in the full layout, the two positions of every spatial pair."""
    perm = [1, 0]
    for i in range(nsp):
        a = 2 + (2 * i if st_full else i)
        perm += [a + 1, a] if st_full else [a]
    return jnp.transpose(z, perm)


def _blocks(x, rows: int):
    """``x (n, ...)`` as ``(nb, rows, ...)``, padded by repeating its first example."""
    n = x.shape[0]
    nb = -(-n // rows)
    if nb * rows > n:
        x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (nb * rows - n,) + x.shape[1:])])
    return x.reshape((nb, rows) + x.shape[1:]), nb


def tiled(tile, x1, x2, rows: int, want_ntk: bool):
    r"""``K(X_1, X_2)`` of a per-pair kernel map, assembled from tiles of example pairs.

    Every entry :math:`K(x_i, x_j)` depends only on :math:`x_i, x_j` (no layer mixes
    examples besides the same-example entries), so the matrix is assembled from tiles
    ``tile(x_a, x_b)`` (``rows`` examples a side); the temporaries are one tile's, not the
    whole batch's (issue 10: a Myrtle-5 CNTK carries ``(N, N, H, H, W, W)`` covariances).

    * ``x2 is None`` (:math:`K(X, X)`): the diagonal tiles by the symmetric map
      ``tile(x_a, None)`` (exact zero angles on the diagonal), the tiles above it by the
      cross map, each written twice (as is and transposed): about half the work of the
      whole-batch call for many tiles. ``cov1 = cov2`` is the batch diagonal.
    * otherwise every tile by the cross map: ``rows`` examples of ``x1`` by ``rows`` of
      ``x2`` (when ``x1`` has only ``n1 < rows``, ``rows**2 // n1`` of ``x2``: the same
      budget); ``cov1`` and
      ``cov2`` are taken from the tiles (each example's is computed by the same code
      whichever tile holds it).

    Inputs are padded to whole tiles by repeating their first example (finite, discarded).
    Output as :func:`_collect`; entries equal the whole-batch call to rounding.
    """
    symmetric = x2 is None
    n1 = x1.shape[0]
    n2 = n1 if symmetric else x2.shape[0]
    r1 = rows if symmetric else min(rows, n1)
    r2 = rows if symmetric else min(n2, max(rows, rows * rows // r1))
    xb1, nb1 = _blocks(x1, r1)
    xb2, nb2 = (xb1, nb1) if symmetric else _blocks(x2, r2)
    first = tile(xb1[0], None if symmetric else xb2[0])   # peeled: its structure sizes outputs
    if isinstance(first, list):
        raise ValueError("a network ending in several branches has no single kernel: end it "
                         "with a FanIn layer")
    st_full, nsp = first.full, len(first.spatial)
    sp = first.nngp.shape[2:]
    dtype = first.nngp.dtype
    n_out = 2 if want_ntk else 1

    def parts(st):
        ntk = st.ntk if st.ntk is not None else jnp.zeros_like(st.nngp)
        covs = () if symmetric else (st.cov1, st.cov2)
        return (st.nngp, ntk)[:n_out], covs, jnp.asarray(st.quad_err, dtype)

    def put(carry, st, i, j, mirror):
        outs, covs_out, err = carry
        vals, covs, e = parts(st)
        i, j = jnp.int32(i), jnp.int32(j)
        zero = (jnp.int32(0),) * vals[0].ndim
        new = []
        for out, v in zip(outs, vals, strict=True):
            out = jax.lax.dynamic_update_slice(out, v[None, None], (i, j) + zero)
            if mirror:
                out = jax.lax.dynamic_update_slice(out, _swap_tile(v, st_full, nsp)[None, None],
                                                   (j, i) + zero)
            new.append(out)
        covs_out = tuple(jax.lax.dynamic_update_slice(c, v[None], (k,) + zero[1:])
                         for c, v, k in zip(covs_out, covs, (i, j)[:len(covs)], strict=True))
        return tuple(new), covs_out, jnp.maximum(err, e)

    if symmetric:
        pairs = [(i, j) for i in range(nb1) for j in range(i + 1, nb1)]
    else:
        pairs = [(i, j) for i in range(nb1) for j in range(nb2)][1:]     # (0, 0) is peeled
    table = jnp.asarray(np.array(pairs, np.int32).reshape(-1, 2))

    def cross_body(k, carry):
        i, j = table[k, 0], table[k, 1]
        return put(carry, tile(xb1[i], xb2[j]), i, j, symmetric)

    def diag_body(i, carry):
        return put(carry, tile(xb1[i], None), i, i, False)

    outs = tuple(jnp.zeros((nb1, nb2, r1, r2) + sp, dtype) for _ in range(n_out))
    covs = () if symmetric else (jnp.zeros((nb1, r1) + sp, dtype),
                                 jnp.zeros((nb2, r2) + sp, dtype))
    carry = put((outs, covs, jnp.zeros((), dtype)), first, 0, 0, False)
    if symmetric:
        carry = jax.lax.fori_loop(1, nb1, diag_body, carry)
    outs, covs, err = jax.lax.fori_loop(0, len(pairs), cross_body, carry)

    def assemble(o):
        o = jnp.moveaxis(o, 2, 1).reshape((nb1 * r1, nb2 * r2) + sp)
        return o[:n1, :n2]

    nngp = assemble(outs[0])
    ntk = assemble(outs[1]) if want_ntk else None
    if symmetric:
        cov1 = cov2 = jnp.moveaxis(jnp.diagonal(nngp, axis1=0, axis2=1), -1, 0)
    else:
        cov1 = covs[0].reshape((nb1 * r1,) + sp)[:n1]
        cov2 = covs[1].reshape((nb2 * r2,) + sp)[:n2]
    return _finish({"nngp": nngp, "ntk": ntk, "cov1": cov1, "cov2": cov2, "quad_err": err,
                    "quad_nodes": first.quad_nodes})


def _collect(st):
    if isinstance(st, list):
        return [_collect(s) for s in st]
    ntk = st.ntk
    if st.want_ntk and ntk is None:
        ntk = jnp.zeros_like(st.nngp)
    cov1 = batch_cov(st, 1)
    cov2 = cov1 if st.symmetric else st.cov2
    return _finish({"nngp": st.nngp, "ntk": ntk if st.want_ntk else None, "cov1": cov1,
                    "cov2": cov2, "quad_err": jnp.asarray(st.quad_err),
                    "quad_nodes": st.quad_nodes})


def _finish(out):
    """Add ``finite``: whether nngp and ntk are finite, reduced in the same program (the
    contract's check without extra dispatches after the call)."""
    flags = [jnp.all(jnp.isfinite(out[n])) if out[n] is not None else jnp.asarray(True)
             for n in ("nngp", "ntk")]
    return dict(out, finite=jnp.stack(flags))


def _contract(out, tol, throw):
    """Quadrature error estimate vs ``tol`` and finiteness (theorysim.contract), per output."""
    if isinstance(out, list):
        return [_contract(o, tol, throw) for o in out]
    res, nodes, finite = jax.device_get((out["quad_err"], out["quad_nodes"], out["finite"]))
    res = float(res)
    k = Kernel(out["nngp"], out["ntk"], converged=bool(res <= tol), residual=res,
               iterations=int(nodes))
    k = conclude(k, throw=throw, solver="stax kernel_fn", finite=tuple(bool(f) for f in finite),
                 hint="raise ElementwiseNumerical's deg / Elementwise's order, or give nngp_fn")
    return dict(out, kernel=k)


def _format(out, get, names):
    if isinstance(out, list):
        return [_format(o, get, names) for o in out]
    if get is None:
        return out["kernel"]
    if isinstance(get, str):
        return out[get]
    return _namedtuple(names)(*(out[n] for n in names))


@functools.cache
def _namedtuple(names):
    return collections.namedtuple("Kernel", names)


def _device(x, checked, dtype):
    """The checked input on the device in ``dtype`` (a device array already in that dtype is
    used as it is: no host round trip)."""
    if isinstance(x, jax.Array) and x.dtype == dtype:
        return x
    return jnp.asarray(checked, dtype)


def _check_input(name, x):
    arr = as_finite_array(name, x, min_size=1)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have a batch axis and a channel axis (N, ..., C), got "
                         f"shape {arr.shape}")
    if arr.shape[-1] < 1:
        raise ValueError(f"{name} must have at least one channel, got shape {arr.shape}")
    return check_magnitude(name, arr, jnp.result_type(float))


# ----------------------------------------------------------------------------- helpers

def prod(xs) -> int:
    return int(math.prod(xs))
