"""Shared by the paper-figure scripts: run (or reuse) an experiment and export its figure."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Mapping
from pathlib import Path

from theorysim.compare import get_experiment, run


def parse(description: str, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--preset", default="full", choices=("quick", "full"))
    parser.add_argument("--out", type=Path, default=Path("runs"))
    return parser.parse_args(argv)


def export(name: str, filename: str, argv=None, sets: Mapping[str, str] | None = None,
           description: str = "") -> Path:
    """Run experiment ``name`` (finished points are reused) and copy its figure to
    ``<out>/paper_figures/<filename>.{png,pdf}``; print and return the PNG path."""
    args = parse(description, argv)
    exp = get_experiment(name)
    result = run(exp, exp.make_config(args.preset, dict(sets or {})), args.out)
    dest = args.out / "paper_figures"
    dest.mkdir(parents=True, exist_ok=True)
    for src in result.figures:
        shutil.copyfile(src, dest / f"{filename}{src.suffix}")
    png = dest / f"{filename}.png"
    print(f"figure: {png}  (run directory {result.run_dir})")
    return png
