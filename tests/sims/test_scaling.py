"""Width scalings of the abc presets, and the NTK preset against linearised kernel dynamics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theorysim.sims import ModelConfig, TrainConfig, make_model, train, with_params

# Initial output variance ~ N^a; preactivation change after one SGD step ~ N^r per hidden layer
# (h^1, h^2) and for the output f (THEORY / abc table in sims/_param.py).
INIT_VAR = {"sp": 0.0, "ntk": 0.0, "mean_field": -1.0, "mup": -1.0}
UPDATE = {"sp": (-0.5, 0.5, 1.0), "ntk": (-0.5, -0.5, 0.0), "mean_field": (0.0, 0.0, 0.0),
          "mup": (0.0, 0.0, 0.0)}
QUICK_WIDTHS = (64, 256, 1024)
FULL_WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)


def _slope(widths, values):
    return np.polyfit(np.log(widths), np.log(values), 1)[0]


def _init_variance_exponent(preset, widths, seeds):
    # tanh + orthogonal inputs: outputs at different inputs are uncorrelated, so every
    # (seed, input) pair is an independent sample of f; 8 x 32 = 256 samples give a ~9% error
    # on each variance and ~0.03 on the fitted slope.
    d = 32
    x = jnp.sqrt(d) * jnp.eye(d)
    var = []
    for n in widths:
        cfg = ModelConfig(width=n, depth=2, parameterization=preset, activation="tanh")

        @jax.jit
        def out(key, cfg=cfg):
            return make_model(cfg, d, key=key)(x)

        f = np.concatenate([np.asarray(out(jax.random.key(s))) for s in range(seeds)])
        var.append(np.mean(f**2))
    return _slope(widths, var)


@pytest.mark.parametrize("preset", list(INIT_VAR))
def test_init_output_variance_quick(preset):
    assert abs(_init_variance_exponent(preset, QUICK_WIDTHS, 8) - INIT_VAR[preset]) < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(INIT_VAR))
def test_init_output_variance_full(preset):
    assert abs(_init_variance_exponent(preset, FULL_WIDTHS, 8) - INIT_VAR[preset]) < 0.1


def _update_exponents(preset, widths):
    """One full-batch SGD step at a small fixed eta, in float64 (linear response).

    The output is centred (f - f_0), so the first residual is -y at every width; otherwise the
    O(1) random f_0 of sp/ntk makes the step size fluctuate from width to width. tanh: its
    sub-leading finite-width terms are smaller than relu's (the exponents are asymptotic).
    """
    d, p, eta = 8, 4, 1e-5
    rng = np.random.default_rng(1)
    x = rng.standard_normal((p, d))
    y = rng.standard_normal(p)
    sizes = []
    with jax.enable_x64(True):
        for n in widths:
            cfg = ModelConfig(width=n, depth=2, parameterization=preset, centre=True,
                              activation="tanh")
            res = train(cfg, TrainConfig(steps=1, lr=eta, dtype="float64", record_steps=(0, 1),
                                         observables=("outputs",), return_params=True),
                        x=x, y=y)
            m0 = make_model(cfg, d, key=jax.random.fold_in(jax.random.key(0), 0),
                            dtype=jnp.float64)
            m1 = with_params(m0, {k: v[0] for k, v in res.params.items()})
            (_, h0), (_, h1) = m0.features(x), m1.features(x)
            f = res.records["outputs"][0]
            assert np.abs(f[0]).max() < 1e-12  # centred: f - f_0 = 0 at step 0
            sizes.append([np.sqrt(np.mean((b - a) ** 2)) for a, b in zip(h0, h1, strict=True)]
                         + [np.sqrt(np.mean((f[1] - f[0]) ** 2))])
    sizes = np.array(sizes)
    return [_slope(widths, sizes[:, j]) for j in range(sizes.shape[1])]


@pytest.mark.parametrize("preset", list(UPDATE))
def test_update_size_quick(preset):
    got = _update_exponents(preset, QUICK_WIDTHS)
    np.testing.assert_allclose(got, UPDATE[preset], atol=0.1)


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(UPDATE))
def test_update_size_full(preset):
    got = _update_exponents(preset, FULL_WIDTHS)
    np.testing.assert_allclose(got, UPDATE[preset], atol=0.1)


def _ntk_kernel_regression_error(width):
    """Relative distance of NTK-preset GD outputs from the linearised (kernel) dynamics."""
    d, p, eta, steps = 8, 16, 1.0, 40
    rng = np.random.default_rng(2)
    x = rng.standard_normal((p, d))
    y = np.sin(x[:, :1] + x[:, 1:2])
    cfg = ModelConfig(width=width, depth=2, parameterization="ntk")
    res = train(cfg, TrainConfig(steps=steps, lr=eta, record_steps=(0, 10, 20, steps),
                                 observables=("outputs", "ntk")),
                x=x, y=y, probe_x=x, probe_y=y)
    f = res.records["outputs"][0].astype(np.float64)  # (K, P, 1)
    k0 = res.records["ntk"][0, 0].astype(np.float64)
    r = f[0] - y
    lin = {0: f[0]}
    for t in range(1, steps + 1):
        r = r - eta / p * k0 @ r
        lin[t] = y + r
    pred = np.stack([lin[int(t)] for t in res.steps])
    assert np.linalg.norm(f[-1] - f[0]) > 0.3 * np.linalg.norm(f[0] - y)  # it did learn
    return np.linalg.norm(f[1:] - pred[1:]) / np.linalg.norm(f[1:] - f[0])


def test_ntk_kernel_regression_quick():
    errs = [_ntk_kernel_regression_error(n) for n in (128, 1024)]
    assert errs[1] < 0.6 * errs[0]
    assert errs[1] < 0.05


@pytest.mark.slow
def test_ntk_kernel_regression_full():
    errs = [_ntk_kernel_regression_error(n) for n in (256, 1024, 4096)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.02
