"""Transformers: width exponents over heads and over d_head, depth-muP branches, the engine
(determinism, sharding), bad input."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from tests._tolerances import assert_allclose
from tests.sims._abc_scaling import (
    init_output_variance,
    one_step,
    one_step_sizes,
    slope,
    update_exponents,
)
from theorysim.sims import EnsembleSpec, TrainConfig, TransformerConfig, make_model, train

# sims/_transformer.py docstring: initial output variance ~ N^a; one-step change of the residual
# stream h^0 (embeddings), h^1, h^2 (after each block) and of f ~ N^r.
INIT_VAR = {"sp": 0.0, "ntk": 0.0, "mean_field": -1.0, "mup": -1.0}
UPDATE = {"sp": (-0.5, 0.5, 0.5, 1.0), "ntk": (-0.5, -0.5, -0.5, 0.0),
          "mean_field": (0.0, 0.0, 0.0, 0.0), "mup": (0.0, 0.0, 0.0, 0.0)}
# (heads, d_head) per width point: over heads at d_head = 16, over d_head at 4 heads; N = 64..1024.
# sp's deeper-layer exponent converges slowly over heads (measured 0.40 at N = 64..1024, 0.52 at
# N = 128..2048, 2 seeds), so its heads sweep starts at N = 128.
GRIDS = {"heads": ((4, 16), (16, 16), (64, 16)), "d_head": ((4, 16), (4, 64), (4, 256))}
SP_HEADS = ((8, 16), (32, 16), (128, 16))
V, T = 8, 4


def _cfg(heads, d_head, preset, **kw):
    base = dict(width=heads * d_head, heads=heads, depth=2, vocab_size=V, max_len=T,
                mlp_ratio=1, parameterization=preset)
    return TransformerConfig(**{**base, **kw})


def _grid(preset, direction):
    return SP_HEADS if (preset, direction) == ("sp", "heads") else GRIDS[direction]


# the default suite runs muP over heads and SP over d_head (CI budget); the rest is slow-marked
QUICK = {("mup", "heads")}  # suite budget: the other cases are slow
CASES = [pytest.param(p, d, marks=() if (p, d) in QUICK else pytest.mark.slow)
         for p in UPDATE for d in GRIDS]


@pytest.mark.parametrize("preset, direction", CASES)
def test_width_exponents(preset, direction):
    """Initial output variance and one-step update sizes follow the abc table, whether the
    width grows through the number of heads or through d_head (fitted exponents within 0.1)."""
    grid = _grid(preset, direction)
    widths = [h * d for h, d in grid]
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, V, (4, T)), rng.standard_normal(4)
    # 32 outputs share the features but have independent readout rows (averages the readout's
    # chi-square noise); 8 seeds x 8 sequences.
    xs = rng.integers(0, V, (8, T))
    var = [init_output_variance(_cfg(h, d, preset, out_dim=32), xs, 8) for h, d in grid]
    assert abs(slope(widths, var) - INIT_VAR[preset]) < 0.1
    cfgs = {h * d: _cfg(h, d, preset, centre=True) for h, d in grid}
    # 2 seeds: a single network's update size fluctuates by ~20% at N = 64
    got = update_exponents(cfgs.__getitem__, widths, x, y, seeds=(0, 1))
    np.testing.assert_allclose(got, UPDATE[preset], atol=0.1)


def _logit_update_parts(d_head, zero_query, seed):
    """RMS change of block 0's attention logits after one Adam step (muP, 2 heads): the whole
    change; the part of :math:`\\Delta W^Q, \\Delta W^K` alone (block input u as at init); the
    part of the input's change :math:`\\Delta u` through the initial :math:`W^Q, W^K`."""
    from flax import nnx

    rng = np.random.default_rng(1)
    x, y = rng.integers(0, V, (8, T)), rng.standard_normal(8)
    cfg = _cfg(2, d_head, "mup", zero_query=zero_query)
    with jax.enable_x64(True):
        m0, m1, xj = one_step(cfg, x, y, eta=1e-4, seed=seed, optimizer="adam")
        models = [m1]
        for base, donor in ((m0, m1), (m1, m0)):
            m = nnx.clone(base)
            for w in ("wq", "wk"):
                getattr(m.blocks[0], w).value = getattr(donor.blocks[0], w).value
            models.append(m)
        a0 = m0.activations(xj)["block0/attn_logits"]
        return [float(np.sqrt(np.mean(np.square(m.activations(xj)["block0/attn_logits"] - a0))))
                for m in models]


