"""The embedded workspace end to end on real LanceDB tables and real synthetic scans."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import curate
from curate.errors import BudgetError, CorruptDataError, NotFoundError
from curate.sources.kitti import KittiSource
from index.errors import FilterError

from conftest import SYNTH_FRAMES


def test_ingest_twice_changes_nothing(tmp_path: Path, synth_root: Path) -> None:
    ws = curate.connect(tmp_path / "ws")
    first = ws.ingest(KittiSource(synth_root), progress=False)
    assert first.frames_total == SYNTH_FRAMES and first.boxes_seen > 0
    boxes_before = ws.store.count("labels")
    second = ws.ingest(KittiSource(synth_root), progress=False)
    assert second.frames_total == SYNTH_FRAMES
    assert ws.store.count("labels") == boxes_before
    assert second.samples_version == first.samples_version
    rows = ws.frames(columns=["id", "scene", "weather", "time_of_day", "num_points"])
    assert len(set(rows["scene"].to_pylist())) > 1
    assert min(rows["num_points"].to_pylist()) > 0


def test_reingest_keeps_label_state(ws: curate.Workspace, synth_root: Path) -> None:
    ids = ws.frames(columns=["id"])["id"].to_pylist()[:3]
    ws.label(ids)
    ws.ingest(KittiSource(synth_root), progress=False)
    assert ws.labeled_ids() == sorted(ids)


def test_corrupt_scan_rolls_back(tmp_path: Path, synth_root: Path) -> None:
    data = tmp_path / "kitti"
    shutil.copytree(synth_root, data)
    velo = sorted((data / "training" / "velodyne").glob("*.bin"))
    bad = velo[-5]
    bad.write_bytes(bad.read_bytes()[:1000])  # truncated: not a multiple of 16 bytes
    ws = curate.connect(tmp_path / "ws")
    ws.ingest(KittiSource(synth_root), progress=False)
    version, count = ws.store.version("samples"), ws.count()
    with pytest.raises(CorruptDataError, match=bad.name):
        ws.ingest(KittiSource(data, prefix="copy"), batch_size=10, progress=False, on_error="fail")
    assert ws.count() == count
    assert ws.store.count("samples", where="id LIKE 'copy/%'") == 0
    # a fresh workspace that fails on its first ingest is left without tables
    ws2 = curate.connect(tmp_path / "ws2")
    with pytest.raises(CorruptDataError):
        ws2.ingest(KittiSource(data), batch_size=10, progress=False, on_error="fail")
    assert ws2.count() == 0
    del version


def test_embed_resumes_and_records_model(ws: curate.Workspace) -> None:
    again = ws.embed("bev-hist", progress=False)
    assert again.computed == 0 and again.skipped == SYNTH_FRAMES and again.total == SYNTH_FRAMES
    info = ws.embedding_info("bev-hist")
    assert info["embedder"] == "bev-hist" and len(info["weights_sha256"]) == 64
    ids, vecs = ws.vectors("bev-hist")
    assert vecs.shape == (SYNTH_FRAMES, again.dim) and np.isfinite(vecs).all()


def test_new_model_never_mixes_vectors(ws: curate.Workspace) -> None:
    fast = {"num_points": 512, "num_group": 16, "group_size": 16}
    a = ws.embed("recon-tiny", name="pts", seed=0, progress=False, **fast)
    b = ws.embed("recon-tiny", name="pts", seed=1, progress=False, **fast)
    assert a.weights_sha256 != b.weights_sha256
    assert b.computed == SYNTH_FRAMES and b.total == SYNTH_FRAMES
    assert ws.embedding_info("pts")["weights_sha256"] == b.weights_sha256
    _, vecs = ws.vectors("pts")
    emb = curate.embedding.build_embedder("recon-tiny", seed=1, **fast)
    first = curate.sources.pointcloud.read_points(ws.frames(columns=["lidar_path"])["lidar_path"][0].as_py())
    np.testing.assert_allclose(vecs[0], emb.embed([first])[0], rtol=1e-4, atol=1e-5)


def test_select_stores_reproducible_run(ws: curate.Workspace) -> None:
    sel = ws.select("kcenter", 10, embedding="bev-hist", seed=4)
    assert len(sel.ids) == 10 == len(set(sel.ids))
    again = ws.select(curate.KCenterGreedy(), 10, embedding="bev-hist", seed=4)
    assert again.ids == sel.ids and again.run_id != sel.run_id
    run = ws.run(sel.run_id)
    assert run.strategy == "kcenter" and run.seed == 4 and run.ids == sel.ids
    assert run.samples_version == ws.store.version("samples")
    assert ws.reproduce(sel.run_id) == sel.ids
    assert [r.run_id for r in ws.runs()] == [sel.run_id, again.run_id]
    assert run.info["coverage_radius"] > 0


def test_labeled_frames_are_never_selected_and_pin_versions(ws: curate.Workspace) -> None:
    first = ws.select("random", 20, embedding="bev-hist", seed=0)
    ws.label(first.ids)
    sel = ws.select("kcenter", 30, embedding="bev-hist")
    assert not set(sel.ids) & set(first.ids)
    assert sel.run.num_labeled == 20
    # the earlier run reproduces at its pinned versions although labels changed since
    assert ws.reproduce(first.run_id) == first.ids
    boxes = ws.boxes(first.ids)
    assert set(boxes["frame_id"].to_pylist()) <= set(first.ids)
    assert ws.boxes(sel.ids).num_rows == 0  # unlabeled frames expose no labels


def test_where_filter_restricts_candidates(ws: curate.Workspace) -> None:
    weather = ws.frames(columns=["weather"])["weather"].to_pylist()
    common = max(set(weather), key=weather.count)
    n = weather.count(common)
    sel = ws.select("kcenter", min(5, n), embedding="bev-hist", where=f"weather = '{common}'")
    picked = ws.frames(columns=["id", "weather"], ids=sel.ids)
    assert set(picked["weather"].to_pylist()) == {common}
    assert sel.run.where == f"weather = '{common}'" and sel.run.num_candidates == n


def test_select_errors_leave_runs_untouched(ws: curate.Workspace) -> None:
    with pytest.raises(FilterError, match="weather =="):
        ws.select("random", 5, embedding="bev-hist", where="weather == = 'rain'")
    with pytest.raises(BudgetError, match=f"larger than the {SYNTH_FRAMES}"):
        ws.select("random", SYNTH_FRAMES + 1, embedding="bev-hist")
    with pytest.raises(BudgetError, match="no unlabeled frames matching"):
        ws.select("random", 1, embedding="bev-hist", where="frame_index < 0")
    with pytest.raises(NotFoundError, match="available: bev-hist"):
        ws.select("random", 5, embedding="nope")
    with pytest.raises(NotFoundError, match="valid strategies"):
        ws.select("nope", 5, embedding="bev-hist")
    with pytest.raises(NotFoundError, match="first: 999999"):
        ws.label(["999999"])
    assert ws.runs() == []


def test_unembedded_frames_are_reported(ws: curate.Workspace, synth_root: Path) -> None:
    ws.ingest(KittiSource(synth_root, prefix="b"), progress=False)
    # frames without a vector are skipped and counted (issue 11), never picked
    sel = ws.select("random", 5, embedding="bev-hist")
    assert sel.run.info["skipped_without_vector"] == {"candidates": 72, "labeled": 0}
    assert not any(i.startswith("b") for i in sel.ids)
    assert ws.reproduce(sel.run_id) == sel.ids
    ws.embed("bev-hist", progress=False)
    assert len(ws.select("random", 5, embedding="bev-hist").ids) == 5


def test_max_per_drive_uses_scenes(ws: curate.Workspace) -> None:
    sel = ws.select("constrained", 6, embedding="bev-hist", inner="kcenter", max_per_group=1)
    scenes = ws.frames(columns=["id", "scene"], ids=sel.ids)["scene"].to_pylist()
    drives = len(set(ws.frames(columns=["scene"])["scene"].to_pylist()))
    assert len(sel.ids) == min(6, drives)
    assert len(set(scenes)) == len(scenes)  # at most one frame per drive
    assert ws.reproduce(sel.run_id) == sel.ids
