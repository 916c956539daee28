"""Kernel predictions against neural-tangents' frozen predict arrays, and KRR identities."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from tests._tolerances import assert_allclose
from tests.kernels._golden import golden
from theorysim import kernels as K
from theorysim.kernels import _predict


@pytest.fixture(scope="module")
def kernels64():
    g = golden()
    with jax.enable_x64(True):
        k = K.mlp_kernel(2, "relu", 1.5, 0.1)
        return k(g["X"]), k(g["X2"], g["X"]), k(g["X2"])


def test_gradient_descent_mse(kernels64):
    g = golden()
    kdd, ktd, _ = kernels64
    with jax.enable_x64(True):
        p = K.gradient_descent_mse(kdd.ntk, g["Y"], ktd.ntk, t=g["pred_t"])
        assert_allclose(p.train, g["gdmse_fx_train_t"])
        assert_allclose(p.test, g["gdmse_fx_test_t"])
        inf = K.gradient_descent_mse(kdd.ntk, g["Y"], ktd.ntk, t=None)
        assert_allclose(inf.test, g["gdmse_fx_test_inf"])
        assert_allclose(inf.train, g["Y"])
        reg = K.gradient_descent_mse(kdd.ntk, g["Y"], ktd.ntk, t=g["pred_t"], learning_rate=0.3,
                                     diag_reg=1e-2, fx_train_0=g["gdmse_fx_train_0"],
                                     fx_test_0=g["gdmse_fx_test_0"])
        assert_allclose(reg.train, g["gdmse_reg_fx_train_t"])
        assert_allclose(reg.test, g["gdmse_reg_fx_test_t"])
        # long times converge to the infinite-time (Cholesky) limit
        late = K.gradient_descent_mse(kdd.ntk, g["Y"], ktd.ntk, t=1e9)
        assert_allclose(late.test, inf.test, rtol=1e-8)  # the slowest mode decays as e^{-lam t}
        # 1-D targets: |Y| halves, so half the learning rate gives the same trajectory
        one_d = K.gradient_descent_mse(kdd.ntk, g["Y"][:, 0], ktd.ntk, t=g["pred_t"],
                                       learning_rate=0.5)
        assert_allclose(one_d.test, g["gdmse_fx_test_t"][..., 0])


@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_ensemble(kernels64, get):
    g = golden()
    kdd, ktd, ktt = kernels64
    with jax.enable_x64(True):
        e = K.gradient_descent_mse_ensemble(kdd, g["Y"], ktd, ktt, t=g["pred_t"], get=get,
                                            diag_reg=1e-4)
        assert_allclose(e.mean, g[f"ens_{get}_mean_t"])
        assert_allclose(e.cov, g[f"ens_{get}_cov_t"])
        e = K.gradient_descent_mse_ensemble(kdd, g["Y"], ktd, ktt, t=None, get=get, diag_reg=1e-4)
        assert_allclose(e.mean, g[f"ens_{get}_mean_inf"])
        assert_allclose(e.cov, g[f"ens_{get}_cov_inf"])


@pytest.mark.parametrize("get", ["nngp", "ntk", "ntkgp"])
def test_gp_inference(kernels64, get):
    g = golden()
    kdd, ktd, ktt = kernels64
    with jax.enable_x64(True):
        post = K.gp_inference(kdd, g["Y"], ktd, ktt, get=get, diag_reg=1e-3)
    assert_allclose(post.mean, g[f"gp_{get}_mean"])
    assert_allclose(post.cov, g[f"gp_{get}_cov"])


def test_max_learning_rate(kernels64):
    kdd = kernels64[0]
    assert_allclose(K.max_learning_rate(kdd.ntk, golden()["Y"].size), golden()["max_lr"])


def test_kernel_ridge_matches_dense_solve():
    rng = np.random.default_rng(3)
    x, xt = rng.standard_normal((30, 4)), rng.standard_normal((7, 4))
    y = rng.standard_normal(30)
    with jax.enable_x64(True):
        k = K.mlp_kernel(1, "relu")
        kdd, ktd = np.asarray(k(x).ntk), np.asarray(k(xt, x).ntk)
        for ridge in (0.0, 1e-3, 1.0):
            got = K.kernel_ridge(kdd, y, ktd, ridge)
            ref = ktd @ np.linalg.solve(kdd + 30 * ridge * np.eye(30), y)
            assert_allclose(got, ref, rtol=1e-9)  # dense solve of a condition-1e4 system
        # ridge -> 0 of KRR equals the infinite-time gradient-flow limit
        assert_allclose(K.kernel_ridge(kdd, y, ktd, 0.0),
                        K.gradient_descent_mse(kdd, y, ktd).test, rtol=1e-9)


def test_bad_input_raises():
    k = np.eye(3)
    with pytest.raises(ValueError, match="y_train"):
        K.gradient_descent_mse(k, np.ones(4))
    with pytest.raises(ValueError, match="k_test_train"):
        K.gradient_descent_mse(k, np.ones(3), np.ones((2, 4)))
    with pytest.raises(ValueError, match="k_train_train"):
        K.gradient_descent_mse(np.ones((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="t"):
        K.gradient_descent_mse(k, np.ones(3), t=[-1.0])
    with pytest.raises(ValueError, match="learning_rate"):
        K.gradient_descent_mse(k, np.ones(3), learning_rate=0.0)
    with pytest.raises(ValueError, match="diag_reg"):
        K.gp_inference((k, k), np.ones(3), (np.ones((2, 3)),) * 2, diag_reg=-1.0)
    with pytest.raises(ValueError, match="ridge"):
        K.kernel_ridge(k, np.ones(3), np.ones((2, 3)), -1.0)
    with pytest.raises(ValueError, match="k_train_train"):
        K.kernel_ridge(np.full((3, 3), np.nan), np.ones(3), np.ones((2, 3)), 0.1)
    with pytest.raises(ValueError, match="get"):
        K.gp_inference((k, k), np.ones(3), (np.ones((2, 3)),) * 2, get="mean")


# --- the finite-time path: tridiagonal reduction + stevd against one full eigh (issue 12) ---

def _psd(n, lam, seed):
    """``U diag(lam) U^T`` with a Haar-random orthogonal ``U`` (symmetrised exactly)."""
    u, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    k = (u * lam) @ u.T
    return (k + k.T) / 2


def _eigh_path(k, y, kt, ts, f0=0.0, g0=0.0, eta=1.0, diag_reg=0.0):
    """Reference in NumPy from one full eigh (LAPACK syevd) of the regularised kernel:
    train ``Y + V e^{-tau L} V^T (f0 - Y)``, test ``g0 - K_* V (1 - e^{-tau L}) / L V^T (f0 - Y)``
    with ``tau = eta t / |Y|``, outputs shaped as :func:`gradient_descent_mse`'s."""
    n = k.shape[0]
    lam, v = np.linalg.eigh(k + diag_reg * np.trace(k) / n * np.eye(n))
    lam = np.maximum(lam, 0.0)
    r = v.T @ np.broadcast_to(f0 - y, y.shape).reshape(n, -1)
    train, test = [], []
    for t in np.atleast_1d(ts):
        tau = eta * t / y.size
        gain = np.where(lam > 0, -np.expm1(-lam * tau) / np.where(lam > 0, lam, 1.0), tau)
        train.append(y.reshape(n, -1) + v @ (np.exp(-lam * tau)[:, None] * r))
        test.append(g0 - kt @ (v @ (gain[:, None] * r)))
    train, test = np.stack(train), np.stack(test)
    if y.ndim == 1:
        train, test = train[..., 0], test[..., 0]
    return (train, test) if np.ndim(ts) else (train[0], test[0])


