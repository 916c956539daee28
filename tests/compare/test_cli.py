"""The command line: list, run, plot, and one-line errors with exit code 2."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import typing

import pytest
from typer.testing import CliRunner

from theorysim.compare._configio import MAX_MAGNITUDE, field_bounds
from theorysim.compare._experiment import get_experiment, registry
from theorysim.compare._runner import run, run_dir_for
from theorysim.compare.cli import app

# submitit binds its log handlers to sys.stdout / sys.stderr when it is first imported: import
# it now, not inside CliRunner.invoke, whose replacement streams are closed afterwards.
pytest.importorskip("submitit")

runner = CliRunner()

ISSUE_2_EXPERIMENTS = ("ridge-learning-curve", "random-feature-grid", "digits-kernel-curve")


def _err_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_list_names_the_experiments():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for name in ISSUE_2_EXPERIMENTS:
        assert name in result.stdout
    assert "(default)" in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "no-such-experiment"], "unknown experiment 'no-such-experiment'"),
        (["run", "--set", "bogus=1"], "unknown --set key 'bogus'"),
        (["run", "--set", "M=-5"], "M must be in [1"),
        (["run", "--set", "ridge=-1"], "ridge must be in [0.0"),
        (["run", "--set", "noise"], "--set expects key=value"),
        (["run", "--preset", "huge"], "preset must be one of"),
        (["run", "--set", "seeds=abc"], "--set seeds='abc': expected int"),
        # second probe (session 5)
        (["run", "--set", "seeds=1e400"], "--set seeds='1e400': expected int"),
        (["run", "--set", "M=nan"], "--set M='nan': expected int"),
        (["run", "--set", "a=1e999"], "a must be finite"),
        (["run", "--set", "seed=-1"], "seed must be in [0"),
        (["run", "ridge"], "unknown experiment 'ridge'"),
        (["run", "coord-check", "--set", "model=rnn"], "model must be one of"),
        (["run", "coord-check", "--set", "widths=64,64"], "widths must be strictly increasing"),
        (["run", "coord-check", "--set", "widths=128,64"], "widths must be strictly increasing"),
        (["run", "coord-check", "--set", "widths=64"], "widths must have at least 2 entries"),
        (["run", "dmft-vs-width", "--set", "times=0.33"], "times must be positive multiples"),
        (["run", "dmft-vs-width", "--set", "times=1e6"], "more than the finite-width theory"),
        (["run", "dmft-vs-width", "--set", "samples=100"], "samples must be a power of 2"),
        (["run", "mup-transfer", "--set", "log2_lr_min=0", "--set", "log2_lr_max=-10"],
         "log2_lr_max must be in"),
        (["run", "digits-kernel-curve", "--set", "P_max=5000"], "P_max must be in"),
        # counts with no upper bound would validate and run for days
        (["run", "--set", "seeds=1000000000"], "seeds must be in [2, 100000]"),
        (["run", "random-feature-grid", "--set", "n_grid=100000"], "n_grid must be in [2, 64]"),
        (["run", "digits-kernel-curve", "--set", "splits=1000000000"], "splits must be in"),
        (["run", "ntk-learning-curve", "--set", "seeds=1000000000"], "seeds must be in"),
        # third probe (session 6)
        (["run", "--set", "seeds=4", "--set", "seeds=8"], "--set seeds given twice"),
        (["run", "--set", "ridge="], "--set ridge='': expected float"),
        (["run", "--preset", ""], "preset must be one of"),
        (["run", "RIDGE-LEARNING-CURVE"], "unknown experiment 'RIDGE-LEARNING-CURVE'"),
        (["run", "myrtle-digits", "--set", "P_max=600"], "P_max must be in"),
        (["run", "scaling-law-dynamics", "--set", "widths=64,32"], "strictly increasing"),
        (["run", "--executor", "local", "--jobs", "-1"], "jobs must be an integer >= 1"),
        # session 7: absurd finite floats were refused inside every simulated point (exit 1)
        (["run", "ntk-learning-curve", "--set", "ridge=1e300"],
         "ridge must be in (0.0, 1000000000.0], got 1e+300"),
        (["run", "--set", "noise=1e30"], "noise must be in [0.0, 1000000000.0]"),
        (["run", "ntk-learning-curve", "--set", "net_lr=-inf"], "net_lr must be finite"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, needle, tmp_path):
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert needle in _err_line(result)
    assert not any(tmp_path.iterdir())  # raised before any work


def _float_fields(cfg):
    """``(name, value)`` of the float fields (scalar or tuple entries) of a config."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        if float in (hints[f.name], *typing.get_args(hints[f.name])):
            yield f.name, getattr(cfg, f.name)


