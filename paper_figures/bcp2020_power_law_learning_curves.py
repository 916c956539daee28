"""Bordelon, Canatar & Pehlevan 2020 (arXiv 2002.02561): power-law learning curves.

Ridge(less) regression on a power-law task, lam_k = k^-b and lam_k w_k^2 = k^-a, decays as
E_g ~ P^-min(a-1, 2b). Three (a, b) pairs, one per exponent regime, theory lines against
simulation markers (mean and band over seeds), each with its fitted exponent.

Run (generate once, render from the stored results; re-running reuses finished points):

    python paper_figures/bcp2020_power_law_learning_curves.py [--preset full] [--out runs]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from theorysim.compare import get_experiment, run
from theorysim.compare._plots import figure, theory_vs_sim
from theorysim.compare._stats import seed_stats
from theorysim.theory import fit_power_law

PAIRS = ((2.0, 1.5), (1.5, 1.5), (3.0, 0.75))  # exponents 1, 0.5, 1.5


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="full", choices=("quick", "full"))
    parser.add_argument("--out", type=Path, default=Path("runs"))
    args = parser.parse_args(argv)

    exp = get_experiment("ridge-learning-curve")
    fig, axes = figure(1, 1, width=4.4)
    ax = axes[0, 0]
    for color, (a, b) in zip(("C0", "C1", "C2"), PAIRS, strict=True):
        cfg = exp.make_config(args.preset, {"a": str(a), "b": str(b)})
        ds = run(exp, cfg, args.out, figures=False).dataset
        stats = seed_stats(ds["sim_error"])
        P = ds["P"].values.astype(float)
        sel = P <= cfg.fit_max * cfg.M
        fit = fit_power_law(P[sel], stats.mean.values[sel], stats.sem.values[sel])
        predicted = min(a - 1, 2 * b)
        theory_vs_sim(ax, ds["P_theory"], ds["theory_error"], P, stats, color=color,
                      label=f"a={a:g}, b={b:g}: fit {fit.exponent:.2f} (pred. {predicted:g})")
    ax.set_xlabel("training samples $P$")
    ax.set_ylabel("generalisation error $E_g$")
    ax.set_title(r"$E_g \sim P^{-\min(a-1,\,2b)}$ (Bordelon et al. 2020)")
    ax.legend(fontsize=6.5)
    out = args.out / "paper_figures"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bcp2020_power_law_learning_curves.png"
    fig.savefig(path, dpi=200, bbox_inches="tight")
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")
    print(f"figure: {path}")
    return path


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
