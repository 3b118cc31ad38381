"""Training data for pretraining: a dataset over preprocessed clouds, augmentations, step batches.

The workspace side (:mod:`curate.pretraining`) preprocesses every frame once into a fixed-size
cloud (``oversample * num_points`` points in random order, unit-sphere scale) and caches the
frozen teacher features; this module only reads those arrays, so it needs no store.

Reproducibility and resume: nothing here uses global random state. The frame order of epoch
``e`` is ``default_rng([seed, e]).permutation(F)``; the augmentation of the item in slot ``s``
of step ``t`` (view ``v``) draws from ``default_rng([seed, t, s, v])``. So step ``t``'s batch is
a pure function of ``(seed, t)``, whatever the worker count and wherever a run was resumed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from embedders.errors import EmbedderError

__all__ = ["Augmentation", "CloudDataset", "StepBatchSampler", "augment_cloud"]

logger = logging.getLogger(__name__)

#: One dataset item: (frame index, seed, step, slot in the batch).
Item = tuple[int, int, int, int]


@dataclass(frozen=True)
class Augmentation:
    """Random transforms of a unit-sphere scene cloud (sensor frame, z up).

    Attributes
    ----------
    rotation : float
        Max absolute rotation about z, radians (small: the road direction is informative).
    flip : float
        Probability of mirroring left/right (y -> -y), a valid driving scene either way.
    scale : tuple of float
        Uniform scale range.
    shift : float
        Max absolute translation per axis, unit-sphere units.
    jitter : float
        Std of per-point Gaussian noise (clipped at 3 std), unit-sphere units.
    """

    rotation: float = math.pi / 12
    flip: float = 0.5
    scale: tuple[float, float] = (0.9, 1.1)
    shift: float = 0.02
    jitter: float = 0.002


def augment_cloud(points: np.ndarray, rng: np.random.Generator, config: Augmentation) -> np.ndarray:
    """Apply one random draw of ``config`` to ``(N, 3)`` float32 points; O(N)."""
    angle = rng.uniform(-config.rotation, config.rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    if rng.random() < config.flip:
        rotation[:, 1] *= -1.0  # mirror y after rotating
    scale = np.float32(rng.uniform(*config.scale))
    shift = rng.uniform(-config.shift, config.shift, size=3).astype(np.float32)
    noise = np.clip(
        rng.normal(0.0, config.jitter, size=points.shape), -3 * config.jitter, 3 * config.jitter
    ).astype(np.float32)
    return (points @ rotation.T * scale + shift + noise).astype(np.float32)


class CloudDataset(Dataset):
    """Map ``(frame, seed, step, slot)`` items to augmented clouds and teacher features.

    Parameters
    ----------
    clouds : numpy.ndarray
        ``(F, P, 3)`` float32 preprocessed clouds, points in random order (a memmap is fine).
    num_points : int
        Points per training cloud, ``<= P``; a random subset when augmenting, else the first.
    teacher : numpy.ndarray, optional
        ``(F, D)`` float32 frozen teacher features.
    augment : Augmentation or None
        None = no augmentation.
    views : int, default 1
        Independently augmented views per item (2 for the contrastive term).

    Notes
    -----
    An item costs O(num_points * views); memory is shared with the caller (no copy of ``clouds``).
    """

    def __init__(
        self,
        clouds: np.ndarray,
        num_points: int,
        *,
        teacher: np.ndarray | None = None,
        augment: Augmentation | None = Augmentation(),
        views: int = 1,
    ) -> None:
        if clouds.ndim != 3 or clouds.shape[2] != 3:
            raise EmbedderError(f"clouds must be (F, P, 3), got shape {clouds.shape}")
        if not 1 <= num_points <= clouds.shape[1]:
            raise EmbedderError(
                f"num_points={num_points} must be in [1, {clouds.shape[1]}] (points cached per cloud)"
            )
        if teacher is not None and (teacher.ndim != 2 or teacher.shape[0] != clouds.shape[0]):
            raise EmbedderError(
                f"teacher must be (F={clouds.shape[0]}, D), got shape {teacher.shape}"
            )
        if views < 1:
            raise EmbedderError(f"views={views} must be >= 1")
        self.clouds = clouds
        self.num_points = int(num_points)
        self.teacher = teacher
        self.augment = augment
        self.views = int(views)

    def __len__(self) -> int:
        return int(self.clouds.shape[0])

    def __getitem__(self, item: Item) -> dict[str, torch.Tensor]:
        index, seed, step, slot = item
        cloud = np.asarray(self.clouds[index], dtype=np.float32)
        out = np.empty((self.views, self.num_points, 3), dtype=np.float32)
        for view in range(self.views):
            if self.augment is None:
                out[view] = cloud[: self.num_points]
                continue
            rng = np.random.default_rng([seed, step, slot, view])
            chosen = rng.choice(cloud.shape[0], size=self.num_points, replace=False)
            out[view] = augment_cloud(cloud[chosen], rng, self.augment)
        teacher = (
            np.zeros(0, dtype=np.float32)
            if self.teacher is None
            else np.array(self.teacher[index], dtype=np.float32)
        )
        return {
            "points": torch.from_numpy(out),
            "teacher": torch.from_numpy(teacher),
            "index": torch.tensor(index, dtype=torch.long),
        }


class StepBatchSampler(Sampler[list[Item]]):
    """Yield the batches of steps ``start_step .. total_steps - 1`` (see the module docstring).

    Parameters
    ----------
    num_frames : int
    batch_size : int
        ``<= num_frames``; each epoch has ``num_frames // batch_size`` steps (the remainder of
        the permutation is dropped, so every batch is full).
    seed : int
    start_step, total_steps : int
    """

    def __init__(
        self, num_frames: int, batch_size: int, seed: int, start_step: int, total_steps: int
    ) -> None:
        if batch_size > num_frames:
            raise EmbedderError(
                f"batch_size={batch_size} exceeds the {num_frames} frames available; "
                "lower [train] batch_size or add frames"
            )
        self.num_frames = int(num_frames)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.start_step = int(start_step)
        self.total_steps = int(total_steps)
        self.steps_per_epoch = self.num_frames // self.batch_size

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def epoch_of(self, step: int) -> int:
        """Epoch that step ``step`` (0-based) belongs to."""
        return step // self.steps_per_epoch

    def batch(self, step: int) -> list[Item]:
        """Items of step ``step`` (0-based)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.num_frames)
        frames = order[position * self.batch_size : (position + 1) * self.batch_size]
        return [(int(frame), self.seed, step, slot) for slot, frame in enumerate(frames)]

    def __iter__(self) -> Iterator[list[Item]]:
        for step in range(self.start_step, self.total_steps):
            yield self.batch(step)
