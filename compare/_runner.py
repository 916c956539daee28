"""The sweep runner: theory + simulation for one experiment config, cached and resumable.

``run(experiment, cfg, out)`` computes every sweep point not already stored, stores each as
soon as it finishes, then merges theory and simulation, writes the report and the figure.
Killing it at any point and calling it again with the same config redoes nothing that had
finished: finished points are read back from ``points/``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import xarray as xr

from ._experiment import Experiment, ExperimentConfig, Report, config_hash, config_to_dict
from ._report import render_markdown
from ._store import RunStore, point_key, write_bytes_atomic

DEFAULT_OUT = Path("runs")

ProgressFn = Callable[[int, int, str], None]


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What ``run`` produced: where it lives, the merged dataset and the report."""

    run_dir: Path
    dataset: xr.Dataset
    report: Report
    figures: tuple[Path, ...]
    computed: tuple[str, ...]
    reused: tuple[str, ...]
    seconds: float


def run_dir_for(experiment: Experiment, cfg: ExperimentConfig, out: Path = DEFAULT_OUT) -> Path:
    return Path(out) / experiment.name / config_hash(experiment.name, cfg)


def run(experiment: Experiment, cfg: ExperimentConfig, out: Path | str = DEFAULT_OUT, *,
        progress: ProgressFn | None = None, figures: bool = True) -> RunResult:
    """Run (or resume) ``experiment`` at ``cfg`` and store everything under ``out``.

    Args:
        experiment: an :class:`Experiment` instance.
        cfg: its config (an instance of ``experiment.config_type``).
        out: root of the result store; the run lands in ``out/<name>/<config-hash>/``.
        progress: called as ``progress(done, total, label)`` after each sweep point.
        figures: write ``figure.png`` and ``figure.pdf``.
    """
    if not isinstance(cfg, experiment.config_type):
        raise ValueError(
            f"cfg must be a {experiment.config_type.__name__}, got {type(cfg).__name__}"
        )
    t0 = time.perf_counter()
    store = RunStore(
        run_dir_for(experiment, cfg, Path(out)), experiment.name, config_to_dict(cfg),
        config_hash(experiment.name, cfg),
    ).open()
    points = experiment.points(cfg)

    computed, reused, sims = [], [], []
    for i, point in enumerate(points):
        key = point_key(point)
        if store.has_point(point):
            ds = store.load_point(point)
            reused.append(key)
        else:
            ds = experiment.simulate(cfg, point)
            store.save_point(point, ds)
            computed.append(key)
        sims.append(ds)
        if progress is not None:
            progress(i + 1, len(points), key)

    if store.has("theory"):
        theory = store.load("theory")
    else:
        theory = experiment.theory(cfg)
        store.save("theory", theory)

    ds = experiment.combine(cfg, theory, sims)
    ds.attrs["experiment"] = experiment.name
    ds.attrs["config"] = json.dumps(config_to_dict(cfg), sort_keys=True)
    ds.attrs["config_hash"] = store.config_hash
    store.save("results", ds)
    report, figs = render(experiment, cfg, ds, store.root, figures=figures)
    return RunResult(store.root, ds, report, figs, tuple(computed), tuple(reused),
                     time.perf_counter() - t0)


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
            tmp = path.with_name(f".tmp-figure.{ext}")
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=ext)
            tmp.replace(path)
            paths.append(path)
        plt.close(fig)
    return report, tuple(paths)
