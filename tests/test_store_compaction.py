"""Bounded compaction: only small fragments are rewritten, the key index keeps up, versions stay."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from index import store as S
from index.store import Store

lance = pytest.importorskip("lance", reason="bounded compaction needs pylance (curate[scale])")


def _fragments(store: Store, table: str) -> dict[int, int]:
    return {f.fragment_id: f.metadata.physical_rows
            for f in store._open(table).to_lance().get_fragments()}


def test_compaction_rewrites_only_small_fragments_and_index_finds_every_row(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "_COMPACT_TARGET_ROWS", 120)
    monkeypatch.setattr(S, "_COMPACT_SMALL_FRAGMENTS", 6)
    monkeypatch.setattr(S, "_KEY_INDEX_MIN_ROWS", 50)
    monkeypatch.setattr(S, "_MAX_INDEX_SEGMENTS", 3)
    monkeypatch.setattr(S, "_INDEXED_LOOKUP_SHARE", 1)
    store = Store(tmp_path / "ws")
    ids = [f"r{i:05d}" for i in range(1200)]
    big_seen: dict[int, int] = {}
    versions = []
    for begin in range(0, len(ids), 20):
        store.upsert("t", pa.table({"id": ids[begin:begin + 20], "k": list(range(begin, begin + 20))}))
        versions.append(store.version("t"))
        frags = _fragments(store, "t")
        # a fragment that reached the target size is never rewritten again
        for fid, rows in big_seen.items():
            assert frags.get(fid) == rows
        big_seen.update({fid: rows for fid, rows in frags.items() if rows >= S._COMPACT_TARGET_ROWS})
    assert big_seen and len(_fragments(store, "t")) < 1200 // 20
    assert S._has_key_index(store._open("t"), "id")
    segments = [ix for ix in store._open("t").to_lance().describe_indices()
                if list(ix.field_names) == ["id"]]
    assert sum(len(ix.segments) for ix in segments) <= S._MAX_INDEX_SEGMENTS
    S._KEYSETS.clear()  # reads through the index, not the key set
    rng = np.random.default_rng(0)
    pick = [ids[i] for i in rng.choice(len(ids), 30, replace=False)] + ["absent"]
    got = store.read("t", ids=pick, missing="ignore")
    assert got["id"].to_pylist() == pick[:-1]
    assert got["k"].to_pylist() == [int(i[1:]) for i in pick[:-1]]
    for v in versions[::10]:  # every version stays readable with its rows
        assert store.count("t", version=v) == (versions.index(v) + 1) * 20
