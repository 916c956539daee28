"""Shared by the paper-figure scripts: run (or reuse) experiments, say what is happening, and
export the figure.

Every script defaults to the quick preset (a few minutes on 2 cores; ``--preset full`` takes
much longer, not timed here), prints its progress, the agreement criterion and verdict of
each run it uses (loudly when one FAILED), and where the figure went.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from theorysim.compare import get_experiment, render_text, run


def parse(description: str, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--preset", default="quick", choices=("quick", "full"),
                        help="quick (default, minutes) or full (the paper's sizes: much "
                             "longer, not timed here)")
    parser.add_argument("--out", type=Path, default=Path("runs"))
    return parser.parse_args(argv)


def run_logged(name: str, preset: str, out: Path, sets: Mapping[str, str] | None = None,
               figures: bool = True):
    """``compare.run`` with progress on stderr and the run's criterion and verdict printed;
    returns ``(experiment, cfg, result)``."""
    exp = get_experiment(name)
    cfg = exp.make_config(preset, dict(sets or {}))
    label = f"{name} --preset {preset}" + "".join(f" --set {k}={v}" for k, v in
                                                  (sets or {}).items())
    print(f"running {label}", flush=True)
    t0 = time.perf_counter()

    last = [None]

    def progress(done: int, total: int, what: str) -> None:
        if not what and last[0] == (done, total):  # the same count again, nothing new to say
            return
        last[0] = (done, total)
        el = time.perf_counter() - t0
        eta = f", about {el / done * (total - done):.0f} s left" if 0 < done < total else ""
        print(f"  [{done}/{total}] {what} ({el:.0f} s{eta})", file=sys.stderr, flush=True)

    result = run(exp, cfg, out, progress=progress, figures=figures)
    report = result.report
    verdict = {True: "PASSED", False: "FAILED", None: "no criterion"}[report.passed]
    print(f"  criterion: {report.criterion}\n  result: {verdict} "
          f"({time.perf_counter() - t0:.0f} s; report {result.run_dir / 'report.md'})",
          flush=True)
    if report.passed is False:
        print(f"WARNING: {label} FAILED its criterion:\n{render_text(report)}", flush=True)
    return exp, cfg, result


def save(fig, out: Path, filename: str) -> Path:
    """Save ``fig`` as ``<out>/paper_figures/<filename>.{png,pdf}``; print and return the PNG."""
    dest = out / "paper_figures"
    dest.mkdir(parents=True, exist_ok=True)
    png = dest / f"{filename}.png"
    fig.savefig(png, dpi=200, bbox_inches="tight")
    fig.savefig(png.with_suffix(".pdf"), bbox_inches="tight")
    print(f"figure: {png} (and .pdf)", flush=True)
    return png


def export(name: str, filename: str, argv=None, sets: Mapping[str, str] | None = None,
           description: str = "") -> Path:
    """Run experiment ``name`` (finished points are reused) and copy its figure to
    ``<out>/paper_figures/<filename>.{png,pdf}``; print and return the PNG path."""
    args = parse(description, argv)
    _, _, result = run_logged(name, args.preset, args.out, sets)
    dest = args.out / "paper_figures"
    dest.mkdir(parents=True, exist_ok=True)
    for src in result.figures:
        shutil.copyfile(src, dest / f"{filename}{src.suffix}")
    png = dest / f"{filename}.png"
    print(f"figure: {png} (and .pdf; run directory {result.run_dir})", flush=True)
    return png
