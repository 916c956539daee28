"""Benchmark of the deep nonlinear DMFT solver ``theorysim.theory.dmft``.

Each size runs in a fresh subprocess (peak memory = ru_maxrss of that process, which sees XLA's
host allocations, unlike tracemalloc). Reported: wall time to convergence, iterations, time per
iteration, peak RSS, and ratios against the smallest size measured in the same run; growth
exponents in T and P are fitted from 3 sizes each.

    python benchmarks/dmft.py --quick
    python benchmarks/dmft.py --medium    # time per iteration only
    python benchmarks/dmft.py            # T = 100, P = 16, L = 2, S = 4096

Uses ``benchmarks/_protocol.py`` for the conditions (load, threads), the busy warning and the
RESULTS.md rows; there is no A/B baseline to interleave (sizes are compared with each other).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import _protocol as proto
import numpy as np

SCRIPT = "dmft.py"

CHILD = r"""
import json, math, resource, sys, time
import jax, jax.numpy as jnp, numpy as np
from theorysim.theory import dmft
from theorysim.theory._dmft import dmft_core
T, P, S, L, it = (int(a) for a in sys.argv[1:6])
rng = np.random.default_rng(0)
X = rng.normal(size=(P, 10)); y = np.sign(rng.normal(size=P))
t = np.linspace(5.0 / T, 5.0, T)
Sg = S // 2  # samples of each of the n_groups = 2 solves whose mean dmft returns
n_chunks = min(Sg, max(2, math.ceil(Sg / 512))); chunk = Sg // n_chunks
with jax.enable_x64(True):  # compile time alone (same static arguments as the call below)
    tg = jnp.asarray(np.concatenate([[0.0], t])); Xa = jnp.asarray(X)
    t0 = time.perf_counter()
    dmft_core.lower(Xa @ Xa.T / 10, jnp.asarray(y), tg, 1.0, 0.5, 1e-5, jax.random.key(0),
                    depth=L, n_train=P, max_iter=it, activation="tanh", n_chunks=n_chunks,
                    chunk=chunk, lazy=True, euler=True,  # error="ntk" (tanh, depth 2)
                    whiten=n_chunks * chunk > 2 * (T + 1) * P).compile()
    compile_s = time.perf_counter() - t0
kw = dict(key=jax.random.key(0), depth=L, activation="tanh", n_samples=S, tol=1e-5,
          max_iter=it, throw=False, dynamics="gd", lr=5.0 / T, n_groups=2)
t0 = time.perf_counter()
r = dmft(X, y, t, 1.0, **kw)
wall = time.perf_counter() - t0
print(json.dumps(dict(T=T, P=P, S=S, L=L, wall=wall, compile=compile_s, n_iter=r.iterations,
                      residual=float(r.residuals[-1]), converged=r.converged,
                      rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def run(T, P, S, L, max_iter):
    out = subprocess.run([sys.executable, "-c", CHILD, str(T), str(P), str(S), str(L),
                          str(max_iter)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--medium", action="store_true",
                    help="T=50, P=8, S=2048 base; T and P up to 100 and 16, 3 iterations each")
    ap.add_argument("--max-iter", type=int, default=None,
                    help="iterations timed per growth row (default 3; the base size always "
                         "runs to convergence)")
    ap.add_argument("--converge-iter", type=int, default=150,
                    help="iteration cap of the base-size run that measures time to converge")
    proto.add_arguments(ap, rounds=1)
    a = ap.parse_args()
    info = proto.print_conditions(SCRIPT)
    load_start = proto.load1()
    loads = []
    if a.quick:
        base = dict(T=20, P=4, S=512, L=2)
        Ts, Ps, max_iter = (10, 20, 40), (2, 4, 8), a.max_iter or 5
    elif a.medium:
        base = dict(T=50, P=8, S=2048, L=2)
        Ts, Ps, max_iter = (25, 50, 100), (4, 8, 16), a.max_iter or 3
    else:
        base = dict(T=100, P=16, S=4096, L=2)
        Ts, Ps, max_iter = (25, 50, 100), (4, 8, 16), a.max_iter or 3
    # the base size runs to convergence (time to converge, "s/iter" there includes the one-off
    # setup). Growth rows: time per iteration = (net time at max_iter + 1 iterations - net time
    # at 1 iteration) / max_iter, net = wall - compile, so the setup (noise Gram pseudo-inverse,
    # result packing) cancels.
    rows = [run(**base, max_iter=a.converge_iter)]
    loads.append(proto.load1())
    rows[0]["per"] = (rows[0]["wall"] - rows[0]["compile"]) / rows[0]["n_iter"]
    for T, P in [(T, base["P"]) for T in Ts] + [(base["T"], P) for P in Ps]:
        one = run(T, P, base["S"], base["L"], 1)
        many = run(T, P, base["S"], base["L"], max_iter + 1)
        many["per"] = ((many["wall"] - many["compile"]) - (one["wall"] - one["compile"])) / (
            many["n_iter"] - one["n_iter"])
        rows.append(many)
        loads.append(proto.load1())
    ref = rows[1]
    print("| T | P | S | L | iters | converged | wall s | compile s | s/iter | peak RSS MB "
          "| s/iter ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['T']} | {r['P']} | {r['S']} | {r['L']} | {r['n_iter']} | {r['converged']} "
              f"| {r['wall']:.1f} | {r['compile']:.1f} | {r['per']:.3f} | {r['rss_mb']:.0f} "
              f"| {r['per'] / ref['per']:.2f} |")
    growth = {}
    for name, sel, key in (("T", rows[1:4], "T"), ("P", rows[4:7], "P")):
        x = np.log([r[key] for r in sel])
        per = np.log([r["per"] for r in sel])
        mem = np.log([r["rss_mb"] for r in sel])
        growth[name] = (np.polyfit(x, per, 1)[0], np.polyfit(x, mem, 1)[0])
        print(f"growth in {name}: time/iter ~ {name}^{growth[name][0]:.2f}, "
              f"peak RSS ~ {name}^{growth[name][1]:.2f}")
    # No A/B baseline here (a scaling measurement, each size in its own subprocess): the
    # protocol part is the conditions, the busy warning and the RESULTS.md rows.
    load = proto.load_summary(load_start, loads)
    b = rows[0]
    size = f"T={b['T']}, P={b['P']}, S={b['S']}, L={b['L']}"
    if not a.no_record:
        proto.record(SCRIPT, f"{size}: time to converge", f"{b['wall']:.1f} s, {b['n_iter']} "
                 f"iterations (converged: {b['converged']}), {b['per']:.2f} s/iter, peak RSS "
                 f"{b['rss_mb']:.0f} MB", rounds=1, target="converge", met="yes"
                 if b["converged"] else "**no**", load=load, info=info)
        proto.record(SCRIPT, f"{size}: growth exponents", f"time/iter ~ T^{growth['T'][0]:.2f}, "
                 f"~ P^{growth['P'][0]:.2f}; RSS ~ T^{growth['T'][1]:.2f}, "
                 f"~ P^{growth['P'][1]:.2f}", rounds=1, target="no (TP)^3 per sample",
                 met="yes" if max(growth["T"][0], growth["P"][0] * 2) < 3 else "**no**",
                 load=load, info=info)
    proto.warn_if_busy()


if __name__ == "__main__":
    main()
