"""The result store: one directory per (experiment, config), written atomically, verified on load.

Layout of ``<out>/<experiment>/<config-hash>/``::

    manifest.json         which experiment, config and sweep points this directory holds
                          (+ the digest of its own body)
    points/<key>.zarr     one finished simulation sweep point each (xarray.Dataset)
    points/<key>.failed   the traceback of a point that raised (removed once it succeeds)
    theory.zarr           the theory predictions
    results.zarr          theory + all points, merged
    report.md, figure.png, figure.pdf
    locks/                lock files of the concurrent writers (see below), and the
                          heartbeats (``<key>.progress``) of points being computed
    logs/                 stdout/stderr of worker processes and Slurm jobs

**Atomic.** Every file and zarr store is first written under a temporary name (``.tmp-*``) in
the same directory and then renamed into place, so a writer killed at any moment leaves only
finished entries behind (plus ``.tmp-*`` debris, which readers ignore and the next writer of the
same entry removes).

**Verified.** Each stored dataset carries the SHA-256 digest of its own contents (names, dims,
dtypes, values and attributes, as read back from disk right after writing) in the zarr group
attribute ``theorysim_digest``; :meth:`RunStore.load_point` recomputes it. A deleted or truncated
chunk, an edited ``zarr.json`` or a missing digest is a :class:`DamagedEntryError`: the runner
says so in one line and recomputes the point instead of reusing it. The manifest carries the
digest of its own body, so an edited manifest is detected too (and refused: it decides which
config the directory holds).

**Concurrent writers.** Several runner processes (local workers, Slurm array tasks, or two
runners started on the same directory) may write one run directory at once. Each sweep point
is computed under an exclusive lease, a ``filelock.FileLock`` on ``locks/<key>.lock``; the
theory, the merged results, report and figures under ``locks/run.lock``. ``filelock`` uses the
kernel's ``flock``: the lease dies with the process that holds it (a SIGKILLed worker never
leaves a stale lease, unlike a lock file whose existence is the lock), it works across
processes and across nodes on a shared filesystem with ``flock`` support (NFSv4, Lustre, GPFS
with the usual mount options), and it is a small, maintained dependency. A writer takes a lease
without waiting; when it is held, the point is being computed by someone else and is skipped.

A directory whose manifest is missing, unreadable, edited, or names another experiment or
config is reported and never overwritten.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

FORMAT = "theorysim-run"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
DIGEST_ATTR = "theorysim_digest"


class RunDirectoryError(ValueError):
    """A results directory that is not ours to write: foreign, corrupt or for another config."""


class DamagedEntryError(RunDirectoryError):
    """A stored dataset that fails verification (missing/truncated chunk, edited metadata).

    ``reason`` says what is wrong with it; the message adds what to do.
    """

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"corrupt results store {path}: {reason}; re-run the same command "
                         "to recompute it (damaged entries are recomputed, not reused)")


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


def dataset_digest(ds: xr.Dataset) -> str:
    """SHA-256 over every variable's name, dims, dtype and bytes, and the attributes.

    Attributes named ``theorysim_digest`` are left out (that is where the digest is kept).
    """
    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        var = ds.variables[name]
        h.update(json.dumps([name, list(map(str, var.dims)), list(var.shape),
                             str(var.dtype)]).encode())
        values = np.asarray(var.values)
        if values.dtype == object:
            h.update(json.dumps(values.tolist(), default=str).encode())
        else:
            h.update(np.ascontiguousarray(values).tobytes())
        h.update(_attrs_blob(var.attrs))
    h.update(_attrs_blob(ds.attrs))
    return h.hexdigest()


def _attrs_blob(attrs: Mapping[str, Any]) -> bytes:
    body = {str(k): v for k, v in attrs.items() if k != DIGEST_ATTR}
    return json.dumps(body, sort_keys=True, default=str).encode()


def _open_dataset(path: Path) -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        with xr.open_zarr(path, consolidated=False) as ds:
            return ds.load()


def write_zarr_atomic(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` to the zarr directory ``path`` so that it appears complete or not at all.

    The digest of the dataset as read back from the temporary copy is stored in its group
    attributes before the rename, so :func:`read_zarr` can verify it.
    """
    import zarr

    tmp = _tmp_sibling(path)
    try:
        with warnings.catch_warnings():
            # zarr 3 flags variable-length string arrays (string coordinates such as a preset
            # name) as not yet in the v3 spec; xarray and zarr read them back fine.
            warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
            if DIGEST_ATTR in ds.attrs:
                ds = ds.copy()
                del ds.attrs[DIGEST_ATTR]
            ds.to_zarr(tmp, mode="w", consolidated=False)
            digest = dataset_digest(_open_dataset(tmp))
            zarr.open_group(tmp, mode="r+").attrs[DIGEST_ATTR] = digest
        if path.exists():
            old = _tmp_sibling(path)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes_atomic(data: bytes, path: Path) -> None:
    check_writable_file(path)
    tmp = _tmp_sibling(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def check_writable_file(path: Path) -> None:
    """``RunDirectoryError`` when a directory sits where the run writes the file ``path`` (a
    report or figure; replacing a directory by a file fails, and it is not ours to remove)."""
    if Path(path).is_dir():
        raise RunDirectoryError(f"{path} is a directory, where the run writes its {Path(path).name}"
                                "; not removing it (remove it, or choose another --out)")


def read_zarr(path: Path, *, verify: bool = True) -> xr.Dataset:
    """Load a stored dataset fully into memory and check its digest.

    Raises:
        DamagedEntryError: the store cannot be read, or its contents differ from what was
            written (a deleted or truncated chunk, edited metadata, no digest recorded).
    """
    path = Path(path)
    try:
        ds = _open_dataset(path)
    except Exception as err:  # zarr/xarray raise many types for a damaged store
        raise DamagedEntryError(path, _one_line(err)) from err
    if verify:
        stored = ds.attrs.get(DIGEST_ATTR)
        if stored is None:
            raise DamagedEntryError(path, "no digest recorded")
        if dataset_digest(ds) != stored:
            raise DamagedEntryError(
                path, "contents differ from what was written (missing or altered chunk, or "
                "edited metadata)")
    ds.attrs.pop(DIGEST_ATTR, None)
    return ds


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}"


