"""Grids of configs: the product of a few config fields, run as one sweep, read back as one view.

``sweep(experiment, {"a": [1.5, 2, 3], "b": [1.2, 1.5]}, out)`` builds the 6 configs (each
its own run directory ``out/<name>/<config-hash>/``, the same one ``theorysim run`` with that
config would use), schedules all their points together on one executor, and writes the index
``out/<name>/sweep-<hash>/index.json`` (grid, base config, one entry per run).
``open_sweep(sweep_dir)`` stacks the runs' ``results.zarr`` along the grid dims;
``run_status(path)`` says, per run, which points are finished, pending or failed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from ._configio import config_hash, config_to_dict, parse_field
from ._executors import Executor
from ._runner import (
    DEFAULT_OUT,
    LogFn,
    ProgressFn,
    RunProblem,
    RunResult,
    run_many,
)
from ._store import MANIFEST, RunDirectoryError, read_manifest, read_zarr, write_bytes_atomic

INDEX = "index.json"
MAX_GRID_RUNS = 10_000


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What ``sweep`` produced: the index directory, one entry per run (grid values, run
    directory, :class:`RunResult` or ``None``) and the problems of unfinished runs."""

    sweep_dir: Path
    runs: tuple[dict[str, Any], ...]
    results: tuple[RunResult | None, ...]
    problems: tuple[RunProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_grid(cfg_type: type, items: Sequence[str]) -> dict[str, list[Any]]:
    """``["a=1.5,2,3", "b=1.2,1.5"]`` -> ``{"a": [1.5, 2.0, 3.0], "b": [1.2, 1.5]}``.

    Values of a tuple field are separated by ``;`` (``widths=64,128;256,512``).
    """
    fields = {f.name for f in dataclasses.fields(cfg_type)}
    hints = typing.get_type_hints(cfg_type)
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--grid expects key=v1,v2,..., got {item!r}")
        if key not in fields:
            raise ValueError(f"--grid key {key!r} is not a config field; allowed keys: "
                             f"{', '.join(sorted(fields))}")
        if key in grid:
            raise ValueError(f"--grid key {key!r} given twice")
        sep_char = ";" if typing.get_origin(hints[key]) is tuple else ","
        parts = [p.strip() for p in text.split(sep_char) if p.strip()]
        if not parts:
            raise ValueError(f"--grid {key}= has no values")
        values = []
        for part in parts:
            try:
                values.append(parse_field(cfg_type, key, part))
            except ValueError as err:
                raise ValueError(f"--grid {key}={part!r}: {err}") from err
        grid[key] = values
    return grid


def grid_configs(experiment, base, grid: Mapping[str, Sequence[Any]]) -> list[tuple[dict, Any]]:
    """The product of ``grid`` over the config ``base``: ``[(grid values, config), ...]``.

    Raises ``ValueError`` naming the grid key and value that the config refuses.
    """
    if not isinstance(base, experiment.config_type):
        raise ValueError(f"base must be a {experiment.config_type.__name__}, "
                         f"got {type(base).__name__}")
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError("grid must be a non-empty mapping of config field -> values")
    fields = {f.name for f in dataclasses.fields(base)}
    for key, values in grid.items():
        if key not in fields:
            raise ValueError(f"grid key {key!r} is not a config field of {experiment.name}; "
                             f"allowed keys: {', '.join(sorted(fields))}")
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"grid[{key!r}] must be a non-empty list of values")
        if len(set(map(repr, values))) != len(values):
            raise ValueError(f"grid[{key!r}] has repeated values: {list(values)}")
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_GRID_RUNS:
        raise ValueError(f"grid has {n} configs (> {MAX_GRID_RUNS}); split it into sweeps")
    keys = list(grid)
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        try:
            cfg = dataclasses.replace(base, **values)
        except (TypeError, ValueError) as err:
            shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise ValueError(f"grid point {shown}: {err}") from err
        out.append((values, cfg))
    return out


def sweep_dir_for(experiment, base, grid: Mapping[str, Sequence[Any]],
                  out: Path | str = DEFAULT_OUT) -> Path:
    blob = json.dumps({"experiment": experiment.name, "base": config_to_dict(base),
                       "grid": {k: [_plain(v) for v in vs] for k, vs in grid.items()}},
                      sort_keys=True)
    return Path(out) / experiment.name / f"sweep-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def sweep(experiment, grid: Mapping[str, Sequence[Any]], out: Path | str = DEFAULT_OUT, *,
          base=None, executor: str | Executor | None = None, jobs: int | None = None,
          slurm_options: Mapping[str, Any] | None = None, progress: ProgressFn | None = None,
          figures: bool = True, log: LogFn | None = None) -> SweepResult:
    """Run the product of ``grid`` over ``base`` (default: the quick preset) as one sweep.

    Every run is an ordinary run directory; all their missing points go to ``executor``
    together. A run whose points fail does not stop the others (see ``SweepResult.problems``).
    """
    base = experiment.make_config("quick") if base is None else base
    configs = grid_configs(experiment, base, grid)
    sweep_dir = sweep_dir_for(experiment, base, grid, out)
    runs = [{"grid": {k: _plain(v) for k, v in values.items()},
             "config_hash": config_hash(experiment.name, cfg),
             "run_dir": str(Path("..") / config_hash(experiment.name, cfg))}
            for values, cfg in configs]
    index = {"format": "theorysim-sweep", "experiment": experiment.name,
             "base": config_to_dict(base),
             "grid": {k: [_plain(v) for v in vs] for k, vs in grid.items()}, "runs": runs}
    try:
        (sweep_dir / "logs").mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(json.dumps(index, indent=2, sort_keys=True).encode(),
                           sweep_dir / INDEX)
    except OSError as err:
        raise RunDirectoryError(f"cannot write the sweep index in {sweep_dir}: "
                                f"{err.strerror or err}; choose another --out") from err
    results, problems = run_many([(experiment, cfg) for _, cfg in configs], out,
                                 progress=progress, figures=figures, executor=executor,
                                 jobs=jobs, slurm_options=slurm_options, log=log,
                                 log_dir=sweep_dir / "logs")
    return SweepResult(sweep_dir, tuple(runs), tuple(results), tuple(problems))


