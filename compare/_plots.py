"""Plot helpers: theory as light lines, simulation as dark markers with error bars.

Theory and simulation never share a colour (the line is a light tint of the markers' colour),
error bars are drawn in black on top, and legends go beside the axes so they cover no data.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402

from ._stats import SeedStats, seed_stats  # noqa: E402

__all__ = ["STYLE", "figure", "heatmaps", "legend", "predicted_slope", "reference_power_law",
           "seed_curve", "sim_markers", "spectra", "theory_vs_sim", "tint"]

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


def tint(color, amount: float = 0.55):
    """``color`` mixed with white (``amount`` = share of white): the theory line's colour."""
    rgb = np.asarray(mcolors.to_rgb(color))
    return tuple(rgb + (1.0 - rgb) * amount)


def legend(ax, **kwargs):
    """A legend below ``ax`` (under its x label), so that it covers no data."""
    kwargs = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.3), "borderaxespad": 0.0,
              "fontsize": 7, "ncols": 2} | kwargs
    return ax.legend(**kwargs)


def theory_vs_sim(ax, x_theory, y_theory, x_sim, stats: SeedStats, *, color=None,
                  label: str = "", log: bool = True, band: str | None = None,
                  marker: str = "o"):
    """Draw theory (a light line) and simulation (dark markers, black SE bars) of one curve.

    Args:
        band: ``None`` (default: error bars only), ``"log"`` for the geometric-mean band (log
            axes) or ``"sem"`` for mean +- SE, drawn faintly under the markers.
    Returns:
        the markers' colour.
    """
    with plt.rc_context(STYLE):
        c = color if color is not None else "C0"
        ax.plot(x_theory, y_theory, "-", color=tint(c), lw=2.0, zorder=1,
                label=f"{label} theory" if label else "theory")
        mean, sem = np.asarray(stats.mean), np.asarray(stats.sem)
        if band is not None:
            lo, hi = ((np.asarray(stats.lo), np.asarray(stats.hi)) if band == "log"
                      else (mean - sem, mean + sem))
            ax.fill_between(np.asarray(x_sim), lo, hi, color=c, alpha=0.15, lw=0)
        sim_markers(ax, x_sim, mean, sem, color=c, fmt=marker,
                    label=f"{label} sim (n={stats.n}, ±SE)" if label else
                    f"sim (n={stats.n}, ±SE)")
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):  # short labels at 2 and 5 on a narrow axis
                axis.set_minor_formatter(_MinorLabels())
    return c


def sim_markers(ax, x, mean, sem, *, color="C0", fmt: str = "o", label: str | None = None,
                **kwargs):
    """Simulation means as markers (black edge) with black +-SE bars over theory lines."""
    style = {"ms": 4, "mec": "k", "mew": 0.5, "ecolor": "k", "elinewidth": 0.9, "capsize": 2,
             "zorder": 3} | kwargs
    return ax.errorbar(np.asarray(x), np.asarray(mean), yerr=np.asarray(sem), fmt=fmt,
                       color=color, label=label, **style)


class _MinorLabels(mticker.Formatter):
    """Minor-tick labels ``2``/``5`` x 10^k, plain, only on axes spanning about a decade or
    less (wider ones have enough major labels)."""

    def __call__(self, x, pos=None):
        lo, hi = sorted(self.axis.get_view_interval())
        if x <= 0 or lo <= 0 or hi / lo > 12:
            return ""
        m = x / 10 ** np.floor(np.log10(x))
        return f"{x:g}" if abs(m - round(m)) < 1e-6 and round(m) in (2, 5) else ""


def reference_power_law(ax, x, exponent: float, anchor: tuple[float, float], *,
                        label: str | None = None, **kwargs):
    """A dashed grey reference line ``y = y0 (x / x0)^exponent`` through ``anchor = (x0, y0)``
    (e.g. the claimed ``N^-1`` of a slope)."""
    x = np.asarray(x, float)
    x0, y0 = anchor
    kwargs = {"color": "0.45", "lw": 0.9, "ls": "--", "zorder": 0} | kwargs
    return ax.plot(x, y0 * (x / x0) ** exponent, label=label, **kwargs)


def predicted_slope(ax, x, check, y0: float, var: str = "P", **kwargs):
    """:func:`reference_power_law` of a fitted-exponent :class:`~theorysim.compare.Check`
    (``y ~ var^-predicted`` through ``(x[0], y0)``), labelled with the prediction and the fit."""
    x = np.asarray(x, float)
    fit = f"${check.fitted:.3f}" + (f" \\pm {check.stderr:.3f}$" if check.stderr else "$")
    return reference_power_law(ax, x, -check.predicted, (x[0], y0),
                               label=f"${var}^{{-{check.predicted:.3g}}}$ predicted; "
                                     f"{check.name.split(' exponent')[0]} fit {fit}", **kwargs)


def heatmaps(fig, axes, panels, *, labels=None, label: str):
    """One panel per ``title -> DataArray (y, x)`` on log axes ticked at its coordinates'
    values and labelled ``labels[dim]`` (default: the dimension's name), sharing colour limits
    and one colourbar labelled ``label``."""
    values = np.concatenate([np.ravel(v) for v in panels.values()])
    lo, hi = np.nanmin(values), np.nanmax(values)
    for ax, (title, data) in zip(axes, panels.items(), strict=True):
        (y, x), names = data.dims, labels or {}
        xs, ys = data[x].values, data[y].values
        im = ax.pcolormesh(xs, ys, np.asarray(data), shading="nearest", vmin=lo, vmax=hi,
                           cmap="viridis")
        ax.set(xscale="log", yscale="log", xlabel=names.get(x, x), ylabel=names.get(y, y),
               title=title)
        ax.set_xticks(xs, [str(v) for v in xs], minor=False)
        ax.set_yticks(ys, [str(v) for v in ys], minor=False)
        ax.minorticks_off()
    fig.colorbar(im, ax=list(axes), shrink=0.8, label=label)


def seed_curve(ax, x, values, *, dim: str = "seed", **kwargs) -> SeedStats:
    """Mean +- SE of ``values`` over ``dim`` (:func:`~theorysim.compare.seed_stats`) as
    markers joined by a line with error bars, against ``x``; returns the statistics."""
    st = seed_stats(values, dim)
    style = {"fmt": "o-", "ms": 3, "lw": 1, "capsize": 1.5} | kwargs
    ax.errorbar(np.asarray(x), st.mean, yerr=st.sem, **style)
    return st


def spectra(ax, curves, colors=None, *, ylabel: str, title: str, floor: float = 1e-14):
    """Eigenvalue spectra ``label -> eigenvalues (descending)`` against the mode index on log
    axes, without the numerically zero tail (below ``floor`` times the largest)."""
    for i, (label, lam) in enumerate(curves.items()):
        lam = np.asarray(lam)
        lam = lam[lam > floor * lam.max()]
        ax.loglog(np.arange(1, lam.size + 1), lam, lw=1.2, label=label,
                  color=colors[i % len(colors)] if colors else f"C{i}")
    ax.set(xlabel="mode $k$", ylabel=ylabel, title=title)
    legend(ax, loc="upper right", bbox_to_anchor=(1.0, 1.0))
