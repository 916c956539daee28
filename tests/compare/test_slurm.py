"""A sweep through a real Slurm with ``--executor slurm`` (issue 15); not in the default suite.

Needs ``sbatch``/``squeue`` of a running Slurm whose nodes see this directory: on one machine,
``scripts/slurm_single_node.sh`` starts one. Run with ``python -m pytest -m slurm``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import xarray as xr
from typer.testing import CliRunner

from theorysim.compare import get_experiment, run
from theorysim.compare._grid import open_sweep, run_status
from theorysim.compare._runner import PointsFailedError
from theorysim.compare.cli import app

from ._toy import SlowToy, SlowToyConfig, calls

pytestmark = pytest.mark.slurm

SETS = {"M": "100", "P_max": "50", "n_P": "3", "seeds": "2"}


@pytest.fixture(autouse=True)
def _need_slurm():
    pytest.importorskip("submitit")
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        pytest.fail("no sbatch/squeue on PATH: start Slurm with scripts/slurm_single_node.sh")


def test_cli_sweep_through_slurm_equals_sequential(tmp_path):
    args = ["sweep", "ridge-learning-curve", "--grid", "a=1.5,2.5", "--out", str(tmp_path),
            "--quiet", "--no-figures", "--executor", "slurm", "--jobs", "2",
            "--slurm", "time=20", "--slurm", "cpus_per_task=1"]
    for k, v in SETS.items():
        args += ["--set", f"{k}={v}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    sweep_dir = next((tmp_path / "ridge-learning-curve").glob("sweep-*"))
    assert all(len(s.finished) == 3 and not s.failed for s in run_status(sweep_dir))
    jobs = list((sweep_dir / "logs" / "submitit").glob("*_log.out"))
    assert len(jobs) == 6, "one array task per point"
    view = open_sweep(sweep_dir)
    exp = get_experiment("ridge-learning-curve")
    for a in (1.5, 2.5):
        cfg = exp.make_config("quick", {**SETS, "a": str(a)})
        ref = run(exp, cfg, tmp_path / "sequential", figures=False)
        xr.testing.assert_identical(
            view["sim_error"].sel(a=a, drop=True).dropna("P", how="all"),
            ref.dataset["sim_error"].drop_attrs())


def test_failing_point_on_slurm_is_recorded_and_retried(tmp_path):
    cfg = SlowToyConfig(log=str(tmp_path / "calls.log"), n_points=4, fail_at=1)
    Path(cfg.log).with_suffix(".fail").touch()
    with pytest.raises(PointsFailedError, match=r"failed \(x=1\)"):
        run(SlowToy(), cfg, tmp_path / "out", executor="slurm", jobs=4, figures=False,
            slurm_options={"time": 10})
    assert sorted(calls(cfg.log)) == ["x=0", "x=2", "x=3"]
    Path(cfg.log).with_suffix(".fail").unlink()
    res = run(SlowToy(), cfg, tmp_path / "out", executor="slurm", jobs=4, figures=False)
    assert res.computed == ("x=1",)
