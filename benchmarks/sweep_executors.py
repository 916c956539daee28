"""Sweep executors (issue 15): ``--executor local --jobs 2`` against sequential, and overheads.

1. Speed-up: a sweep of ``--points`` (default 8) independent ``linear_ridge_error`` points
   (M = 2000, P cycling through 300, 600, 1000, ``--seeds`` seeds, about 10 s each at rest on
   2 cores) run sequentially and with two local workers, each side a fresh process (so both
   pay interpreter start, JAX import and compilation), interleaved rounds (benchmarks/_protocol).
   Target: >= 1.4x, and never slower than sequential.
2. Overheads with points that do no work (store writes only): worker start-up (process start,
   imports, unpickling; the intercept) and per-point cost (lease + atomic write + progress; the
   slope over ``--trivial`` and 4x as many points), for the local executor and submitit's
   local path, against the in-process sequential runner. JAX compilation per worker: the
   first ridge point of each worker against the median of its later points.

Run: ``python benchmarks/sweep_executors.py [--rounds 2] [--points 8] [--seeds 48]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import this module by name

import _protocol as proto  # noqa: E402

from theorysim.compare import Experiment, ExperimentConfig, Report, SubmititExecutor, run  # noqa: E402, E501

P_CYCLE = (300, 600, 1000)


@dataclasses.dataclass(frozen=True)
class RidgeSweepConfig(ExperimentConfig):
    n_points: int = 8
    M: int = 2000
    seeds: int = 48


class RidgeSweep(Experiment):
    """Independent ridge points; each records its own compute time (attrs ``seconds``)."""

    name = "bench-ridge-sweep"
    summary = "benchmark"
    config_type = RidgeSweepConfig

    def points(self, cfg):
        return [{"i": i} for i in range(cfg.n_points)]

    def simulate(self, cfg, point):
        import os

        import jax

        from theorysim.sims import linear_ridge_error
        from theorysim.theory import power_law_spectrum

        t0 = time.perf_counter()
        spec = power_law_spectrum(M=cfg.M, b=1.5, a=2.0)
        err = linear_ridge_error(jax.random.key(cfg.seed + point["i"]), spec.eigvals,
                                 spec.target_power, P_CYCLE[point["i"] % 3], 1e-5,
                                 n_seeds=cfg.seeds)
        err = np.asarray(jax.block_until_ready(err))
        return xr.Dataset({"err": (("i", "s"), err[None])}, coords={"i": [point["i"]]},
                          attrs={"seconds": time.perf_counter() - t0, "pid": os.getpid()})

    def combine(self, cfg, theory, sims):
        ds = xr.concat([s.drop_attrs() for s in sims], "i")
        ds["seconds"] = ("i", [s.attrs["seconds"] for s in sims])
        ds["pid"] = ("i", [s.attrs["pid"] for s in sims])
        return ds

    def theory(self, cfg):
        return xr.Dataset()

    def report(self, cfg, ds):
        return Report(title="bench")

    def plot(self, cfg, ds):  # pragma: no cover - figures=False
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class TrivialConfig(ExperimentConfig):
    n_points: int = 16


class Trivial(Experiment):
    """Points that do no work: what remains is the executor's and the store's overhead."""

    name = "bench-trivial"
    summary = "benchmark"
    config_type = TrivialConfig

    def points(self, cfg):
        return [{"i": i} for i in range(cfg.n_points)]

    def simulate(self, cfg, point):
        return xr.Dataset({"v": ("i", [float(point["i"])])}, coords={"i": [point["i"]]})

    def theory(self, cfg):
        return xr.Dataset()

    def report(self, cfg, ds):
        return Report(title="bench")

    def plot(self, cfg, ds):  # pragma: no cover - figures=False
        raise NotImplementedError


def _side(args) -> None:
    """One side in a fresh process: print the wall time and the per-point compute times."""
    t0 = time.perf_counter()
    exp, cfg = RidgeSweep(), RidgeSweepConfig(n_points=args.points, seeds=args.seeds)
    ex = None if args.side == "sequential" else "local"
    res = run(exp, cfg, args.out, executor=ex, jobs=None if ex is None else 2, figures=False,
              log=lambda m: None)
    print(json.dumps({"wall": time.perf_counter() - t0,
                      "seconds": res.dataset["seconds"].values.tolist(),
                      "pid": res.dataset["pid"].values.tolist()}))


def _side_timer(side: str, args, record: list) -> callable:
    def t() -> float:
        with tempfile.TemporaryDirectory() as d:
            cmd = [sys.executable, __file__, "--side", side, "--out", d, "--points",
                   str(args.points), "--seeds", str(args.seeds)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            body = json.loads(out.stdout.strip().splitlines()[-1])
            record.append((side, body))
            return body["wall"]
    return t


def _trivial(executor, n: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        run(Trivial(), TrivialConfig(n_points=n), d, executor=executor, figures=False,
            log=lambda m: None)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    proto.add_arguments(parser, rounds=2)
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=48)
    parser.add_argument("--trivial", type=int, default=8)
    parser.add_argument("--side", choices=("sequential", "local"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        _side(args)
        return
    info = proto.print_conditions("sweep executors: local --jobs 2 vs sequential")

    record: list = []
    c = proto.interleaved("local --jobs 2 vs sequential",
                          _side_timer("local", args, record),
                          _side_timer("sequential", args, record), args.rounds, warmup=False)
    met = c.median >= 1.4 and c.lo >= 1.0
    seq_pts = [s for side, b in record if side == "sequential" for s in b["seconds"]]
    print(f"  sequential: median point {statistics.median(seq_pts):.1f} s "
          f"({args.points} points, {args.seeds} seeds)")
    compile_extra = []
    for side, b in record:
        if side != "local":
            continue
        by_pid: dict = {}
        for s, pid in zip(b["seconds"], b["pid"], strict=True):
            by_pid.setdefault(pid, []).append(s)
        for times in by_pid.values():
            if len(times) > 1:
                compile_extra.append(times[0] - statistics.median(times[1:]))
    if compile_extra:
        print(f"  first point of a worker (compile) costs {statistics.median(compile_extra):.1f}"
              " s more than its later points")

    n1, n2 = args.trivial, 4 * args.trivial
    over = {}
    for name, make in (("sequential", lambda: None), ("local x1", _local1),
                       ("submitit-local x1", lambda: SubmititExecutor("local", jobs=1))):
        t1 = _trivial(make(), n1)
        t2 = _trivial(make(), n2)
        slope = (t2 - t1) / (n2 - n1)
        over[name] = (t1 - slope * n1, slope)
        print(f"  {name}: start-up {over[name][0]:.2f} s, per point {1e3 * slope:.0f} ms "
              f"({n1} points {t1:.2f} s, {n2} points {t2:.2f} s)")

    if not args.no_record:
        script = "sweep_executors.py"
        proto.record(script, f"{args.points} ridge points, local --jobs 2 vs sequential",
                     c.ratio_text(), rounds=args.rounds, target=">= 1.4x, never < 1x",
                     met="yes" if met else "no", load=c.load_text(), info=info)
        for name, (start, slope) in over.items():
            proto.record(script, f"overhead {name} (trivial points)",
                         f"start-up {start:.2f} s, {1e3 * slope:.0f} ms/point", info=info)
    print(f"target >= 1.4x and never slower: {'met' if met else 'NOT met'}")


def _local1():
    from theorysim.compare import LocalExecutor

    return LocalExecutor(1)


if __name__ == "__main__":
    import sweep_executors  # the classes must live in an importable module for the workers

    sweep_executors.main()
