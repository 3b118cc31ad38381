"""Grouping (FPS, kNN), tokenizer and transformer layers against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedders import EmbedderError
from embedders.layers.grouping import (
    PointGrouper,
    farthest_point_sample,
    gather_points,
    knn_group,
    knn_indices,
    list_fps_backends,
    register_fps_backend,
)
from embedders.layers.tokenizer import PatchTokenizer
from embedders.layers.transformer import Attention, CrossAttention, ReconBlock

# ----------------------------------------------------------------------------- references


def naive_fps(points: np.ndarray, m: int) -> list[int]:
    """Literal transcription of the CUDA kernel loop (single thread), float32 arithmetic."""
    pts = points.astype(np.float32)
    n = len(pts)
    temp = [np.float32(1e10)] * n
    chosen = [0]
    old = 0
    for _ in range(1, m):
        best, besti = -1.0, 0
        x1, y1, z1 = pts[old]
        for k in range(n):
            x2, y2, z2 = pts[k]
            mag = x2 * x2 + y2 * y2 + z2 * z2
            if float(mag) <= 1e-3:
                continue
            d = (x2 - x1) * (x2 - x1) + (y2 - y1) * (y2 - y1) + (z2 - z1) * (z2 - z1)
            d2 = min(d, temp[k])
            temp[k] = d2
            if d2 > best:
                best, besti = d2, k
        old = besti
        chosen.append(besti)
    return chosen


def brute_knn(points: np.ndarray, centers: np.ndarray, k: int) -> np.ndarray:
    """k nearest by (distance, index), distances as float32 coordinate differences."""
    out = []
    for center in centers:
        diff = points.astype(np.float32) - center.astype(np.float32)
        dist = diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1] + diff[:, 2] * diff[:, 2]
        out.append(np.argsort(dist, kind="stable")[:k])
    return np.stack(out)


# ----------------------------------------------------------------------------- FPS


def test_fps_matches_kernel_reference_on_random_clouds() -> None:
    rng = np.random.default_rng(0)
    clouds = rng.normal(size=(3, 150, 3)).astype(np.float32)
    got = farthest_point_sample(torch.from_numpy(clouds), 40)
    assert got.dtype == torch.long and got.shape == (3, 40)
    for b in range(3):
        assert got[b].tolist() == naive_fps(clouds[b], 40)


def test_fps_ties_go_to_lowest_index() -> None:
    # Integer grid: many exactly equal distances; shifted so no point is near the origin.
    grid = np.stack(np.meshgrid(np.arange(5), np.arange(4), np.arange(3), indexing="ij"), -1)
    points = (grid.reshape(-1, 3) + np.array([3, 3, 3])).astype(np.float32)
    points = np.concatenate([points, points[:7]])  # exact duplicates too
    got = farthest_point_sample(torch.from_numpy(points)[None], 30)[0].tolist()
    assert got == naive_fps(points, 30)
    assert len(set(got)) == 30


def test_fps_never_picks_near_zero_points() -> None:
    rng = np.random.default_rng(1)
    far = rng.uniform(0.5, 1.0, size=(40, 3)) * rng.choice([-1, 1], size=(40, 3))
    near = np.array([[0.0, 0.0, 0.0], [0.03, 0.0, 0.0], [0.0, 0.018, 0.018], [0.02, -0.02, 0.01]])
    points = np.concatenate([near[:1], far[:20], near[1:], far[20:]]).astype(np.float32)
    assert (np.sum(near[1:] ** 2, axis=1) <= 1e-3).all()
    got = farthest_point_sample(torch.from_numpy(points)[None], 44)[0].tolist()
    assert got == naive_fps(points, 44)
    near_rows = {21, 22, 23}
    assert got[0] == 0 and not near_rows & set(got)
    # A point just outside the 1e-3 ball can be picked.
    edge = np.concatenate(
        [points[:1], np.array([[0.0325, 0.0, 0.0], [0.03, 0.0, 0.0]], np.float32)]
    )
    assert (
        farthest_point_sample(torch.from_numpy(edge)[None], 3)[0].tolist()
        == naive_fps(edge, 3)
        == [0, 1, 1]
    )


def test_fps_all_points_near_zero_returns_index_zero() -> None:
    points = np.full((10, 3), 0.01, dtype=np.float32)
    got = farthest_point_sample(torch.from_numpy(points)[None], 5)[0].tolist()
    assert got == naive_fps(points, 5) == [0, 0, 0, 0, 0]


def test_fps_more_samples_than_points_matches_reference() -> None:
    points = np.random.default_rng(2).normal(size=(6, 3)).astype(np.float32) + 2
    got = farthest_point_sample(torch.from_numpy(points)[None], 9)[0].tolist()
    assert got == naive_fps(points, 9)


def test_fps_bad_arguments() -> None:
    with pytest.raises(EmbedderError, match=r"\(B, N, 3\)"):
        farthest_point_sample(torch.zeros(10, 3), 2)
    with pytest.raises(EmbedderError, match="positive integer"):
        farthest_point_sample(torch.zeros(1, 10, 3), 0)
    with pytest.raises(EmbedderError, match="unknown FPS backend 'nope'; registered: .*torch"):
        farthest_point_sample(torch.zeros(1, 10, 3), 2, backend="nope")


def test_fps_backend_registry_dispatches() -> None:
    calls = []

    def recording_backend(xyz: torch.Tensor, m: int) -> torch.Tensor:
        calls.append(m)
        return farthest_point_sample(xyz, m, backend="torch")

    register_fps_backend("recording", recording_backend)
    assert "recording" in list_fps_backends()
    points = torch.randn(1, 20, 3)
    out = farthest_point_sample(points, 4, backend="recording")
    assert calls == [4]
    assert torch.equal(out, farthest_point_sample(points, 4))


# ----------------------------------------------------------------------------- kNN


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_knn_matches_brute_force_random(chunk_size: int | None) -> None:
    rng = np.random.default_rng(3)
    points = rng.normal(size=(2, 120, 3)).astype(np.float32)
    centers = points[:, [0, 5, 17, 33, 90]]
    got = knn_indices(torch.from_numpy(points), torch.from_numpy(centers), 9, chunk_size=chunk_size)
    assert got.shape == (2, 5, 9)
    for b in range(2):
        np.testing.assert_array_equal(got[b].numpy(), brute_knn(points[b], centers[b], 9))


def test_knn_ties_and_duplicates_go_to_lowest_index() -> None:
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(4), np.arange(2), indexing="ij"), -1)
    points = grid.reshape(-1, 3).astype(np.float32)
    points = np.concatenate([points, points[::3]])  # duplicates: exact ties
    centers = points[[0, 5, 12, 20]] + np.float32(0.0)
    got = knn_indices(torch.from_numpy(points)[None], torch.from_numpy(centers)[None], 7)[0].numpy()
    np.testing.assert_array_equal(got, brute_knn(points, centers, 7))


def test_knn_group_is_centred_gather() -> None:
    rng = np.random.default_rng(4)
    points = torch.from_numpy(rng.normal(size=(2, 64, 3)).astype(np.float32))
    centers = points[:, :6] * 0.5
    groups = knn_group(points, centers, 5)
    idx = knn_indices(points, centers, 5)
    assert groups.shape == (2, 6, 5, 3)
    for b in range(2):
        for g in range(6):
            expected = points[b, idx[b, g]] - centers[b, g]
            assert torch.equal(groups[b, g], expected)


def test_knn_bad_k_names_limit() -> None:
    points = torch.zeros(1, 5, 3)
    with pytest.raises(EmbedderError, match=r"k must be an integer in \[1, 5\]"):
        knn_indices(points, points[:, :2], 6)
    with pytest.raises(EmbedderError, match="same batch size"):
        knn_indices(points, torch.zeros(2, 2, 3), 2)


def test_point_grouper_uses_fps_centres() -> None:
    points = torch.from_numpy(np.random.default_rng(5).normal(size=(2, 80, 3)).astype(np.float32))
    neighbourhoods, centers = PointGrouper(num_group=8, group_size=6)(points)
    assert neighbourhoods.shape == (2, 8, 6, 3) and centers.shape == (2, 8, 3)
    assert torch.equal(centers, gather_points(points, farthest_point_sample(points, 8)))
    # Each centre is its own nearest neighbour.
    assert torch.equal(neighbourhoods[:, :, 0], torch.zeros(2, 8, 3))


# ----------------------------------------------------------------------------- tokenizer, attention


def test_tokenizer_chunking_does_not_change_tokens() -> None:
    torch.manual_seed(0)
    tokenizer = PatchTokenizer(24, patches_per_chunk=1000).eval()
    patches = torch.randn(2, 9, 8, 3)
    whole = tokenizer(patches)
    tokenizer.patches_per_chunk = 4
    chunked = tokenizer(patches)
    assert whole.shape == (2, 9, 24)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)
    # Permuting points inside a patch does not change its token (max pooling).
    torch.testing.assert_close(
        tokenizer(patches[:, :, torch.randperm(8)]), whole, rtol=0, atol=1e-5
    )


def _reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    scale = q.shape[-1] ** -0.5
    weights = ((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1)
    return weights @ v


def test_attention_matches_explicit_formula() -> None:
    torch.manual_seed(1)
    attention = Attention(24, 4)
    x = torch.randn(2, 11, 24)
    qkv = attention.qkv(x).reshape(2, 11, 3, 4, 6).permute(2, 0, 3, 1, 4)
    expected = attention.proj(
        _reference_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(2, 11, 24)
    )
    torch.testing.assert_close(attention(x), expected, rtol=1e-5, atol=1e-6)


def test_cross_attention_matches_explicit_formula() -> None:
    torch.manual_seed(2)
    attention = CrossAttention(24, 3)
    x, y = torch.randn(2, 3, 24), torch.randn(2, 10, 24)
    kv = attention.kv(y).reshape(2, 10, 2, 3, 8).permute(2, 0, 3, 1, 4)
    q = attention.q(x).reshape(2, 3, 3, 8).transpose(1, 2)
    expected = attention.proj(
        _reference_attention(q, kv[0], kv[1]).transpose(1, 2).reshape(2, 3, 24)
    )
    torch.testing.assert_close(attention(x, y), expected, rtol=1e-5, atol=1e-6)


def test_recon_block_matches_official_update_rule() -> None:
    torch.manual_seed(3)
    block = ReconBlock(24, 4)
    for parameter in block.parameters():  # non-trivial norms, so the rule matters
        torch.nn.init.normal_(parameter, std=0.3)
    x = torch.randn(2, 3 + 10, 24)
    # ReCon models/transformer.py Block.forward (with_contrast=True), written out.
    cls, vis = block.norm1_contrast(x[:, :3]), block.norm1(x[:, 3:])
    cls = cls + block.attn_contrast(cls, vis)
    vis = vis + block.attn(vis)
    cls, vis = block.norm2_contrast(cls), block.norm2(vis)
    cls = cls + block.mlp_contrast(cls)
    vis = vis + block.mlp(vis)
    torch.testing.assert_close(block(x), torch.cat([cls, vis], 1), rtol=0, atol=0)
    # Query tokens do not influence patch tokens.
    y = x.clone()
    y[:, :3] = torch.randn(2, 3, 24)
    torch.testing.assert_close(block(y)[:, 3:], block(x)[:, 3:], rtol=0, atol=0)
