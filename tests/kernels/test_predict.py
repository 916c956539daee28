"""Kernel predictions against neural-tangents' frozen predict arrays, and KRR identities."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from tests._tolerances import assert_allclose
from tests.kernels._golden import golden
from theorysim import kernels as K


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
