"""theorysim.kernels.stax against neural-tangents 0.6.5's frozen values (tests/data/
stax_reference.md), mlp_kernel equality, NT defects not copied, dtype rule, bad input."""

from __future__ import annotations

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests._tolerances import assert_allclose
from tests.kernels._stax_cases import cases, inputs
from theorysim import kernels as K
from theorysim.kernels import stax

REF = pathlib.Path(__file__).resolve().parents[1] / "data" / "stax_reference.npz"


@functools.cache
def reference():
    with np.load(REF) as f:
        return {k: f[k] for k in f.files}


@functools.cache
def built():
    return cases(stax)


def _names():
    ref = reference()
    return sorted(k.split("/")[0] for k in ref if k.endswith("/nngp"))


def _compare(name):
    ref = reference()
    (_, _, kernel_fn), a, a2 = built()[name]
    x = ref[f"input/{a}"]
    x2 = ref[f"input/{a2}"]
    worst = 0.0
    with jax.enable_x64(True):
        for suffix, args in (("", (x,)), ("_x12", (x, x2))):
            k = kernel_fn(*args, get=("nngp", "ntk"))
            for part in ("nngp", "ntk"):
                ours = np.asarray(getattr(k, part))
                theirs = ref[f"{name}/{part}{suffix}"]
                assert ours.dtype == np.float64
                assert ours.shape == theirs.shape, (name, part, ours.shape, theirs.shape)
                assert np.all(np.isfinite(ours)), f"{name} {part}{suffix} not finite"
                ok = np.isfinite(theirs)       # NT's NaN (RectifiedMonomial diagonal) skipped
                scale = np.max(np.abs(theirs[ok]))
                diag = np.zeros(ours.shape, bool)
                if not suffix:
                    idx = np.arange(ours.shape[0])
                    diag[idx, idx] = True
                # NT's own error on the diagonal of K(X, X): it takes the angle as
                # atan2(sqrt(k11 k22 - k12^2), k12) with a rounding-noise gap ~eps k^2, i.e. an
                # angle ~sqrt(eps) ~ 1e-8 where the exact one is 0, shifting kinked dual
                # derivatives (ReLU: (pi - theta)/2pi) by ~1e-9 relative. Hence 1e-8 there.
                off = ok & ~diag
                assert_allclose(ours[off], theirs[off], rtol=1e-10, atol=1e-12 * scale,
                                err_msg=f"{name} {part}{suffix}")
                assert_allclose(ours[ok & diag], theirs[ok & diag], rtol=1e-8,
                                atol=1e-12 * scale, err_msg=f"{name} {part}{suffix} diagonal")
                worst = max(worst, float(np.max(np.abs(ours[off] - theirs[off])) / scale))
    return worst


def test_reference_file_covers_every_case():
    failed = json.loads(str(reference()["failed"]))
    assert not failed, failed
    assert set(_names()) == set(built()), set(built()) ^ set(_names())
    assert len(_names()) >= 90


#: one case per layer family in the default suite; the full sweep (97 cases) is marked slow
DEFAULT = {"mlp_Relu_ntk", "mlp_Erf_standard", "mlp1_RectifiedMonomial2_ntk", "mlp_Gabor_ntk",
           "mlp_Polynomial_standard", "mlp_Hermite3_ntk", "cnn_myrtle_ntk",
           "cnn_flatten_standard", "cnn_circular_ntk", "cnn_avgpool_edges_ntk",
           "cnn_spatial_out_standard", "conv1d_ntk", "conv3d_standard", "resnet_standard",
           "concat_ntk", "prod_standard", "repeat_ntk", "cnn_resnet_ntk",
           "layernorm_spatial_ntk", "dropout_ntk", "attn_SOFTMAX_ntk", "attn_RELU_standard",
           "attn_IDENTITY_sqrt_ntk", "attn_2d"}


@pytest.mark.parametrize("name", [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow)
                                  for n in sorted(cases(stax))])
def test_matches_neural_tangents(name):
    """Every layer x activations x both parameterisations: 1e-10 relative, float64."""
    assert _compare(name) < 1e-10


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("activation,name", [("relu", "Relu"), ("erf", "Erf"),
                                             ("gelu", "Gelu"), ("abs", "Abs")])
