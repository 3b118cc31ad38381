"""Workspace over compacted / float16 tables (issue 11): compaction keeps every version a stored
run pinned (``ws.reproduce`` still gives the same ids), float16 embeddings select and search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import curate
from curate.sources.kitti import KittiSource
from index import store as S


def test_reproduce_after_compaction(ws: curate.Workspace, synth_root: Path, monkeypatch) -> None:
    first = ws.select("kcenter", 5, embedding="bev-hist")
    second = ws.select("random", 4, embedding="bev-hist", where="frame_index < 5", seed=3)
    ws.label(first.ids[:2])
    monkeypatch.setattr(S, "_COMPACT_SMALL_FRAGMENTS", 2)  # every write compacts from now on
    ws.ingest(KittiSource(synth_root, prefix="b"), batch_size=10, progress=False)
    ws.embed("bev-hist", num_workers=0, write_every=8, progress=False)
    for table in ("samples", "emb_bev-hist"):
        ws.store.compact(table)
        assert ws.store._open(table).stats()["fragment_stats"]["num_fragments"] <= 2
    assert ws.reproduce(first.run_id) == first.ids
    assert ws.reproduce(second.run_id) == second.ids
    after = ws.select("kcenter", 5, embedding="bev-hist")
    assert not set(after.ids) & set(first.ids[:2])
    assert ws.reproduce(after.run_id) == after.ids


def test_float16_embedding(ws: curate.Workspace) -> None:
    report = ws.embed("bev-hist", name="h16", dtype="float16", num_workers=0, progress=False)
    assert report.computed == ws.count()
    assert ws.embedding_info("h16")["dtype"] == "float16"
    assert ws.store.schema("emb_h16").field("vector").type.value_type.bit_width == 16
    ids32, v32 = ws.vectors("bev-hist")
    ids16, v16 = ws.vectors("h16")
    assert ids16.tolist() == ids32.tolist() and v16.dtype == np.float32
    np.testing.assert_array_equal(v16, v32.astype(np.float16).astype(np.float32))
    again = ws.embed("bev-hist", name="h16", dtype="float16", num_workers=0, progress=False)
    assert again.computed == 0  # same model, same dtype: nothing to do
    sel = ws.select("kcenter", 5, embedding="h16")
    assert len(sel.ids) == 5 and ws.reproduce(sel.run_id) == sel.ids
    hits = ws.search("h16", ids=[sel.ids[0]], k=3)
    assert len(hits.results[0].ids) == 3
    with pytest.raises(curate.InvalidInputError, match="dtype"):
        ws.embed("bev-hist", name="h8", dtype="int8", num_workers=0, progress=False)
