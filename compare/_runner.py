"""The sweep runner: theory + simulation for one or many experiment configs, cached and resumable.

``run(experiment, cfg, out)`` computes every sweep point not already stored (in this process,
in local worker processes, or as a Slurm job array: see ``compare._executors``), each stored
atomically by whoever computed it, then computes the theory once, merges theory and
simulation, and writes the report and the figure. Killing it at any point and calling it
again with the same config redoes nothing that had finished: finished points are read back
from ``points/`` and verified (a damaged point is recomputed, with a one-line message). A point
that raises is recorded with its traceback and does not stop the others; the run then ends in
:class:`PointsFailedError`, and a re-run retries the failed and missing points only.

``run_many`` does the same for several (experiment, config) pairs with all their points
scheduled together (what ``theorysim sweep`` uses).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from ._executors import Executor, PointTask, make_executor, read_heartbeat
from ._experiment import Experiment, ExperimentConfig, Report, config_hash, config_to_dict
from ._jaxcache import enable_compilation_cache
from ._report import render_markdown
from ._store import (
    DamagedEntryError,
    RunStore,
    check_writable_file,
    point_key,
    write_bytes_atomic,
)

DEFAULT_OUT = Path("runs")

ProgressFn = Callable[[int, int, str], None]
LogFn = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What ``run`` produced: where it lives, the merged dataset and the report.

    ``computed``: points computed by this call (by any of its workers); ``reused``: points
    read back from the store; ``repaired``: stored points that failed verification and were
    recomputed (they are in ``computed`` too).
    """

    run_dir: Path
    dataset: xr.Dataset
    report: Report
    figures: tuple[Path, ...]
    computed: tuple[str, ...]
    reused: tuple[str, ...]
    seconds: float
    repaired: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RunProblem:
    """Why a run of a sweep did not finish: failed points (key -> traceback file) or others."""

    run_dir: Path
    failed: Mapping[str, Path]
    missing: tuple[str, ...] = ()
    error: str | None = None

    def summary(self) -> str:
        parts = []
        if self.failed:
            first, path = next(iter(self.failed.items()))
            parts.append(f"{len(self.failed)} point(s) failed ({', '.join(self.failed)}); "
                         f"{first}: {_last_line(path)}; tracebacks: "
                         f"{self.run_dir / 'points'}/<key>.failed")
        if self.missing:
            parts.append(f"{len(self.missing)} point(s) not computed "
                         f"({', '.join(self.missing)}): a worker died; see {self.run_dir}/logs")
        if self.error:
            parts.append(self.error)
        return f"{self.run_dir}: " + "; ".join(parts)


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
    except OSError:
        return "?"
    return lines[-1][:200] if lines else "?"


class PointsFailedError(RuntimeError):
    """Some sweep points failed or were not computed; every other point is stored.

    Attributes:
        problems: one :class:`RunProblem` per unfinished run.
        results: the :class:`RunResult` of each finished run (sweeps), in input order, with
            ``None`` for the unfinished ones.
    """

    def __init__(self, problems: Sequence[RunProblem],
                 results: Sequence[RunResult | None] = ()):
        self.problems = tuple(problems)
        self.results = tuple(results)
        lines = [p.summary() for p in self.problems]
        super().__init__("; ".join(lines) + "; re-run the same command to retry them")


def run_dir_for(experiment: Experiment, cfg: ExperimentConfig, out: Path = DEFAULT_OUT) -> Path:
    return Path(out) / experiment.name / config_hash(experiment.name, cfg)


def _stderr_log(msg: str) -> None:
    print(f"theorysim: {msg}", file=sys.stderr, flush=True)


def run(experiment: Experiment, cfg: ExperimentConfig, out: Path | str = DEFAULT_OUT, *,
        progress: ProgressFn | None = None, figures: bool = True,
        executor: str | Executor | None = None, jobs: int | None = None,
        slurm_options: Mapping[str, Any] | None = None,
        log: LogFn | None = None) -> RunResult:
    """Run (or resume) ``experiment`` at ``cfg`` and store everything under ``out``.

    Args:
        experiment: an :class:`Experiment` instance.
        cfg: its config (an instance of ``experiment.config_type``).
        out: root of the result store; the run lands in ``out/<name>/<config-hash>/``.
        progress: called as ``progress(done, total, label)`` as sweep points finish (read from
            the store, so it counts every worker's points).
        figures: write ``figure.png`` and ``figure.pdf``.
        executor: ``"sequential"`` (default, this process), ``"local"`` (``jobs`` worker
            processes), ``"slurm"`` (a submitit job array), ``"submitit-local"``, or an
            :class:`~theorysim.compare.Executor` instance.
        jobs: worker processes (``local``) or array tasks at once (``slurm``); >= 1.
        slurm_options: submitit Slurm parameters (``partition``, ``time``, ``cpus_per_task``,
            ``gpus_per_node``, ``mem``, ...).
        log: receives one-line notes (damaged points recomputed, dead workers); default stderr.

    Raises:
        ValueError: bad arguments (before any work); ``RunDirectoryError`` for a directory
            that is not this config's.
        PointsFailedError: some points raised or were not computed (the others are stored).
    """
    results, problems = run_many([(experiment, cfg)], out, progress=progress,
                                 figures=figures, executor=executor, jobs=jobs,
                                 slurm_options=slurm_options, log=log, isolate=False)
    if problems:
        raise PointsFailedError(problems, results)
    assert results[0] is not None
    return results[0]


