"""Synthetic ray-cast scenes written in the nuScenes v1.0 layout (``curate synth --format nuscenes``).

The scenes are those of :mod:`curate.sources.synthetic` (same world model, ray caster and
renderer); only the file layout differs::

    <out>/<version>/{scene,sample,sample_data,ego_pose,calibrated_sensor,sensor,
                     sample_annotation,instance,category,attribute,visibility,log,map}.json
    <out>/<version>/splits.json                       custom splits (devkit >= 1.2): synthetic_train / _val
    <out>/samples/LIDAR_TOP/<scene>__LIDAR_TOP__<us>.pcd.bin   key frames at 10 Hz
    <out>/sweeps/LIDAR_TOP/<scene>__LIDAR_TOP__<us>.pcd.bin    the sweeps between them (20 Hz stream)
    <out>/samples/CAM_*/<scene>__CAM_*__<us>.jpg      six cameras at the key frames
    <out>/maps/<token>.png                            one small map mask per location

Frames
------
* Ego frame: x forward, y left, z up, origin on the ground below the rear axle.
* ``LIDAR_TOP`` sits at ``(0.94, 0, 1.73)`` in the ego frame and is yawed by -90 degrees (x to
  the right, y forward) as on the nuScenes car; point files hold float32
  ``x, y, z, intensity (0-255), ring`` in that frame.
* Six cameras (``CAM_FRONT``, ``CAM_FRONT_RIGHT``, ``CAM_BACK_RIGHT``, ``CAM_BACK``,
  ``CAM_BACK_LEFT``, ``CAM_FRONT_LEFT``) with pinhole intrinsics; each drive's world is placed in
  the global frame with its own heading and offset.
* Annotations: every actor within :data:`ANNOTATION_RANGE_M` of the ego vehicle, in the global
  frame (centre, ``size = [w, l, h]``, yaw quaternion), with ``num_lidar_pts`` from the ray cast,
  a visibility level from the fraction of its rays that reach it, attributes from its motion,
  and instance links (prev / next) along the scene.

Classes map to nuScenes categories through :data:`CATEGORY_OF_CLASS` (``Van`` -> ``vehicle.car``,
``Tram`` -> ``vehicle.bus.rigid``, ``Cyclist`` -> ``vehicle.bicycle`` with ``cycle.with_rider``).
Scene descriptions name the time of day, weather and location (``"night, rain, downtown"``), the
way nuScenes descriptions mention night and rain.

Determinism: the bytes depend only on ``(seed, frames, small, frames_per_drive)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from curate.errors import InvalidInputError
from curate.sources._raycast import cast_rays
from curate.sources._render import render_image
from curate.sources._scene import FRAME_PERIOD_S, SENSOR_HEIGHT_M, build_drive, sample_drive_config
from curate.sources.calib import Calibration
from curate.sources.synthetic import (
    _drive_sizes,
    _make_points,
    _point_colors,
    _validate_args,
    lidar_pattern,
)

__all__ = [
    "generate_nuscenes",
    "CATEGORY_OF_CLASS",
    "CAMERA_CHANNELS",
    "NUSCENES_CATEGORIES",
    "NUSCENES_ATTRIBUTES",
    "ANNOTATION_RANGE_M",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: Our classes -> nuScenes categories.
CATEGORY_OF_CLASS: dict[str, str] = {
    "Car": "vehicle.car",
    "Van": "vehicle.car",
    "Truck": "vehicle.truck",
    "Tram": "vehicle.bus.rigid",
    "Pedestrian": "human.pedestrian.adult",
    "Cyclist": "vehicle.bicycle",
}
#: The 23 nuScenes v1.0 categories (the table is written whole, in this order).
NUSCENES_CATEGORIES: tuple[str, ...] = (
    "human.pedestrian.adult", "human.pedestrian.child", "human.pedestrian.wheelchair",
    "human.pedestrian.stroller", "human.pedestrian.personal_mobility", "human.pedestrian.police_officer",
    "human.pedestrian.construction_worker", "animal", "vehicle.car", "vehicle.motorcycle",
    "vehicle.bicycle", "vehicle.bus.bendy", "vehicle.bus.rigid", "vehicle.truck", "vehicle.construction",
    "vehicle.emergency.ambulance", "vehicle.emergency.police", "vehicle.trailer",
    "movable_object.barrier", "movable_object.trafficcone", "movable_object.pushable_pullable",
    "movable_object.debris", "static_object.bicycle_rack",
)
#: The 8 nuScenes attributes.
NUSCENES_ATTRIBUTES: tuple[str, ...] = (
    "vehicle.moving", "vehicle.stopped", "vehicle.parked", "cycle.with_rider", "cycle.without_rider",
    "pedestrian.sitting_lying_down", "pedestrian.standing", "pedestrian.moving",
)
#: Camera channels, their yaw in the ego frame (degrees), position (m) and horizontal FOV.
CAMERA_CHANNELS: tuple[str, ...] = (
    "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_BACK_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_FRONT_LEFT",
)
_CAMERAS: dict[str, tuple[float, tuple[float, float, float], float]] = {
    "CAM_FRONT": (0.0, (1.70, 0.0, 1.51), 1266.0),
    "CAM_FRONT_RIGHT": (-55.0, (1.55, -0.49, 1.50), 1260.0),
    "CAM_BACK_RIGHT": (-110.0, (1.04, -0.48, 1.56), 1259.0),
    "CAM_BACK": (180.0, (0.03, 0.0, 1.57), 809.0),
    "CAM_BACK_LEFT": (110.0, (1.05, 0.48, 1.56), 1257.0),
    "CAM_FRONT_LEFT": (55.0, (1.52, 0.49, 1.51), 1272.0),
}
_NUSC_IMAGE = (1600, 900)
#: LIDAR_TOP mounting in the ego frame.
LIDAR_TRANSLATION = (0.94, 0.0, SENSOR_HEIGHT_M)
LIDAR_YAW = -math.pi / 2
#: Actors farther than this (metres, horizontal) from the ego vehicle are not annotated.
ANNOTATION_RANGE_M = 60.0
_VISIBILITY_LEVELS = (("1", "v0-40"), ("2", "v40-60"), ("3", "v60-80"), ("4", "v80-100"))
_TABLES = (
    "scene", "sample", "sample_data", "ego_pose", "calibrated_sensor", "sensor", "sample_annotation",
    "instance", "category", "attribute", "visibility", "log", "map",
)
_SWEEPS_BEFORE_FIRST = 2


def _token(*parts: Any) -> str:
    """A 32-hex token derived from ``parts`` (stable across runs)."""
    return hashlib.md5("/".join(str(p) for p in parts).encode()).hexdigest()


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _quat_of_matrix(m: np.ndarray) -> list[float]:
    """``[w, x, y, z]`` of a rotation matrix (Shepperd's method)."""
    tr = float(np.trace(m))
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    return [float(v) for v in q]


def _yaw_quat(yaw: float) -> list[float]:
    return [math.cos(yaw / 2.0), 0.0, 0.0, math.sin(yaw / 2.0)]


# camera axes (x right, y down, z forward) expressed in a forward-looking x-forward frame
_CAM_BASE = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _camera_setup(small: bool) -> dict[str, dict[str, Any]]:
    scale = 0.125 if small else 0.5
    width, height = int(_NUSC_IMAGE[0] * scale), int(_NUSC_IMAGE[1] * scale)
    out = {}
    lidar_t = np.asarray(LIDAR_TRANSLATION)
    for channel in CAMERA_CHANNELS:
        yaw_deg, pos, focal = _CAMERAS[channel]
        yaw = math.radians(yaw_deg)
        k = np.array([[focal * scale, 0.0, width / 2.0], [0.0, focal * scale, height / 2.0], [0.0, 0.0, 1.0]])
        rot_ego = _rz(yaw) @ _CAM_BASE  # camera -> ego
        # rendering happens in the synthetic sensor frame turned by -yaw (camera looks along +x)
        t_turned = _rz(-yaw) @ (np.asarray(pos) - lidar_t)
        tr = np.zeros((3, 4))
        tr[:, :3] = _CAM_BASE.T
        tr[:, 3] = -_CAM_BASE.T @ t_turned
        p2 = np.zeros((3, 4))
        p2[:, :3] = k
        calib = Calibration(P2=p2, R0_rect=np.eye(3), Tr_velo_to_cam=tr)
        out[channel] = {
            "yaw": yaw, "translation": [float(v) for v in pos], "rotation": _quat_of_matrix(rot_ego),
            "intrinsic": k.tolist(), "width": width, "height": height, "calib": calib,
        }
    return out


def _prepare(out: Path, version: str, overwrite: bool) -> None:
    ours = [out / version, out / "samples", out / "sweeps", out / "maps"]
    existing = [p for p in ours if p.exists()]
    if existing and not overwrite:
        raise InvalidInputError(
            f"{out}: already holds a dataset ({', '.join(p.name for p in existing)}); pick an empty "
            "folder or pass overwrite=True"
        )
    for p in existing:
        shutil.rmtree(p)
    (out / version).mkdir(parents=True)
    for ch in ("LIDAR_TOP", *CAMERA_CHANNELS):
        (out / "samples" / ch).mkdir(parents=True)
    (out / "sweeps" / "LIDAR_TOP").mkdir(parents=True)
    (out / "maps").mkdir(parents=True)


def _drive(out: Path, drive_index: int, n_frames: int, first_frame: int, seed_seq: np.random.SeedSequence,
           small: bool, cams: dict[str, dict[str, Any]], scene_number: int) -> dict[str, list[dict[str, Any]]]:
    """Ray-cast and write one drive; returns its rows of every table."""
    n_stream = 2 * (n_frames - 1) + 1 + _SWEEPS_BEFORE_FIRST  # 20 Hz LiDAR stream
    children = seed_seq.spawn(n_stream + 1)
    rng = np.random.default_rng(children[0])
    config = sample_drive_config(rng, drive_index, n_frames, first_frame)
    world = build_drive(config, rng)
    fog_visibility = float(rng.uniform(40.0, 90.0)) if config.weather == "fog" else math.inf
    pattern = lidar_pattern(small)
    scene_name = f"scene-{scene_number:04d}"
    heading = float(rng.uniform(-math.pi, math.pi))
    offset = np.array([float(rng.uniform(200.0, 1800.0)), float(rng.uniform(200.0, 1800.0)), 0.0])
    r_global = _rz(heading)
    log_token = _token("log", scene_name)
    scene_token = _token("scene", scene_name)
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in _TABLES}
    lidar_rot = _rz(LIDAR_YAW)
    lidar_t = np.asarray(LIDAR_TRANSLATION)
    cs_tokens = {ch: _token("calibrated_sensor", scene_name, ch) for ch in ("LIDAR_TOP", *CAMERA_CHANNELS)}
    rows["calibrated_sensor"].append({
        "token": cs_tokens["LIDAR_TOP"], "sensor_token": _token("sensor", "LIDAR_TOP"),
        "translation": [float(v) for v in lidar_t], "rotation": _quat_of_matrix(lidar_rot), "camera_intrinsic": [],
    })
    for ch in CAMERA_CHANNELS:
        rows["calibrated_sensor"].append({
            "token": cs_tokens[ch], "sensor_token": _token("sensor", ch), "translation": cams[ch]["translation"],
            "rotation": cams[ch]["rotation"], "camera_intrinsic": cams[ch]["intrinsic"],
        })
    sample_tokens = [_token("sample", scene_name, k) for k in range(n_frames)]
    t0_us = int(round(config.start_timestamp * 1e6))
    lidar_sd: list[str] = []
    cam_sd: dict[str, list[str]] = {ch: [] for ch in CAMERA_CHANNELS}
    annotations_by_actor: dict[int, list[str]] = {}
    counts = {"points": 0, "annotations": 0}
    for j in range(n_stream):
        step = j - _SWEEPS_BEFORE_FIRST  # 20 Hz steps from the first key frame
        key = step >= 0 and step % 2 == 0
        k = step // 2 if key else None
        t_frame = step / 2.0  # in key-frame periods (what the world model takes)
        ts = t0_us + int(round(step * FRAME_PERIOD_S / 2.0 * 1e6))
        frame_rng = np.random.default_rng(children[j + 1])
        ex, ey, eyaw = world.ego_pose(t_frame)
        shapes, keep = world.shapes_at(t_frame, pattern.max_range)
        cast = cast_rays(pattern, world.ground_at(t_frame), shapes)
        ego_xyz = (ex, ey, eyaw)
        points, shape_of, material = _make_points(world, cast, keep, pattern, ego_xyz, frame_rng, fog_visibility)
        # ego pose in the global frame: the sensor sits LIDAR_TRANSLATION ahead / above the ego origin
        r_ego = r_global @ _rz(eyaw)
        sensor_world = np.array([ex, ey, world.slope * ex])
        ego_world = sensor_world - _rz(eyaw) @ np.array([lidar_t[0], lidar_t[1], 0.0])
        t_ego = r_global @ ego_world + offset
        sd_token = _token("sample_data", scene_name, "LIDAR_TOP", j)
        rows["ego_pose"].append({
            "token": sd_token, "timestamp": ts, "rotation": _quat_of_matrix(r_ego),
            "translation": [float(v) for v in t_ego],
        })
        # points: synthetic sensor frame (x forward) -> LIDAR_TOP frame (x right)
        ring = np.argmin(np.abs(np.arctan2(points[:, 2], np.hypot(points[:, 0], points[:, 1]))[:, None]
                                - pattern.elevations[None, :]), axis=1)
        out_pts = np.empty((points.shape[0], 5), dtype="<f4")
        out_pts[:, :3] = points[:, :3] @ lidar_rot  # R^T p for row vectors
        out_pts[:, 3] = np.round(points[:, 3] * 255.0)
        out_pts[:, 4] = ring
        folder = "samples" if key else "sweeps"
        rel = f"{folder}/LIDAR_TOP/{scene_name}__LIDAR_TOP__{ts}.pcd.bin"
        out_pts.tofile(out / rel)
        counts["points"] += int(points.shape[0])
        rows["sample_data"].append({
            "token": sd_token, "sample_token": sample_tokens[k] if key else sample_tokens[min(max((step + 1) // 2, 0), n_frames - 1)],
            "ego_pose_token": sd_token, "calibrated_sensor_token": cs_tokens["LIDAR_TOP"], "timestamp": ts,
            "fileformat": "pcd", "is_key_frame": bool(key), "height": 0, "width": 0, "filename": rel,
            "prev": lidar_sd[-1] if lidar_sd else "", "next": "", "channel": "LIDAR_TOP",
        })
        lidar_sd.append(sd_token)
        if not key:
            continue
        # -- key frame: cameras and annotations --------------------------------------------------
        colors = _point_colors(world, shape_of, material)
        render_objects = []
        n_world = world.x.size
        points_per_shape = np.bincount(shape_of[shape_of >= 0], minlength=n_world)
        visible_rays = np.bincount(cast.shape_id[cast.shape_id >= 0], minlength=shapes.n_shapes)
        ann_rows = []
        for jj, w in enumerate(keep):
            cls = world.label[w]
            if not cls:
                continue
            length, width, height = world.dims[w]
            cx, cy, bottom = shapes.centers[jj]
            yaw_s = float(shapes.yaws[jj])
            a, b = world.part_start[w], world.part_stop[w]
            offsets = world.part_offset[a:b]
            part_centers = np.column_stack([
                cx + math.cos(yaw_s) * offsets[:, 0] - math.sin(yaw_s) * offsets[:, 1],
                cy + math.sin(yaw_s) * offsets[:, 0] + math.cos(yaw_s) * offsets[:, 1],
                bottom + offsets[:, 2],
            ])
            render_objects.append((math.hypot(cx, cy), (part_centers, world.part_half[a:b], yaw_s, world.color[w])))
            centre_s = np.array([cx, cy, bottom + height / 2.0])
            centre_e = centre_s + lidar_t
            if math.hypot(centre_e[0], centre_e[1]) > ANNOTATION_RANGE_M:
                continue
            centre_g = r_ego @ centre_e + t_ego
            yaw_g = heading + eyaw + yaw_s
            rays = int(cast.shape_rays[jj])
            vis = visible_rays[jj] / rays if rays > 0 else 0.0
            level = 1 if vis < 0.4 else (2 if vis < 0.6 else (3 if vis < 0.8 else 4))
            speed = math.hypot(world.vx[w], world.vy[w])
            if cls in ("Pedestrian",):
                attrs = ["pedestrian.moving" if speed > 0.2 else "pedestrian.standing"]
            elif cls == "Cyclist":
                attrs = ["cycle.with_rider"]
            else:
                attrs = ["vehicle.moving" if speed > 0.2 else "vehicle.parked"]
            ann_token = _token("sample_annotation", scene_name, k, int(w))
            inst_token = _token("instance", scene_name, int(w))
            chain = annotations_by_actor.setdefault(int(w), [])
            ann_rows.append((math.hypot(cx, cy), {
                "token": ann_token, "sample_token": sample_tokens[k], "instance_token": inst_token,
                "visibility_token": str(level), "attribute_tokens": [_token("attribute", x) for x in attrs],
                "translation": [float(v) for v in centre_g], "size": [float(width), float(length), float(height)],
                "rotation": _yaw_quat(yaw_g), "prev": chain[-1] if chain else "", "next": "",
                "num_lidar_pts": int(points_per_shape[w]), "num_radar_pts": 0, "_class": cls,
            }))
            chain.append(ann_token)
        ann_rows.sort(key=lambda e: e[0])
        rows["sample_annotation"].extend(r for _, r in ann_rows)
        counts["annotations"] += len(ann_rows)
        render_objects.sort(key=lambda e: -e[0])
        for ch in CAMERA_CHANNELS:
            cam = cams[ch]
            turn = _rz(-cam["yaw"])
            pts_turned = points[:, :3].astype(np.float64) @ turn.T
            objects = [(c @ turn.T, h, yaw - cam["yaw"], col) for _, (c, h, yaw, col) in render_objects]
            el_gap = float(np.max(np.diff(pattern.elevations)))
            fx = cam["intrinsic"][0][0]
            splat = (int(math.ceil(pattern.azimuth_step * fx)) + 1, int(math.ceil(el_gap * fx)) + 1)
            image = render_image(
                cam["calib"], cam["width"], cam["height"], pts_turned, colors, objects,
                time_of_day=config.time_of_day, weather=config.weather, fog_visibility=fog_visibility,
                splat=splat, rng=frame_rng,
            )
            rel_img = f"samples/{ch}/{scene_name}__{ch}__{ts}.jpg"
            Image.fromarray(image, mode="RGB").save(out / rel_img, format="JPEG", quality=85)
            cam_token = _token("sample_data", scene_name, ch, k)
            rows["ego_pose"].append({
                "token": cam_token, "timestamp": ts, "rotation": _quat_of_matrix(r_ego),
                "translation": [float(v) for v in t_ego],
            })
            rows["sample_data"].append({
                "token": cam_token, "sample_token": sample_tokens[k], "ego_pose_token": cam_token,
                "calibrated_sensor_token": cs_tokens[ch], "timestamp": ts, "fileformat": "jpg",
                "is_key_frame": True, "height": cam["height"], "width": cam["width"], "filename": rel_img,
                "prev": cam_sd[ch][-1] if cam_sd[ch] else "", "next": "", "channel": ch,
            })
            cam_sd[ch].append(cam_token)
    # fix the next links of sample_data chains and annotation chains
    by_token = {r["token"]: r for r in rows["sample_data"]}
    for chain in [lidar_sd, *cam_sd.values()]:
        for a, b in zip(chain[:-1], chain[1:]):
            by_token[a]["next"] = b
    ann_by_token = {r["token"]: r for r in rows["sample_annotation"]}
    for w, chain in annotations_by_actor.items():
        for a, b in zip(chain[:-1], chain[1:]):
            ann_by_token[a]["next"] = b
        cls = ann_by_token[chain[0]]["_class"]
        rows["instance"].append({
            "token": _token("instance", scene_name, w), "category_token": _token("category", CATEGORY_OF_CLASS[cls]),
            "nbr_annotations": len(chain), "first_annotation_token": chain[0], "last_annotation_token": chain[-1],
        })
    for r in rows["sample_annotation"]:
        r.pop("_class")
    for r in rows["sample_data"]:
        r.pop("channel")
    for k in range(n_frames):
        rows["sample"].append({
            "token": sample_tokens[k], "timestamp": t0_us + int(round(k * FRAME_PERIOD_S * 1e6)),
            "prev": sample_tokens[k - 1] if k > 0 else "", "next": sample_tokens[k + 1] if k + 1 < n_frames else "",
            "scene_token": scene_token,
        })
    description = f"{config.time_of_day}, {config.weather}, {config.location}, {config.area}"
    rows["scene"].append({
        "token": scene_token, "log_token": log_token, "nbr_samples": n_frames,
        "first_sample_token": sample_tokens[0], "last_sample_token": sample_tokens[-1],
        "name": scene_name, "description": description,
    })
    rows["log"].append({
        "token": log_token, "logfile": f"synthetic-{config.name}", "vehicle": "synthetic-ego",
        "date_captured": time.strftime("%Y-%m-%d", time.gmtime(config.start_timestamp)),
        "location": config.location,
    })
    rows["_counts"] = [counts]  # type: ignore[list-item]
    return rows


def generate_nuscenes(
    out_dir: PathLike,
    frames: int,
    *,
    seed: int = 0,
    small: bool = False,
    frames_per_drive: Union[int, tuple[int, int], None] = None,
    version: str = "v1.0-mini",
    progress: Optional[bool] = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a synthetic dataset in the nuScenes v1.0 layout (see the module docstring).

    Parameters
    ----------
    out_dir : str or os.PathLike
        Dataset root (``dataroot`` of the devkit).
    frames : int
        Key frames (samples) in total.
    seed : int
        Seed; the same arguments give byte-identical files.
    small : bool
        16-beam LiDAR and 200x112 images (tests).
    frames_per_drive : int or (int, int), optional
        Samples per scene (default ``(20, 60)``).
    version : str
        Name of the table folder (``v1.0-mini``, ``v1.0-trainval``, ...).
    progress : bool, optional
        Progress bar.
    overwrite : bool
        Replace a dataset this function wrote before.

    Returns
    -------
    dict
        ``out_dir``, ``version``, ``scenes``, ``samples``, ``sweeps``, ``annotations``, ``points``,
        ``splits`` (scene names per split) and ``seconds``.

    Notes
    -----
    Time ``O(frames * 2 * rays * shapes in view)`` plus six renders per key frame; memory ``O(rays)``
    plus the table rows.
    """
    fpd = _validate_args(frames, frames_per_drive, 1)
    if not version or "/" in version or version.startswith("."):
        raise InvalidInputError(f"version must be a folder name such as 'v1.0-mini', got {version!r}")
    started = time.perf_counter()
    out = Path(out_dir)
    _prepare(out, version, overwrite)
    root = np.random.SeedSequence(int(seed))
    plan_ss, drives_ss = root.spawn(2)
    plan_rng = np.random.default_rng(plan_ss)
    sizes = _drive_sizes(int(frames), fpd, plan_rng)
    drive_seeds = drives_ss.spawn(len(sizes))
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int).tolist()
    cams = _camera_setup(bool(small))
    tables: dict[str, list[dict[str, Any]]] = {t: [] for t in _TABLES}
    totals = {"points": 0, "annotations": 0}
    with tqdm(total=int(frames), desc="synthetic nuScenes", unit="sample", disable=not progress) as bar:
        for i, (n, f, s) in enumerate(zip(sizes, firsts, drive_seeds)):
            rows = _drive(out, i, n, f, s, bool(small), cams, i + 1)
            for key, value in rows.pop("_counts")[0].items():  # type: ignore[union-attr]
                totals[key] += value
            for t in _TABLES:
                tables[t].extend(rows[t])
            bar.update(n)
    tables["sensor"] = [
        {"token": _token("sensor", ch), "channel": ch, "modality": "lidar" if ch == "LIDAR_TOP" else "camera"}
        for ch in ("LIDAR_TOP", *CAMERA_CHANNELS)
    ]
    tables["category"] = [
        {"token": _token("category", name), "name": name, "description": f"nuScenes category {name}", "index": i}
        for i, name in enumerate(NUSCENES_CATEGORIES)
    ]
    tables["attribute"] = [
        {"token": _token("attribute", name), "name": name, "description": f"nuScenes attribute {name}"}
        for name in NUSCENES_ATTRIBUTES
    ]
    tables["visibility"] = [
        {"token": tok, "level": level, "description": f"visibility of whole object is between {level[1:]} %"}
        for tok, level in _VISIBILITY_LEVELS
    ]
    locations = sorted({log["location"] for log in tables["log"]})
    mask = np.full((64, 64), 255, dtype=np.uint8)
    for loc in locations:
        token = _token("map", loc)
        Image.fromarray(mask, mode="L").save(out / "maps" / f"{token}.png")
        tables["map"].append({
            "token": token, "filename": f"maps/{token}.png", "category": "semantic_prior",
            "log_tokens": [log["token"] for log in tables["log"] if log["location"] == loc],
        })
    for t in _TABLES:
        with open(out / version / f"{t}.json", "w", encoding="utf-8") as fh:
            json.dump(tables[t], fh, indent=0)
    # split by scene: never the same scene in train and val
    names = [s["name"] for s in tables["scene"]]
    order = plan_rng.permutation(len(names))
    n_train = max(1, int(math.ceil(len(names) / 2))) if len(names) > 1 else 1
    # custom split names (devkit >= 1.2 reads them from splits.json; "train" / "val" are its own)
    splits = {"synthetic_train": sorted(names[i] for i in order[:n_train]),
              "synthetic_val": sorted(names[i] for i in order[n_train:])}
    (out / version / "splits.json").write_text(json.dumps(splits, indent=1) + "\n", encoding="ascii")
    config = {
        "generator": "curate.sources.synthetic_nuscenes", "format_version": 1, "seed": int(seed),
        "frames": int(frames), "small": bool(small), "version": version,
        "frames_per_drive": list(fpd) if isinstance(fpd, tuple) else fpd,
    }
    (out / version / "synthetic_config.json").write_text(json.dumps(config, sort_keys=True, indent=1) + "\n")
    n_sweeps = sum(1 for r in tables["sample_data"] if not r["is_key_frame"])
    summary = {
        "out_dir": str(out), "version": version, "scenes": len(names), "samples": len(tables["sample"]),
        "sweeps": n_sweeps, "annotations": totals["annotations"], "points": totals["points"], "splits": splits,
        "seconds": time.perf_counter() - started,
    }
    logger.info("synthetic nuScenes %s/%s: %d scenes, %d samples, %d sweeps, %d annotations",
                out, version, summary["scenes"], summary["samples"], n_sweeps, summary["annotations"])
    return summary
