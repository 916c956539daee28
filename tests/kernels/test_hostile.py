"""Hostile input to the kernels package (issue 14): every case is a ValueError naming the
argument, raised within a second, never a crash, a hang or a silent NaN."""

from __future__ import annotations

import time

import jax
import numpy as np
import pytest

from theorysim import ConvergenceError
from theorysim import kernels as K
from theorysim.kernels import predict as KP
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
    # second probe (session 5)
    "mlp_depth_1e6": (lambda: K.mlp_kernel(10**6), "depth"),
    "mlp_W_std_complex": (lambda: K.mlp_kernel(2, W_std=1 + 1j), "W_std"),
    "mlp_W_std_0d_array": (lambda: K.mlp_kernel(2, W_std=np.array(1.2)), "W_std"),
    "mlp_activation_none": (lambda: K.mlp_kernel(2, None), "activation"),
    "mlp_x2_columns": (lambda: K.mlp_kernel(2)(X, np.ones((4, 5))), "x2"),
    "mlp_x1_empty": (lambda: K.mlp_kernel(2)(np.zeros((0, 3))), "x1"),
    "mlp_x1_complex": (lambda: K.mlp_kernel(2)(X + 0j), "x1"),
    "mlp_x1_overflows_dtype": (lambda: K.mlp_kernel(2)(np.full((2, 3), 1e200)), "x1"),
    "stax_x1_overflows_dtype": (lambda: stax.Dense(1)[2](np.full((2, 3), 1e200)), "x1"),
    "leaky_relu_alpha_inf": (lambda: K.LeakyRelu(alpha=float("inf")), "alpha"),
    "erf_scale_nan": (lambda: K.Erf(scale=float("nan")), "scale"),
    "sin_amplitude_inf": (lambda: K.Sin(amplitude=float("inf")), "amplitude"),
    "elementwise_not_callable": (lambda: K.Elementwise(3.0), "fn"),
    "elementwise_order_huge": (lambda: K.Elementwise(jax.numpy.tanh, order=10**6), "order"),
    "hermite_negative_degree": (lambda: K.Hermite(-1), "degree"),
    "stax_monomial_negative": (lambda: stax.Monomial(-1), "degree"),
    "sphere_kernel_fn_none": (lambda: K.sphere_spectrum(None, 3, 10), "kernel_fn"),
    "sphere_max_degree_names_itself": (lambda: K.sphere_spectrum(np.exp, 3, 10**9),
                                       "max_degree"),
    "sphere_n_nodes_1e9": (lambda: K.sphere_spectrum(np.exp, 3, 10, n_nodes=10**9),
                           "n_nodes"),
    "sphere_degeneracy_beyond_float64": (lambda: K.sphere_spectrum(np.exp, 10**4, 200),
                                         "degeneracy"),
    "rbf_data_std_inf": (lambda: K.gaussian_rbf_spectrum(3, 1.0, 10, data_std=float("inf")),
                         "data_std"),
    "gram_empty": (lambda: K.gram_spectrum(np.zeros((0, 0)), np.zeros(0)), "K"),
    "gd_learning_rate_inf": (lambda: K.gradient_descent_mse(KXX, Y, t=1.0,
                                                            learning_rate=float("inf")),
                             "learning_rate"),
    "gd_fx_train_0_shape": (lambda: K.gradient_descent_mse(KXX, Y, t=1.0,
                                                           fx_train_0=np.ones(4)),
                            "fx_train_0"),
    "gp_k_test_test_shape": (lambda: K.gp_inference(_kern(KXX), Y, _kern(KXX[:2]),
                                                    _kern(KXX)), "k_test_test"),
    "nt_predict_k_train_none": (lambda: KP.gradient_descent_mse(None, Y), "k_train_train"),
    "nt_predict_ensemble_kernel_fn_none": (lambda: KP.gradient_descent_mse_ensemble(None, X, Y),
                                           "kernel_fn"),
    "nt_max_learning_rate_none": (lambda: KP.max_learning_rate(None), "ntk_train_train"),
    "empirical_apply_fn_none": (lambda: K.empirical_ntk(None, {}, X), "apply_fn"),
    "mc_n_samples_1e12": (lambda: K.monte_carlo_kernel(K.DenseMLP((8,), K.Relu()), X,
                                                       key=jax.random.key(0),
                                                       n_samples=10**12), "n_samples"),
    "mc_width_1e9_memory": (lambda: K.monte_carlo_kernel(K.DenseMLP((10**9,), K.Relu()), X,
                                                         key=jax.random.key(0), n_samples=32),
                            "widths"),
    "dense_mlp_width_0": (lambda: K.DenseMLP((0,), K.Relu()), "widths"),
    "dense_mlp_activation_str": (lambda: K.DenseMLP((8,), "relu"), "activation"),
    # third probe (session 6): standard deviations whose square overflows (W_std**2 raised
    # OverflowError), non-keys and None in stax's init/apply, unbounded repeat (10^9 copies
    # ran for ever), LayerNorm axes that wrapped around, arrays in predict.gp_inference
    "mlp_W_std_1e200": (lambda: K.mlp_kernel(2, W_std=1e200), "W_std"),
    "mlp_b_std_1e200": (lambda: K.mlp_kernel(2, b_std=1e200), "b_std"),
    "dense_mlp_W_std_1e200": (lambda: K.DenseMLP((8,), K.Relu(), W_std=1e200), "W_std"),
    "stax_dense_W_std_1e200": (lambda: stax.Dense(4, W_std=1e200), "W_std"),
    "stax_conv_b_std_1e100": (lambda: stax.Conv(4, (3, 3), b_std=1e100), "b_std"),
    "stax_attention_W_key_std_1e100": (lambda: stax.GlobalSelfAttention(
        4, 4, 4, 1, W_key_std=1e100), "W_key_std"),
    "stax_init_key_not_a_key": (lambda: stax.Dense(1)[0](3, (2, 3)), "rng"),
    "stax_apply_params_none": (lambda: stax.Dense(1)[1](None, X), "params"),
    "stax_repeat_1e9": (lambda: stax.repeat(stax.serial(stax.Dense(3), stax.Relu()), 10**9),
                        r"n must be in \[0, 10000\]"),
    "stax_layernorm_axis_out_of_range": (lambda: stax.serial(stax.Dense(4),
                                                             stax.LayerNorm(axis=5))[2](X),
                                         "axis 5 is out of range"),
    "stax_conv_filter_larger_than_input_valid": (lambda: stax.serial(
        stax.Conv(4, (5, 5), padding="VALID"), stax.Flatten())[2](np.ones((2, 3, 3, 1))),
        "filter_shape"),
    "stax_avgpool_window_larger_than_input_valid": (lambda: stax.serial(
        stax.AvgPool((5, 5)), stax.Flatten())[2](np.ones((2, 3, 3, 1))), "window_shape"),
    "stax_attention_on_vectors": (lambda: stax.serial(stax.GlobalSelfAttention(4, 4, 4, 1),
                                                      stax.GlobalAvgPool())[2](X),
                                  "GlobalSelfAttention needs inputs with spatial"),
    "stax_get_tuple_typo": (lambda: stax.Dense(1)[2](X, get=("ntk", "xx")), "get"),
    "stax_parallel_arity": (lambda: stax.serial(stax.FanOut(3), stax.parallel(
        stax.Dense(3), stax.Dense(3)))[2](X), "parallel of 2 layers needs 2 branches"),
    "nt_gp_inference_array_non_symmetric": (lambda: KP.gp_inference(NONSYM, Y[:, None])(
        get="nngp", k_test_train=KXX[:2]), "symmetric"),
    "nt_gp_inference_not_a_kernel": (lambda: KP.gp_inference("K", Y), "k_train_train"),
    "nt_gd_fn_negative_time": (lambda: KP.gradient_descent_mse(KXX, Y[:, None])(
        -1.0, None, None, KXX[:2]), "t must be >= 0"),
    "sphere_kernel_fn_wrong_shape": (lambda: K.sphere_spectrum(lambda t: np.ones(3), 3, 5),
                                     "kernel_fn must map"),
    "rbf_lengthscale_nan": (lambda: K.gaussian_rbf_spectrum(3, float("nan"), 10),
                            "lengthscale"),
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


