"""Benchmark: ``scaling_law_dynamics`` on a 64 x 64 (N, t) grid with M = 10^4 modes.

Prints the wall time of the solver (time-blocked Talbot contours, the default) and two
baselines measured in the same run: the same solver with one contour per time
(``time_block=1``) on the full grid, and a naive per-point Python loop (one solver call per
(N, t) point, timed on a sample of points and extrapolated to the grid). Also prints the
largest relative difference between the blocked and per-time losses. Each baseline is timed
against the default in interleaved rounds (``benchmarks/_protocol.py``: median and min-max of
the per-round ratios, load and thread settings, rows in RESULTS.md).

Usage::

    python benchmarks/scaling_dynamics.py            # M=1e4, 64 x 64, 3 rounds
    python benchmarks/scaling_dynamics.py --quick    # M=2000, 16 x 16
"""

from __future__ import annotations

import argparse
import math
import time

import _protocol as P
import numpy as np

from theorysim.theory import power_law_spectrum, scaling_law_dynamics

SCRIPT = "scaling_dynamics.py"


def _timed(fn, repeats: int = 1):
    best = math.inf
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="M=2000 on a 16 x 16 grid")
    ap.add_argument("--P", type=float, default=math.inf, help="samples (default inf: online)")
    P.add_arguments(ap, rounds=3)
    args = ap.parse_args()
    info = P.print_conditions(SCRIPT)
    M, n_grid, n_loop = (2000, 16, 4) if args.quick else (10_000, 64, 8)
    lam, tp = power_law_spectrum(M, 1.5, 2.0)
    N = np.geomspace(16, 4096, n_grid)
    t = np.geomspace(1.0, 1e4, n_grid)

    def blocked():
        return scaling_law_dynamics(lam, tp, args.P, N, t)

    def per_time():
        return scaling_law_dynamics(lam, tp, args.P, N, t, time_block=1.0)

    t_first, _ = _timed(blocked)                 # includes jit compilation
    _timed(per_time)                             # compile
    rng = np.random.default_rng(0)
    pts = rng.choice(n_grid * n_grid, size=n_loop, replace=False)
    scaling_law_dynamics(lam, tp, args.P, N[0], [t[0]])                  # compile, 1 point

    def loop():  # per-point Python loop on n_loop points, extrapolated to the grid
        t0 = time.perf_counter()
        for p in pts:
            i, j = divmod(int(p), n_grid)
            scaling_law_dynamics(lam, tp, args.P, N[i], [t[j]])
        return (time.perf_counter() - t0) / n_loop * n_grid * n_grid

    ours = P.timer(blocked)
    c_loop = P.interleaved("blocked vs per-point loop", ours, loop, args.rounds)
    c_time = P.interleaved("blocked vs one contour per time", ours, P.timer(per_time),
                           args.rounds)
    r_blocked, r_per_time = blocked(), per_time()
    diff = np.max(np.abs(r_blocked.loss / r_per_time.loss - 1.0))
    t_blocked = float(np.median(c_loop.ours + c_time.ours))

    print(f"scaling_law_dynamics: M={M}, grid N x t = {n_grid} x {n_grid}, P={args.P}, "
          f"nodes={r_blocked.nodes}, converged={r_blocked.converged}")
    print(f"{'method':44s} {'seconds':>9s} {'ratio (median, min-max)':>24s}")
    print(f"{'blocked contours (default), warm, median':44s} {t_blocked:9.2f} {'1':>24s}")
    print(f"{'blocked contours, first call (with jit)':44s} {t_first:9.2f}")
    print(f"{'one contour per time (time_block=1), warm':44s} "
          f"{float(np.median(c_time.base)):9.2f} {c_time.ratio_text():>24s}")
    print(f"{'per-point Python loop (extrapolated)':44s} {float(np.median(c_loop.base)):9.2f} "
          f"{c_loop.ratio_text():>24s}")
    print(f"max relative difference blocked vs per-time: {diff:.2e}")
    if not args.no_record:
        size = f"{n_grid} x {n_grid} grid, M = {M}"
        P.record(SCRIPT, f"{size}: blocked vs per-point loop", c_loop.ratio_text(1),
                 rounds=args.rounds, target="faster than a loop; seconds",
                 met="yes" if c_loop.median > 1 else "**no**", load=c_loop.load_text(),
                 info=info)
        P.record(SCRIPT, f"{size}: blocked vs one contour per time", c_time.ratio_text(1),
                 rounds=args.rounds, target="-", met="-", load=c_time.load_text(), info=info)
        P.record(SCRIPT, f"{size}: blocked, wall time", f"{t_blocked:.2f} s (median)",
                 rounds=2 * args.rounds, target="seconds", met="yes" if t_blocked < 60 else
                 "**no**", load=c_loop.load_text(), info=info)
    P.warn_if_busy()


if __name__ == "__main__":
    main()
