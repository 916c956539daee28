"""Ensemble training speed of ``theorysim.sims.train``.

(a) S seeds of a width-256 depth-3 MLP trained for T minibatch-SGD steps: one ensemble program
    (strategy ``vmap`` and ``map``) vs a Python loop calling ``train`` once per seed (the same
    compiled single-member program reused) and vs the research-code loop over seeds and steps
    calling a jitted step. Compile time is excluded everywhere (one warm-up call each).
(b) Achieved matmul FLOP/s of a width-2048 ensemble training step vs the dense matmul FLOP/s of
    the same machine measured in the same run (target >= 50%).

Every ratio comes from interleaved rounds (``benchmarks/_protocol.py``): median and min-max
over rounds, with the load and thread settings; rows go to RESULTS.md.

Usage: ``python benchmarks/ensemble_training.py [--quick] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import time

import _protocol as P
import jax
import jax.numpy as jnp
import numpy as np

from theorysim.sims import EnsembleSpec, ModelConfig, TrainConfig, train

SCRIPT = "ensemble_training.py"


def _time(fn, repeats=1):
    fn()  # warm-up / compile
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _naive_loop(cfg, x, y, seeds, steps, batch, lr):
    """Research-code baseline: a Python loop over seeds and steps calling a jitted SGD step."""
    from flax import nnx

    from theorysim.sims import make_model

    scales = make_model(cfg, x.shape[1], key=jax.random.key(0)).lr_scales("sgd")

    @jax.jit
    def step(params, graphdef, key):
        idx = jax.random.choice(key, x.shape[0], (batch,), replace=False)

        def loss(p):
            f = nnx.merge(graphdef, p)(x[idx])
            return 0.5 * jnp.mean(jnp.sum((f - y[idx, None]) ** 2, -1))

        g = jax.grad(loss)(params)
        return jax.tree_util.tree_map_with_path(
            lambda path, p, gp: p - lr * scales["/".join(
                str(getattr(k, "key", getattr(k, "name", ""))) for k in path[:-1])] * gp,
            params, g)

    losses = []
    for s in range(seeds):
        graphdef, params = nnx.split(make_model(cfg, x.shape[1], key=jax.random.key(s)))
        key = jax.random.key(s + 10_000)
        for t in range(steps):
            params = step(params, graphdef, jax.random.fold_in(key, t))
        losses.append(params)
    jax.block_until_ready(losses)


def bench_vmap_vs_loop(seeds: int, steps: int, batch: int, rounds: int):
    rng = np.random.default_rng(0)
    d, p = 32, 1024
    x = rng.standard_normal((p, d)).astype(np.float32)
    y = np.tanh(x[:, 0]).astype(np.float32)
    cfg = ModelConfig(width=256, depth=3, parameterization="mup")
    tc = TrainConfig(steps=steps, lr=0.05, batch_size=batch, record_steps=(0, steps),
                     observables=("loss",))

    def ensemble(strategy):
        r = train(cfg, tc, x=x, y=y,
                  ensemble=EnsembleSpec(seeds=tuple(range(seeds)), strategy=strategy))
        return r.records["loss"]

    def loop():
        return [train(cfg, tc, x=x, y=y, ensemble=EnsembleSpec(seeds=(s,))).records["loss"]
                for s in range(seeds)]

    xj, yj = jnp.asarray(x), jnp.asarray(y)
    timers = {"ensemble (map)": P.timer(lambda: ensemble("map")),
              "ensemble (vmap)": P.timer(lambda: ensemble("vmap")),
              "loop over seeds of train()": P.timer(loop),
              "loop over seeds and steps (jitted step)": P.timer(
                  lambda: _naive_loop(cfg, xj, yj, seeds, steps, batch, 0.05))}
    comps = P.interleaved_many("(a)", timers, "ensemble (map)", rounds)
    same = bool(np.allclose(ensemble("vmap"), np.concatenate(loop()), rtol=1e-4, atol=1e-6))
    return comps, same


def _matmul_flops(d, n, depth, out, batch):
    sizes = [d] + [n] * depth + [out]
    fwd = sum(2 * batch * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    # backward: weight gradients (same as forward) + activation gradients (all but layer 0)
    bwd = fwd + sum(2 * batch * a * b for a, b in zip(sizes[1:-1], sizes[2:], strict=True))
    return fwd + bwd


def bench_flops(width: int, members: int, steps: int, batch: int, strategy: str,
                rounds: int):
    rng = np.random.default_rng(0)
    d = 256
    x = rng.standard_normal((batch, d)).astype(np.float32)
    y = np.tanh(x[:, 0]).astype(np.float32)
    cfg = ModelConfig(width=width, depth=2, parameterization="mup")

    def run(n):
        tc = TrainConfig(steps=n, lr=0.05, record_steps=(0, n), observables=())
        r = train(cfg, tc, x=x, y=y,
                  ensemble=EnsembleSpec(seeds=tuple(range(members)), strategy=strategy))
        jax.block_until_ready(r.diverged)

    flops_step = members * _matmul_flops(d, width, 2, 1, batch)
    a = jnp.asarray(rng.standard_normal((batch, width)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((width, width)), jnp.float32)
    mm = jax.jit(lambda a, b: a @ b)
    flops_mm = 2 * batch * width * width

    def step_cost():  # seconds per matmul FLOP of one training step
        # difference of a long and a 1-step run removes compile, init and transfer costs
        per_step = (_time(lambda: run(steps), 2) - _time(lambda: run(1), 2)) / (steps - 1)
        return per_step / flops_step

    def matmul_cost():  # seconds per FLOP of one dense matmul of the layer's size
        return _time(lambda: jax.block_until_ready(mm(a, b)), 10) / flops_mm

    # ratio per round = (s/FLOP of the matmul) / (s/FLOP of the step) = achieved / dense FLOP/s
    return P.interleaved(f"(b) {strategy}", step_cost, matmul_cost, rounds, warmup=False,
                         verbose=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds/steps (about a minute)")
    P.add_arguments(ap, rounds=3)
    args = ap.parse_args(argv)
    info = P.print_conditions(SCRIPT)
    print(f"devices: {jax.devices()}")
    seeds, steps = (16, 200) if args.quick else (64, 1000)
    q = " (--quick)" if args.quick else ""
    comps, same = bench_vmap_vs_loop(seeds, steps, batch=16, rounds=args.rounds)
    print(f"(a) {seeds} seeds x {steps} SGD steps, width 256 depth 3, batch 16 "
          f"(same losses ensemble vs loop: {same}); time / time of ensemble (map), "
          f"median (min-max) over {args.rounds} interleaved rounds")
    for arm, c in comps.items():
        print(f"    {arm:42s} {c.ratio_text()}")
    members, fsteps = (2, 4) if args.quick else (4, 8)
    fracs = {}
    for strategy in ("vmap", "map"):
        fracs[strategy] = bench_flops(2048, members, fsteps, 256, strategy, args.rounds)
        c = fracs[strategy]
        print(f"(b) width 2048 depth 2, {members} members ({strategy}), batch 256: achieved "
              f"matmul FLOP/s / dense matmul FLOP/s = {100 * c.median:.0f}% "
              f"({100 * c.lo:.0f}-{100 * c.hi:.0f}%)")
    if not args.no_record:
        for arm, c in comps.items():
            P.record(SCRIPT, f"(a) {seeds} seeds x {steps} steps: {arm} / ensemble (map){q}",
                     c.ratio_text(), rounds=args.rounds,
                     target=">= 5x" if arm.startswith("loop") else "-",
                     met=("yes" if c.median >= 5 else "**no**") if arm.startswith("loop")
                     else "-", load=c.load_text(), info=info)
        for strategy, c in fracs.items():
            P.record(SCRIPT, f"(b) width-2048 step, {strategy}: fraction of dense-matmul "
                     f"FLOP/s{q}", f"{100 * c.median:.0f}% ({100 * c.lo:.0f}-{100 * c.hi:.0f}%)",
                     rounds=args.rounds, target=">= 50%",
                     met="yes" if c.median >= 0.5 else "**no**", load=c.load_text(), info=info)
    P.warn_if_busy()


if __name__ == "__main__":
    main()
