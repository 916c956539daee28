"""Quadrature kernels follow the solver contract: an error estimate from two orders, flagged or
raised when it exceeds the tolerance; closed forms report residual 0."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests._tolerances import assert_allclose
from theorysim import kernels as K
from theorysim.contract import ConvergenceError
from theorysim.kernels import stax

X = np.random.default_rng(3).standard_normal((5, 4))
XN = X / np.sqrt(np.mean(X * X, axis=1, keepdims=True))     # x.x / d = 1


def _gelu(x):
    return 0.5 * x * (1.0 + jax.scipy.special.erf(x / np.sqrt(2.0)))


def test_smooth_callable_converges_to_closed_form():
    """Gelu by quadrature at pre-activation variance 10 (unit-norm inputs, W_std = 3,
    b_std = 1): error estimate below 1e-10 and the value within 1e-10 of the closed form."""
    _, _, quad = stax.serial(stax.Dense(8, 3.0, 1.0), stax.Elementwise(_gelu), stax.Dense(1))
    _, _, closed = stax.serial(stax.Dense(8, 3.0, 1.0), stax.Gelu(), stax.Dense(1))
    with jax.enable_x64(True):
        k = quad(XN)
        ref = closed(XN)
    assert k.converged and k.residual < 1e-10 and k.iterations == 256
    assert_allclose(k.nngp, ref.nngp, rtol=1e-10)
    assert_allclose(k.ntk, ref.ntk, rtol=1e-10)
    assert ref.converged and ref.residual == 0.0 and ref.iterations == 0


def test_too_few_nodes_are_flagged_or_raised():
    _, _, kfn = stax.serial(stax.Dense(8), stax.ElementwiseNumerical(jax.nn.relu, 16),
                            stax.Dense(1))
    with jax.enable_x64(True):
        with pytest.raises(ConvergenceError, match="quadrature error estimate") as err:
            kfn(X)
        assert err.value.result.converged is False
        k = kfn(X, throw=False)
    assert not k.converged and np.isfinite(k.residual) and k.residual > 1e-4
    assert k.iterations == 16


def test_mlp_kernel_callable_contract():
    with jax.enable_x64(True):
        k = K.mlp_kernel(2, jnp.sin, 1.5, 0.1)(X)
        assert k.converged and k.residual < 1e-10
        flagged = K.mlp_kernel(2, jax.nn.relu)(X, throw=False)
        assert not flagged.converged
        with pytest.raises(ConvergenceError):
            K.mlp_kernel(2, jax.nn.relu)(X)
        loose = K.mlp_kernel(2, jax.nn.relu)(X, tol=1e-2)
    assert loose.converged
    # the estimate tracks the true error of the kinked callable (measured 1.4e-3 vs 1.5e-3)
    with jax.enable_x64(True):
        exact = K.mlp_kernel(2, "relu")(X)
    rel = np.max(np.abs(loose.ntk - exact.ntk)) / np.max(np.abs(exact.ntk))
    assert loose.residual / 3 < rel < 3 * loose.residual


def test_user_closed_forms_via_nngp_fn():
    """``Elementwise(fn, nngp_fn)``: the user's closed form is used as it is (no quadrature,
    residual 0), ``d_nngp_fn`` defaults to its derivative in ``cov12`` by autodiff."""
    def nngp_fn(cov12, var1, var2):
        return jnp.sin(cov12)           # not a real activation; exercises the plumbing

    def d_nngp_fn(cov12, var1, var2):
        return 2.0 * jnp.cos(cov12)     # deliberately not the derivative: it must be used

    _, _, kfn = stax.serial(stax.Dense(4), stax.Elementwise(jnp.tanh, nngp_fn), stax.Dense(1))
    _, _, given = stax.serial(stax.Dense(4), stax.Elementwise(jnp.tanh, nngp_fn, d_nngp_fn),
                              stax.Dense(1))
    with jax.enable_x64(True):
        k = kfn(X)
        k2 = given(X)
        base = np.asarray(stax.Dense(4)[2](X, get="nngp"))
    assert k.converged and k.residual == 0.0 and k.iterations == 0
    assert_allclose(k.nngp, np.sin(base))
    # Dense(1) after the map: ntk = nngp + Theta_in * d_nngp, Theta_in = base (ntk layer)
    assert_allclose(k.ntk, np.sin(base) + np.cos(base) * base)
    assert_allclose(k2.ntk, np.sin(base) + 2.0 * np.cos(base) * base)


def test_throw_must_be_bool():
    with pytest.raises(ValueError, match="throw"):
        stax.Dense(1)[2](X, throw="yes")
    with pytest.raises(ValueError, match="throw"):
        K.mlp_kernel(1)(X, throw=1)
