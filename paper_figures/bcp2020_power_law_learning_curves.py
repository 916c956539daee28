"""Bordelon, Canatar & Pehlevan 2020 (arXiv 2002.02561): power-law learning curves.

Ridge(less) regression on a power-law task, lam_k = k^-b and lam_k w_k^2 = k^-a, decays as
E_g ~ P^-min(a-1, 2b). Three (a, b) pairs, one per exponent regime, theory lines against
simulation markers (mean and standard error over seeds), each with its fitted exponent.

Run (re-running reuses finished points; quick: a few minutes; full: longer, not timed here):

    python paper_figures/bcp2020_power_law_learning_curves.py [--preset quick|full] [--out runs]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _export import parse, run_logged, save

from theorysim.compare import figure, legend, seed_stats, theory_vs_sim

PAIRS = ((2.0, 1.5), (1.5, 1.5), (3.0, 0.75))  # exponents 1, 0.5, 1.5


def main(argv=None) -> Path:
    args = parse(__doc__.splitlines()[0], argv)
    fig, axes = figure(1, 1, width=4.4)
    ax = axes[0, 0]
    failed = []
    for color, (a, b) in zip(("C0", "C1", "C2"), PAIRS, strict=True):
        exp, cfg, res = run_logged("ridge-learning-curve", args.preset, args.out,
                                   {"a": str(a), "b": str(b)}, figures=False)
        if res.report.passed is False:
            failed.append((a, b))
        ds = res.dataset
        fitted = res.report.metrics["sim exponent fitted"]  # the report's fit, P <= fit_max M
        theory_vs_sim(ax, ds["P_line"], ds["theory_error_line"], ds["P"],
                      seed_stats(ds["sim_error"]), color=color,
                      label=f"a={a:g}, b={b:g}: fit {fitted:.2f} "
                            f"(pred. {cfg.learning_curve_exponent:g})")
    ax.set_xlabel("training samples $P$")
    ax.set_ylabel("generalisation error $E_g$")
    ax.set_title(r"$E_g \sim P^{-\min(a-1,\,2b)}$ (Bordelon et al. 2020)")
    legend(ax, ncols=1)
    path = save(fig, args.out, "bcp2020_power_law_learning_curves")
    if failed:
        print(f"WARNING: the runs at (a, b) = {failed} FAILED their criterion (see above)")
    return path


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
