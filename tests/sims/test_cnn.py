"""CNNs: the abc table's width exponents, the engine step, kernels.stax's CNTK, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests._tolerances import assert_allclose
from tests.sims._abc_scaling import (
    init_output_variance,
    one_step,
    param_path,
    slope,
    train_one_step,
    update_exponents,
)
from theorysim.kernels import stax
from theorysim.sims import CNNConfig, EnsembleSpec, TrainConfig, make_model, train

# Same exponents as the MLP table (sims/_cnn.py docstring): initial output variance ~ N^a;
# one-step change of h^1, h^2 and f ~ N^r.
INIT_VAR = {"sp": 0.0, "ntk": 0.0, "mean_field": -1.0, "mup": -1.0}
UPDATE = {"sp": (-0.5, 0.5, 1.0), "ntk": (-0.5, -0.5, 0.0), "mean_field": (0.0, 0.0, 0.0),
          "mup": (0.0, 0.0, 0.0)}
QUICK_WIDTHS = (32, 128, 512)
FULL_WIDTHS = (32, 64, 128, 256, 512, 1024, 2048)


def _cfg(n, preset, **kw):
    base = dict(width=n, input_shape=(4, 4, 1), depth=2, parameterization=preset,
                activation="tanh")
    return CNNConfig(**{**base, **kw})


def _init_exponent(preset, widths):
    # 32 outputs share the features z but have independent readout rows, so they average the
    # readout's chi-square noise away; 8 seeds x 8 images leave ~0.03 on the slope.
    x = np.random.default_rng(0).standard_normal((8, 9))
    var = [init_output_variance(_cfg(n, preset, input_shape=(3, 3, 1), out_dim=32), x, 8)
           for n in widths]
    return slope(widths, var)


def _update_exponents(preset, widths):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 16)), rng.standard_normal(4)
    return update_exponents(lambda n: _cfg(n, preset, centre=True), widths, x, y)


@pytest.mark.parametrize("preset", list(INIT_VAR))
def test_init_output_variance_quick(preset):
    assert abs(_init_exponent(preset, QUICK_WIDTHS) - INIT_VAR[preset]) < 0.1


@pytest.mark.parametrize("preset", [p if p in ("mup", "sp") else
                                    pytest.param(p, marks=pytest.mark.slow) for p in UPDATE])
def test_update_size_quick(preset):
    np.testing.assert_allclose(_update_exponents(preset, QUICK_WIDTHS), UPDATE[preset], atol=0.1)


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(UPDATE))
def test_scaling_full(preset):
    assert abs(_init_exponent(preset, FULL_WIDTHS) - INIT_VAR[preset]) < 0.1
    np.testing.assert_allclose(_update_exponents(preset, FULL_WIDTHS), UPDATE[preset], atol=0.1)


@pytest.mark.parametrize("preset", ["mup", "sp"])
def test_train_step_is_the_abc_step(preset):
    """sims.train's first SGD step is theta - eta gamma0^2 c grad (the rates of the table)."""
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 16)), rng.standard_normal(4)
    cfg = _cfg(8, preset, depth=3, strides=(1, 2, 1), padding=("SAME", "VALID", "SAME"),
               pool=(1, 1, 1), readout="flatten", bias=True, gamma0=0.7, centre=True,
               kernel_size=(3, 1, 2))
    got = train_one_step(cfg, x, y, eta=0.05)
    _, m1, _ = one_step(cfg, x, y, eta=0.05)
    want = {param_path(p): v for p, v in
            jax.tree_util.tree_flatten_with_path(nnx.split(m1, nnx.Param, ...)[1])[0]}
    assert set(got) == set(want)
    for k, v in want.items():
        assert_allclose(got[k], np.asarray(v), err_msg=k)


@pytest.mark.slow  # suite budget: ~20-70 s on 2 cores
def test_mup_and_mean_field_same_function_dynamics():
    """The abc symmetry with conv fan-ins: mup and mean_field give the same f(t) under SGD."""
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 5, 5, 2)), rng.standard_normal(6)
    tc = TrainConfig(steps=10, lr=0.5, dtype="float64", num_records=3, observables=("outputs",))
    out = {}
    with jax.enable_x64(True):
        for p in ("mup", "mean_field"):
            cfg = CNNConfig(width=12, input_shape=(5, 5, 2), depth=2, kernel_size=(3, 2),
                            pool=(2, 1), readout="flatten", parameterization=p, gamma0=0.5,
                            bias=True)
            out[p] = train(cfg, tc, x=x, y=y, ensemble=EnsembleSpec(shard=False))
    f = out["mup"].records["outputs"]
    assert np.abs(f[:, -1] - f[:, 0]).max() > 0.05  # it moved
    assert_allclose(f, out["mean_field"].records["outputs"], rtol=1e-8, atol=1e-10)


def test_same_seed_twice_identical():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((8, 4, 4, 1)), rng.standard_normal(8)
    cfg = _cfg(8, "mup", pool=(2, 1))
    tc = TrainConfig(steps=6, lr=0.5, batch_size=4, num_records=3,
                     observables=("loss", "act_rms", "feature_kernels", "ntk"))
    a = train(cfg, tc, x=x, y=y, ensemble=EnsembleSpec(seeds=(1, 2)))
    b = train(cfg, tc, x=x, y=y, ensemble=EnsembleSpec(seeds=(1, 2)))
    for k in a.records:
        np.testing.assert_array_equal(a.records[k], b.records[k])
    assert list(a.coords["layer"]) == ["conv0", "conv1"]
    assert a.records["act_rms"].shape[-1] == 2
    assert not np.array_equal(a.records["loss"][0], a.records["loss"][1])  # seeds differ