def run_many(items: Sequence[tuple[Experiment, ExperimentConfig]], out: Path | str = DEFAULT_OUT,
             *, progress: ProgressFn | None = None, figures: bool = True,
             executor: str | Executor | None = None, jobs: int | None = None,
             slurm_options: Mapping[str, Any] | None = None, log: LogFn | None = None,
             log_dir: Path | None = None, isolate: bool = True,
             ) -> tuple[list[RunResult | None], list[RunProblem]]:
    """Run several (experiment, config) pairs with all their points scheduled together.

    Returns the :class:`RunResult` of each run (``None`` where it did not finish) and the
    :class:`RunProblem` of each unfinished run. With ``isolate``, a run whose theory, report
    or figure raises is reported as a problem instead of stopping the others.
    """
    t0 = time.perf_counter()
    log = log or _stderr_log
    enable_compilation_cache()
    ex = make_executor(executor, jobs=jobs, slurm_options=slurm_options)
    for experiment, cfg in items:
        if not isinstance(cfg, experiment.config_type):
            raise ValueError(
                f"cfg must be a {experiment.config_type.__name__}, got {type(cfg).__name__}"
            )
        if ex.name != "sequential" and type(experiment).__module__ == "__main__":
            raise ValueError(
                f"executor {ex.name!r} runs points in other processes, which cannot import "
                f"{type(experiment).__name__} from __main__; define the experiment in a module"
            )
        experiment.preflight(cfg)  # theory-side feasibility, before any simulation
    points = [[dict(p) for p in exp.points(cfg)] for exp, cfg in items]
    stores = [
        RunStore(run_dir_for(exp, cfg, Path(out)), exp.name, config_to_dict(cfg),
                 config_hash(exp.name, cfg), [point_key(p) for p in pts]).open()
        for (exp, cfg), pts in zip(items, points, strict=True)
    ]

    # 1. what is stored and sound already
    loaded: list[dict[str, xr.Dataset]] = []
    repaired: list[list[str]] = []
    tasks: list[PointTask] = []
    for (exp, cfg), store, pts in zip(items, stores, points, strict=True):
        ok, bad = _scan(store, pts, log)
        loaded.append(ok)
        repaired.append(bad)
        for p in pts:
            if point_key(p) not in ok:
                with contextlib.suppress(OSError):  # retry points that failed before
                    store.failure_path(p).unlink()
                tasks.append(PointTask(exp, cfg, store, p))

    # 2. compute the rest, progress read from the store
    total = sum(map(len, points))
    reused = sum(map(len, loaded))
    meter = _Progress(progress, tasks, reused, total)
    meter()
    if tasks:
        where = log_dir if log_dir is not None else stores[0].logs_dir
        for note in ex.execute(tasks, poll=meter, log_dir=Path(where)):
            log(note)
    meter(final=True)

    # 3. collect, then theory + merge + report per finished run
    results: list[RunResult | None] = []
    problems: list[RunProblem] = []
    for (exp, cfg), store, pts, ok, bad in zip(items, stores, points, loaded, repaired,
                                               strict=True):
        sims, computed, failed, missing = [], [], {}, []
        for p in pts:
            key = point_key(p)
            if key in ok:
                sims.append(ok[key])
                continue
            ds, why = _collect(store, p)
            if ds is not None:
                sims.append(ds)
                computed.append(key)
            elif why == "failed":
                failed[key] = store.failure_path(p)
            else:
                missing.append(key)
        if failed or missing:
            problems.append(RunProblem(store.root, failed, tuple(missing)))
            results.append(None)
            continue
        try:
            ds, report, figs = _finish(exp, cfg, store, sims, figures, log)
        except Exception as err:
            if not isolate:
                raise
            path = store.logs_dir / "finish.failed"
            write_bytes_atomic(traceback.format_exc().encode(), path)
            problems.append(RunProblem(store.root, {}, (),
                                       f"theory/report failed: {type(err).__name__}: "
                                       f"{str(err)[:200]} (traceback: {path})"))
            results.append(None)
            continue
        reused_keys = tuple(point_key(p) for p in pts if point_key(p) in ok)
        results.append(RunResult(store.root, ds, report, figs, tuple(computed), reused_keys,
                                 time.perf_counter() - t0, tuple(bad)))
    return results, problems


