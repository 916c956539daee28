"""The ``theorysim`` command line: ``list``, ``run``, ``sweep``, ``status`` and ``plot``.

Any bad input (unknown experiment, preset or ``--set`` key, a value out of range, a foreign or
corrupt results directory) prints one line to stderr and exits with code 2, before any work.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import types
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
        if key.strip() in out:  # the last one silently winning hides a typo
            raise ValueError(f"--set {key.strip()} given twice ({out[key.strip()]!r} and "
                             f"{value.strip()!r})")
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


ExecutorOpt = Annotated[
    str, typer.Option(help="where sweep points run: sequential (this process), local "
                      "(--jobs worker processes), slurm (a submitit job array), submitit-local")
]
JobsOpt = Annotated[
    int | None, typer.Option(help="worker processes (local) or array tasks at once (slurm); "
                             ">= 1; default: the CPUs here (local), 64 (slurm)")
]
SlurmOpt = Annotated[
    list[str] | None,
    typer.Option("--slurm", help="a Slurm parameter submitit knows, key=value (partition=gpu, "
                 "time=120 [min], cpus_per_task=4, gpus_per_node=1, mem=16GB, ...)"),
]
SlurmConfigOpt = Annotated[
    Path | None, typer.Option(help="JSON or TOML file of Slurm parameters (--slurm wins)")
]

#: the options ``run`` and ``sweep`` share: name, annotation, default
_SHARED = (
    ("preset", Annotated[str, typer.Option(help="quick or full")], "quick"),
    ("set_", Annotated[list[str] | None,
                       typer.Option("--set", help="override a config field: key=value")], None),
    ("out", Annotated[Path, typer.Option(help="root of the result store")], Path("runs")),
    ("quiet", Annotated[bool, typer.Option(help="no progress bar")], False),
    ("executor", ExecutorOpt, "sequential"),
    ("jobs", JobsOpt, None),
    ("slurm", SlurmOpt, None),
    ("slurm_config", SlurmConfigOpt, None),
)


def _shared_options(command):
    """Give ``command`` the options of ``_SHARED`` (after its own); they reach it as one
    ``opts`` namespace, so ``run`` and ``sweep`` declare and read them once."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values()
           if p.name != "opts"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                default=default) for name, annotation, default in _SHARED]

    @functools.wraps(command)
    def wrapper(**kwargs):
        opts = types.SimpleNamespace(**{name: kwargs.pop(name) for name, _, _ in _SHARED})
        return command(**kwargs, opts=opts)

    wrapper.__signature__ = inspect.Signature([*own, *shared])
    return wrapper


def _prepare(name: str, opts, more=None):
    """The experiment, its config and the executor from the shared options (``more(exp, cfg,
    sets)`` checks a command's own ones); bad input: one line and exit 2, before any work."""
    from ._experiment import get_experiment

    try:
        exp = get_experiment(name)
        sets = _parse_sets(opts.set_ or [])
        cfg = exp.make_config(opts.preset, sets)
        extra = more(exp, cfg, sets) if more is not None else None
        ex = _executor(opts.executor, opts.jobs, opts.slurm, opts.slurm_config)
        _check_out(opts.out)
    except ValueError as err:
        _fail(str(err))
    return exp, cfg, ex, extra


def _execute(opts, work):
    """``work(progress, log)`` under the progress bar; a foreign or corrupt run directory:
    one line and exit 2."""
    from ._store import RunDirectoryError

    log = lambda msg: typer.echo(f"theorysim: {msg}", err=True)  # noqa: E731
    try:
        return _with_progress(opts.quiet, "simulating", lambda progress: work(progress, log))
    except (RunDirectoryError, ValueError) as err:  # foreign directory, or refused up front
        _fail(str(err))


def _check_out(out: Path) -> None:
    """``--out`` must be a directory we can write (created if missing); ValueError otherwise."""
    import tempfile

    try:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file, not a directory")
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".theorysim-write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"--out {out} is not a writable directory "
                         f"({err.strerror or err})") from err


def _slurm_options(items: list[str], config: Path | None) -> dict[str, object]:
    opts: dict[str, object] = {}
    if config is not None:
        try:
            text = config.read_text()
            if config.suffix == ".toml":
                import tomllib

                loaded = tomllib.loads(text)
            else:
                loaded = json.loads(text)
        except (OSError, ValueError) as err:
            raise ValueError(f"--slurm-config {config}: unreadable ({err})") from err
        if not isinstance(loaded, dict):
            raise ValueError(f"--slurm-config {config}: expected a table of key = value")
        opts.update(loaded.get("slurm", loaded))
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--slurm expects key=value, got {item!r}")
        value = value.strip()
        opts[key.strip()] = int(value) if value.lstrip("-").isdigit() else value
    return opts