def _manifest_digest(body: Mapping[str, Any]) -> str:
    blob = json.dumps({k: v for k, v in body.items() if k != "digest"}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _lock(path: Path):
    import filelock

    return filelock.FileLock(path, thread_local=False)


class RunStore:
    """The directory of one run: manifest, finished points, failures, theory, merged results."""

    def __init__(self, root: Path, experiment: str, config: Mapping[str, Any], config_hash: str,
                 points: Sequence[str] | None = None):
        self.root = Path(root)
        self.points = None if points is None else list(points)
        self.experiment = experiment
        self.config = dict(config)
        self.config_hash = config_hash
        self.points_dir = self.root / "points"
        self.locks_dir = self.root / "locks"
        self.logs_dir = self.root / "logs"

    # -- opening -----------------------------------------------------------------------------
    def open(self) -> RunStore:
        """Create the directory, or check an existing one belongs to this experiment and config.

        Safe when several processes open the same new directory at once (the first one writes
        the manifest under a lock next to the directory; the others check it).
        """
        try:
            if self.root.exists() and not self.root.is_dir():
                raise RunDirectoryError(
                    f"{self.root} exists and is not a directory; not overwriting")
            self.root.parent.mkdir(parents=True, exist_ok=True)
            with _lock(self.root.parent / f".{self.root.name}.lock"):
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
                    if self.points is not None:
                        body["points"] = self.points
                    body["digest"] = _manifest_digest(body)
                    write_bytes_atomic(json.dumps(body, indent=2, sort_keys=True).encode(),
                                       manifest)
                for d in (self.points_dir, self.locks_dir, self.logs_dir):
                    d.mkdir(exist_ok=True)
            self.clean_all_debris()
        except PermissionError as err:
            raise RunDirectoryError(
                f"cannot write the run directory {self.root}: permission denied "
                f"({err.filename}); choose another --out") from err
        except OSError as err:
            if isinstance(err, RunDirectoryError):
                raise
            raise RunDirectoryError(
                f"cannot write the run directory {self.root}: {err.strerror or err}; "
                "choose another --out") from err
        return self

    def _check_manifest(self, manifest: Path) -> None:
        where = f"{self.root} is not a theorysim run directory of {self.experiment!r}"
        advice = "; not overwriting it (choose another --out or remove it)"
        if not manifest.is_file():
            raise RunDirectoryError(f"{where}: it has no {MANIFEST}{advice}")
        try:
            body = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunDirectoryError(f"{where}: unreadable {MANIFEST} ({err}){advice}") from err
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise RunDirectoryError(f"{where}: {MANIFEST} is not a theorysim manifest{advice}")
        if body.get("experiment") != self.experiment or body.get("config") != self.config:
            raise RunDirectoryError(
                f"{where}: it holds experiment {body.get('experiment')!r} with another "
                f"config{advice}"
            )
        if body.get("format_version", 1) >= 2 and body.get("digest") != _manifest_digest(body):
            raise RunDirectoryError(
                f"{self.root}/{MANIFEST} was edited after it was written (digest mismatch); "
                f"not trusting this directory{advice}"
            )

    # -- leases ------------------------------------------------------------------------------
    def lock(self, name: str):
        """The ``filelock.FileLock`` guarding entry ``name`` (a point key or ``run``)."""
        return _lock(self.locks_dir / f"{name}.lock")

    @contextlib.contextmanager
    def lease(self, name: str, *, wait: bool = False) -> Iterator[bool]:
        """Hold the lease on ``name``; yields False (holding nothing) when busy and not waiting."""
        import filelock

        lock = self.lock(name)
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except filelock.Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def clean_debris(self, name: str) -> None:
        """Remove ``.tmp-<name>*`` left by a killed writer; call only while holding its lease."""
        if name == "run":
            dirs, pattern = (self.root,), ".tmp-*"
        else:
            dirs, pattern = (self.points_dir,), f".tmp-{glob.escape(name)}.*"
        for d in dirs:
            for p in d.glob(pattern):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        p.unlink()

    def clean_all_debris(self) -> None:
        """Remove the ``.tmp-*`` debris of every entry whose lease is free (no live writer)."""
        names = {"run"}
        for p in self.points_dir.glob(".tmp-*"):
            stem = p.name[len(".tmp-"):].rsplit("-", 1)[0]
            for suffix in (".zarr", ".failed"):
                if stem.endswith(suffix):
                    names.add(stem[: -len(suffix)])
        for name in sorted(names):
            with self.lease(name) as held:
                if held:
                    self.clean_debris(name)

    # -- points ------------------------------------------------------------------------------
    def point_path(self, point: Mapping[str, Any]) -> Path:
        return self.points_dir / f"{point_key(point)}.zarr"

    def failure_path(self, point: Mapping[str, Any]) -> Path:
        return self.points_dir / f"{point_key(point)}.failed"

    def heartbeat_path(self, point: Mapping[str, Any]) -> Path:
        """Where the process computing ``point`` reports progress within it."""
        return self.locks_dir / f"{point_key(point)}.progress"

    def has_point(self, point: Mapping[str, Any]) -> bool:
        """Whether a finished point is stored (not verified: see :meth:`load_point`)."""
        return self.point_path(point).is_dir()

    def has_failed(self, point: Mapping[str, Any]) -> bool:
        return self.failure_path(point).is_file()

    def save_point(self, point: Mapping[str, Any], ds: xr.Dataset) -> None:
        write_zarr_atomic(ds, self.point_path(point))
        with contextlib.suppress(OSError):
            self.failure_path(point).unlink()

    def load_point(self, point: Mapping[str, Any]) -> xr.Dataset:
        """The stored point, verified; ``DamagedEntryError`` when it fails verification."""
        return read_zarr(self.point_path(point))

    def record_failure(self, point: Mapping[str, Any], text: str) -> Path:
        path = self.failure_path(point)
        write_bytes_atomic(text.encode(), path)
        return path

    def discard_point(self, point: Mapping[str, Any]) -> None:
        """Move a (damaged) point out of the way; call only while holding its lease."""
        path = self.point_path(point)
        if path.exists():
            old = _tmp_sibling(path)
            os.replace(path, old)
            shutil.rmtree(old, ignore_errors=True)

    # -- whole-run artefacts -----------------------------------------------------------------
    def save(self, name: str, ds: xr.Dataset) -> Path:
        path = self.root / f"{name}.zarr"
        write_zarr_atomic(ds, path)
        return path

    def load(self, name: str) -> xr.Dataset:
        return read_zarr(self.root / f"{name}.zarr")

    def has(self, name: str) -> bool:
        return (self.root / f"{name}.zarr").is_dir()


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of an existing run directory (for ``theorysim plot`` and ``status``)."""
    manifest = Path(run_dir) / MANIFEST
    try:
        body = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirectoryError(f"{run_dir} is not a theorysim run directory: {err}") from err
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise RunDirectoryError(f"{run_dir} is not a theorysim run directory (bad manifest)")
    if body.get("format_version", 1) >= 2 and body.get("digest") != _manifest_digest(body):
        raise RunDirectoryError(
            f"{manifest} was edited after it was written (digest mismatch); not trusting it")
    return body
