r"""Kernel predictions: gradient flow on MSE at many times, KRR, GP posterior, wide-net ensembles.

All time evolutions come from one spectral decomposition of the (regularised) train kernel:
the outputs alone from its tridiagonal reduction :math:`K = QTQ^\top` and the eigenpairs of
:math:`T` (no eigenvectors of :math:`K` are formed), covariances from one ``eigh``
:math:`K = V\Lambda V^\top`; the infinite-time limits use a Cholesky solve. No explicit
inverse.

Conventions (as neural-tangents' ``predict`` module, Lee et al. 2019, arXiv 1902.06720):
continuous-time gradient descent with learning rate :math:`\eta` on
:math:`\frac{1}{2|Y|}\lVert f - Y\rVert^2` (``|Y| = y_train.size``), so

.. math::
    f_{train}(t) = Y + e^{-\eta t K/|Y|}(f_0 - Y),\qquad
    f_{test}(t) = f_{test,0} + K_{*}K^{-1}(I - e^{-\eta t K/|Y|})(Y - f_0),

and ``diag_reg`` is relative: :math:`K \to K + \text{diag\_reg}\cdot\mathrm{tr}(K)/n\, I`.
:func:`kernel_ridge` instead uses the per-sample ridge of THEORY.md:
:math:`K \to K + P\,\text{ridge}\,I`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import scipy.linalg as sl
from jaxtyping import Array, Float

from theorysim.checks import (
    as_finite_array,
    check_choice,
    check_gram_and_targets,
    check_scalar,
    check_targets,
)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Predicted outputs; leading axis ``T`` when times were given (``None`` when not asked)."""

    train: Float[Array, "*T n c"] | None
    test: Float[Array, "*T m c"] | None


@dataclasses.dataclass(frozen=True)
class Posterior:
    """Gaussian over test outputs: mean ``(*T, m, c)``, covariance ``(*T, m, m)``."""

    mean: Float[Array, "*T m c"]
    cov: Float[Array, "*T m m"] | None


jax.tree_util.register_dataclass(Prediction, data_fields=["train", "test"], meta_fields=[])
jax.tree_util.register_dataclass(Posterior, data_fields=["mean", "cov"], meta_fields=[])


def _arr(name, x, ndim=None):
    return jnp.asarray(as_finite_array(name, x, ndim=ndim), jnp.result_type(float))


def check_symmetric(name, k):
    """Raise ``ValueError`` unless the square matrix ``k`` is symmetric to 1e-8 relative."""
    scale = float(np.max(np.abs(k))) if k.size else 0.0
    asym = float(np.max(np.abs(k - k.T))) if k.size else 0.0
    _raise_if_asymmetric(name, asym, scale)


def _check_train(k_train_train, y_train, name="k_train_train"):
    dt = jnp.result_type(float)
    if _on_device_float(k_train_train):
        # A kernel that already lives on the device is checked there, in one fused pass
        # (finite, square, symmetric), instead of a round trip through host memory.
        k = jnp.asarray(k_train_train, dt)
        if k.ndim != 2 or k.shape[0] != k.shape[1]:
            raise ValueError(f"{name} must be a square (n, n) matrix, got shape {k.shape}")
        n_bad, scale, asym = (float(v) for v in _gram_stats(k))
        if n_bad:
            raise ValueError(f"{name} must be finite; found {int(n_bad)} bad entries")
        _raise_if_asymmetric(name, asym, scale)
        return k, jnp.asarray(check_targets("y_train", y_train, k.shape[0]), dt)
    k, y = check_gram_and_targets(name, k_train_train, "y_train", y_train)
    check_symmetric(name, k)
    return jnp.asarray(k, dt), jnp.asarray(y, dt)


def _on_device_float(x) -> bool:
    return isinstance(x, jax.Array) and x.size > 0 and jnp.issubdtype(x.dtype, jnp.floating)


@jax.jit
def _gram_stats(k):
    """Number of non-finite entries, max |K| and max |K - K^T| over the finite entries."""
    finite = jnp.isfinite(k)
    kf = jnp.where(finite, k, 0.0)
    return jnp.sum(~finite), jnp.max(jnp.abs(kf)), jnp.max(jnp.abs(kf - kf.T))


