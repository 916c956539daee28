"""Networks for the stax reference values, written once for any ``stax`` module.

``cases(stax)`` builds the same networks from ``neural_tangents.stax`` (by
``tests/data/make_stax_reference.py`` in the pinned side environment) and from
``theorysim.kernels.stax`` (by ``tests/kernels/test_stax.py``). Plain Python only: this file
must run under both.
"""

from __future__ import annotations

import numpy as np

PARAMS = ("ntk", "standard")


def inputs() -> dict[str, np.ndarray]:
    """The input arrays (float64), drawn from one seeded generator."""
    rng = np.random.default_rng(2024)
    out = {
        "vec": rng.standard_normal((6, 5)), "vec2": rng.standard_normal((4, 5)),
        "img": rng.standard_normal((3, 6, 5, 2)), "img2": rng.standard_normal((2, 6, 5, 2)),
        "seq": rng.standard_normal((3, 7, 4)), "seq2": rng.standard_normal((2, 7, 4)),
        "vol": rng.standard_normal((2, 4, 3, 3, 2)), "vol2": rng.standard_normal((1, 4, 3, 3, 2)),
    }
    for k in ("vec", "vec2"):                       # unit variance per feature: x.x / d = 1
        v = out[k]
        out[k + "n"] = v / np.sqrt((v * v).mean(axis=1, keepdims=True))
    return out


def _activations(stax):
    return {
        "Relu": stax.Relu(), "LeakyRelu": stax.LeakyRelu(0.1), "Abs": stax.Abs(),
        "ABRelu": stax.ABRelu(-0.3, 0.7), "Erf": stax.Erf(),
        "ErfAffine": stax.Erf(0.7, 1.3, 0.2), "Sigmoid_like": stax.Sigmoid_like(),
        "Sin": stax.Sin(), "SinAffine": stax.Sin(0.8, 1.2, 0.3),
        "Cos": stax.Cos(), "Gelu": stax.Gelu(), "Exp": stax.Exp(0.6, 0.5),
        "Gaussian": stax.Gaussian(), "GaussianAffine": stax.Gaussian(0.9, -0.4),
        "Gabor": stax.Gabor(), "Rbf": stax.Rbf(0.7), "Sign": stax.Sign(),
        "Monomial2": stax.Monomial(2), "Monomial3": stax.Monomial(3),
        "Polynomial": stax.Polynomial([0.2, -0.5, 0.3, 0.1]),
        "ExpNormalized": stax.ExpNormalized(),
    }


