"""Building blocks of point encoders: grouping (FPS, kNN), patch tokenizer, transformer blocks."""

from __future__ import annotations

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
from embedders.layers.transformer import (
    Attention,
    CrossAttention,
    Mlp,
    ReconBlock,
    ReconTransformer,
)

__all__ = [
    "Attention",
    "CrossAttention",
    "Mlp",
    "PatchTokenizer",
    "PointGrouper",
    "ReconBlock",
    "ReconTransformer",
    "farthest_point_sample",
    "gather_points",
    "knn_group",
    "knn_indices",
    "list_fps_backends",
    "register_fps_backend",
]
