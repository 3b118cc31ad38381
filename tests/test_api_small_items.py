"""Small API items of issue 13: ``curate search`` exists (the workspace's hints name it) and the
pretraining teacher cache is not listed as a user embedding."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import curate
from curate import _tables as T
from curate.pretraining import teacher_table


def test_curate_search_prints_the_neighbours(embedded_template: Path, tmp_path: Path) -> None:
    ws_dir = tmp_path / "ws"
    shutil.copytree(embedded_template, ws_dir)
    exe = Path(sys.executable).parent / "curate"
    done = subprocess.run([str(exe), "search", "000000", "000005", "--embedding", "bev-hist", "-k", "3",
                           "--json", "--workspace", str(ws_dir)], capture_output=True, text=True,
                          env={**os.environ}, timeout=600)
    assert done.returncode == 0, done.stderr
    expected = curate.connect(ws_dir).search("bev-hist", ids=["000000", "000005"], k=3)
    assert json.loads(done.stdout)["results"] == json.loads(expected.model_dump_json())["results"]
    text = subprocess.run([str(exe), "search", "000000", "--embedding", "bev-hist", "-k", "2",
                           "--workspace", str(ws_dir)], capture_output=True, text=True, timeout=600)
    assert text.returncode == 0 and text.stdout.startswith("000000:")
    assert expected.results[0].ids[0] in text.stdout
    bad = subprocess.run([str(exe), "search", "000000", "--embedding", "nope", "--workspace", str(ws_dir)],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_teacher_cache_is_not_a_user_embedding(ws: curate.Workspace) -> None:
    name = teacher_table("effnet-lite0")
    assert name.startswith(T.INTERNAL_EMBEDDING_PREFIX)
    ids = ws.frames(columns=["id"])["id"].to_pylist()[:3]
    ws.store.write_vectors(T.embedding_table(name), ids, np.ones((3, 4), np.float32), metadata={},
                           mode="overwrite")
    assert ws.store.has_table(T.embedding_table(name))
    assert name not in ws.embeddings() and "bev-hist" in ws.embeddings()
