"""Key sets: appends of new keys skip the table, and every answer equals a store without them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from index import store as store_module
from index._keyset import KeySet, hash_keys
from index.store import Store


def _rows(ids, value):
    return pa.table({"id": pa.array(ids, pa.string()), "v": pa.array([value] * len(ids), pa.int64())})


def test_hash_keys_slices_chunks_and_types_agree():
    ids = pa.array([f"frame-{i:05d}" for i in range(3000)] + ["", "a"])
    h = hash_keys(ids)
    assert len(np.unique(h)) == len(h)
    assert (hash_keys(ids.slice(1234, 77)) == h[1234:1311]).all()
    chunked = pa.chunked_array([ids.slice(0, 10), ids.slice(10, 5)])
    assert (hash_keys(chunked) == h[:15]).all()
    assert (hash_keys(pa.array(["frame-00007"], pa.large_string())) == h[7]).all()
    ints = hash_keys(pa.array([1, 2, 3], pa.int64()))
    assert len(set(ints.tolist())) == 3


def test_keyset_membership_equals_a_python_set():
    rng = np.random.default_rng(0)
    stored = [f"k{i}" for i in rng.choice(100_000, size=20_000, replace=False)]
    keys = KeySet(1, 0)
    for begin in range(0, len(stored), 700):  # many small runs, merged geometrically
        keys.add(hash_keys(pa.array(stored[begin:begin + 700])))
    runs = [len(r) for r in keys._runs]
    assert all(a > 2 * b for a, b in zip(runs, runs[1:]))
    probe = [f"k{i}" for i in range(100_000)]
    got = keys.may_contain(hash_keys(pa.array(probe)))
    truth = np.isin(np.arange(100_000), [int(s[1:]) for s in stored])
    assert (got[truth]).all()  # never a false "absent"
    assert got.sum() - truth.sum() <= 1  # 64-bit hashes: false "maybe" essentially never


def test_upserts_through_the_key_set_equal_plain_upserts(tmp_path, monkeypatch):
    """The same write sequence with and without key sets gives the same tables and versions."""
    monkeypatch.setattr(store_module, "_KEY_INDEX_MIN_ROWS", 500)
    monkeypatch.setattr(store_module, "_COMPACT_SMALL_FRAGMENTS", 4)
    rng = np.random.default_rng(1)
    steps = []
    for step in range(14):
        ids = [f"f{i:05d}" for i in np.sort(rng.choice(3000, size=300, replace=False))]
        steps.append((ids, step % 3))
    results = {}
    for mode in ("keyset", "plain"):
        if mode == "plain":
            monkeypatch.setattr(Store, "_keyset", lambda self, *a, **k: None)
        store = Store(tmp_path / mode)
        versions = []
        for ids, value in steps:
            versions.append(store.upsert("t", _rows(ids, value)))
            versions.append(store.upsert("t", _rows(ids[:50], value)))  # unchanged: no version
        table = store.read("t")
        probe = store.read("t", ids=[f"f{i:05d}" for i in range(0, 3100, 7)], missing="ignore")
        results[mode] = (versions, table.to_pylist(), probe.to_pylist())
    assert results["keyset"] == results["plain"]


def test_key_set_is_dropped_after_writes_it_does_not_know(tmp_path):
    """Another Store (another process's view) or a restore changes the table: no stale answer."""
    a = Store(tmp_path / "ws")
    a.upsert("t", _rows(["x", "y"], 1))
    a.upsert("t", _rows(["z"], 1))  # key set valid
    stale = dict(store_module._KEYSETS)  # a's set, as another process would keep it
    b = Store(tmp_path / "ws")
    store_module._KEYSETS.clear()  # b behaves as another process: no shared memory
    b.upsert("t", _rows(["w"], 1))
    store_module._KEYSETS.clear()
    store_module._KEYSETS.update(stale)  # a's set does not know "w": its version is older
    assert a.upsert("t", _rows(["w"], 1)) == a.version("t")  # unchanged: the stale set was not used
    a.upsert("t", _rows(["q"], 1))
    assert a.upsert("t", _rows(["w"], 1)) == a.version("t")  # unchanged, found via the set
    assert sorted(a.read("t", columns=["id"])["id"].to_pylist()) == ["q", "w", "x", "y", "z"]
    v_before = a.version("t")
    a.upsert("t", _rows(["n"], 2))
    a.restore("t", v_before)
    a.upsert("t", _rows(["n"], 3))  # "n" is gone after the restore: inserted again, not updated
    rows = {r["id"]: r["v"] for r in a.read("t").to_pylist()}
    assert rows["n"] == 3 and len(rows) == 6
    a.delete("t", "id = 'x'")
    assert a.read("t", ids=["x", "y"], missing="ignore")["id"].to_pylist() == ["y"]
    a.upsert("t", _rows(["x"], 5))
    assert {r["id"]: r["v"] for r in a.read("t").to_pylist()}["x"] == 5


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_vector_commits_with_key_set_keep_every_row_once(tmp_path, dtype):
    store = Store(tmp_path / "ws")
    meta = {"embedder": "e", "config": "{}", "weights_sha256": "0"}
    rng = np.random.default_rng(2)
    vecs = rng.standard_normal((900, 8)).astype(np.float32)
    ids = [f"i{i:04d}" for i in range(900)]
    for begin in range(0, 900, 100):
        store.write_vectors("emb", ids[begin:begin + 100], vecs[begin:begin + 100], metadata=meta,
                            dtype=dtype)
    store.write_vectors("emb", ids[:150], vecs[:150] + 1, metadata=meta)  # updates, via the set
    got_ids, got = store.read_vectors("emb")
    assert list(got_ids) == ids
    expect = vecs.copy()
    expect[:150] += 1
    tol = 1e-2 if dtype == "float16" else 0
    assert np.allclose(got, expect, atol=tol)