@pytest.mark.slow  # 53 CPU-s (18 float64 one-step programs); 8 min wall at load 20
def test_mup_logit_update_over_d_head_splits_into_flat_and_decaying_parts():
    r"""Why muP logit updates fall with d_head unless W^Q starts at zero (coord-check, vary=d_head).

    The update of :math:`\alpha\, q\cdot k` (:math:`\alpha = 1/d_{\rm head}`) has a coherent
    part, :math:`\alpha(\Delta W^Q u\cdot k + q\cdot\Delta W^K u)`: Adam's step is aligned with
    k (resp. q), an LLN sum of :math:`d_{\rm head}` terms, :math:`O(1)`; and an incoherent part,
    :math:`\alpha(W^Q\Delta u\cdot k + q\cdot W^K\Delta u)`: the block input's change pushed through
    the independent random :math:`W^Q, W^K`, a CLT sum, :math:`O(d_{\rm head}^{-1/2})`. With
    :math:`W^Q_0 = 0` (``zero_query``, arXiv 2203.03466) q = 0 at the step, the incoherent part
    vanishes at first order and the whole update is flat. Predicted exponents over d_head:
    coherent 0, incoherent -1/2, zero_query total 0.

    Measured (2026-12-06, 2 heads, d_head 16, 64, 256, 8 sequences, 3 seeds): coherent -0.06,
    incoherent -0.54, zero_query total -0.11. The coherent part is itself a sum over d_head of
    Adam-sign terms whose alignment with k is only ~ (P T)^-1/2, so its CLT remainder is still
    visible at d_head = 16; the flat parts are held to the coord-check's own flatness bound
    (|exponent| < 0.15), the incoherent one to -1/2 within 0.1.
    """
    d_heads = (16, 64, 256)
    parts = np.array([np.mean([_logit_update_parts(d, False, s) for s in range(3)], axis=0)
                      for d in d_heads])
    zq = [np.mean([_logit_update_parts(d, True, s)[0] for s in range(3)]) for d in d_heads]
    coherent, incoherent, total = (slope(d_heads, v) for v in (parts[:, 1], parts[:, 2], zq))
    assert abs(incoherent + 0.5) < 0.1, incoherent
    assert abs(coherent) < 0.15 and abs(total) < 0.15, (coherent, total)
    assert coherent - incoherent > 0.3


DEPTHS = (2, 4, 8, 16)


def _depth_sizes(branch_scale):
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, V, (16, T)), rng.standard_normal(16)
    out = []
    for depth in DEPTHS:
        cfg = _cfg(2, 16, "mup", depth=depth, branch_scale=branch_scale, centre=True)
        r = one_step_sizes(cfg, x, y, seeds=(0, 1, 2, 3))
        out.append((r[-2], r[-1]))  # the last block's residual stream h^L, and f
    return np.array(out)