def _raise_if_asymmetric(name, asym, scale):
    if asym > 1e-8 * max(scale, 1e-300):
        raise ValueError(f"{name} must be a symmetric kernel matrix; max |K - K^T| = {asym:.3g} "
                         f"(max |K| = {scale:.3g})")


def _positive_definite(name, out):
    """A Cholesky solve of a matrix that is not positive definite returns NaN: say so."""
    if not bool(jnp.all(jnp.isfinite(out))):
        _not_positive_definite(name)
    return out


def _not_positive_definite(name):
    raise ValueError(f"{name} is not positive definite (its Cholesky factorisation failed); "
                     "add a ridge / diag_reg, or check that it is a valid kernel matrix")


def _nonnegative_spectrum(name, lam):
    """Eigenvalues of a kernel matrix below -1e-6 of the largest: not a kernel."""
    lo, hi = float(jnp.min(lam)), float(jnp.max(jnp.abs(lam)))
    if lo < -1e-6 * hi:
        raise ValueError(f"{name} is not positive semi-definite: smallest eigenvalue {lo:.3g} "
                         f"(largest |eigenvalue| {hi:.3g})")


def _check_test_train(k_test_train, n):
    if k_test_train is None:
        return None
    k = _arr("k_test_train", k_test_train, 2)
    if k.shape[1] != n:
        raise ValueError(f"k_test_train must have {n} columns (training points), got {k.shape}")
    return k


def _check_test_test(k, m):
    """``k_test_test`` ``(m, m)`` for ``m`` test points."""
    if k.shape != (m, m):
        raise ValueError(f"k_test_test must have shape (m, m) = ({m}, {m}) for the {m} test "
                         f"points of k_test_train, got {k.shape}")
    return k


def _check_initial(name, f, shape):
    """An initial output ``f`` (scalar or array) that broadcasts against outputs ``shape``."""
    try:
        np.broadcast_shapes(f.shape, shape)
    except ValueError:
        raise ValueError(f"{name} must be a scalar or broadcast to the outputs' shape {shape}, "
                         f"got shape {f.shape}") from None
    return f


def _times(t):
    if t is None:
        return None
    arr = as_finite_array("t", t, nonneg=True)
    if arr.ndim > 1:
        raise ValueError(f"t must be a scalar or 1-D, got shape {arr.shape}")
    return jnp.asarray(arr, jnp.result_type(float))


def _regularise(k, diag_reg):
    n = k.shape[0]
    return k + (diag_reg * jnp.trace(k) / n) * jnp.eye(n, dtype=k.dtype)


def gradient_descent_mse(k_train_train: Float[Array, "n n"], y_train: Float[Array, "n c"],
                         k_test_train: Float[Array, "m n"] | None = None, *, t=None,
                         learning_rate: float = 1.0, diag_reg: float = 0.0,
                         fx_train_0=0.0, fx_test_0=0.0) -> Prediction:
    r"""Outputs of a linearised network / kernel machine trained by gradient flow on MSE.

    .. math::
        f_{train}(t) = Y + V e^{-\eta t\Lambda/|Y|}V^\top(f_0 - Y),\quad
        f_{test}(t) = f_{test,0} + K_{*}V\frac{1 - e^{-\eta t\Lambda/|Y|}}{\Lambda}V^\top(Y - f_0)

    with :math:`K + \text{diag\_reg}\,\mathrm{tr}K/n = V\Lambda V^\top`, evaluated for all
    times from one tridiagonal reduction :math:`K = QTQ^\top` and the eigenpairs
    :math:`T = Z\Lambda Z^\top` (:math:`V = QZ` is never formed); ``t=None`` is the
    infinite-time limit by Cholesky (train outputs are then ``Y``).
    Regime: NTK / linearised dynamics (Jacot et al. 2018, arXiv 1806.07572; Lee et al. 2019,
    1902.06720), neural-tangents' ``predict.gradient_descent_mse`` conventions.

    Args:
      k_train_train: ``(n, n)`` kernel on the training inputs (the NTK for a network).
      y_train: ``(n,)`` or ``(n, c)`` targets.
      k_test_train: optional ``(m, n)`` kernel between test and training inputs.
      t: times, scalar or ``(T,)``; ``None`` for ``t -> infinity``.
      learning_rate: :math:`\eta > 0`.
      diag_reg: relative diagonal regulariser ``>= 0``.
      fx_train_0, fx_test_0: outputs at initialisation (scalars or arrays).

    Returns:
      :class:`Prediction` with ``train`` ``(T, n, c)`` and ``test`` ``(T, m, c)`` (no ``T`` axis
      for scalar or ``None`` ``t``; ``test`` is ``None`` without ``k_test_train``).
    """
    k, y = _check_train(k_train_train, y_train)
    kt = _check_test_train(k_test_train, k.shape[0])
    eta = check_scalar("learning_rate", learning_rate, lo=0.0, lo_open=True, hi=math.inf,
                       hi_open=True)
    diag_reg = check_scalar("diag_reg", diag_reg, lo=0.0)
    ts = _times(t)
    f0 = _check_initial("fx_train_0", _arr("fx_train_0", fx_train_0), y.shape)
    g0 = _arr("fx_test_0", fx_test_0)
    if kt is not None:
        _check_initial("fx_test_0", g0, (kt.shape[0], *y.shape[1:]))
    if ts is None:
        train = jnp.broadcast_to(y, y.shape)
        test = None
        if kt is not None:
            kr = _regularise(k, diag_reg)
            test = g0 + kt @ _positive_definite(
                "k_train_train", jsl.cho_solve(jsl.cho_factor(kr, lower=True), y - f0))
        return Prediction(train, test)
    return _gd_mse_finite_time(k, y, kt, ts, f0, g0, eta, diag_reg)