def test_mlp_kernel_and_stax_share_one_implementation(activation, name, parameterization):
    x = inputs()["vec"]
    x2 = inputs()["vec2"]
    p = parameterization
    layers = []
    for _ in range(3):
        layers += [stax.Dense(64, 1.3, 0.2, parameterization=p), getattr(stax, name)()]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, 1.3, 0.2, parameterization=p))
    mlp = K.mlp_kernel(3, activation, 1.3, 0.2, p, width=64)
    with jax.enable_x64(True):
        for args in ((x,), (x, x2)):
            a, b = kernel_fn(*args), mlp(*args)
            np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-12, atol=1e-14)


def test_dtype_rule():
    x = inputs()["img"]
    _, _, kernel_fn = stax.serial(stax.Conv(4, (2, 2)), stax.Relu(), stax.Flatten(),
                                  stax.Dense(1))
    k32 = kernel_fn(x)
    assert k32.ntk.dtype == jnp.float32 and isinstance(k32.ntk, jax.Array)
    with jax.enable_x64(True):
        k64 = kernel_fn(x)
    assert k64.ntk.dtype == jnp.float64
    assert_allclose(k32.ntk, k64.ntk)


def test_rectified_monomial_diagonal_is_finite():
    """NT returns NaN on the diagonal of K(X, X) (0/0 at angle zero); we return the exact
    value (2n-1)!! k^n / 2 there."""
    x = inputs()["vec"]
    for n in (1, 2, 3):
        _, _, kernel_fn = stax.serial(stax.Dense(8), stax.RectifiedMonomial(n))
        with jax.enable_x64(True):
            k = np.asarray(kernel_fn(x, get="nngp"))
        q = np.sum(x * x, 1) / x.shape[1]
        dfact = np.prod(np.arange(2 * n - 1, 0, -2))
        np.testing.assert_allclose(np.diag(k), dfact * q**n / 2, rtol=1e-13)
    ref = reference()
    assert np.isnan(np.diag(ref["mlp1_RectifiedMonomial2_ntk/nngp"])).all()  # NT's defect


def test_relu_diagonal_exact_in_float32():
    """NT's float32 ReLU kernels carry ~1e-4 noise on the diagonal (arccos of 1 - eps); here
    the angle is exactly zero, so the ReLU map returns exactly half its float32 input variance
    (to the rounding of pi k / 2 pi, 1 ulp), at any scale of the inputs."""
    x = np.random.default_rng(0).standard_normal((50, 30)) * 10
    _, _, dense = stax.Dense(8, W_std=2.0)
    _, _, kernel_fn = stax.serial(stax.Dense(8, W_std=2.0), stax.Relu())
    k = np.asarray(kernel_fn(x, get="nngp"))
    k_in = np.asarray(dense(x, get="nngp"))
    assert k.dtype == np.float32 and k_in.dtype == np.float32
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(np.diag(k), np.diag(k_in) / 2, rtol=eps, atol=0)
    # against the float64 closed form: only the float32 rounding of the 30-term input
    # covariance x.x/d remains (~sqrt(30) eps); NT's arccos noise would be ~1e-4 here
    q = 4.0 * np.sum(x * x, 1) / x.shape[1]
    np.testing.assert_allclose(np.diag(k), q / 2, rtol=8 * eps)


@pytest.mark.slow  # suite budget: ~20-70 s on 2 cores
def test_large_W_std_stays_finite():
    """NT issue #36: deep ReLU networks with large W_std overflow to NaN/inf in float32; the
    kernel here grows as (W_std^2/2)^depth and stays finite while it is representable."""
    x = inputs()["vec"]
    layers = []
    for _ in range(20):
        layers += [stax.Dense(8, W_std=8.0), stax.Relu()]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=8.0))
    k = kernel_fn(x)
    assert np.all(np.isfinite(np.asarray(k.nngp))) and np.all(np.isfinite(np.asarray(k.ntk)))
    with jax.enable_x64(True):
        k64 = kernel_fn(x)
    assert_allclose(k.nngp, k64.nngp, rtol=1e-4)  # 20 layers of float32 rounding


