"""Store faults (issue 14): damaged points are detected on load and recomputed, not reused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from theorysim.compare import run
from theorysim.compare._runner import run_dir_for
from theorysim.compare._store import DamagedEntryError, RunDirectoryError, read_zarr

from ._toy import Toy, ToyConfig


@pytest.fixture
def stored(tmp_path):
    """A finished toy run: (cfg, run directory, the reference dataset)."""
    cfg = ToyConfig(n_points=3)
    first = run(Toy(), cfg, tmp_path, figures=False)
    return cfg, run_dir_for(Toy(), cfg, tmp_path), first.dataset


def _chunks(store):
    return sorted(p for p in (store / "sim" / "c").rglob("*") if p.is_file())


def _rerun_and_check(tmp_path, cfg, reference, messages):
    exp = Toy()
    res = run(exp, cfg, tmp_path, figures=False, log=messages.append)
    assert exp.calls == [1], "only the damaged point is recomputed"
    assert res.repaired == ("x=1",) and res.computed == ("x=1",)
    assert sorted(res.reused) == ["x=0", "x=2"]
    xr.testing.assert_identical(res.dataset, reference)
    assert np.isfinite(res.dataset["sim"].values).all()
    assert len(messages) == 1 and "\n" not in messages[0]
    assert "x=1" in messages[0] and "recomputing" in messages[0]
    return messages[0]


def test_deleted_chunk_is_detected_and_recomputed(tmp_path, stored):
    cfg, root, reference = stored
    chunk = _chunks(root / "points" / "x=1.zarr")[0]
    chunk.unlink()  # zarr would read the missing chunk back as fill values (NaN)
    with pytest.raises(DamagedEntryError, match="differ from what was written"):
        read_zarr(root / "points" / "x=1.zarr")
    msg = _rerun_and_check(tmp_path, cfg, reference, [])
    assert "differ from what was written" in msg


def test_truncated_chunk_is_detected_and_recomputed(tmp_path, stored):
    cfg, root, reference = stored
    chunk = _chunks(root / "points" / "x=1.zarr")[0]
    chunk.write_bytes(chunk.read_bytes()[: max(1, chunk.stat().st_size // 2)])
    with pytest.raises(DamagedEntryError, match="corrupt results store.*re-run the same command"):
        read_zarr(root / "points" / "x=1.zarr")
    _rerun_and_check(tmp_path, cfg, reference, [])


@pytest.mark.parametrize("edit", ["garbage", "fill_value", "shape"])
def test_edited_point_metadata_is_detected_and_recomputed(tmp_path, stored, edit):
    cfg, root, reference = stored
    meta = root / "points" / "x=1.zarr" / "sim" / "zarr.json"
    if edit == "garbage":
        meta.write_text("garbage")
    else:
        body = json.loads(meta.read_text())
        if edit == "fill_value":
            body["fill_value"] = 1.0
            for p in _chunks(meta.parent.parent):
                p.unlink()
        else:
            body["shape"] = [1, 3]
        meta.write_text(json.dumps(body))
    _rerun_and_check(tmp_path, cfg, reference, [])


def test_a_point_without_digest_is_not_trusted(tmp_path, stored):
    import zarr

    cfg, root, reference = stored
    group = zarr.open_group(root / "points" / "x=1.zarr", mode="r+")
    del group.attrs["theorysim_digest"]
    _rerun_and_check(tmp_path, cfg, reference, [])


def test_damaged_theory_is_recomputed(tmp_path, stored):
    cfg, root, reference = stored
    chunks = [p for p in (root / "theory.zarr" / "theory" / "c").rglob("*") if p.is_file()]
    chunks[0].unlink()
    messages = []
    res = run(Toy(), cfg, tmp_path, figures=False, log=messages.append)
    assert len(res.reused) == 3 and res.computed == ()
    assert len(messages) == 1 and "theory" in messages[0] and "recomputing" in messages[0]
    xr.testing.assert_identical(res.dataset, reference)


@pytest.mark.parametrize("field", ["config_hash", "theorysim_version", "format_version"])
def test_edited_manifest_is_refused(tmp_path, stored, field):
    cfg, root, _ = stored
    manifest = root / "manifest.json"
    body = json.loads(manifest.read_text())
    body[field] = "edited" if field != "format_version" else 3
    manifest.write_text(json.dumps(body))
    exp = Toy()
    with pytest.raises(RunDirectoryError, match="edited after it was written"):
        run(exp, cfg, tmp_path, figures=False)
    assert exp.calls == []
    assert json.loads(manifest.read_text())[field] == body[field]  # not overwritten


def test_manifest_with_another_config_is_refused(tmp_path, stored):
    cfg, root, _ = stored
    manifest = root / "manifest.json"
    body = json.loads(manifest.read_text())
    body["config"]["scale"] = 3.0
    manifest.write_text(json.dumps(body))
    with pytest.raises(RunDirectoryError, match="another config"):
        run(Toy(), cfg, tmp_path, figures=False)


# -- second probe (session 5) ------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["group metadata deleted", "chunk replaced by a directory",
                                    "coordinate chunks deleted", "metadata not UTF-8"])
def test_more_point_damage_is_detected_and_recomputed(tmp_path, stored, damage):
    cfg, root, reference = stored
    point = root / "points" / "x=1.zarr"
    if damage == "group metadata deleted":
        (point / "zarr.json").unlink()
    elif damage == "chunk replaced by a directory":
        chunk = _chunks(point)[0]
        chunk.unlink()
        chunk.mkdir()
    elif damage == "coordinate chunks deleted":
        for p in (point / "x").rglob("*"):
            if p.is_file() and "/c/" in str(p):
                p.unlink()
    else:
        (point / "zarr.json").write_bytes(b"\xff\xfe\x00")
    _rerun_and_check(tmp_path, cfg, reference, [])


@pytest.mark.parametrize("body", ["", '{"format": "theorysim-run"', "[1, 2]"])
def test_unreadable_manifest_is_refused_without_work(tmp_path, stored, body):
    cfg, root, _ = stored
    (root / "manifest.json").write_text(body)
    exp = Toy()
    with pytest.raises(RunDirectoryError, match="not a theorysim run directory.*not overwriting"):
        run(exp, cfg, tmp_path, figures=False)
    assert exp.calls == []
    assert (root / "manifest.json").read_text() == body


def test_lost_points_and_theory_are_recomputed(tmp_path, stored):
    import shutil

    cfg, root, reference = stored
    shutil.rmtree(root / "points")
    shutil.rmtree(root / "theory.zarr")
    exp = Toy()
    res = run(exp, cfg, tmp_path, figures=False, log=lambda m: None)
    assert sorted(res.computed) == ["x=0", "x=1", "x=2"] and res.reused == ()
    xr.testing.assert_identical(res.dataset, reference)


@pytest.mark.parametrize("name", ["report.md", "figure.png"])
def test_a_directory_where_the_report_or_figure_goes_is_refused(tmp_path, stored, name):
    """Replacing a directory by the file failed with IsADirectoryError (a traceback at the
    CLI); now it is a RunDirectoryError (one line, exit 2) naming the path, and nothing of
    the user's is removed."""
    cfg, root, _ = stored
    (root / name).unlink(missing_ok=True)
    (root / name).mkdir()
    (root / name / "mine.txt").write_text("keep")
    with pytest.raises(RunDirectoryError, match=f"{name} is a directory"):
        run(Toy(), cfg, tmp_path, figures=name.endswith(".png"))
    assert (root / name / "mine.txt").read_text() == "keep"