@pytest.mark.slow  # depth 16 in float64: ~1 min to compile on 2 cores
@pytest.mark.parametrize("branch_scale", ["sqrt_depth", "depth"])
def test_depth_mup_updates_stay_order_one(branch_scale):
    """One SGD step moves the final residual stream and the output by O(1) for depth 2..16 with
    depth-muP branches (1/sqrt(L), or 1/L with SGD rates x L): fitted depth exponents near 0,
    against > 0.5 without branch scaling (test below).

    Tolerance 0.2, not the 0.1 of the width tests: at these depths the step sizes still carry a
    finite-depth transient (measured, sqrt_depth, 16 sequences, 4 seeds: stream 2.00, 2.09,
    2.55, 2.51 and output 2.30, 2.39, 2.93, 2.70 (x 1e-6) at L = 2, 4, 8, 16, fitted
    exponents 0.13 and 0.10; flat from L = 8 on).
    """
    s = _depth_sizes(branch_scale)
    got = [slope(DEPTHS, s[:, j]) for j in range(2)]
    np.testing.assert_allclose(got, [0.0, 0.0], atol=0.2)


@pytest.mark.slow
def test_unscaled_branches_grow_with_depth():
    """The control: without branch scaling the same step grows with depth."""
    s = _depth_sizes("none")
    assert slope(DEPTHS, s[:, 0]) > 0.5


def _seq_data(n=8, real=False):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, T, 3)) if real else rng.integers(0, V, (n, T))
    return x, rng.standard_normal(n)


def test_same_seed_twice_identical():
    x, y = _seq_data()
    cfg = _cfg(2, 4, "mup", mlp_ratio=2)
    tc = TrainConfig(steps=6, lr=0.5, batch_size=4, num_records=3,
                     observables=("loss", "act_rms", "feature_kernels", "ntk"))
    a = train(cfg, tc, x=x, y=y, ensemble=EnsembleSpec(seeds=(1, 2)))
    b = train(cfg, tc, x=x, y=y, ensemble=EnsembleSpec(seeds=(1, 2)))
    for k in a.records:
        np.testing.assert_array_equal(a.records[k], b.records[k])
    assert list(a.coords["layer"]) == list(cfg.layer_names())
    assert "block1/attn_logits" in cfg.layer_names()
    assert not np.array_equal(a.records["loss"][0], a.records["loss"][1])  # seeds differ


@pytest.mark.parametrize("strategy", ["vmap", pytest.param("map", marks=pytest.mark.slow)])
def test_sharded_equals_unsharded(strategy):
    """A 10-member encoder ensemble on real-vector tokens (padded to 16 on 8 CPU devices)."""
    assert len(jax.devices()) == 8  # tests/conftest.py
    x, y = _seq_data(real=True)
    cfg = TransformerConfig(width=8, heads=2, depth=2, token_dim=3, max_len=T, causal=False,
                            readout="mean", mlp_ratio=1)
    tc = TrainConfig(steps=8, lr=0.5, num_records=3, observables=("loss", "outputs", "act_rms"))
    ens = dict(seeds=(0, 1, 2, 4, 5), lrs=(0.3, 0.6), strategy=strategy)
    a = train(cfg, tc, x=x, y=y, ensemble=EnsembleSpec(**ens, shard=True))
    b = train(cfg, tc, x=x, y=y, ensemble=EnsembleSpec(**ens, shard=False))
    assert a.records["loss"].shape == (10, 3)
    # Equal to float32 rounding, not bit for bit (unlike the MLPs of test_engine.py): with 2
    # members per device instead of 10 on one, XLA:CPU compiles the attention einsums of the
    # per-device program differently, under either strategy (measured on jax 0.10, map: 105 of
    # 240 outputs differ, by at most 1.7e-7 absolute; vmap: at most 1.6e-7 relative).
    for k in a.records:
        assert_allclose(a.records[k], b.records[k], rtol=1e-6, atol=1e-6)
    assert np.abs(a.records["outputs"][:, -1] - a.records["outputs"][:, 0]).max() > 1e-3


def test_causal_mask_and_readout():
    """A decoder's output at position t ignores later tokens; an encoder's does not."""
    x, _ = _seq_data(2)
    x2 = x.copy()
    x2[:, -1] = (x2[:, -1] + 1) % V
    for causal in (True, False):
        cfg = _cfg(2, 4, "sp", causal=causal)
        m = make_model(cfg, T, key=jax.random.key(0))
        _, h = m.features(x)
        _, h2 = m.features(x2)
        same_prefix = np.allclose(np.asarray(h[-1])[:, :-1], np.asarray(h2[-1])[:, :-1])
        assert same_prefix == causal


