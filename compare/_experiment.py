"""The experiment abstraction: one theory call and one simulation sweep on one config.

An experiment is a class with a frozen-dataclass config. The runner (``compare._runner``)
calls, in order:

1. ``points(cfg)``: the independent simulation sweep points, each a dict of coordinate values
   (e.g. ``{"P": 100}``). Each point is computed once, stored atomically, and reused on a re-run.
2. ``simulate(cfg, point)`` -> ``xr.Dataset`` for that one point. Deterministic from
   ``cfg.seed`` and the point. Put the point's coordinates on the dataset as length-1 dims so
   the runner can combine points with ``xr.combine_by_coords``.
3. ``theory(cfg)`` -> ``xr.Dataset`` of theory predictions (float64), typically on a finer grid
   with its own coordinate names (e.g. ``P_theory``) so it merges cleanly with the simulation.
4. ``combine(cfg, theory, sims)`` -> the full ``xr.Dataset`` (default: merge of both).
5. ``report(cfg, ds)`` -> :class:`Report`; ``plot(cfg, ds)`` -> a matplotlib ``Figure``.

Experiments register themselves with :func:`register`; every module in
``theorysim.compare.experiments`` is imported on first use of the registry, so adding an
experiment means adding one file there.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
import math
import typing
from collections.abc import Mapping
from typing import Any, ClassVar

import xarray as xr


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
    """

    title: str
    table: tuple[dict[str, Any], ...] = ()
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()
    passed: bool | None = None


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Base of experiment configs. Subclasses add fields with the quick preset as defaults.

    Every field must be an int, float, bool, str or a tuple of those, so the config is hashable,
    JSON-serialisable and settable from the CLI (``--set key=value``; tuples as ``1,2,3``).
    Subclasses check their fields in ``__post_init__`` and raise ``ValueError`` naming the field.
    """

    seed: int = 0


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    return {f.name: _jsonable(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    return v


def config_hash(name: str, cfg: ExperimentConfig) -> str:
    """A short stable hash of the experiment name and its config (the run directory name)."""
    blob = json.dumps({"experiment": name, "config": config_to_dict(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def parse_field(cfg_type: type, key: str, text: str) -> Any:
    """Parse ``--set key=text`` for a field of ``cfg_type``; ``ValueError`` on unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(cfg_type)}
    if key not in fields:
        raise ValueError(f"unknown --set key {key!r}; allowed keys: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cfg_type)
    return _parse_value(key, hints[key], text)


def _parse_value(key: str, tp, text: str):
    origin = typing.get_origin(tp)
    if origin is tuple:
        (elem, *_rest) = typing.get_args(tp)
        parts = [p for p in text.split(",") if p.strip()]
        return tuple(_parse_value(key, elem, p.strip()) for p in parts)
    try:
        if tp is bool:
            low = text.strip().lower()
            if low not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError
            return low in {"true", "1", "yes"}
        if tp is int:
            as_float = float(text)
            if as_float != int(as_float):
                raise ValueError
            return int(as_float)
        if tp is float:
            return float(text)
        return str(text)
    except ValueError as err:
        name = getattr(tp, "__name__", str(tp))
        raise ValueError(f"--set {key}={text!r}: expected {name}") from err


class Experiment(abc.ABC):
    """Base class; see the module docstring for the call order."""

    name: ClassVar[str]
    summary: ClassVar[str]
    config_type: ClassVar[type[ExperimentConfig]]
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {"quick": {}, "full": {}}

    def make_config(self, preset: str = "quick", overrides: Mapping[str, str] | None = None):
        """Build the config: dataclass defaults, then the preset, then ``--set`` strings."""
        if preset not in self.presets:
            raise ValueError(f"preset must be one of {sorted(self.presets)}, got {preset!r}")
        values = dict(self.presets[preset])
        for key, text in (overrides or {}).items():
            values[key] = parse_field(self.config_type, key, text)
        return self.config_type(**values)

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
