"""Empirical NTK/NNGP against neural-tangents' frozen values; Monte-Carlo vs analytic kernels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests._tolerances import assert_allclose
from tests.kernels._golden import golden
from theorysim import kernels as K


def _golden_net(param):
    g = golden()
    params = [{"W": jnp.asarray(g[f"emp_{param}_W{i}"]), "b": jnp.asarray(g[f"emp_{param}_b{i}"])}
              for i in range(3)]
    return K.DenseMLP((16, 16), K.Relu(), 3, 1.5, 0.1, param), params


@pytest.mark.parametrize("param", ["ntk", "standard"])
@pytest.mark.parametrize("implementation", ["jacobian", "ntvp", "per_layer"])
def test_empirical_ntk_matches_neural_tangents(param, implementation):
    g = golden()
    with jax.enable_x64(True):
        mlp, params = _golden_net(param)
        assert_allclose(mlp(params, g["X"]), g[f"emp_{param}_fX"])
        # a plain function for the generic implementations, the DenseMLP for per_layer
        fn = mlp if implementation == "per_layer" else (lambda p, x: mlp(p, x))
        traced = K.empirical_ntk(fn, params, g["X"], g["X2"], implementation=implementation)
        full = K.empirical_ntk(fn, params, g["X"], g["X2"], implementation=implementation,
                               trace_axes=())
    assert traced.shape == (8, 6) and full.shape == (8, 6, 3, 3)
    assert_allclose(traced, g[f"emp_{param}_ntk"])
    assert_allclose(full, g[f"emp_{param}_ntk_full"])


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_empirical_nngp_matches_neural_tangents(param):
    g = golden()
    with jax.enable_x64(True):
        mlp, params = _golden_net(param)
        assert_allclose(K.empirical_nngp(mlp, params, g["X"], g["X2"]), g[f"emp_{param}_nngp"])
        full = K.empirical_nngp(mlp, params, g["X"], g["X2"], trace_axes=())
    assert_allclose(np.trace(np.asarray(full), axis1=2, axis2=3) / 3, g[f"emp_{param}_nngp"])


class _Net(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(5, 8, rngs=rngs)
        self.l2 = nnx.Linear(8, 2, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


def test_nnx_model_all_implementations_agree():
    x = golden()["X"].astype(np.float32)
    model = _Net(nnx.Rngs(0))
    a = K.empirical_ntk(model, None, x, implementation="jacobian")
    b = K.empirical_ntk(model, None, x, implementation="ntvp")
    assert a.shape == (8, 8)
    assert_allclose(b, a, rtol=1e-4, atol=1e-5)  # float32 network, different summation orders
    # explicit NTK of a 2-layer tanh net: h.h' (1 + g.g') summed per layer
    w1, b1 = model.l1.kernel[...], model.l1.bias[...]
    w2 = model.l2.kernel[...]
    h = jnp.tanh(x @ w1 + b1)
    dh = 1 - h**2
    ref = (h @ h.T + 1.0) + (x @ x.T + 1.0) * ((dh[:, None, :] * dh[None, :, :])
                                              @ (w2 * w2).mean(axis=1))
    assert_allclose(a, ref, rtol=1e-4, atol=1e-5)  # float32


def test_monte_carlo_matches_analytic_depth1():
    """Depth 1: E over networks of the empirical kernels is the analytic kernel at any width."""
    g = golden()
    with jax.enable_x64(True):
        mlp = K.DenseMLP((256,), K.Relu(), 1, 1.5, 0.1)
        mc = K.monte_carlo_kernel(mlp, g["X"], g["X2"], key=jax.random.key(0), n_samples=256,
                                  batch=64)
        exact = K.mlp_kernel(1, "relu", 1.5, 0.1)(g["X"], g["X2"])
    for est, sem, ref in ((mc.nngp, mc.nngp_sem, exact.nngp), (mc.ntk, mc.ntk_sem, exact.ntk)):
        z = np.abs(np.asarray(est) - np.asarray(ref)) / np.asarray(sem)
        # 48 entries: P(max |z| > 4.5) ~ 3e-4 under the CLT
        assert z.max() < 4.5, z.max()


def test_monte_carlo_matches_analytic_depth2_erf():
    """Depth 2: O(1/width) bias on top of the sampling error; width 512 keeps it << 4.5 sem."""
    g = golden()
    with jax.enable_x64(True):
        mlp = K.DenseMLP((512, 512), K.Erf(), 1, 1.5, 0.1)
        mc = K.monte_carlo_kernel(mlp, g["X"], g["X2"], key=jax.random.key(1), n_samples=128,
                                  batch=32)
        exact = K.mlp_kernel(2, "erf", 1.5, 0.1)(g["X"], g["X2"])
    for est, sem, ref in ((mc.nngp, mc.nngp_sem, exact.nngp), (mc.ntk, mc.ntk_sem, exact.ntk)):
        z = np.abs(np.asarray(est) - np.asarray(ref)) / np.asarray(sem)
        assert z.max() < 4.5, z.max()


def test_bad_input_raises():
    mlp, params = _golden_net("ntk")
    x = golden()["X"]
    with pytest.raises(ValueError, match="implementation"):
        K.empirical_ntk(mlp, params, x, implementation="fast")
    with pytest.raises(ValueError, match="per_layer"):
        K.empirical_ntk(lambda p, z: mlp(p, z), params, x, implementation="per_layer")
    with pytest.raises(ValueError, match="x2"):
        K.empirical_ntk(mlp, params, x, np.ones((2, 4)))
    with pytest.raises(ValueError, match="x1"):
        K.empirical_ntk(mlp, params, np.full((2, 5), np.nan))
    with pytest.raises(ValueError, match="trace_axes"):
        K.empirical_ntk(mlp, params, x, trace_axes=(0,))
    with pytest.raises(ValueError, match="apply_fn"):
        K.empirical_ntk(lambda p, z: mlp(p, z)[:, 0], params, x, implementation="jacobian")
    with pytest.raises(ValueError, match="n_samples"):
        K.monte_carlo_kernel(mlp, x, key=jax.random.key(0), n_samples=10, batch=4)
