"""The ``dmft-vs-width`` experiment end to end on a tiny config (no files written)."""

from __future__ import annotations

import numpy as np
import pytest

from theorysim.compare import get_experiment, mean_field_states
from theorysim.sims import EnsembleSpec, ModelConfig, TrainConfig, train
from theorysim.theory import sliding_ntk


def _tiny(**kw):
    exp = get_experiment("dmft-vs-width")
    cfg = exp.config_type(**(dict(widths=(32, 64), gamma0s=(1.0,), times=(0.25, 0.5),
                                  seeds=512, samples=1024) | kw))
    sims = [exp.simulate(cfg, p) for p in exp.points(cfg)]
    ds = exp.combine(cfg, exp.theory(cfg), sims)
    return exp, cfg, ds, exp.report(cfg, ds)


def test_dmft_vs_width_tiny_run():
    exp, cfg, ds, rep = _tiny()
    # the stated criterion: every (width, t) point of both quantities within 3 SE
    assert "3 SE" in rep.criterion and "loss_gap" in rep.criterion, rep.criterion
    assert rep.passed, (rep.metrics, rep.table)
    assert len(rep.table) == 4
    # the loss gap is resolved: N x gap well above its SE at every point
    assert all(r["theory"] > 0 for r in rep.table)
    assert all(abs(r["loss_gap theory"]) > 3 * 0.02 for r in rep.table)
    fig = exp.plot(cfg, ds)
    assert len(fig.axes) == 2
    assert np.isfinite(rep.metrics["max |z|"])


def test_relu_states_reproduce_the_engine_network():
    """The ReLU path's ingredients: the (h, z) read off the engine's parameters give its
    recorded outputs, and with no neuron on a kink the Filippov NTK is the engine's NTK."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 4)).astype(np.float32)
    y = rng.standard_normal(3).astype(np.float32)
    model = ModelConfig(width=16, depth=1, parameterization="mean_field", activation="relu",
                        gamma0=1.5)

    def run(tc):
        return train(model, tc, x=X, y=y, ensemble=EnsembleSpec(seeds=(3, 4)))

    res = run(TrainConfig(steps=3, lr=0.05, record_steps=(3,),
                          observables=("loss", "outputs", "ntk")))
    h, z = mean_field_states(run, (3,), X, lr=0.05)
    assert h.shape == (2, 1, 16, 3) and z.shape == (2, 1, 16)
    f = np.einsum("stn,stnp->stp", z, np.maximum(h, 0)) / (1.5 * 16)
    out = res.grid("outputs")[:, 0, 0, ..., 0]
    np.testing.assert_allclose(f, out, rtol=1e-5, atol=1e-6)
    K = sliding_ntk(h, z, y - out, X, 1.5, step=1e-9)  # band ~0: the instantaneous slopes
    np.testing.assert_allclose(K, res.grid("ntk")[:, 0, 0], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_dmft_vs_width_relu_tiny_run():
    """activation="relu": the Filippov NTK of the networks' parameters against the theory's,
    N x loss gap too, within the experiment's criterion."""
    exp, cfg, ds, rep = _tiny(activation="relu", gamma0s=(0.5, 1.5))
    assert rep.passed, (rep.metrics, rep.table)
    assert len(rep.table) == 8 and np.isfinite(rep.metrics["max |z|"])
    print(rep.metrics, rep.table)


def test_theory_limits_are_checked_before_any_simulation():
    """The finite-width theory's memory and step limits refuse the config at construction
    (issue 14: they failed only after the simulations), naming the config fields."""
    cfg_type = get_experiment("dmft-vs-width").config_type
    with pytest.raises(ValueError, match="samples.*max_memory_gb"):
        cfg_type(samples=2**20, times=(1.0, 2.0, 3.0), P=6, D=7)
    with pytest.raises(ValueError, match="more than the finite-width theory"):
        cfg_type(times=(200.0,))
    assert cfg_type(activation="relu").activation == "relu"