def test_diagonal_spatial_chosen_automatically():
    x = inputs()["img"]
    _, _, flat = stax.serial(stax.Conv(4, (3, 3), padding="SAME"), stax.Relu(),
                             stax.Flatten(), stax.Dense(1))
    _, _, pool = stax.serial(stax.Conv(4, (3, 3), padding="SAME"), stax.Relu(),
                             stax.GlobalAvgPool(), stax.Dense(1))
    assert flat.layer.needs_full(True) is False
    assert pool.layer.needs_full(True) is True
    _, _, spatial = stax.serial(stax.Conv(4, (3, 3), padding="SAME"), stax.Relu())
    with jax.enable_x64(True):
        full = np.asarray(spatial(x, get="nngp"))
        diag = np.asarray(spatial(x, get="nngp", diagonal_spatial=True))
    assert full.shape == (3, 3, 6, 6, 5, 5) and diag.shape == (3, 3, 6, 5)
    np.testing.assert_allclose(np.einsum("abiijj->abij", full), diag, rtol=1e-13)
    # memory follows the choice: on 64 x 64 images the full covariance of the Flatten network
    # would be 2 x 2 x 64^4 floats (0.25 GiB); the per-position one (128 KiB) fits a 1 MiB cap
    big = np.random.default_rng(1).standard_normal((2, 64, 64, 1))
    k = flat(big, get="nngp", max_gb=2.0**-10)
    assert k.shape == (2, 2) and np.all(np.isfinite(np.asarray(k)))
    with pytest.raises(ValueError, match="max_gb"):
        pool(big, get="nngp", max_gb=2.0**-10)


def test_nonlinearity_on_raw_inputs_is_refused():
    with pytest.raises(ValueError, match="Relu needs Gaussian inputs"):
        stax.serial(stax.Relu(), stax.Dense(1))[2](inputs()["vec"])


@pytest.mark.parametrize("make,match", [
    (lambda: stax.Dense(0), "out_dim"),
    (lambda: stax.Dense(4, W_std=0.0), "W_std"),
    (lambda: stax.Dense(4, W_std=float("nan")), "W_std"),
    (lambda: stax.Dense(4, b_std=float("inf")), "b_std"),
    (lambda: stax.Dense(4, parameterization="mup"), "parameterization"),
    (lambda: stax.Conv(4, (3, 3), padding="FULL"), "padding"),
    (lambda: stax.Conv(4, (3, 3), strides=(0, 1)), "strides"),
    (lambda: stax.Conv(4, (3, 3), W_std=-1.0), "W_std"),
    (lambda: stax.AvgPool((2, 2), padding="same_ish"), "padding"),
    (lambda: stax.MaxPool((2, 2)), "monte_carlo_kernel"),
    (lambda: stax.Dropout(0.0), "rate"),
    (lambda: stax.FanOut(0), "num"),
    (lambda: stax.repeat(stax.Dense(4), -1), "n"),
    (lambda: stax.GlobalSelfAttention(4, 4, 4, 0), "n_heads"),
    (lambda: stax.GlobalSelfAttention(4, 4, 4, 1, attention_mechanism="TANH"),
     "attention_mechanism"),
    (lambda: stax.serial(stax.Dense(4), object()), "serial argument 1"),
])
def test_bad_layer_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("net,x,match", [
    (lambda: stax.serial(stax.Conv(4, (7, 3)), stax.Flatten()), "img", "filter_shape"),
    (lambda: stax.serial(stax.Conv(4, (3, 3)), stax.Flatten()), "seq", "spatial axes"),
    (lambda: stax.serial(stax.Dense(4), stax.AvgPool((9, 2))), "img", "window_shape"),
    (lambda: stax.serial(stax.Dense(4), stax.GlobalSelfAttention(4, 4, 4, 1, False)), "seq",
     "no closed-form"),
    (lambda: stax.serial(stax.Dense(4), stax.FanOut(2),
                         stax.parallel(stax.Dense(3), stax.Dense(5)), stax.FanInSum()),
     "vec", "channel counts differ"),
    (lambda: stax.serial(stax.Dropout(0.5), stax.Dense(1)), "vec", "input layer"),
])
def test_bad_networks_fail_before_compute(net, x, match):
    _, _, kernel_fn = net()
    with pytest.raises(ValueError, match=match):
        kernel_fn(inputs()[x])


def test_bad_inputs():
    _, _, kernel_fn = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
    x = inputs()["vec"]
    with pytest.raises(ValueError, match="x1"):
        kernel_fn(np.where(np.eye(6, 5) > 0, np.nan, x))
    with pytest.raises(ValueError, match="x2"):
        kernel_fn(x, x[:, :3])
    with pytest.raises(ValueError, match="x1"):
        kernel_fn(None)
    with pytest.raises(ValueError, match="get"):
        kernel_fn(x, get="cntk")
    with pytest.raises(ValueError, match="x1"):
        kernel_fn(np.ones(5))