def test_vmap_ensemble_ntk_off_cpu_equals_map(monkeypatch):
    """Off CPU (lax.conv in the hidden layers; simulated by patching the backend test), the
    ``vmap`` strategy (the GPU default) with the ``ntk`` observable: JAX's conv batching rule
    raised NotImplementedError for the input layer's per-example weight gradient (data shared
    by all members) until the input layer became im2col on every backend. Equal to ``map``."""
    from theorysim.sims import _cnn

    monkeypatch.setattr(_cnn, "_on_cpu", lambda: False)
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((6, 6, 6, 1)), rng.standard_normal(6)
    cfg = _cfg(8, "ntk", input_shape=(6, 6, 1), depth=3, strides=(1, 2, 1),
               padding=("SAME", "VALID", "SAME"),
               activation="relu", centre=True)
    tc = TrainConfig(steps=2, lr=0.1, record_steps=(0, 2), observables=("outputs", "ntk"))
    run = {s: train(cfg, tc, x=x, y=y, probe_x=x, ensemble=EnsembleSpec(seeds=(0, 1),
                                                                         strategy=s))
           for s in ("vmap", "map")}
    assert run["vmap"].records["ntk"].shape == (2, 2, 6, 6)
    for k in ("outputs", "ntk"):
        assert_allclose(run["vmap"].records[k], run["map"].records[k], rtol=1e-5, atol=1e-6)


def test_ntk_preset_matches_stax_by_monte_carlo():
    """An ntk-preset CNN (W_std, b_std) at width 64: the mean over 96 seeds of f f^T and of the
    empirical NTK match kernels.stax's NNGP and NTK within 4 standard errors."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 5, 5, 2))
    w_std, b_std, seeds = 1.3, 0.2, 96
    cfg = CNNConfig(width=64, input_shape=(5, 5, 2), depth=2, kernel_size=(3, 2),
                    strides=(1, 2), padding=("SAME", "VALID"), parameterization="ntk",
                    activation="relu", w_std=w_std, b_std=b_std)
    _, _, kernel_fn = stax.serial(
        stax.Conv(64, (3, 3), (1, 1), "SAME", W_std=w_std, b_std=b_std), stax.Relu(),
        stax.Conv(64, (2, 2), (2, 2), "VALID", W_std=w_std, b_std=b_std), stax.Relu(),
        stax.GlobalAvgPool(), stax.Dense(1, W_std=w_std, b_std=b_std))
    with jax.enable_x64(True):
        exact = kernel_fn(jnp.asarray(x), get=("nngp", "ntk"))
        res = train(cfg, TrainConfig(steps=0, lr=1.0, dtype="float64", record_steps=(0,),
                                     observables=("outputs", "ntk")),
                    x=x, y=np.zeros(4), ensemble=EnsembleSpec(seeds=tuple(range(seeds))))
    f = res.records["outputs"][:, 0, :, 0]  # (seeds, P)
    samples = {"nngp": np.einsum("sp,sq->spq", f, f), "ntk": res.records["ntk"][:, 0]}
    for name, want in zip(("nngp", "ntk"), exact, strict=True):
        s = samples[name]
        mean, se = s.mean(0), s.std(0, ddof=1) / np.sqrt(seeds)
        assert np.all(np.abs(mean - np.asarray(want)) < 4 * se + 1e-12), name


@pytest.mark.parametrize("make, match", [
    (lambda: CNNConfig(width=4, input_shape=(3, 3, 1), kernel_size=5, padding="VALID"),
     "kernel_size"),
    (lambda: CNNConfig(width=4, input_shape=(4, 4, 1), depth=0), "depth"),
    (lambda: CNNConfig(width=4, input_shape=(4, 4, 1), parameterization="muP"),
     "parameterization"),
    (lambda: CNNConfig(width=0, input_shape=(4, 4, 1)), "width"),
    (lambda: CNNConfig(width=4, input_shape=(4, 4)), "input_shape"),
    (lambda: CNNConfig(width=4, input_shape=(4, 4, 1), padding="FULL"), "padding"),
    (lambda: CNNConfig(width=4, input_shape=(4, 4, 1), strides=(1, 2, 1)), "strides"),
    (lambda: CNNConfig(width=4, input_shape=(4, 4, 1), pool=8), "pool"),
    (lambda: CNNConfig(width=4, input_shape=(4, 4, 1), readout="max"), "readout"),
    (lambda: CNNConfig(width=4, input_shape=(4, 4, 1), w_std=float("nan")), "w_std"),
    (lambda: CNNConfig(width=4, input_shape=(4, 4, 1), gamma0=-1.0), "gamma0"),
    (lambda: make_model(CNNConfig(width=4, input_shape=(4, 4, 1)), 15, key=jax.random.key(0)),
     "input_shape"),
    (lambda: train(CNNConfig(width=4, input_shape=(4, 4, 1)), TrainConfig(steps=1),
                   x=np.ones((3, 5, 4, 1)), y=np.ones(3)), "x must be images"),
    (lambda: train(CNNConfig(width=4, input_shape=(4, 4, 1)), TrainConfig(steps=1),
                   x=np.ones((3, 4, 4, 1)), y=np.ones(3), x_test=np.ones((2, 15)),
                   y_test=np.ones(2)), "x_test"),
])
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()