def _gd_mse_finite_time(k, y, kt, ts, f0, g0, eta, diag_reg) -> Prediction:
    r"""Train and test outputs at the times ``ts`` from a tridiagonal reduction of the kernel.

    The outputs need only :math:`g(K)\,r` for a few functions :math:`g` and one residual
    :math:`r = f_0 - Y` (one column per output), not the eigenvectors of :math:`K`. So
    :math:`K = Q T Q^\top` (Householder tridiagonalisation, ``sytrd``, :math:`\tfrac43 n^3`
    flops), :math:`Q^\top r` from the reflectors (:math:`O(n^2)`), the eigenpairs
    :math:`T = Z\Lambda Z^\top` of the tridiagonal matrix by divide and conquer (``stevd``, on
    the host: :math:`O(n^2)` data, cheap with the strong deflation of kernel spectra), then
    :math:`Q Z g(\Lambda) Z^\top Q^\top r` for every time. That skips the :math:`\approx 2n^3`
    back-transformation :math:`V = QZ` of a full ``eigh`` (``syevd`` = ``sytrd`` + ``stedc`` +
    ``ormtr``). If ``stevd`` fails, one full ``eigh`` :math:`K = V\Lambda V^\top` stands in
    (:math:`Q = V`, :math:`Z = I`) and the same code gives the outputs.
    """
    n = k.shape[0]
    r = jnp.broadcast_to(f0 - y, y.shape).reshape(n, -1)            # (n, c)
    d, e, qr, q = _tridiagonalise(k, r, diag_reg)
    eig = _tridiagonal_eigenpairs(np.asarray(d), np.asarray(e))
    if eig is None:
        lam, q = _eigh(k, diag_reg)
        qr, (lam, z) = _apply_q_jit(q, r, transpose=True), (np.asarray(lam), None)
    else:
        lam, z = eig
    _nonnegative_spectrum("k_train_train", lam)
    lam = np.maximum(lam, 0.0)
    tau = float(eta) * np.asarray(ts)[..., None] / y.size          # (*T, 1)
    decay, gain = _flow_factors(lam, tau, np)                      # (*T, n) each
    s = np.asarray(qr) if z is None else z.T @ np.asarray(qr)      # (n, c): Z^T Q^T r
    w = np.stack([decay] if kt is None else [decay, gain])[..., None] * s   # (F, *T, n, c)
    if z is not None:                                              # one gemm for all columns
        w = np.moveaxis((z @ np.moveaxis(w, -2, 0).reshape(n, -1)).reshape(
            (n,) + w.shape[:-2] + w.shape[-1:]), 0, -2)
    train, test = _gd_mse_back(q, jnp.asarray(w, k.dtype), y, kt, g0)
    if y.ndim == 1:
        train = train[..., 0]
        test = None if test is None else test[..., 0]
    return Prediction(train, test)


