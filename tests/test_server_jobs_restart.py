"""Job records survive a server restart; a job killed with the server shows as ``interrupted``.

A real uvicorn server runs in a subprocess (``python -m curate.server``). An embedding job with
one-frame writes is submitted; once it has written some vectors the server gets SIGKILL. A new
server on the same workspace lists the job as ``interrupted`` (with how to resume), keeps the
finished jobs as they were, and resubmitting the job finishes it without duplicating vectors.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Iterator

import pytest

import curate
from curate.client import JobInterruptedError
from curate.server import JOBS_FILE, JobJournal, JobManager
from server_process import ServerProcess  # tests/server_process.py

TOKEN = "restart-write-token"


@pytest.fixture
def ws_dir(tmp_path: Path, embedded_template: Path) -> Iterator[Path]:
    path = tmp_path / "ws"
    shutil.copytree(embedded_template, path)
    yield path


def test_jobs_survive_kill_9_and_the_running_one_shows_interrupted(ws_dir: Path, synth_root: Path) -> None:
    server = ServerProcess(ws_dir, synth_root.parent, TOKEN, {"OMP_NUM_THREADS": "1"})
    try:
        remote = curate.connect(server.url, token=TOKEN)
        for k in range(1):  # more frames, so that the job below runs for a few seconds
            remote.ingest({"kind": "kitti", "root": synth_root.name, "prefix": f"more{k}"})
        total = remote.count()
        finished = remote.embed("bev-hist", name="bev-first")  # a finished job, kept as it is
        first_job = remote.jobs()[-1]
        assert first_job.state == "succeeded" and finished.computed == total

        job = remote.submit_embed("bev-hist", name="bev-slow", batch_size=1, write_every=1)
        deadline = time.monotonic() + 120
        status = remote.job(job.job_id)
        while time.monotonic() < deadline:
            status = remote.job(job.job_id)
            if status.state != "queued" and (status.done or 0) >= 6:
                break
            time.sleep(0.02)
        assert status.state == "running" and 6 <= status.done < total, status
        time.sleep(1.2)  # at least one progress save to the journal
        server.kill9()
    finally:
        server.stop()

    # the journal is whole (one JSON record per line) and still says "running"
    lines = (ws_dir / JOBS_FILE).read_text().splitlines()
    records = {r["job_id"]: r for r in map(json.loads, lines)}
    assert records[job.job_id]["state"] == "running" and records[job.job_id]["done"] >= 6
    assert not list(ws_dir.glob(f".{JOBS_FILE}*.tmp"))

    stored = curate.connect(ws_dir).store.count("emb_bev-slow")
    assert 6 <= stored < total  # the kill really was mid-job

    server = ServerProcess(ws_dir, synth_root.parent, TOKEN, {"OMP_NUM_THREADS": "1"})
    try:
        remote = curate.connect(server.url, token=TOKEN)
        jobs = {j.job_id: j for j in remote.jobs()}
        assert list(jobs) == [first_job.job_id, job.job_id]
        assert jobs[first_job.job_id] == first_job  # finished jobs come back unchanged
        dead = jobs[job.job_id]
        assert dead.state == "interrupted" and dead.finished_at and dead.done >= 6
        assert dead.error["type"] == "JobInterruptedError"
        assert "submit the same embed job again" in dead.error["message"]
        assert dead.params["name"] == "bev-slow"
        with pytest.raises(JobInterruptedError, match="only frames without a vector are computed"):
            remote.wait(job.job_id)

        # resubmitting resumes: only the missing frames are computed, nothing is duplicated
        again = remote.embed("bev-hist", name="bev-slow", batch_size=8)
        assert again.computed == total - stored and again.skipped == stored and again.total == total
        ids, _ = remote.vectors("bev-slow")
        assert len(ids) == len(set(ids.tolist())) == total
        assert [j.state for j in remote.jobs()] == ["succeeded", "interrupted", "succeeded"]
    finally:
        server.stop()


def test_a_torn_or_foreign_journal_line_is_skipped(tmp_path: Path) -> None:
    """Unreadable lines are skipped; queued jobs of a dead server become interrupted too."""
    import threading

    path = tmp_path / JOBS_FILE
    good = {"job_id": "job-a", "kind": "embed", "state": "queued", "created_at": "2026-01-01T00:00:00+00:00",
            "params": {"model": "bev-hist"}}
    path.write_text(json.dumps(good) + "\n{not json\n" + json.dumps({"job_id": "x"}) + "\n")
    manager = JobManager(threading.Lock(), JobJournal(path))
    try:
        [job] = manager.list()
        assert job.job_id == "job-a" and job.state == "interrupted"
        assert "was queued when the server stopped" in job.error["message"]
        # the journal was rewritten with the new state
        assert [json.loads(line)["state"] for line in path.read_text().splitlines()] == ["interrupted"]
    finally:
        manager.stop()
