r"""Public API of the analytic infinite-width kernels: :func:`mlp_kernel`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from theorysim.checks import (
    as_finite_array,
    check_choice,
    check_magnitude,
    check_scalar,
    check_std,
)
from theorysim.contract import ConvergenceError, check_throw

from . import _activations as act
from ._recursion import MLPConfig, diagonal, evaluate, kernel_recursion

#: default refusal threshold for one kernel call's output (GiB); override with ``max_gb=``.
MAX_GB = 16.0
#: deepest network accepted: the cost is linear in depth (the layers run as one compiled loop),
#: and a 10^6-layer call would run for hours; deep kernels reach their fixed point long before.
MAX_DEPTH = 10_000


@dataclasses.dataclass(frozen=True)
class Kernel:
    """NNGP and NTK matrices (JAX arrays; ``None`` when not requested). A JAX pytree.

    Solver-contract diagnostics (:mod:`theorysim.contract`): closed forms have
    ``converged=True, residual=0.0, iterations=0``; kernels with Gauss-Hermite quadrature
    report as ``residual`` an error estimate from the rules with ``order``, ``3 order // 4``
    and ``order // 2`` nodes (:func:`extrapolated_error`) and as ``iterations`` the number of nodes
    per dimension.
    """

    nngp: Float[Array, "n1 n2"] | None
    ntk: Float[Array, "n1 n2"] | None
    converged: bool = True
    residual: float = 0.0
    iterations: int = 0

    def __iter__(self):
        """Unpack as ``nngp, ntk`` (as neural-tangents' namedtuples)."""
        return iter((self.nngp, self.ntk))


jax.tree_util.register_dataclass(Kernel, data_fields=["nngp", "ntk"],
                                 meta_fields=["converged", "residual", "iterations"])


def quadrature_tolerance(tol) -> float:
    """Relative tolerance of quadrature kernels: ``tol``, or 1e-10 (float64) / 1e-5 (float32)."""
    if tol is None:
        return 1e-10 if jnp.dtype(jnp.result_type(float)).itemsize == 8 else 1e-5
    return check_scalar("tol", tol, lo=0.0, lo_open=True, hi=1.0)


def relative_change(a, b):
    """``max |a - b| / max |a|`` (``0`` when ``a`` is identically zero), on the device."""
    scale = jnp.max(jnp.abs(a))
    return jnp.max(jnp.abs(a - b)) / jnp.where(scale > 0, scale, 1.0)


def extrapolated_error(e1, e2):
    r"""Error estimate of the finest of three rules with ``n``, ``3n/4``, ``n/2`` nodes from
    the changes :math:`e_1 = |K_n - K_{3n/4}|` and :math:`e_2 = |K_{3n/4} - K_{n/2}|`, with
    :math:`\rho = e_1/e_2`: geometric convergence :math:`r^n` (smooth activations,
    :math:`\rho < 1/4`) gives :math:`e_1\rho` (exact for that model); otherwise (kinks,
    algebraic convergence :math:`C n^{-p}`) :math:`p` is solved from
    :math:`\rho = ((4/3)^p - 1)/(2^p - (4/3)^p)` (bisection, :math:`p \in [1/4, 3]`) and the
    estimate is the Richardson one, :math:`e_1/((4/3)^p - 1)`."""
    ratio = jnp.minimum(jnp.where(e2 > 0, e1 / jnp.where(e2 > 0, e2, 1.0), 1.0), 1.0)
    lo, hi = jnp.asarray(0.25), jnp.asarray(3.0)
    for _ in range(40):                         # f(p) decreases from 0.71 (p -> 0) to 0.24
        mid = 0.5 * (lo + hi)
        f = (jnp.power(4.0 / 3.0, mid) - 1.0) / (2.0**mid - jnp.power(4.0 / 3.0, mid))
        lo, hi = jnp.where(f > ratio, mid, lo), jnp.where(f > ratio, hi, mid)
    p = 0.5 * (lo + hi)
    algebraic = e1 / (jnp.power(4.0 / 3.0, p) - 1.0)
    return jnp.where(ratio < 0.25, e1 * ratio, algebraic)


def quadrature_error(dual_at, order: int, values):
    """Error estimate (see :func:`extrapolated_error`) of ``values`` computed with ``order``
    nodes; ``dual_at(m)`` recomputes them with ``m`` nodes. ``values`` is a tuple of arrays
    (``None`` entries skipped)."""
    half = dual_at(max(3 * order // 4, 2))
    quarter = dual_at(max(order // 2, 2))
    err = jnp.asarray(0.0)
    for v, h, q in zip(values, half, quarter, strict=True):
        if v is None:
            continue
        err = jnp.maximum(err, extrapolated_error(relative_change(v, h), relative_change(h, q)))
    return err


def conclude(kernel: Kernel, *, throw: bool, solver: str, hint: str = "",
             finite: tuple[bool, bool] | None = None) -> Kernel:
    """The solver contract for kernels without a host copy of the arrays: non-finite entries
    mark the kernel not converged; ``throw=True`` then raises :class:`ConvergenceError`.
    ``finite``: whether (nngp, ntk) are finite, when the caller reduced that already."""
    if finite is None:
        finite = tuple(getattr(kernel, n) is None or bool(jnp.all(jnp.isfinite(
            getattr(kernel, n)))) for n in ("nngp", "ntk"))
    bad = [n for n, ok in zip(("nngp", "ntk"), finite, strict=True) if not ok]
    if bad:
        kernel = dataclasses.replace(kernel, converged=False)
    if throw and not kernel.converged:
        what = f"produced non-finite {', '.join(bad)}" if bad else "did not converge"
        msg = (f"{solver} {what}: quadrature error estimate {kernel.residual:.3g} with "
               f"{kernel.iterations} nodes")
        if bad:  # a closed form too overflows when the scale compounds over the layers
            msg += ("; the kernel may have overflowed the compute dtype: W_std, b_std, the "
                    "depth or the input scale too large (rescale them, or compute in float64 "
                    "with jax.enable_x64(True))")
        raise ConvergenceError(msg + (f"; {hint}" if hint else ""), kernel)
    return kernel


def resolve_activation(activation) -> act.Activation:
    """Turn a name, an :class:`Activation` or an elementwise callable into an Activation."""
    if isinstance(activation, act.Activation):
        return activation
    if isinstance(activation, str):
        key = activation.lower()
        if key not in act._NAMED:
            raise ValueError(
                f"activation must be one of {list(act.ACTIVATION_NAMES)}, an Activation "
                f"(e.g. LeakyRelu(alpha=0.1), Erf(scale=2.0), Hermite(3)) or an elementwise "
                f"callable; got {activation!r}")
        return act._NAMED[key]()
    if callable(activation):
        check_elementwise(activation)
        return act.Elementwise(activation, name=getattr(activation, "__name__", "callable"))
    raise ValueError(f"activation must be a name, an Activation or a callable, got {activation!r}")


def check_elementwise(fn: Callable) -> None:
    """Raise ``ValueError`` (naming ``activation``) unless ``fn`` acts elementwise."""
    x = np.linspace(-2.3, 1.9, 7)
    try:
        full = np.asarray(fn(jnp.asarray(x)))
        single = np.array([np.asarray(fn(jnp.asarray(x[i:i + 1])))[0] for i in range(x.size)])
        grid = np.asarray(fn(jnp.asarray(x.reshape(1, 7))))
    except Exception as err:  # noqa: BLE001 - any failure means it is not a usable activation
        raise ValueError(f"activation callable failed on a test vector: {err}") from err
    if full.shape != x.shape or grid.shape != (1, 7):
        raise ValueError(f"activation must be elementwise (shape-preserving); it maps shape "
                         f"{x.shape} to {full.shape}")
    if not np.allclose(full, single, rtol=1e-6, atol=1e-9, equal_nan=True) or not np.allclose(
            grid.ravel(), full, rtol=1e-6, atol=1e-9, equal_nan=True):
        raise ValueError("activation must be elementwise: fn(x)[i] differs from fn(x[i])")


@dataclasses.dataclass(frozen=True)
class MLPKernel:
    r"""Kernel function of a deep fully-connected network (see :func:`mlp_kernel`)."""

    config: MLPConfig

    def __call__(self, x1: Float[Array, "n1 d"], x2: Float[Array, "n2 d"] | None = None, *,
                 get: str | tuple[str, ...] = ("nngp", "ntk"), max_gb: float | None = MAX_GB,
                 tol: float | None = None, throw: bool = True) -> Kernel:
        """NNGP and NTK between the rows of ``x1`` and ``x2`` (``x2=None``: ``x1``).

        Calls whose outputs would exceed ``max_gb`` GiB are refused up front (ValueError).
        Quadrature activations (callables, :class:`Elementwise`) are evaluated at ``order``
        and ``order // 2`` nodes; when the relative change exceeds ``tol`` (default 1e-10 in
        float64, 1e-5 in float32) the kernel is flagged ``converged=False`` and, with
        ``throw=True``, a :class:`~theorysim.contract.ConvergenceError` is raised. Non-finite
        output is never returned silently (same rule)."""
        throw = check_throw(throw)
        tol = quadrature_tolerance(tol)
        get = (get,) if isinstance(get, str) else tuple(get)
        for g in get:
            check_choice("get", g, ("nngp", "ntk"))
        dtype = jnp.result_type(float)
        a1 = _check_inputs("x1", x1)
        a2 = a1 if x2 is None else _check_inputs("x2", x2)
        if a2.shape[1] != a1.shape[1]:
            raise ValueError(f"x2 must have the same feature dimension as x1 ({a1.shape[1]}), "
                             f"got {a2.shape[1]}")
        want_ntk = "ntk" in get
        check_output_size(a1.shape[0] * a2.shape[0], 1 + want_ntk, max_gb)
        if isinstance(self.config.activation, act.Elementwise):
            self._check_quadrature(a1, a2, want_ntk)
        j1 = jnp.asarray(x1, dtype)
        j2 = j1 if x2 is None else jnp.asarray(x2, dtype)
        nngp, ntk = evaluate(self.config, j1, j2, ntk=want_ntk)
        result = Kernel(nngp if "nngp" in get else None, ntk)
        activation = self.config.activation
        if isinstance(activation, act.Elementwise) and self.config.depth > 0:
            def at(m):
                cfg = dataclasses.replace(self.config, activation=dataclasses.replace(
                    activation, order=m))
                return evaluate(cfg, j1, j2, ntk=want_ntk)

            res = float(quadrature_error(at, activation.order, (nngp, ntk)))
            result = dataclasses.replace(result, converged=bool(res <= tol), residual=res,
                                         iterations=activation.order)
        numerical = isinstance(activation, act.Elementwise) and self.config.depth > 0
        return conclude(result, throw=throw, solver="mlp_kernel",
                        hint="raise the quadrature order (Elementwise(fn, order=...)) or use a "
                             "closed-form activation" if numerical else "")

    def dot_product(self, t, q: float = 1.0, d_in: int | None = None) -> Kernel:
        r"""Kernel as a function of the cosine ``t`` for two inputs with ``x.x/d_in = q``.

        For inputs on the sphere of radius :math:`\sqrt{q d_{in}}` this is the dot-product
        kernel :math:`K(t)` that :func:`sphere_spectrum` expands (unit-norm inputs in
        ``d`` dimensions: ``q = 1/d``). ``d_in`` is needed only for the standard
        parameterisation (the first layer's fan-in enters its NTK). Jittable in ``t``.
        """
        if self.config.parameterization == "standard" and d_in is None:
            raise ValueError("d_in must be given for the standard parameterisation")
        tt = jnp.asarray(t, jnp.result_type(float))
        qq = jnp.full_like(tt, q)
        d_in = 1 if d_in is None else d_in
        nngp, ntk = kernel_recursion(self.config, qq, qq, qq * tt, d_in)
        return Kernel(nngp, ntk)

    def _check_quadrature(self, a1, a2, want_ntk):
        d = a1.shape[1]
        q = np.concatenate([np.sum(a1**2, 1), np.sum(a2**2, 1)]) / d
        q = np.array([q.min(), q.max()])
        nngp, ntk = diagonal(self.config, jnp.asarray(q, jnp.result_type(float)), d,
                             ntk=want_ntk)
        bad = not np.all(np.isfinite(np.asarray(nngp)))
        bad = bad or (want_ntk and not np.all(np.isfinite(np.asarray(ntk))))
        if bad:
            raise ValueError(
                f"activation {self.config.activation.name!r} gives non-finite values under "
                "Gauss-Hermite quadrature at these input scales")


def check_output_size(entries: int, n_outputs: int, max_gb) -> None:
    """Refuse a call whose output arrays alone would exceed ``max_gb`` GiB, before compute."""
    if max_gb is None:
        return
    max_gb = check_scalar("max_gb", max_gb, lo=0.0, lo_open=True)
    itemsize = jnp.dtype(jnp.result_type(float)).itemsize
    need = entries * n_outputs * itemsize / 2**30
    if need > max_gb:
        raise ValueError(f"this kernel call would return {need:.3g} GiB (> max_gb={max_gb:g}): "
                         "compute it in blocks with theorysim.kernels.batch, or pass a larger "
                         "max_gb (max_gb=None disables the check) if the memory is there")


def _check_inputs(name, x) -> np.ndarray:
    arr = as_finite_array(name, x, ndim=2, min_size=1)
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one feature, got shape {arr.shape}")
    return check_magnitude(name, arr, jnp.result_type(float))


def mlp_kernel(depth: int, activation="relu", W_std: float = 1.0, b_std: float = 0.0,
               parameterization: str = "ntk", width: int | None = None) -> MLPKernel:
    r"""Infinite-width NNGP and NTK of a fully-connected network.

    The network is ``depth`` pairs (Dense, activation) followed by a final Dense readout
    (``depth = 0`` is the linear kernel). With input covariance
    :math:`\Sigma^0 = x_1 x_2^\top/d_{in}` and :math:`\Theta^0 = 0`, each Dense layer maps

    .. math::
        \Sigma \mapsto \sigma_w^2\Sigma + \sigma_b^2,\qquad
        \Theta \mapsto \sigma_w^2\Sigma + \sigma_b^2 + \sigma_w^2\Theta

    (NTK parameterisation; standard: :math:`\Theta \mapsto n_{in}\Sigma + \sigma_w^2\Theta + 1`,
    the ``+1`` from a trainable bias, present iff ``b_std > 0``), and each activation maps
    :math:`\Sigma \mapsto \mathbb E\phi(u)\phi(v)`,
    :math:`\Theta \mapsto \Theta\,\mathbb E\phi'(u)\phi'(v)`. Conventions match neural-tangents
    (``stax.Dense``; its ``b_std=None`` is ``b_std=0`` here).

    Regime: infinite width, Gaussian initialisation; Lee et al. 2018 (arXiv 1711.00165),
    Jacot et al. 2018 (1806.07572), Novak et al. 2020 (1912.02803).

    Closed forms are used for identity, relu / leaky_relu, abs, sign, step, erf, sin, cos;
    gelu, hermite and user callables use 2-D Gauss-Hermite quadrature (see
    :class:`Elementwise` for its accuracy). Results are float64 under ``jax.enable_x64(True)``,
    float32 otherwise. Large inputs are computed in row blocks (one jitted ``lax.map``), so
    memory is the two ``n1 x n2`` outputs plus ~``2**22``-element temporaries.

    Args:
      depth: number of hidden layers, ``0 .. 10_000``.
      activation: a name (``"relu"``, ``"erf"``, ...), an :class:`Activation` instance
        (``LeakyRelu(alpha=0.1)``, ``Erf(amplitude, scale, shift)``, ``Hermite(k)``) or an
        elementwise JAX callable.
      W_std: weight standard deviation ``> 0``.
      b_std: bias standard deviation ``>= 0``.
      parameterization: ``"ntk"`` or ``"standard"``.
      width: hidden width; needed for the standard-parameterisation NTK when ``depth >= 1``.

    Returns:
      ``k(x1, x2=None, get=("nngp", "ntk"))`` with ``x1`` of shape ``(n1, d_in)`` returning a
      :class:`Kernel` with ``(n1, n2)`` arrays.

    Example:
      >>> k = mlp_kernel(2, "relu", W_std=1.5, b_std=0.1)
      >>> k(jnp.ones((3, 5))).ntk.shape
      (3, 3)
    """
    depth = check_scalar("depth", depth, lo=0, hi=MAX_DEPTH, integer=True)
    W_std = check_std("W_std", W_std)
    b_std = check_std("b_std", b_std, positive=False)
    check_choice("parameterization", parameterization, ("ntk", "standard"))
    if parameterization == "standard" and depth >= 1:
        if width is None:
            raise ValueError("width must be given (an integer >= 1) for the standard "
                             "parameterisation, whose NTK depends on the layer widths")
        width = check_scalar("width", width, lo=1, integer=True)
    elif width is not None:
        width = check_scalar("width", width, lo=1, integer=True)
    activation = resolve_activation(activation)
    return MLPKernel(MLPConfig(depth, activation, W_std, b_std, parameterization, width))