def _flow_factors(lam, tau, xp):
    r"""Spectral factors of gradient flow: :math:`e^{-\lambda\tau}` and
    :math:`(1 - e^{-\lambda\tau})/\lambda` (:math:`\tau` at :math:`\lambda = 0`), with the
    array module ``xp`` (NumPy on the host, ``jax.numpy`` inside compiled code)."""
    pos = lam > 0
    gain = xp.where(pos, -xp.expm1(-lam * tau) / xp.where(pos, lam, 1.0), tau)
    return xp.exp(-lam * tau), gain


#: Householder reflectors applied per block (one small triangular solve per block).
_BLOCK = 32


@jax.jit
def _tridiagonalise(k, r, diag_reg):
    """``sytrd`` of the regularised kernel; returns its diagonal and off-diagonal, ``Q^T r``
    (``r`` of shape ``(n, c)``) and the reflectors in the blocked form
    :func:`_apply_reflectors` uses."""
    a, d, e, taus = jax.lax.linalg.tridiagonal(_regularise(k, diag_reg), lower=True)
    refl = _reflector_blocks(a, taus)
    return d, e, _apply_reflectors(refl, r, transpose=True), refl


@jax.jit
def _eigh(k, diag_reg):
    """One full ``eigh`` of the regularised kernel (input checked symmetric: no symmetrising
    pass); the fallback of :func:`_gd_mse_finite_time` and the basis of the covariances."""
    return jnp.linalg.eigh(_regularise(k, diag_reg), symmetrize_input=False)


def _apply_q(q, x, *, transpose):
    """``Q^T x`` or ``Q x`` for ``Q`` given as blocked reflectors (a tuple) or a dense matrix."""
    if isinstance(q, tuple):
        return _apply_reflectors(q, x, transpose=transpose)
    return q.T @ x if transpose else q @ x


_apply_q_jit = jax.jit(_apply_q, static_argnames="transpose")


