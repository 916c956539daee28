r"""The comparison layer: what every theory-vs-simulation experiment shares.

A typical experiment is a :class:`Sweep`: its config, its sweep grid, one ``sample`` mapping
(one sweep point -> simulated values over seeds) and one ``predict`` mapping (grid ->
theory values and the solver results). :class:`Sweep` then

- evaluates the theory at the sweep points (``theory_<q>``) and on a fine grid along one
  coordinate (``theory_<q>_line`` on ``<x>_line``), and stores every solver's diagnostics
  (``converged``, ``residual``, ``iterations``: :func:`solver_diagnostics`) in the dataset;
- derives every point's PRNG key from ``cfg.seed`` and the point (:meth:`Sweep.key`);
- computes seed statistics, z-scores and relative deviations of each compared quantity,
  applies the standard agreement criterion (:func:`agreement`), builds the report rows and
  draws the default figure (theory lines, simulation markers with error bars);
- reports FAILED, with the reason, when a theory solver did not converge.

The agreement criterion: a point agrees when
:math:`|\bar s - t| \le z_{\max}\,\mathrm{SE} + r_{\max}|t|`, where :math:`r_{\max}` is a
systematic relative deviation the experiment states as part of its prediction (0 unless a
known, measured finite-size bias is declared); the experiment passes when at least
``min_within`` of its points agree and no plain ``|z|`` exceeds ``z_max + z_slack``.

>>> import numpy as np
>>> ok, m = agreement(np.array([0.5, -2.0, 4.0]), z_max=3.0)
>>> ok, m["max |z|"], m["points within 3 SE"]
(False, 4.0, Ratio(k=2, n=3))
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import jax
import numpy as np
import xarray as xr

from theorysim.theory import fit_power_law

from ._experiment import Experiment, Report
from ._plots import figure, legend, theory_vs_sim
from ._report import Ratio
from ._stats import SeedStats, seed_stats, z_scores

__all__ = ["Comparison", "Prediction", "Sweep", "agreement", "agreement_report",
           "theory_dataset", "compare", "diagnostics_rows",
           "power_fit", "solve", "solver_diagnostics", "theory_failure"]


# ----------------------------------------------------------------------------- theory side

def solve(fn: Callable, *args, **kwargs):
    """Call a theory solver so that it returns (not raises) a non-converged result:
    ``throw=False`` where the solver takes it (the solver contract)."""
    try:
        takes_throw = "throw" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        takes_throw = False
    return fn(*args, throw=False, **kwargs) if takes_throw else fn(*args, **kwargs)


def solver_diagnostics(result) -> dict[str, Any]:
    """``converged``/``residual``/``iterations`` of a solver result, reduced over its grid
    (all converged, worst residual, most iterations); a closed form without them counts as
    converged with residual 0."""
    conv = np.asarray(getattr(result, "converged", True))
    res = np.asarray(getattr(result, "residual", 0.0), dtype=np.float64)
    its = np.asarray(getattr(result, "iterations", 0))
    worst = float(np.max(np.where(np.isnan(res), np.inf, res))) if res.size else 0.0
    return {"converged": bool(np.all(conv)), "residual": worst,
            "iterations": int(np.max(its)) if its.size else 0}


def _diagnostics_dataset(solvers: Mapping[str, Any]) -> xr.Dataset:
    names = list(solvers) or ["closed form"]
    diag = [solver_diagnostics(solvers[n]) if n in solvers else solver_diagnostics(None)
            for n in names]
    return xr.Dataset({f"theory_{k}": ("solver", [d[k] for d in diag])
                       for k in ("converged", "residual", "iterations")},
                      coords={"solver": names})


def diagnostics_rows(ds: xr.Dataset) -> tuple[dict[str, Any], ...]:
    """One report row per theory solver stored in ``ds``."""
    if "theory_converged" not in ds:
        return ()
    return tuple({"solver": str(s), "converged": bool(ds["theory_converged"].values[i]),
                  "residual": float(ds["theory_residual"].values[i]),
                  "iterations": int(ds["theory_iterations"].values[i])}
                 for i, s in enumerate(ds["solver"].values))


def theory_failure(ds: xr.Dataset) -> str | None:
    """Why the theory cannot be trusted (a solver that did not converge), or None."""
    bad = [r for r in diagnostics_rows(ds) if not r["converged"]]
    if not bad:
        return None
    return "; ".join(f"theory solver {r['solver']} did not converge (residual "
                     f"{r['residual']:.3g} after {r['iterations']} iterations)" for r in bad)


def theory_dataset(data: Mapping[str, tuple], coords: Mapping[str, Any],
                   solvers: Mapping[str, Any] | None = None) -> xr.Dataset:
    """A theory dataset with the diagnostics of its ``solvers`` (name -> result; none: a
    closed form, converged with residual 0) as ``theory_converged/residual/iterations``."""
    return xr.merge([xr.Dataset(data, coords=coords), _diagnostics_dataset(solvers or {})])


def agreement_report(ds: xr.Dataset, *, passed: bool, criterion: str, **fields) -> Report:
    """A :class:`Report` with the theory diagnostics of ``ds``; FAILED, with the reason in the
    notes, when a theory solver did not converge."""
    failure = theory_failure(ds)
    notes = tuple(fields.pop("notes", ()))
    if failure:
        notes = (f"FAILED: {failure}", *notes)
    return Report(notes=notes, passed=bool(passed and not failure), criterion=criterion,
                  diagnostics=diagnostics_rows(ds), **fields)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """What a ``predict`` mapping returns.

    Attributes:
        values: name -> array over the requested grid (dims in the experiment's order).
            (from :meth:`Sweep.extras`: name -> ``(dims, array)`` on any grid).
        solvers: solver name -> its result (for the diagnostics).
        attrs: scalars for the dataset's attributes (e.g. fitted exponents).
    """

    values: Mapping[str, Any]
    solvers: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


# ----------------------------------------------------------------------------- statistics

@dataclasses.dataclass(frozen=True)
class Comparison:
    """Simulation (over seeds) vs theory of one quantity at the sweep points."""

    stats: SeedStats
    theory: xr.DataArray
    z: xr.DataArray
    rel: xr.DataArray
    excess: xr.DataArray  # |diff| beyond the allowed systematic deviation, in SE units


def compare(ds: xr.Dataset, name: str, *, dim: str = "seed", rel_max=0.0) -> Comparison:
    """Compare ``sim_<name>`` (over ``dim``) with ``theory_<name>`` at the sweep points."""
    stats = seed_stats(ds[f"sim_{name}"], dim=dim)
    th = ds[f"theory_{name}"]
    z = xr.apply_ufunc(z_scores, th, stats.mean, stats.sem)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = stats.mean / th - 1.0
        diff = np.abs(stats.mean - th) - rel_max * np.abs(th)
        excess = xr.where(diff <= 0, 0.0, diff / stats.sem)
    excess = excess.where(np.isfinite(stats.mean))
    return Comparison(stats, th, z, rel, excess)


def agreement(z, *, z_max: float, excess=None, min_within: float = 1.0,
              z_slack: float = 0.0, allowance: str = "") -> tuple[bool, dict[str, Any]]:
    """The standard criterion (module docstring) over the finite entries of ``z``; returns
    ``(passed, metrics)`` with ``max |z|`` and the count of points within ``z_max`` SE (plus
    the declared deviation, named by ``allowance``)."""
    z = np.asarray(z, float).ravel()
    ok = np.isfinite(z)
    z = z[ok]
    exc = np.abs(z) if excess is None else np.asarray(excess, float).ravel()[ok]
    within = int(np.sum(exc <= z_max))
    metrics = {"max |z|": float(np.max(np.abs(z))) if z.size else np.nan,
               f"points within {z_max:g} SE{allowance}": Ratio(within, int(z.size))}
    passed = bool(z.size and within >= min_within * z.size
                  and (min_within >= 1.0 or np.all(np.abs(z) <= z_max + z_slack)))
    return passed, metrics


def power_fit(x, y, sigma=None, *, where=None):
    """:func:`theorysim.theory.fit_power_law` of ``y ~ c x^-alpha`` over the entries ``where``
    (the one fitter of every experiment; a growth slope is ``-fit.exponent``).

    >>> round(power_fit([1, 2, 4, 8], [1.0, 0.5, 0.25, 9.0], where=[1, 1, 1, 0]).exponent, 12)
    1.0
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.ones(x.shape, bool) if where is None else np.asarray(where, bool)
    return fit_power_law(x[keep], y[keep], None if sigma is None else
                         np.asarray(sigma, float)[keep])


# ----------------------------------------------------------------------------- the sweep

class Sweep(Experiment):
    """An experiment over a grid of sweep points whose theory predicts seed means.

    Subclasses declare:

    - ``dims``: the coordinates of a sweep point; ``trailing``: coordinates a single point's
      simulation records along (e.g. time); ``grid(cfg)`` -> values of both;
    - ``compared``: quantities in the criterion (``sim_<q>`` vs ``theory_<q>``); ``shown``:
      quantities compared in the table but not in the criterion;
    - ``line``: the coordinate refined for the theory curves (``line_grid``);
    - ``sample(cfg, point, key)`` -> ``{q: array (seeds, *trailing)}`` (or ``(dims, array)``);
    - ``predict(cfg, **coords)`` -> :class:`Prediction` with arrays over ``dims + trailing``.
    """

    dims: ClassVar[tuple[str, ...]] = ("P",)
    trailing: ClassVar[tuple[str, ...]] = ()
    compared: ClassVar[tuple[str, ...]] = ("error",)
    shown: ClassVar[tuple[str, ...]] = ()
    line: ClassVar[str | None] = "P"
    line_points: ClassVar[int] = 200
    labels: ClassVar[Mapping[str, str]] = {}
    min_within: ClassVar[float] = 1.0
    z_slack: ClassVar[float] = 0.0

    @abc.abstractmethod
    def grid(self, cfg) -> dict[str, Sequence]: ...

    @abc.abstractmethod
    def sample(self, cfg, point: dict[str, Any], key: jax.Array) -> Mapping[str, Any]: ...

    @abc.abstractmethod
    def predict(self, cfg, **coords: np.ndarray) -> Prediction: ...

    def extras(self, cfg, coords: Mapping[str, np.ndarray]) -> Prediction | None:
        """Further theory off the sweep grid (values ``name -> (dims, array)``; coordinates
        of new dims as ``coords[dim] = values``), computed once (override)."""
        return None

    def title(self, cfg) -> str:
        return self.summary

    def rel_max(self, cfg):
        """The declared systematic relative deviation (a number or a DataArray over dims)."""
        return getattr(cfg, "rel_max", 0.0)

    def criterion(self, cfg) -> str:
        text = f"every point within {cfg.z_max:g} SE"
        if self.min_within < 1.0:
            text = (f">= {self.min_within:.0%} of points within {cfg.z_max:g} SE, none beyond "
                    f"{cfg.z_max + self.z_slack:g}")
        r = self.rel_max(cfg)
        if not isinstance(r, xr.DataArray) and r > 0:
            text += f" + {r:.0%} of the theory (declared systematic deviation)"
        return f"{text} ({', '.join(self.compared)})"

    def summarize(self, cfg, ds: xr.Dataset) -> tuple[dict, tuple[str, ...], bool]:
        """More metrics, notes and a further pass condition (override)."""
        return {}, (), True

    # -- runner interface --------------------------------------------------------------------
    def points(self, cfg):
        g = self.grid(cfg)
        return [dict(zip(self.dims, vals, strict=True))
                for vals in itertools.product(*(g[d] for d in self.dims))]

    def key(self, cfg, point) -> jax.Array:
        """The point's PRNG key: ``cfg.seed`` folded with each coordinate of the point."""
        key = jax.random.key(cfg.seed)
        g = self.grid(cfg)
        for d in self.dims:
            v = point[d]
            if isinstance(v, str):
                v = list(g[d]).index(v)
            key = jax.random.fold_in(key, 0 if v == np.inf else int(round(v)))
        return key

    def simulate(self, cfg, point):
        g = self.grid(cfg)
        data, coords = {}, {d: [point[d]] for d in self.dims}
        for name, value in self.sample(cfg, point, self.key(cfg, point)).items():
            dims, arr = value if isinstance(value, tuple) else (("seed", *self.trailing), value)
            arr = np.asarray(arr, dtype=np.float64)
            data[f"sim_{name}"] = ((*self.dims, *dims), arr[(None,) * len(self.dims)])
            for d, n in zip(dims, arr.shape, strict=True):
                coords.setdefault(d, g[d] if d in g else np.arange(n))
        return xr.Dataset(data, coords=coords)

    def line_grid(self, cfg, values) -> np.ndarray:
        v = np.asarray(values, float)
        fine = np.geomspace(v.min(), v.max(), self.line_points)
        if np.issubdtype(np.asarray(values).dtype, np.integer):
            fine = np.unique(fine.round())
        return fine

    def theory(self, cfg):
        g = self.grid(cfg)
        all_dims = (*self.dims, *self.trailing)
        grid = {d: np.asarray(g[d]) for d in all_dims}
        coords = dict(grid)
        at = self.predict(cfg, **grid)
        data = {f"theory_{k}": (all_dims, np.asarray(v, np.float64)) for k, v in
                at.values.items()}
        solvers, attrs = dict(at.solvers), dict(at.attrs)
        if self.line is not None:
            fine = {**grid, self.line: self.line_grid(cfg, g[self.line])}
            ln = self.predict(cfg, **fine)
            ldims = tuple(f"{d}_line" if d == self.line else d for d in all_dims)
            data.update({f"theory_{k}_line": (ldims, np.asarray(v, np.float64))
                         for k, v in ln.values.items()})
            coords[f"{self.line}_line"] = fine[self.line]
            solvers.update({f"{name} (fine grid)": res for name, res in ln.solvers.items()})
        ex = self.extras(cfg, coords)
        if ex is not None:
            data.update(ex.values)
            solvers.update(ex.solvers)
            attrs.update(ex.attrs)
        ds = xr.Dataset(data, coords=coords, attrs=attrs)
        return xr.merge([ds, _diagnostics_dataset(solvers)])

    def combine(self, cfg, theory, sims):
        return xr.merge([theory, *sims], join="outer", compat="no_conflicts",
                        combine_attrs="drop_conflicts")

    # -- report ------------------------------------------------------------------------------
    def comparisons(self, cfg, ds) -> dict[str, Comparison]:
        return {q: compare(ds, q, rel_max=self.rel_max(cfg) if q in self.compared else 0.0)
                for q in (*self.compared, *self.shown)}

    def rows(self, cfg, ds, comps: Mapping[str, Comparison]) -> tuple[dict, ...]:
        main = comps[self.compared[0]]
        index_dims = [d for d in main.stats.mean.dims]
        rows = []
        for idx in itertools.product(*(range(ds.sizes[d]) for d in index_dims)):
            sel = dict(zip(index_dims, idx, strict=True))
            if not np.isfinite(float(main.stats.mean[sel])):
                continue
            row = {d: ds[d].values[i].item() for d, i in sel.items()}
            for q, c in comps.items():
                pre = "" if q == self.compared[0] else f"{q} "
                row[f"{pre}theory"] = float(c.theory[sel])
                row[f"{pre}sim"] = float(c.stats.mean[sel])
                if not pre:
                    row["sem"] = float(c.stats.sem[sel])
                row[f"{pre}z"] = float(c.z[sel])
                row[f"{pre}rel. dev."] = float(c.rel[sel])
            rows.append(row)
        return tuple(rows)

    def report(self, cfg, ds):
        comps = self.comparisons(cfg, ds)
        main = [comps[q] for q in self.compared]
        passed, metrics = agreement(
            np.concatenate([c.z.values.ravel() for c in main]), z_max=cfg.z_max,
            excess=np.concatenate([c.excess.values.ravel() for c in main]),
            min_within=self.min_within, z_slack=self.z_slack,
            allowance=" + declared deviation" if np.any(np.asarray(self.rel_max(cfg)) > 0)
            else "")
        for q in self.shown:
            z = comps[q].z.values
            metrics[f"{q}: max |z| (not in the criterion)"] = float(np.nanmax(np.abs(z)))
        more, notes, ok = self.summarize(cfg, ds)
        return agreement_report(ds, title=self.title(cfg), table=self.rows(cfg, ds, comps),
                                metrics=metrics | more, notes=notes, passed=passed and ok,
                                criterion=self.criterion(cfg))

    # -- figure ------------------------------------------------------------------------------
    def draw(self, ax, cfg, ds, name: str | None = None, *, where: Mapping | None = None,
             colors: Sequence[str] | None = None, **kw) -> None:
        """Theory lines along ``line`` and simulation markers of quantity ``name``, one curve
        per combination of the other coordinates (restricted by ``where``)."""
        name = name or self.compared[0]
        comp = compare(ds, name)
        others = [d for d in comp.stats.mean.dims if d != self.line]
        values = [ds[d].values if d not in (where or {}) else [where[d]] for d in others]
        for i, combo in enumerate(itertools.product(*values)):
            sel = dict(zip(others, combo, strict=True))
            st = SeedStats(*(getattr(comp.stats, f).sel(sel) for f in
                             ("mean", "sem", "lo", "hi")), comp.stats.n)
            ok = np.isfinite(st.mean.values)
            st = SeedStats(st.mean[ok], st.sem[ok], st.lo[ok], st.hi[ok], st.n)
            label = ", ".join(f"{self.labels.get(d, d)}={_short(v)}" for d, v in sel.items())
            theory_vs_sim(ax, ds[f"{self.line}_line"], ds[f"theory_{name}_line"].sel(sel),
                          ds[self.line].values[ok], st, label=label,
                          color=(colors or [f"C{j}" for j in range(10)])[i % 10], **kw)

    def plot(self, cfg, ds):
        fig, axes = figure(1, 1, width=4.2)
        ax = axes[0, 0]
        self.draw(ax, cfg, ds)
        ax.set_xlabel(self.labels.get(self.line, self.line))
        ax.set_ylabel(self.labels.get(self.compared[0], self.compared[0]))
        ax.set_title(self.title(cfg), fontsize=8)
        legend(ax)
        return fig


def _short(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
