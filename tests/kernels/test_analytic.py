"""Analytic NNGP/NTK against neural-tangents' frozen values, blocking, dtype and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests._tolerances import assert_allclose
from tests.kernels._golden import golden, kernel_pairs
from theorysim import kernels as K
from theorysim.kernels._activations import _gelu_exact
from theorysim.kernels._recursion import evaluate

CLOSED = {"Relu": "relu", "Erf": "erf", "Gelu": "gelu"}


def _check(kfn, prefix, x="X", x2="X2", rtol=None, atol=None):
    g = golden()
    for ours, ref, key in kernel_pairs(kfn(g[x]), kfn(g[x], g[x2]), prefix):
        assert ours.dtype == np.float64
        assert_allclose(ours, ref, rtol=rtol, atol=atol, err_msg=key)


@pytest.mark.parametrize("family", sorted(CLOSED))
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_closed_forms_match_neural_tangents(family, parameterization):
    with jax.enable_x64(True):
        for depth in (1, 2, 3):
            k = K.mlp_kernel(depth, CLOSED[family], 1.5, 0.1, parameterization, width=512)
            _check(k, f"{family}_d{depth}_{parameterization}")


def test_no_bias_depths_0_to_3():
    with jax.enable_x64(True):
        for depth in range(4):
            _check(K.mlp_kernel(depth, "relu", 1.0, 0.0), f"Relu_nobias_d{depth}")


@pytest.mark.parametrize("name,activation", [
    ("LeakyRelu0.1", K.LeakyRelu(0.1)), ("Abs", K.Abs()), ("Sin", K.Sin()), ("Cos", K.Cos()),
    ("Sign", K.Sign()), ("Abs", "abs"), ("Sin", "sin"), ("Cos", "cos"), ("Sign", "sign"),
])
def test_other_closed_forms(name, activation):
    with jax.enable_x64(True):
        _check(K.mlp_kernel(2, activation, 1.5, 0.1), f"X_{name}_d2_ntk")


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_hermite_quadrature(degree):
    # Quadrature is exact for polynomials; entries as small as 1e-10 (|K| <= 1) lose relative
    # digits to cancellation in the weighted sum, hence atol 1e-12 next to rtol 1e-7.
    with jax.enable_x64(True):
        _check(K.mlp_kernel(2, K.Hermite(degree), 1.0, 0.0), f"X_Hermite{degree}_d2",
               x="Xn", x2="X2n", rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("prefix,fn,depth", [
    ("Gelu_d2_ntk", _gelu_exact, 2),
    pytest.param("Erf_d2_ntk", jax.scipy.special.erf, 2, marks=pytest.mark.slow),
    ("X_Sin_d2_ntk", jnp.sin, 2),
])
def test_callable_quadrature_accuracy(prefix, fn, depth):
    """Any elementwise callable (2-D Gauss-Hermite, order 256): 1e-7 against closed forms."""
    with jax.enable_x64(True):
        _check(K.mlp_kernel(depth, fn, 1.5, 0.1), prefix, rtol=1e-7, atol=1e-12)


def test_float32_without_x64_and_float64_with():
    x = golden()["X"]
    k = K.mlp_kernel(3, "relu", 1.5, 0.1)
    r32 = k(x)
    assert r32.ntk.dtype == jnp.float32
    with jax.enable_x64(True):
        r64 = k(x)
    assert r64.ntk.dtype == jnp.float64
    assert_allclose(r32.ntk, r64.ntk)  # float32 table: rtol 1e-5


def test_blocked_equals_single_block_and_keeps_exact_diagonal():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 6))
    x2 = rng.standard_normal((11, 6))
    with jax.enable_x64(True):
        cfg = K.mlp_kernel(2, "relu", 1.3, 0.2).config
        xj, x2j = jnp.asarray(x), jnp.asarray(x2)
        for a, b in ((xj, xj), (xj, x2j)):
            one = evaluate(cfg, a, b)
            blk = evaluate(cfg, a, b, budget=8 * b.shape[0])   # 8-row blocks, padded
            for u, v in zip(one, blk, strict=True):
                assert_allclose(v, u, rtol=1e-13, atol=0)
        # diagonal of K(X, X) equals the kernel of each point with itself, exactly computed
        full = K.mlp_kernel(2, "relu", 1.3, 0.2)(x)
        single = [K.mlp_kernel(2, "relu", 1.3, 0.2)(x[i:i + 1]).ntk[0, 0] for i in range(3)]
        assert_allclose(np.diag(np.asarray(full.ntk))[:3], np.array(single), rtol=1e-14, atol=0)


def test_dot_product_kernel_matches_matrix_and_jits():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 7))
    x *= np.sqrt(7) / np.linalg.norm(x, axis=1, keepdims=True)         # x.x/d_in = 1
    with jax.enable_x64(True):
        k = K.mlp_kernel(2, "erf", 1.2, 0.3)
        ref = k(x)
        t = (x @ x.T) / 7
        got = jax.jit(lambda tt: k.dot_product(tt, q=1.0).ntk)(jnp.asarray(t))
        assert_allclose(got, ref.ntk)
        assert_allclose(k.dot_product(t).nngp, ref.nngp)


def test_get_only_nngp():
    with jax.enable_x64(True):
        r = K.mlp_kernel(2, "relu")(golden()["X"], get="nngp")
    assert r.ntk is None
    assert_allclose(r.nngp, K.mlp_kernel(2, "relu")(golden()["X"]).nngp, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs,name", [
    (dict(depth=-1), "depth"), (dict(depth=1.5), "depth"), (dict(W_std=0.0), "W_std"),
    (dict(W_std=-1.0), "W_std"), (dict(b_std=-0.1), "b_std"),
    (dict(activation="swish"), "activation"), (dict(activation=lambda x: x - jnp.mean(x)),
                                                "activation"),
    (dict(activation=lambda x: jnp.sum(x)), "activation"),
    (dict(parameterization="mup"), "parameterization"),
    (dict(parameterization="standard"), "width"),
])
def test_bad_arguments_raise(kwargs, name):
    args = dict(depth=2, activation="relu") | kwargs
    with pytest.raises(ValueError, match=name):
        K.mlp_kernel(**args)


def test_bad_inputs_raise():
    k = K.mlp_kernel(1, "relu")
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match="x2"):
        k(x, np.ones((2, 5)))
    with pytest.raises(ValueError, match="x1"):
        k(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="x2"):
        k(x, np.full((2, 4), np.inf))
    with pytest.raises(ValueError, match="x1"):
        k(np.ones(4))
    with pytest.raises(ValueError, match="non-finite"):
        K.mlp_kernel(1, lambda z: jnp.exp(z**4), 1.0)(x)


def test_n20000_fits_in_24_gib_by_compiled_memory_analysis():
    """Compile (do not run) the blocked kernel for n = 20,000 in float64: XLA's own memory
    analysis must put outputs + temporaries + arguments well under 24 GiB."""
    from theorysim.kernels._recursion import _blocked, block_rows

    n = 20_000
    with jax.enable_x64(True):
        cfg = K.mlp_kernel(3, "relu", 1.5, 0.1).config
        x = jax.ShapeDtypeStruct((n, 100), jnp.float64)
        q = jax.ShapeDtypeStruct((n,), jnp.float64)
        compiled = _blocked.lower(cfg, x, x, q, q, ntk=True, rows=block_rows(cfg, n),
                                  symmetric=True).compile()
    mem = compiled.memory_analysis()
    if mem is None:
        pytest.skip("backend gives no memory analysis")
    total = mem.temp_size_in_bytes + mem.output_size_in_bytes + mem.argument_size_in_bytes
    assert mem.output_size_in_bytes >= 2 * n * n * 8   # nngp + ntk
    assert mem.temp_size_in_bytes < 2**30          # block temporaries, not n x n
    assert total < 24 * 2**30
