"""Point-cloud embedders for curate: ReCon point encoders and hand-crafted baselines.

Pure PyTorch and numpy; knows nothing of :mod:`index` or :mod:`curate`.

>>> from embedders import create_embedder, list_embedders
>>> emb = create_embedder("bev-hist")
>>> emb.dim
528
"""

from __future__ import annotations

from embedders._registry import create_embedder, list_embedders, register_embedder
from embedders.base import Embedder, resolve_device, validate_clouds
from embedders.checkpoint import load_recon_checkpoint, save_checkpoint, state_dict_sha256
from embedders.errors import CheckpointError, EmbedderError
from embedders.models.image import image_features, load_efficientnet_lite0
from embedders.preprocess import PreprocessConfig, ScenePreprocessor

__all__ = [
    "CheckpointError",
    "Embedder",
    "EmbedderError",
    "PreprocessConfig",
    "ScenePreprocessor",
    "create_embedder",
    "image_features",
    "list_embedders",
    "load_efficientnet_lite0",
    "load_recon_checkpoint",
    "register_embedder",
    "resolve_device",
    "save_checkpoint",
    "state_dict_sha256",
    "validate_clouds",
]
