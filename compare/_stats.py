"""Statistics over seeds: means, standard errors, log-space bands and agreement in SE units."""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr


@dataclasses.dataclass(frozen=True)
class SeedStats:
    """Summary of a quantity over its ``seed`` dimension.

    ``mean`` and ``sem`` are the sample mean and its standard error (ddof=1). ``lo``/``hi`` is a
    band for log-scale plots: exp(mean(log x) -/+ sem(log x)), i.e. one standard error of the
    geometric mean, which stays positive for positive data.
    """

    mean: xr.DataArray
    sem: xr.DataArray
    lo: xr.DataArray
    hi: xr.DataArray
    n: int

    def map(self, fn) -> SeedStats:
        """The same statistics with ``fn`` applied to each array (e.g. a selection)."""
        return SeedStats(fn(self.mean), fn(self.sem), fn(self.lo), fn(self.hi), self.n)


def seed_stats(values: xr.DataArray, dim: str = "seed") -> SeedStats:
    """Mean, standard error and a log-space band of ``values`` over ``dim``."""
    n = values.sizes[dim]
    if n < 2:
        raise ValueError(f"need at least 2 entries along {dim!r} for a standard error, got {n}")
    finite = values.where(np.isfinite(values))
    mean = finite.mean(dim)
    sem = finite.std(dim, ddof=1) / np.sqrt(finite.count(dim))
    logv = np.log(finite.where(finite > 0))
    lmean = logv.mean(dim)
    lsem = logv.std(dim, ddof=1) / np.sqrt(logv.count(dim))
    return SeedStats(mean, sem, np.exp(lmean - lsem), np.exp(lmean + lsem), n)


def z_scores(theory, mean, sem) -> np.ndarray:
    """(simulation mean - theory) / SE, elementwise; inf where SE is 0 and they differ, NaN
    where there is no simulation (NaN mean or SE).

    >>> z_scores([1.0, 1.0, 1.0], [1.2, 1.0, np.nan], [0.1, 0.0, np.nan]).round(6).tolist()
    [2.0, 0.0, nan]
    """
    theory, mean, sem = (np.asarray(a, dtype=np.float64) for a in (theory, mean, sem))
    diff = mean - theory
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sem > 0, diff / sem, np.where(diff == 0, 0.0, np.inf))
    return np.where(np.isnan(diff) | np.isnan(sem), np.nan, z)


def agreement_rows(coord: str, values, theory, stats: SeedStats, **extra) -> tuple[dict, ...]:
    """Rows ``{coord, theory, sim, sem, z, ...extra}`` for a report table."""
    z = z_scores(theory, stats.mean, stats.sem)
    rows = []
    for i, v in enumerate(np.asarray(values)):
        row = {coord: v.item(), "theory": float(np.asarray(theory)[i]),
               "sim": float(stats.mean.values[i]), "sem": float(stats.sem.values[i]),
               "z": float(z[i])}
        row.update({k: np.asarray(e)[i].item() for k, e in extra.items()})
        rows.append(row)
    return tuple(rows)


def curve_minima(values: xr.DataArray, dim: str, seeds=None, half_width: int = 2) -> xr.DataArray:
    """:func:`curve_minimum` of the seed-mean log of ``values`` along ``dim``, in log2 of that
    positive, log-spaced coordinate (a learning rate, say): non-finite members are left out of
    the mean, a curve with no finite point gives NaN. The fit leaves out neighbours in the upper
    half between the curve's minimum and its first finite point (a learning-rate curve's untrained
    end: points past a blow-up). ``seeds``: the seed indices to average (default all; a
    resample of them gives one bootstrap draw).

    >>> v = xr.DataArray([[4.0, 1.8, 1.0, 1.5, 8.0]] * 2, dims=("seed", "lr"),
    ...                  coords={"lr": [1.0, 2.0, 4.0, 8.0, 16.0]})
    >>> round(float(curve_minima(v, "lr", half_width=1)), 3)
    2.092
    """
    v = values.where(np.isfinite(values))
    v = np.log((v if seeds is None else v.isel(seed=seeds)).mean("seed"))
    return xr.apply_ufunc(lambda x, y: curve_minimum(x, y, half_width, _ceiling(y)),
                          np.log2(values[dim].values), v, input_core_dims=[[dim], [dim]],
                          vectorize=True)


def _ceiling(y) -> float:
    """The well's lower half, not past a blow-up: halfway between the curve's minimum and its
    first finite point (a curve sampled on part of a shared grid starts later)."""
    y = y[np.isfinite(y)]
    return (y.min() + y[0]) / 2 if len(y) else np.inf


def curve_minimum(x, y, half_width: int = 1, ceiling: float = np.inf) -> float:
    """Minimiser of a sampled curve y(x): the argmin of its finite points, moved to the vertex
    of the least-squares parabola through it and its ``half_width`` neighbours on each side (by
    at most ``half_width`` / 2 steps; an argmin at an end stays; NaN if no point is finite).
    ``half_width=1`` is the parabola through three points; 2 (five points) averages the noise
    of a flat-bottomed curve. Neighbours above ``ceiling`` are left out of the fit (the argmin
    stays where fewer than three points remain), and the vertex stays within the points fitted:
    a fit through the argmin and one side only would extrapolate towards a left-out neighbour
    whose loss was measured to be higher (a plateau's steep edge, say).

    >>> curve_minimum(np.array([0.0, 1, 2, 3]), np.array([4.0, 0.5, 0.5, 9]))
    1.5
    >>> curve_minimum(np.arange(6.0), np.array([0.0, 0.0, -1.9, -1.75, -1.55, -1.3]), 2, -1)
    2.0
    """
    if not isinstance(half_width, int) or half_width < 1:
        raise ValueError(f"half_width must be an integer >= 1, got {half_width!r}")
    x, y = np.asarray(x, float), np.asarray(y, float)
    x, y = x[np.isfinite(y)], y[np.isfinite(y)]
    i = int(np.argmin(y)) if len(y) else -1
    if i in (-1, 0, len(y) - 1):
        return float(x[i]) if len(y) else float("nan")
    lo, hi = max(i - half_width, 0), i + half_width + 1
    keep = (y[lo:hi] <= ceiling) | (np.arange(lo, min(hi, len(y))) == i)
    if keep.sum() < 3:
        return float(x[i])
    xs = x[lo:hi][keep]
    a, b, _ = np.polyfit(xs, y[lo:hi][keep], 2)
    h = half_width * min(x[i] - x[i - 1], x[i + 1] - x[i]) / 2
    lo_x, hi_x = max(x[i] - h, xs.min()), min(x[i] + h, xs.max())  # never past a left-out point
    return float(np.clip(-b / (2 * a), lo_x, hi_x)) if a > 0 else float(x[i])
