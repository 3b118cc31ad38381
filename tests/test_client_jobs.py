"""Embedding jobs over HTTP: status, progress, listing, failures re-raised as the same class."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Iterator

import pytest

import curate
from curate.api import EmbedReport, JobStatus
from curate.errors import CorruptDataError, InvalidInputError, NotFoundError
from curate.server import BackgroundServer, create_app
from curate.sources.folder import FolderSource

TOKEN = "jobs-write-token"


@pytest.fixture
def served(tmp_path: Path, embedded_template: Path, synth_root: Path) -> Iterator[tuple[str, Path]]:
    path = tmp_path / "ws"
    shutil.copytree(embedded_template, path)
    data = tmp_path / "data"
    data.mkdir()
    app = create_app(path, {TOKEN: "write"}, data_roots=[synth_root.parent, data], use_env_tokens=False)
    with BackgroundServer(app) as srv:
        yield srv.url, data


def test_job_status_progress_and_listing(served: tuple[str, Path]) -> None:
    url, _ = served
    ws = curate.connect(url, token=TOKEN)
    total = ws.count()
    status = ws.submit_embed("bev-hist", name="bev-jobs", batch_size=4, write_every=8)
    assert isinstance(status, JobStatus) and status.state in ("queued", "running")
    seen: list[JobStatus] = [status]
    deadline = time.monotonic() + 120
    while seen[-1].state in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.02)
        seen.append(ws.job(status.job_id))
    final = seen[-1]
    assert final.state == "succeeded", final
    assert final.done == final.total == total and final.finished_at
    done = [s.done for s in seen if s.done is not None]
    assert done == sorted(done)  # progress never goes back
    report = EmbedReport(**final.result)
    assert report.computed == total and report.embedding == "bev-jobs"
    assert [j.job_id for j in ws.jobs()] == [status.job_id]
    again = ws.embed("bev-hist", name="bev-jobs")  # resumes: nothing left to compute
    assert again.computed == 0 and again.skipped == total
    with pytest.raises(NotFoundError, match="no job 'job-nope'"):
        ws.job("job-nope")


def test_bad_job_settings_are_refused_before_queueing(served: tuple[str, Path]) -> None:
    ws = curate.connect(served[0], token=TOKEN)
    with pytest.raises(InvalidInputError, match="write_every"):
        ws.submit_embed("bev-hist", write_every=0)
    with pytest.raises(InvalidInputError, match="num_workers"):
        ws.submit_embed("bev-hist", num_workers=1000)
    with pytest.raises(NotFoundError, match="valid embedders"):
        ws.submit_embed("no-such-model")
    assert ws.jobs() == []


def test_a_failing_job_reports_its_error_class(served: tuple[str, Path], synth_root: Path) -> None:
    url, data = served
    folder = data / "clouds"
    folder.mkdir()
    for src in sorted((synth_root / "training" / "velodyne").glob("*.bin"))[:4]:
        shutil.copy(src, folder / src.name)
    local_source = FolderSource(folder, prefix="extra")  # validates the folder here too
    ws = curate.connect(url, token=TOKEN)
    assert ws.ingest(local_source).frames_seen == 4
    (folder / "000002.bin").write_bytes(b"\x00\x01\x02")  # corrupt after ingest
    with pytest.raises(CorruptDataError, match="000002") as info:
        ws.embed("bev-hist", name="bev-broken", on_error="fail")
    assert type(info.value).__name__ == "FrameReadError"
    failed = ws.jobs()[-1]
    assert failed.state == "failed" and failed.error["type"] == "FrameReadError"
