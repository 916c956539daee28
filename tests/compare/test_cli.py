"""The command line: list, run, plot, and one-line errors with exit code 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from theorysim.compare._experiment import get_experiment
from theorysim.compare._runner import run, run_dir_for
from theorysim.compare.cli import app

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
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, needle, tmp_path):
    result = runner.invoke(app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert needle in _err_line(result)
    assert not any(tmp_path.iterdir())  # raised before any work


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
    assert "exponent fitted (sim)" in replot.stdout


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