@pytest.mark.parametrize("make, match", [
    (lambda: _cfg(3, 4, "mup", width=10), "width must be divisible by heads"),
    (lambda: _cfg(2, 4, "mup", depth=0), "depth"),
    (lambda: _cfg(2, 4, "mu-p"), "parameterization"),
    (lambda: _cfg(2, 4, "mup", branch_scale="log"), "branch_scale"),
    (lambda: _cfg(2, 4, "mup", token_dim=3), "exactly one of vocab_size"),
    (lambda: _cfg(2, 4, "mup", vocab_size=0), "vocab_size"),
    (lambda: make_model(_cfg(2, 4, "mup"), T + 1, key=jax.random.key(0)), "max_len"),
    (lambda: train(_cfg(2, 4, "mup"), TrainConfig(steps=1), x=np.zeros((3, T + 1), int),
                   y=np.ones(3)), "max_len"),
    (lambda: train(_cfg(2, 4, "mup"), TrainConfig(steps=1), x=np.full((3, T), V),
                   y=np.ones(3)), "token ids must be in"),
    (lambda: train(_cfg(2, 4, "mup"), TrainConfig(steps=1), x=np.full((3, T), -1),
                   y=np.ones(3)), "token ids must be in"),
    (lambda: train(_cfg(2, 4, "mup"), TrainConfig(steps=1), x=np.zeros((3, T), int),
                   y=np.ones(3), x_test=np.full((2, T), V), y_test=np.ones(2)), "x_test"),
    (lambda: train(_cfg(2, 4, "mup"), TrainConfig(steps=1), x=np.full((3, T), 0.5),
                   y=np.ones(3)), "integer token ids"),
    (lambda: make_model(_cfg(2, 4, "mup"), T, key=jax.random.key(0))(np.full((1, T), V)),
     "token ids"),
    (lambda: train(_cfg(2, 4, "mup", vocab_size=None, token_dim=3), TrainConfig(steps=1),
                   x=np.ones((3, T, 2)), y=np.ones(3)), "token_dim"),
])
def test_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_zero_query_starts_with_uniform_attention():
    x, _ = _seq_data(3)
    m = make_model(_cfg(2, 4, "mup", zero_query=True), T, key=jax.random.key(0))
    assert not np.any(np.asarray(m.blocks[0].wq[...]))
    assert not np.any(np.asarray(m.activations(x)["block1/attn_logits"]))
    assert np.any(np.asarray(m.blocks[0].wk[...]))  # only the query


def test_activation_updates_match_the_recorded_outputs():
    """sims.activation_updates: zero between equal parameters; its output column is the RMS
    change of the outputs train records on the same inputs."""
    from theorysim.sims import activation_updates

    x, y = _seq_data()
    cfg = _cfg(2, 4, "sp")
    runs = [train(cfg, TrainConfig(steps=t, lr=0.05, optimizer="adam",
                                   record_steps=tuple(sorted({0, t})),
                                   observables=("outputs",), return_params=True), x=x, y=y,
                  ensemble=EnsembleSpec(seeds=(0, 1))) for t in (0, 3)]
    names, same = activation_updates(cfg, runs[0].params, runs[0].params, x)
    assert names == (*cfg.layer_names(), "output") and not np.any(same)
    _, upd = activation_updates(cfg, runs[0].params, runs[1].params, x)
    f = runs[1].records["outputs"]
    want = np.sqrt(np.mean((f[:, -1] - f[:, 0]) ** 2, axis=(1, 2)))
    assert_allclose(upd[:, -1], want, rtol=1e-5, atol=1e-7)
    assert np.all(upd[:, 1:] > 0)
    with pytest.raises(ValueError, match="cfg"):
        activation_updates(TrainConfig(steps=1), runs[0].params, runs[0].params, x)
