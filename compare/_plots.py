"""Plot helpers: theory as lines, simulation as markers with error bands."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ._stats import SeedStats  # noqa: E402

STYLE = {
    "figure.dpi": 110,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def figure(ncols: int = 1, nrows: int = 1, width: float = 3.4):
    """A figure of ``nrows x ncols`` panels, ``width`` inches per panel, in the house style."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 0.8 * width * nrows),
                                 squeeze=False, layout="constrained")
    return fig, axes


def theory_vs_sim(ax, x_theory, y_theory, x_sim, stats: SeedStats, *, color=None,
                  label: str = "", log: bool = True, band: str = "log"):
    """Draw theory (line) and simulation (markers + band) of one curve on ``ax``.

    Args:
        band: ``"log"`` for the geometric-mean band (log axes), ``"sem"`` for mean +- SE.
    """
    with plt.rc_context(STYLE):
        (line,) = ax.plot(x_theory, y_theory, "-", color=color, lw=1.4,
                          label=f"{label} theory" if label else "theory")
        c = line.get_color()
        mean = np.asarray(stats.mean)
        if band == "log":
            lo, hi = np.asarray(stats.lo), np.asarray(stats.hi)
        else:
            lo, hi = mean - np.asarray(stats.sem), mean + np.asarray(stats.sem)
        ax.fill_between(np.asarray(x_sim), lo, hi, color=c, alpha=0.25, lw=0)
        ax.errorbar(np.asarray(x_sim), mean, yerr=np.asarray(stats.sem), fmt="o", ms=3.5,
                    color=c, mfc="white", mew=1.0, elinewidth=0.8, capsize=1.5,
                    label=f"{label} sim (n={stats.n})" if label else f"sim (n={stats.n})")
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
    return c
