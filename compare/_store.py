"""The result store: one directory per (experiment, config), written atomically.

Layout of ``<out>/<experiment>/<config-hash>/``::

    manifest.json      which experiment and config this directory belongs to
    points/<key>.zarr  one finished simulation sweep point each (xarray.Dataset)
    theory.zarr        the theory predictions
    results.zarr       theory + all points, merged
    report.md, figure.png, figure.pdf

Every file and zarr store is first written under a temporary name in the same directory and
then renamed into place, so a run killed at any moment leaves only finished entries behind
(plus ``.tmp-*`` debris, which is ignored and cleaned up). A directory whose manifest is missing,
unreadable or names another experiment or config is reported and never overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import xarray as xr

FORMAT = "theorysim-run"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class RunDirectoryError(ValueError):
    """A results directory that is not ours to write: foreign, corrupt or for another config."""


def _version() -> str:
    try:
        return metadata.version("theorysim")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def point_key(point: Mapping[str, Any]) -> str:
    """A readable, filesystem-safe, unique name for a sweep point, e.g. ``P=100,N=50``."""
    parts = []
    for k in sorted(point):
        v = point[k]
        text = repr(float(v)) if isinstance(v, float) else str(v)
        parts.append(f"{k}={text}")
    key = ",".join(parts) or "single"
    if not re.fullmatch(r"[A-Za-z0-9_.=,+-]+", key):
        raise ValueError(f"sweep point {dict(point)!r} has characters unusable in a file name")
    return key


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")


def write_zarr_atomic(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` to the zarr directory ``path`` so that it appears complete or not at all."""
    tmp = _tmp_sibling(path)
    with warnings.catch_warnings():
        # zarr 3 flags variable-length string arrays (string coordinates such as a preset
        # name) as not yet in the v3 spec; xarray and zarr read them back fine.
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        ds.to_zarr(tmp, mode="w", consolidated=False)
    if path.exists():
        old = _tmp_sibling(path)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def write_bytes_atomic(data: bytes, path: Path) -> None:
    tmp = _tmp_sibling(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_zarr(path: Path) -> xr.Dataset:
    """Load a stored dataset fully into memory; a corrupt store raises ``RunDirectoryError``."""
    try:
        with xr.open_zarr(path, consolidated=False) as ds:
            return ds.load()
    except Exception as err:  # zarr/xarray raise many types for a damaged store
        raise RunDirectoryError(f"corrupt results store {path}: {err}") from err


class RunStore:
    """The directory of one run: manifest, finished points, theory, merged results."""

    def __init__(self, root: Path, experiment: str, config: Mapping[str, Any], config_hash: str):
        self.root = Path(root)
        self.experiment = experiment
        self.config = dict(config)
        self.config_hash = config_hash
        self.points_dir = self.root / "points"

    # -- opening -----------------------------------------------------------------------------
    def open(self) -> RunStore:
        """Create the directory, or check an existing one belongs to this experiment and config."""
        if self.root.exists() and not self.root.is_dir():
            raise RunDirectoryError(f"{self.root} exists and is not a directory; not overwriting")
        manifest = self.root / MANIFEST
        if self.root.is_dir() and any(self.root.iterdir()):
            self._check_manifest(manifest)
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            body = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "experiment": self.experiment,
                "config_hash": self.config_hash,
                "config": self.config,
                "theorysim_version": _version(),
            }
            write_bytes_atomic(json.dumps(body, indent=2, sort_keys=True).encode(), manifest)
        self.points_dir.mkdir(exist_ok=True)
        self._clean_debris()
        return self

    def _check_manifest(self, manifest: Path) -> None:
        where = f"{self.root} is not a theorysim run directory of {self.experiment!r}"
        advice = "; not overwriting it (choose another --out or remove it)"
        if not manifest.is_file():
            raise RunDirectoryError(f"{where}: it has no {MANIFEST}{advice}")
        try:
            body = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise RunDirectoryError(f"{where}: unreadable {MANIFEST} ({err}){advice}") from err
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise RunDirectoryError(f"{where}: {MANIFEST} is not a theorysim manifest{advice}")
        if body.get("experiment") != self.experiment or body.get("config") != self.config:
            raise RunDirectoryError(
                f"{where}: it holds experiment {body.get('experiment')!r} with another "
                f"config{advice}"
            )

    def _clean_debris(self) -> None:
        for d in (self.root, self.points_dir):
            for p in d.glob(".tmp-*"):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        p.unlink()

    # -- points ------------------------------------------------------------------------------
    def point_path(self, point: Mapping[str, Any]) -> Path:
        return self.points_dir / f"{point_key(point)}.zarr"

    def has_point(self, point: Mapping[str, Any]) -> bool:
        return self.point_path(point).is_dir()

    def save_point(self, point: Mapping[str, Any], ds: xr.Dataset) -> None:
        write_zarr_atomic(ds, self.point_path(point))

    def load_point(self, point: Mapping[str, Any]) -> xr.Dataset:
        return read_zarr(self.point_path(point))

    # -- whole-run artefacts -----------------------------------------------------------------
    def save(self, name: str, ds: xr.Dataset) -> Path:
        path = self.root / f"{name}.zarr"
        write_zarr_atomic(ds, path)
        return path

    def load(self, name: str) -> xr.Dataset:
        return read_zarr(self.root / f"{name}.zarr")

    def has(self, name: str) -> bool:
        return (self.root / f"{name}.zarr").is_dir()

    def write_text(self, name: str, text: str) -> Path:
        path = self.root / name
        write_bytes_atomic(text.encode(), path)
        return path


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of an existing run directory (for ``theorysim plot``)."""
    manifest = Path(run_dir) / MANIFEST
    try:
        body = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RunDirectoryError(f"{run_dir} is not a theorysim run directory: {err}") from err
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise RunDirectoryError(f"{run_dir} is not a theorysim run directory (bad manifest)")
    return body
