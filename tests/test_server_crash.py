"""``kill -9`` of the server while clients write; the store must reopen whole.

The server runs in a subprocess (``python -m curate.server``) over a copy of the embedded template.
Three client threads write as fast as the single writer allows: selections, labels, and ingests of
the synthetic set under new id prefixes, each followed by an embedding job with small flushes. After
a number of acknowledged writes (while the others and a job are in flight) the server gets SIGKILL.
Then:

* the workspace opens; ``samples``, ``runs`` and the embedding tables hold every id once, with no
  half-written rows (every run row parses into a full ``RunRecord``);
* every write the server acknowledged is there (durability);
* a restarted server resumes the embedding job without duplicating vectors and stores new runs
  with fresh ids.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import curate
from curate.api import RunRecord
from curate.errors import CurateError
from server_process import ServerProcess  # tests/server_process.py

TOKEN = "crash-write-token"


@pytest.fixture
def ws_dir(tmp_path: Path, embedded_template: Path) -> Iterator[Path]:
    path = tmp_path / "ws"
    shutil.copytree(embedded_template, path)
    yield path


def test_kill_9_during_writes_leaves_a_whole_store(ws_dir: Path, synth_root: Path) -> None:
    original = set(curate.connect(ws_dir).frames(columns=["id"])["id"].to_pylist())
    server = ServerProcess(ws_dir, synth_root.parent, TOKEN)
    acked_runs: list[RunRecord] = []
    acked_labels: list[str] = []
    acked_ingests: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def selects() -> None:
        ws = curate.connect(server.url, token=TOKEN)
        seed = 0
        while not stop.is_set():
            try:
                sel = ws.select("random", 1 + seed % 3, embedding="bev-hist", seed=seed,
                                where="id NOT LIKE '%/%'")  # frames with a bev-hist vector
            except CurateError:
                return
            with lock:
                acked_runs.append(sel.run)
            seed += 1

    def labels() -> None:
        ws = curate.connect(server.url, token=TOKEN)
        for fid in sorted(original)[::5]:
            if stop.is_set():
                return
            try:
                ws.label([fid])
            except CurateError:
                return
            with lock:
                acked_labels.append(fid)

    def ingests() -> None:
        ws = curate.connect(server.url, token=TOKEN)
        for k in range(3):
            if stop.is_set():
                return
            prefix = f"again{k}"
            try:
                ws.ingest({"kind": "kitti", "root": synth_root.name, "prefix": prefix, "batch_size": 8})
                with lock:
                    acked_ingests.append(prefix)
                ws.submit_embed("bev-hist", name="bev2", batch_size=2, write_every=4)
            except CurateError:
                return

    threads = [threading.Thread(target=f, daemon=True) for f in (selects, labels, ingests)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with lock:
            if len(acked_runs) >= 6 and len(acked_ingests) >= 2 and len(acked_labels) >= 3:
                break
        time.sleep(0.05)
    print(f"killing after {time.monotonic() - deadline + 120:.1f} s: {len(acked_runs)} runs, "
          f"{len(acked_labels)} labels, {len(acked_ingests)} ingests acknowledged")
    server.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert acked_runs and acked_ingests, "the writers made no progress before the kill"

    # ---- the store opens and holds whole rows, each id once
    ws = curate.connect(ws_dir)
    frames = ws.frames(columns=["id", "lidar_path", "labeled"])
    ids = frames["id"].to_pylist()
    assert len(ids) == len(set(ids)) == ws.count()
    assert frames["lidar_path"].null_count == 0 and frames["labeled"].null_count == 0
    prefixes = {i.split("/", 1)[0] for i in ids if "/" in i}
    assert set(acked_ingests) <= prefixes  # acknowledged ingests are complete
    for prefix in acked_ingests:
        assert sum(i.startswith(prefix + "/") for i in ids) == len(original)
    assert set(acked_labels) <= set(ws.labeled_ids())
    runs = ws.runs()  # every row parses into a full RunRecord
    run_ids = [r.run_id for r in runs]
    assert len(run_ids) == len(set(run_ids))
    stored = {r.run_id: r for r in runs}
    for acked in acked_runs:
        assert stored[acked.run_id].ids == acked.ids
    for r in runs:
        assert len(r.ids) == r.budget == len(r.gains) and set(r.ids) <= set(ids)
    for name in ws.embeddings():
        vec_ids, vecs = ws.vectors(name)
        assert len(vec_ids) == len(set(vec_ids.tolist())) and set(vec_ids.tolist()) <= set(ids)
        assert np.isfinite(vecs).all()

    # ---- restart: the embedding job resumes without duplicates, new runs get fresh ids
    server = ServerProcess(ws_dir, synth_root.parent, TOKEN)
    try:
        remote = curate.connect(server.url, token=TOKEN)
        t0 = time.monotonic()
        report = remote.embed("bev-hist", name="bev2", batch_size=8)
        print(f"resume embed {time.monotonic() - t0:.1f} s: {report}")
        assert report.total == len(ids) and report.computed + report.skipped == len(ids)
        vec_ids, _ = remote.vectors("bev2")
        assert sorted(vec_ids.tolist()) == sorted(ids)
        new = remote.select("kcenter", 3, embedding="bev2")
        assert new.run_id not in stored and len(remote.runs()) == len(runs) + 1
    finally:
        server.stop()
