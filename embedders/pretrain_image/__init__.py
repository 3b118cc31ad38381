"""Self-supervised pretraining of the ``image-ssl`` embedder on a pool's own camera images.

SimCLR (InfoNCE between two augmented views, augmentations in torch) on a small CNN
(:class:`embedders.models.image_ssl.SmallConvNet`), seeded, with atomic checkpoints, resume after
``kill -9``, a progress bar and a loss log::

    from embedders.pretrain_image import load_image_config, load_images, train
    cfg = load_image_config({"train": {"steps": 200}})
    images = load_images(paths, cfg.data.image_size, cache_dir="cache")
    result = train(cfg, images, "runs/image-ssl")
    create_embedder("image-ssl", checkpoint=result.checkpoint)

``Workspace.pretrain_image`` / ``curate pretrain-image --config FILE`` run it on a workspace.
"""

from __future__ import annotations

from embedders.pretrain_image.augment import augment
from embedders.pretrain_image.config import (
    ImagePretrainConfig,
    ImagePretrainConfigError,
    load_image_config,
)
from embedders.pretrain_image.data import ImageReadError, load_images, read_image
from embedders.pretrain_image.trainer import (
    ImageSSLModel,
    ImageTrainResult,
    build_model,
    contrastive_loss,
    nt_xent,
    train,
)

__all__ = [
    "ImagePretrainConfig",
    "ImagePretrainConfigError",
    "ImageReadError",
    "ImageSSLModel",
    "ImageTrainResult",
    "augment",
    "build_model",
    "contrastive_loss",
    "load_image_config",
    "load_images",
    "nt_xent",
    "read_image",
    "train",
]
