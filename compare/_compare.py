r"""The comparison layer: what every theory-vs-simulation experiment shares.

A typical experiment is a :class:`Sweep`: its config, its sweep grid, one ``sample`` mapping
(one sweep point -> simulated values over seeds) and one ``predict`` mapping (grid ->
theory values and the solver results). :class:`Sweep` then

- evaluates the theory at the sweep points (``theory_<q>``) and on a fine grid along one
  coordinate (``theory_<q>_line`` on ``<x>_line``), and stores every solver's diagnostics
  (``converged``, ``residual``, ``iterations``: :func:`solver_diagnostics`) in the dataset;
- derives every point's PRNG key from ``cfg.seed`` and the point (:meth:`Sweep.key`);
- computes seed statistics, z-scores and relative deviations of each compared quantity
  (against its theory, or draw by draw against another simulated quantity: ``against``),
  applies the agreement criterion (:func:`agreement`) and the declared scalar checks
  (:class:`Check`, e.g. a fitted exponent vs its prediction), builds the report rows and
  draws the default figure (theory lines, simulation markers with error bars);
- reports FAILED, with the reason, when a theory solver did not converge.

The agreement criterion is a test at family-wise level :math:`\alpha` (``FAMILY_ALPHA`` = 1%):
a correct theory fails it by chance at most 1% of the time, however many points are compared
and however few seeds each has. A value's excess is
:math:`e = (|\bar s - t| - r_{\max}|t|)/\mathrm{SE}`, where :math:`r_{\max}` is a systematic
relative deviation the experiment states as part of its prediction (0 unless a known,
measured finite-size bias is declared); for a correct prediction :math:`e` is at most a
Student-t variable with :math:`n - 1` degrees of freedom (:math:`n` seeds). With :math:`m`
compared values the experiment passes when

1. no value has :math:`e > t_{n-1}^{-1}(1 - \alpha/(4m))` (Bonferroni: one gross outlier
   fails), and
2. at most :math:`k` sweep points have a value with :math:`e > z_{\max}` (3 SE), :math:`k` the
   :math:`1 - \alpha/2` quantile of that count for a correct theory: independent sweep points,
   each beyond with probability at most :math:`\min(1, \sum_v P(|T_{n-1}| > z_{\max}))` over
   its values (values of one point, e.g. along time, share draws and count once). Several
   moderately-off points fail: the systematic deviation condition 1 alone would let through.

By the union bound each condition fails a correct theory with probability at most
:math:`\alpha/2`, also when values are correlated. "Every point within 3 SE" does not have a
fixed rate: it fails a correct theory with probability :math:`1 - (1 - p)^m`, :math:`p` =
0.27% for a normal z (7% at 27 points) and 0.53% with 32 seeds (t, 31 dof: 13% at 27 points,
28% with 12 seeds). Assumed: the mean over seeds is close to normal; strongly skewed values
(near an interpolation peak) make the t tails heavier than stated.

>>> import numpy as np
>>> ok, m = agreement(np.array([0.5, -2.0, 4.0]), z_max=3.0)
>>> ok, m["max |z|"], m["points within 3 SE"], round(m["family-wise bound (SE)"], 2)
(False, 4.0, Ratio(k=2, n=3), 3.14)
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
from ._plots import figure, legend, sim_markers, theory_vs_sim
from ._report import Ratio
from ._stats import SeedStats, seed_stats, z_scores

__all__ = ["FAMILY_ALPHA", "Check", "Comparison", "Prediction", "Sweep", "agreement",
           "agreement_report", "by_category", "compare", "diagnostics_rows", "mean_field_states",
           "power_fit", "power_fits", "seed_mean_fit", "solve", "solver_diagnostics",
           "table_rows", "theory_checks", "theory_dataset", "theory_failure"]


# ----------------------------------------------------------------------------- theory side

def solve(fn: Callable, *args, **kwargs):
    """Call a theory solver so that it returns (not raises) a non-converged result:
    ``throw=False`` where the solver takes it (the solver contract)."""
    try:
        takes_throw = "throw" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        takes_throw = False
    return fn(*args, throw=False, **kwargs) if takes_throw else fn(*args, **kwargs)


def mean_field_states(run: Callable, steps: Sequence[int], x, **config):
    """Per-seed state of engine-trained two-layer MLPs (``ModelConfig(depth=1)``, stored
    weights of unit scale as in ``mean_field``) after each of ``steps`` updates, in the DMFT
    variables: pre-activations :math:`h = W^0 x/\\sqrt D` ``(seed, t, N, P)`` and readouts ``z``
    ``(seed, t, N)`` (what :func:`theorysim.theory.sliding_ntk` takes). ``run(train_config)``
    trains the ensemble from the same seeds every call, so a run of ``k`` steps (full batch)
    ends in the state after step ``k``; ``config``: the other ``TrainConfig`` fields."""
    from theorysim.sims import TrainConfig

    ps = [run(TrainConfig(steps=int(k), observables=("loss",), return_params=True,
                          **config)).params for k in steps]
    h = np.stack([np.asarray(x) @ p["layers/0/kernel"] for p in ps], 1) / np.sqrt(x.shape[1])
    return h.swapaxes(-1, -2), np.stack([p["layers/1/kernel"][..., 0] for p in ps], 1)


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


def by_category(dim: str, values: Mapping[Any, float]) -> xr.DataArray:
    """A value per category along ``dim`` (e.g. a declared ``rel_max`` per kernel).

    >>> by_category("kernel", {"rbf": 0.03, "linear": 0.0}).sel(kernel="rbf").item()
    0.03
    """
    return xr.DataArray(list(values.values()), dims=dim, coords={dim: list(values)})


@dataclasses.dataclass(frozen=True)
class Prediction:
    """What a ``predict`` mapping returns.

    Attributes:
        values: name -> array over the requested grid (dims in the experiment's order).
            (from :meth:`Sweep.extras`: name -> ``(dims, array)`` on any grid).
        solvers: solver name -> its result (for the diagnostics).
        attrs: scalars for the dataset's attributes.
        checks: scalar predictions of the theory alone (e.g. its own fitted exponent against
            an asymptotic one): stored in the dataset's attributes and, like
            :meth:`Sweep.checks`, part of the criterion (:func:`theory_checks`).
    """

    values: Mapping[str, Any]
    solvers: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    checks: Sequence[Check] = ()

    @staticmethod
    def stack(per: Mapping[Any, Prediction]) -> Prediction:
        """One prediction per category (e.g. per kernel), stacked along a new leading axis;
        each solver is named ``"<name> (<category>)"``."""
        first = next(iter(per.values()))
        return Prediction({q: np.stack([np.asarray(p.values[q]) for p in per.values()])
                           for q in first.values},
                          {f"{n} ({c})": r for c, p in per.items() for n, r in p.solvers.items()})


# ----------------------------------------------------------------------------- statistics

#: family-wise false-failure rate of the agreement criterion (module docstring)
FAMILY_ALPHA = 0.01


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Simulation (over seeds) vs its reference, one quantity at the sweep points.

    ``theory``: the reference (the theory, or the seed mean of the quantity compared draw by
    draw); ``z``: (sim - reference) / SE; ``rel``: sim / reference - 1; ``excess``:
    |sim - reference| beyond the declared systematic deviation, in SE units; ``dof``: the SE's
    degrees of freedom (draws with a value, minus 1).
    """

    stats: SeedStats
    theory: xr.DataArray
    z: xr.DataArray
    rel: xr.DataArray
    excess: xr.DataArray
    dof: xr.DataArray


def compare(ds: xr.Dataset, name: str, *, dim: str = "seed", rel_max=0.0,
            against: str | None = None) -> Comparison:
    """Compare ``sim_<name>`` (over ``dim``) with ``theory_<name>`` at the sweep points, or
    (``against=r``) with ``sim_<r>`` on the same draws: paired, the SE is that of the per-draw
    difference over the draws where both are finite."""
    sim = ds[f"sim_{name}"]
    if against is None:
        ref = centre = ds[f"theory_{name}"]
        stats = diff = seed_stats(sim, dim=dim)
        count = np.isfinite(sim).sum(dim)
    else:
        other = ds[f"sim_{against}"]
        both = np.isfinite(sim) & np.isfinite(other)
        sim, other = sim.where(both), other.where(both)
        stats, diff, count = seed_stats(sim, dim), seed_stats(sim - other, dim), both.sum(dim)
        ref, centre = other.mean(dim), 0.0
    z = xr.apply_ufunc(z_scores, centre, diff.mean, diff.sem)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = stats.mean / ref - 1.0
        beyond = np.abs(diff.mean - centre) - rel_max * np.abs(ref)
        excess = xr.where(beyond <= 0, 0.0, beyond / diff.sem).where(np.isfinite(stats.mean))
    return Comparison(stats, ref, z, rel, excess, count - 1)


def _chance_count(p: np.ndarray, level: float) -> int:
    """Smallest k with P(X > k) <= level, X the number of successes of independent trials of
    probabilities p (Poisson binomial)."""
    pmf = np.ones(1)
    for q in p:
        pmf = np.convolve(pmf, [1.0 - q, q])
    return int(np.argmax(1.0 - np.cumsum(pmf) <= level + 1e-12))


def agreement(z, *, z_max: float = 3.0, dof=np.inf, excess=None, groups=None,
              alpha: float = FAMILY_ALPHA, allowance: str = "") -> tuple[bool, dict[str, Any]]:
    """The criterion of the module docstring over the finite entries of ``z``.

    Args:
        z: z-scores (any shape); dof: their degrees of freedom (broadcast to ``z``; inf:
            normal); excess: ``|z|`` beyond a declared deviation (default ``|z|``); groups: a
            label per value, equal for values that share draws (default: all independent);
            alpha: the family-wise level; allowance: text naming the declared deviation.

    Returns:
        ``(passed, metrics)``: ``max |z|``, the points within ``z_max`` SE, the family-wise
        bound and the largest excess over it, and the sweep points beyond ``z_max`` SE with
        the number allowed by chance.
    """
    from scipy.special import stdtr, stdtrit  # Student t: scipy.stats costs ~1 s of import

    shape = np.shape(z)
    z = np.asarray(z, float).ravel()
    ok = np.isfinite(z)
    dof = np.broadcast_to(np.asarray(dof, float), shape).ravel()[ok]
    exc = np.abs(z[ok]) if excess is None else np.asarray(excess, float).ravel()[ok]
    groups = np.arange(z.size) if groups is None else np.asarray(groups).ravel()
    z, m = z[ok], int(ok.sum())
    if m == 0:
        return False, {"max |z|": np.nan, f"points within {z_max:g} SE{allowance}": Ratio(0, 0)}
    bound = -stdtrit(dof, alpha / (4 * m))  # upper alpha/(4m) quantile of t_dof
    _, inv = np.unique(groups[ok], return_inverse=True)
    p_group = np.minimum(1.0, np.bincount(inv, weights=2.0 * stdtr(dof, -z_max)))
    beyond = int(np.sum(np.bincount(inv, weights=exc > z_max) > 0))
    allowed = _chance_count(p_group, alpha / 2)
    per_dof = {float(d): float(b) for d, b in zip(dof, bound, strict=True)}
    metrics = {"max |z|": float(np.max(np.abs(z))),
               f"points within {z_max:g} SE{allowance}": Ratio(int(np.sum(exc <= z_max)), m),
               "family-wise bound (SE)": next(iter(per_dof.values())) if len(per_dof) == 1
               else ", ".join(f"{b:.3g} ({d:g} dof)" for d, b in sorted(per_dof.items())),
               "max excess / family-wise bound": float(np.max(exc / bound)),
               f"sweep points beyond {z_max:g} SE": Ratio(beyond, len(p_group)),
               f"sweep points beyond {z_max:g} SE allowed by chance": allowed}
    return bool(np.all(exc <= bound) and beyond <= allowed), metrics


@dataclasses.dataclass(frozen=True)
class Check:
    """A scalar prediction checked beside the per-point criterion (e.g. a fitted exponent):
    it passes when ``|fitted - predicted| <= tol``."""

    name: str
    fitted: float
    predicted: float
    tol: float
    stderr: float | None = None

    @classmethod
    def exponent(cls, name: str, fit, predicted: float, tol: float) -> Check:
        """``|fitted - predicted| <= tol`` for the exponent of a :func:`power_fit`."""
        return cls(name, fit.exponent, predicted, tol, fit.exponent_stderr)

    @classmethod
    def fit_vs_theory(cls, name: str, ds: xr.Dataset, q: str, along: str, *, z_max: float,
                      where=None) -> Check:
        """The exponent of the simulation's seed mean of ``q`` along ``along`` against the
        theory's at the same sweep points, both fitted with the simulation's SE as weights
        (:func:`seed_mean_fit`), so that finite-size curvature both share cancels; allowed:
        ``z_max`` standard errors of the simulation's fit."""
        sim = seed_mean_fit(ds, q, along, where=where)
        theory = seed_mean_fit(ds, q, along, theory=True, where=where)
        return cls(name, sim.exponent, theory.exponent, z_max * sim.exponent_stderr,
                   sim.exponent_stderr)

    @property
    def passed(self) -> bool:
        return bool(abs(self.fitted - self.predicted) <= self.tol)

    def attr(self) -> dict[str, list[float]]:
        """The check as a dataset attribute (read back by :func:`theory_checks`)."""
        return {f"{_CHECK}{self.name}": [float(self.fitted), float(self.predicted),
                                          float(self.tol), np.nan if self.stderr is None
                                          else float(self.stderr)]}

    def metrics(self) -> dict[str, float]:
        out = {f"{self.name} fitted": float(self.fitted),
               f"{self.name} predicted": float(self.predicted)}
        return out if self.stderr is None else out | {f"{self.name} fitted stderr":
                                                      float(self.stderr)}


_CHECK = "check: "


def theory_checks(ds: xr.Dataset) -> dict[str, Check]:
    """The theory-side :class:`Check` s stored in ``ds`` (``Prediction.checks``), by name.

    >>> ds = xr.Dataset(attrs=Check("slope", 1.02, 1.0, 0.05).attr())
    >>> theory_checks(ds)["slope"].passed, theory_checks(ds)["slope"].stderr
    (True, None)
    """
    out = {}
    for key, value in ds.attrs.items():
        if key.startswith(_CHECK):
            name, (fitted, predicted, tol, stderr) = key[len(_CHECK):], value
            out[name] = Check(name, fitted, predicted, tol, None if np.isnan(stderr) else stderr)
    return out


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


def seed_mean_fit(ds: xr.Dataset, name: str, along: str, *, theory: bool = False, where=None):
    """:func:`power_fit` along coordinate ``along`` of the seed mean of ``sim_<name>`` (or, with
    ``theory``, of ``theory_<name>`` at the sweep points), weighted by the simulation's SE."""
    st = seed_stats(ds[f"sim_{name}"])
    return power_fit(ds[along], ds[f"theory_{name}"] if theory else st.mean, st.sem, where=where)


def power_fits(values: xr.DataArray, along: str, *, where=None) -> xr.DataArray:
    """The exponent :math:`\\alpha` of :func:`power_fit` (:math:`y \\sim c\\,x^{-\\alpha}`, x the
    coordinate ``along``) of every curve of ``values``, over its other dimensions.

    >>> v = xr.DataArray([[1.0, 2.0, 4.0], [1.0, 1.0, 1.0]], dims=("layer", "width"),
    ...                  coords={"width": [1, 2, 4]})
    >>> power_fits(v, "width").round(12).values.tolist()
    [-1.0, 0.0]
    """
    x = values[along].values
    return xr.apply_ufunc(lambda y: power_fit(x, y, where=where).exponent, values,
                          input_core_dims=[[along]], vectorize=True)


def table_rows(**columns: xr.DataArray) -> tuple[dict[str, Any], ...]:
    """Report rows: one per entry of the broadcast ``columns`` (their coordinates must be equal,
    in the same order), its coordinates first, then ``name: value`` per column.

    >>> e = xr.DataArray([0.0, 1.0], dims="layer", coords={"layer": ["h1", "h2"]})
    >>> table_rows(expected=e, fitted=e + 0.5)[1]
    {'layer': 'h2', 'expected': 1.0, 'fitted': 1.5}
    """
    arrays = xr.broadcast(*xr.align(*columns.values(), join="exact"))
    first = arrays[0]
    rows = []
    for idx in itertools.product(*(range(n) for n in first.shape)):
        sel = dict(zip(first.dims, idx, strict=True))
        row = {d: np.asarray(first[d].values[i]).item() for d, i in sel.items()}
        rows.append(row | {k: float(a[sel]) for k, a in zip(columns, arrays, strict=True)})
    return tuple(rows)


# ----------------------------------------------------------------------------- the sweep

class Sweep(Experiment):
    """An experiment over a grid of sweep points whose theory predicts seed means.

    Subclasses declare:

    - ``dims``: the coordinates of a sweep point; ``trailing``: coordinates a single point's
      simulation records along (e.g. time); ``grids(cfg)`` -> product grids of both whose
      union is the sweep (default: one, each ``d`` from ``cfg.<d>_values``, e.g.
      :attr:`PGridConfig.P_values`);
    - ``compared``: quantities in the criterion (``sim_<q>`` vs ``theory_<q>``, or vs
      ``sim_<r>`` draw by draw where ``against[q] = r``); ``shown``: quantities compared in
      the table but not in the criterion;
    - ``line``: the coordinate refined for the theory curves (``line_grid``);
    - ``sample(cfg, point, key)`` -> ``{q: array (seeds, *trailing)}`` (or ``(dims, array)``);
    - ``predict(cfg, **coords)`` -> :class:`Prediction` with arrays over ``dims + trailing``;
    - optionally ``heading`` and ``notes`` (formatted with the config's fields and
      properties), ``checks`` (scalar predictions, :class:`Check`; the theory's own go in
      ``Prediction.checks``), ``reported`` (config values reported as metrics: ``metric ->
      field or property``), ``summarize`` (more metrics), ``key_dims`` (the
      coordinates folded into a point's PRNG key, in order; default ``dims``), and for the
      default figure ``panels``, ``panel_width``, ``colors``, ``focus`` (or ``focus_on``:
      ``coordinate -> config field``), ``extra_lines`` (further theory curves
      ``theory_<q>_line`` on the first panel: ``q -> label``), ``panel_title`` (the first
      panel's, formatted like ``heading``; default: the title, small) and ``decorate``.
    """

    dims: ClassVar[tuple[str, ...]] = ("P",)
    trailing: ClassVar[tuple[str, ...]] = ()
    compared: ClassVar[tuple[str, ...]] = ("error",)
    shown: ClassVar[tuple[str, ...]] = ()
    against: ClassVar[Mapping[str, str]] = {}
    line: ClassVar[str | None] = "P"
    line_points: ClassVar[int] = 200
    labels: ClassVar[Mapping[str, str]] = {}
    heading: ClassVar[str] = ""
    notes: ClassVar[tuple[str, ...]] = ()
    panels: ClassVar[int] = 1
    panel_width: ClassVar[float] = 4.2
    colors: ClassVar[tuple[str, ...] | None] = None
    family_alpha: ClassVar[float] = FAMILY_ALPHA
    key_dims: ClassVar[tuple[str, ...] | None] = None
    extra_lines: ClassVar[Mapping[str, str]] = {}
    reported: ClassVar[Mapping[str, str]] = {}
    focus_on: ClassVar[Mapping[str, str]] = {}
    panel_title: ClassVar[str] = ""

    def grids(self, cfg) -> tuple[dict[str, Sequence], ...]:
        """The sweep as a union of product grids (default: the one product :meth:`grid`)."""
        return (self.grid(cfg),)

    def grid(self, cfg) -> dict[str, Sequence]:
        """Every coordinate's values: ``cfg.<d>_values``, or the union over an overridden
        :meth:`grids`."""
        if type(self).grids is Sweep.grids:
            return {d: getattr(cfg, f"{d}_values") for d in (*self.dims, *self.trailing)}
        parts = self.grids(cfg)
        return {d: sorted(set().union(*(p[d] for p in parts))) for d in parts[0]}

    @abc.abstractmethod
    def sample(self, cfg, point: dict[str, Any], key: jax.Array) -> Mapping[str, Any]: ...

    @abc.abstractmethod
    def predict(self, cfg, **coords: np.ndarray) -> Prediction: ...

    def extras(self, cfg, coords: Mapping[str, np.ndarray]) -> Prediction | None:
        """Further theory off the sweep grid (values ``name -> (dims, array)``; coordinates
        of new dims as ``coords[dim] = values``), computed once (override)."""
        return None

    def title(self, cfg) -> str:
        return _format(self.heading, cfg) if self.heading else self.summary

    def rel_max(self, cfg):
        """The declared systematic relative deviation (a number or a DataArray over dims)."""
        return getattr(cfg, "rel_max", 0.0)

    def criterion(self, cfg) -> str:
        r = self.rel_max(cfg)
        if isinstance(r, xr.DataArray):
            r = {f"{d}={v}": float(r.sel({d: v})) for d in r.dims for v in r[d].values}
            allow = ", ".join(f"{v:.0%} for {k}" for k, v in r.items() if v > 0)
        else:
            allow = f"{r:.0%}" if r > 0 else ""
        if allow:
            allow = f"; a declared systematic deviation of {allow} of the theory is allowed"
        return (f"{', '.join(self.compared)}: no point beyond the family-wise bound and no more "
                f"sweep points beyond {cfg.z_max:g} SE than chance allows (family-wise level "
                f"{self.family_alpha:.0%}: a correct theory fails at most that often){allow}")

    def checks(self, cfg, ds: xr.Dataset) -> Sequence[Check]:
        """Scalar predictions in the criterion (override)."""
        return ()

    def summarize(self, cfg, ds: xr.Dataset) -> tuple[dict, tuple[str, ...], bool]:
        """More metrics, notes and a further pass condition (override)."""
        return {}, (), True

    # -- runner interface --------------------------------------------------------------------
    def points(self, cfg):
        g, parts = self.grid(cfg), self.grids(cfg)
        return [dict(zip(self.dims, vals, strict=True))
                for vals in itertools.product(*(g[d] for d in self.dims))
                if any(all(v in p[d] for d, v in zip(self.dims, vals, strict=True))
                       for p in parts)]

    def key(self, cfg, point) -> jax.Array:
        """The point's PRNG key: ``cfg.seed`` folded with each coordinate of the point (those of
        ``key_dims``; a string coordinate by its index in the grid)."""
        key = jax.random.key(cfg.seed)
        g = self.grid(cfg)
        for d in self.dims if self.key_dims is None else self.key_dims:
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

    def _at_points(self, cfg) -> tuple[dict[str, np.ndarray], Prediction]:
        """The sweep grid and the theory there (computed once per config)."""
        g = self.grid(cfg)
        grid = {d: np.asarray(g[d]) for d in (*self.dims, *self.trailing)}
        if getattr(self, "_predicted", (None,))[0] != cfg:
            self._predicted = (cfg, self.predict(cfg, **grid))
        return grid, self._predicted[1]

    def preflight(self, cfg) -> None:
        """The theory at the sweep points, before any simulation: the solvers' own size and
        feasibility checks run there (kept for :meth:`theory`)."""
        self._at_points(cfg)

    def theory(self, cfg):
        g = self.grid(cfg)
        all_dims = (*self.dims, *self.trailing)
        grid, at = self._at_points(cfg)
        coords = dict(grid)
        data = {f"theory_{k}": (all_dims, np.asarray(v, np.float64)) for k, v in
                at.values.items()}
        solvers, attrs = dict(at.solvers), {**at.attrs, **_check_attrs(at)}
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
            attrs.update({**ex.attrs, **_check_attrs(ex)})
        ds = xr.Dataset(data, coords=coords, attrs=attrs)
        return xr.merge([ds, _diagnostics_dataset(solvers)])

    def combine(self, cfg, theory, sims):
        return xr.merge([theory, *sims], join="outer", compat="no_conflicts",
                        combine_attrs="drop_conflicts")

    # -- report ------------------------------------------------------------------------------
    def comparisons(self, cfg, ds) -> dict[str, Comparison]:
        return {q: compare(ds, q, rel_max=self.rel_max(cfg) if q in self.compared else 0.0,
                           against=self.against.get(q)) for q in (*self.compared, *self.shown)}

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

    def _sweep_point(self, da: xr.DataArray) -> np.ndarray:
        """The sweep point of every value of ``da`` (values along ``trailing`` share draws)."""
        sizes = [da.sizes[d] for d in self.dims]
        label = xr.DataArray(np.arange(int(np.prod(sizes))).reshape(sizes), dims=self.dims)
        return label.broadcast_like(da).transpose(*da.dims).values

    def report(self, cfg, ds):
        comps = self.comparisons(cfg, ds)
        main = [comps[q] for q in self.compared]
        flat = lambda f: np.concatenate([f(c).ravel() for c in main])  # noqa: E731
        passed, metrics = agreement(
            flat(lambda c: c.z.values), z_max=cfg.z_max, alpha=self.family_alpha,
            dof=flat(lambda c: c.dof.broadcast_like(c.z).transpose(*c.z.dims).values),
            excess=flat(lambda c: c.excess.values), groups=flat(lambda c: self._sweep_point(c.z)),
            allowance=" + declared deviation" if np.any(np.asarray(self.rel_max(cfg)) > 0)
            else "")
        for q in self.compared if len(self.compared) > 1 else ():
            metrics[f"{q}: max |z|"] = _max_abs(comps[q].z)
        for q in self.shown:
            metrics[f"{q}: max |z| (not in the criterion)"] = _max_abs(comps[q].z)
        checks = (*theory_checks(ds).values(), *self.checks(cfg, ds))
        for c in checks:
            metrics |= c.metrics()
        more, notes, ok = self.summarize(cfg, ds)
        more = {k: getattr(cfg, v) for k, v in self.reported.items()} | more
        criterion = "; ".join([self.criterion(cfg), *(
            f"|{c.name} fitted - predicted| <= {c.tol:g}" for c in checks)])
        return agreement_report(
            ds, title=self.title(cfg), table=self.rows(cfg, ds, comps), metrics=metrics | more,
            notes=(*(_format(n, cfg) for n in self.notes), *notes), criterion=criterion,
            passed=passed and ok and all(c.passed for c in checks))

    # -- figure ------------------------------------------------------------------------------
    def draw(self, ax, cfg, ds, name: str | None = None, *, where: Mapping | None = None,
             colors: Sequence[str] | None = None, x=None, **kw) -> None:
        """Theory lines along ``line`` and simulation markers of quantity ``name``, one curve
        per combination of the other coordinates (restricted by ``where``); ``x(sel)``, if
        given, scales the abscissa of the curve at coordinates ``sel`` (e.g. compute N t)."""
        name = name or self.compared[0]
        comp = compare(ds, name)
        others = [d for d in comp.stats.mean.dims if d != self.line]
        values = [ds[d].values if d not in (where or {}) else [where[d]] for d in others]
        for i, combo in enumerate(itertools.product(*values)):
            sel = dict(zip(others, combo, strict=True))
            st = comp.stats.map(lambda a: a.sel(sel))  # noqa: B023
            ok = np.isfinite(st.mean.values)
            st = st.map(lambda a: a[ok])  # noqa: B023
            label = ", ".join(f"{self.labels.get(d, d)}={_short(v)}" for d, v in sel.items())
            scale = 1.0 if x is None else x(sel)
            theory_vs_sim(ax, scale * ds[f"{self.line}_line"].values,
                          ds[f"theory_{name}_line"].sel(sel), scale * ds[self.line].values[ok],
                          st, label=label, color=(colors or [f"C{j}" for j in range(10)])[i % 10],
                          **kw)

    def draw_paired(self, ax, ds, name: str, label: str, ref_label: str, color="C3") -> None:
        """Markers of ``sim_<name>`` (hollow, +-SE) and of its draw-by-draw reference
        ``sim_<against[name]>`` on the same draws (crosses), where simulated, along ``line``."""
        comp = compare(ds, name, against=self.against[name])
        ok = np.isfinite(comp.stats.mean.values)
        if ok.any():
            x = ds[self.line].values[ok]
            sim_markers(ax, x, comp.stats.mean[ok], comp.stats.sem[ok], color=color, fmt="s",
                        ms=5, mfc="none", mec=color, mew=1.2, zorder=5,
                        label=f"{label} (n={int(comp.dof.max()) + 1}, ±SE)")
            ax.plot(x, comp.theory[ok], "x", color="k", ms=5, zorder=6, label=ref_label)

    def focus(self, cfg) -> Mapping[str, Any] | None:
        """Coordinates the first panel of the default figure is restricted to (default: those
        of ``focus_on``, from the config; none)."""
        return {d: getattr(cfg, f) for d, f in self.focus_on.items()} or None

    def decorate(self, fig, axes, cfg, ds) -> None:
        """More on the default figure (override): ``axes[0]`` holds theory lines and simulation
        markers of the first compared quantity, the others (``panels`` in all) are free."""

    def plot(self, cfg, ds):
        fig, axes = figure(self.panels, 1, width=self.panel_width)
        ax = axes[0, 0]
        self.draw(ax, cfg, ds, where=self.focus(cfg), colors=self.colors)
        sel = self.focus(cfg) or {}
        for i, (q, label) in enumerate(self.extra_lines.items()):
            y = ds[f"theory_{q}_line"].sel(sel)
            if not np.allclose(y, ds[f"theory_{self.compared[0]}_line"].sel(sel)):  # else: hidden
                ax.plot(ds[f"{self.line}_line"], y, "--", color=f"C{i + 1}", lw=1, label=label)
        ax.set_xlabel(self.labels.get(self.line, self.line))
        ax.set_ylabel(self.labels.get(self.compared[0], self.compared[0]))
        if self.panel_title:
            ax.set_title(_format(self.panel_title, cfg))
        else:
            ax.set_title(self.title(cfg), fontsize=8)
        self.decorate(fig, axes[0], cfg, ds)
        legend(ax)
        return fig


def _max_abs(z: xr.DataArray) -> float:
    """The largest ``|z|`` (NaN when there is none: nothing simulated there)."""
    z = np.abs(z.values[~np.isnan(z.values)])
    return float(z.max()) if z.size else np.nan


def _check_attrs(p: Prediction) -> dict[str, list[float]]:
    return {k: v for c in p.checks for k, v in c.attr().items()}


class _ConfigView(dict):
    """``str.format_map`` view of a config: ``{name}`` is its field or property ``name``."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    def __missing__(self, key):
        return getattr(self.cfg, key)


def _format(text: str, cfg) -> str:
    """``text`` with ``{name}`` replaced by the config's field or property ``name``."""
    return text.format_map(_ConfigView(cfg))


def _short(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