@pytest.mark.parametrize("cross", [False, True], ids=["K(X,X)", "K(X1,X2)"])
@pytest.mark.parametrize("net,diagonal_spatial", [("pooled", False), ("spatial", True)])
def test_tiled_kernel_equals_the_whole_batch_call(monkeypatch, net, diagonal_spatial, cross):
    """K(X, X) from tiles of example pairs (diagonal tiles symmetric, the ones above by the
    cross map, transposed into place; N not a multiple of the tile) and K(X1, X2) from
    rectangular cross tiles (N1, N2 not multiples of the tile; cov1/cov2 from the tiles)
    equal the whole-batch call: pooled readout with Dropout's same-example term; a spatial
    output (diagonal layout here, the full layout's transposition is in the pooled net's
    tiles)."""
    from theorysim.kernels.stax import _core

    def make():
        conv = stax.Conv(6, (3, 3), padding="SAME", W_std=1.3, b_std=0.2)
        if net == "pooled":
            return stax.serial(conv, stax.Relu(), stax.Dropout(0.8),
                               stax.AvgPool((2, 2), (2, 2)), conv, stax.Erf(),
                               stax.GlobalAvgPool(), stax.Dense(1))[2]
        return stax.serial(conv, stax.Relu(), conv)[2]

    rng = np.random.default_rng(5)
    x = rng.standard_normal((11, 4, 4, 2))
    x2 = rng.standard_normal((6, 4, 4, 2)) if cross else None
    get = ("nngp", "ntk", "cov1", "cov2")
    with jax.enable_x64(True):
        whole = make()(x, x2, get=get, diagonal_spatial=diagonal_spatial)
        monkeypatch.setattr(_core, "TILE_ELEMENTS", 4 * 256)     # tiles of 4 examples
        kfn = make()
        tiled = kfn(x, x2, get=get, diagonal_spatial=diagonal_spatial)
    assert [key[-1] for key in kfn._cache if key[0] == "tiled"] == [not cross]
    for n in get:
        assert getattr(whole, n).shape == getattr(tiled, n).shape
        assert_allclose(getattr(tiled, n), getattr(whole, n), rtol=1e-13, atol=1e-15)


def test_init_fn_accepts_the_batch_placeholder():
    """neural-tangents' ``input_shape`` may have -1 as batch size: the parameters are those of
    any batch size, the output shape keeps -1 (FanOut: in every branch); -1 elsewhere is
    refused."""
    init, apply, _ = stax.serial(stax.Conv(4, (3, 3), padding="SAME"), stax.Relu(),
                                 stax.Flatten(), stax.Dense(2))
    key = jax.random.key(0)
    out, params = init(key, (-1, 8, 8, 1))
    out3, params3 = init(key, (3, 8, 8, 1))
    assert out == (-1, 2) and out3 == (3, 2)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params3), strict=True):
        np.testing.assert_array_equal(a, b)
    assert apply(params, np.ones((5, 8, 8, 1))).shape == (5, 2)
    assert stax.serial(stax.Dense(4), stax.FanOut(2))[0](key, (-1, 3))[0] == [(-1, 4), (-1, 4)]
    with pytest.raises(ValueError, match="input_shape"):
        init(key, (3, 8, -1, 1))
    with pytest.raises(ValueError, match="input_shape"):
        init(key, (-2, 8, 8, 1))


def test_size_check_counts_the_returned_kernel_and_one_tile_not_the_spatial_intermediates():
    """A pooled readout returns one entry per example pair: 1,792 8 x 8 digits (the Myrtle
    full preset) pass the 16 GiB check; unpooled, the same call returns 4,096 per pair and is
    refused; 2,000 32 x 32 images are refused for their work (4e12 entries), not memory."""
    _, _, pool = stax.serial(stax.Conv(4, (3, 3), padding="SAME"), stax.Relu(),
                             stax.GlobalAvgPool(), stax.Dense(1))
    _, _, spatial = stax.serial(stax.Conv(4, (3, 3), padding="SAME"), stax.Relu())
    assert pool._pair_entries((5, 8, 8, 1), True, True, np.float64) == 1
    assert spatial._pair_entries((5, 8, 8, 1), True, True, np.float64) == 8**4
    with pytest.raises(ValueError, match="max_gb"):
        spatial(np.zeros((1792, 8, 8, 1)), get="nngp")
    with pytest.raises(ValueError, match="x1 .* too large"):
        pool(np.zeros((2000, 32, 32, 3)), get="nngp")
