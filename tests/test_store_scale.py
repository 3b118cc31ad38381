"""index.store at scale, on small data with the thresholds lowered: every read path (IN-list,
indexed IN-list, key scan + take, streamed scan) equals a brute-force reference; upsert stays
idempotent with a key index and compaction; compaction keeps old versions; float16 vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from index import store as S
from index.errors import NotFoundError, SchemaError
from index.store import Store

N, DIM = 300, 8


def _ids(n: int) -> list[str]:
    # unicode and quote-bearing ids on purpose
    return [f"frame-{i:04d}" if i % 7 else f"é'{i:04d}🚗" for i in range(n)]


@pytest.fixture(params=["inlist", "indexed", "take", "scan"])
def mode(request, monkeypatch) -> str:
    if request.param == "inlist":
        monkeypatch.setattr(S, "_IN_LIST_MAX_IDS", 1_000_000)
    else:
        monkeypatch.setattr(S, "_IN_LIST_MAX_IDS", 4)
    if request.param == "indexed":
        monkeypatch.setattr(S, "_KEY_INDEX_MIN_ROWS", 10)
        monkeypatch.setattr(S, "_INDEXED_LOOKUP_SHARE", 1)
    else:
        monkeypatch.setattr(S, "_INDEXED_LOOKUP_MAX_IDS", 0)
    monkeypatch.setattr(S, "_TAKE_MAX_SHARE", 0.0 if request.param == "scan" else 1.0)
    monkeypatch.setattr(S, "_COMPACT_SMALL_FRAGMENTS", 5)
    return request.param


def _filled(tmp_path: Path, dtype: str = "float32") -> tuple[Store, list[str], np.ndarray]:
    store = Store(tmp_path / "ws")
    ids = _ids(N)
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((N, DIM)).astype(np.float32)
    for begin in range(0, N, 20):  # 15 commits: compaction and (maybe) the key index kick in
        store.write_vectors("emb", ids[begin : begin + 20], vecs[begin : begin + 20],
                            metadata={"embedder": "x"}, dtype=dtype)
        store.upsert("samples", pa.table({"id": ids[begin : begin + 20],
                                          "k": list(range(begin, begin + 20))}))
    return store, ids, vecs


def test_read_paths_equal_reference(tmp_path: Path, mode: str) -> None:
    store, ids, vecs = _filled(tmp_path)
    if mode == "indexed":
        assert S._has_key_index(store._open("emb"), "id")
    rng = np.random.default_rng(1)
    pick = [ids[i] for i in rng.choice(N, 40)]  # with repeats
    pick += pick[:3]
    got_ids, got = store.read_vectors("emb", ids=pick)
    assert got_ids.tolist() == pick
    np.testing.assert_array_equal(got, vecs[[ids.index(i) for i in pick]])
    all_ids, all_vecs = store.read_vectors("emb")
    order = sorted(range(N), key=lambda i: ids[i])
    assert all_ids.tolist() == [ids[i] for i in order]
    np.testing.assert_array_equal(all_vecs, vecs[order])
    ask = pick[:10] + ["nope", "é'0000🚗"]
    out, found = store.gather_vectors("emb", ask)
    assert found.tolist() == [True] * 10 + [False, True]
    np.testing.assert_array_equal(out[:10], vecs[[ids.index(i) for i in pick[:10]]])
    assert not out[10].any()
    rows = store.read("samples", ids=pick, columns=["id", "k"])
    assert rows.column("id").to_pylist() == pick
    assert rows.column("k").to_pylist() == [ids.index(i) for i in pick]
    with pytest.raises(NotFoundError):
        store.read_vectors("emb", ids=["nope"])


def test_upsert_twice_changes_nothing_and_updates(tmp_path: Path, mode: str) -> None:
    store, ids, vecs = _filled(tmp_path)
    version = store.version("samples")
    again = pa.table({"id": ids, "k": list(range(N))})
    assert store.upsert("samples", again) == version
    assert store.write_vectors("emb", ids, vecs, metadata={"embedder": "x"}) == store.version("emb")
    assert store.count("emb") == N
    changed = pa.table({"id": ids[:3] + ["new"], "k": [-1, -2, -3, 99]})
    store.upsert("samples", changed)
    assert store.count("samples") == N + 1
    got = store.read("samples", ids=ids[:4] + ["new"], columns=["k"]).column("k").to_pylist()
    assert got == [-1, -2, -3, 3, 99]


def test_compaction_keeps_every_version(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(S, "_COMPACT_SMALL_FRAGMENTS", 10_000)  # compact by hand below
    store, ids, vecs = _filled(tmp_path)
    versions = [v["version"] for v in store.list_versions("emb")]
    before = {v: store.read_vectors("emb", version=v) for v in versions}
    assert store._open("emb").stats()["fragment_stats"]["num_fragments"] == N // 20
    latest = store.compact("emb")
    assert latest >= versions[-1]
    assert store._open("emb").stats()["fragment_stats"]["num_fragments"] == 1
    for v, (vid, vv) in before.items():
        gid, gv = store.read_vectors("emb", version=v)
        assert gid.tolist() == vid.tolist()
        np.testing.assert_array_equal(gv, vv)


def test_float16_storage(tmp_path: Path) -> None:
    store, ids, vecs = _filled(tmp_path, dtype="float16")
    assert store.schema("emb").field("vector").type.value_type == pa.float16()
    got_ids, got = store.read_vectors("emb", ids=ids)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, vecs.astype(np.float16).astype(np.float32))
    # upserts keep the table's storage type; another dtype is refused with a clear error
    store.write_vectors("emb", ids[:2], vecs[:2] * 2, metadata={"embedder": "x"})
    assert store.schema("emb").field("vector").type.value_type == pa.float16()
    with pytest.raises(SchemaError, match="stores float16"):
        store.write_vectors("emb", ids[:2], vecs[:2], metadata={"embedder": "x"}, dtype="float32")
    with pytest.raises(SchemaError, match="float16 range"):
        store.write_vectors("emb", ["big"], np.full((1, DIM), 1e6), metadata={"embedder": "x"})
    chunks = list(store.iter_vectors("emb", batch_rows=64))
    assert sum(len(c[0]) for c in chunks) == N and all(c[1].dtype == np.float32 for c in chunks)


def _big_store(path: Path, n: int, d: int, batch: int, seed: int, dtype: str | None = None
               ) -> tuple[Store, list[str]]:
    store = Store(path)
    ids = [f"f{i:06d}" for i in range(n)]
    rng = np.random.default_rng(seed)
    for begin in range(0, n, batch):
        store.write_vectors("emb", ids[begin : begin + batch],
                            rng.standard_normal((batch, d)).astype(np.float32), dtype=dtype)
    return store, ids


def _gather_peak(store: Store, wanted: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """``gather_vectors`` result and its numpy-side peak (tracemalloc sees numpy's buffers)."""
    import tracemalloc

    tracemalloc.start()
    try:
        vectors, found = store.gather_vectors("emb", wanted)
        return vectors, found, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gather_holds_one_copy_of_the_vectors(tmp_path: Path) -> None:
    """numpy-side peak while reading 40k x 64 vectors: the result plus batches, not 2 copies."""
    n, d = 40_000, 64
    store, ids = _big_store(tmp_path / "big", n, d, 10_000, seed=0)
    result_bytes = n * d * 4
    for wanted in (ids, ids[::10]):
        vectors, found, peak = _gather_peak(store, wanted)
        assert found.all() and vectors.shape == (len(wanted), d)
        assert peak < 1.5 * len(wanted) * d * 4 + 8 * 2**20, (peak, result_bytes)


def test_gather_of_a_float16_table_holds_one_float32_copy(tmp_path: Path) -> None:
    """float16 storage: the read upcasts batch by batch into one float32 result (numpy-side peak
    below 1.5 result sizes, where a float16 copy plus a float32 copy would be 1.5 exactly and an
    upcast of the whole would be 2)."""
    d = 64
    store, ids = _big_store(tmp_path / "big16", 200_000, d, 50_000, seed=1, dtype="float16")
    for wanted in (ids, ids[::10]):
        vectors, found, peak = _gather_peak(store, wanted)
        assert found.all() and vectors.dtype == np.float32 and vectors.shape == (len(wanted), d)
        assert peak < 1.25 * len(wanted) * d * 4 + 4 * 2**20, peak
