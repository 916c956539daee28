"""The ``theorysim`` command line: ``list``, ``run`` and ``plot``.

Any bad input (unknown experiment, preset or ``--set`` key, a value out of range, a foreign or
corrupt results directory) prints one line to stderr and exits with code 2, before any work.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_EXPERIMENT = "ridge-learning-curve"

app = typer.Typer(
    add_completion=False,
    no_args_is_help=False,
    help="theorysim: theory vs finite-width simulation, one command apart.",
)


def _fail(msg: str) -> None:
    typer.echo(f"theorysim: error: {msg}", err=True)
    raise typer.Exit(code=2)


def _parse_sets(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


@app.command("list")
def list_cmd() -> None:
    """List the experiments that `theorysim run NAME` can run."""
    from ._experiment import registry

    reg = registry()
    width = max(len(n) for n in reg)
    for name, cls in reg.items():
        default = "  (default)" if name == DEFAULT_EXPERIMENT else ""
        typer.echo(f"{name.ljust(width)}  {cls.summary}{default}")


@app.command("run")
def run_cmd(
    name: Annotated[str, typer.Argument(help="experiment name (see `theorysim list`)")] = (
        DEFAULT_EXPERIMENT
    ),
    preset: Annotated[str, typer.Option(help="quick or full")] = "quick",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override a config field: key=value")
    ] = None,
    out: Annotated[Path, typer.Option(help="root of the result store")] = Path("runs"),
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Run (or resume) an experiment: theory + simulation, results, report and figure."""
    from ._experiment import get_experiment
    from ._report import render_text
    from ._runner import run, run_dir_for
    from ._store import RunDirectoryError

    try:
        exp = get_experiment(name)
        cfg = exp.make_config(preset, _parse_sets(set_ or []))
    except ValueError as err:
        _fail(str(err))
    run_dir = run_dir_for(exp, cfg, out)
    typer.echo(f"theorysim run {name} --preset {preset} -> {run_dir}")
    try:
        if quiet:
            result = run(exp, cfg, out)
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            with Progress("[progress.description]{task.description}", BarColumn(),
                          MofNCompleteColumn(), TimeElapsedColumn(), transient=False) as bar:
                task = bar.add_task("simulating", total=None)

                def progress(done: int, total: int, label: str) -> None:
                    bar.update(task, completed=done, total=total,
                               description=f"simulating {label}")

                result = run(exp, cfg, out, progress=progress)
    except RunDirectoryError as err:
        _fail(str(err))
    typer.echo("")
    typer.echo(render_text(result.report))
    typer.echo("")
    typer.echo(f"points computed: {len(result.computed)}, reused: {len(result.reused)}; "
               f"{result.seconds:.1f} s")
    typer.echo(f"results: {result.run_dir / 'results.zarr'}")
    typer.echo(f"report:  {result.run_dir / 'report.md'}")
    for fig in result.figures:
        typer.echo(f"figure:  {fig}")


@app.command("plot")
def plot_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run directory runs/<experiment>/<hash>")],
) -> None:
    """Redraw the figure and report of a finished run from its stored results."""
    from ._experiment import get_experiment, parse_field
    from ._report import render_text
    from ._runner import render
    from ._store import RunDirectoryError, read_manifest, read_zarr

    try:
        manifest = read_manifest(run_dir)
        exp = get_experiment(manifest["experiment"])
        values = {}
        for key, value in manifest["config"].items():
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            values[key] = parse_field(exp.config_type, key, text)
        cfg = exp.config_type(**values)
        if not (Path(run_dir) / "results.zarr").is_dir():
            raise RunDirectoryError(f"{run_dir} has no results.zarr yet: run it first")
        ds = read_zarr(Path(run_dir) / "results.zarr")
        report, figs = render(exp, cfg, ds, Path(run_dir))
    except (ValueError, KeyError, json.JSONDecodeError) as err:
        _fail(str(err))
    typer.echo(render_text(report))
    for fig in figs:
        typer.echo(f"figure:  {fig}")


def main() -> None:
    """Entry point of the ``theorysim`` script."""
    try:
        app()
    except KeyboardInterrupt:  # finished points are already stored
        typer.echo("\ninterrupted; re-run the same command to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