def _read_index(sweep_dir: Path) -> dict[str, Any]:
    try:
        index = json.loads((Path(sweep_dir) / INDEX).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirectoryError(f"{sweep_dir} is not a theorysim sweep directory: {err}") from err
    if not isinstance(index, dict) or index.get("format") != "theorysim-sweep":
        raise RunDirectoryError(f"{sweep_dir} is not a theorysim sweep directory (bad index)")
    return index


def open_sweep(sweep_dir: Path | str, *, missing: str = "raise") -> xr.Dataset:
    """All runs of a sweep in one dataset, stacked along the grid dims (outer join).

    A grid dim is named after its config field, or ``grid_<field>`` where the results already
    have a dim of that name (a grid over ``seed`` stacks along ``grid_seed``).

    Args:
        sweep_dir: the ``sweep-<hash>`` directory that ``sweep``/``theorysim sweep`` printed.
        missing: ``"raise"`` if a run has no ``results.zarr`` yet, or ``"skip"`` (its cells
            stay NaN; the skipped run directories are listed in ``attrs["missing_runs"]``).
    """
    if missing not in ("raise", "skip"):
        raise ValueError(f"missing must be 'raise' or 'skip', got {missing!r}")
    sweep_dir = Path(sweep_dir)
    index = _read_index(sweep_dir)
    parts, skipped = [], []
    for entry in index["runs"]:
        run_dir = (sweep_dir / entry["run_dir"]).resolve()
        if not (run_dir / "results.zarr").is_dir():
            if missing == "raise":
                raise RunDirectoryError(f"{run_dir} has no results.zarr yet: finish the sweep "
                                        "or pass missing='skip'")
            skipped.append(str(run_dir))
            continue
        ds = read_zarr(run_dir / "results.zarr")
        ds = ds.expand_dims({_grid_dim(k, ds): [tuple(v) if isinstance(v, list) else v]
                             for k, v in entry["grid"].items()})
        parts.append(ds.drop_attrs(deep=False))
    if not parts:
        raise RunDirectoryError(f"no run of {sweep_dir} has results yet")
    out = xr.combine_by_coords(parts, join="outer", combine_attrs="drop_conflicts",
                               compat="no_conflicts", data_vars="all", coords="different")
    out.attrs.update(experiment=index["experiment"], base=json.dumps(index["base"]),
                     grid=json.dumps(index["grid"]), missing_runs=json.dumps(skipped))
    return out


def _grid_dim(key: str, ds: xr.Dataset) -> str:
    """The grid dim of config field ``key``: ``key``, or ``grid_<key>`` where the results
    already have a dim or variable of that name (e.g. ``seed``)."""
    return f"grid_{key}" if key in ds.dims or key in ds.variables else key


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """Points of one run directory: finished, failed (key -> traceback file), pending."""

    run_dir: Path
    experiment: str
    total: int | None
    finished: tuple[str, ...]
    failed: Mapping[str, Path]
    pending: tuple[str, ...]
    has_results: bool
    grid: Mapping[str, Any] | None = None


def run_status(path: Path | str) -> list[RunStatus]:
    """Status of a run directory, a sweep directory, or every run below a directory."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirectoryError(f"{path} is not a directory")
    if (path / INDEX).is_file():
        index = _read_index(path)
        return [_one_status((path / e["run_dir"]).resolve(), e["grid"]) for e in index["runs"]]
    if (path / MANIFEST).is_file():
        return [_one_status(path)]
    found = sorted(p.parent for p in path.rglob(MANIFEST) if "points" not in p.parts)
    if not found:
        raise RunDirectoryError(f"{path} holds no theorysim run or sweep directory")
    return [_one_status(p) for p in found]


def _one_status(run_dir: Path, grid: Mapping[str, Any] | None = None) -> RunStatus:
    if not run_dir.is_dir():
        return RunStatus(run_dir, "?", None, (), {}, (), False, grid)
    manifest = read_manifest(run_dir)
    points = manifest.get("points")
    pdir = run_dir / "points"
    stored = {p.name[: -len(".zarr")] for p in pdir.glob("*.zarr")} if pdir.is_dir() else set()
    failed = ({p.name[: -len(".failed")]: p for p in sorted(pdir.glob("*.failed"))}
              if pdir.is_dir() else {})
    keys = points if points is not None else sorted(stored | set(failed))
    finished = tuple(k for k in keys if k in stored)
    fail = {k: failed[k] for k in keys if k in failed and k not in stored}
    pending = tuple(k for k in keys if k not in stored and k not in fail)
    return RunStatus(run_dir, manifest.get("experiment", "?"),
                     None if points is None else len(points), finished, fail, pending,
                     (run_dir / "results.zarr").is_dir(), grid)
