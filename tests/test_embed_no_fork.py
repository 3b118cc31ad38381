"""The embedding job reads frames with threads: no process is forked after LanceDB is loaded.

``curate embed`` used to read with forked ``DataLoader`` workers, and LanceDB warned on every
run that fork support is experimental with a chance of deadlock. Real CLI in a subprocess, real
LanceDB on a tmp dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import curate
from curate.jobs.embed import EmbedJob, _loader, run_embed_job


def test_curate_embed_forks_nothing(tmp_path: Path, synth_root: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    ws = tmp_path / "ws"
    cli = [sys.executable, "-m", "curate.cli"]
    subprocess.run([*cli, "ingest", "kitti", str(synth_root), "--workspace", str(ws)], env=env,
                   check=True, capture_output=True, text=True, timeout=600)
    done = subprocess.run([*cli, "embed", "--model", "bev-hist", "--workspace", str(ws),
                           "--num-workers", "2", "--batch-size", "4"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "fork" not in done.stderr.lower(), done.stderr
    assert curate.connect(ws).count() == curate.connect(ws).vectors("bev-hist")[1].shape[0]


def test_reader_threads_give_the_same_vectors_in_order(ws: curate.Workspace) -> None:
    from curate.embedding import build_embedder

    emb = build_embedder("bev-hist")
    for workers in (0, 1, 3):
        run_embed_job(ws.store, emb, EmbedJob(name=f"t{workers}", batch_size=5, num_workers=workers,
                                              device="cpu", progress=False, segment_size=16))
    ids0, v0 = ws.vectors("t0")
    for workers in (1, 3):
        ids, v = ws.vectors(f"t{workers}")
        assert list(ids) == list(ids0) and np.array_equal(v, v0)
    stored_ids, stored = ws.vectors("bev-hist")
    assert list(stored_ids) == list(ids0) and np.allclose(stored, v0)


class _Items:
    def __init__(self, n: int) -> None:
        self.n, self.read = n, 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        self.read += 1
        return i


def test_loader_keeps_order_and_stops_early() -> None:
    items = _Items(103)
    assert [x for batch in _loader(items, 10, 3) for x in batch] == list(range(103))
    items = _Items(1000)
    gen = _loader(items, 10, 2)
    next(gen)
    gen.close()  # the consumer stops: read-ahead is bounded, the pool is shut down
    assert items.read <= 10 * (1 + 2 * 2)
