"""Bordelon, Canatar & Pehlevan 2020 (arXiv 2002.02561): power-law learning curves.

Ridge(less) regression on a power-law task, lam_k = k^-b and lam_k w_k^2 = k^-a, decays as
E_g ~ P^-min(a-1, 2b) for P << M. Three (a, b) pairs, one per exponent regime, theory lines
against simulation markers (mean and standard error over seeds), each with its fitted exponent.

Each run's exponent criterion compares the simulation's fitted exponent with the theory's at the
same finite M, fitted on the same P (P <= M/4) with the same weights, within 3 standard errors.
The asymptotic min(a-1, 2b) is drawn as a dotted reference: at M = 1000 the curves steepen
before P reaches M (``ridge-learning-curve``'s docstring derives the local exponent
(a-1)/(1-(P/M)^(a-1)); for a = 1.5 the fit is about 0.65, not 0.5), so it is not the criterion.

Run (re-running reuses finished points; quick: a few minutes; full: longer, not timed here):

    python paper_figures/bcp2020_power_law_learning_curves.py [--preset quick|full] [--out runs]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _export import parse, run_logged, save
from matplotlib.legend_handler import HandlerTuple

from theorysim.compare import figure, legend, reference_power_law, seed_stats, theory_vs_sim

PAIRS = ((2.0, 1.5), (1.5, 1.5), (3.0, 0.75))  # exponents 1, 0.5, 1.5


def main(argv=None) -> Path:
    args = parse(__doc__.splitlines()[0], argv)
    fig, axes = figure(1, 1, width=4.4)
    ax = axes[0, 0]
    failed, rows, labels = [], [], []
    for color, (a, b) in zip(("C0", "C1", "C2"), PAIRS, strict=True):
        exp, cfg, res = run_logged("ridge-learning-curve", args.preset, args.out,
                                   {"a": str(a), "b": str(b)}, figures=False)
        if res.report.passed is False:
            failed.append((a, b))
        ds, m = res.dataset, res.report.metrics  # the report's fits, on P <= fit_max M
        theory_vs_sim(ax, ds["P_line"], ds["theory_error_line"], ds["P"],
                      seed_stats(ds["sim_error"]), color=color, label=f"pair {a}, {b}")
        x = ds["P_line"].values
        reference_power_law(ax, x, -cfg.learning_curve_exponent,
                            (x[0], float(ds["theory_error_line"][0])), color=color, ls=":",
                            lw=1.0)
        labels.append(f"a={a:g}, b={b:g}: sim {m['sim exponent fitted']:.2f} "
                      f"$\\pm$ {m['sim exponent fitted stderr']:.2f}, theory "
                      f"{m['sim exponent predicted']:.2f} (asymptotic "
                      f"{cfg.learning_curve_exponent:g})")
        rows.append(f"  a={a:g}, b={b:g}: sim exponent {m['sim exponent fitted']:.3f} +- "
                    f"{m['sim exponent fitted stderr']:.3f}, theory at M={cfg.M} "
                    f"{m['sim exponent predicted']:.3f}, asymptotic "
                    f"{cfg.learning_curve_exponent:g}: "
                    f"{'FAILED' if res.report.passed is False else 'PASSED'}")
    ax.set_xlabel("training samples $P$")
    ax.set_ylabel("generalisation error $E_g$")
    ax.set_title(r"$E_g \sim P^{-\min(a-1,\,2b)}$ (Bordelon et al. 2020)")
    lim = ax.get_xlim()
    ax.axvspan(lim[0], cfg.fit_max * cfg.M, color="0.93", zorder=-1)
    ax.set_xlim(lim)
    drawn = dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    pairs = [tuple(h for name, h in drawn.items() if name.startswith(f"pair {a}, {b} "))
             for a, b in PAIRS]  # per pair: its theory line and simulation markers
    (ref,) = ax.plot([], [], ":", color="0.3", lw=1.0)
    legend(ax, handles=[*pairs, ref],
           labels=[*labels, r"asymptotic $P^{-\min(a-1,2b)}$ ($P \ll M$)"],
           handler_map={tuple: HandlerTuple(ndivide=None)}, ncols=1,
           title=f"exponents fitted on the shaded range $P \\leq {cfg.fit_max:g}M$\n"
                 f"lines: theory at $M = {cfg.M}$; markers: simulation (mean $\\pm$ SE, "
                 f"{cfg.seeds} seeds)",
           title_fontsize=7)
    path = save(fig, args.out, "bcp2020_power_law_learning_curves")
    print(f"exponents (fitted on P <= {cfg.fit_max:g} M; criterion: the simulation's against "
          f"the theory's at the same M, within {cfg.z_max:g} SE; the asymptotic value is a "
          "reference):\n" + "\n".join(rows), flush=True)
    if failed:
        print(f"WARNING: the runs at (a, b) = {failed} FAILED their criterion (see above)")
    return path


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
