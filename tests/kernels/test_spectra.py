"""Sphere (Funk-Hecke) and Gaussian-RBF spectra, Gram spectra feeding ridge_risk."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests._tolerances import assert_allclose
from theorysim import kernels as K


@pytest.mark.parametrize("d", [2, 3, 10])
def test_linear_kernel_eigenvalue_and_degeneracy(d):
    s = K.sphere_spectrum(lambda t: t, d, 4)
    # x.x' = sum_i x_i x'_i: d modes (degree 1) of eigenvalue E[x_i^2] = 1/d
    assert_allclose(s.eigenvalue, [0, 1 / d, 0, 0, 0], atol=1e-12)
    n2 = (d + 2) * (d - 1) // 2   # harmonic polynomials of degree 2
    assert s.degeneracy[:3].tolist() == [1, d, n2]


@pytest.mark.parametrize("d", [2, 3, 10])
def test_addition_theorem_reconstructs_smooth_kernel(d):
    s = K.sphere_spectrum(np.exp, d, 40)
    t = np.linspace(-1, 1, 21)
    # degree-l rounding errors ~1e-16 are multiplied by N(d, l) ~ 1e9 (d=10, l=40) in the sum
    assert_allclose(s.reconstruct(t), np.exp(t), rtol=1e-8)


def test_relu_ntk_on_sphere_reconstruction_and_gram_match():
    d = 10
    with jax.enable_x64(True):
        k = K.mlp_kernel(2, "relu")
        f = jax.jit(lambda t: k.dot_product(t, q=1.0 / d).ntk)
        s = K.sphere_spectrum(lambda t: np.asarray(f(jnp.asarray(t))), d, 200)
        t = np.linspace(-0.95, 0.95, 9)
        # the NTK is non-analytic at t = +-1 (sqrt(1 - t^2)): the tail beyond l = 200 is ~1e-9
        assert_allclose(s.reconstruct(t), np.asarray(f(jnp.asarray(t))), rtol=1e-7, atol=0)
        assert np.all(s.eigenvalue[:20] > 0)
        # empirical Gram spectrum on the sphere: the top eigenvalue (degree 0) and the mean of
        # the next d (degree 1) agree with Funk-Hecke up to O(1/sqrt(n)) sampling error
        rng = np.random.default_rng(0)
        x = rng.standard_normal((800, d))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        gram = K.gram_spectrum(np.asarray(k(x).ntk), x[:, 0])
    assert abs(gram.eigvals[0] / s.eigenvalue[0] - 1) < 0.02
    assert abs(gram.eigvals[1:1 + d].mean() / s.eigenvalue[1] - 1) < 0.05
    # y = x_1 is a degree-1 harmonic: its power E[x_1^2] = 1/d sits in the d degree-1 modes
    # (eigenvectors 2..d+1); the empirical eigenvectors mix degrees only at O(1/sqrt(n))
    power = gram.target_power
    assert abs(power.sum() / np.mean(x[:, 0] ** 2) - 1) < 1e-10
    assert power[1:1 + d].sum() / power.sum() > 0.95


def test_gaussian_rbf_closed_form():
    lam = K.gaussian_rbf_spectrum(1, 1.0, 60, data_std=1.0)
    # Mercer: sum_k lam_k N_k = E K(x, x) = 1
    assert_allclose((lam.eigenvalue * lam.degeneracy).sum(), 1.0)
    # with l = sigma = 1: a = 1/4, b = 1/2, A = (3 + sqrt 5)/4, B = b/A = 0.381966...
    assert_allclose(lam.eigenvalue[1] / lam.eigenvalue[0], (3 - math.sqrt(5)) / 2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((800, 1))
    gram = K.gram_spectrum(np.exp(-0.5 * (x - x.T) ** 2), x[:, 0])
    # top eigenvalues of K/n estimate the operator's to O(sqrt(2/n)) ~ 5% (one s.d.)
    np.testing.assert_allclose(gram.eigvals[:3], lam.eigenvalue[:3], rtol=0.1)
    d3 = K.gaussian_rbf_spectrum(3, 2.0, 3, data_std=0.5)
    assert d3.degeneracy.tolist() == [1, 3, 6, 10]
    one = K.gaussian_rbf_spectrum(1, 2.0, 3, data_std=0.5)
    assert_allclose(d3.eigenvalue, one.eigenvalue[0] ** 2 * one.eigenvalue)  # product form


def test_gram_spectrum_identities_and_ridge_risk_input():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 3))
    gram = np.exp(-0.5 * ((x[:, None] - x[None]) ** 2).sum(-1))
    y = np.sin(x[:, 0]) + x[:, 1]
    lam, power = K.gram_spectrum(gram, y)
    assert np.all(np.diff(lam) <= 0) and np.all(lam >= 0)
    assert_allclose(lam.sum(), np.trace(gram) / 300)
    # powers (U_k^T y)^2 / n sum to |y|^2 / n (orthogonal U)
    assert_allclose(power.sum(), (y @ y) / 300)
    theory = pytest.importorskip("theorysim.theory")
    risk = theory.ridge_risk(lam, power, np.array([10.0, 100.0]), 1e-3)
    err = np.asarray(risk.error if hasattr(risk, "error") else risk.E_g)
    assert np.all(np.isfinite(err)) and err[1] < err[0]


def test_per_mode_expansion():
    s = K.sphere_spectrum(lambda t: np.exp(t), 4, 3)
    eig, power = s.per_mode([0.0, 2.0, 0.0, 0.0])
    assert eig.size == int(s.degeneracy.sum())
    assert_allclose(power.sum(), 2.0)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="max_degree"):
        K.sphere_spectrum(np.exp, 3, -1)
    with pytest.raises(ValueError, match="d"):
        K.sphere_spectrum(np.exp, 1, 3)
    with pytest.raises(ValueError, match="kernel_fn"):
        K.sphere_spectrum(lambda t: 1.0 / (1.0 - t * t) * np.inf, 3, 3)
    with pytest.raises(ValueError, match="lengthscale"):
        K.gaussian_rbf_spectrum(2, 0.0, 3)
    with pytest.raises(ValueError, match="y"):
        K.gram_spectrum(np.eye(3), np.ones(4))
    with pytest.raises(ValueError, match="K"):
        K.gram_spectrum(np.ones((3, 2)), np.ones(3))
