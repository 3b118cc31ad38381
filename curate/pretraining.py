"""Workspace side of self-supervised pretraining: frames from the store -> ``embedders.pretrain``.

:func:`pretrain` (also ``Workspace.pretrain`` and ``curate pretrain --config FILE``):

1. reads the config (TOML path, dict or :class:`~embedders.pretrain.config.PretrainConfig`);
   bad keys raise :class:`~curate.errors.InvalidInputError` naming the key and the valid ones;
2. picks the frames (``[data] where``, sorted by id);
3. **cloud cache**: preprocesses every frame once (crop, voxelise, ``2 * num_points`` random
   points in random order, unit sphere) into ``<workspace>/pretrain_cache/clouds-<key>/`` in
   atomically written chunks of 256 frames; ``key`` hashes the preprocessing, seed and frame ids,
   so a resumed run (or another run with the same data settings) reuses them;
4. **teacher cache**: the frozen image teacher's feature of each frame's first camera image is
   computed once and stored as the embedding table ``pretrain-teacher-<teacher>`` (upsert by id,
   written every 256 frames, with the teacher's config and weights checksum in its metadata), so
   a resumed run does not recompute it;
5. trains with :func:`embedders.pretrain.train` into ``<workspace>/checkpoints/<name>/``
   (resuming from ``last.pt`` when present). The temporal contrastive term
   (``[loss] contrast_pairs = "temporal"``) pairs each frame with another frame of its
   ``scene`` within ``contrast_window`` ``frame_index`` steps, read from the samples table. SIGTERM or SIGINT stops it cleanly: the step in
   progress finishes, its checkpoint is written, and the report says ``interrupted="SIGTERM"``;
   the same call again resumes from there.

The result is an official-layout ReCon checkpoint:
``ws.embed("recon-tiny", name="recon-tiny-ssl", checkpoint=report.checkpoint,
**report.embed_options)`` embeds the pool with it (``embed_options`` repeats the tokenization and
preprocessing used in pretraining, which is what the encoder has learned to read).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from curate import _tables as T
from curate.errors import CorruptDataError, InvalidInputError
from curate.progress import progress_bar
from curate.reports import PretrainReport
from curate.sources.pointcloud import read_points
from curate.store_queries import require_samples
from index.store import Store

if TYPE_CHECKING:  # pragma: no cover
    from embedders.pretrain.config import PretrainConfig
    from embedders.pretrain.data import ChunkedClouds

__all__ = [
    "PretrainReport",
    "Teacher",
    "TEACHERS",
    "pretrain",
    "read_config",
    "cached_clouds",
    "teacher_features",
    "teacher_table",
    "CACHE_DIR",
    "CHECKPOINT_DIR",
    "OVERSAMPLE",
]

logger = logging.getLogger(__name__)

CACHE_DIR = "pretrain_cache"
CHECKPOINT_DIR = "checkpoints"
#: Points cached per frame, as a multiple of ``num_points`` (augmentation draws a subset).
OVERSAMPLE = 2
CHUNK = 256


@dataclass(frozen=True)
class Teacher:
    """A frozen image teacher.

    Attributes
    ----------
    name : str
    dim : int
    load : callable
        ``load(image_size) -> callable(list of (H, W, 3) uint8) -> (B, dim) float32`` plus the
        weights checksum: returns ``(features_fn, weights_sha256)``.
    """

    name: str
    dim: int
    load: Callable[[Sequence[int]], tuple[Callable[[list[np.ndarray]], np.ndarray], str]]


def _load_efficientnet_lite0(
    image_size: Sequence[int],
) -> tuple[Callable[[list[np.ndarray]], np.ndarray], str]:
    from embedders.checkpoint import state_dict_sha256
    from embedders.models.image import image_features, load_efficientnet_lite0

    model = load_efficientnet_lite0()

    def features(images: list[np.ndarray]) -> np.ndarray:
        return image_features(model, images, device="auto", image_size=tuple(image_size))

    return features, state_dict_sha256(model.state_dict())


#: Image teachers by config name.
TEACHERS: dict[str, Teacher] = {
    "efficientnet-lite0": Teacher("efficientnet-lite0", 1280, _load_efficientnet_lite0),
}


def read_config(config: Any) -> PretrainConfig:
    """Parse a config (TOML path, mapping, PretrainConfig, None) into a PretrainConfig.

    Raises
    ------
    InvalidInputError
        With the message of the config error (unknown key and the valid keys, bad value, bad file).
    """
    from embedders.pretrain.config import PretrainConfigError, load_config

    try:
        cfg = load_config(config)
    except PretrainConfigError as exc:
        raise InvalidInputError(str(exc)) from exc
    if cfg.loss.image > 0 and cfg.data.teacher not in TEACHERS:
        raise InvalidInputError(
            f"pretraining config [data]: teacher={cfg.data.teacher!r} is not one of "
            f"{sorted(TEACHERS)}; or set [loss] image = 0 to train without the image teacher"
        )
    return cfg


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _atomic_save(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(path.name + ".tmp.npy")
    np.save(temporary, array)
    os.replace(temporary, path)


def cached_clouds(
    store: Store,
    ids: Sequence[str],
    lidar_paths: Sequence[str],
    cfg: PretrainConfig,
    *,
    progress: Optional[bool] = None,
) -> ChunkedClouds:
    """Preprocessed ``(F, OVERSAMPLE * num_points, 3)`` float32 clouds of ``ids``, cached on disk.

    Chunks of 256 frames are written atomically, so an interrupted call resumes at the first
    missing chunk. Points of each frame are in a seeded random order. The result reads the chunk
    files through memory maps (:class:`embedders.pretrain.data.ChunkedClouds`).

    Raises
    ------
    CorruptDataError
        A frame cannot be read or preprocessed (names the frame id).

    Notes
    -----
    Time O(total points * log); memory O(CHUNK * num_points) while writing, then only the pages
    training touches.
    """
    from embedders import EmbedderError
    from embedders.preprocess import PreprocessConfig, ScenePreprocessor
    from embedders.pretrain.data import ChunkedClouds

    base = cfg.data.preprocess_config()
    options = {**base.to_dict(), "num_points": OVERSAMPLE * cfg.data.num_points}
    preprocessor = ScenePreprocessor(PreprocessConfig.from_options(options), seed=cfg.seed)
    key = _digest({"preprocess": options, "seed": cfg.seed, "ids": list(ids)})
    folder = store.path / CACHE_DIR / f"clouds-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with progress_bar(total=len(ids), desc="pretrain cache", unit="frame", enable=progress) as bar:
        for number, start in enumerate(range(0, len(ids), CHUNK)):
            path = folder / f"chunk-{number:05d}.npy"
            stop = min(start + CHUNK, len(ids))
            paths.append(path)
            if path.exists():
                try:
                    done = np.load(path, mmap_mode="r").shape == (stop - start, options["num_points"], 3)
                except (OSError, ValueError):
                    done = False  # unreadable leftover: rebuild it
                if done:
                    bar.update(stop - start)
                    continue
            part = np.empty((stop - start, options["num_points"], 3), dtype=np.float32)
            for offset in range(stop - start):
                frame = start + offset
                try:
                    cloud = preprocessor(read_points(lidar_paths[frame]), frame)
                except EmbedderError as exc:
                    raise CorruptDataError(f"frame {ids[frame]!r}: {exc}") from exc
                order = np.random.default_rng([cfg.seed, frame]).permutation(len(cloud))
                part[offset] = cloud[order]
                bar.update(1)
            _atomic_save(path, part)
    return ChunkedClouds(paths)


def teacher_table(teacher: str) -> str:
    """Embedding name under which the teacher features are cached."""
    return f"{T.INTERNAL_EMBEDDING_PREFIX}{teacher}"


def _read_image(path: str, frame_id: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise CorruptDataError(f"frame {frame_id!r}: cannot read camera image {path}: {exc}") from exc


def teacher_features(
    store: Store,
    ids: Sequence[str],
    image_paths: Sequence[Sequence[str]],
    cfg: PretrainConfig,
    *,
    progress: Optional[bool] = None,
) -> tuple[np.ndarray, str]:
    """Frozen teacher features ``(F, dim)`` of each frame's first camera image, cached.

    Frames already in the table ``emb_pretrain-teacher-<teacher>`` with the same teacher config
    and weights are not recomputed; new ones are written every 256 frames (upsert by id).

    Returns
    -------
    features : numpy.ndarray
        In the order of ``ids``.
    embedding : str
        The embedding name holding them.

    Raises
    ------
    InvalidInputError
        A frame has no camera image (names it; set ``[loss] image = 0`` to train without).
    """
    teacher = TEACHERS[cfg.data.teacher]
    name = teacher_table(teacher.name)
    table = T.embedding_table(name)
    missing = [frame for frame, paths in zip(ids, image_paths) if not paths]
    if missing:
        raise InvalidInputError(
            f"{len(missing)} frames have no camera image (first: {missing[0]!r}); the image "
            "teacher needs one per frame. Set [loss] image = 0 or restrict [data] where"
        )
    config = {"teacher": teacher.name, "image_size": list(cfg.data.teacher_image_size), "camera": 0}
    features_fn, sha = teacher.load(cfg.data.teacher_image_size)
    meta = {
        "embedder": teacher.name,
        "config": json.dumps(config, sort_keys=True),
        "dim": str(teacher.dim),
        "modality": "image",
        "weights_sha256": sha,
    }
    done: set[str] = set()
    mode = "overwrite"
    if store.has_table(table):
        old = store.table_metadata(table)
        if old.get("weights_sha256") == sha and old.get("config") == meta["config"]:
            done = {str(i) for i in store.ids(table)}
            mode = "upsert"
    todo = [(frame, paths[0]) for frame, paths in zip(ids, image_paths) if frame not in done]
    with progress_bar(total=len(todo), desc="teacher features", unit="frame", enable=progress) as bar:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            images = [_read_image(path, frame) for frame, path in chunk]
            vectors = np.asarray(features_fn(images), dtype=np.float32)
            store.write_vectors(table, [f for f, _ in chunk], vectors, metadata=meta, mode=mode)
            mode = "upsert"
            bar.update(len(chunk))
    _, vectors = store.read_vectors(table, ids=list(ids))
    return vectors, name


def _frames(store: Store, where: str) -> list[dict[str, Any]]:
    """Rows (id, lidar_path, image_paths, scene, frame_index) of the frames, sorted by id."""
    require_samples(store)
    rows = store.read(
        T.SAMPLES,
        columns=["id", "lidar_path", "image_paths", "scene", "frame_index"],
        where=where or None,
    ).to_pylist()
    rows.sort(key=lambda row: row["id"])
    for row in rows:
        row["image_paths"] = list(row["image_paths"] or [])
    return rows


def pretrain(
    store: Store,
    config: Union[str, os.PathLike[str], Mapping[str, Any], PretrainConfig, None] = None,
    *,
    progress: Optional[bool] = None,
) -> PretrainReport:
    """Pretrain a ReCon encoder on the workspace's frames (see the module docstring).

    Parameters
    ----------
    store : index.store.Store
        The workspace's store (``Workspace.pretrain`` passes its own); the cache and the
        checkpoints go below its directory.
    config : path, mapping, PretrainConfig or None
        TOML file / parsed dict / config; None = defaults (the tiny setting).
    progress : bool, optional
        Progress bars (default: when stderr is a terminal).

    Returns
    -------
    PretrainReport

    Raises
    ------
    InvalidInputError
        Bad config (names the key and lists valid ones), fewer frames than the batch size,
        frames without images while the image term is on.
    NotFoundError
        The workspace has no frames.
    """
    from embedders import EmbedderError
    from embedders.pretrain.trainer import train

    cfg = read_config(config)
    rows = _frames(store, cfg.data.where)
    ids = [row["id"] for row in rows]
    lidar_paths = [row["lidar_path"] for row in rows]
    image_paths = [row["image_paths"] for row in rows]
    if len(ids) < cfg.train.batch_size:
        raise InvalidInputError(
            f"pretraining needs at least batch_size={cfg.train.batch_size} frames; "
            f"{len(ids)} match (where={cfg.data.where!r}). Lower [train] batch_size or ingest more"
        )
    clouds = cached_clouds(store, ids, lidar_paths, cfg, progress=progress)
    teacher, teacher_name = None, None
    if cfg.loss.image > 0:
        teacher, teacher_name = teacher_features(store, ids, image_paths, cfg, progress=progress)
    embed_options = {
        "num_group": cfg.model.embed_num_group,
        "group_size": cfg.model.group_size,
        **cfg.data.preprocess_config().to_dict(),
        "num_points": cfg.data.embed_num_points,
    }
    run_dir = store.path / CHECKPOINT_DIR / cfg.name
    try:
        result = train(
            cfg,
            clouds,
            run_dir,
            teacher=teacher,
            progress=progress,
            extra={"embed_options": embed_options, "frames": len(ids)},
            scenes=[row["scene"] for row in rows],
            frame_indices=[int(row["frame_index"] or 0) for row in rows],
        )
    except EmbedderError as exc:
        raise InvalidInputError(str(exc)) from exc
    return PretrainReport(
        run_name=cfg.name,
        run_dir=str(result.run_dir),
        checkpoint=str(result.checkpoint),
        steps=result.steps,
        start_step=result.start_step,
        frames=len(ids),
        final_losses=result.final_losses,
        seconds=result.seconds,
        teacher_embedding=teacher_name,
        embed_options=embed_options,
        model=f"recon-{cfg.model.size}",
        interrupted=result.interrupted,
    )
