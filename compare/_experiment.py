"""The experiment abstraction: one theory call and one simulation sweep on one config.

An experiment is a class with a frozen-dataclass config. The runner (``compare._runner``)
calls, in order:

0. ``preflight(cfg)``: cheap theory-side feasibility checks, before any simulation.
1. ``points(cfg)``: the independent simulation sweep points, each a dict of coordinate values
   (e.g. ``{"P": 100}``). Each point is computed once, stored atomically, and reused on a re-run.
2. ``simulate(cfg, point)`` -> ``xr.Dataset`` for that one point. Deterministic from
   ``cfg.seed`` and the point. Put the point's coordinates on the dataset as length-1 dims so
   the runner can combine points with ``xr.combine_by_coords``.
3. ``theory(cfg)`` -> ``xr.Dataset`` of theory predictions (float64), typically on a finer grid
   with its own coordinate names (e.g. ``P_theory``) so it merges cleanly with the simulation.
4. ``combine(cfg, theory, sims)`` -> the full ``xr.Dataset`` (default: merge of both).
5. ``report(cfg, ds)`` -> :class:`Report`; ``plot(cfg, ds)`` -> a matplotlib ``Figure``.

Most experiments subclass :class:`theorysim.compare.Sweep` (``compare._compare``), which
implements all of these from a sweep grid, one ``sample`` and one ``predict`` mapping; configs
declare their fields once with :func:`theorysim.compare.param` (``compare._configio``).

Experiments register themselves with :func:`register`; every module in
``theorysim.compare.experiments`` is imported on first use of the registry, so adding an
experiment means adding one file there.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import xarray as xr

from ._configio import ExperimentConfig as ExperimentConfig
from ._configio import config_hash as config_hash
from ._configio import config_to_dict as config_to_dict
from ._configio import parse_field as parse_field

ProgressFn = Callable[[int, int, str], None]


@dataclasses.dataclass(frozen=True)
class Report:
    """What an experiment says about its results.

    Attributes:
        title: one line.
        table: rows of the per-point agreement table (dicts with the same keys), e.g.
            ``{"P": 100, "theory": 0.025, "sim": 0.026, "sem": 0.0006, "z": 1.2}``.
        metrics: named numbers (fitted exponents, max |z|, fraction within 3 SE, ...).
        notes: free-text lines.
        passed: whether the experiment's own agreement criterion held (None: no criterion).
        criterion: the agreement criterion in words (every experiment states one).
        diagnostics: one row per theory solver: ``solver, converged, residual, iterations``.
    """

    title: str
    table: tuple[dict[str, Any], ...] = ()
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()
    passed: bool | None = None
    criterion: str = ""
    diagnostics: tuple[dict[str, Any], ...] = ()


def variant_sets(key: tuple) -> tuple[tuple[str, str], ...]:
    """The ``--set`` pairs of a key of :attr:`Experiment.variants`: ``(key, value)`` or a tuple
    of such pairs.

    >>> variant_sets(("model", "cnn")), variant_sets((("model", "cnn"), ("optimizer", "sgd")))
    ((('model', 'cnn'),), (('model', 'cnn'), ('optimizer', 'sgd')))
    """
    return (key,) if isinstance(key[0], str) else tuple(key)


class Experiment(abc.ABC):
    """Base class; see the module docstring for the call order."""

    name: ClassVar[str]
    summary: ClassVar[str]
    config_type: ClassVar[type[ExperimentConfig]]
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {"quick": {}, "full": {}}
    #: presets of a variant chosen by ``--set key=value``: ``{(key, value): {preset: {...}}}``,
    #: applied over the preset in this order (e.g. coord-check's ``model=transformer`` sizes);
    #: a key ``((key, value), (key2, value2))`` applies when all its ``--set`` values are given
    variants: ClassVar[Mapping[tuple, Mapping[str, Mapping[str, Any]]]] = {}
    #: set by the runner: called as ``progress(done, total, what)`` from inside a sweep point
    #: (e.g. per seed or per trained network), so long points are visibly alive.
    progress: ProgressFn | None = None

    def tick(self, done: int, total: int, what: str = "") -> None:
        """Report progress within the current sweep point (no-op without a listener)."""
        if self.progress is not None:
            self.progress(done, total, what)

    def make_config(self, preset: str = "quick", overrides: Mapping[str, str] | None = None):
        """Build the config: dataclass defaults, then the preset, then ``--set`` strings."""
        if preset not in self.presets:
            raise ValueError(f"preset must be one of {sorted(self.presets)}, got {preset!r}")
        values = dict(self.presets[preset])
        for sets, by_preset in self.variants.items():
            if all((overrides or {}).get(key) == value for key, value in variant_sets(sets)):
                values.update(by_preset.get(preset, {}))
        for key, text in (overrides or {}).items():
            values[key] = parse_field(self.config_type, key, text)
        return self.config_type(**values)

    def describe(self) -> list[dict[str, str]]:
        """The config's keys: type, quick default, other presets, range and meaning."""
        from ._configio import describe_config

        return describe_config(self.config_type, self.presets)

    def preflight(self, cfg) -> None:
        """Cheap checks that the theory can be computed at ``cfg`` (``ValueError`` naming the
        field), run by the runner before any simulation, so that a config that validates
        cannot fail only after its simulations ran (override; default: none)."""
        return None

    @abc.abstractmethod
    def points(self, cfg) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def simulate(self, cfg, point: dict[str, Any]) -> xr.Dataset: ...

    @abc.abstractmethod
    def theory(self, cfg) -> xr.Dataset: ...

    def combine(self, cfg, theory: xr.Dataset, sims: list[xr.Dataset]) -> xr.Dataset:
        sim = (xr.combine_by_coords(sims, combine_attrs="drop_conflicts", join="outer",
                                    compat="no_conflicts", data_vars="all", coords="different")
               if sims else xr.Dataset())
        return xr.merge([theory, sim], combine_attrs="drop_conflicts", join="outer",
                        compat="no_conflicts")

    @abc.abstractmethod
    def report(self, cfg, ds: xr.Dataset) -> Report: ...

    @abc.abstractmethod
    def plot(self, cfg, ds: xr.Dataset): ...


_REGISTRY: dict[str, type[Experiment]] = {}


def register(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator adding an experiment to the registry under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"experiment name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Experiment]]:
    """All experiments, importing every module of ``theorysim.compare.experiments`` once."""
    import importlib
    import pkgutil

    from . import experiments

    for mod in pkgutil.iter_modules(experiments.__path__):
        importlib.import_module(f"{experiments.__name__}.{mod.name}")
    return dict(sorted(_REGISTRY.items()))


def get_experiment(name: str) -> Experiment:
    reg = registry()
    if name not in reg:
        raise ValueError(f"unknown experiment {name!r}; available: {', '.join(reg)}")
    return reg[name]()
