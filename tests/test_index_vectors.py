"""Tests of index.vectors.VectorIndex against the brute-force references in index._exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index import _exact
from index._exact import exact_knn, exact_range_search
from index.errors import DeviceError, NotFoundError, SchemaError
from index.store import Store
from index.vectors import VectorIndex, default_nlist

METRICS = ["l2", "cosine", "ip"]
RADIUS = {"l2": 4.0, "cosine": 0.9, "ip": 6.0}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(1500, 16)).astype(np.float32)
    queries = rng.normal(size=(60, 16)).astype(np.float32)
    return base, queries


@pytest.fixture(scope="module")
def clustered() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(40, 24)) * 4.0
    base = centers[rng.integers(0, 40, 5000)] + rng.normal(size=(5000, 24))
    queries = centers[rng.integers(0, 40, 300)] + rng.normal(size=(300, 24))
    return base.astype(np.float32), queries.astype(np.float32)


def _assert_range_equal(got: tuple, ref: tuple, radius: float, metric: str) -> None:
    """Same CSR result, except pairs within float32 rounding of the boundary may differ."""
    lims, dist, idx = got
    ref_lims, ref_dist, ref_idx = ref
    assert lims.dtype == np.int64 and idx.dtype == np.int64 and dist.dtype == np.float32
    assert lims.shape == ref_lims.shape
    for q in range(len(lims) - 1):
        row_idx, row_dist = idx[lims[q]:lims[q + 1]], dist[lims[q]:lims[q + 1]]
        ref_row_idx, ref_row_dist = ref_idx[ref_lims[q]:ref_lims[q + 1]], ref_dist[ref_lims[q]:ref_lims[q + 1]]
        assert np.all(np.diff(row_idx) > 0), "indices must be ascending within a query"
        if metric == "ip":
            assert np.all(row_dist > radius - 1e-4)
        else:
            assert np.all(row_dist < radius + 1e-4)
        only = set(row_idx.tolist()) ^ set(ref_row_idx.tolist())
        boundary = {int(i) for i, d in zip(ref_row_idx, ref_row_dist) if abs(d - radius) < 1e-4}
        boundary |= {int(i) for i, d in zip(row_idx, row_dist) if abs(d - radius) < 1e-4}
        assert only <= boundary, f"query {q}: {sorted(only)} differ away from the boundary"
        common, a, b = np.intersect1d(row_idx, ref_row_idx, return_indices=True)
        np.testing.assert_allclose(row_dist[a], ref_row_dist[b], rtol=1e-4, atol=1e-4)
    assert lims[-1] > 0, "radius too small for a meaningful test"


# ----------------------------------------------------------------- exact reference
def test_exact_knn_matches_full_sort() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=(200, 5))
    base[10] = base[3]  # exact duplicates: tie broken by the lower index
    queries = np.vstack([base[3], rng.normal(size=(4, 5))])
    for metric in METRICS:
        dist, idx = exact_knn(base, queries, 7, metric)
        b = _exact.normalize_rows(base) if metric == "cosine" else base
        q = _exact.normalize_rows(queries) if metric == "cosine" else queries
        for row in range(len(q)):
            if metric == "ip":
                score = -(b @ q[row])
                want_dist = b @ q[row]
            else:
                score = np.linalg.norm(b - q[row], axis=1)
                want_dist = score
            order = np.lexsort((np.arange(len(b)), score))[:7]
            np.testing.assert_array_equal(idx[row], order)
            np.testing.assert_allclose(dist[row], want_dist[order], rtol=1e-5, atol=1e-6)
    _, idx = exact_knn(base, base[3:4], 2, "l2")
    assert idx[0].tolist() == [3, 10]


def test_exact_chunking_gives_same_result(monkeypatch: pytest.MonkeyPatch, data) -> None:
    base, queries = data
    whole = exact_knn(base, queries, 5, "l2"), exact_range_search(base, queries, 4.0, "l2")
    monkeypatch.setattr(_exact, "_CHUNK_ELEMENTS", 7 * base.shape[0])  # 7 queries per chunk
    chunked = exact_knn(base, queries, 5, "l2"), exact_range_search(base, queries, 4.0, "l2")
    for a, b in zip(whole[0] + whole[1], chunked[0] + chunked[1]):
        np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------------------- flat
@pytest.mark.parametrize("metric", METRICS)
def test_flat_search_equals_exact(data, metric: str) -> None:
    base, queries = data
    index = VectorIndex.build(base, metric=metric, device="cpu")
    assert (index.kind, index.ntotal, index.dim, index.metric, index.on_gpu) == ("flat", 1500, 16, metric, False)
    dist, idx = index.search(queries, 10)
    ref_dist, ref_idx = exact_knn(base, queries, 10, metric)
    assert dist.dtype == np.float32 and idx.dtype == np.int64 and dist.shape == (60, 10)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-4, atol=1e-4)
    if metric == "ip":
        assert np.all(np.diff(dist, axis=1) <= 0)
    else:
        assert np.all(np.diff(dist, axis=1) >= 0)
        # Euclidean, not squared
        np.testing.assert_allclose(dist[:, 0], np.linalg.norm(
            (_exact.normalize_rows(base) if metric == "cosine" else base)[idx[:, 0]]
            - (_exact.normalize_rows(queries) if metric == "cosine" else queries), axis=1),
            rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("metric", METRICS)
def test_flat_range_search_equals_exact(data, metric: str) -> None:
    base, queries = data
    index = VectorIndex.build(base, metric=metric, kind="flat", device="cpu")
    radius = RADIUS[metric]
    got = index.range_search(queries, radius)
    ref = exact_range_search(base, queries, radius, metric)
    _assert_range_equal(got, ref, radius, metric)


def test_range_search_is_chunked_consistently(monkeypatch: pytest.MonkeyPatch, data) -> None:
    base, queries = data
    index = VectorIndex.build(base, device="cpu")
    whole = index.range_search(queries, 4.0)
    from index import vectors as vectors_module

    monkeypatch.setattr(vectors_module, "_RANGE_CHUNK", 7)
    monkeypatch.setattr(vectors_module, "_SEARCH_CHUNK", 7)
    for a, b in zip(whole, index.range_search(queries, 4.0)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(index.search(queries, 5)[1], exact_knn(base, queries, 5)[1])


def test_range_search_strict_and_empty(data) -> None:
    base, _ = data
    index = VectorIndex.build(base[:50], device="cpu")
    lims, dist, idx = index.range_search(base[:3], 1e-3)
    # each query finds itself (distance 0 < radius) and nothing else
    assert lims.tolist() == [0, 1, 2, 3] and idx.tolist() == [0, 1, 2]
    lims, dist, idx = index.range_search(base[:3], 0.0)  # strict: d < 0 never holds
    assert lims.tolist() == [0, 0, 0, 0] and idx.size == 0 and dist.size == 0


# --------------------------------------------------------------------------- IVF
@pytest.mark.parametrize("metric", METRICS)
def test_ivf_exhaustive_equals_exact(data, metric: str) -> None:
    base, queries = data
    index = VectorIndex.build(base, metric=metric, kind="ivf", nlist=16, nprobe=16, device="cpu")
    assert index.kind == "ivf" and index.nlist == 16 and index.nprobe == 16
    dist, idx = index.search(queries, 10)
    ref_dist, ref_idx = exact_knn(base, queries, 10, metric)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-4, atol=1e-4)
    radius = RADIUS[metric]
    _assert_range_equal(index.range_search(queries, radius),
                        exact_range_search(base, queries, radius, metric), radius, metric)


def test_ivf_default_recall_on_clustered_data(clustered) -> None:
    base, queries = clustered
    index = VectorIndex.build(base, kind="ivf", device="cpu", seed=0)
    assert index.nlist == default_nlist(len(base)) and 1 <= index.nprobe < index.nlist
    _, idx = index.search(queries, 10)
    _, ref_idx = exact_knn(base, queries, 10, "l2")
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx.tolist(), ref_idx.tolist())])
    assert recall >= 0.95
    # deterministic for a seed
    again = VectorIndex.build(base, kind="ivf", device="cpu", seed=0)
    np.testing.assert_array_equal(again.search(queries, 10)[1], idx)


def test_auto_kind_threshold(data) -> None:
    base, _ = data
    assert VectorIndex.build(base, device="cpu").kind == "flat"
    assert VectorIndex.build(base, device="cpu", flat_max=1000).kind == "ivf"


# ---------------------------------------------------------------- k > ntotal, ids
@pytest.mark.parametrize("metric", METRICS)
def test_k_larger_than_ntotal_pads(metric: str) -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(size=(4, 3)).astype(np.float32)
    index = VectorIndex.build(base, metric=metric, device="cpu")
    dist, idx = index.search(base[:2], 6)
    assert idx.shape == (2, 6)
    assert np.all(idx[:, 4:] == -1) and sorted(idx[0, :4].tolist()) == [0, 1, 2, 3]
    pad = -np.inf if metric == "ip" else np.inf
    assert np.all(dist[:, 4:] == pad) and np.all(np.isfinite(dist[:, :4]))
    ref_dist, ref_idx = exact_knn(base, base[:2], 6, metric)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist[:, :4], ref_dist[:, :4], rtol=1e-4, atol=1e-4)


def test_search_ids_excludes_self(data) -> None:
    base, _ = data
    ids = np.array([f"f{i:04d}" for i in range(len(base))], dtype=object)
    index = VectorIndex.build(base, ids=ids, device="cpu")
    dist, idx = index.search_ids(["f0003", "f0100"], 5)
    _, ref_idx = exact_knn(base, base[[3, 100]], 6, "l2")
    np.testing.assert_array_equal(idx, ref_idx[:, 1:])
    assert 3 not in idx[0] and 100 not in idx[1] and np.all(dist > 0)
    _, with_self = index.search_ids(["f0003"], 5, exclude_self=False)
    assert with_self[0, 0] == 3
    assert list(index.ids[idx[0]]) == [ids[i] for i in ref_idx[0, 1:]]
    with pytest.raises(NotFoundError, match="'nope'"):
        index.search_ids(["nope", "f0001"], 3)
    with pytest.raises(ValueError, match="without ids"):
        VectorIndex.build(base, device="cpu").search_ids(["f0001"], 3)
    with pytest.raises(SchemaError, match="more than once"):
        VectorIndex.build(base[:3], ids=["a", "b", "a"], device="cpu")


def test_search_ids_with_duplicate_vectors() -> None:
    base = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [9.0, 9.0]], dtype=np.float32)
    index = VectorIndex.build(base, ids=["a", "b", "c", "d"], device="cpu")
    dist, idx = index.search_ids(["b"], 2)
    assert idx[0].tolist() == [0, 2] and dist[0, 0] == 0.0


# ------------------------------------------------------------------- validation
def test_bad_inputs_raise_clear_errors(data) -> None:
    base, queries = data
    index = VectorIndex.build(base, device="cpu")
    with pytest.raises(SchemaError, match=r"16-d.*8-d"):
        index.search(queries[:, :8], 3)
    with pytest.raises(SchemaError, match=r"16-d.*8-d"):
        index.range_search(queries[:, :8], 1.0)
    with pytest.raises(SchemaError, match="2-D"):
        index.search(queries[0], 3)
    bad = queries.copy()
    bad[5, 1] = np.nan
    with pytest.raises(SchemaError, match="row 5"):
        index.search(bad, 3)
    with pytest.raises(ValueError, match="k must be"):
        index.search(queries, 0)
    with pytest.raises(ValueError, match="radius"):
        index.range_search(queries, float("inf"))
    bad_base = base.copy()
    bad_base[7] = np.inf
    with pytest.raises(SchemaError, match="row 7"):
        VectorIndex.build(bad_base)
    with pytest.raises(SchemaError, match="2-D"):
        VectorIndex.build(base[0])
    with pytest.raises(ValueError, match="unknown metric"):
        VectorIndex.build(base, metric="hamming")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="zero"):
        VectorIndex.build(np.zeros((3, 4), np.float32), metric="cosine")
    with pytest.raises(ValueError, match="device"):
        VectorIndex.build(base, device="tpu")  # type: ignore[arg-type]
    assert isinstance(SchemaError("x"), ValueError)


def test_cuda_without_gpu_is_a_clear_error(data) -> None:
    import faiss

    if faiss.get_num_gpus() > 0:
        index = VectorIndex.build(data[0], device="cuda")
        assert index.on_gpu
        np.testing.assert_array_equal(index.search(data[1], 5)[1], exact_knn(data[0], data[1], 5)[1])
    else:
        with pytest.raises(DeviceError, match="faiss-gpu"):
            VectorIndex.build(data[0], device="cuda")
        assert not VectorIndex.build(data[0], device="auto").on_gpu


# ----------------------------------------------------------------------- store
def test_from_store_pins_version(tmp_path: Path, data) -> None:
    base, queries = data
    store = Store(tmp_path / "ws")
    ids = [f"f{i:04d}" for i in range(len(base))]
    v1 = store.write_vectors("emb", ids, base, metadata={"embedder": "test"})
    store.write_vectors("emb", ["extra"], np.full((1, 16), 100.0, np.float32))
    index = VectorIndex.from_store(store, "emb", version=v1, metric="l2", device="cpu")
    assert index.ntotal == len(base) and index.source == {"table": "emb", "version": v1}
    assert list(index.ids) == ids
    np.testing.assert_array_equal(index.search(queries, 5)[1], exact_knn(base, queries, 5)[1])
    latest = VectorIndex.from_store(store, "emb", device="cpu")
    assert latest.ntotal == len(base) + 1 and latest.source["version"] == store.version("emb")
