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


def curve_minimum(x, y) -> float:
    """Minimiser of a sampled curve y(x): the argmin of its finite points, moved to the vertex
    of the parabola through it and its two neighbours (by at most half a step; an argmin at an
    end stays; NaN if no point is finite).

    >>> curve_minimum(np.array([0.0, 1, 2, 3]), np.array([4.0, 0.5, 0.5, 9]))
    1.5
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    x, y = x[np.isfinite(y)], y[np.isfinite(y)]
    i = int(np.argmin(y)) if len(y) else -1
    if i in (-1, 0, len(y) - 1):
        return float(x[i]) if len(y) else float("nan")
    a, b, _ = np.polyfit(x[i - 1:i + 2], y[i - 1:i + 2], 2)
    h = min(x[i] - x[i - 1], x[i + 1] - x[i]) / 2
    return float(np.clip(-b / (2 * a), x[i] - h, x[i] + h)) if a > 0 else float(x[i])
