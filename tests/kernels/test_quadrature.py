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
    _, _, kfn = stax.serial(stax.Dense(8, 3.0, 1.0), stax.ElementwiseNumerical(jnp.tanh, 4),
                            stax.Dense(1))
    with jax.enable_x64(True):
        with pytest.raises(ConvergenceError, match="quadrature error estimate") as err:
            kfn(XN)
        assert err.value.result.converged is False
        k = kfn(XN, throw=False)
    assert not k.converged and np.isfinite(k.residual) and k.residual > 1e-6
    assert k.iterations == 4


def test_kinked_callable_at_a_low_deg_is_integrated_to_the_default_tolerance():
    """neural-tangents accepts any ``deg``; a kinked fn at ``deg=8`` gets the split rule's
    minimum order (128: 16 nodes per piece) and matches the closed form to 1e-10."""
    _, _, quad = stax.serial(stax.Dense(8, 3.0, 1.0), stax.ElementwiseNumerical(jax.nn.relu, 8),
                             stax.Dense(1))
    _, _, closed = stax.serial(stax.Dense(8, 3.0, 1.0), stax.Relu(), stax.Dense(1))
    with jax.enable_x64(True):
        k, ref = quad(XN), closed(XN)
    assert k.converged and k.residual < 1e-10 and k.iterations == 128
    assert_allclose(k.nngp, ref.nngp, rtol=1e-10)
    assert_allclose(k.ntk, ref.ntk, rtol=1e-10)


def _shifted_kinks(x):
    return jnp.maximum(x - 0.3, 0.0) + 0.5 * jnp.abs(x + 1.2)


def _shifted_kinks_reference(k11, k22, k12):
    """E[phi(u) phi(v)] and E[phi'(u) phi'(v)] of ``_shifted_kinks``: the exact Gaussian
    expectations of relu/abs conditional on u, then adaptive quadrature over u (scipy, split
    at the kinks of phi(u) and of the conditional means): an independent reference."""
    from scipy.integrate import quad
    from scipy.special import ndtr

    s1, s2 = np.sqrt(k11), np.sqrt(k22)
    rho = k12 / (s1 * s2)
    sd = s2 * np.sqrt(1 - rho**2)

    def relu_mean(m, c):          # E[max(v - c, 0)], v ~ N(m, sd^2)
        t = (m - c) / sd
        return (m - c) * ndtr(t) + sd * np.exp(-0.5 * t * t) / np.sqrt(2 * np.pi)

    def nngp(z):
        u, mu = s1 * z, s2 * rho * z
        ev = relu_mean(mu, 0.3) + 0.5 * (2 * relu_mean(mu, -1.2) - (mu + 1.2))
        return (max(u - 0.3, 0) + 0.5 * abs(u + 1.2)) * ev

    def dphi(z):
        u, mu = s1 * z, s2 * rho * z
        dv = ndtr((mu - 0.3) / sd) + 0.5 * (2 * ndtr((mu + 1.2) / sd) - 1)
        return ((u > 0.3) + 0.5 * np.sign(u + 1.2)) * dv

    pts = sorted({c / s1 for c in (-1.2, 0.3)} | {c / (s2 * rho) for c in (-1.2, 0.3)})
    return [quad(lambda z, f=f: f(z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi), -12, 12,
                 points=[p for p in pts if abs(p) < 12], epsabs=1e-15, epsrel=1e-13,
                 limit=400)[0] for f in (nngp, dphi)]


def test_kinked_callables_split_at_located_kinks():
    """Kinks are located numerically; splitting the Gaussian integral there gives geometric
    convergence for both maps (Gauss-Hermite: 1e-3 for ReLU's derivative map at 256 nodes),
    with an error estimate that bounds the true error."""
    assert stax.ElementwiseNumerical(_shifted_kinks, 64)[2].layer.activation.kinks == (-1.2, 0.3)
    with jax.enable_x64(True):
        a = K.Elementwise(_shifted_kinks)
        for k11, k22, k12 in [(1.0, 1.0, 0.4), (2.5, 0.7, -0.9), (0.6, 3.0, 1.2),
                              (1.0, 1.0, 0.999999)]:
            nngp, dphi = a.dual(jnp.asarray(k11), jnp.asarray(k22), jnp.asarray(k12))
            ref = _shifted_kinks_reference(k11, k22, k12)
            np.testing.assert_allclose([float(nngp), float(dphi)], ref, rtol=1e-9)
        # the diagonal (rho = 1): 1-D integrals, adaptive quadrature split at the kinks
        from scipy.integrate import quad

        nngp, dphi = a.dual(jnp.asarray(1.7), jnp.asarray(1.7), jnp.asarray(1.7))
        s = np.sqrt(1.7)
        pts = (-1.2 / s, 0.3 / s)
        for ours, g in ((nngp, lambda z: float(_shifted_kinks(s * z)) ** 2),
                        (dphi, lambda z: ((s * z > 0.3) + 0.5 * np.sign(s * z + 1.2)) ** 2)):
            ref = quad(lambda z, g=g: g(z) * np.exp(-z * z / 2) / np.sqrt(2 * np.pi), -12, 12,
                       points=pts, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
            np.testing.assert_allclose(float(ours), ref, rtol=1e-10)


@pytest.mark.slow
def test_kinked_relu_callable_converges_with_an_error_estimate_that_bounds_it():
    """relu as a callable through mlp_kernel and stax: converged at the default tolerance
    (1e-10), and the estimate bounds the true error at low order as well as at the default."""
    with jax.enable_x64(True):
        exact = K.mlp_kernel(2, "relu")(X)
        for order in (64, 256):
            k = K.mlp_kernel(2, K.Elementwise(jax.nn.relu, order=order))(X, throw=False)
            true = max(np.max(np.abs(k.ntk - exact.ntk)) / np.max(np.abs(exact.ntk)),
                       np.max(np.abs(k.nngp - exact.nngp)) / np.max(np.abs(exact.nngp)))
            assert true <= max(k.residual, 1e-13), (order, true, k.residual)
            assert k.converged == (order == 256)
        assert true < 1e-12 and k.residual < 1e-10
        _, _, quad = stax.serial(stax.Dense(8, 3.0, 1.0), stax.Elementwise(jax.nn.relu),
                                 stax.Dense(1))
        _, _, closed = stax.serial(stax.Dense(8, 3.0, 1.0), stax.Relu(), stax.Dense(1))
        q, c = quad(XN), closed(XN)
    assert q.converged and q.residual < 1e-10
    assert_allclose(q.ntk, c.ntk, rtol=1e-10)
    assert_allclose(q.nngp, c.nngp, rtol=1e-10)


def test_mlp_kernel_callable_contract():
    with jax.enable_x64(True):
        k = K.mlp_kernel(2, jnp.sin, 1.5, 0.1)(X)
        assert k.converged and k.residual < 1e-10
        low = K.Elementwise(jax.nn.relu, order=64)
        flagged = K.mlp_kernel(2, low)(X, throw=False)
        assert not flagged.converged
        with pytest.raises(ConvergenceError):
            K.mlp_kernel(2, low)(X)
        loose = K.mlp_kernel(2, low)(X, tol=1e-2)
    assert loose.converged
    with pytest.raises(ValueError, match="order must be >= 32"):
        K.Elementwise(jax.nn.relu, order=8)


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
