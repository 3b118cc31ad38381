"""SimCLR training of the ``image-ssl`` backbone: seeded, atomic checkpoints, resume, loss log.

:func:`train` runs an :class:`~embedders.pretrain_image.config.ImagePretrainConfig` on a uint8
``(N, H, W, 3)`` image array and writes into ``run_dir``::

    run_dir/step-0050.pt, step-0100.pt, ...   every ``checkpoint_every`` steps and at the end
    run_dir/last.pt                           the latest of them (same content)
    run_dir/losses.jsonl                      one line per step: step, lr, loss, top1

The objective is SimCLR's NT-Xent (InfoNCE): each image of a batch gives two augmented views
(:func:`~embedders.pretrain_image.augment.augment`); backbone + projection head
(``Linear -> BN -> ReLU -> Linear``) map them to L2-normalised vectors, and each view must pick
out its partner among the other ``2B - 1`` views at temperature ``tau``. ``top1`` is the fraction
of views whose most similar other view is their partner. The similarity matrix is
``(2B, 2B)`` per batch: memory O(B^2 + B * H * W * width), never O(N^2).

A checkpoint is ``{'base_model': state_dict ('backbone.*', 'projector.*'), 'optimizer', 'step',
'config', 'rng_states', 'image_ssl': {'width', 'image_size', 'normalization'}, 'curate': extra}``;
``create_embedder("image-ssl", checkpoint=run_dir / "last.pt")`` loads the backbone. Files are
written to a temporary name, fsync-ed and renamed: a kill never leaves a torn checkpoint.

Determinism and resume: step ``t`` draws its batch (``batch_size`` distinct images) and its
augmentations from generators seeded by ``(seed, t)``, and its learning rate from ``t`` alone.
When ``run_dir/last.pt`` exists the run continues from it (weights, BatchNorm statistics,
optimizer), so an interrupted and resumed run ends with the same weights as an uninterrupted one
(same device and thread count). Loss lines after the last checkpoint are dropped and recomputed,
so the log holds exactly one line per step.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from embedders.base import resolve_device
from embedders.errors import EmbedderError
from embedders.models.image_ssl import NORMALIZATION, SmallConvNet, build_backbone
from embedders.pretrain_image.augment import augment
from embedders.pretrain_image.config import ImagePretrainConfig
from embedders.run_files import (
    LAST_CHECKPOINT,
    LOSS_LOG,
    check_resumable,
    read_loss_log,
    rewrite_loss_log,
    save_checkpoint,
)

__all__ = [
    "ImageSSLModel",
    "ImageTrainResult",
    "LAST_CHECKPOINT",
    "LOSS_LOG",
    "batch_indices",
    "build_model",
    "contrastive_loss",
    "learning_rate",
    "nt_xent",
    "train",
    "view_generator",
]

logger = logging.getLogger(__name__)

#: Config keys that may change between an interrupted run and its resume.
RESUMABLE_CHANGES = ("train.device", "train.threads")


class ImageSSLModel(nn.Module):
    """Backbone + SimCLR projection head. ``forward(x) -> (B, proj_dim)`` (not normalised)."""

    def __init__(self, backbone: SmallConvNet, proj_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        dim = backbone.dim
        self.projector = nn.Sequential(
            nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
            nn.Linear(dim, proj_dim),
        )

    def forward(self, images: Tensor) -> Tensor:
        """Projected features of normalised images ``(B, 3, H, W)``."""
        return self.projector(self.backbone(images))


@dataclass
class ImageTrainResult:
    """What :func:`train` did (``final_losses``: mean of each logged term over the last 20 steps)."""

    run_dir: Path
    checkpoint: Path
    steps: int
    start_step: int
    final_losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def build_model(config: ImagePretrainConfig) -> ImageSSLModel:
    """The initial model of ``config`` (deterministic for its seed; global RNG untouched)."""
    backbone = build_backbone(config.model.width, seed=config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 1)
        return ImageSSLModel(backbone, config.model.proj_dim)


def learning_rate(step: int, config: ImagePretrainConfig) -> float:
    """Learning rate of 0-based ``step``: linear warm-up, then cosine from ``lr`` to ``min_lr``."""
    train = config.train
    if step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    span = max(1, train.steps - train.warmup_steps)
    progress = min(1.0, (step - train.warmup_steps) / span)
    return train.min_lr + 0.5 * (train.lr - train.min_lr) * (1.0 + math.cos(math.pi * progress))


def _seed_of(seed: int, step: int, stream: int) -> int:
    state = np.random.SeedSequence([int(seed), int(step), stream]).generate_state(1, np.uint64)
    return int(state[0]) & ((1 << 63) - 1)


def view_generator(seed: int, step: int) -> torch.Generator:
    """CPU generator of the augmentations of ``step``."""
    return torch.Generator().manual_seed(_seed_of(seed, step, 0x76696577))


def batch_indices(count: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The ``batch_size`` distinct image indices of ``step`` (seeded by ``(seed, step)``)."""
    rng = np.random.default_rng(_seed_of(seed, step, 0x62617463))
    return np.sort(rng.choice(count, size=batch_size, replace=False))