def _executor(executor: str, jobs: int | None, slurm: list[str] | None,
              slurm_config: Path | None):
    from ._executors import make_executor

    opts = _slurm_options(slurm or [], slurm_config)
    return make_executor(executor, jobs=jobs, slurm_options=opts)


def _with_progress(quiet: bool, what: str, fn):
    """Call ``fn(progress)``: a bar of finished/total points (from the store), elapsed and
    an estimate of the time left."""
    if quiet:
        return fn(None)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), "eta", TimeRemainingColumn(),
                  transient=False) as bar:
        task = bar.add_task(what, total=None)

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=f"{what} {label}")

        return fn(progress)


@app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="experiment name (see `theorysim list`)")] = (
        DEFAULT_EXPERIMENT
    ),
) -> None:
    """Show an experiment's `--set` keys: type, default (quick preset), full preset, range and
    meaning."""
    from ._experiment import get_experiment

    try:
        exp = get_experiment(name)
    except ValueError as err:
        _fail(str(err))
    typer.echo(f"{name}: {exp.summary}")
    typer.echo(f"usage: theorysim run {name} [--preset quick|full] [--set key=value ...]\n")
    rows = exp.describe()
    cols = ["key", "type", "default", "full", "range", "meaning"]
    table = [[r.get(c, "") for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols[:-1])]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False)) + "  meaning")
    for t in table:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=False)) + "  " + t[-1])
    for line in _variant_lines(exp, rows):
        typer.echo(line)


def _variant_lines(exp, rows: list[dict[str, str]]) -> list[str]:
    """The variants of ``exp``: each choice field (``--set key=value``) with its default, the
    meaning of the field, and the preset values a value brings with it (``Experiment.variants``,
    e.g. coord-check's ``model=transformer`` sizes)."""
    from ._configio import _text
    from ._experiment import variant_sets

    choice_rows = [r for r in rows if " | " in r.get("range", "")]
    if not choice_rows:
        return []
    lines = ["", "variants (--set key=value):"]
    for r in choice_rows:
        lines.append(f"  {r['key']} = {r['range']}  (default {r['default']}): {r['meaning']}")
        for sets, by_preset in exp.variants.items():
            if (pairs := variant_sets(sets))[0][0] != r["key"]:  # listed under its first key
                continue
            parts = [f"{preset}: " + " ".join(f"{k}={_text(v)}" for k, v in values.items())
                     for preset, values in by_preset.items() if values]
            lines.append(f"    {' '.join(f'{k}={v}' for k, v in pairs)} also sets  "
                         + ";  ".join(parts))
    return lines


@app.command("run")
@_shared_options
def run_cmd(
    name: Annotated[str, typer.Argument(help="experiment name (see `theorysim list`)")] = (
        DEFAULT_EXPERIMENT
    ),
    *,
    opts,
) -> None:
    """Run (or resume) an experiment: theory + simulation, results, report and figure."""
    from ._report import render_text
    from ._runner import PointsFailedError, run, run_dir_for

    exp, cfg, ex, _ = _prepare(name, opts)
    run_dir = run_dir_for(exp, cfg, opts.out)
    typer.echo(f"theorysim run {name} --preset {opts.preset} -> {run_dir}  [{ex.describe()}]")
    try:
        result = _execute(opts, lambda progress, log: run(
            exp, cfg, opts.out, progress=progress, executor=ex, log=log))
    except PointsFailedError as err:
        for problem in err.problems:
            typer.echo(f"theorysim: FAILED {problem.summary()}", err=True)
        typer.echo("theorysim: re-run the same command to retry the failed and missing points",
                   err=True)
        raise typer.Exit(code=1) from None
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
    from ._configio import config_from_dict
    from ._experiment import get_experiment
    from ._report import render_text
    from ._runner import render
    from ._store import RunDirectoryError, read_manifest, read_zarr

    try:
        manifest = read_manifest(run_dir)
        exp = get_experiment(manifest["experiment"])
        cfg = config_from_dict(exp.config_type, manifest["config"])
        if not (Path(run_dir) / "results.zarr").is_dir():
            raise RunDirectoryError(f"{run_dir} has no results.zarr yet: run it first")
        ds = read_zarr(Path(run_dir) / "results.zarr")
        report, figs = render(exp, cfg, ds, Path(run_dir))
    except (ValueError, KeyError, json.JSONDecodeError) as err:
        _fail(str(err))
    typer.echo(render_text(report))
    for fig in figs:
        typer.echo(f"figure:  {fig}")


