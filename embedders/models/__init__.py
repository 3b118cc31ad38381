"""Embedding models: ReCon point encoders and the parameter-free ``bev-hist`` baseline."""

from __future__ import annotations

from embedders.models.bev import BevHistEmbedder, bev_hist
from embedders.models.recon import (
    ReconConfig,
    ReconEmbedder,
    ReconEncoder,
    pool_features,
    recon_base,
    recon_small,
    recon_tiny,
)

__all__ = [
    "BevHistEmbedder",
    "ReconConfig",
    "ReconEmbedder",
    "ReconEncoder",
    "bev_hist",
    "pool_features",
    "recon_base",
    "recon_small",
    "recon_tiny",
]
