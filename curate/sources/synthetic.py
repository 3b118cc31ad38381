"""Synthetic KITTI-format LiDAR + camera dataset: the project's labelled 3-D test bed.

:func:`generate` writes a folder that :class:`curate.sources.kitti.KittiSource` reads::

    <out>/training/velodyne/NNNNNN.bin   ray-cast HDL-64E-like scans (float32 x, y, z, intensity)
    <out>/training/image_2/NNNNNN.png    projected rendering of the scene (1242x375; 310x94 small)
    <out>/training/calib/NNNNNN.txt      KITTI calibration (P0-P3, R0_rect, Tr_velo_to_cam, ...)
    <out>/training/label_2/NNNNNN.txt    KITTI labels (15 fields)
    <out>/ImageSets/{train,val,trainval}.txt   split by drive
    <out>/metadata.jsonl                 scene, frame_index, timestamp, time_of_day, weather, ...
    <out>/synthetic_config.json          the generator arguments

How a frame is made
-------------------
Frames come in *drives* of consecutive frames at 10 Hz. Each drive samples a location (urban:
``downtown`` / ``old_town``; residential: ``suburbs`` / ``campus``; highway: ``autobahn``), a time
of day (``day`` / ``dusk`` / ``night``) and weather (``clear`` / ``rain`` / ``fog``), then a world:
a straight road with lanes, parking rows, curbs and sidewalks (or guard rails and a median on the
highway), buildings, poles, trees, hedges and small clutter, and actors with KITTI-like sizes:
parked rows and moving traffic (Car, Van, Truck, rare Tram), pedestrians and cyclists on the
sidewalks. Density and class mix depend on the area, time of day and weather (few pedestrians at
night or in rain, trucks on highways, trams only downtown). The ego vehicle drives along its lane
(or waits, speed 0) and every actor moves at constant velocity, so consecutive frames overlap
heavily.

Each frame ray-casts a 64-beam pattern (elevations +2 deg to -24.8 deg, 2000 azimuth steps,
sensor 1.73 m above the road, 120 m range; ``small=True``: 16 beams x 360 steps) against the road
(analytic ground with slope, curbs and lane markings) and every composite box (vectorised slab
test, see :mod:`curate.sources._raycast`). Objects hide what is behind them. Returns get range
noise and an intensity from the surface material and incidence angle; rain and fog drop returns
(more at range), add noise and add spurious near returns.

Labels
------
An actor is labelled when its box projects into the image (KITTI labels only the camera view).
``occluded`` comes from ray-cast visibility: the fraction of the rays that would hit the object
without other geometry but hit something nearer first (0: < 20 % hidden, 1: < 60 %, 2: more).
``truncated`` is the fraction of the projected 2-D box outside the image. Actors in view with
**no** LiDAR point (hidden, between beams, or dropped by weather) are written as ``DontCare``
lines (2-D box only, as KITTI does) rather than dropped, so detector evaluation can ignore them.

Determinism
-----------
Drive ``k`` draws everything from ``SeedSequence(seed)``'s children, so the output bytes depend
only on ``(seed, frames, small, frames_per_drive)``, not on ``workers``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from curate.errors import InvalidInputError
from curate.sources._raycast import (
    SURFACE_CURB,
    SURFACE_RAISED,
    SURFACE_ROAD,
    SURFACE_SHAPE,
    CastResult,
    LidarPattern,
    Shapes,
    cast_rays,
)
from curate.sources._render import box_corners, render_image
from curate.sources._scene import (
    FRAME_PERIOD_S,
    LABEL_CLASSES,
    MAT_CLUTTER,
    MAT_CURB,
    MAT_MARK,
    MAT_ROAD,
    MAT_SIDEWALK,
    MATERIALS,
    DriveWorld,
    build_drive,
    sample_drive_config,
)
from curate.sources.base import Box3D
from curate.sources.calib import Calibration, write_calibration
from curate.sources.kitti import write_label_file

__all__ = ["generate", "SyntheticSummary", "lidar_pattern", "LABEL_CLASSES", "DEFAULT_FRAMES_PER_DRIVE",
           "ScanPreset", "PRESETS"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: Range of drive lengths (frames) when ``frames_per_drive`` is not given.
DEFAULT_FRAMES_PER_DRIVE: tuple[int, int] = (20, 60)

FULL_IMAGE_SIZE = (1242, 375)
SMALL_SCALE = 0.25
_OCCLUSION_LEVELS = (0.2, 0.6)

# KITTI calibration of 2011_09_26, the base every drive perturbs slightly.
_P_FOCAL, _P_CX, _P_CY = 721.5377, 609.5593, 172.854
_P_T = {
    0: (0.0, 0.0, 0.0),
    1: (-387.5744, 0.0, 0.0),
    2: (44.85728, 0.2163791, 0.002745884),
    3: (-339.5242, 2.199936, 0.002729905),
}
_TR_VELO_TO_CAM = np.array(
    [
        [7.533745e-03, -9.999714e-01, -6.166020e-04, -4.069766e-03],
        [1.480249e-02, 7.280733e-04, -9.998902e-01, -7.631618e-02],
        [9.998621e-01, 7.523790e-03, 1.480755e-02, -2.717806e-01],
    ]
)
_R0_RECT = np.array(
    [
        [9.999239e-01, 9.837760e-03, -7.445048e-03],
        [-9.869795e-03, 9.999421e-01, -4.278459e-03],
        [7.402527e-03, 4.351614e-03, 9.999631e-01],
    ]
)
_TR_IMU_TO_VELO = np.array(
    [
        [9.999976e-01, 7.553071e-04, -2.035826e-03, -8.086759e-01],
        [-7.854027e-04, 9.998898e-01, -1.482298e-02, 3.195559e-01],
        [2.024406e-03, 1.482454e-02, 9.998881e-01, -7.997231e-01],
    ]
)


@dataclass
class SyntheticSummary:
    """What :func:`generate` wrote.

    Attributes
    ----------
    out_dir : str
        Dataset root.
    frames, drives : int
        Number of frames and drives.
    boxes_per_class : dict of str to int
        Labelled boxes per class (``DontCare`` excluded).
    dontcare : int
        ``DontCare`` lines written.
    points : int
        LiDAR points over all frames.
    seconds : float
        Wall-clock generation time.
    split_frames : dict of str to int
        Frames in ``train`` / ``val``.
    seed, small : int, bool
        Generator arguments.
    """

    out_dir: str
    frames: int
    drives: int
    boxes_per_class: dict[str, int]
    dontcare: int
    points: int
    seconds: float
    split_frames: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    small: bool = False

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(self.frames, 1)

    @property
    def points_per_frame(self) -> float:
        return self.points / max(self.frames, 1)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds_per_frame"] = self.seconds_per_frame
        out["points_per_frame"] = self.points_per_frame
        return out


@dataclass(frozen=True)
class ScanPreset:
    """A named generator preset: a LiDAR scan pattern and the image size (see :data:`PRESETS`).

    Attributes
    ----------
    beams : int
        Beams, evenly spaced over ``elevation_deg``.
    azimuth_steps : int
        Azimuth steps per revolution.
    elevation_deg : (float, float)
        Lowest and highest beam elevation in degrees.
    small_images : bool
        310x94 images (as ``small=True``) instead of KITTI's 1242x375.
    """

    beams: int
    azimuth_steps: int
    elevation_deg: tuple[float, float]
    small_images: bool = True

    def pattern(self) -> LidarPattern:
        elevations = np.linspace(self.elevation_deg[0], self.elevation_deg[1], self.beams)
        return LidarPattern(np.radians(elevations), self.azimuth_steps, max_range=120.0, min_range=1.0)


#: Named presets of :func:`generate` (``preset=NAME``). Additive: without a preset the output is
#: unchanged. ``"loop"``: the detector-loop benchmark's scan, 32 beams (+2 to -24.8 deg, 0.86 deg
#: apart) x 1024 azimuth steps (0.35 deg), about 6x the rays of ``small`` and a quarter of the
#: full pattern, so a car at 20 m gets tens of points instead of a handful (the 16 x 360 ``small``
#: scan leaves the median labelled car with 2 points, too few for a detector to learn from in a
#: few CPU minutes); small images.
PRESETS: dict[str, ScanPreset] = {
    "loop": ScanPreset(beams=32, azimuth_steps=1024, elevation_deg=(-24.8, 2.0), small_images=True),
}


def _preset(name: Optional[str]) -> Optional[ScanPreset]:
    if name is None:
        return None
    if name not in PRESETS:
        raise InvalidInputError(f"unknown synthetic preset {name!r}; valid: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]


def lidar_pattern(small: bool, preset: Optional[str] = None) -> LidarPattern:
    """The scan pattern: HDL-64E-like (64 x 2000) or, for ``small``, 16 beams x 360 steps;
    a ``preset`` name (:data:`PRESETS`) overrides both."""
    scan = _preset(preset)
    if scan is not None:
        return scan.pattern()
    if small:
        elevations = np.linspace(-24.8, 2.0, 16)
        return LidarPattern(np.radians(elevations), 360, max_range=120.0, min_range=1.0)
    upper = np.linspace(2.0, -8.33, 32)
    lower = np.linspace(-8.83, -24.8, 32)
    elevations = np.sort(np.concatenate([upper, lower]))
    return LidarPattern(np.radians(elevations), 2000, max_range=120.0, min_range=1.0)


# ----------------------------------------------------------------------------------------------
# planning
# ----------------------------------------------------------------------------------------------


def _drive_sizes(
    frames: int, frames_per_drive: Union[int, tuple[int, int], None], rng: np.random.Generator
) -> list[int]:
    if isinstance(frames_per_drive, int):
        full, rest = divmod(frames, frames_per_drive)
        return [frames_per_drive] * full + ([rest] if rest else [])
    lo, hi = frames_per_drive if frames_per_drive is not None else DEFAULT_FRAMES_PER_DRIVE
    sizes: list[int] = []
    remaining = frames
    while remaining > 0:
        n = min(int(rng.integers(lo, hi + 1)), remaining)
        sizes.append(n)
        remaining -= n
    return sizes


def _validate_args(
    frames: int, frames_per_drive: Union[int, tuple[int, int], None], workers: int
) -> Union[int, tuple[int, int], None]:
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise InvalidInputError(f"frames must be a positive integer, got {frames!r}")
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise InvalidInputError(f"workers must be a positive integer, got {workers!r}")
    if frames_per_drive is None:
        return None
    if isinstance(frames_per_drive, (int, np.integer)) and not isinstance(frames_per_drive, bool):
        if frames_per_drive < 1:
            raise InvalidInputError(f"frames_per_drive must be >= 1, got {frames_per_drive}")
        return int(frames_per_drive)
    if (
        isinstance(frames_per_drive, (tuple, list))
        and len(frames_per_drive) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in frames_per_drive)
        and 1 <= frames_per_drive[0] <= frames_per_drive[1]
    ):
        return (int(frames_per_drive[0]), int(frames_per_drive[1]))
    raise InvalidInputError(
        f"frames_per_drive must be a positive int or a (min, max) pair with 1 <= min <= max, got "
        f"{frames_per_drive!r}"
    )


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    ours = [out / "training", out / "ImageSets", out / "metadata.jsonl", out / "synthetic_config.json"]
    existing = [p for p in ours if p.exists()]
    if existing and not overwrite:
        raise InvalidInputError(
            f"{out}: already holds a dataset ({', '.join(p.name for p in existing)}); pick an empty "
            "folder or pass overwrite=True"
        )
    for p in existing:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
    for sub in ("velodyne", "image_2", "calib", "label_2"):
        (out / "training" / sub).mkdir(parents=True, exist_ok=True)
    (out / "ImageSets").mkdir(parents=True, exist_ok=True)


# ----------------------------------------------------------------------------------------------
# one drive
# ----------------------------------------------------------------------------------------------


def _small_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    a, b, c = np.radians(rng.uniform(-max_deg, max_deg, size=3))
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


def _orthonormal(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    return u @ vt


def _drive_calibration(rng: np.random.Generator, small: bool) -> Calibration:
    """KITTI-like calibration with per-drive perturbations (focal +-1 %, rotations < 0.3 deg)."""
    scale = SMALL_SCALE if small else 1.0
    focal = _P_FOCAL * float(rng.uniform(0.99, 1.01))
    cx = _P_CX + float(rng.uniform(-3, 3))
    cy = _P_CY + float(rng.uniform(-2, 2))
    projections = {}
    for k, (tx, ty, tz) in _P_T.items():
        p = np.array([[focal, 0.0, cx, tx], [0.0, focal, cy, ty], [0.0, 0.0, 1.0, tz]])
        p[:2] *= scale
        projections[k] = p
    tr = _TR_VELO_TO_CAM.copy()
    tr[:, :3] = _orthonormal(tr[:, :3]) @ _small_rotation(rng, 0.3)
    tr[:, 3] += rng.uniform(-0.01, 0.01, size=3)
    r0 = _orthonormal(_R0_RECT) @ _small_rotation(rng, 0.1)
    return Calibration(
        P2=projections[2],
        R0_rect=r0,
        Tr_velo_to_cam=tr,
        P0=projections[0],
        P1=projections[1],
        P3=projections[3],
        Tr_imu_to_velo=_TR_IMU_TO_VELO.copy(),
    )


def _point_materials(world: DriveWorld, cast: CastResult, keep: np.ndarray, pattern: LidarPattern,
                     ego: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Material code and base reflectivity of every ray's hit (``(B, A)`` arrays)."""
    material = np.full(pattern.shape, MAT_ROAD, dtype=np.int16)
    refl = np.zeros(pattern.shape)
    shape_hit = cast.surface == SURFACE_SHAPE
    world_idx = keep[cast.shape_id[shape_hit]]
    material[shape_hit] = world.material[world_idx]
    refl[shape_hit] = world.refl[world_idx]
    road = cast.surface == SURFACE_ROAD
    raised = cast.surface == SURFACE_RAISED
    material[cast.surface == SURFACE_CURB] = MAT_CURB
    lat = cast.lateral
    if raised.any():
        near_side = np.abs(lat) <= world.road_half + world.sidewalk_width
        material[raised & near_side] = MAT_SIDEWALK if world.sidewalk_width > 0 else world.raised_material_far
        material[raised & ~near_side] = world.raised_material_far
    if road.any():
        ex, _, eyaw = ego
        x_world = ex + cast.t * (math.cos(eyaw) * pattern.dx - math.sin(eyaw) * pattern.dy)
        mark = np.zeros(pattern.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            dashed = np.mod(x_world, 9.0) < 3.0
            for line in world.lane_lines:
                mark |= (np.abs(lat - line) < 0.08) & dashed
            for line in world.edge_lines:
                mark |= np.abs(lat - line) < 0.1
        material[road & mark] = MAT_MARK
    ground = ~shape_hit
    base = np.array([MATERIALS[m][1] for m in range(len(MATERIALS))])
    refl[ground] = base[material[ground]]
    return material, refl


def _make_points(
    world: DriveWorld, cast: CastResult, keep: np.ndarray, pattern: LidarPattern,
    ego: tuple[float, float, float], rng: np.random.Generator, fog_visibility: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noisy returns: ``(N, 4)`` float32 points, world shape index per point (-1 = none), material."""
    weather = world.config.weather
    material, refl = _point_materials(world, cast, keep, pattern, ego)
    t = cast.t.copy()
    hit = np.isfinite(t) & (t >= pattern.min_range)
    shape_of = np.full(pattern.shape, -1, dtype=np.int64)
    sh = cast.surface == SURFACE_SHAPE
    shape_of[sh] = keep[cast.shape_id[sh]]
    cos_inc = cast.cos_incidence.copy()

    u_drop = rng.random(pattern.shape)
    z_range = rng.standard_normal(pattern.shape)
    z_int = rng.standard_normal(pattern.shape)
    u_clutter = rng.random(pattern.shape)
    t_clutter = rng.random(pattern.shape)

    sigma = np.array([MATERIALS[m][2] for m in range(len(MATERIALS))])[material]
    p_drop = 0.01 + np.array([MATERIALS[m][3] for m in range(len(MATERIALS))])[material]
    with np.errstate(invalid="ignore"):
        r = np.where(hit, t, 0.0)
        p_drop = p_drop + 0.25 * (refl < 0.08) * (r / pattern.max_range)
        if weather == "rain":
            p_drop = p_drop + 0.06 + 0.2 * r / pattern.max_range
            sigma = sigma + 0.02
            clutter = u_clutter < 0.004
            clutter_t = 1.5 + 10.5 * t_clutter
        elif weather == "fog":
            p_drop = p_drop + 1.0 - np.exp(-1.4 * r / fog_visibility)
            sigma = sigma + 0.01
            clutter = u_clutter < 0.015
            clutter_t = 1.0 + 7.0 * t_clutter
        else:
            clutter = np.zeros(pattern.shape, dtype=bool)
            clutter_t = t_clutter
    keep_ray = hit & (u_drop >= p_drop)
    t_noisy = t + z_range * sigma
    intensity = refl * (0.3 + 0.7 * cos_inc) * np.exp(-np.where(hit, t, 0.0) / 250.0)
    if weather == "rain":
        intensity = intensity * 0.75
    elif weather == "fog":
        intensity = intensity * np.exp(-np.where(hit, t, 0.0) / fog_visibility)
    intensity = intensity + 0.015 * z_int
    # spurious near returns from drops replace whatever the ray would have hit
    clutter = clutter & (clutter_t < np.where(keep_ray, t_noisy, np.inf))
    t_noisy = np.where(clutter, clutter_t, t_noisy)
    intensity = np.where(clutter, 0.02 * t_clutter, intensity)
    shape_of = np.where(clutter, -1, shape_of)
    material = np.where(clutter, MAT_CLUTTER, material)
    valid = keep_ray | clutter
    tt = t_noisy[valid]
    pts = np.empty((tt.size, 4), dtype=np.float32)
    pts[:, 0] = tt * pattern.dx[valid]
    pts[:, 1] = tt * pattern.dy[valid]
    pts[:, 2] = tt * pattern.dz[valid]
    pts[:, 3] = np.clip(intensity[valid], 0.0, 0.99)
    return pts, shape_of[valid], material[valid]


def _point_colors(world: DriveWorld, shape_of: np.ndarray, material: np.ndarray) -> np.ndarray:
    palette = {
        0: (70, 70, 74), 1: (225, 225, 225), 2: (150, 148, 142), 3: (85, 120, 60), 4: (165, 165, 165),
        5: (160, 150, 130), 6: (120, 120, 130), 7: (90, 70, 50), 8: (50, 120, 45), 9: (170, 170, 175),
        10: (120, 120, 120), 11: (150, 120, 100), 12: (200, 200, 210),
    }
    table = np.array([palette[m] for m in range(len(MATERIALS))], dtype=np.float64)
    colors = table[material]
    on_shape = shape_of >= 0
    colors[on_shape] = world.color[shape_of[on_shape]]
    return colors


def _project_bbox(calib: Calibration, corners_lidar: np.ndarray, width: int, height: int,
                  near: float = 0.5) -> Optional[tuple[tuple[float, float, float, float], float]]:
    """2-D box (clipped to the image) and truncation of a 3-D box, or ``None`` if out of view."""
    cam = calib.lidar_to_camera(corners_lidar)
    pts = [cam[i] for i in range(8) if cam[i, 2] >= near]
    edges = ((0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7))
    for a, b in edges:
        za, zb = cam[a, 2], cam[b, 2]
        if (za - near) * (zb - near) < 0:
            s = (near - za) / (zb - za)
            pts.append(cam[a] + s * (cam[b] - cam[a]))
    if not pts:
        return None
    uv = calib.project_to_image(np.array(pts))
    x0, y0 = uv.min(axis=0)
    x1, y1 = uv.max(axis=0)
    cx0, cy0 = max(x0, 0.0), max(y0, 0.0)
    cx1, cy1 = min(x1, width - 1.0), min(y1, height - 1.0)
    if cx1 - cx0 < 1.0 or cy1 - cy0 < 1.0:
        return None
    full = (x1 - x0) * (y1 - y0)
    truncated = float(np.clip(1.0 - (cx1 - cx0) * (cy1 - cy0) / full, 0.0, 1.0)) if full > 0 else 1.0
    return (float(cx0), float(cy0), float(cx1), float(cy1)), truncated


def _wrap(a: float) -> float:
    return float((a + math.pi) % (2 * math.pi) - math.pi)


def _make_labels(
    world: DriveWorld, shapes: Shapes, keep: np.ndarray, cast: CastResult, shape_of_points: np.ndarray,
    calib: Calibration, width: int, height: int,
) -> tuple[list[Box3D], list[tuple[np.ndarray, np.ndarray, float, np.ndarray]]]:
    """Labels of the actors in view and their part corners (for the renderer), nearest first."""
    n_world = world.x.size
    points_per_shape = np.bincount(shape_of_points[shape_of_points >= 0], minlength=n_world)
    visible_rays = np.bincount(cast.shape_id[cast.shape_id >= 0], minlength=shapes.n_shapes)
    entries: list[tuple[float, Box3D, tuple[np.ndarray, np.ndarray, float, np.ndarray]]] = []
    for j, w in enumerate(keep):
        cls = world.label[w]
        if not cls:
            continue
        l, wd, h = world.dims[w]
        cx, cy, bottom = shapes.centers[j]
        yaw = float(shapes.yaws[j])
        centre = np.array([cx, cy, bottom + h / 2.0])
        corners = box_corners(centre, np.array([l / 2, wd / 2, h / 2]), yaw)
        projected = _project_bbox(calib, corners, width, height)
        if projected is None:
            continue
        bbox, truncated = projected
        a, b = shapes.part_start[j], shapes.part_stop[j]
        offsets = shapes.part_offsets[a:b]
        part_centers = np.column_stack(
            [
                cx + math.cos(yaw) * offsets[:, 0] - math.sin(yaw) * offsets[:, 1],
                cy + math.sin(yaw) * offsets[:, 0] + math.cos(yaw) * offsets[:, 1],
                bottom + offsets[:, 2],
            ]
        )
        distance = float(math.hypot(cx, cy))
        render = (part_centers, shapes.part_half[a:b], yaw, world.color[w])
        if points_per_shape[w] == 0:
            box = Box3D("DontCare", -1.0, -1, -10.0, bbox, (-1.0, -1.0, -1.0), (-1000.0, -1000.0, -1000.0), -10.0)
            entries.append((distance, box, render))
            continue
        rays = int(cast.shape_rays[j])
        hidden = 1.0 - visible_rays[j] / rays if rays > 0 else 1.0
        occluded = 0 if hidden < _OCCLUSION_LEVELS[0] else (1 if hidden < _OCCLUSION_LEVELS[1] else 2)
        centre_cam = calib.lidar_to_camera(centre[None, :])[0]
        location = (float(centre_cam[0]), float(centre_cam[1] + h / 2.0), float(centre_cam[2]))
        ry = _wrap(float(calib.lidar_heading_to_rotation_y(np.array(yaw))))
        alpha = _wrap(ry - math.atan2(location[0], location[2]))
        box = Box3D(cls, round(truncated, 2), occluded, alpha, bbox, (float(h), float(wd), float(l)), location, ry)
        entries.append((distance, box, render))
    entries.sort(key=lambda e: e[0])
    return [e[1] for e in entries], [e[2] for e in entries]


def _generate_drive(
    out_dir: str, drive_index: int, n_frames: int, first_frame: int, seed_seq: np.random.SeedSequence,
    small: bool, map_spec: Optional[tuple[int, np.random.SeedSequence, int, int, float]] = None,
    preset: Optional[str] = None,
) -> dict[str, Any]:
    """Generate and write one drive; returns its per-frame metadata and counts.

    ``map_spec = (map index, map seed, map frames, start frame on the map, actor time shift s)``
    puts the drive on a shared map (see ``generate(shared_maps=...)``).
    """
    out = Path(out_dir) / "training"
    children = seed_seq.spawn(n_frames + 1)
    rng = np.random.default_rng(children[0])
    config = sample_drive_config(rng, drive_index, n_frames, first_frame)
    shift = 0
    if map_spec is None:
        world = build_drive(config, rng)
    else:
        map_index, map_seed, map_frames, shift, actor_dt = map_spec
        map_rng = np.random.default_rng(map_seed)
        place = sample_drive_config(map_rng, map_index, map_frames, 0)
        config = replace(config, location=place.location, area=place.area, ego_speed=place.ego_speed)
        # the map's own random stream: the same road and static scene for every drive on the map
        # (actors depend on time of day and weather, and moving ones are shifted in time below)
        world = build_drive(replace(config, n_frames=map_frames), map_rng)
        moving = (world.vx != 0) | (world.vy != 0)
        world.x = world.x + np.where(moving, world.vx * actor_dt, 0.0)
        world.y = world.y + np.where(moving, world.vy * actor_dt, 0.0)
    calib = _drive_calibration(rng, small)
    fog_visibility = float(rng.uniform(40.0, 90.0)) if config.weather == "fog" else math.inf
    pattern = lidar_pattern(small, preset)
    width = int(round(FULL_IMAGE_SIZE[0] * (SMALL_SCALE if small else 1.0)))
    height = int(round(FULL_IMAGE_SIZE[1] * (SMALL_SCALE if small else 1.0)))
    fx, fy = calib.P2[0, 0], calib.P2[1, 1]
    el_gap = float(np.max(np.diff(pattern.elevations)))
    splat = (int(math.ceil(pattern.azimuth_step * fx)) + 1, int(math.ceil(el_gap * fy)) + 1)
    frames_meta: list[dict[str, Any]] = []
    counts: dict[str, int] = {c: 0 for c in LABEL_CLASSES}
    dontcare = 0
    n_points = 0
    for k in range(n_frames):
        frame_rng = np.random.default_rng(children[k + 1])
        frame_id = f"{first_frame + k:06d}"
        ego = world.ego_pose(k + shift)
        shapes, keep = world.shapes_at(k + shift, pattern.max_range)
        cast = cast_rays(pattern, world.ground_at(k + shift), shapes)
        points, shape_of, material = _make_points(world, cast, keep, pattern, ego, frame_rng, fog_visibility)
        boxes, render_objects = _make_labels(world, shapes, keep, cast, shape_of, calib, width, height)
        colors = _point_colors(world, shape_of, material)
        image = render_image(
            calib, width, height, points[:, :3], colors, render_objects[::-1],
            time_of_day=config.time_of_day, weather=config.weather, fog_visibility=fog_visibility,
            splat=splat, rng=frame_rng,
        )
        points.astype("<f4", copy=False).tofile(out / "velodyne" / f"{frame_id}.bin")
        Image.fromarray(image, mode="RGB").save(out / "image_2" / f"{frame_id}.png", format="PNG",
                                                compress_level=1)
        write_calibration(out / "calib" / f"{frame_id}.txt", calib)
        write_label_file(out / "label_2" / f"{frame_id}.txt", boxes)
        frame_counts = {c: 0 for c in LABEL_CLASSES}
        frame_dontcare = 0
        for box in boxes:
            if box.type == "DontCare":
                frame_dontcare += 1
            else:
                frame_counts[box.type] += 1
        for c, v in frame_counts.items():
            counts[c] += v
        dontcare += frame_dontcare
        n_points += int(points.shape[0])
        frames_meta.append(
            {
                "id": frame_id,
                "scene": config.name,
                "frame_index": k,
                "timestamp": round(config.start_timestamp + k * FRAME_PERIOD_S, 3),
                "time_of_day": config.time_of_day,
                "weather": config.weather,
                "location": config.location,
                "area": config.area,
                "ego_speed": config.ego_speed,
                "num_points": int(points.shape[0]),
                "object_counts": frame_counts,
                "num_dontcare": frame_dontcare,
            }
        )
        if map_spec is not None:
            frames_meta[-1]["map"] = f"map_{map_spec[0]:04d}"
            frames_meta[-1]["map_position_m"] = round(float(ego[0]), 3)
    return {
        "drive": drive_index,
        "name": config.name,
        "frames": frames_meta,
        "counts": counts,
        "dontcare": dontcare,
        "points": n_points,
    }


# ----------------------------------------------------------------------------------------------
# public entry point
# ----------------------------------------------------------------------------------------------


def generate(
    out_dir: PathLike,
    frames: int,
    *,
    seed: int = 0,
    small: bool = False,
    frames_per_drive: Union[int, tuple[int, int], None] = None,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    shared_maps: Optional[int] = None,
    preset: Optional[str] = None,
) -> SyntheticSummary:
    """Write a synthetic KITTI-format dataset (see the module docstring).

    Parameters
    ----------
    out_dir : str or os.PathLike
        Dataset root; created if missing. It must not already hold a dataset unless
        ``overwrite`` is true (then only the generator's own files are replaced).
    frames : int
        Total number of frames.
    seed : int
        Seed; the same arguments give byte-identical files.
    small : bool
        16 beams x 360 azimuth steps (a few thousand points) and 310x94 images, for tests.
    frames_per_drive : int or (int, int), optional
        Frames per drive (the last drive takes the remainder), or a ``(min, max)`` range to draw
        from. Default ``(20, 60)``.
    workers : int
        Processes generating drives in parallel; does not change the output.
    progress : bool
        Show a progress bar.
    overwrite : bool
        Replace an existing generated dataset in ``out_dir``.
    shared_maps : int, optional
        Put the drives on this many shared maps (drive ``i`` on map ``i % shared_maps``): drives
        of one map share location, road and static scene (buildings, trees, parked cars) and
        start at different points along it, so they revisit the same places, with their own time
        of day, weather, sensor noise and calibration, and moving actors shifted in time.
        Frames then carry ``map`` and ``map_position_m`` (ego position along the map's road)
        metadata. ``None`` (default): every drive has its own world, output unchanged.
    preset : str, optional
        A named scan preset of :data:`PRESETS` (e.g. ``"loop"``: a denser 32-beam scan with small
        images, for the detector-loop benchmark); it sets the LiDAR pattern and the image size
        (``small`` is then ignored). ``None`` (default): output unchanged.

    Returns
    -------
    SyntheticSummary

    Notes
    -----
    Time ``O(frames * rays * shapes in view)``; memory ``O(rays)`` per worker. Full-size frames
    take a few tenths of a second each on one core.
    """
    fpd = _validate_args(frames, frames_per_drive, workers)
    scan = _preset(preset)
    if scan is not None:
        small = scan.small_images
    started = time.perf_counter()
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)
    root = np.random.SeedSequence(int(seed))
    plan_ss, drives_ss = root.spawn(2)
    plan_rng = np.random.default_rng(plan_ss)
    sizes = _drive_sizes(int(frames), fpd, plan_rng)
    drive_seeds = drives_ss.spawn(len(sizes))
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
    jobs = [(str(out), i, n, f, s, bool(small)) for i, (n, f, s) in enumerate(zip(sizes, firsts, drive_seeds))]
    if shared_maps is not None:
        if isinstance(shared_maps, bool) or not isinstance(shared_maps, (int, np.integer)) or shared_maps < 1:
            raise InvalidInputError(f"shared_maps must be a positive integer, got {shared_maps!r}")
        map_root = root.spawn(1)[0]  # a third child: the default streams above are unchanged
        map_seeds = map_root.spawn(int(shared_maps) + 1)
        map_frames = max(sizes) + max(sizes) // 2
        starts = np.random.default_rng(map_seeds[-1])
        jobs = [(*job, (i % int(shared_maps), map_seeds[i % int(shared_maps)], map_frames,
                        int(starts.integers(0, map_frames - job[2] + 1)),
                        float(starts.uniform(5.0, 60.0))))
                for i, job in enumerate(jobs)]
    if preset is not None:
        jobs = [(*job, *((None,) if len(job) == 6 else ()), preset) for job in jobs]

    results: list[dict[str, Any]] = []
    with tqdm(total=int(frames), desc="synthetic KITTI", unit="frame", disable=not progress) as bar:
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                results.append(_generate_drive(*job))
                bar.update(job[2])
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(_generate_drive, *job) for job in jobs]
                for fut in as_completed(futures):
                    result = fut.result()
                    results.append(result)
                    bar.update(len(result["frames"]))
    results.sort(key=lambda r: r["drive"])

    # split by drive: never the same drive in train and val
    order = plan_rng.permutation(len(results))
    n_train = max(1, int(math.ceil(len(results) / 2))) if len(results) > 1 else 1
    train_drives = set(order[:n_train].tolist())
    split_ids: dict[str, list[str]] = {"train": [], "val": []}
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as fh:
        for r in results:
            target = "train" if r["drive"] in train_drives else "val"
            for meta in r["frames"]:
                fh.write(json.dumps(meta, sort_keys=True) + "\n")
                split_ids[target].append(meta["id"])
    for name, ids in (("train", split_ids["train"]), ("val", split_ids["val"]),
                      ("trainval", sorted(split_ids["train"] + split_ids["val"]))):
        (out / "ImageSets" / f"{name}.txt").write_text("".join(i + "\n" for i in sorted(ids)), encoding="ascii")
    config = {
        "generator": "curate.sources.synthetic",
        "format_version": 1,
        "seed": int(seed),
        "frames": int(frames),
        "small": bool(small),
        "frames_per_drive": list(fpd) if isinstance(fpd, tuple) else fpd,
    }
    if shared_maps is not None:
        config["shared_maps"] = int(shared_maps)
    if preset is not None:
        config["preset"] = str(preset)
    (out / "synthetic_config.json").write_text(json.dumps(config, sort_keys=True, indent=1) + "\n", encoding="ascii")

    counts: dict[str, int] = {c: 0 for c in LABEL_CLASSES}
    for r in results:
        for c, v in r["counts"].items():
            counts[c] += v
    summary = SyntheticSummary(
        out_dir=str(out),
        frames=int(frames),
        drives=len(results),
        boxes_per_class=counts,
        dontcare=sum(r["dontcare"] for r in results),
        points=sum(r["points"] for r in results),
        seconds=time.perf_counter() - started,
        split_frames={k: len(v) for k, v in split_ids.items()},
        seed=int(seed),
        small=bool(small),
    )
    logger.info(
        "synthetic dataset %s: %d frames, %d drives, %.0f points/frame, %.3f s/frame",
        out, summary.frames, summary.drives, summary.points_per_frame, summary.seconds_per_frame,
    )
    return summary
