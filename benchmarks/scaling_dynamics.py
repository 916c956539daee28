"""Benchmark: ``scaling_law_dynamics`` on a 64 x 64 (N, t) grid with M = 10^4 modes.

Prints the wall time of the solver (time-blocked Talbot contours, the default) and two
baselines measured in the same run: the same solver with one contour per time
(``time_block=1``) on the full grid, and a naive per-point Python loop (one solver call per
(N, t) point, timed on a sample of points and extrapolated to the grid). Also prints the
largest relative difference between the blocked and per-time losses.

Usage::

    /work/venv311/bin/python benchmarks/scaling_dynamics.py            # M=1e4, 64 x 64
    /work/venv311/bin/python benchmarks/scaling_dynamics.py --quick    # M=2000, 16 x 16
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from theorysim.theory import power_law_spectrum, scaling_law_dynamics


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
    args = ap.parse_args()
    M, n_grid, n_loop = (2000, 16, 4) if args.quick else (10_000, 64, 8)
    lam, tp = power_law_spectrum(M, 1.5, 2.0)
    N = np.geomspace(16, 4096, n_grid)
    t = np.geomspace(1.0, 1e4, n_grid)

    def blocked():
        return scaling_law_dynamics(lam, tp, args.P, N, t)

    def per_time():
        return scaling_law_dynamics(lam, tp, args.P, N, t, time_block=1.0)

    t_first, _ = _timed(blocked)                 # includes jit compilation
    t_blocked, r_blocked = _timed(blocked, repeats=2)
    _timed(per_time)                             # compile
    t_per_time, r_per_time = _timed(per_time)
    rng = np.random.default_rng(0)
    pts = rng.choice(n_grid * n_grid, size=n_loop, replace=False)
    scaling_law_dynamics(lam, tp, args.P, N[0], [t[0]])                  # compile, 1 point
    t0 = time.perf_counter()
    for p in pts:
        i, j = divmod(int(p), n_grid)
        scaling_law_dynamics(lam, tp, args.P, N[i], [t[j]])
    t_loop = (time.perf_counter() - t0) / n_loop * n_grid * n_grid
    diff = np.max(np.abs(r_blocked.loss / r_per_time.loss - 1.0))

    print(f"scaling_law_dynamics: M={M}, grid N x t = {n_grid} x {n_grid}, P={args.P}, "
          f"nodes={r_blocked.nodes}, converged={r_blocked.converged}")
    print(f"{'method':44s} {'seconds':>9s} {'ratio':>8s}")
    print(f"{'blocked contours (default), warm':44s} {t_blocked:9.2f} {1.0:8.2f}")
    print(f"{'blocked contours, first call (with jit)':44s} {t_first:9.2f} "
          f"{t_first / t_blocked:8.2f}")
    print(f"{'one contour per time (time_block=1), warm':44s} {t_per_time:9.2f} "
          f"{t_per_time / t_blocked:8.2f}")
    print(f"{'per-point Python loop (extrapolated)':44s} {t_loop:9.2f} "
          f"{t_loop / t_blocked:8.2f}")
    print(f"max relative difference blocked vs per-time: {diff:.2e}")


if __name__ == "__main__":
    main()
