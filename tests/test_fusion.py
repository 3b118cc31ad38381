"""Fused frame vectors against a numpy reference; metadata, chunking and error cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

import curate
from curate import _tables as T
from curate.errors import InvalidInputError, NotFoundError
from curate.fusion import fuse_embeddings


def _reference(blocks: list[np.ndarray], weights: list[float], method: str) -> np.ndarray:
    parts = []
    for block, weight in zip(blocks, weights):
        block = block.astype(np.float64)
        parts.append(weight * block / np.linalg.norm(block, axis=1, keepdims=True))
    if method == "concat":
        return np.hstack(parts)
    return sum(parts) / sum(weights)


@pytest.fixture
def two(ws: curate.Workspace) -> curate.Workspace:
    """The shared workspace plus a second, differently configured bev-hist embedding."""
    ws.embed("bev-hist", name="bev-coarse", grid=8, progress=False, num_workers=0)
    return ws


def test_concat_fusion_equals_numpy_reference_and_records_metadata(two: curate.Workspace) -> None:
    report = two.fuse(["bev-hist", "bev-coarse"], name="fused", weights=[2.0, 0.5])
    ids, a = two.vectors("bev-hist")
    _, b = two.vectors("bev-coarse", ids=list(ids))
    fused_ids, fused = two.vectors("fused", ids=list(ids))
    assert fused.shape == (len(ids), a.shape[1] + b.shape[1]) == (len(ids), report.dim)
    np.testing.assert_allclose(fused, _reference([a, b], [2.0, 0.5], "concat"), rtol=1e-5, atol=1e-6)
    assert report.embedder == "fusion" and report.total == len(ids) == two.count()
    meta = two.embedding_info("fused")
    assert meta["method"] == "concat" and meta["embedder"] == "fusion"
    sources = json.loads(meta["sources"])
    assert [s["embedding"] for s in sources] == ["bev-hist", "bev-coarse"]
    assert [s["weight"] for s in sources] == [2.0, 0.5]
    for source in sources:
        info = two.embedding_info(source["embedding"])
        assert source["weights_sha256"] == info["weights_sha256"]
        assert source["version"] == two.store.version(T.embedding_table(source["embedding"]))
        assert source["dim"] == int(info["dim"])
    assert json.loads(meta["config"]) == {
        "method": "concat", "sources": ["bev-hist", "bev-coarse"], "weights": [2.0, 0.5]
    }
    assert len(meta["weights_sha256"]) == 64
    # The fused embedding is selectable like any other.
    selection = two.select("kcenter", 5, embedding="fused")
    assert len(selection.ids) == 5


def test_mean_fusion_chunked_equals_reference(two: curate.Workspace) -> None:
    two.embed("bev-hist", name="bev-copy", progress=False, num_workers=0, z_max=2.0)
    report = fuse_embeddings(
        two.store, ["bev-hist", "bev-copy"], name="avg", method="mean", chunk_size=7
    )
    ids, a = two.vectors("bev-hist")
    _, b = two.vectors("bev-copy", ids=list(ids))
    _, fused = two.vectors("avg", ids=list(ids))
    np.testing.assert_allclose(fused, _reference([a, b], [1.0, 1.0], "mean"), rtol=1e-5, atol=1e-6)
    assert report.dim == a.shape[1] and report.total == len(ids)
    # Fusing again replaces the table in a new version (same content).
    again = two.fuse(["bev-hist", "bev-copy"], name="avg", method="mean")
    assert again.version > report.version
    np.testing.assert_array_equal(two.vectors("avg", ids=list(ids))[1], fused)


def test_frames_missing_from_a_source_raise_and_write_nothing(two: curate.Workspace) -> None:
    table = T.embedding_table("bev-coarse")
    gone = sorted(two.store.ids(table))[:3]
    two.store.delete(table, "id IN (" + ", ".join(f"'{i}'" for i in gone) + ")")
    with pytest.raises(NotFoundError, match=r"'bev-coarse' has no vector for 3 of 72 frames") as err:
        two.fuse(["bev-hist", "bev-coarse"], name="fused")
    assert gone[0] in str(err.value)
    assert "fused" not in two.embeddings()


def test_bad_fusion_requests(two: curate.Workspace) -> None:
    with pytest.raises(InvalidInputError, match="equal dimension"):
        two.fuse(["bev-hist", "bev-coarse"], method="mean")
    with pytest.raises(NotFoundError, match="no embedding named 'nope'"):
        two.fuse(["bev-hist", "nope"])
    with pytest.raises(InvalidInputError, match="one weight per source"):
        two.fuse(["bev-hist", "bev-coarse"], weights=[1.0])
    with pytest.raises(InvalidInputError, match="weight 1 must be a finite number > 0"):
        two.fuse(["bev-hist", "bev-coarse"], weights=[1.0, -1.0])
    with pytest.raises(InvalidInputError, match="cannot overwrite its source"):
        two.fuse(["bev-hist", "bev-coarse"], name="bev-hist")
    with pytest.raises(InvalidInputError, match="repeat"):
        two.fuse(["bev-hist", "bev-hist"])
    with pytest.raises(InvalidInputError, match="unknown fusion method 'max'"):
        two.fuse(["bev-hist", "bev-coarse"], method="max")
    assert sorted(two.embeddings()) == ["bev-coarse", "bev-hist"]
