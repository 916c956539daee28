"""Ensemble training speed of ``theorysim.sims.train``.

(a) S seeds of a width-256 depth-3 MLP trained for T minibatch-SGD steps: one ensemble program
    (strategy ``vmap`` and ``map``) vs a Python loop calling ``train`` once per seed (the same
    compiled single-member program reused) and vs the research-code loop over seeds and steps
    calling a jitted step. Compile time is excluded everywhere (one warm-up call each).
(b) Achieved matmul FLOP/s of a width-2048 ensemble training step vs the dense matmul FLOP/s of
    the same machine measured in the same run (target >= 50%).

Usage: ``python benchmarks/ensemble_training.py [--quick]``
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from theorysim.sims import EnsembleSpec, ModelConfig, TrainConfig, train


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


def bench_vmap_vs_loop(seeds: int, steps: int, batch: int):
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

    times = {"ensemble (vmap)": _time(lambda: ensemble("vmap")),
             "ensemble (map)": _time(lambda: ensemble("map")),
             "loop over seeds of train()": _time(loop)}
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    times["loop over seeds and steps (jitted step)"] = _time(
        lambda: _naive_loop(cfg, xj, yj, seeds, steps, batch, 0.05))
    same = bool(np.allclose(ensemble("vmap"), np.concatenate(loop()), rtol=1e-4, atol=1e-6))
    return times, same


def _matmul_flops(d, n, depth, out, batch):
    sizes = [d] + [n] * depth + [out]
    fwd = sum(2 * batch * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    # backward: weight gradients (same as forward) + activation gradients (all but layer 0)
    bwd = fwd + sum(2 * batch * a * b for a, b in zip(sizes[1:-1], sizes[2:], strict=True))
    return fwd + bwd


def bench_flops(width: int, members: int, steps: int, batch: int, strategy: str):
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

    # difference of a long and a 1-step run removes compile, init and transfer costs
    per_step = (_time(lambda: run(steps), 2) - _time(lambda: run(1), 2)) / (steps - 1)
    achieved = members * _matmul_flops(d, width, 2, 1, batch) / per_step
    a = jnp.asarray(rng.standard_normal((batch, width)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((width, width)), jnp.float32)
    mm = jax.jit(lambda a, b: a @ b)
    peak = 2 * batch * width * width / _time(lambda: jax.block_until_ready(mm(a, b)), 10)
    return achieved, peak, per_step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer seeds/steps (about a minute)")
    args = ap.parse_args(argv)
    print(f"devices: {jax.devices()}")
    seeds, steps = (16, 200) if args.quick else (64, 1000)
    times, same = bench_vmap_vs_loop(seeds, steps, batch=16)
    best = min(times["ensemble (vmap)"], times["ensemble (map)"])
    print(f"(a) {seeds} seeds x {steps} SGD steps, width 256 depth 3, batch 16 "
          f"(same losses ensemble vs loop: {same})")
    for name, t in times.items():
        print(f"    {name:42s} {t:8.2f} s   ratio to best ensemble {t / best:6.2f}x")
    members, fsteps = (2, 4) if args.quick else (4, 8)
    for strategy in ("vmap", "map"):
        achieved, peak, per_step = bench_flops(2048, members, fsteps, 256, strategy)
        print(f"(b) width 2048 depth 2, {members} members ({strategy}), batch 256: "
              f"{per_step * 1e3:.0f} ms/step, matmul FLOP/s {achieved / 1e9:.1f} G vs dense "
              f"matmul {peak / 1e9:.1f} G: {100 * achieved / peak:.0f}%")


if __name__ == "__main__":
    main()