@app.command("sweep")
@_shared_options
def sweep_cmd(
    name: Annotated[str, typer.Argument(help="experiment name (see `theorysim list`)")],
    grid: Annotated[
        list[str] | None,
        typer.Option("--grid", help="a config field and its values: key=v1,v2,... (tuple "
                     "fields: values separated by ';'); the sweep runs the product"),
    ] = None,
    figures: Annotated[bool, typer.Option(help="write each run's figure")] = True,
    *,
    opts,
) -> None:
    """Run a grid of configs (the product of every --grid) with all points scheduled together."""
    from ._grid import grid_configs, parse_grid, sweep, sweep_dir_for

    def grid_values(exp, base, sets):
        if not grid:
            raise ValueError("--grid is required (e.g. --grid seed=0,1,2)")
        values = parse_grid(exp.config_type, grid)
        both = sorted(set(values) & set(sets))
        if both:
            raise ValueError(f"--grid key {both[0]!r} is also given with --set")
        return values, len(grid_configs(exp, base, values))

    exp, base, ex, (values, n) = _prepare(name, opts, grid_values)
    where = sweep_dir_for(exp, base, values, opts.out)
    typer.echo(f"theorysim sweep {name}: {n} runs -> {where}  [{ex.describe()}]")
    res = _execute(opts, lambda progress, log: sweep(
        exp, values, opts.out, base=base, executor=ex, progress=progress, figures=figures,
        log=log))
    for entry, result in zip(res.runs, res.results, strict=True):
        shown = " ".join(f"{k}={v}" for k, v in entry["grid"].items())
        if result is None:
            state = "FAILED"
        else:
            state = {True: "passed", False: "FAILED criterion", None: "done"}[
                result.report.passed]
        typer.echo(f"  {shown:<30} {state:<16} {(where / entry['run_dir']).resolve()}")
    for problem in res.problems:
        typer.echo(f"theorysim: FAILED {problem.summary()}", err=True)
    typer.echo(f"index:   {where / 'index.json'}")
    typer.echo(f"status:  theorysim status {where}")
    typer.echo("view:    theorysim.compare.open_sweep(" + repr(str(where)) + ")")
    if res.problems:
        typer.echo("theorysim: re-run the same command to retry the failed and missing points",
                   err=True)
        raise typer.Exit(code=1)


@app.command("status")
def status_cmd(
    path: Annotated[Path, typer.Argument(help="a run directory, a sweep directory, or a "
                                         "results root (every run below it)")],
) -> None:
    """Per run: finished / pending / failed points and where the failures' tracebacks are."""
    from ._grid import run_status
    from ._store import RunDirectoryError

    try:
        runs = run_status(path)
    except RunDirectoryError as err:
        _fail(str(err))
    totals = [0, 0, 0]
    for st in runs:
        grid = " ".join(f"{k}={v}" for k, v in (st.grid or {}).items())
        total = "?" if st.total is None else str(st.total)
        typer.echo(f"{st.run_dir}  {st.experiment} {grid}".rstrip())
        typer.echo(f"  finished {len(st.finished)}/{total}  pending {len(st.pending)}  "
                   f"failed {len(st.failed)}  results {'yes' if st.has_results else 'no'}")
        for key, tb in st.failed.items():
            typer.echo(f"  failed {key}: {tb}")
        totals[0] += len(st.finished)
        totals[1] += len(st.pending)
        totals[2] += len(st.failed)
    typer.echo(f"{len(runs)} run(s): {totals[0]} finished, {totals[1]} pending, "
               f"{totals[2]} failed points")


def main() -> None:
    """Entry point of the ``theorysim`` script. A usage error (unknown command or option, a
    missing or malformed option value) is one line and exit 2 too, like any bad input."""
    try:
        code = app(prog_name="theorysim", standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):  # finished points are already stored
        typer.echo("\ninterrupted; re-run the same command to resume", err=True)
        sys.exit(130)
    except Exception as err:
        # click's UsageError / ClickException (typer vendors click privately: duck-typed)
        if not (callable(getattr(err, "format_message", None)) and hasattr(err, "exit_code")):
            raise
        ctx = getattr(err, "ctx", None)
        path = "theorysim " + ctx.command_path.partition(" ")[2] if ctx is not None else ""
        typer.echo(f"theorysim: error: {err.format_message()}"
                   + (f" (see `{path.strip()} --help`)" if ctx is not None else ""), err=True)
        sys.exit(err.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
