"""Tests of index.store.Store on real LanceDB tables in temporary directories."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from index import store as store_module
from index.errors import (
    FilterError,
    NotFoundError,
    SchemaError,
    StoreError,
    TableNotFoundError,
    VersionError,
)
from index.store import Store


def _samples(ids: list[str], weather: list[str], frame_index: list[int]) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "weather": pa.array(weather, pa.string()),
            "frame_index": pa.array(frame_index, pa.int64()),
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "ws")


@pytest.fixture
def samples() -> pa.Table:
    return _samples(["c", "a", "d", "b"], ["rain", "sun", "rain", "fog"], [2, 0, 3, 1])


# ---------------------------------------------------------------------- workspace
def test_create_and_missing_workspace(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "missing", create=False)
    store = Store(tmp_path / "new" / "ws")
    assert store.path == (tmp_path / "new" / "ws").resolve()
    assert store.path.is_dir()
    assert store.table_names() == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        Store(tmp_path / "file")


def test_upsert_read_round_trip(store: Store, samples: pa.Table) -> None:
    version = store.upsert("samples", samples)
    assert store.has_table("samples") and store.table_names() == ["samples"]
    assert version == store.version("samples")
    out = store.read("samples")
    assert out.column("id").to_pylist() == ["a", "b", "c", "d"]  # sorted by key
    expected = sorted(samples.to_pylist(), key=lambda r: r["id"])
    assert out.to_pylist() == expected
    assert store.schema("samples").names == ["id", "weather", "frame_index"]
    assert store.count("samples") == 4
    # a second store on the same directory sees the same data
    assert Store(store.path, create=False).read("samples").to_pylist() == expected


def test_same_rows_twice_changes_nothing(store: Store, samples: pa.Table) -> None:
    first = store.upsert("samples", samples)
    versions = len(store.list_versions("samples"))
    # same rows, different order and column order: still nothing to write
    shuffled = samples.take([3, 1, 0, 2]).select(["frame_index", "id", "weather"])
    assert store.upsert("samples", shuffled) == first
    assert store.version("samples") == first
    assert len(store.list_versions("samples")) == versions
    assert store.count("samples") == 4


def test_upsert_updates_changed_and_inserts_new(store: Store, samples: pa.Table) -> None:
    v1 = store.upsert("samples", samples)
    change = _samples(["a", "b", "e"], ["snow", "fog", "sun"], [0, 1, 4])  # a changed, b same, e new
    v2 = store.upsert("samples", change)
    assert v2 > v1
    rows = {r["id"]: r for r in store.read("samples").to_pylist()}
    assert len(rows) == 5
    assert rows["a"]["weather"] == "snow"
    assert rows["b"]["weather"] == "fog"
    assert rows["e"] == {"id": "e", "weather": "sun", "frame_index": 4}


def test_upsert_skips_unchanged_with_nulls_floats_and_vectors(store: Store) -> None:
    table = pa.table(
        {
            "id": ["x", "y", "z"],
            "score": pa.array([0.5, float("nan"), None], pa.float64()),
            "tags": pa.array([["a"], [], None], pa.list_(pa.string())),
            "vec": pa.FixedSizeListArray.from_arrays(pa.array(np.arange(6, dtype=np.float32)), 2),
        }
    )
    version = store.upsert("t", table)
    assert store.upsert("t", table) == version
    changed = table.set_column(1, "score", pa.array([0.5, float("nan"), 1.0], pa.float64()))
    assert store.upsert("t", changed) > version
    assert store.read("t", ids=["z"]).column("score").to_pylist() == [1.0]


def test_many_rows_second_ingest_is_a_no_op(store: Store) -> None:
    n = 3000  # more than the IN-list limit, so the streaming comparison path runs
    assert n > store_module._IN_LIST_MAX_IDS
    rows = pa.table({"id": [f"f{i:05d}" for i in range(n)], "x": np.arange(n, dtype=np.int64)})
    version = store.upsert("big", rows)
    assert store.upsert("big", rows) == version
    x = np.arange(n, dtype=np.int64)
    x[[5, 2500]] = -1
    assert store.upsert("big", rows.set_column(1, "x", pa.array(x))) == version + 1
    out = store.read("big", ids=["f02500", "f00005", "f00006"])
    assert out.column("x").to_pylist() == [-1, -1, 6]


def test_duplicate_keys_in_input(store: Store, samples: pa.Table) -> None:
    store.upsert("samples", samples)
    before = store.version("samples")
    bad = _samples(["q", "a", "q"], ["sun", "sun", "rain"], [7, 0, 8])
    with pytest.raises(SchemaError, match="'q'"):
        store.upsert("samples", bad)
    assert store.version("samples") == before and store.count("samples") == 4
    with pytest.raises(SchemaError, match="'q'"):
        store.upsert("fresh", bad)
    assert not store.has_table("fresh")


def test_schema_mismatch_names_the_column(store: Store, samples: pa.Table) -> None:
    store.upsert("samples", samples)
    before = store.version("samples")
    with pytest.raises(SchemaError, match="lack column 'frame_index'"):
        store.upsert("samples", samples.drop_columns(["frame_index"]))
    with pytest.raises(SchemaError, match="column 'extra'"):
        store.upsert("samples", samples.append_column("extra", pa.array([1, 2, 3, 4])))
    wrong = samples.set_column(2, "frame_index", pa.array(["1", "2", "3", "4"]))
    with pytest.raises(SchemaError, match="'frame_index'.*string"):
        store.upsert("samples", wrong)
    with pytest.raises(SchemaError, match="no key column 'id'"):
        store.upsert("samples", samples.drop_columns(["id"]))
    # compatible widths are cast
    narrow = samples.set_column(2, "frame_index", pa.array([2, 0, 3, 9], pa.int32()))
    assert store.upsert("samples", narrow) == before + 1
    assert store.read("samples", ids=["b"]).column("frame_index").to_pylist() == [9]


def test_append_and_update_and_delete(store: Store, samples: pa.Table) -> None:
    v1 = store.append("runs", samples)
    v2 = store.append("runs", samples.slice(0, 1))
    assert v2 == v1 + 1 and store.count("runs") == 5
    v3 = store.update("runs", where="weather = 'rain'", values={"frame_index": 42})
    assert v3 == v2 + 1
    assert store.count("runs", where="frame_index = 42") == 3
    with pytest.raises(SchemaError, match="unknown column 'nope'"):
        store.update("runs", where="id = 'a'", values={"nope": 1})
    v4 = store.delete("runs", "id = 'c'")
    assert v4 == v3 + 1 and store.count("runs") == 3


def test_where_filter_and_malformed_filter(store: Store, samples: pa.Table) -> None:
    store.upsert("samples", samples)
    out = store.read("samples", where="weather = 'rain' AND frame_index < 3")
    assert out.column("id").to_pylist() == ["c"]
    assert store.count("samples", where="weather = 'rain'") == 2
    before = store.version("samples")
    bad = "weather = rain' AND"
    with pytest.raises(FilterError) as info:
        store.read("samples", where=bad)
    message = str(info.value)
    assert bad in message and "samples" in message and "weather = 'rain'" in message
    with pytest.raises(FilterError, match="wetter"):
        store.count("samples", where="wetter = 'rain'")
    with pytest.raises(FilterError):
        store.validate_where("samples", "frame_index <")
    with pytest.raises(FilterError):
        store.delete("samples", "id = = 'a'")
    store.validate_where("samples", "frame_index >= 1")  # valid: no error
    assert isinstance(info.value, ValueError)
    assert store.version("samples") == before and store.count("samples") == 4


def test_read_columns_and_ids_order(store: Store, samples: pa.Table) -> None:
    store.upsert("samples", samples)
    out = store.read("samples", ids=["d", "a", "c"], columns=["frame_index"])
    assert out.column_names == ["frame_index"]
    assert out.column("frame_index").to_pylist() == [3, 0, 2]
    with pytest.raises(NotFoundError) as info:
        store.read("samples", ids=["a", "zz", "yy"])
    assert "'zz'" in str(info.value) and "'yy'" in str(info.value)
    assert isinstance(info.value, KeyError) and info.value.missing == ["zz", "yy"]
    kept = store.read("samples", ids=["zz", "b", "a"], missing="ignore")
    assert kept.column("id").to_pylist() == ["b", "a"]
    filtered = store.read("samples", ids=["a", "c", "d"], where="weather = 'rain'", missing="ignore")
    assert filtered.column("id").to_pylist() == ["c", "d"]
    with pytest.raises(SchemaError, match="no column 'nope'"):
        store.read("samples", columns=["nope"])
    assert list(store.ids("samples")) == ["a", "b", "c", "d"]
    assert list(store.ids("samples", where="weather = 'rain'")) == ["c", "d"]
    arrow_ids = store.id_array("samples", where="weather = 'rain'")
    assert isinstance(arrow_ids, pa.Array) and arrow_ids.type == pa.string()
    assert arrow_ids.to_pylist() == ["c", "d"]
    assert store.id_array("samples", where="weather = 'snow'").to_pylist() == []


def test_string_array_combines_chunks_and_casts() -> None:
    chunked = pa.chunked_array([pa.array(["a", "b"], pa.large_string()), pa.array(["c"], pa.large_string())])
    out = store_module.string_array(chunked)
    assert isinstance(out, pa.Array) and out.type == pa.string() and out.to_pylist() == ["a", "b", "c"]
    empty = store_module.string_array(pa.chunked_array([], pa.string()))
    assert empty.type == pa.string() and len(empty) == 0


def test_read_many_ids_in_given_order(store: Store) -> None:
    n = 4000
    keys = [f"k{i:05d}" for i in range(n)]
    store.upsert("big", pa.table({"id": keys, "x": np.arange(n)}))
    rng = np.random.default_rng(0)
    order = [keys[i] for i in rng.permutation(n)[:2500]]  # streaming path (> IN-list limit)
    out = store.read("big", ids=order)
    assert out.column("id").to_pylist() == order
    assert out.column("x").to_pylist() == [int(k[1:]) for k in order]
    small = order[:10]  # IN-list path
    assert store.read("big", ids=small).column("id").to_pylist() == small
    with pytest.raises(NotFoundError, match="and 1 more"):
        store.read("big", ids=order + ["m1", "m2", "m3", "m4", "m5", "m6"])


def test_quotes_in_keys(store: Store) -> None:
    store.upsert("t", pa.table({"id": ["it's", "plain"], "v": [1, 2]}))
    assert store.read("t", ids=["it's"]).column("v").to_pylist() == [1]


def test_pinned_version_read_after_later_writes(store: Store, samples: pa.Table) -> None:
    v1 = store.upsert("samples", samples)
    store.upsert("samples", _samples(["a", "z"], ["snow", "sun"], [0, 9]))
    store.delete("samples", "id = 'c'")
    old = store.read("samples", version=v1)
    assert old.to_pylist() == sorted(samples.to_pylist(), key=lambda r: r["id"])
    assert store.count("samples", version=v1) == 4
    assert store.read("samples", version=v1, ids=["a"]).column("weather").to_pylist() == ["sun"]
    # the latest is undisturbed and later writes still go to the latest
    latest = store.read("samples")
    assert latest.column("id").to_pylist() == ["a", "b", "d", "z"]
    v_next = store.upsert("samples", _samples(["y"], ["fog"], [5]))
    assert v_next == store.version("samples") and store.count("samples") == 5
    versions = store.list_versions("samples")
    assert [v["version"] for v in versions] == list(range(1, v_next + 1))
    with pytest.raises(VersionError, match="version 99"):
        store.read("samples", version=99)
    with pytest.raises(TableNotFoundError, match="'samples'"):
        store.read("nope")


def test_restore_and_drop(store: Store, samples: pa.Table) -> None:
    v1 = store.upsert("samples", samples)
    store.delete("samples", "id = 'a'")
    v3 = store.restore("samples", v1)
    assert v3 > v1 and store.count("samples") == 4
    store.drop_table("samples")
    assert not store.has_table("samples")
    with pytest.raises(TableNotFoundError):
        store.drop_table("samples")
    store.drop_table("samples", missing_ok=True)


def test_concurrent_upserts_in_one_process(store: Store) -> None:
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for step in range(3):
                ids = [f"w{offset}-{step}-{i}" for i in range(5)]
                store.upsert("t", pa.table({"id": ids, "x": list(range(5))}))
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    store.upsert("t", pa.table({"id": ["seed"], "x": [0]}))
    threads = [threading.Thread(target=worker, args=(j,)) for j in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert store.count("t") == 1 + 3 * 3 * 5


# ------------------------------------------------------------------------ vectors
META = {"embedder": "recon-small", "config": '{"dim": 8}', "weights_sha256": "aa" * 32}


def _vectors(n: int, dim: int = 8, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"frame-{i:04d}" for i in range(n)], rng.normal(size=(n, dim)).astype(np.float32)


def test_write_read_vectors_exact_bytes(store: Store) -> None:
    ids, vecs = _vectors(50)
    perm = np.random.default_rng(1).permutation(50)
    version = store.write_vectors("emb_recon", [ids[i] for i in perm], vecs[perm], metadata=META)
    got_ids, got = store.read_vectors("emb_recon")
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == (50, 8)
    assert got_ids.dtype == object and list(got_ids) == ids  # sorted by id
    assert got.tobytes() == vecs.tobytes()
    assert store.table_metadata("emb_recon") == META
    field = store.schema("emb_recon").field("vector")
    assert field.type == pa.list_(pa.float32(), 8)
    # subset in the given order
    sub_ids, sub = store.read_vectors("emb_recon", ids=["frame-0007", "frame-0003"])
    assert list(sub_ids) == ["frame-0007", "frame-0003"]
    assert sub.tobytes() == vecs[[7, 3]].tobytes()
    # same vectors again: nothing changes
    assert store.write_vectors("emb_recon", ids, vecs, metadata=META) == version
    # metadata=None on upsert keeps the stored metadata
    new_ids, new_vecs = ["frame-9999"], np.ones((1, 8), np.float32)
    assert store.write_vectors("emb_recon", new_ids, new_vecs) == version + 1
    assert store.table_metadata("emb_recon") == META
    assert store.count("emb_recon") == 51
    empty_ids, empty = store.read_vectors("emb_recon", where="id = 'none'")
    assert empty.shape == (0, 8) and empty_ids.shape == (0,)


def test_write_vectors_validation(store: Store) -> None:
    ids, vecs = _vectors(10)
    version = store.write_vectors("emb", ids, vecs, metadata=META)
    with pytest.raises(SchemaError, match=r"8-d.*6-d"):
        store.write_vectors("emb", ids, vecs[:, :6], metadata=META)
    bad = vecs.copy()
    bad[4, 2] = np.nan
    bad[7, 0] = np.inf
    with pytest.raises(SchemaError, match="frame-0004"):
        store.write_vectors("emb", ids, bad, metadata=META)
    with pytest.raises(SchemaError, match="2-D"):
        store.write_vectors("emb", ids, vecs[0], metadata=META)
    with pytest.raises(SchemaError, match="9 ids for 10 vectors"):
        store.write_vectors("emb", ids[:9], vecs, metadata=META)
    with pytest.raises(SchemaError, match="frame-0001"):
        store.write_vectors("emb", ids[:9] + ["frame-0001"], vecs, metadata=META)
    other = dict(META, weights_sha256="bb" * 32)
    with pytest.raises(SchemaError, match="two models") as info:
        store.write_vectors("emb", ids, vecs, metadata=other)
    assert "overwrite" in str(info.value) and "weights_sha256" in str(info.value)
    assert store.version("emb") == version  # nothing was written by the failed calls
    assert store.read_vectors("emb")[1].tobytes() == vecs.tobytes()


def test_write_vectors_overwrite_replaces_content_and_metadata(store: Store) -> None:
    ids, vecs = _vectors(10)
    v1 = store.write_vectors("emb", ids, vecs, metadata=META)
    other = dict(META, weights_sha256="bb" * 32)
    new_ids, new_vecs = _vectors(4, dim=6, seed=3)
    v2 = store.write_vectors("emb", new_ids, new_vecs, metadata=other, mode="overwrite")
    assert v2 == v1 + 1
    got_ids, got = store.read_vectors("emb")
    assert list(got_ids) == new_ids and got.tobytes() == new_vecs.tobytes()
    assert store.table_metadata("emb") == other
    # the old model's vectors are still readable at the old version
    old_ids, old = store.read_vectors("emb", version=v1)
    assert list(old_ids) == ids and old.tobytes() == vecs.tobytes()
    assert store.table_metadata("emb", version=v1) == META
    with pytest.raises(ValueError, match="mode"):
        store.write_vectors("emb", new_ids, new_vecs, mode="append")  # type: ignore[arg-type]


def test_read_vectors_on_non_embedding_table(store: Store, samples: pa.Table) -> None:
    store.upsert("samples", samples)
    with pytest.raises(SchemaError, match="not an embedding table"):
        store.read_vectors("samples")


def test_interrupted_create_is_not_a_table(tmp_path: Path) -> None:
    """A table directory with no committed version (kill -9 mid-create) is ignored and replaced."""
    store = Store(tmp_path / "ws")
    debris = tmp_path / "ws" / "half.lance"
    (debris / "data").mkdir(parents=True)
    (debris / "data" / "partial.lance").write_bytes(b"\x00" * 64)
    assert not store.has_table("half")
    assert "half" not in store.table_names()
    store.upsert("half", pa.table({"id": ["a", "b"], "x": [1, 2]}))
    assert store.has_table("half") and store.count("half") == 2