def cases(stax) -> dict[str, tuple]:
    """name -> (layer triple, input key, second-input key)."""
    out = {}
    for p in PARAMS:
        def dense(n, p=p):
            return stax.Dense(n, 1.3, 0.2, parameterization=p)

        for name, act in _activations(stax).items():
            out[f"mlp_{name}_{p}"] = (stax.serial(dense(64), act, dense(64), act, dense(3)),
                                      "vec", "vec2")
        for deg in (0, 1, 2, 3):
            # one hidden layer: NT's NaN diagonal (its defect) poisons every entry of deeper nets
            out[f"mlp1_RectifiedMonomial{deg}_{p}"] = (
                stax.serial(dense(64), stax.RectifiedMonomial(deg), dense(2)), "vec", "vec2")
        for deg in (2, 3):
            out[f"mlp_Hermite{deg}_{p}"] = (
                stax.serial(stax.Dense(64, 1.0, parameterization=p), stax.Hermite(deg),
                            stax.Dense(1, 1.0, parameterization=p)), "vecn", "vec2n")
        out[f"mlp_nobias_{p}"] = (stax.serial(stax.Dense(16, 1.1, parameterization=p),
                                              stax.Relu(), stax.Dense(1, parameterization=p)),
                                  "vec", "vec2")

        def conv(n, f=(3, 3), s=None, pad="SAME", p=p):
            return stax.Conv(n, f, s, pad, 1.2, 0.1, parameterization=p)

        out[f"cnn_myrtle_{p}"] = (stax.serial(
            conv(16), stax.Relu(), conv(16), stax.Relu(), stax.AvgPool((2, 2)),
            conv(16), stax.Relu(), stax.GlobalAvgPool(), dense(2)), "img", "img2")
        out[f"cnn_flatten_{p}"] = (stax.serial(
            conv(8, (3, 2), (2, 1), "VALID"), stax.Erf(), conv(8, (2, 2), None, "SAME"),
            stax.Gelu(), stax.Flatten(), dense(1)), "img", "img2")
        out[f"cnn_circular_{p}"] = (stax.serial(
            conv(8, (3, 3), (1, 2), "CIRCULAR"), stax.Relu(),
            stax.SumPool((2, 2), (1, 1), "SAME"), conv(8, (2, 3), None, "VALID"), stax.Abs(),
            stax.GlobalSumPool(), dense(1)), "img", "img2")
        out[f"cnn_avgpool_edges_{p}"] = (stax.serial(
            conv(8), stax.Relu(), stax.AvgPool((3, 2), (2, 2), "SAME", True), stax.Flatten(),
            dense(1)), "img", "img2")
        out[f"cnn_avgpool_same_{p}"] = (stax.serial(
            conv(8), stax.Sin(), stax.AvgPool((3, 3), (1, 1), "SAME"), stax.GlobalAvgPool(),
            dense(1)), "img", "img2")
        out[f"cnn_spatial_out_{p}"] = (stax.serial(
            conv(8, (3, 3), None, "SAME"), stax.Relu(), conv(4, (2, 2), None, "VALID")),
            "img", "img2")
        out[f"conv1d_{p}"] = (stax.serial(
            conv(8, (3,), None, "SAME"), stax.Relu(), conv(8, (2,), (2,), "VALID"), stax.Relu(),
            stax.GlobalAvgPool(), dense(1)), "seq", "seq2")
        out[f"conv3d_{p}"] = (stax.serial(
            conv(4, (2, 2, 2), None, "SAME"), stax.Relu(), conv(4, (3, 2, 1), None, "VALID"),
            stax.Erf(), stax.GlobalAvgPool(), dense(1)), "vol", "vol2")
        out[f"resnet_{p}"] = (stax.serial(
            dense(32), stax.FanOut(2),
            stax.parallel(stax.serial(stax.Relu(), dense(32)), stax.Identity()),
            stax.FanInSum(), stax.Relu(), dense(1)), "vec", "vec2")
        out[f"concat_{p}"] = (stax.serial(
            stax.FanOut(3), stax.parallel(dense(16), stax.serial(dense(32), stax.Erf(),
                                                                 dense(8)), dense(24)),
            stax.FanInConcat(), dense(16), stax.Relu(), dense(1)), "vec", "vec2")
        out[f"prod_{p}"] = (stax.serial(
            dense(16), stax.FanOut(2), stax.parallel(stax.Relu(), stax.Erf()), stax.FanInProd(),
            dense(1)), "vec", "vec2")
        out[f"repeat_{p}"] = (stax.serial(
            dense(16), stax.repeat(stax.serial(stax.Relu(), dense(16)), 3), dense(1)),
            "vec", "vec2")
        out[f"cnn_resnet_{p}"] = (stax.serial(
            conv(8), stax.FanOut(2), stax.parallel(stax.serial(stax.Relu(), conv(8)),
                                                   stax.Identity()),
            stax.FanInSum(), stax.LayerNorm(), stax.Relu(), stax.GlobalAvgPool(), dense(1)),
            "img", "img2")
        out[f"layernorm_spatial_{p}"] = (stax.serial(
            conv(8), stax.Relu(), conv(8), stax.LayerNorm(axis=(1, 2, 3)), stax.Relu(),
            stax.Flatten(), dense(1)),
            "img", "img2")
        out[f"dropout_{p}"] = (stax.serial(dense(16), stax.Relu(), stax.Dropout(0.8),
                                           dense(16), stax.Relu(), dense(1)), "vec", "vec2")
        for mech in ("SOFTMAX", "IDENTITY", "ABS", "RELU"):
            out[f"attn_{mech}_{p}"] = (stax.serial(
                dense(16), stax.GlobalSelfAttention(16, 8, 8, 2, True, 1.1, 0.9, 1.2, 0.8,
                                                    0.1, mech),
                stax.LayerNorm(), stax.Relu(), stax.GlobalAvgPool(), dense(1)), "seq", "seq2")
        out[f"attn_IDENTITY_sqrt_{p}"] = (stax.serial(
            dense(16), stax.GlobalSelfAttention(16, 8, 8, 2, False, 1.1, 0.9, 1.2, 0.8, None,
                                                "IDENTITY"),
            stax.Relu(), stax.GlobalAvgPool(), dense(1)), "seq", "seq2")
    out["attn_2d"] = (stax.serial(
        stax.Conv(8, (2, 2), None, "SAME"), stax.GlobalSelfAttention(8, 4, 4, 2, True),
        stax.Erf(), stax.GlobalAvgPool(), stax.Dense(1)), "img", "img2")
    return out

