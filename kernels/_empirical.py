r"""Empirical (finite-width) NTK and NNGP of any JAX function of a parameter pytree.

.. math::
    \hat\Theta(x, x')_{oo'} = \sum_p \frac{\partial f_o(x)}{\partial\theta_p}
    \frac{\partial f_{o'}(x')}{\partial\theta_p},\qquad
    \hat K(x, x')_{oo'} = f_o(x) f_{o'}(x').

Implementations (Novak et al. 2022, arXiv 2206.08720, compare these trade-offs):
``"jacobian"`` (per-example Jacobians, contracted leaf by leaf), ``"ntvp"`` (NTK-vector
products: a VJP on ``x2`` then a JVP on ``x1`` for each output basis vector, no Jacobian
stored) and ``"per_layer"`` (:class:`DenseMLP` only: forward-feature Gram times
backward-gradient Gram per layer). With ``trace_axes=(-1,)`` (default) the result is the MEAN
over outputs of the diagonal output blocks, ``(n1, n2)``; ``trace_axes=()`` keeps
``(n1, n2, O, O)`` (neural-tangents' conventions).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from theorysim.checks import as_finite_array, check_choice, check_key, check_scalar

from ._mlp import DenseMLP, per_layer_ntk

#: most networks :func:`monte_carlo_kernel` draws (beyond, a call runs for hours; its error
#: falls like n_samples^-1/2) and the most memory one chunk of them may take (GiB).
MAX_MC_SAMPLES = 10**7
MAX_GB = 16.0

IMPLEMENTATIONS = ("auto", "jacobian", "ntvp", "per_layer")


def _nnx_split(apply_fn, params):
    """A Flax NNX module becomes ``(apply(params, x), params)`` via ``nnx.split``."""
    try:
        from flax import nnx
    except ImportError:  # pragma: no cover - flax is a dependency
        return apply_fn, params
    if isinstance(apply_fn, nnx.Module):
        graphdef, state, rest = nnx.split(apply_fn, nnx.Param, ...)
        if params is None:
            params = state

        def apply(p, x):
            return nnx.merge(graphdef, p, rest)(x)

        return apply, params
    if not callable(apply_fn):
        raise ValueError(f"apply_fn must be a callable apply_fn(params, x) or an nnx.Module, "
                         f"got {apply_fn!r}")
    return apply_fn, params


def _inputs(x1, x2):
    a1 = as_finite_array("x1", x1, min_size=1)
    if x2 is not None:
        a2 = as_finite_array("x2", x2, min_size=1)
        if a2.shape[1:] != a1.shape[1:]:
            raise ValueError(f"x2 must have the same feature shape as x1 {a1.shape[1:]}, got "
                             f"{a2.shape[1:]}")
    x1 = jnp.asarray(x1)
    return x1, (x1 if x2 is None else jnp.asarray(x2))


def _trace(trace_axes) -> bool:
    t = tuple(trace_axes)
    if t not in ((-1,), (1,), ()):
        raise ValueError(f"trace_axes must be (-1,) (mean over outputs) or () (full), got {t}")
    return len(t) == 1


def _check_output(f, x):
    out = jax.eval_shape(f, x)
    if len(out.shape) != 2:
        raise ValueError(f"apply_fn must map a batch (n, ...) to outputs (n, O); got output "
                         f"shape {out.shape}")
    return out.shape[1]


def _jacobian_ntk(f, params, x1, x2, trace):
    def per_example(p, x):
        return jax.jacrev(lambda q: f(q, x[None])[0])(p)

    j1 = jax.vmap(per_example, (None, 0))(params, x1)
    j2 = j1 if x2 is x1 else jax.vmap(per_example, (None, 0))(params, x2)

    def contract(a, b):
        a = a.reshape(a.shape[0], a.shape[1], -1)
        b = b.reshape(b.shape[0], b.shape[1], -1)
        if trace:
            return jnp.einsum("iap,jap->ij", a, b) / a.shape[1]
        return jnp.einsum("iap,jbp->ijab", a, b)

    leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(contract, j1, j2))
    return functools.reduce(jnp.add, leaves)


def _ntvp_ntk(f, params, x1, x2, trace):
    _, vjp2 = jax.vjp(lambda p: f(p, x2), params)
    out2 = jax.eval_shape(f, params, x2).shape                   # (n2, O)
    n2, n_out = out2

    def column(cot):
        (tangent,) = vjp2(cot)
        return jax.jvp(lambda p: f(p, x1), (params,), (tangent,))[1]   # (n1, O)

    basis = jnp.eye(n2 * n_out, dtype=jax.eval_shape(f, params, x2).dtype)
    basis = basis.reshape(n2 * n_out, n2, n_out)
    cols = jax.lax.map(column, basis, batch_size=min(64, n2 * n_out))  # (n2*O, n1, O)
    full = cols.reshape(n2, n_out, x1.shape[0], n_out)           # [j, b, i, a]
    full = jnp.transpose(full, (2, 0, 3, 1))                      # [i, j, a, b]
    if trace:
        return jnp.trace(full, axis1=2, axis2=3) / n_out
    return full


@functools.partial(jax.jit, static_argnames=("f", "impl", "trace"))
def _generic(f, params, x1, x2, *, impl, trace):
    if impl == "jacobian":
        return _jacobian_ntk(f, params, x1, x2, trace)
    return _ntvp_ntk(f, params, x1, x2, trace)


def empirical_ntk(apply_fn: Callable, params, x1: Float[Array, "n1 ..."],
                  x2: Float[Array, "n2 ..."] | None = None, *, implementation: str = "auto",
                  trace_axes: tuple[int, ...] = (-1,)) -> Float[Array, "n1 n2 *O O"]:
    r"""Empirical NTK :math:`J(x_1)J(x_2)^\top` of ``apply_fn(params, x) -> (n, O)``.

    Regime: any finite network, at the given parameters. ``apply_fn`` must act on each example
    independently (no batch statistics). A Flax NNX module may be passed as ``apply_fn``
    (``params=None`` uses its ``nnx.Param`` state, split with ``nnx.split``).

    Args:
      apply_fn: ``f(params, x)`` with outputs ``(n, O)``, a :class:`DenseMLP`, or an NNX module.
      params: parameter pytree (``None`` for an NNX module's own parameters).
      x1: ``(n1, ...)`` inputs. x2: ``(n2, ...)`` inputs, default ``x1``.
      implementation: ``"jacobian"``, ``"ntvp"``, ``"per_layer"`` (DenseMLP only) or ``"auto"``
        (``per_layer`` for a DenseMLP, else ``jacobian``).
      trace_axes: ``(-1,)`` for the mean over outputs ``(n1, n2)``; ``()`` for
        ``(n1, n2, O, O)``.

    Returns:
      The kernel in the dtype of the network's outputs.
    """
    check_choice("implementation", implementation, IMPLEMENTATIONS)
    trace = _trace(trace_axes)
    apply_fn, params = _nnx_split(apply_fn, params)
    x1, x2 = _inputs(x1, x2)
    if implementation == "auto":
        implementation = "per_layer" if isinstance(apply_fn, DenseMLP) else "jacobian"
    if implementation == "per_layer":
        if not isinstance(apply_fn, DenseMLP):
            raise ValueError("implementation='per_layer' needs apply_fn to be a DenseMLP; use "
                             "'jacobian' or 'ntvp' for other functions")
        return per_layer_ntk(apply_fn, params, x1, x2, trace=trace)
    _check_output(lambda x: apply_fn(params, x), x1)
    return _generic(apply_fn, params, x1, x2, impl=implementation, trace=trace)


def empirical_nngp(apply_fn: Callable, params, x1: Float[Array, "n1 ..."],
                   x2: Float[Array, "n2 ..."] | None = None, *,
                   trace_axes: tuple[int, ...] = (-1,)) -> Float[Array, "n1 n2 *O O"]:
    r"""Empirical NNGP as the OUTPUT covariance :math:`f(x_1)f(x_2)^\top/O` (traced) or
    :math:`f_o(x_1)f_{o'}(x_2)` (``trace_axes=()``), neural-tangents' convention.

    Averaged over random initialisations it estimates the analytic NNGP of the readout; see
    :func:`monte_carlo_kernel`. Arguments as :func:`empirical_ntk`.
    """
    trace = _trace(trace_axes)
    apply_fn, params = _nnx_split(apply_fn, params)
    x1, x2 = _inputs(x1, x2)
    f1 = apply_fn(params, x1)
    f2 = f1 if x2 is x1 else apply_fn(params, x2)
    if f1.ndim != 2:
        raise ValueError(f"apply_fn must return outputs (n, O); got shape {f1.shape}")
    if trace:
        return f1 @ f2.T / f1.shape[1]
    return jnp.einsum("ia,jb->ijab", f1, f2)


@dataclasses.dataclass(frozen=True)
class MonteCarloKernel:
    """Monte-Carlo estimates over random networks: means and their standard errors."""

    nngp: Float[Array, "n1 n2"]
    ntk: Float[Array, "n1 n2"]
    nngp_sem: Float[Array, "n1 n2"]
    ntk_sem: Float[Array, "n1 n2"]
    n_samples: int


@functools.partial(jax.jit, static_argnames=("mlp", "batch"))
def _mc_moments(mlp: DenseMLP, keys, x1, x2, *, batch: int):
    def one(key):
        params = mlp.init(key, x1.shape[1], x1.dtype)
        f1, f2 = mlp(params, x1), mlp(params, x2)
        nngp = f1 @ f2.T / f1.shape[1]
        ntk = per_layer_ntk(mlp, params, x1, x2, trace=True)
        return jnp.stack([nngp, ntk, nngp * nngp, ntk * ntk])

    def chunk(ks):
        return jnp.sum(jax.vmap(one)(ks), axis=0)

    sums = jax.lax.map(chunk, keys.reshape((-1, batch) + keys.shape[1:]))
    return jnp.sum(sums, axis=0)


@functools.partial(jax.jit, static_argnames=("init_fn", "apply_fn", "batch"))
def _layer_moments(init_fn, apply_fn, keys, x, *, batch: int):
    def one(key):
        k_init, k_apply = jax.random.split(key)
        params = init_fn(k_init, x.shape)[1]

        def f(p):
            return apply_fn(p, x, rng=k_apply)

        out = f(params)
        out = out.reshape(out.shape[0], -1)
        nngp = out @ out.T / out.shape[1]
        jac = jax.jacrev(f)(params)
        ntk = 0.0
        for leaf in jax.tree_util.tree_leaves(jac):
            j = leaf.reshape(out.shape[0], out.shape[1], -1)
            ntk = ntk + jnp.einsum("iap,jap->ij", j, j) / out.shape[1]
        return jnp.stack([nngp, ntk, nngp * nngp, ntk * ntk])

    def chunk(ks):
        return jnp.sum(jax.vmap(one)(ks), axis=0)

    sums = jax.lax.map(chunk, keys.reshape((-1, batch) + keys.shape[1:]))
    return jnp.sum(sums, axis=0)


def _stax_pair(net):
    """``(init_fn, apply_fn)`` of a stax layer triple, else ``None``."""
    if isinstance(net, tuple | list) and len(net) in (2, 3) and all(callable(f) for f in net):
        return net[0], net[1]
    return None


def monte_carlo_kernel(mlp, x1: Float[Array, "n1 d"],
                       x2: Float[Array, "n2 d"] | None = None, *, key: jax.Array,
                       n_samples: int = 256, batch: int = 32) -> MonteCarloKernel:
    r"""Average empirical NNGP (output covariance) and NTK over ``n_samples`` random networks.

    ``mlp`` is a :class:`DenseMLP` or any ``stax`` network (its ``(init_fn, apply_fn,
    kernel_fn)`` triple or ``(init_fn, apply_fn)``; ``apply_fn`` gets ``rng=`` for dropout and
    must return outputs ``(n, O)``); for stax networks the NTK is the full parameter Jacobian
    Gram and ``x1``, ``x2`` are evaluated as one batch (same dropout draw).

    .. math::
        \bar K = \frac1S\sum_s f_s(x_1)f_s(x_2)^\top/O,\qquad
        \bar\Theta = \frac1S\sum_s \hat\Theta_s(x_1, x_2),

    with standard errors :math:`\mathrm{sd}/\sqrt S`. Networks are drawn with ``mlp.init``
    (vmapped over seeds in chunks of ``batch``; the NTK by the per-layer formula). At width
    ``n`` the means differ from :func:`mlp_kernel` by :math:`O(1/n)` for depth >= 2 (exact in
    expectation for depth <= 1).

    Args:
      mlp: the :class:`DenseMLP`. x1, x2: inputs ``(n1, d)``, ``(n2, d)``.
      key: PRNG key. n_samples: number of networks, a multiple of ``batch``.
    """
    n_samples = check_scalar("n_samples", n_samples, lo=2, hi=MAX_MC_SAMPLES, integer=True)
    batch = check_scalar("batch", batch, lo=1, integer=True)
    if n_samples % batch:
        raise ValueError(f"n_samples ({n_samples}) must be a multiple of batch ({batch})")
    check_key("key", key)
    x1, x2 = _inputs(x1, x2)
    if isinstance(mlp, DenseMLP):
        # one chunk holds `batch` networks' parameters and every layer's features of x1, x2
        per_net = mlp.n_params(x1.shape[1]) + 4 * (x1.shape[0] + x2.shape[0]) * sum(mlp.widths)
        need = batch * per_net * jnp.dtype(x1.dtype).itemsize / 2**30
        if need > MAX_GB:
            raise ValueError(f"batch = {batch} networks of widths {mlp.widths} need about "
                             f"{need:.3g} GiB at once (> {MAX_GB:g} GiB): lower batch or the "
                             "widths")
    keys = jax.random.split(key, n_samples)
    pair = _stax_pair(mlp)
    if pair is not None:
        n1 = x1.shape[0]
        x = x1 if x2 is x1 else jnp.concatenate([x1, x2])
        s = _layer_moments(pair[0], pair[1], keys, x, batch=batch)
        s = s[:, :n1, :n1] if x2 is x1 else s[:, :n1, n1:]
    elif isinstance(mlp, DenseMLP):
        s = _mc_moments(mlp, keys, x1, x2, batch=batch)
    else:
        raise ValueError(f"mlp must be a DenseMLP or a stax (init_fn, apply_fn, kernel_fn) "
                         f"triple, got {type(mlp).__name__}")
    mean = s[:2] / n_samples
    var = jnp.maximum(s[2:] / n_samples - mean**2, 0.0) * n_samples / (n_samples - 1)
    sem = jnp.sqrt(var / n_samples)
    return MonteCarloKernel(mean[0], mean[1], sem[0], sem[1], n_samples)