def _reflector_blocks(a, taus, block=_BLOCK):
    r"""The reflectors :math:`H_i = I - \tau_i v_i v_i^\top` of ``sytrd`` (lower), :math:`Q =
    H_0 H_1\cdots H_{n-2}`, as rows :math:`v_i` (:math:`v_{i,i+1} = 1`, entries below in column
    ``i`` of ``a``), in blocks of ``block`` rows zero-padded with identities (:math:`\tau = 0`),
    and the Gram matrix :math:`v_i^\top v_j` within each block."""
    n = a.shape[0]
    r = max(n - 1, 0)
    v = jnp.tril(a, -2).T[:r] + jnp.eye(r, n, k=1, dtype=a.dtype)
    nb = max(-(-r // block), 1)
    pad = nb * block - r
    v = jnp.pad(v, ((0, pad), (0, 0))).reshape(nb, block, n)
    tau = jnp.pad(taus[:r], (0, pad)).reshape(nb, block)
    return v, tau, jnp.einsum("bin,bjn->bij", v, v)


def _apply_reflectors(refl, x, *, transpose):
    r""":math:`Q^\top x` (``transpose=True``) or :math:`Q x` for ``x`` of shape ``(n, k)``.

    Within a block the reflectors act one after another; with :math:`p = V x` and the block's
    Gram matrix :math:`G = V V^\top`, the coefficients :math:`s_j = \tau_j v_j^\top
    x^{(j)}` of :math:`x \to x - V^\top s` solve the triangular system
    :math:`(I + \mathrm{diag}(\tau) G_{<}) s = \mathrm{diag}(\tau) p`, where :math:`G_{<}` is
    the strictly lower (``Q^T``: :math:`H_0` first) or strictly upper (``Q``: last reflector
    first) part of :math:`G` (the compact WY form, Schreiber & Van Loan 1989).
    """
    v, tau, gram = refl
    eye = jnp.eye(tau.shape[1], dtype=x.dtype)

    def step(x, blk):
        vb, tb, gb = blk
        part = jnp.tril(gb, -1) if transpose else jnp.triu(gb, 1)
        s = jax.lax.linalg.triangular_solve(eye + tb[:, None] * part, tb[:, None] * (vb @ x),
                                            left_side=True, lower=transpose)
        return x - vb.T @ s, None

    return jax.lax.scan(step, x, refl, reverse=not transpose)[0]


@jax.jit
def _gd_mse_back(q, w, y, kt, g0):
    """Train (and test) outputs from ``w = Z g(Lambda) Z^T Q^T r`` (``(F, *T, n, c)``)."""
    shape = w.shape
    x = jnp.moveaxis(w, -2, 0).reshape(shape[-2], -1)              # (n, F * T * c)
    x = jnp.moveaxis(_apply_q(q, x, transpose=False).reshape(
        (shape[-2],) + shape[:-2] + shape[-1:]), 0, -2)             # (F, *T, n, c)
    train = y.reshape(y.shape[0], -1) + x[0]
    test = None if kt is None else g0 - jnp.einsum("mn,...nc->...mc", kt, x[1])
    return train, test


def _tridiagonal_eigenpairs(d, e):
    """Eigenvalues and eigenvectors of the symmetric tridiagonal matrix (``d``, ``e``) by
    divide and conquer (LAPACK ``stevd``: the tridiagonal solver inside ``syevd``, so the
    eigenvectors are orthogonal to a few eps; Cuppen 1981, Gu & Eisenstat 1995), or ``None``
    where it fails or returns non-finite numbers."""
    if d.shape[0] == 1:
        return d.copy(), np.ones((1, 1), d.dtype)
    stevd = sl.lapack.get_lapack_funcs("stevd", (d,))
    lam, z, info = stevd(d, e)
    if info != 0 or not (np.all(np.isfinite(lam)) and np.all(np.isfinite(z))):
        return None
    return lam, z


def kernel_ridge(k_train_train: Float[Array, "n n"], y_train: Float[Array, "n c"],
                 k_test_train: Float[Array, "m n"], ridge: float) -> Float[Array, "m c"]:
    r"""Kernel ridge regression :math:`f_* = K_*(K + P\lambda I)^{-1}y` by Cholesky.

    ``ridge`` :math:`\lambda` is per sample (THEORY.md): it minimises
    :math:`\frac1P\sum_i(y_i - f(x_i))^2 + \lambda\lVert f\rVert_K^2`, i.e. the Gram matrix is
    regularised by :math:`P\lambda`. ``ridge = 0`` is ridgeless interpolation (needs ``K``
    positive definite).

    Args:
      k_train_train: ``(P, P)`` Gram matrix. y_train: ``(P,)`` or ``(P, c)``.
      k_test_train: ``(m, P)``. ridge: ``>= 0``.
    """
    k, y = _check_train(k_train_train, y_train)
    if k_test_train is None:
        raise ValueError("k_test_train must be an (m, P) array, got None")
    kt = _check_test_train(k_test_train, k.shape[0])
    ridge = check_scalar("ridge", ridge, lo=0.0)
    pred, solved = _ridge_predict(k, y, kt, k.shape[0] * ridge)
    if not bool(solved):
        _not_positive_definite("k_train_train")
    return pred


@jax.jit
def _ridge_predict(k, y, kt, shift):
    """``K_* (K + shift I)^{-1} y`` and whether the Cholesky solve is finite: one compiled
    program per shape (op by op it was ~12, ~1 s of XLA compiling per shape on CPU)."""
    alpha = jsl.cho_solve(jsl.cho_factor(k + shift * jnp.eye(k.shape[0], dtype=k.dtype),
                                         lower=True), y)
    return kt @ alpha, jnp.all(jnp.isfinite(alpha))


def _nngp_ntk(name, kern):
    """Accept a :class:`Kernel`-like object with ``nngp``/``ntk`` or a pair."""
    if kern is None:
        raise ValueError(f"{name} must be a Kernel (with .nngp and .ntk) or an (nngp, ntk) "
                         "pair, got None")
    if hasattr(kern, "nngp"):
        return kern.nngp, getattr(kern, "ntk", None)
    if isinstance(kern, tuple) and len(kern) == 2:
        return kern
    raise ValueError(f"{name} must be a Kernel (with .nngp and .ntk) or an (nngp, ntk) pair")


def gp_inference(k_train_train, y_train, k_test_train, k_test_test=None, *,
                 get: str = "nngp", diag_reg: float = 0.0) -> Posterior:
    r"""Posterior of the infinite ensemble of wide networks / the Bayesian GP on test points.

    ``get="nngp"``: Bayesian posterior of the NNGP,
    :math:`\mu = K_{*}K^{-1}Y`, :math:`\Sigma = K_{**} - K_{*}K^{-1}K_{*}^\top`.
    ``get="ntkgp"``: the same with the NTK as prior covariance (He et al. 2020, 2007.05864).
    ``get="ntk"``: the ``t -> infinity`` ensemble of NTK-trained networks (Lee et al. 2019),
    :math:`\mu = \Theta_{*}\Theta^{-1}Y`, :math:`\Sigma = K_{**} + \Theta_*\Theta^{-1}K\Theta^{-1}
    \Theta_*^\top - (\Theta_*\Theta^{-1}K_*^\top + \text{h.c.})`.
    ``diag_reg`` is relative (added to the matrix that is solved against).

    Args:
      k_train_train, k_test_train: :class:`Kernel` (``nngp`` and ``ntk``; an ``(nngp, ntk)``
        pair also works) of shapes ``(n, n)`` and ``(m, n)``.
      y_train: ``(n,)`` or ``(n, c)``.
      k_test_train, k_test_test: kernels on test points; ``k_test_test`` ``(m, m)`` (only
        its ``nngp``, or ``ntk`` for ``"ntkgp"``) is needed for the covariance.
      get: ``"nngp"``, ``"ntk"`` or ``"ntkgp"``.
    """
    check_choice("get", get, ("nngp", "ntk", "ntkgp"))
    diag_reg = check_scalar("diag_reg", diag_reg, lo=0.0)
    nngp_dd, ntk_dd = _nngp_ntk("k_train_train", k_train_train)
    nngp_td, ntk_td = _nngp_ntk("k_test_train", k_test_train)
    g = "nngp" if get == "nngp" else "ntk"
    k_dd = nngp_dd if g == "nngp" else ntk_dd
    k_td = nngp_td if g == "nngp" else ntk_td
    k_dd, y = _check_train(k_dd, y_train)
    k_td = _check_test_train(k_td, k_dd.shape[0])
    if k_td is None:
        raise ValueError("k_test_train must be given (a Kernel or an (nngp, ntk) pair)")
    cho = jsl.cho_factor(_regularise(k_dd, diag_reg), lower=True)
    mean = k_td @ _positive_definite("k_train_train", jsl.cho_solve(cho, y))
    if k_test_test is None:
        return Posterior(mean, None)
    tt_nngp, tt_ntk = _nngp_ntk("k_test_test", k_test_test)
    k_tt = _check_test_test(_arr("k_test_test", tt_ntk if get == "ntkgp" else tt_nngp, 2),
                            k_td.shape[0])
    if get in ("nngp", "ntkgp"):
        cov = k_tt - k_td @ jsl.cho_solve(cho, k_td.T)
    else:
        a = jsl.cho_solve(cho, k_td.T)                            # Theta^{-1} Theta_*^T
        nngp_dd = _arr("k_train_train.nngp", nngp_dd, 2)
        nngp_td = _check_test_train(nngp_td, k_dd.shape[0])
        cross = k_td @ jsl.cho_solve(cho, nngp_td.T)
        cov = k_tt + a.T @ nngp_dd @ a - cross - cross.T
    return Posterior(mean, cov)


def gradient_descent_mse_ensemble(k_train_train, y_train, k_test_train, k_test_test=None, *,
                                  t=None, get: str = "ntk", learning_rate: float = 1.0,
                                  diag_reg: float = 0.0) -> Posterior:
    r"""Mean and covariance over random initialisations of infinitely wide networks trained by
    gradient flow on MSE, at times ``t`` (Lee et al. 2019, arXiv 1902.06720, eqs. 15-16).

    With :math:`\Theta = V\Lambda V^\top` (regularised) and
    :math:`A_t = V\frac{1-e^{-\eta t\Lambda/|Y|}}{\Lambda}V^\top = \Theta^{-1}(I - e^{-\eta t
    \Theta/|Y|})`:

    .. math::
        \mu_t = \Theta_* A_t Y, \qquad
        \Sigma_t = K_{**} + \Theta_* A_t K A_t\Theta_*^\top - (\Theta_* A_t K_*^\top + h.c.).

    ``get="nngp"`` trains only the readout: :math:`\Theta \to K` everywhere (regularised
    ``K`` also in the middle factor, so :math:`\Sigma_t = K_{**} - K_*K^{-1}(I - e^{-2\eta t
    K/|Y|})K_*^\top`). ``t=None`` is the
    infinite-time limit (:func:`gp_inference`). Conventions as neural-tangents'
    ``predict.gradient_descent_mse_ensemble``.

    Args:
      k_train_train, k_test_train, k_test_test: :class:`Kernel` objects (``(n, n)``,
        ``(m, n)``, ``(m, m)``); ``k_test_test`` only for the covariance.
      y_train: ``(n,)`` or ``(n, c)``. t: scalar, ``(T,)`` or ``None``.
      get: ``"nngp"`` or ``"ntk"``. learning_rate: ``> 0``. diag_reg: relative, ``>= 0``.
    """
    check_choice("get", get, ("nngp", "ntk"))
    eta = check_scalar("learning_rate", learning_rate, lo=0.0, lo_open=True, hi=math.inf,
                       hi_open=True)
    diag_reg = check_scalar("diag_reg", diag_reg, lo=0.0)
    ts = _times(t)
    if ts is None:
        return gp_inference(k_train_train, y_train, k_test_train, k_test_test, get=get,
                            diag_reg=diag_reg)
    nngp_dd, ntk_dd = _nngp_ntk("k_train_train", k_train_train)
    nngp_td, ntk_td = _nngp_ntk("k_test_train", k_test_train)
    th_dd, y = _check_train(nngp_dd if get == "nngp" else ntk_dd, y_train)
    n = th_dd.shape[0]
    th_td = _check_test_train(nngp_td if get == "nngp" else ntk_td, n)
    if th_td is None:
        raise ValueError("k_test_train must be given (a Kernel or an (nngp, ntk) pair)")
    if k_test_test is None:
        # the mean alone is Theta_* A_t Y: the test output of gradient flow from f_0 = 0, which
        # needs no eigenvectors of Theta (see _gd_mse_finite_time)
        zero = jnp.zeros((), y.dtype)
        return Posterior(_gd_mse_finite_time(th_dd, y, th_td, ts, zero, zero, eta,
                                             diag_reg).test, None)
    lam, v = _eigh(th_dd, diag_reg)
    _nonnegative_spectrum("k_train_train", lam)
    lam = jnp.maximum(lam, 0.0)
    tau = eta * ts[..., None] / y.size
    _, gain = _flow_factors(lam, tau, jnp)
    b = jnp.einsum("mn,...n->...mn", th_td @ v, gain)          # Theta_* V diag(gain)
    mean = b @ (v.T @ y)
    tt_nngp, _ = _nngp_ntk("k_test_test", k_test_test)
    k_tt = _check_test_test(_arr("k_test_test", tt_nngp, 2), th_td.shape[0])
    k_dd = _arr("k_train_train.nngp", nngp_dd, 2)
    k_td = _check_test_train(nngp_td, n)
    if get == "nngp":
        # Theta = K (regularised): Sigma_t = K_** - K_* K^{-1}(I - e^{-2 eta t K/|Y|}) K_*^T
        _, gain2 = _flow_factors(lam, 2.0 * tau, jnp)
        kv = k_td @ v
        cov = k_tt - jnp.einsum("mn,...n,ln->...ml", kv, gain2, kv)
        return Posterior(mean, cov)
    mid = v.T @ k_dd @ v
    cross = b @ (v.T @ k_td.T)
    cov = k_tt + b @ mid @ jnp.swapaxes(b, -1, -2) - cross - jnp.swapaxes(cross, -1, -2)
    return Posterior(mean, cov)


def max_learning_rate(k_train_train: Float[Array, "n n"], y_train_size: int,
                      momentum: float = 0.0) -> float:
    r"""Largest stable discrete-GD learning rate under the :math:`\frac{1}{2|Y|}` loss:
    :math:`2(1+\text{momentum})|Y|/\lambda_{max}(K)` (neural-tangents' formula)."""
    k = as_finite_array("k_train_train", k_train_train, ndim=2)
    if k.shape[0] != k.shape[1]:
        raise ValueError(f"k_train_train must be square, got shape {k.shape}")
    check_symmetric("k_train_train", k)
    check_scalar("y_train_size", y_train_size, lo=1, integer=True)
    momentum = check_scalar("momentum", momentum, lo=0.0, hi=1.0, hi_open=True)
    lam_max = float(np.linalg.eigvalsh(k)[-1])
    return 2.0 * (1.0 + momentum) * y_train_size / (lam_max + 1e-12)
