"""Toy experiments for the store, runner and executor tests (importable by worker processes).

``Toy``: y = scale * x plus seeded noise; counts its simulate calls in this process.
``SlowToy``: the same, but also appends ``<key> <pid> start|done`` to ``cfg.log`` (so the
test sees every process's calls), sleeps ``cfg.sleep`` seconds per point, raises at
``cfg.fail_at`` while a file ``<log>.fail`` exists, and SIGKILLs its own process at
``cfg.kill_at`` (once: a marker file next to the log says it happened).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import numpy as np
import xarray as xr

from theorysim.compare import Experiment, ExperimentConfig, Report


@dataclasses.dataclass(frozen=True)
class ToyConfig(ExperimentConfig):
    n_points: int = 5
    scale: float = 2.0
    widths: tuple[int, ...] = (1, 2)
    flag: bool = False


def _toy_point(cfg, x):
    rng = np.random.default_rng([cfg.seed, x])
    y = cfg.scale * x + rng.standard_normal(4)
    return xr.Dataset({"sim": (("x", "seed"), y[None])},
                      coords={"x": [x], "seed": np.arange(4)})


class _ToyBase(Experiment):
    summary = "toy"

    def points(self, cfg):
        return [{"x": i} for i in range(cfg.n_points)]

    def theory(self, cfg):
        x = np.arange(cfg.n_points)
        return xr.Dataset({"theory": ("x", cfg.scale * x.astype(float))}, coords={"x": x})

    def report(self, cfg, ds):
        return Report(title="toy", metrics={"n": float(ds.sizes["x"])})

    def plot(self, cfg, ds):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot(ds["x"], ds["theory"])
        return fig


class Toy(_ToyBase):
    """Counts its simulate calls; raises KeyboardInterrupt at ``crash_at``."""

    name = "toy"
    config_type = ToyConfig

    def __init__(self, crash_at: int | None = None):
        self.calls: list[int] = []
        self.crash_at = crash_at

    def simulate(self, cfg, point):
        if point["x"] == self.crash_at:
            raise KeyboardInterrupt
        self.calls.append(point["x"])
        return _toy_point(cfg, point["x"])


@dataclasses.dataclass(frozen=True)
class SlowToyConfig(ExperimentConfig):
    n_points: int = 6
    scale: float = 2.0
    sleep: float = 0.0
    log: str = ""
    fail_at: int = -1
    kill_at: int = -1

    def __post_init__(self):
        if not 0 <= self.scale <= 100:
            raise ValueError(f"scale must be in [0, 100], got {self.scale}")


class SlowToy(_ToyBase):
    name = "slow-toy"
    config_type = SlowToyConfig

    def simulate(self, cfg, point):
        x = point["x"]
        _note(cfg, f"x={x} {os.getpid()} start")
        if x == cfg.kill_at:
            marker = Path(cfg.log).with_suffix(".killed")
            if not marker.exists():
                marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
        for k in range(3):
            time.sleep(cfg.sleep / 3)
            self.tick(k + 1, 3, "steps")
        if x == cfg.fail_at and Path(cfg.log).with_suffix(".fail").exists():
            raise RuntimeError(f"point x={x} made to fail")
        _note(cfg, f"x={x} {os.getpid()} done")
        return _toy_point(cfg, x)


def _note(cfg, line):
    if cfg.log:
        fd = os.open(cfg.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def calls(log) -> list[str]:
    """The ``done`` lines of a SlowToy log: one per point computed (by any process)."""
    path = Path(log)
    if not path.exists():
        return []
    return [ln.split()[0] for ln in path.read_text().splitlines() if ln.endswith(" done")]
