"""Executors (issue 15): local worker processes, the submitit path, failures, concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from theorysim.compare import get_experiment, run
from theorysim.compare._executors import (
    LocalExecutor,
    SubmititExecutor,
    make_executor,
    worker_environment,
)
from theorysim.compare._grid import open_sweep, run_status, sweep
from theorysim.compare._runner import PointsFailedError, run_dir_for
from theorysim.compare._store import RunDirectoryError, read_zarr

from ._toy import SlowToy, SlowToyConfig, calls

ROOT = Path(__file__).resolve().parents[2]


def _cfg(tmp_path, **kw):
    return SlowToyConfig(log=str(tmp_path / "calls.log"), **kw)


@pytest.mark.parametrize(
    ("name", "sets"),
    [
        ("ridge-learning-curve", {"M": "100", "P_max": "50", "n_P": "3", "seeds": "2"}),
        pytest.param("random-feature-grid", {"M": "200", "N_max": "32", "P_max": "32",
                                             "n_grid": "2", "n_slice": "3", "seeds": "4",
                                             "P_slice": "32"}, marks=pytest.mark.slow),
    ],
)
def test_local_jobs_2_is_identical_to_sequential(tmp_path, name, sets):
    exp = get_experiment(name)
    cfg = exp.make_config("quick", sets)
    seq = run(exp, cfg, tmp_path / "seq", figures=False)
    par = run(exp, cfg, tmp_path / "par", figures=False, executor="local", jobs=2)
    assert sorted(par.computed) == sorted(seq.computed) and par.reused == ()
    a = read_zarr(run_dir_for(exp, cfg, tmp_path / "seq") / "results.zarr")
    b = read_zarr(run_dir_for(exp, cfg, tmp_path / "par") / "results.zarr")
    xr.testing.assert_identical(a, b)  # bit for bit: workers are pinned, not re-flagged


def test_a_failing_point_is_recorded_the_rest_finish_and_rerun_retries_it(tmp_path):
    cfg = _cfg(tmp_path, fail_at=2)
    Path(cfg.log).with_suffix(".fail").touch()
    with pytest.raises(PointsFailedError, match=r"1 point\(s\) failed \(x=2\)") as info:
        run(SlowToy(), cfg, tmp_path / "out", executor="local", jobs=2, figures=False)
    (problem,) = info.value.problems
    assert "made to fail" in problem.failed["x=2"].read_text()
    assert sorted(calls(cfg.log)) == ["x=0", "x=1", "x=3", "x=4", "x=5"]
    (st,) = run_status(problem.run_dir)
    assert st.failed.keys() == {"x=2"} and len(st.finished) == 5 and not st.has_results

    Path(cfg.log).with_suffix(".fail").unlink()
    res = run(SlowToy(), cfg, tmp_path / "out", figures=False)
    assert res.computed == ("x=2",) and len(res.reused) == 5
    assert not (problem.run_dir / "points" / "x=2.failed").exists()


def test_killed_worker_leaves_no_partial_point_and_rerun_computes_only_missing(tmp_path):
    cfg = _cfg(tmp_path, kill_at=2)
    with pytest.raises(PointsFailedError, match="not computed") as info:
        run(SlowToy(), cfg, tmp_path / "out", executor="local", jobs=1, figures=False)
    (problem,) = info.value.problems
    assert problem.missing == ("x=2", "x=3", "x=4", "x=5")
    points = problem.run_dir / "points"
    assert sorted(p.name for p in points.iterdir()) == ["x=0.zarr", "x=1.zarr"]
    before = calls(cfg.log)
    res = run(SlowToy(), cfg, tmp_path / "out", executor="local", jobs=1, figures=False)
    assert sorted(res.computed) == ["x=2", "x=3", "x=4", "x=5"]
    assert sorted(calls(cfg.log)[len(before):]) == sorted(res.computed)


def test_the_other_worker_takes_over_a_killed_workers_points(tmp_path):
    cfg = _cfg(tmp_path, kill_at=1, sleep=0.2)
    notes = []
    res = run(SlowToy(), cfg, tmp_path / "out", executor="local", jobs=2, figures=False,
              log=notes.append)
    assert sorted(res.computed) == [f"x={i}" for i in range(6)]
    assert sorted(calls(cfg.log)) == [f"x={i}" for i in range(6)]  # each point once
    assert any("was killed by SIGKILL" in n for n in notes)


def test_two_runners_on_one_directory_compute_each_point_once(tmp_path):
    cfg = _cfg(tmp_path, sleep=0.4, n_points=8)
    code = ("import sys; from tests.compare._toy import SlowToy, SlowToyConfig; "
            "from theorysim.compare import run; "
            f"run(SlowToy(), SlowToyConfig(log={cfg.log!r}, sleep=0.4, n_points=8), "
            f"{str(tmp_path / 'out')!r}, figures=False)")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert sorted(calls(cfg.log)) == [f"x={i}" for i in range(8)]
    workers = {line.split()[1] for line in Path(cfg.log).read_text().splitlines()}
    assert len(workers) == 2, "both runners computed points"
    res = run(SlowToy(), cfg, tmp_path / "out", figures=False)
    assert len(res.reused) == 8


def test_submitit_local_executor_runs_real_subprocesses(tmp_path):
    pytest.importorskip("submitit")
    cfg = _cfg(tmp_path)
    seq = run(SlowToy(), cfg, tmp_path / "seq", figures=False)
    res = run(SlowToy(), cfg, tmp_path / "sub", figures=False,
              executor=SubmititExecutor("local", jobs=2))
    assert sorted(res.computed) == [f"x={i}" for i in range(6)]
    pids = {line.split()[1] for line in Path(cfg.log).read_text().splitlines()}
    assert str(os.getpid()) in pids and len(pids) >= 2  # sequential here, then subprocesses
    xr.testing.assert_identical(seq.dataset.drop_attrs(), res.dataset.drop_attrs())
    assert (res.run_dir / "logs" / "submitit").is_dir()


def test_sweep_runs_the_grid_and_opens_as_one_dataset(tmp_path):
    exp = SlowToy()
    base = _cfg(tmp_path, n_points=3)
    seen = []
    res = sweep(exp, {"scale": [1.0, 3.0], "seed": [0, 1]}, tmp_path / "out", base=base,
                executor="local", jobs=2, figures=False,
                progress=lambda d, t, label: seen.append((d, t)))
    assert res.ok and len(res.results) == 4 and len(calls(base.log)) == 12
    assert seen[-1] == (12, 12) and all(t == 12 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    ds = open_sweep(res.sweep_dir)
    assert set(ds["sim"].dims) == {"scale", "grid_seed", "x", "seed"}  # seed: a sim dim
    assert list(ds["scale"].values) == [1.0, 3.0] and list(ds["grid_seed"].values) == [0, 1]
    one = run(exp, SlowToyConfig(log=base.log, n_points=3, scale=3.0, seed=1),
              tmp_path / "out", figures=False)
    assert len(one.reused) == 3  # a grid run is an ordinary run directory
    xr.testing.assert_equal(ds["sim"].sel(scale=3.0, grid_seed=1, drop=True),
                            one.dataset["sim"])
    status = run_status(res.sweep_dir)
    assert len(status) == 4 and all(len(s.finished) == 3 and s.has_results for s in status)


def test_worker_environment_limits_threads_and_gpu_memory():
    env = worker_environment(4, {"PATH": "/bin"})
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert float(env["XLA_PYTHON_CLIENT_MEM_FRACTION"]) == pytest.approx(0.225)
    mine = worker_environment(4, {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.5"})
    assert mine["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.5"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"executor": "threads"}, "executor must be one of"),
        ({"executor": "local", "jobs": 0}, "jobs must be an integer >= 1"),
        ({"executor": "local", "jobs": True}, "jobs must be an integer >= 1"),
        ({"executor": "local", "jobs": 2.5}, "jobs must be an integer >= 1"),
        ({"executor": "sequential", "jobs": 3}, "jobs must be 1 for executor 'sequential'"),
        ({"executor": "local", "slurm_options": {"partition": "x"}}, "slurm options apply"),
        ({"executor": "submitit-local", "slurm_options": {"bogus_opt": 1}},
         "slurm option 'bogus_opt' is not a Slurm parameter"),
    ],
)
def test_bad_executor_arguments_raise_before_any_work(tmp_path, kwargs, needle):
    cfg = _cfg(tmp_path)
    with pytest.raises(ValueError, match=needle):
        run(SlowToy(), cfg, tmp_path / "out", figures=False, **kwargs)
    assert not (tmp_path / "out").exists() and calls(cfg.log) == []


def test_slurm_needs_submitit_and_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(ValueError, match=r"needs submitit.*theorysim\[cluster\]"):
        make_executor("slurm")
    with pytest.raises(ValueError, match=r"theorysim\[cluster\]"):
        make_executor("submitit-local", jobs=2)


def test_slurm_without_sbatch_is_refused(monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ValueError, match="sbatch"):
        make_executor("slurm")


def test_local_executor_rejects_bad_threads():
    with pytest.raises(ValueError, match="threads must be"):
        LocalExecutor(2, threads=0)


@pytest.mark.parametrize(
    ("grid", "needle"),
    [
        ({"nope": [1]}, "grid key 'nope' is not a config field"),
        ({"scale": [1.0, 500.0]}, r"grid point scale=500.0: scale must be in \[0, 100\]"),
        ({"scale": [1.0, 1.0]}, "repeated values"),
        ({"scale": []}, "non-empty list"),
        ({}, "non-empty mapping"),
    ],
)
def test_bad_grid_raises_before_any_work(tmp_path, grid, needle):
    with pytest.raises(ValueError, match=needle):
        sweep(SlowToy(), grid, tmp_path / "out", base=_cfg(tmp_path))
    assert not (tmp_path / "out").exists()


def test_store_owned_by_another_config_is_refused(tmp_path):
    cfg = _cfg(tmp_path, n_points=2)
    root = run_dir_for(SlowToy(), cfg, tmp_path / "out")
    root.mkdir(parents=True)
    (root / "manifest.json").write_text(
        '{"format": "theorysim-run", "experiment": "slow-toy", "config": {"seed": 9}}')
    with pytest.raises(RunDirectoryError, match="another config"):
        run(SlowToy(), cfg, tmp_path / "out", executor="local", jobs=2)
    assert calls(cfg.log) == []


@pytest.mark.parametrize("executor", ["sequential", "local"])
def test_progress_shows_work_inside_points_from_any_process(tmp_path, executor):
    cfg = _cfg(tmp_path, n_points=3, sleep=1.5)
    seen = []
    run(SlowToy(), cfg, tmp_path / "out", executor=executor, figures=False,
        jobs=None if executor == "sequential" else 1,
        progress=lambda d, t, label: seen.append((d, t, label)))
    assert seen[-1][:2] == (3, 3)
    assert any(": steps " in label for _, _, label in seen), seen
