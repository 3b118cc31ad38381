"""The resumable embedding job: kill -9 in a real subprocess, resume, workers, corrupt files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import curate
from curate import _tables as T
from curate.errors import InvalidInputError
from curate.jobs.embed import EmbedJob, FrameReadError, default_num_workers, run_embed_job
from curate.sources.kitti import KittiSource

TABLE = T.embedding_table("bev-hist")
REPO = Path(__file__).resolve().parents[1]


def _fresh_copy(template: Path, tmp_path: Path) -> curate.Workspace:
    """A copy of the template workspace without its bev-hist embedding."""
    path = tmp_path / "ws"
    shutil.copytree(template, path)
    ws = curate.connect(path)
    ws.store.drop_table(TABLE)
    return ws


def _assert_complete_and_equal(ws: curate.Workspace, template: Path) -> None:
    ids = ws.store.ids(TABLE)
    assert len(ids) == len(set(ids.tolist())) == ws.count()
    assert sorted(ids.tolist()) == sorted(ws.store.ids(T.SAMPLES).tolist())
    ref_ids, ref = curate.connect(template).vectors("bev-hist")
    _, got = ws.vectors("bev-hist", ids=list(ref_ids))
    np.testing.assert_array_equal(got, ref)


def test_kill_9_mid_job_then_resume_loses_and_duplicates_nothing(
    embedded_template: Path, tmp_path: Path
) -> None:
    ws = _fresh_copy(embedded_template, tmp_path)
    total = ws.count()
    script = textwrap.dedent(
        f"""
        import curate
        ws = curate.connect({str(ws.path)!r})
        ws.embed("bev-hist", batch_size=1, write_every=1, num_workers=0, progress=False)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rows = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if ws.store.has_table(TABLE):
                rows = ws.store.count(TABLE)
                if rows >= 3:
                    break
            time.sleep(0.02)
        assert child.poll() is None, (
            f"the job ended before it could be killed (rc {child.returncode}): "
            f"{child.stderr.read().decode()[-2000:]}"
        )
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
    written = ws.store.count(TABLE)
    assert 3 <= written < total  # killed mid-job; committed rows survive
    report = ws.embed("bev-hist", batch_size=4, write_every=16, num_workers=0, progress=False)
    assert report.skipped == written and report.computed == total - written
    assert report.total == total
    _assert_complete_and_equal(ws, embedded_template)
    # Running again computes nothing and leaves the table version alone.
    again = ws.embed("bev-hist", num_workers=0, progress=False)
    assert again.computed == 0 and again.version == report.version


def test_reader_processes_give_the_same_vectors(embedded_template: Path, tmp_path: Path) -> None:
    ws = _fresh_copy(embedded_template, tmp_path)
    report = ws.embed("bev-hist", batch_size=4, write_every=20, num_workers=2, progress=False)
    assert report.computed == ws.count() and report.skipped == 0
    _assert_complete_and_equal(ws, embedded_template)
    meta = ws.embedding_info("bev-hist")
    assert meta["precision"] == "fp32" and meta["embedder"] == "bev-hist"
    assert meta == curate.connect(embedded_template).embedding_info("bev-hist")
    assert 0 <= default_num_workers() <= 2


def test_corrupt_file_names_frame_and_file_keeps_vectors_and_resumes(
    synth_root: Path, embedded_template: Path, tmp_path: Path
) -> None:
    root = tmp_path / "kitti"
    shutil.copytree(synth_root, root)
    ws = curate.connect(tmp_path / "ws")
    ws.ingest(KittiSource(root), progress=False)
    frames = ws.frames(columns=["id", "lidar_path"])
    order = np.argsort(frames["id"].to_numpy(zero_copy_only=False))
    bad_row = int(order[10])
    bad_id = frames["id"][bad_row].as_py()
    bad_path = Path(frames["lidar_path"][bad_row].as_py())
    good_bytes = bad_path.read_bytes()
    bad_path.write_bytes(good_bytes[:7])  # not a whole number of 16-byte records
    with pytest.raises(FrameReadError) as err:
        ws.embed("bev-hist", batch_size=4, write_every=4, num_workers=0, progress=False,
                 on_error="fail")
    message = str(err.value)
    assert bad_id in message and str(bad_path) in message
    assert ws.store.count(TABLE) == 8  # the two batches before the bad one were written
    bad_path.write_bytes(good_bytes)
    report = ws.embed("bev-hist", batch_size=4, write_every=4, num_workers=2, progress=False)
    assert report.skipped == 8 and report.computed == ws.count() - 8
    _assert_complete_and_equal(ws, embedded_template)


def test_missing_file_error_and_bad_settings(synth_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "kitti"
    shutil.copytree(synth_root, root)
    ws = curate.connect(tmp_path / "ws")
    ws.ingest(KittiSource(root), progress=False)
    first = ws.frames(columns=["id", "lidar_path"]).sort_by("id")
    missing = Path(first["lidar_path"][0].as_py())
    missing.unlink()
    with pytest.raises(FrameReadError, match="does not exist") as err:
        ws.embed("bev-hist", num_workers=0, progress=False, on_error="fail")
    assert first["id"][0].as_py() in str(err.value) and str(missing) in str(err.value)
    assert not ws.store.has_table(TABLE)
    from embedders import create_embedder

    emb = create_embedder("bev-hist")
    for bad in (dict(batch_size=0), dict(write_every=-1), dict(num_workers=-2),
                dict(precision="int8")):
        with pytest.raises(InvalidInputError):
            run_embed_job(ws.store, emb, EmbedJob(name="bev-hist", **bad))
    with pytest.raises(InvalidInputError, match="needs a CUDA device"):
        run_embed_job(ws.store, emb, EmbedJob(name="bev-hist", device="cpu", precision="fp16"))
