"""``Workspace.search`` (FAISS, cached per table version) against the brute-force numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

import curate
from curate import search as search_module
from curate.errors import InvalidInputError, NotFoundError
from index._exact import exact_knn
from index.errors import FilterError


def _agree(ids: list[str], dists: list[float], ref_ids: list[str], ref_dists: np.ndarray, metric: str) -> None:
    """Same distances; same ids except where the reference has ties at the cut."""
    assert len(ids) == len(ref_ids)
    np.testing.assert_allclose(dists, ref_dists, rtol=1e-4, atol=1e-5)
    sign = -1.0 if metric == "ip" else 1.0
    cut = sign * ref_dists[-1]
    certain = [i for i, d in zip(ref_ids, ref_dists) if sign * d < cut - 1e-4]
    assert set(certain) <= set(ids)


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_search_by_id_matches_the_reference(ws: curate.Workspace, metric: str) -> None:
    all_ids, vecs = ws.vectors("bev-hist")
    queries = list(all_ids[[0, 7, 30]])
    k = 5
    result = ws.search("bev-hist", ids=queries, k=k, metric=metric)
    ref_d, ref_i = exact_knn(vecs, vecs[[0, 7, 30]], k + 1, metric=metric)
    for q, neighbours, rd, ri in zip(queries, result.results, ref_d, ref_i):
        assert neighbours.query == q and q not in neighbours.ids
        keep = all_ids[ri] != q
        _agree(neighbours.ids, neighbours.distances, list(all_ids[ri][keep][:k]), rd[keep][:k], metric)


def test_search_by_vector_and_include_self(ws: curate.Workspace) -> None:
    all_ids, vecs = ws.vectors("bev-hist")
    rng = np.random.default_rng(0)
    queries = vecs[:4] + rng.normal(0, 0.01, size=vecs[:4].shape).astype(np.float32)
    result = ws.search("bev-hist", vectors=queries, k=6)
    ref_d, ref_i = exact_knn(vecs, queries, 6)
    for neighbours, rd, ri in zip(result.results, ref_d, ref_i):
        assert neighbours.query is None
        _agree(neighbours.ids, neighbours.distances, list(all_ids[ri]), rd, "l2")
    with_self = ws.search("bev-hist", ids=[str(all_ids[3])], k=1, exclude_self=False)
    assert with_self.results[0].ids == [str(all_ids[3])] and with_self.results[0].distances[0] < 1e-3
    one = ws.search("bev-hist", vectors=vecs[5], k=1)  # a single (d,) vector
    assert one.results[0].ids == [str(all_ids[5])]


def test_where_filter_restricts_the_neighbours(ws: curate.Workspace) -> None:
    all_ids, vecs = ws.vectors("bev-hist")
    where = "frame_index < 10"
    allowed = set(ws.frames(where=where, columns=["id"])["id"].to_pylist())
    mask = np.isin(all_ids, list(allowed))
    sub_ids, sub_vecs = all_ids[mask], vecs[mask]
    query = str(all_ids[~mask][0])  # a query frame outside the filter
    result = ws.search("bev-hist", ids=[query], k=4, where=where)
    ref_d, ref_i = exact_knn(sub_vecs, vecs[list(all_ids).index(query)][None], 4)
    got = result.results[0]
    assert set(got.ids) <= allowed and result.samples_version == ws.store.version("samples")
    _agree(got.ids, got.distances, list(sub_ids[ref_i[0]]), ref_d[0], "l2")


def test_fewer_candidates_than_k_and_empty_filters(ws: curate.Workspace) -> None:
    n = ws.count()
    result = ws.search("bev-hist", ids=["000000"], k=n + 10)
    assert len(result.results[0].ids) == n - 1 and len(set(result.results[0].ids)) == n - 1
    empty = ws.search("bev-hist", ids=["000000"], k=3, where="frame_index < 0")
    assert empty.results[0].ids == [] and empty.results[0].distances == []


def test_cache_follows_table_versions(ws: curate.Workspace) -> None:
    search_module.clear_cache()
    ids_before = ws.search("bev-hist", ids=["000001"], k=3, where="labeled = false").results[0].ids
    ws.label([ids_before[0]])  # new samples version: the filtered index must be rebuilt
    ids_after = ws.search("bev-hist", ids=["000001"], k=3, where="labeled = false").results[0].ids
    assert ids_before[0] not in ids_after and ids_after[:2] == ids_before[1:3]
    all_ids, vecs = ws.vectors("bev-hist")
    ws.store.write_vectors("emb_bev-hist", all_ids, vecs[::-1].copy(),
                           metadata=ws.embedding_info("bev-hist"), mode="overwrite")
    moved = ws.search("bev-hist", vectors=vecs[0], k=1, exclude_self=False).results[0].ids
    assert moved == [str(all_ids[-1])]  # the new version is searched, not the cached old one
    old = ws.search("bev-hist", vectors=vecs[0], k=1, version=1).results[0].ids
    assert old == [str(all_ids[0])]


@pytest.mark.parametrize("kwargs,error,match", [
    ({}, InvalidInputError, "exactly one"),
    ({"ids": ["000000"], "vectors": [[0.0]]}, InvalidInputError, "exactly one"),
    ({"ids": ["000000"], "k": 0}, InvalidInputError, "k must be"),
    ({"ids": ["000000"], "k": True}, InvalidInputError, "k must be"),
    ({"ids": ["000000"], "metric": "hamming"}, InvalidInputError, "valid metrics"),
    ({"ids": "000000"}, InvalidInputError, "not a single string"),
    ({"ids": []}, InvalidInputError, "empty"),
    ({"vectors": [[1.0, 2.0]]}, InvalidInputError, "shape"),
    ({"vectors": [[float("nan")] * 528]}, InvalidInputError, "NaN"),
    ({"ids": ["no-such-frame"]}, NotFoundError, "no-such-frame.*curate embed"),
    ({"ids": ["000000"], "where": "nope = = 1"}, FilterError, "invalid where-filter"),
])
def test_bad_search_input_is_a_clear_error(ws: curate.Workspace, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ws.search("bev-hist", **kwargs)


def test_unknown_embedding(ws: curate.Workspace) -> None:
    with pytest.raises(NotFoundError, match="no embedding named 'nope'"):
        ws.search("nope", ids=["000000"])
