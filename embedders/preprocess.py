"""Scene preprocessing: a ~100k-point LiDAR frame -> a fixed-size cloud in the unit sphere.

ReCon was pretrained on ~1k-point objects normalised into the unit sphere. A LiDAR frame is
~100k points over ~100 m, dense near the sensor and sparse far away. :class:`ScenePreprocessor`
turns it into something the point encoder can take, in this order:

1. **range crop** (default: the 51.2 m x 51.2 m bird's-eye square centred on the sensor,
   ``|x|, |y| <= 25.6`` m, and ``-3 <= z <= 1`` m, i.e. from below the road to ~2.7 m above it
   for a roof sensor at ~1.7 m). ``crop="disk"`` uses the radius ``half_extent`` instead of the
   square; ``crop="none"`` keeps everything (for object clouds).
2. **ground removal**, off by default: points within ``ground_height`` of the lowest point of their
   ``ground_cell`` x ``ground_cell`` column are dropped. Simple, O(N log N), no plane fit.
3. **voxel downsampling** (``voxel_size`` metres, default 0.2; 0 disables): one point per occupied
   voxel, at the centroid of its points. This evens out the near/far density imbalance.
4. **fixed size** ``num_points`` (default 1024, the ReCon object size; see
   :class:`embedders.models.recon.ReconEmbedder` for why): ``sampling="random"`` (default) draws a seeded
   random subset, fast and, after voxelisation, close to uniform in space; ``"fps"`` uses farthest
   point sampling (more even, much slower on CPU: O(n * num_points)). Clouds with fewer points
   are padded by repeating seeded random points. The random generator is seeded from ``seed``
   *and the cloud's content*, so a frame gets the same points whatever batch it is in.
5. **normalisation** into the unit sphere. ``normalize="sensor"`` (default) subtracts the centre
   of the crop box, ``(0, 0, (z_min + z_max) / 2)``, and divides by the radius of the sphere
   around the crop box: the same fixed transform for every frame, so positions and scale stay
   comparable across frames (no per-frame re-centring on the centroid, which would discard
   where things are). ``normalize="centroid"`` is the object-level normalisation of ReCon /
   Point-MAE (subtract the centroid, divide by the largest norm), for object clouds.

Cost per frame: O(N log N) time (the voxel ``unique``), O(N) memory.
Note: FPS in the encoder never picks points with squared norm <= 1e-3 (official kernel), i.e.
with the default sensor normalisation points within ~1.1 m of the crop centre; a roof LiDAR has
no returns there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedders.errors import EmbedderError

__all__ = [
    "PreprocessConfig",
    "ScenePreprocessor",
    "crop_points",
    "voxel_downsample",
    "remove_ground",
]

logger = logging.getLogger(__name__)

CROP_SHAPES = ("square", "disk", "none")
SAMPLING_METHODS = ("random", "fps")
NORMALIZATIONS = ("sensor", "centroid")


@dataclass(frozen=True)
class PreprocessConfig:
    """Options of :class:`ScenePreprocessor` (see the module docstring for their meaning).

    Attributes
    ----------
    crop : {"square", "disk", "none"}
    half_extent : float
        Half side of the square / radius of the disk, metres.
    z_min, z_max : float
        Height band kept, metres, LiDAR frame.
    remove_ground : bool
    ground_cell : float
        Column size for ground removal, metres.
    ground_height : float
        Points this close above their column's lowest point are ground, metres.
    voxel_size : float
        Voxel edge in metres; 0 disables voxel downsampling.
    num_points : int
        Points per output cloud.
    sampling : {"random", "fps"}
    normalize : {"sensor", "centroid"}
    sweeps : int
        LiDAR sweeps the caller aggregates with each key frame (0 = key frame only). The
        embedder does not read files: the caller (curate's frame reader) passes the key frame and
        its last ``sweeps`` sweeps in the key frame's coordinates as one cloud; a fifth column
        (time lag) is accepted and ignored here (the models use x, y, z).
    """

    crop: str = "square"
    half_extent: float = 25.6
    z_min: float = -3.0
    z_max: float = 1.0
    remove_ground: bool = False
    ground_cell: float = 2.0
    ground_height: float = 0.2
    voxel_size: float = 0.2
    num_points: int = 1024
    sampling: str = "random"
    normalize: str = "sensor"
    sweeps: int = 0

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise EmbedderError(f"preprocessing option {message}")

        if self.crop not in CROP_SHAPES:
            fail(f"crop={self.crop!r} is not one of {list(CROP_SHAPES)}")
        if self.sampling not in SAMPLING_METHODS:
            fail(f"sampling={self.sampling!r} is not one of {list(SAMPLING_METHODS)}")
        if self.normalize not in NORMALIZATIONS:
            fail(f"normalize={self.normalize!r} is not one of {list(NORMALIZATIONS)}")
        for name in ("half_extent", "z_min", "z_max", "ground_cell", "ground_height", "voxel_size"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                fail(f"{name}={value!r} must be a finite number")
        if self.half_extent <= 0:
            fail(f"half_extent={self.half_extent!r} must be > 0 (metres)")
        if self.z_max <= self.z_min:
            fail(f"z_max={self.z_max!r} must be greater than z_min={self.z_min!r}")
        if self.ground_cell <= 0 or self.ground_height < 0:
            fail("ground_cell must be > 0 and ground_height >= 0 (metres)")
        if self.voxel_size < 0:
            fail(f"voxel_size={self.voxel_size!r} must be >= 0 (0 disables voxel downsampling)")
        if not isinstance(self.remove_ground, bool):
            fail(f"remove_ground={self.remove_ground!r} must be true or false")
        if (
            isinstance(self.num_points, bool)
            or not isinstance(self.num_points, int)
            or self.num_points < 1
        ):
            fail(f"num_points={self.num_points!r} must be a positive integer")
        if isinstance(self.sweeps, bool) or not isinstance(self.sweeps, int) or not 0 <= self.sweeps <= 100:
            fail(f"sweeps={self.sweeps!r} must be an integer in 0..100")
        if self.normalize == "sensor" and self.crop == "none":
            fail(
                "normalize='sensor' needs a crop ('square' or 'disk') to fix the scale; "
                "use normalize='centroid' with crop='none'"
            )

    @classmethod
    def option_names(cls) -> list[str]:
        """Names of all options, in declaration order."""
        return [item.name for item in dataclasses.fields(cls)]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> PreprocessConfig:
        """Build from a mapping, raising :class:`EmbedderError` naming any unknown key."""
        unknown = sorted(set(options) - set(cls.option_names()))
        if unknown:
            raise EmbedderError(
                f"unknown preprocessing option(s) {unknown}; valid: {cls.option_names()}"
            )
        values = dict(options)
        for name in ("half_extent", "z_min", "z_max", "ground_cell", "ground_height", "voxel_size"):
            if (
                name in values
                and isinstance(values[name], int)
                and not isinstance(values[name], bool)
            ):
                values[name] = float(values[name])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of all options (``sweeps`` only when set, so single-sweep configs
        and their recorded metadata stay as they were)."""
        out = dataclasses.asdict(self)
        if not out["sweeps"]:
            del out["sweeps"]
        return out

    @property
    def crop_radius(self) -> float:
        """Radius of the sphere around the crop box centre that encloses the whole crop box."""
        half_height = (self.z_max - self.z_min) / 2.0
        horizontal = self.half_extent * (math.sqrt(2.0) if self.crop == "square" else 1.0)
        return math.hypot(horizontal, half_height)

    @property
    def crop_center(self) -> tuple[float, float, float]:
        """Centre of the crop box, LiDAR frame."""
        return (0.0, 0.0, (self.z_min + self.z_max) / 2.0)


def crop_points(xyz: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Boolean mask of the points inside the crop of ``config`` (all True for ``crop="none"``)."""
    if config.crop == "none":
        return np.ones(len(xyz), dtype=bool)
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    keep = (z >= config.z_min) & (z <= config.z_max)
    if config.crop == "square":
        keep &= (np.abs(x) <= config.half_extent) & (np.abs(y) <= config.half_extent)
    else:
        keep &= x * x + y * y <= config.half_extent * config.half_extent
    return keep


def _cell_ids(coords: np.ndarray, size: float) -> np.ndarray:
    """Dense int64 ids of the ``size``-sized cells holding each row of ``coords`` (N, D)."""
    cells = np.floor(coords / size).astype(np.int64)
    cells -= cells.min(axis=0)
    extent = cells.max(axis=0) + 1
    if math.prod(int(value) for value in extent) >= 2**62:
        # Far-flung coordinates: a packed id would overflow, fall back to row-wise unique.
        return np.unique(cells, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
    ids = np.zeros(len(cells), dtype=np.int64)
    for axis in range(cells.shape[1]):
        ids = ids * extent[axis] + cells[:, axis]
    return ids


def remove_ground(xyz: np.ndarray, cell: float, height: float) -> np.ndarray:
    """Mask of non-ground points: above ``lowest z in the (x, y) column + height``.

    O(N log N) time (sort by column), O(N) memory.
    """
    column = _cell_ids(xyz[:, :2].astype(np.float64), cell)
    _, inverse = np.unique(column, return_inverse=True)
    lowest = np.full(inverse.max() + 1, np.inf)
    np.minimum.at(lowest, inverse, xyz[:, 2])
    return xyz[:, 2] > lowest[inverse] + height


def voxel_downsample(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    """One point per occupied voxel, at the centroid of its points, ordered by voxel id.

    O(N log N) time, O(N) memory.
    """
    voxel = _cell_ids(xyz.astype(np.float64), voxel_size)
    _, inverse, counts = np.unique(voxel, return_inverse=True, return_counts=True)
    out = np.empty((len(counts), 3), dtype=np.float64)
    for axis in range(3):
        out[:, axis] = np.bincount(inverse, weights=xyz[:, axis], minlength=len(counts)) / counts
    return out.astype(np.float32)


def _content_rng(points: np.ndarray, seed: int) -> np.random.Generator:
    """A generator seeded by ``seed`` and the bytes of ``points`` (batch-position independent)."""
    digest = hashlib.blake2b(np.ascontiguousarray(points).tobytes(), digest_size=8).digest()
    return np.random.default_rng([seed, int.from_bytes(digest, "little")])


class ScenePreprocessor:
    """Crop, (optionally) de-ground, voxelise, fix the size and normalise LiDAR clouds.

    Parameters
    ----------
    config : PreprocessConfig, optional
        Options; defaults as documented in the module docstring.
    seed : int, default 0
        Seed of the random sampling / padding (combined with each cloud's content).

    Notes
    -----
    Per cloud O(N log N) time and O(N) memory (plus O(n * num_points) time for ``"fps"``).
    """

    def __init__(self, config: PreprocessConfig | None = None, *, seed: int = 0) -> None:
        self.config = config or PreprocessConfig()
        self.seed = int(seed)

    def __call__(self, cloud: np.ndarray, index: int = 0) -> np.ndarray:
        """Preprocess one cloud.

        Parameters
        ----------
        cloud : numpy.ndarray
            ``(N, 3|4)`` finite float array, LiDAR frame, metres (already validated).
        index : int, default 0
            Position of the cloud in its batch, used in error messages.

        Returns
        -------
        numpy.ndarray
            ``(num_points, 3)`` float32 inside the unit sphere (``"sensor"``: the crop box maps
            into it).

        Raises
        ------
        EmbedderError
            If no point survives the crop or the ground removal.
        """
        config = self.config
        xyz = np.asarray(cloud[:, :3], dtype=np.float32)
        points = xyz[crop_points(xyz, config)]
        if len(points) == 0:
            lo, hi = xyz.min(axis=0), xyz.max(axis=0)
            raise EmbedderError(
                f"cloud {index}: none of its {len(xyz)} points lies inside the crop "
                f"({config.crop}, half_extent={config.half_extent} m, "
                f"z in [{config.z_min}, {config.z_max}] m); "
                f"the cloud spans x [{lo[0]:.1f}, {hi[0]:.1f}], y [{lo[1]:.1f}, {hi[1]:.1f}], "
                f"z [{lo[2]:.1f}, {hi[2]:.1f}]. Check it is in the LiDAR frame in metres, "
                "or widen the crop"
            )
        if config.remove_ground:
            points = points[remove_ground(points, config.ground_cell, config.ground_height)]
            if len(points) == 0:
                raise EmbedderError(
                    f"cloud {index}: ground removal left no points "
                    f"(ground_height={config.ground_height} m); "
                    "disable remove_ground or lower ground_height"
                )
        if config.voxel_size > 0:
            points = voxel_downsample(points, config.voxel_size)
        points = self._fix_size(points)
        return self._normalize(points)

    def process_batch(self, clouds: Sequence[np.ndarray]) -> np.ndarray:
        """Preprocess validated clouds into one ``(B, num_points, 3)`` float32 array."""
        out = np.empty((len(clouds), self.config.num_points, 3), dtype=np.float32)
        for index, cloud in enumerate(clouds):
            out[index] = self(cloud, index)
        return out

    def _fix_size(self, points: np.ndarray) -> np.ndarray:
        target = self.config.num_points
        count = len(points)
        rng = _content_rng(points, self.seed)
        if count < target:
            extra = rng.choice(count, size=target - count, replace=True)
            return np.concatenate([points, points[extra]], axis=0)
        if count == target:
            return points
        if self.config.sampling == "random":
            chosen = np.sort(rng.choice(count, size=target, replace=False))
            return points[chosen]
        return points[self._fps_indices(points, target)]

    @staticmethod
    def _fps_indices(points: np.ndarray, target: int) -> np.ndarray:
        import torch  # the numpy-only paths do not need torch

        from embedders.layers.grouping import farthest_point_sample

        tensor = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).unsqueeze(0)
        return farthest_point_sample(tensor, target)[0].numpy()

    def _normalize(self, points: np.ndarray) -> np.ndarray:
        config = self.config
        if config.normalize == "sensor":
            center = np.asarray(config.crop_center, dtype=np.float32)
            return ((points - center) / np.float32(config.crop_radius)).astype(np.float32)
        centered = points - points.mean(axis=0, dtype=np.float64).astype(np.float32)
        scale = float(np.sqrt((centered.astype(np.float64) ** 2).sum(axis=1)).max())
        return (centered / np.float32(scale if scale > 0 else 1.0)).astype(np.float32)