SPECTRA = {
    # condition 10: every method agrees to a few eps
    "well": lambda n: np.linspace(0.1, 1.0, n),
    # eigenvalues from 1 down to 1e-10 (condition 1e10), a cluster of 10 at 1e-10
    "ill": lambda n: np.concatenate([np.logspace(0, -10, n - 10), np.full(10, 1e-10)]),
    # rank n/2: half the spectrum is rounding noise around 0 (clamped to 0)
    "singular": lambda n: np.concatenate([np.linspace(0.5, 2.0, n // 2), np.zeros(n - n // 2)]),
}


@pytest.mark.parametrize("spectrum", sorted(SPECTRA))
def test_tridiagonal_path_matches_full_eigh(spectrum):
    n, m, c = 120, 17, 3
    rng = np.random.default_rng(11)
    with jax.enable_x64(True):
        k = _psd(n, SPECTRA[spectrum](n), 5)
        kt = rng.standard_normal((m, n)) / np.sqrt(n)   # any (m, n) matrix: the map is linear
        y = rng.standard_normal((n, c))
        f0, g0 = rng.standard_normal((n, c)), rng.standard_normal((m, c))
        ts = np.array([0.0, 1e-3, 1.0, 30.0, 1e3, 1e6])
        for diag_reg in (0.0, 1e-4):
            got = K.gradient_descent_mse(k, y, kt, t=ts, fx_train_0=f0, fx_test_0=g0,
                                         learning_rate=0.7, diag_reg=diag_reg)
            ref = _eigh_path(k, y, kt, ts, f0, g0, 0.7, diag_reg)
            # Both reduce K to a tridiagonal T (sytrd) and solve it by divide and conquer
            # (stedc); they differ in the order in which the orthogonal factors are applied
            # (and in blocking), so they agree to a small multiple of n eps = 2.7e-14 of each
            # output's scale (1e-12 = 40 n eps), at every time, for every spectrum.
            for a, b in zip(got.train, ref[0], strict=True):
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.max(np.abs(b)))
            for a, b in zip(got.test, ref[1], strict=True):
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.max(np.abs(b)))
            # t = 0 is the initialisation, exactly up to rounding
            assert_allclose(got.train[0], f0, rtol=0, atol=1e-13)
            assert_allclose(got.test[0], g0, rtol=0, atol=1e-13)


@pytest.mark.parametrize("n", [1, 2, 33, 70])
def test_tridiagonal_path_tiny_n_and_block_edges(n):
    # n - 1 reflectors, applied in blocks of 32: none, part of one block, exactly one block,
    # three (the last one padded with identities)
    rng = np.random.default_rng(n)
    with jax.enable_x64(True):
        k = _psd(n, np.linspace(0.2, 1.5, n), n)
        y, kt = rng.standard_normal(n), rng.standard_normal((4, n))  # 1-D targets
        t = 0.5 if n == 1 else [0.0, 2.0, 50.0]
        got = K.gradient_descent_mse(k, y, kt, t=t, learning_rate=2.0)
        ref = _eigh_path(k, y, kt, t, eta=2.0)
        assert got.train.shape == ref[0].shape and got.test.shape == ref[1].shape
        assert_allclose(got.train, ref[0])
        assert_allclose(got.test, ref[1])
    if n == 1:  # closed form: f(t) = y (1 - e^{-eta t k}), f_*(t) = k_* y (1 - e^{-eta t k}) / k
        decay = np.exp(-2.0 * 0.5 * k[0, 0])
        assert_allclose(got.train, y * (1 - decay))
        assert_allclose(got.test, kt[:, 0] * y[0] * (1 - decay) / k[0, 0])


def test_reflectors_reproduce_the_tridiagonal_reduction():
    # Q from the blocked reflectors is orthogonal and Q^T K Q is the tridiagonal (d, e)
    n = 75
    with jax.enable_x64(True):
        k = _psd(n, np.logspace(0, -6, n), 2)
        d, e, qr, refl = _predict._tridiagonalise(k, np.ones((n, 1)), 0.0)
        q = np.asarray(_predict._apply_reflectors(refl, np.eye(n), transpose=False))
        qt = np.asarray(_predict._apply_reflectors(refl, np.eye(n), transpose=True))
    assert_allclose(qt, q.T, rtol=0, atol=1e-14)
    assert_allclose(q.T @ q, np.eye(n), rtol=0, atol=1e-14)
    tri = np.diag(d) + np.diag(e, 1) + np.diag(e, -1)
    assert_allclose(q.T @ k @ q, tri, rtol=0, atol=1e-14)
    assert_allclose(qr, q.T @ np.ones((n, 1)), rtol=0, atol=1e-13)


def test_failed_tridiagonal_eigensolver_falls_back_to_full_eigh(monkeypatch, kernels64):
    # contract: a failure of the tridiagonal eigensolver is never a silent NaN; the full eigh
    # gives the same outputs (compared against neural-tangents' frozen values)
    g = golden()
    kdd, ktd, _ = kernels64
    monkeypatch.setattr(_predict, "_tridiagonal_eigenpairs", lambda d, e: None)
    with jax.enable_x64(True):
        p = K.gradient_descent_mse(kdd.ntk, g["Y"], ktd.ntk, t=g["pred_t"])
    assert_allclose(p.train, g["gdmse_fx_train_t"])
    assert_allclose(p.test, g["gdmse_fx_test_t"])
    with pytest.raises(ValueError, match="positive semi-definite"):
        K.gradient_descent_mse(np.diag([1.0, -1.0, 2.0]), np.ones(3), t=1.0)


def test_tridiagonal_eigenpairs_refuses_non_finite():
    d, e = np.array([1.0, np.nan, 2.0]), np.array([0.1, 0.2])
    assert _predict._tridiagonal_eigenpairs(d, e) is None


@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_ensemble_mean_alone_equals_mean_with_covariance(kernels64, get):
    # without k_test_test the mean comes from the tridiagonal path, with it from the full eigh
    g = golden()
    kdd, ktd, ktt = kernels64
    with jax.enable_x64(True):
        alone = K.gradient_descent_mse_ensemble(kdd, g["Y"], ktd, t=g["pred_t"], get=get,
                                                diag_reg=1e-4)
        both = K.gradient_descent_mse_ensemble(kdd, g["Y"], ktd, ktt, t=g["pred_t"], get=get,
                                               diag_reg=1e-4)
        assert alone.cov is None
        assert_allclose(alone.mean, both.mean)
        assert_allclose(alone.mean, g[f"ens_{get}_mean_t"])
        one_d = K.gradient_descent_mse_ensemble(kdd, g["Y"][:, 0], ktd, t=3.0, get=get)
        assert one_d.mean.shape == (ktd.ntk.shape[0],)


def test_nt_gp_inference_validates_when_built():
    """``predict.gp_inference`` checks its arrays when the predictor is built, not at the first
    ``predict_fn`` call: each bad argument is a ValueError naming it."""
    from theorysim.kernels import predict as KP
    k = np.eye(3) + 0.1
    KP.gp_inference(k, np.ones(3))  # valid: builds without a test kernel
    bad = {"k_train_train": (np.ones((3, 2)), np.ones(3)),          # not square
           "y_train": (k, np.ones(4)),                               # wrong length
           "k_train_train.nngp": (np.where(np.eye(3) > 0, np.nan, k), np.ones(3))}
    for name, (kdd, y) in bad.items():
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            KP.gp_inference(kdd, y)
    with pytest.raises(ValueError, match="symmetric"):
        KP.gp_inference(k + np.triu(np.ones((3, 3)), 1), np.ones(3))