@pytest.mark.parametrize("name", sorted(registry()))
def test_every_float_field_refuses_an_absurd_value_up_front(name, tmp_path):
    """``--set field=1e300`` (finite, but past any float32 computation) on every float field of
    every experiment: exit 2, one line naming the field, nothing written; the field's range
    (declared, or +-MAX_MAGNITUDE) is what ``theorysim show`` prints."""
    cfg, n = get_experiment(name).make_config("quick"), 0
    for field, value in _float_fields(cfg):
        bad = ",".join([*map(str, value[:-1]), "1e300"]) if isinstance(value, tuple) else "1e300"
        result = runner.invoke(app, ["run", name, "--set", f"{field}={bad}", "--out",
                                     str(tmp_path)])
        assert result.exit_code == 2, (field, result.output)
        assert _err_line(result).startswith(f"theorysim: error: {field} "), result.stderr
        hi = field_bounds(cfg)[field][1]
        assert hi <= MAX_MAGNITUDE, (field, hi)
        n += 1
    assert n >= 1 and not any(tmp_path.iterdir())


def test_show_lists_keys_and_variants():
    result = runner.invoke(app, ["show", "coord-check"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "usage: theorysim run coord-check" in out
    assert "variants (--set key=value):" in out
    assert "model = mlp | cnn | transformer  (default mlp)" in out
    assert "vary = heads | d_head  (default heads)" in out
    assert "model=transformer also sets  quick: widths=128,256,512" in out
    bad = runner.invoke(app, ["show", "no-such"])
    assert bad.exit_code == 2 and "unknown experiment 'no-such'" in _err_line(bad)


@pytest.mark.parametrize("name", sorted(registry()))
def test_show_reads_right_for_every_experiment(name):
    """Every key has a type, a default and a meaning; choice keys are listed as variants."""
    result = runner.invoke(app, ["show", name])
    assert result.exit_code == 0, result.output
    exp = get_experiment(name)
    rows = exp.describe()
    assert all(r["meaning"] and r["type"] and r["default"] != "" for r in rows)
    for r in rows:
        assert r["key"] in result.stdout
        if " | " in r["range"]:
            assert f"  {r['key']} = {r['range']}  (default {r['default']})" in result.stdout


def test_out_at_a_device_or_under_a_file_is_exit_code_2(tmp_path):
    (tmp_path / "f").write_text("x")
    for out in ("/dev/null", str(tmp_path / "f" / "sub")):
        result = runner.invoke(app, ["run", *SMALL_RIDGE, "--out", out])
        assert result.exit_code == 2, result.output
        assert "--out" in _err_line(result)


def test_plot_of_a_foreign_directory_fails_cleanly(tmp_path):
    (tmp_path / "file.txt").write_text("not a run")
    result = runner.invoke(app, ["plot", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a theorysim run directory" in _err_line(result)
    assert (tmp_path / "file.txt").read_text() == "not a run"


def test_run_then_plot_small_ridge_curve(tmp_path):
    sets = ["--set", "M=200", "--set", "P_max=100", "--set", "n_P=4", "--set", "seeds=4"]
    result = runner.invoke(app, ["run", *sets, "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "points computed: 4, reused: 0" in result.stdout
    run_dir = next((tmp_path / "ridge-learning-curve").iterdir())
    (run_dir / "figure.png").unlink()
    replot = runner.invoke(app, ["plot", str(run_dir)])
    assert replot.exit_code == 0, replot.output
    assert (run_dir / "figure.png").stat().st_size > 10_000
    assert "sim exponent fitted" in replot.stdout


def test_killed_full_run_resumes_without_redoing_points(tmp_path):
    """SIGKILL a real `theorysim run ... --preset full` midway, then finish it."""
    sets = {"M": "600", "P_max": "600", "n_P": "12", "seeds": "16"}
    argv = [sys.executable, "-c", "from theorysim.compare.cli import main; main()", "run",
            "ridge-learning-curve", "--preset", "full", "--out", str(tmp_path), "--quiet"]
    for k, v in sets.items():
        argv += ["--set", f"{k}={v}"]
    exp = get_experiment("ridge-learning-curve")
    cfg = exp.make_config("full", sets)
    points_dir = run_dir_for(exp, cfg, tmp_path) / "points"
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = list(points_dir.glob("P=*.zarr")) if points_dir.exists() else []
            if len(done) >= 3 or proc.poll() is not None:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    finished = sorted(p.stem for p in points_dir.glob("P=*.zarr"))
    total = len(exp.points(cfg))
    assert 3 <= len(finished) < total, "the kill must land midway through the sweep"
    assert not (points_dir.parent / "results.zarr").exists()

    result = run(exp, cfg, tmp_path, figures=False)
    assert sorted(result.reused) == finished
    assert len(result.computed) == total - len(finished)
    assert set(result.computed).isdisjoint(finished)
    assert result.dataset.sizes["P"] == total


# -- issue 14 (--out) and issue 15 (executors, sweep, status) ---------------------------------

SMALL_RIDGE = ["--set", "M=100", "--set", "P_max=50", "--set", "n_P=3", "--set", "seeds=2"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--executor", "threads"], "executor must be one of"),
        (["run", "--executor", "local", "--jobs", "0"], "jobs must be an integer >= 1"),
        (["run", "--executor", "submitit-local", "--slurm", "bogus=1"],
         "slurm option 'bogus' is not a Slurm parameter"),
        (["run", "--executor", "local", "--slurm", "partition=x"], "slurm options apply"),
        (["run", "--executor", "slurm", "--slurm", "nonsense"], "--slurm expects key=value"),
        (["sweep", "ridge-learning-curve", "--grid", "bogus=1,2"],
         "--grid key 'bogus' is not a config field"),
        (["sweep", "ridge-learning-curve", "--grid", "M=100,-5"], "M must be in [1"),
        (["sweep", "ridge-learning-curve", "--grid", "M=1e2,abc"], "--grid M='abc'"),
        (["sweep", "ridge-learning-curve", "--grid", "a=1.5", "--set", "a=2.5"],
         "also given with --set"),
        (["sweep", "ridge-learning-curve"], "--grid is required"),
        # third probe (session 6)
        (["sweep", "ridge-learning-curve", "--grid", "seed=1,1"], "has repeated values"),
        (["sweep", "ridge-learning-curve", "--grid", "seed="], "--grid seed= has no values"),
        (["sweep", "ridge-learning-curve", "--grid", "seed=1,2", "--grid", "seed=3"],
         "--grid key 'seed' given twice"),
        (["sweep", "ridge-learning-curve", "--grid", "a=nan,2"], "a must not be NaN"),
        (["sweep", "ridge-learning-curve", "--grid", "seed=" + ",".join(map(str, range(201))),
          "--grid", "n_P=" + ",".join(map(str, range(2, 52)))], "split it into sweeps"),
    ],
)
def test_bad_executor_and_grid_input_is_one_line_and_exit_code_2(args, needle, tmp_path):
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert needle in _err_line(result)
    assert not any(tmp_path.iterdir())


def test_slurm_without_submitit_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)
    result = runner.invoke(app, ["run", "--executor", "slurm", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "pip install 'theorysim[cluster]'" in _err_line(result)


def test_out_pointing_at_a_file_is_one_line_and_exit_code_2(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("mine")
    for cmd in (["run"], ["sweep", "ridge-learning-curve", "--grid", "a=1.5,2"]):
        result = runner.invoke(app, [*cmd, *SMALL_RIDGE, "--out", str(target)])
        assert result.exit_code == 2
        assert "is a file, not a directory" in _err_line(result)
    assert target.read_text() == "mine"


def test_out_in_a_read_only_place_is_one_line_and_exit_code_2(tmp_path):
    if os.geteuid() == 0:  # root writes through chmod; /sys is read-only even for root
        target = "/sys/theorysim-out"
        if os.access("/sys", os.W_OK) and os.path.ismount("/sys") is False:
            pytest.skip("no read-only filesystem to point --out at")
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = str(ro / "out")
    result = runner.invoke(app, ["run", *SMALL_RIDGE, "--out", target])
    assert result.exit_code == 2
    assert "is not a writable directory" in _err_line(result)


def test_run_in_a_directory_owned_by_another_config_is_exit_code_2(tmp_path):
    exp = get_experiment("ridge-learning-curve")
    cfg = exp.make_config("quick", {"M": "100", "P_max": "50", "n_P": "3", "seeds": "2"})
    root = run_dir_for(exp, cfg, tmp_path)
    root.mkdir(parents=True)
    (root / "manifest.json").write_text(
        '{"format": "theorysim-run", "experiment": "ridge-learning-curve", "config": {}}')
    result = runner.invoke(app, ["run", *SMALL_RIDGE, "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 2
    assert "another config" in _err_line(result)


def test_sweep_with_local_workers_then_status(tmp_path):
    result = runner.invoke(app, ["sweep", "ridge-learning-curve", "--grid", "a=1.5,2.5",
                                 *SMALL_RIDGE, "--out", str(tmp_path), "--quiet",
                                 "--no-figures", "--executor", "local", "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "2 runs" in result.stdout and "index:" in result.stdout
    sweep_dir = next((tmp_path / "ridge-learning-curve").glob("sweep-*"))
    status = runner.invoke(app, ["status", str(sweep_dir)])
    assert status.exit_code == 0, status.output
    assert status.stdout.count("finished 3/3  pending 0  failed 0  results yes") == 2
    assert "2 run(s): 6 finished, 0 pending, 0 failed points" in status.stdout

    from theorysim.compare._grid import open_sweep

    ds = open_sweep(sweep_dir)
    assert list(ds["a"].values) == [1.5, 2.5]


def test_status_of_a_foreign_directory_is_exit_code_2(tmp_path):
    result = runner.invoke(app, ["status", str(tmp_path)])
    assert result.exit_code == 2
    assert "holds no theorysim run" in _err_line(result)


def test_slurm_config_file_is_checked_like_flags(tmp_path):
    pytest.importorskip("submitit")
    conf = tmp_path / "cluster.toml"
    conf.write_text('[slurm]\npartition = "debug"\nbogus = 1\n')
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", "--executor", "submitit-local", "--slurm-config",
                                 str(conf), "--out", str(out)])
    assert result.exit_code == 2
    assert "slurm option 'bogus' is not a Slurm parameter" in _err_line(result)
    conf.write_text("not toml [")
    result = runner.invoke(app, ["run", "--executor", "slurm", "--slurm-config", str(conf),
                                 "--out", str(out)])
    assert result.exit_code == 2 and "--slurm-config" in _err_line(result)
    assert not out.exists()


# -- third probe (session 6): usage errors, odd --out paths, bad names --------------------------

@pytest.mark.parametrize(("argv", "named"), [
    (["run", "--bogus"], "--bogus"), (["frobnicate"], "frobnicate"),
    (["run", "--jobs", "abc"], "--jobs"), (["show", "ridge-learning-curve", "coord-check"],
                                           "coord-check")])
def test_usage_errors_of_the_script_are_one_line_and_exit_code_2(argv, named, monkeypatch,
                                                                 capsys):
    """The ``theorysim`` script itself (not CliRunner): click's multi-line usage box is one
    ``theorysim: error:`` line naming the option or command."""
    from theorysim.compare.cli import main

    monkeypatch.setattr(sys, "argv", ["theorysim", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("theorysim: error: "), lines
    assert named in lines[0] and "--help`)" in lines[0], lines[0]


def test_out_with_a_name_too_long_is_exit_code_2(tmp_path):
    result = runner.invoke(app, ["run", *SMALL_RIDGE, "--out", str(tmp_path / ("x" * 300))])
    assert result.exit_code == 2, result.output
    assert "is not a writable directory" in _err_line(result)


@pytest.mark.parametrize("args", [["show", ""], ["show", "RIDGE-LEARNING-CURVE"],
                                  ["show", "../etc/passwd"], ["plot", ""]])
def test_bad_names_for_show_and_plot_are_exit_code_2(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert ("unknown experiment" in _err_line(result)
            or "not a theorysim run directory" in _err_line(result))