def test_deep_kernels_compile_in_constant_time():
    """Layers after the first run as one compiled loop body beyond ``UNROLL_DEPTH``: a
    depth-200 kernel compiles like a shallow one (unrolled, depth 30 took 187 s under load)."""
    start = time.perf_counter()
    deep = K.mlp_kernel(200, W_std=1.2)(X)
    assert time.perf_counter() - start < 20.0
    assert np.isfinite(np.asarray(deep.ntk)).all()


@pytest.mark.parametrize("kw", [{"activation": "erf", "W_std": 1.3, "b_std": 0.2},
                                {"activation": "relu", "parameterization": "standard",
                                 "width": 64, "b_std": 0.1}])
def test_looped_recursion_matches_the_unrolled_one(monkeypatch, kw):
    from theorysim.kernels import _recursion

    depth = _recursion.UNROLL_DEPTH + 3
    looped = K.mlp_kernel(depth, **kw)(X)
    jax.clear_caches()
    monkeypatch.setattr(_recursion, "UNROLL_DEPTH", depth)
    unrolled = K.mlp_kernel(depth, **kw)(X)
    jax.clear_caches()
    for a, b in ((looped.nngp, unrolled.nngp), (looped.ntk, unrolled.ntk)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=1e-7)


def test_arrays_are_kernels_in_gp_inference_and_overflow_is_named():
    """neural-tangents' ``predict.gp_inference`` takes one array for every ``get``; a kernel
    that overflows float32 (b_std = 1e30) says so instead of blaming quadrature."""
    mean = KP.gp_inference(KXX, Y[:, None], diag_reg=1e-3)(get="nngp", k_test_train=KXX[:2])
    ref = KP.gp_inference(_kern(KXX), Y[:, None], diag_reg=1e-3)(get="nngp",
                                                                 k_test_train=_kern(KXX[:2]))
    np.testing.assert_array_equal(np.asarray(mean), np.asarray(ref))
    with pytest.raises(ConvergenceError, match="overflowed the compute dtype") as err:
        K.mlp_kernel(2, b_std=1e30)(X)
    assert "quadrature order" not in str(err.value)


def test_override_admits_a_large_call():
    k = K.mlp_kernel(1)
    with pytest.raises(ValueError, match="max_gb"):
        k(np.ones((3, 2)), max_gb=1e-12)
    assert k(np.ones((3, 2)), max_gb=None).ntk.shape == (3, 3)
