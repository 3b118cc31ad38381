"""ReCon-style self-supervised pretraining of the point encoder on a pool of scenes (pure torch).

* :mod:`.config` — the TOML config (every key documented, with defaults);
* :mod:`.model` — :class:`ReconPretrainModel`: masked point modelling (Chamfer-L2), cross-modal
  regression of the ``img`` query onto a frozen image teacher, optional cls-token InfoNCE;
* :mod:`.data` — dataset over preprocessed clouds, augmentations, seeded step batches;
* :mod:`.trainer` — :func:`train`: AdamW + cosine, atomic checkpoints, resume, loss log;
* :mod:`.chamfer`, :mod:`.masking` — the Chamfer distance and the patch masks.

Knows nothing of :mod:`curate` or :mod:`index`; :mod:`curate.pretraining` feeds it frames.
"""

from __future__ import annotations

from embedders.pretrain.chamfer import chamfer_l2
from embedders.pretrain.config import PretrainConfig, PretrainConfigError, load_config
from embedders.pretrain.data import Augmentation, CloudDataset, StepBatchSampler
from embedders.pretrain.masking import block_mask, make_mask, random_mask
from embedders.pretrain.model import ReconPretrainModel, build_pretrain_model
from embedders.pretrain.trainer import (
    LAST_CHECKPOINT,
    LOSS_LOG,
    TrainResult,
    build_model_for,
    checkpoint_name,
    learning_rate,
    step_generator,
    train,
)

__all__ = [
    "Augmentation",
    "CloudDataset",
    "LAST_CHECKPOINT",
    "LOSS_LOG",
    "PretrainConfig",
    "PretrainConfigError",
    "ReconPretrainModel",
    "StepBatchSampler",
    "TrainResult",
    "block_mask",
    "build_model_for",
    "build_pretrain_model",
    "chamfer_l2",
    "checkpoint_name",
    "learning_rate",
    "load_config",
    "make_mask",
    "random_mask",
    "step_generator",
    "train",
]
