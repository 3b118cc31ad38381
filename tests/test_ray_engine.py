"""The Ray engine on a real local Ray cluster (started once for this module, 2 CPUs, small store).

Embedding with ``engine="ray"``: the same vectors (to float32 rounding) and metadata to the single-process job, a
worker killed mid-job and a driver killed mid-job (kill -9) followed by a rerun that completes
without duplicates, bad frames, unreachable addresses; sharded selection as Ray tasks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import ray

import curate
from curate import _tables as T
from curate._ray import RayUnavailableError
from curate.jobs.embed import FrameReadError
from curate.selectors import Sharded

REPO = Path(__file__).resolve().parents[1]
MODEL = "recon-tiny"
TABLE = T.embedding_table(MODEL)
#: Frames kept of the 72-frame template: recon-tiny embeds a few frames/s per core.
FRAMES = 24


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A local Ray cluster for the whole module (2 CPUs, 300 MB object store), always stopped."""
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    ray.init(num_cpus=2, object_store_memory=300 * 2**20, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def reference(embedded_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template workspace with ``recon-tiny`` embedded by the single-process job."""
    path = tmp_path_factory.mktemp("ray_ref") / "ws"
    shutil.copytree(embedded_template, path)
    ws = curate.connect(path)
    drop = ws.store.ids(T.SAMPLES).tolist()[FRAMES:]
    ws.store.delete(T.SAMPLES, "id IN (" + ", ".join(f"'{i}'" for i in drop) + ")")
    assert ws.count() == FRAMES
    ws.embed(MODEL, batch_size=4, num_workers=0, progress=False)
    return path


def _copy(reference: Path, tmp_path: Path) -> curate.Workspace:
    path = tmp_path / "ws"
    shutil.copytree(reference, path)
    ws = curate.connect(path)
    ws.store.drop_table(TABLE)
    return ws


def _assert_complete_and_identical(ws: curate.Workspace, reference: Path) -> None:
    ids = ws.store.ids(TABLE).tolist()
    assert len(ids) == len(set(ids)) == ws.count()
    ref_ids, ref = curate.connect(reference).vectors(MODEL)
    got_ids, got = ws.vectors(MODEL, ids=list(ref_ids))
    assert list(got_ids) == list(ref_ids)
    # Ray actors run torch with ``CPUs / workers`` threads, the reference with the driver's
    # default: oneDNN sums in another order, so vectors agree to float32 rounding, not bitwise
    # (max |diff| seen 2e-8 on unit-norm vectors). A wrong frame or a dropped batch is off by ~1.
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)


def _embed_workers() -> list[psutil.Process]:
    """Ray actor processes of the embedding job started by this test process."""
    out = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "_EmbedWorker" in " ".join(proc.cmdline()):
                out.append(proc)
        except psutil.Error:
            continue
    return out


def test_ray_vectors_and_metadata_identical_to_single_process(
    cluster: Any, reference: Path, tmp_path: Path
) -> None:
    ws = _copy(reference, tmp_path)
    report = ws.embed(MODEL, batch_size=4, write_every=16, engine="ray", workers=2, progress=False)
    assert report.computed == ws.count() and report.skipped == 0 and report.total == ws.count()
    _assert_complete_and_identical(ws, reference)
    assert ws.embedding_info(MODEL) == curate.connect(reference).embedding_info(MODEL)
    again = ws.embed(MODEL, batch_size=4, engine="ray", progress=False)
    assert again.computed == 0 and again.skipped == ws.count() and again.version == report.version
    # the engines resume each other's tables: drop some rows, the single-process job fills them
    gone = sorted(ws.store.ids(TABLE).tolist())[-8:]  # whole batches: same batch rounding
    ws.store.delete(TABLE, "id IN (" + ", ".join(f"'{i}'" for i in gone) + ")")
    left = ws.store.count(TABLE)
    assert left < ws.count()
    fill = ws.embed(MODEL, batch_size=4, num_workers=0, progress=False)
    assert fill.computed == ws.count() - left
    _assert_complete_and_identical(ws, reference)


def test_killed_worker_then_rerun_completes_without_duplicates(
    cluster: Any, reference: Path, tmp_path: Path
) -> None:
    ws = _copy(reference, tmp_path)
    outcome: dict[str, Any] = {}

    def job() -> None:
        try:
            outcome["report"] = ws.embed(MODEL, batch_size=4, write_every=4, engine="ray",
                                         workers=2, progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc

    thread = threading.Thread(target=job)
    thread.start()
    killed = None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and thread.is_alive() and killed is None:
        workers = _embed_workers()
        if workers and ws.store.has_table(TABLE) and ws.store.count(TABLE) >= 4:
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    thread.join(timeout=300)
    assert not thread.is_alive()
    assert killed is not None, f"no Ray worker was found mid-job to kill ({outcome})"
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE
    written = ws.store.count(TABLE)
    assert len(set(ws.store.ids(TABLE).tolist())) == written  # never a duplicate
    rerun = ws.embed(MODEL, batch_size=4, write_every=4, engine="ray", workers=2, progress=False)
    assert rerun.skipped == written and rerun.computed == ws.count() - written
    _assert_complete_and_identical(ws, reference)


def test_killed_driver_then_rerun_computes_only_the_missing(
    cluster: Any, reference: Path, tmp_path: Path
) -> None:
    ws = _copy(reference, tmp_path)
    address = cluster.get_runtime_context().gcs_address
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "curate.cli", "embed", "--workspace", str(ws.path), "--model",
           MODEL, "--batch-size", "4", "--write-every", "4", "--engine", "ray", "--address",
           address, "--workers", "2"]  # 1 thread per model, as the reference
    child = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and child.poll() is None:
            if ws.store.has_table(TABLE) and ws.store.count(TABLE) >= 4:
                break
            time.sleep(0.05)
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
    assert 4 <= written < ws.count()
    assert len(set(ws.store.ids(TABLE).tolist())) == written
    rerun = ws.embed(MODEL, batch_size=4, engine="ray", progress=False)
    assert rerun.skipped == written and rerun.computed == ws.count() - written
    _assert_complete_and_identical(ws, reference)


def test_bad_frame_is_listed_others_written_then_resumed(
    cluster: Any, reference: Path, tmp_path: Path
) -> None:
    ws = _copy(reference, tmp_path)
    frames = ws.frames(columns=["id", "lidar_path"]).sort_by("id")
    bad_id, bad_path = frames["id"][10].as_py(), Path(frames["lidar_path"][10].as_py())
    good = bad_path.read_bytes()
    try:
        bad_path.write_bytes(good[:7])
        with pytest.raises(FrameReadError) as err:  # on_error="fail": stops, keeps what it has
            ws.embed(MODEL, batch_size=4, engine="ray", on_error="fail", progress=False)
        assert bad_id in str(err.value) and str(bad_path) in str(err.value)
        written = ws.store.count(TABLE) if TABLE in ws.store.table_names() else 0  # may fail before any write
        assert written < ws.count()
        report = ws.embed(MODEL, batch_size=4, engine="ray", progress=False)  # skip and list
        assert report.frames_bad == 1 and ws.store.count(TABLE) == ws.count() - 1
        listed = [p for p in ws.problems() if p.stage == f"embed:{MODEL}"]
        assert [p.frame_id for p in listed] == [bad_id] and listed[0].file == str(bad_path)
        assert bad_id not in set(ws.store.ids(TABLE).tolist())
    finally:
        bad_path.write_bytes(good)
    rerun = ws.embed(MODEL, batch_size=4, engine="ray", progress=False)
    assert rerun.computed == 1 and rerun.frames_bad == 0
    assert not [p for p in ws.problems() if p.stage == f"embed:{MODEL}"]  # cleared
    # the refilled frame was embedded in a batch of its own: equal up to batch rounding
    ref_ids, ref = curate.connect(reference).vectors(MODEL)
    _, got = ws.vectors(MODEL, ids=list(ref_ids))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_unreachable_and_malformed_addresses_are_clear_errors(embedded_template: Path,
                                                              tmp_path: Path) -> None:
    # a fresh process: this one is connected to the module's cluster, which embed would reuse
    path = tmp_path / "ws"
    shutil.copytree(embedded_template, path)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    code = (
        "import curate, sys\n"
        "from curate._ray import RayUnavailableError\n"
        "from curate.errors import InvalidInputError\n"
        f"ws = curate.connect({str(path)!r})\n"
        "for address, err in (('127.0.0.1:1', RayUnavailableError), ('nonsense', InvalidInputError)):\n"
        "    try:\n"
        "        ws.embed('bev-hist', name='x', engine='ray', address=address, progress=False)\n"
        "    except err as exc:\n"
        "        print(type(exc).__name__, exc)\n"
        "print('tables', sorted(ws.embeddings()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("RayUnavailableError") and "cannot reach" in lines[0]
    assert "127.0.0.1:1" in lines[0] and "ray start --head" in lines[0]
    assert lines[1].startswith("InvalidInputError") and "host:port" in lines[1]
    assert lines[2] == "tables ['bev-hist']"  # nothing written
    cli = subprocess.run([sys.executable, "-m", "curate.cli", "embed", "--workspace", str(path),
                          "--model", "bev-hist", "--name", "y", "--engine", "ray", "--address",
                          "127.0.0.1:1"], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert cli.returncode != 0 and "cannot reach the Ray cluster" in cli.stderr
    assert issubclass(RayUnavailableError, curate.CurateError)


def test_sharded_on_ray_tasks_equals_local(cluster: Any) -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=5.0, size=(6, 16))
    x = (centers[rng.integers(6, size=900)] + rng.normal(size=(900, 16))).astype(np.float32)
    scores = {"entropy_mean": rng.random(900)}
    for inner, params in (("kcenter", {}), ("probcover_weighted", {"score": "entropy_mean",
                                                                   "delta": 0.5})):
        local = Sharded(inner, params, shards=3, engine="local", workers=1).select(
            x, 30, labeled=np.arange(7), scores=scores, seed=5)
        remote = Sharded(inner, params, shards=3, engine="ray").select(
            x, 30, labeled=np.arange(7), scores=scores, seed=5)
        assert remote.indices.tolist() == local.indices.tolist()
        np.testing.assert_array_equal(remote.gains, local.gains)
        assert remote.info["engine"] == "ray" and remote.info["shards"] == 3
    assert ray.is_initialized()  # a cluster this process was connected to is left running
