"""Hostile input to the kernels package (issue 14): every case is a ValueError naming the
argument, raised within a second, never a crash, a hang or a silent NaN."""

from __future__ import annotations

import time

import jax
import numpy as np
import pytest

from theorysim import kernels as K
from theorysim.kernels import stax

RNG = np.random.default_rng(0)
X = RNG.standard_normal((6, 3))
KXX = np.asarray(K.mlp_kernel(1, "relu")(X).ntk, np.float64)
Y = RNG.standard_normal(6)
NONSYM = KXX + np.triu(np.ones((6, 6)), 1) * 0.3
INDEF = np.diag([1.0, 1.0, 1.0, -1.0, 1.0, 1.0])


def _kern(a):
    return K.Kernel(a, a)


CASES = {
    "gp_non_symmetric": (lambda: K.gp_inference(_kern(NONSYM), Y, _kern(KXX[:2])),
                         "symmetric"),
    "gp_none_test": (lambda: K.gp_inference(_kern(KXX), Y, None), "k_test_train"),
    "gp_bad_get": (lambda: K.gp_inference(_kern(KXX), Y, _kern(KXX[:2]), get="cntk"), "get"),
    "krr_indefinite": (lambda: K.kernel_ridge(INDEF, Y, INDEF[:2], 0.0),
                       "positive definite"),
    "krr_none_test": (lambda: K.kernel_ridge(KXX, Y, None, 0.1), "k_test_train"),
    "krr_string_ridge": (lambda: K.kernel_ridge(KXX, Y, KXX[:2], "0.1"), "ridge"),
    "krr_none_y": (lambda: K.kernel_ridge(KXX, None, KXX[:2], 0.1), "y_train"),
    "gd_wrong_test_shape": (lambda: K.gradient_descent_mse(KXX, Y, KXX[:2, :4], t=1.0),
                            "k_test_train"),
    "gd_indefinite": (lambda: K.gradient_descent_mse(INDEF, Y, t=[1.0, 2.0]),
                      "positive semi-definite"),
    # the same checks on kernels that already live on the device (checked there, fused)
    "gd_device_non_symmetric": (lambda: K.gradient_descent_mse(jax.numpy.asarray(NONSYM), Y,
                                                               t=1.0), "symmetric"),
    "gd_device_nan": (lambda: K.gradient_descent_mse(
        jax.numpy.asarray(np.where(np.eye(6) > 0, np.nan, KXX)), Y, t=1.0), "k_train_train"),
    "gd_device_not_square": (lambda: K.gradient_descent_mse(jax.numpy.asarray(KXX[:4]), Y,
                                                            t=1.0), "square"),
    "gd_device_bad_y": (lambda: K.gradient_descent_mse(jax.numpy.asarray(KXX), Y[:4], t=1.0),
                        "y_train"),
    "gd_nan_time": (lambda: K.gradient_descent_mse(KXX, Y, t=[1.0, np.nan]), "t"),
    "gd_negative_lr": (lambda: K.gradient_descent_mse(KXX, Y, t=1.0, learning_rate=-1.0),
                       "learning_rate"),
    "ensemble_non_symmetric": (lambda: K.gradient_descent_mse_ensemble(
        _kern(NONSYM), Y, _kern(KXX[:2]), t=1.0), "symmetric"),
    "spectrum_non_symmetric": (lambda: K.gram_spectrum(NONSYM, Y), "symmetric"),
    "spectrum_indefinite": (lambda: K.gram_spectrum(INDEF, Y), "positive semi-definite"),
    "max_lr_non_symmetric": (lambda: K.max_learning_rate(NONSYM, 6), "symmetric"),
    "mlp_inf_W_std": (lambda: K.mlp_kernel(2, "relu", W_std=float("inf")), "W_std"),
    "mlp_nan_b_std": (lambda: K.mlp_kernel(2, "relu", b_std=float("nan")), "b_std"),
    "mlp_string_W_std": (lambda: K.mlp_kernel(2, "relu", W_std="1.5"), "W_std"),
    "mlp_none_x": (lambda: K.mlp_kernel(2)(None), "x1"),
    "mlp_100k_points": (lambda: K.mlp_kernel(2)(np.zeros((100_000, 2))), "max_gb"),
    "stax_huge_cnn": (lambda: stax.serial(stax.Conv(8, (3, 3)), stax.Relu(),
                                          stax.GlobalAvgPool())[2](np.zeros((2000, 32, 32, 3))),
                      "max_gb"),
    "stax_inf_W_std": (lambda: stax.Dense(4, W_std=float("inf")), "W_std"),
    "stax_nan_input": (lambda: stax.Dense(1)[2](np.full((2, 3), np.nan)), "x1"),
    "mc_not_a_key": (lambda: K.monte_carlo_kernel(K.DenseMLP((8,), K.Relu()), X, key=3),
                     "key"),
    "mlp_init_f64_without_x64": (lambda: K.DenseMLP((8,), K.Relu()).init(
        jax.random.key(0), 3, np.float64), "enable_x64"),
    "batch_not_a_kernel_fn": (lambda: K.batch(lambda x: x, 2), "kernel_fn"),
    "batch_bad_size": (lambda: K.batch(stax.Dense(1)[2], 4)(X), "batch_size"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_is_a_clear_value_error(name):
    fn, match = CASES[name]
    start = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        fn()
    # under a second on an idle machine; the positive-definiteness cases need one jitted
    # eigh/Cholesky (compile included) and CI machines are shared: 10 s bound
    assert time.perf_counter() - start < 10.0


def test_override_admits_a_large_call():
    k = K.mlp_kernel(1)
    with pytest.raises(ValueError, match="max_gb"):
        k(np.ones((3, 2)), max_gb=1e-12)
    assert k(np.ones((3, 2)), max_gb=None).ntk.shape == (3, 3)
