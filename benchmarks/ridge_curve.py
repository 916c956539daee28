"""Benchmark: ``ridge_risk`` on a learning curve vs a per-point SciPy root-finding loop.

Workload: the power-law spectrum lam_k = k^-1.5, lam_k w_k^2 = k^-2 with M = 100,000 modes,
1,000 log-spaced values of P, ridge 1e-7, noise 0.1 (``--quick``: the baseline is timed on
8 instead of 40 of the P values).

Baseline (how reference code does it): for each P, ``scipy.optimize.brentq`` on the NumPy
function ``kappa - ridge - kappa/P * sum(lam/(lam + kappa))`` in the THEORY.md bracket
``[ridge, ridge + sum(lam)/P]`` (rtol 4 eps, so it reaches the same accuracy), then gamma and
E_g from full NumPy sums. The loop is timed on an evenly spaced subset of the P values and
extrapolated per point to the full grid (stated in the output).

Run: ``python benchmarks/ridge_curve.py [--quick] [--rounds 5]``. Both sides are timed in
interleaved rounds (``benchmarks/_protocol.py``); the speed-up is the median (min-max) of the
per-round ratios, recorded in RESULTS.md with the load and thread settings.
"""

from __future__ import annotations

import argparse
import time

import _protocol as P
import numpy as np
from scipy.optimize import brentq

from theorysim.theory import power_law_spectrum, ridge_risk


def baseline_point(lam, tp, P, ridge, noise):
    """Per-point reference: brentq for kappa, then gamma and E_g from full sums."""

    def g(kappa):
        return kappa - ridge - kappa / P * np.sum(lam / (lam + kappa))

    kappa = brentq(g, ridge, ridge + lam.sum() / P, xtol=1e-300, rtol=4 * np.finfo(float).eps)
    gamma = np.sum((lam / (lam + kappa)) ** 2) / P
    bias = np.sum(tp * (kappa / (lam + kappa)) ** 2)
    return kappa, (bias + noise**2 * gamma) / (1 - gamma)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="time the baseline on 8 P values instead of 40 (same workload)")
    P.add_arguments(ap, rounds=5)
    args = ap.parse_args(argv)
    info = P.print_conditions("ridge_curve.py")
    M, n_P, n_base = 100_000, 1000, (8 if args.quick else 40)
    ridge, noise = 1e-7, 0.1
    lam, tp = power_law_spectrum(M, 1.5, 2.0)
    P_grid = np.geomspace(10, M / 2, n_P)

    t0 = time.perf_counter()
    ridge_risk(lam, tp, P_grid, ridge, noise)  # first call: includes jit compilation
    t_first = time.perf_counter() - t0
    idx = np.linspace(0, n_P - 1, n_base).round().astype(int)

    def baseline():  # per-point loop on n_base of the P values, extrapolated to all n_P
        t = time.perf_counter()
        for i in idx:
            baseline_point(lam, tp, P_grid[i], ridge, noise)
        return (time.perf_counter() - t) / n_base * n_P

    comp = P.interleaved("ridge_risk vs brentq loop", P.timer(
        lambda: ridge_risk(lam, tp, P_grid, ridge, noise)), baseline, args.rounds)
    r = ridge_risk(lam, tp, P_grid, ridge, noise)
    ref = np.array([baseline_point(lam, tp, P_grid[i], ridge, noise) for i in idx])
    t_ours, t_base = float(np.median(comp.ours)), float(np.median(comp.base))
    d_kappa = float(np.max(np.abs(r.kappa[idx] - ref[:, 0]) / ref[:, 0]))
    d_err = float(np.max(np.abs(r.error[idx] - ref[:, 1]) / ref[:, 1]))
    ratio = comp.median
    print(f"ridge_risk learning curve: M = {M:,} modes, {n_P:,} values of P "
          f"(P = 10 .. {M // 2:,}), ridge {ridge:g}, noise {noise:g}")
    print("| method | time (s) | per point (ms) |")
    print("|---|---|---|")
    print(f"| ridge_risk (vectorised, Gauss-compressed spectrum), median over rounds "
          f"| {t_ours:.4f} | {1e3 * t_ours / n_P:.4f} |")
    print(f"| ridge_risk first call (incl. jit compile) | {t_first:.3f} | - |")
    print(f"| scipy brentq loop, timed on {n_base} of the {n_P} P values, extrapolated "
          f"| {t_base:.3f} | {1e3 * t_base / n_P:.3f} |")
    print(f"speed-up (warm): {comp.ratio_text(0)} over {args.rounds} interleaved rounds "
          f"(target >= 100x); load {comp.load_text()}")
    print(f"agreement on the {n_base} baseline points: max rel diff kappa {d_kappa:.1e}, "
          f"E_g {d_err:.1e}; max kappa residual {r.residual:.1e}, "
          f"max iterations {r.iterations}")
    ok = d_kappa <= 1e-9 and d_err <= 1e-9
    print("agree: " + ("yes" if ok else "NO"))
    if not args.no_record:
        P.record("ridge_curve.py", "ridge_risk 1,000 P x 100,000 modes vs brentq loop"
                 + (" (--quick)" if args.quick else ""), comp.ratio_text(0), rounds=args.rounds,
                 target=">= 100x", met="yes" if comp.median >= 100 else "**no**",
                 load=comp.load_text(), info=info)
    P.warn_if_busy()
    if not ok:
        raise SystemExit(1)
    return {"ratio": ratio, "t_ours": t_ours, "t_base": t_base, "d_kappa": d_kappa}


if __name__ == "__main__":
    main()
