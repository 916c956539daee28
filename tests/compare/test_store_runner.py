"""The result store and the runner: atomic points, reuse, resume, foreign directories."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import xarray as xr

from theorysim.compare._experiment import ExperimentConfig, config_hash, parse_field
from theorysim.compare._runner import run, run_dir_for
from theorysim.compare._store import RunDirectoryError, point_key

from ._toy import Toy, ToyConfig


def test_config_hash_is_stable_and_distinguishes_configs():
    a, b = ToyConfig(), ToyConfig(scale=3.0)
    assert config_hash("toy", a) == config_hash("toy", ToyConfig())
    assert config_hash("toy", a) != config_hash("toy", b)
    assert config_hash("toy", a) != config_hash("other", a)
    assert len(config_hash("toy", a)) == 12


def test_parse_field_types_and_unknown_key():
    assert parse_field(ToyConfig, "n_points", "7") == 7
    assert parse_field(ToyConfig, "n_points", "1e3") == 1000
    assert parse_field(ToyConfig, "scale", "0.5") == 0.5
    assert parse_field(ToyConfig, "widths", "64,128") == (64, 128)
    assert parse_field(ToyConfig, "flag", "true") is True
    with pytest.raises(ValueError, match="unknown --set key 'bogus'"):
        parse_field(ToyConfig, "bogus", "1")
    with pytest.raises(ValueError, match="n_points"):
        parse_field(ToyConfig, "n_points", "2.5")


def test_point_key_is_readable_and_rejects_odd_characters():
    assert point_key({"P": 100, "N": 50}) == "N=50,P=100"
    assert point_key({"kernel": "rbf", "ridge": 0.1}) == "kernel=rbf,ridge=0.1"
    with pytest.raises(ValueError, match="file name"):
        point_key({"name": "a/b"})


def test_run_stores_everything_and_rerun_reuses_all_points(tmp_path):
    exp, cfg = Toy(), ToyConfig()
    first = run(exp, cfg, tmp_path)
    assert first.computed == tuple(f"x={i}" for i in range(5)) and first.reused == ()
    root = run_dir_for(exp, cfg, tmp_path)
    assert first.run_dir == root
    for name in ("manifest.json", "results.zarr", "theory.zarr", "report.md", "figure.png",
                 "figure.pdf"):
        assert (root / name).exists(), name
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["experiment"] == "toy" and manifest["config"]["widths"] == [1, 2]

    again = Toy()
    second = run(again, cfg, tmp_path)
    assert again.calls == [] and len(second.reused) == 5
    xr.testing.assert_identical(first.dataset, second.dataset)
    np.testing.assert_array_equal(second.dataset["sim"].sel(x=3).values,
                                  first.dataset["sim"].sel(x=3).values)


def test_interrupted_run_resumes_without_redoing_finished_points(tmp_path):
    cfg = ToyConfig(n_points=6)
    crashing = Toy(crash_at=3)
    with pytest.raises(KeyboardInterrupt):
        run(crashing, cfg, tmp_path)
    assert crashing.calls == [0, 1, 2]
    root = run_dir_for(crashing, cfg, tmp_path)
    assert sorted(p.name for p in (root / "points").iterdir()) == [
        "x=0.zarr", "x=1.zarr", "x=2.zarr"]
    assert not (root / "results.zarr").exists()

    resumed = Toy()
    res = run(resumed, cfg, tmp_path)
    assert resumed.calls == [3, 4, 5]
    assert res.reused == ("x=0", "x=1", "x=2")
    reference = run(Toy(), cfg, tmp_path / "fresh")
    xr.testing.assert_identical(res.dataset.drop_attrs(), reference.dataset.drop_attrs())


def test_half_written_debris_is_ignored_and_cleaned(tmp_path):
    exp, cfg = Toy(), ToyConfig(n_points=2)
    run(exp, cfg, tmp_path)
    root = run_dir_for(exp, cfg, tmp_path)
    debris = root / "points" / ".tmp-x=5.zarr-deadbeef"
    debris.mkdir()
    (debris / "junk").write_text("partial")
    res = run(Toy(), cfg, tmp_path)
    assert not debris.exists() and len(res.reused) == 2


def test_foreign_directory_is_reported_not_overwritten(tmp_path):
    exp, cfg = Toy(), ToyConfig()
    root = run_dir_for(exp, cfg, tmp_path)
    root.mkdir(parents=True)
    (root / "precious.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="no manifest.json.*not overwriting"):
        run(exp, cfg, tmp_path)
    assert (root / "precious.txt").read_text() == "mine"

    (root / "manifest.json").write_text("{not json")
    with pytest.raises(RunDirectoryError, match="unreadable manifest.json"):
        run(exp, cfg, tmp_path)

    body = {"format": "theorysim-run", "experiment": "toy", "config": {"seed": 99}}
    (root / "manifest.json").write_text(json.dumps(body))
    with pytest.raises(RunDirectoryError, match="another config"):
        run(exp, cfg, tmp_path)
    assert exp.calls == []


def test_run_rejects_a_config_of_the_wrong_type(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Other(ExperimentConfig):
        pass

    with pytest.raises(ValueError, match="cfg must be a ToyConfig"):
        run(Toy(), Other(), tmp_path)