def _scan(store: RunStore, pts: list[dict], log: LogFn) -> tuple[dict[str, xr.Dataset],
                                                                  list[str]]:
    """Load every stored point; discard (and name) the ones that fail verification."""
    ok: dict[str, xr.Dataset] = {}
    bad: list[str] = []
    for p in pts:
        key = point_key(p)
        if not store.has_point(p):
            continue
        try:
            ok[key] = store.load_point(p)
            continue
        except DamagedEntryError:
            pass
        with store.lease(key, wait=True):  # a concurrent writer may be replacing it right now
            try:
                ok[key] = store.load_point(p)
                continue
            except DamagedEntryError as err:
                reason = err.reason
                store.discard_point(p)
        bad.append(key)
        log(f"stored point {key} of {store.root} is damaged ({reason}); discarded it and "
            "recomputing it")
    return ok, bad


def _collect(store: RunStore, p: dict) -> tuple[xr.Dataset | None, str]:
    """A point after the executor: loaded, or why not (``failed`` / ``missing``)."""
    key = point_key(p)
    if not store.has_point(p) and not store.has_failed(p):
        with store.lease(key, wait=True):  # another runner may still be computing it
            pass
    if store.has_point(p):
        try:
            return store.load_point(p), "ok"
        except DamagedEntryError as err:
            store.record_failure(p, f"point {key} was written but fails verification: {err}\n")
            return None, "failed"
    return None, "failed" if store.has_failed(p) else "missing"


def _finish(exp: Experiment, cfg: ExperimentConfig, store: RunStore, sims: list[xr.Dataset],
            figures: bool, log: LogFn):
    """Theory (computed once, under the run lease), merge, results, report and figures."""
    with store.lease("run", wait=True):
        store.clean_debris("run")
        theory = None
        if store.has("theory"):
            try:
                theory = store.load("theory")
            except DamagedEntryError as err:
                log(f"stored theory of {store.root} is damaged ({err.reason}); "
                    "recomputing it")
        if theory is None:
            theory = exp.theory(cfg)
            store.save("theory", theory)
        ds = exp.combine(cfg, theory, sims)
        ds.attrs["experiment"] = exp.name
        ds.attrs["config"] = json.dumps(config_to_dict(cfg), sort_keys=True)
        ds.attrs["config_hash"] = store.config_hash
        store.save("results", ds)
        report, figs = render(exp, cfg, ds, store.root, figures=figures)
    return ds, report, figs


class _Progress:
    """Feeds ``progress(done, total, label)`` from the store: every worker's finished points
    count, and the label shows the heartbeats of points in progress (``P=300: seeds 5/32``)."""

    def __init__(self, fn: ProgressFn | None, tasks: list[PointTask], reused: int, total: int):
        self.fn, self.tasks, self.reused, self.total = fn, tasks, reused, total
        self.done_keys: set[int] = set()
        self.failed = 0
        self.last = -1
        self.text = ""

    def __call__(self, final: bool = False) -> None:
        if self.fn is None:
            return
        failed = 0
        label = ""
        beats = []
        for i, t in enumerate(self.tasks):
            if i in self.done_keys:
                continue
            if t.store.has_point(t.point):
                self.done_keys.add(i)
                label = t.key
            elif t.store.has_failed(t.point):
                failed += 1
            elif not final:
                beat = read_heartbeat(t.store.heartbeat_path(t.point))
                if beat is not None:
                    beats.append(f"{t.key}: {beat[2]} {beat[0]}/{beat[1]}".replace(" :", ":"))
        done = self.reused + len(self.done_keys)
        text = ", ".join(beats[:2]) or label
        if failed:
            text = f"{text} ({failed} failed)".strip()
        if done != self.last or final or failed != self.failed or text != self.text:
            self.fn(done, self.total, text)
            self.last, self.failed, self.text = done, failed, text


def render(experiment: Experiment, cfg: ExperimentConfig, ds: xr.Dataset, run_dir: Path, *,
           figures: bool = True) -> tuple[Report, tuple[Path, ...]]:
    """Write ``report.md`` and the figures for a merged dataset; used by ``run`` and ``plot``."""

    report = experiment.report(cfg, ds)
    write_bytes_atomic(render_markdown(report, experiment.name, cfg).encode(),
                       Path(run_dir) / "report.md")
    paths: list[Path] = []
    if figures:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig = experiment.plot(cfg, ds)
        for ext in ("png", "pdf"):
            path = Path(run_dir) / f"figure.{ext}"
            check_writable_file(path)
            tmp = path.with_name(f".tmp-figure.{ext}")
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext)
            tmp.replace(path)
            paths.append(path)
        plt.close(fig)
    return report, tuple(paths)