def nt_xent(first: Tensor, second: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """SimCLR's NT-Xent loss of paired projections ``(B, D)`` and the partner top-1 rate.

    Row ``i`` of ``first`` and row ``i`` of ``second`` are positives; the other ``2B - 2`` views
    are negatives. Memory O(B^2).
    """
    views = F.normalize(torch.cat([first, second]), dim=1)
    batch = first.shape[0]
    logits = views @ views.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(batch, 2 * batch), torch.arange(0, batch)]).to(views.device)
    loss = F.cross_entropy(logits, targets)
    top1 = (logits.argmax(dim=1) == targets).float().mean()
    return loss, top1


def contrastive_loss(
    model: ImageSSLModel,
    images: Tensor,
    config: ImagePretrainConfig,
    generator: torch.Generator,
    device: str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Loss and top-1 of one batch of uint8 ``(B, H, W, 3)`` images, two views drawn from ``generator``."""
    first = augment(images, config.augment, generator).to(device)
    second = augment(images, config.augment, generator).to(device)
    projected = model(torch.cat([first, second]))
    return nt_xent(projected[: len(images)], projected[len(images):], config.loss.temperature)


def _load_resume(path: Path, config: ImagePretrainConfig, model: nn.Module,
                 optimizer: torch.optim.Optimizer, device: str) -> int:
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        saved_config = state.get("config", {})
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise EmbedderError(
            f"cannot resume from {path}: the file cannot be read ({exc}); delete it (the "
            "step-XXXX.pt files hold earlier checkpoints) or use another run name"
        ) from exc
    check_resumable(saved_config, config.to_dict(), ImagePretrainConfig().to_dict(), path,
                    RESUMABLE_CHANGES)
    model.load_state_dict(state["base_model"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


def _validate_images(images: Any, config: ImagePretrainConfig) -> None:
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[3] != 3:
        shape = getattr(images, "shape", None)
        raise EmbedderError(f"images must be a uint8 (N, H, W, 3) array, got shape {shape}")
    if images.dtype != np.uint8:
        raise EmbedderError(f"images must be uint8 (0..255 RGB), got {images.dtype}")
    if tuple(images.shape[1:3]) != tuple(config.data.image_size):
        raise EmbedderError(
            f"images are {images.shape[1]}x{images.shape[2]} but [data] image_size is "
            f"{list(config.data.image_size)}; resize them (embedders.pretrain_image.load_images)"
        )
    if len(images) < config.train.batch_size:
        raise EmbedderError(
            f"image pretraining needs at least batch_size={config.train.batch_size} images, "
            f"got {len(images)}; lower [train] batch_size or add images"
        )


def train(
    config: ImagePretrainConfig,
    images: np.ndarray,
    run_dir: str | os.PathLike[str],
    *,
    progress: bool | None | Callable[[int, int | None, str], None] = None,
    extra: dict[str, Any] | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> ImageTrainResult:
    """Train (or resume training) the ``image-ssl`` backbone with SimCLR.

    Parameters
    ----------
    config : ImagePretrainConfig
    images : numpy.ndarray
        uint8 ``(N, H, W, 3)`` at ``config.data.image_size`` (see :func:`load_images`).
    run_dir : path
        Output folder (created); resumed from when it holds ``last.pt``.
    progress : bool or callable, optional
        tqdm bar (default: when stderr is a terminal); a callable is called as
        ``progress(step, steps, "step")`` after every step instead.
    extra : dict, optional
        Plain values stored under ``'curate'`` in every checkpoint.
    on_step : callable, optional
        Called as ``on_step(step, row)`` after each step's log line is written (monitoring).

    Returns
    -------
    ImageTrainResult

    Raises
    ------
    EmbedderError
        Bad images (shape, dtype, fewer than a batch), an unreadable ``last.pt``, a resume with
        another config, or a non-finite loss.

    Notes
    -----
    Time O(steps * batch * H * W * width^2); memory O(N * H * W) for the images plus
    O(batch * H * W * width) activations.
    """
    started = time.perf_counter()
    _validate_images(images, config)
    run_path = Path(run_dir)
    run_path.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.train.device)
    previous_threads = torch.get_num_threads()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    try:
        model = build_model(config).to(device)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
        )
        last = run_path / LAST_CHECKPOINT
        start_step = _load_resume(last, config, model, optimizer, device) if last.exists() else 0
        if start_step:
            logger.info("resuming %s from step %d", run_path, start_step)
        log_path = run_path / LOSS_LOG
        rows = read_loss_log(log_path, start_step)
        rewrite_loss_log(log_path, rows)
        pool = torch.from_numpy(images)
        settings = {
            "width": config.model.width,
            "image_size": list(config.data.image_size),
            "normalization": NORMALIZATION,
        }
        report = progress if callable(progress) else None
        show = False if report is not None else (sys.stderr.isatty() if progress is None else bool(progress))
        model.train()
        checkpoint = last
        step = start_step
        with tqdm(total=config.train.steps, initial=start_step, desc=f"pretrain-image {config.name}",
                  unit="step", disable=not show, dynamic_ncols=True) as bar, log_path.open("a") as log:
            while step < config.train.steps:
                lr = learning_rate(step, config)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                chosen = batch_indices(len(pool), config.train.batch_size, config.seed, step)
                loss, top1 = contrastive_loss(
                    model, pool[torch.from_numpy(chosen)], config, view_generator(config.seed, step),
                    device,
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                row = {"step": step, "lr": lr, "loss": float(loss.detach()), "top1": float(top1)}
                if not math.isfinite(row["loss"]):
                    raise EmbedderError(
                        f"non-finite loss at step {step}; lower [train] lr or raise [loss] temperature"
                    )
                log.write(json.dumps(row) + "\n")
                log.flush()
                rows.append(row)
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.3f}", top1=f"{row['top1']:.2f}")
                if report is not None:
                    report(step, config.train.steps, "step")
                if on_step is not None:
                    on_step(step, row)
                if step % config.train.checkpoint_every == 0 or step == config.train.steps:
                    checkpoint = save_checkpoint(run_path, {
                        "base_model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                        "optimizer": optimizer.state_dict(),
                        "step": step,
                        "config": config.to_dict(),
                        "rng_states": {"torch": torch.get_rng_state()},
                        "image_ssl": settings,
                        "curate": dict(extra or {}),
                    }, step)
    finally:
        torch.set_num_threads(previous_threads)
    tail = rows[-20:]
    final = {key: float(np.mean([r[key] for r in tail])) for key in ("loss", "top1")} if tail else {}
    return ImageTrainResult(
        run_dir=run_path, checkpoint=checkpoint, steps=step, start_step=start_step,
        final_losses=final, seconds=time.perf_counter() - started,
    )
