"""Bad frames never stop a pool (issue 11): a folder with truncated, corrupt and NaN-bearing files
among good ones ingests and embeds with the bad frames listed, nothing good lost; ``on_error="fail"``
still stops at the first; a fixed file is retried by the next run and its problem row cleared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import curate
from curate.cli import cli
from curate.errors import CorruptDataError, InvalidInputError
from curate.jobs.embed import FrameReadError
from curate.sources.folder import FolderSource
from curate.sources.pointcloud import MIN_FINITE_POINTS, read_points_counted

N_GOOD = 6


@pytest.fixture
def folder(tmp_path: Path, synth_root: Path) -> Path:
    root = tmp_path / "clouds"
    root.mkdir()
    scans = sorted((synth_root / "training" / "velodyne").glob("*.bin"))[: N_GOOD + 1]
    for src in scans[:N_GOOD]:
        shutil.copy(src, root / src.name)
    good = np.fromfile(scans[N_GOOD], dtype="<f4").reshape(-1, 4)
    nan = good.copy()
    nan[::7, 1] = np.nan  # no-returns: dropped and counted, the frame stays
    nan[3, 0] = np.inf
    nan.astype("<f4").tofile(root / "x_nan.bin")
    all_nan = good[:50].copy()
    all_nan[MIN_FINITE_POINTS // 2 :, 2] = np.nan  # too few finite points left: a bad frame
    all_nan.astype("<f4").tofile(root / "x_allnan.bin")
    (root / "x_truncated.bin").write_bytes(good.astype("<f4").tobytes()[:1001])
    (root / "x_empty.bin").write_bytes(b"")
    (root / "x_corrupt.pcd").write_bytes(b"# .PCD v0.7\nFIELDS x y z\nSIZE 4 4 4\n\x00\xff")
    return root


def test_read_points_counted(folder: Path) -> None:
    points, dropped = read_points_counted(folder / "x_nan.bin")
    raw = np.fromfile(folder / "x_nan.bin", dtype="<f4").reshape(-1, 4)
    assert dropped == int((~np.isfinite(raw).all(axis=1)).sum()) > 0
    assert points.shape[0] == raw.shape[0] - dropped and np.isfinite(points).all()
    with pytest.raises(CorruptDataError, match="finite"):
        read_points_counted(folder / "x_allnan.bin")


def test_skip_lists_bad_frames_and_fail_stops(folder: Path, tmp_path: Path) -> None:
    ws = curate.connect(tmp_path / "ws")
    report = ws.ingest(FolderSource(folder), progress=False)
    bad_ingest = {"x_truncated", "x_empty", "x_corrupt"}
    assert report.frames_bad == 3 and report.frames_seen == N_GOOD + 2
    assert ws.count() == N_GOOD + 2  # every good frame, plus the two NaN-bearing ones
    listed = ws.problems(stage="ingest")
    assert {p.frame_id for p in listed} == bad_ingest
    for p in listed:
        assert p.severity == "error" and p.file and Path(p.file).name.startswith(p.frame_id)
        assert p.file in p.reason
    # embedding: the all-NaN frame is bad, the NaN-bearing one is kept with a counted warning
    emb = ws.embed("bev-hist", num_workers=0, batch_size=3, write_every=3, progress=False)
    assert emb.frames_bad == 1 and emb.computed == N_GOOD + 1
    assert ws.store.count("emb_bev-hist") == N_GOOD + 1
    [bad] = ws.problems(stage="embed:bev-hist", severity="error")
    assert bad.frame_id == "x_allnan" and "finite" in bad.reason and bad.file.endswith("x_allnan.bin")
    [warn] = ws.problems(severity="warning")
    raw = np.fromfile(folder / "x_nan.bin", dtype="<f4").reshape(-1, 4)
    assert warn.frame_id == "x_nan" and warn.count == int((~np.isfinite(raw).all(axis=1)).sum())
    # selection skips the frame without a vector and says so
    sel = ws.select("kcenter", 3, embedding="bev-hist")
    assert sel.run.info["skipped_without_vector"] == {"candidates": 1, "labeled": 0}
    assert "x_allnan" not in sel.ids
    # CLI lists the same rows
    out = CliRunner().invoke(cli, ["problems", "--json", "--workspace", str(tmp_path / "ws")])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    assert {r["frame_id"] for r in rows} == bad_ingest | {"x_allnan", "x_nan"}
    # fail keeps today's strict behaviour: the first bad frame stops, nothing is written
    strict = curate.connect(tmp_path / "strict")
    with pytest.raises(CorruptDataError):
        strict.ingest(FolderSource(folder), progress=False, on_error="fail")
    assert strict.count() == 0 and strict.problems() == []
    (folder / "x_truncated.bin").unlink()
    (folder / "x_empty.bin").unlink()
    (folder / "x_corrupt.pcd").unlink()
    strict.ingest(FolderSource(folder), progress=False, on_error="fail")
    with pytest.raises(FrameReadError, match="x_allnan"):
        strict.embed("bev-hist", num_workers=0, progress=False, on_error="fail")
    with pytest.raises(InvalidInputError, match="on_error"):
        strict.embed("bev-hist", num_workers=0, progress=False, on_error="ignore")


def test_fixed_files_are_retried_and_cleared(folder: Path, tmp_path: Path, synth_root: Path) -> None:
    ws = curate.connect(tmp_path / "ws")
    ws.ingest(FolderSource(folder), progress=False)
    ws.embed("bev-hist", num_workers=0, progress=False)
    assert len(ws.problems(severity="error")) == 4
    scan = sorted((synth_root / "training" / "velodyne").glob("*.bin"))[-1]
    shutil.copy(scan, folder / "x_truncated.bin")  # fixed
    shutil.copy(scan, folder / "x_allnan.bin")  # fixed
    again = ws.ingest(FolderSource(folder), progress=False)
    assert again.frames_bad == 2
    assert {p.frame_id for p in ws.problems(stage="ingest")} == {"x_empty", "x_corrupt"}
    emb = ws.embed("bev-hist", num_workers=0, progress=False)
    assert emb.frames_bad == 0 and emb.computed == 2  # x_allnan (fixed) and x_truncated (new)
    assert ws.problems(stage="embed:bev-hist", severity="error") == []
    assert ws.store.count("emb_bev-hist") == ws.count() == N_GOOD + 3
    # ingesting the same data again changes nothing (upsert by id)
    version = ws.store.version("samples")
    ws.ingest(FolderSource(folder), progress=False)
    assert ws.store.version("samples") == version
