"""Transformer training speed of ``theorysim.sims.train`` (issue 11).

A width-256, depth-4, 4-head decoder (``mup``, mlp_ratio 4, pre-LayerNorm) on integer-token
sequences of length 64, batch 64, full-batch SGD:

(a) T training steps in ``sims.train`` vs a plain hand-written Flax NNX + optax loop (a jitted
    step function called T times, the same model and the same per-layer muP rates through
    ``optax.multi_transform``): the overhead of the engine (target <= 10%).
(b) an 8-seed ensemble in one ``train`` program vs a Python loop calling ``train`` once per seed
    (the same compiled single-member program reused): the speed-up, and the achieved matmul
    FLOP/s of the ensemble step as a fraction of the dense-matmul FLOP/s of the same machine
    measured in the same run.

Where (a)'s overhead was (profiled 2026-12-07, load 5-11, CPU seconds): per call, ``validate``
built the abstract model and traced a forward for the memory estimate (113 ms; now cached by
value: 2 ms), ``init`` draws the parameters (60 ms), and the loss records at steps 0 and T are
two forward passes (~0.3 s each, a quarter of a step; the hand-written loop records nothing).
Per step nothing: no progress callback (off by default), no dtype casts (float32 throughout),
and the engine's ``fori_loop`` updates the parameters in place where the hand-written loop's
separately dispatched steps allocate new buffers, so ``train`` measured 3-10 % *less* CPU time
than the baseline over 10 steps (wall-clock ratios under that load spread over +-20 %).

Compile time is excluded everywhere (a warm-up call of each side). Ratios come from interleaved
rounds (``benchmarks/_protocol.py``); rows go to RESULTS.md.

Usage: ``python benchmarks/transformer_training.py [--quick] [--small] [--rounds 3]
[--only a|b]``
(``--small``: width 64, sequences of 16, for a smoke run; not the issue's size).
"""

from __future__ import annotations

import argparse
import time

import _protocol as P
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from theorysim.sims import EnsembleSpec, TrainConfig, TransformerConfig, make_model, train

SCRIPT = "transformer_training.py"
VOCAB = 64


def _setup(width, seq, batch):
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCAB, (batch, seq))
    y = rng.standard_normal(batch).astype(np.float32)
    cfg = TransformerConfig(width=width, heads=4, depth=4, vocab_size=VOCAB, max_len=seq,
                            mlp_ratio=4, parameterization="mup")
    return cfg, x, y


def _hand_loop(cfg, x, y, steps, lr):
    """The baseline: NNX model, optax SGD with the muP per-layer rates, a jitted step."""
    model = make_model(cfg, x.shape[1], key=jax.random.key(0))
    scales = model.lr_scales("sgd")
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def label(path, _):
        parts = [str(getattr(k, "key", getattr(k, "idx", ""))) for k in path
                 if not (isinstance(k, jax.tree_util.GetAttrKey) and k.name == "value")]
        return "/".join(parts)

    labels = jax.tree_util.tree_map_with_path(label, params)
    tx = optax.multi_transform({n: optax.sgd(lr * c) for n, c in scales.items()}, labels)
    xj, yj = jnp.asarray(x), jnp.asarray(y)[:, None]

    @jax.jit
    def step(params, opt):
        def loss(p):
            f = nnx.merge(graphdef, p, rest)(xj)
            return 0.5 * jnp.mean(jnp.sum((f - yj) ** 2, -1))

        g = jax.grad(loss)(params)
        upd, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, upd), opt

    def run():
        p, o = params, tx.init(params)
        for _ in range(steps):
            p, o = step(p, o)
        return p

    return run


def _step_matmul_flops(cfg, seq, batch):
    n, m, tok = cfg.width, cfg.mlp_ratio * cfg.width, seq * batch
    per_block = 2 * tok * (4 * n * n + 2 * n * m) + 2 * 2 * batch * seq * seq * n  # + QK^T, AV
    fwd = cfg.depth * per_block + 2 * batch * n * cfg.out_dim
    return 3 * fwd  # forward + two backward matmuls per forward one


def _cpu_timer(fn, cpu: list):
    """A wall-clock timer of ``fn`` that also appends the process CPU seconds it took to
    ``cpu`` (under load, CPU time is the steadier measure of work done)."""
    wall = P.timer(fn)

    def run():
        c0 = time.process_time()
        t = wall()
        cpu.append(time.process_time() - c0)
        return t

    return run


