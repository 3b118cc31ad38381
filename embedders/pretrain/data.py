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
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from embedders.errors import EmbedderError

__all__ = [
    "Augmentation",
    "ChunkedClouds",
    "CloudDataset",
    "StepBatchSampler",
    "TemporalNeighbours",
    "augment_cloud",
]

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


class ChunkedClouds:
    """Read-only ``(F, P, 3)`` clouds stored as ``.npy`` chunk files, memory-mapped on demand.

    Quacks like the ndarray :class:`CloudDataset` needs (``shape``, ``ndim``, ``len``, integer
    indexing), so pretraining never holds the whole pool in memory: a frame is read from its
    chunk's memory map when a batch needs it (forked DataLoader workers share the maps; a pickled
    copy carries only the file list and reopens them).

    Parameters
    ----------
    paths : sequence of path
        Chunk files in frame order, each ``(n_i, P, 3)`` float32 with the same ``P``.

    Notes
    -----
    Memory O(number of chunks) plus the pages the OS caches; indexing O(log chunks + P).
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.paths = [str(path) for path in paths]
        sizes, width = [], None
        for path in self.paths:
            part = np.load(path, mmap_mode="r")
            if part.ndim != 3 or part.shape[2] != 3 or part.dtype != np.float32:
                raise EmbedderError(
                    f"cloud chunk {path} must be (n, P, 3) float32, got {part.shape} {part.dtype}"
                )
            if width is not None and part.shape[1] != width:
                raise EmbedderError(f"cloud chunk {path} has {part.shape[1]} points, not {width}")
            width = part.shape[1]
            sizes.append(part.shape[0])
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self.shape = (int(self.offsets[-1]), int(width or 0), 3)
        self.ndim = 3
        self.dtype = np.dtype(np.float32)
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        index = int(index)
        if not 0 <= index < self.shape[0]:
            raise IndexError(f"frame {index} out of range [0, {self.shape[0]})")
        chunk = int(np.searchsorted(self.offsets, index, side="right")) - 1
        part = self._maps.get(chunk)
        if part is None:
            part = self._maps[chunk] = np.load(self.paths[chunk], mmap_mode="r")
        return part[index - int(self.offsets[chunk])]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": {}}


class TemporalNeighbours:
    """For every frame, the other frames of its scene within ``+- window`` frame indices.

    The positives of the temporal contrastive term (``[loss] contrast_pairs = "temporal"``): in a
    driving log, frames a few tenths of a second apart show the same place from a slightly moved
    sensor, with moving actors displaced -- natural views of one scene (as in STRL, Huang et al.,
    ICCV 2021). Uses only the log's own ``scene`` and ``frame_index``; no labels.

    Parameters
    ----------
    scenes : sequence of str or None
        Scene (drive) of each frame; None or "" makes a frame a scene of its own (its only
        positive is then an augmentation of itself).
    frame_indices : sequence of int
        Position of each frame in its scene.
    window : int
        Largest frame-index distance of a positive.

    Notes
    -----
    Built in O(F log F) time, O(F) memory (frames sorted by ``(scene, frame_index)``; the
    candidates of a frame are one contiguous run of that order). :meth:`draw` is O(1).
    """

    def __init__(self, scenes, frame_indices, window: int) -> None:
        frames = np.asarray(frame_indices, dtype=np.int64)
        if frames.ndim != 1 or len(frames) != len(scenes):
            raise EmbedderError(
                f"scenes ({len(scenes)}) and frame_indices ({frames.shape}) must be 1-d and of "
                "equal length"
            )
        if window < 1:
            raise EmbedderError(f"window={window} must be >= 1")
        names = [
            str(scene) if scene not in (None, "") else f"\0frame-{row}"
            for row, scene in enumerate(scenes)
        ]
        _, codes = np.unique(np.array(names, dtype=object), return_inverse=True)
        shifted = frames - (frames.min() if len(frames) else 0) + window
        if len(frames) and shifted.max() + window >= 2**31:
            raise EmbedderError("frame_indices span more than 2**31 - window; renumber the frames")
        keys = (codes.astype(np.int64) << 32) + shifted
        self.order = np.argsort(keys, kind="stable")
        sorted_keys = keys[self.order]
        self.start = np.searchsorted(sorted_keys, keys - window, side="left")
        self.stop = np.searchsorted(sorted_keys, keys + window, side="right")
        self.position = np.empty(len(keys), dtype=np.int64)
        self.position[self.order] = np.arange(len(keys))
        self.window = int(window)

    def __len__(self) -> int:
        return int(len(self.order))

    def candidates(self, index: int) -> np.ndarray:
        """Frame numbers of the positives of ``index`` (itself excluded), ascending by position."""
        run = self.order[self.start[index] : self.stop[index]]
        return run[run != index]

    def draw(self, index: int, rng: np.random.Generator) -> int:
        """One positive of frame ``index`` drawn uniformly with ``rng`` (``index`` if none)."""
        count = int(self.stop[index] - self.start[index]) - 1
        if count <= 0:
            return int(index)
        position = int(self.start[index]) + int(rng.integers(count))
        if position >= self.position[index]:
            position += 1
        return int(self.order[position])


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
    neighbours : TemporalNeighbours, optional
        When given, views after the first are drawn from a temporal neighbour of the frame
        (another frame of its scene) instead of the frame itself.

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
        neighbours: TemporalNeighbours | None = None,
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
        if neighbours is not None and len(neighbours) != clouds.shape[0]:
            raise EmbedderError(
                f"neighbours cover {len(neighbours)} frames, clouds {clouds.shape[0]}"
            )
        self.clouds = clouds
        self.num_points = int(num_points)
        self.teacher = teacher
        self.augment = augment
        self.views = int(views)
        self.neighbours = neighbours

    def __len__(self) -> int:
        return int(self.clouds.shape[0])

    def __getitem__(self, item: Item) -> dict[str, torch.Tensor]:
        index, seed, step, slot = item
        out = np.empty((self.views, self.num_points, 3), dtype=np.float32)
        for view in range(self.views):
            rng = np.random.default_rng([seed, step, slot, view])
            source = index
            if view > 0 and self.neighbours is not None:
                source = self.neighbours.draw(index, rng)
            cloud = np.asarray(self.clouds[source], dtype=np.float32)
            if self.augment is None:
                out[view] = cloud[: self.num_points]
                continue
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