def _part_a(cfg, tc, x, y, steps, lr, rounds):
    """(a): ``train`` (one member, unsharded) vs the hand-written loop, interleaved rounds;
    the per-round CPU-time ratios are printed next to the wall-clock ones."""
    cpu_ours, cpu_base = [], []
    ours = _cpu_timer(lambda: train(cfg, tc, x=x, y=y, ensemble=EnsembleSpec(
        seeds=(0,), shard=False)).records["loss"], cpu_ours)
    base = _cpu_timer(_hand_loop(cfg, x, y, steps, lr), cpu_base)
    a = P.interleaved(f"(a) {steps} steps: train vs hand-written NNX+optax", ours, base, rounds)
    r = sorted(o / b - 1.0 for o, b in zip(cpu_ours[1:], cpu_base[1:], strict=True))  # no warm-up
    print(f"  (a) CPU-time overhead per round: median {100 * r[len(r) // 2]:+.1f}% "
          f"({100 * r[0]:+.1f} to {100 * r[-1]:+.1f}%)")
    return a


def _record_a(args, a, width, seq, batch, steps, info):
    overhead = 1.0 / a.median - 1.0
    size = f"width {width}, depth 4, 4 heads, seq {seq}, batch {batch}"
    print(f"(a) {size}: train / hand-written loop time = {1 / a.median:.3f} "
          f"(overhead {100 * overhead:+.1f}%, target <= +10%)")
    if not args.no_record and not args.small:
        q = " (--quick)" if args.quick else ""
        P.record(SCRIPT, f"(a) {steps} steps, {size}: train() overhead vs hand-written "
                 f"NNX+optax{q}", f"{100 * overhead:+.1f}% ({100 * (1 / a.hi - 1):+.1f} to "
                 f"{100 * (1 / a.lo - 1):+.1f}%)", rounds=args.rounds, target="<= +10%",
                 met="yes" if overhead <= 0.10 else "**no**", load=a.load_text(), info=info)
    if args.only == "a":
        P.warn_if_busy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps")
    ap.add_argument("--small", action="store_true", help="width 64, sequences of 16 (smoke)")
    ap.add_argument("--only", choices=("a", "b"), help="run only part (a) or (b)")
    P.add_arguments(ap, rounds=3)
    args = ap.parse_args(argv)
    info = P.print_conditions(SCRIPT)
    print(f"devices: {jax.devices()}")
    width, seq, batch = (64, 16, 64) if args.small else (256, 64, 64)
    steps, seeds = (3, 8) if args.quick else (10, 8)
    cfg, x, y = _setup(width, seq, batch)
    lr = 0.05
    tc = TrainConfig(steps=steps, lr=lr, record_steps=(0, steps), observables=("loss",))

    if args.only != "b":
        a = _part_a(cfg, tc, x, y, steps, lr, args.rounds)
    if args.only == "a":
        return _record_a(args, a, width, seq, batch, steps, info)

    # (b) 8-seed ensemble vs a loop over seeds
    ens = P.timer(lambda: train(cfg, tc, x=x, y=y, ensemble=EnsembleSpec(
        seeds=tuple(range(seeds)))).records["loss"])
    loop = P.timer(lambda: [train(cfg, tc, x=x, y=y, ensemble=EnsembleSpec(
        seeds=(s,), shard=False)).records["loss"] for s in range(seeds)])
    b = P.interleaved(f"(b) {seeds} seeds: ensemble vs loop over seeds", ens, loop, args.rounds)
    rng = np.random.default_rng(1)
    ma = jnp.asarray(rng.standard_normal((seq * batch, width)), jnp.float32)
    mb = jnp.asarray(rng.standard_normal((width, 4 * width)), jnp.float32)
    mm = jax.jit(lambda a, b: a @ b)
    t_mm = P.timer(lambda: mm(ma, mb), repeats=5)
    t_mm()
    dense = 2 * seq * batch * width * 4 * width / t_mm()
    achieved = seeds * steps * _step_matmul_flops(cfg, seq, batch) / min(b.ours)
    frac = achieved / dense
    if args.only is None:
        _record_a(args, a, width, seq, batch, steps, info)
    print(f"(b) {seeds}-seed ensemble speed-up over a loop of train() = {b.ratio_text()}; "
          f"achieved {achieved / 1e9:.1f} GFLOP/s = {100 * frac:.0f}% of dense matmul "
          f"({dense / 1e9:.1f} GFLOP/s)")
    if not args.no_record and not args.small:
        q = " (--quick)" if args.quick else ""
        P.record(SCRIPT, f"(b) {seeds}-seed ensemble / loop over seeds{q}", b.ratio_text(),
                 rounds=args.rounds, target="report", met="-", load=b.load_text(), info=info)
        P.record(SCRIPT, f"(b) ensemble step: fraction of dense-matmul FLOP/s{q}",
                 f"{100 * frac:.0f}%", rounds=args.rounds, target="report", met="-",
                 load=b.load_text(), info=info)
    P.warn_if_busy()


if __name__ == "__main__":
    main()
