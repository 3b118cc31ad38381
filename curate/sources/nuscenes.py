"""nuScenes v1.0 reader: one :class:`FrameRecord` per key frame (sample).

Expected layout (the official one; ``curate synth --format nuscenes`` writes it too)::

    <root>/<version>/{scene,sample,sample_data,ego_pose,calibrated_sensor,sensor,
                      sample_annotation,instance,category,attribute,log}.json   (map.json optional)
    <root>/samples/LIDAR_TOP/*.pcd.bin   key frames (float32 x, y, z, intensity, ring)
    <root>/sweeps/LIDAR_TOP/*.pcd.bin    the sweeps between them
    <root>/samples/CAM_*/*.jpg           the six cameras

What a record holds
-------------------
* ``id`` = sample token (``prefix/token`` with a prefix), ``scene`` = scene name (the drive),
  ``frame_index`` = position of the sample in its scene, ``timestamp`` in seconds.
* ``lidar_path``: the LIDAR_TOP key frame; ``image_paths``: the six cameras in
  :data:`CAMERA_ORDER`; ``num_points`` from the file size (20 bytes a point).
* ``metadata``: ``time_of_day`` (``night`` / ``dusk`` / ``day``) and ``weather`` (``rain`` /
  ``fog`` / ``clear``) from the scene description, ``location`` from the log, and under
  ``"nuscenes"`` everything the loop and the embedders need: the tokens, ``lidar2ego`` and
  ``ego2global`` (translation + ``[w, x, y, z]`` rotation), the cameras (path, token, timestamp,
  intrinsics, ``sensor2ego``, ``ego2global``, ``sensor2lidar`` 3x3 + translation), the preceding
  sweeps (token, path, timestamp, ``sensor2lidar``: a point ``p`` of the sweep maps into the key
  frame as ``R @ p + t``), and per box its annotation / instance token, attributes, velocity in
  the LiDAR frame, ``num_lidar_pts`` and visibility.
* ``boxes``: :class:`Box3D` in the **LiDAR frame** (``metadata["box_frame"] == "lidar"``):
  ``type`` = nuScenes category, ``location`` = bottom centre ``(x, y, z)``, ``dimensions`` =
  ``(h, w, l)``, ``rotation_y`` = yaw around LiDAR z from the x axis; no 2-D box
  (``bbox = (-1, -1, -1, -1)``, ``alpha = -10``); ``occluded`` = ``4 - visibility level``
  clipped to ``0..3``.

Speed
-----
Construction reads the JSON tables once and builds hash indexes (``O(rows)``); iterating stats the
key-frame and sweep files (never reads them). 10k key frames with 10 sweeps each take seconds.

Errors
------
A missing or unreadable table raises :class:`~curate.errors.NotFoundError` /
:class:`~curate.errors.CorruptDataError` naming the file (at construction, before anything is
written); a missing key-frame, sweep or camera file raises ``NotFoundError`` naming the file
while iterating (the workspace then rolls the ingest back).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from curate.errors import CorruptDataError, InvalidInputError, NotFoundError
from curate.sources.base import Box3D, FrameRecord
from curate.sources.registry import SourceOption, register_source

__all__ = [
    "NuScenesSource",
    "CAMERA_ORDER",
    "REQUIRED_TABLES",
    "quaternion_to_matrix",
    "DETECTION_CLASSES",
    "detection_name",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: Camera channels, in the order of ``image_paths`` (mmdet3d's order).
CAMERA_ORDER: tuple[str, ...] = (
    "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT",
)
#: Tables the reader needs (``map`` is read when present).
REQUIRED_TABLES: tuple[str, ...] = (
    "scene", "sample", "sample_data", "ego_pose", "calibrated_sensor", "sensor", "sample_annotation",
    "instance", "category", "attribute", "log",
)
#: The 10 classes of the nuScenes detection task.
DETECTION_CLASSES: tuple[str, ...] = (
    "car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle", "pedestrian",
    "traffic_cone", "barrier",
)
_CATEGORY_TO_DETECTION = {
    "movable_object.barrier": "barrier",
    "vehicle.bicycle": "bicycle",
    "vehicle.bus.bendy": "bus",
    "vehicle.bus.rigid": "bus",
    "vehicle.car": "car",
    "vehicle.construction": "construction_vehicle",
    "vehicle.motorcycle": "motorcycle",
    "human.pedestrian.adult": "pedestrian",
    "human.pedestrian.child": "pedestrian",
    "human.pedestrian.construction_worker": "pedestrian",
    "human.pedestrian.police_officer": "pedestrian",
    "movable_object.trafficcone": "traffic_cone",
    "vehicle.trailer": "trailer",
    "vehicle.truck": "truck",
}
_BYTES_PER_POINT = 20


def detection_name(category: str) -> Optional[str]:
    """The detection class of a nuScenes category (the devkit's mapping), ``None`` if unused."""
    return _CATEGORY_TO_DETECTION.get(category)


def quaternion_to_matrix(q: Any) -> np.ndarray:
    """3x3 rotation matrix of a ``[w, x, y, z]`` quaternion (normalised first)."""
    w, x, y, z = (float(v) for v in q)
    n = math.sqrt(w * w + x * x + y * y + z * z)
    if not n > 0:
        raise CorruptDataError(f"rotation quaternion {list(q)} has zero length")
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def quaternions_to_matrices(q: np.ndarray) -> np.ndarray:
    """``(N, 3, 3)`` rotation matrices of ``(N, 4)`` ``[w, x, y, z]`` quaternions (vectorised)."""
    q = np.asarray(q, dtype=np.float64).reshape(-1, 4)
    n = np.linalg.norm(q, axis=1)
    if np.any(~(n > 0)):
        raise CorruptDataError(f"rotation quaternion {q[int(np.argmin(n))].tolist()} has zero length")
    w, x, y, z = (q / n[:, None]).T
    out = np.empty((len(q), 3, 3))
    out[:, 0, 0] = 1 - 2 * (y * y + z * z)
    out[:, 0, 1] = 2 * (x * y - z * w)
    out[:, 0, 2] = 2 * (x * z + y * w)
    out[:, 1, 0] = 2 * (x * y + z * w)
    out[:, 1, 1] = 1 - 2 * (x * x + z * z)
    out[:, 1, 2] = 2 * (y * z - x * w)
    out[:, 2, 0] = 2 * (x * z - y * w)
    out[:, 2, 1] = 2 * (y * z + x * w)
    out[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return out


class _Poses:
    """Rotation matrices and translations of a table of poses, indexed by token (vectorised)."""

    def __init__(self, rows: list[dict[str, Any]], where: Path) -> None:
        self.index = {r["token"]: i for i, r in enumerate(rows)}
        try:
            self.r = quaternions_to_matrices(np.array([r["rotation"] for r in rows], dtype=np.float64).reshape(-1, 4))
            self.t = np.array([r["translation"] for r in rows], dtype=np.float64).reshape(-1, 3)
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptDataError(f"{where}: every record needs a 4-value 'rotation' and a 3-value "
                                   f"'translation' ({exc})") from exc

    def get(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        i = self.index[token]
        return self.r[i], self.t[i]


def _load_table(folder: Path, name: str) -> list[dict[str, Any]]:
    path = folder / f"{name}.json"
    if not path.is_file():
        raise NotFoundError(
            f"{path}: nuScenes table {name!r} is missing; a nuScenes version folder holds "
            f"{', '.join(t + '.json' for t in REQUIRED_TABLES)}"
        )
    try:
        with open(path, "rb") as fh:
            rows = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptDataError(f"{path}: not valid JSON ({exc}); re-download or re-extract the table") from exc
    if not isinstance(rows, list) or any(not isinstance(r, dict) or "token" not in r for r in rows):
        raise CorruptDataError(f"{path}: expected a JSON list of records that each have a 'token'")
    return rows


def _description_tags(description: str) -> tuple[str, str]:
    text = description.lower()
    tod = "night" if "night" in text else ("dusk" if "dusk" in text else "day")
    weather = "rain" if "rain" in text else ("fog" if "fog" in text else "clear")
    return tod, weather


@register_source("nuscenes",
                 version=SourceOption("v1.0-mini", "table folder: v1.0-mini, v1.0-trainval, v1.0-test, ..."),
                 prefix=SourceOption(None, "prefix for frame ids (to keep datasets apart)"))
class NuScenesSource:
    """Key frames of a nuScenes v1.0 dataset (see the module docstring).

    Parameters
    ----------
    root : str or os.PathLike
        ``dataroot``: the folder holding ``<version>/``, ``samples/`` and ``sweeps/``.
    version : str
        Table folder, ``v1.0-mini``, ``v1.0-trainval``, ``v1.0-test`` or any other name.
    prefix : str, optional
        Frame ids become ``f"{prefix}/{sample token}"``; also the source's :attr:`name`.
    max_sweeps : int
        Preceding sweeps recorded per key frame (mmdet3d's converter keeps 10).
    check_files : bool
        Stat the key-frame, sweep and camera files while iterating (default); ``False`` trusts the
        tables.

    Raises
    ------
    NotFoundError
        ``root`` or ``root/version`` or a required table does not exist.
    CorruptDataError
        A table is not valid JSON or misses a record another one points to.
    """

    def __init__(self, root: PathLike, version: str = "v1.0-mini", prefix: Optional[str] = None,
                 max_sweeps: int = 10, check_files: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        self.version = version
        self.prefix = prefix
        self.max_sweeps = int(max_sweeps)
        self.check_files = bool(check_files)
        if prefix is not None and (not prefix or prefix.strip("/") != prefix):
            raise InvalidInputError(
                f"prefix must be a non-empty string without leading/trailing '/', got {prefix!r}"
            )
        if self.max_sweeps < 0:
            raise InvalidInputError(f"max_sweeps must be >= 0, got {max_sweeps}")
        if not self.root.is_dir():
            raise NotFoundError(f"{self.root}: nuScenes dataroot does not exist")
        if not version or "/" in version or "\\" in version or version in (".", ".."):
            raise InvalidInputError(f"version must be a folder name such as 'v1.0-mini', got {version!r}")
        self.table_dir = self.root / version
        if not self.table_dir.is_dir():
            present = sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name.startswith("v"))
            raise NotFoundError(
                f"{self.table_dir}: no table folder for version {version!r} "
                f"(found: {', '.join(present) or 'none'}); pass --version"
            )
        self.name = prefix if prefix is not None else f"{self.root.name}/{version}"
        self._root_str = str(self.root)
        t = {name: _load_table(self.table_dir, name) for name in REQUIRED_TABLES}
        self._tables = t
        self._index = {name: {r["token"]: r for r in rows} for name, rows in t.items()}
        splits_file = self.table_dir / "splits.json"
        self._split_of_scene: dict[str, str] = {}
        if splits_file.is_file():
            try:
                splits = json.loads(splits_file.read_text(encoding="utf-8"))
                for split_name, names in splits.items():
                    for scene_name in names:
                        self._split_of_scene.setdefault(scene_name, split_name)
            except (json.JSONDecodeError, AttributeError, TypeError) as exc:
                raise CorruptDataError(f"{splits_file}: expected a JSON object of scene-name lists") from exc
        try:
            self._build()
        except KeyError as exc:
            raise CorruptDataError(
                f"{self.table_dir}: a table refers to a record that does not exist ({exc}); the tables "
                "are inconsistent (partly copied?)"
            ) from exc
        logger.info("nuScenes source %s: %d samples in %d scenes", self.name, len(self._order), len(t["scene"]))

    # -- indexes -----------------------------------------------------------------------------

    def _get(self, table: str, token: str) -> dict[str, Any]:
        try:
            return self._index[table][token]
        except KeyError:
            raise CorruptDataError(
                f"{self.table_dir / (table + '.json')}: no record with token {token!r} (referred to by "
                "another table)"
            ) from None

    def _build(self) -> None:
        channel_of_cs = {}
        for cs in self._tables["calibrated_sensor"]:
            channel_of_cs[cs["token"]] = self._get("sensor", cs["sensor_token"])["channel"]
        self._channel_of_cs = channel_of_cs
        # key-frame sample_data per (sample, channel)
        self._key_data: dict[str, dict[str, dict[str, Any]]] = {}
        for sd in self._tables["sample_data"]:
            if sd.get("is_key_frame"):
                ch = channel_of_cs[sd["calibrated_sensor_token"]]
                self._key_data.setdefault(sd["sample_token"], {})[ch] = sd
        self._ego = _Poses(self._tables["ego_pose"], self.table_dir / "ego_pose.json")
        self._cs = _Poses(self._tables["calibrated_sensor"], self.table_dir / "calibrated_sensor.json")
        anns = self._tables["sample_annotation"]
        self._anns: dict[str, list[int]] = {}
        for i, ann in enumerate(anns):
            self._anns.setdefault(ann["sample_token"], []).append(i)
        ann_poses = _Poses(anns, self.table_dir / "sample_annotation.json")
        self._ann_r, self._ann_t = ann_poses.r, ann_poses.t
        self._ann_velocity = self._velocities(anns, ann_poses.index)
        self._category_of_instance = {
            inst["token"]: self._get("category", inst["category_token"])["name"] for inst in self._tables["instance"]
        }
        self._attribute_name = {a["token"]: a["name"] for a in self._tables["attribute"]}
        # samples in scene order
        self._order: list[tuple[str, str, int]] = []  # (sample token, scene token, index)
        for scene in self._tables["scene"]:
            token = scene["first_sample_token"]
            index = 0
            seen = set()
            while token:
                if token in seen:
                    raise CorruptDataError(f"{self.table_dir / 'sample.json'}: the 'next' links of scene "
                                           f"{scene['name']!r} form a cycle")
                seen.add(token)
                sample = self._get("sample", token)
                self._order.append((token, scene["token"], index))
                index += 1
                token = sample.get("next", "")

    # -- protocol ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[FrameRecord]:
        for sample_token, scene_token, index in self._order:
            yield self._record(sample_token, scene_token, index)

    def __repr__(self) -> str:
        return f"NuScenesSource(root={str(self.root)!r}, version={self.version!r}, samples={len(self)})"

    @property
    def sample_tokens(self) -> list[str]:
        """Sample tokens in scene order."""
        return [s for s, _, _ in self._order]

    def frame_id(self, sample_token: str) -> str:
        """The workspace id of a sample token (adds the prefix when there is one)."""
        return f"{self.prefix}/{sample_token}" if self.prefix is not None else sample_token

    def record(self, sample_token: str) -> FrameRecord:
        """The :class:`FrameRecord` of one sample token."""
        self._get("sample", sample_token)
        if not hasattr(self, "_position"):
            self._position = {s: (scene, i) for s, scene, i in self._order}
        scene_token, index = self._position[sample_token]
        return self._record(sample_token, scene_token, index)

    # -- one record --------------------------------------------------------------------------

    def _path(self, rel: str, what: str) -> str:
        """Absolute path of a file named in the tables; it must stay inside the dataroot."""
        if os.path.isabs(rel) or ".." in rel.replace("\\", "/").split("/"):
            from curate.confine import PathOutsideRootError

            raise PathOutsideRootError(
                f"{self.table_dir / 'sample_data.json'}: the {what} file name {rel!r} leads out of {self.root}"
            )
        path = os.path.join(self._root_str, rel)
        if self.check_files:
            if not os.path.isfile(path):
                raise NotFoundError(f"{path}: {what} file is missing (listed in {self.table_dir / 'sample_data.json'})")
            if os.path.realpath(path) != path:  # a symlink on the way: it must stay in the root
                from curate.confine import inside

                inside(path, self.root, f"nuScenes {what}")
        return path

    def _velocities(self, anns: list[dict[str, Any]], index: dict[str, int]) -> np.ndarray:
        """Global velocity of every annotation from its neighbours, as the devkit's
        ``box_velocity`` (central difference; NaN when alone or the gap exceeds 1.5 s, 3 s for a
        central difference). Vectorised, O(annotations)."""
        n = len(anns)
        if n == 0:
            return np.zeros((0, 3))
        sample_ts = {s["token"]: s["timestamp"] for s in self._tables["sample"]}
        me = np.arange(n)
        prev = np.array([index.get(a.get("prev", ""), -1) for a in anns])
        nxt = np.array([index.get(a.get("next", ""), -1) for a in anns])
        ts = np.array([sample_ts.get(a["sample_token"], 0) for a in anns], dtype=np.float64) / 1e6
        first = np.where(prev >= 0, prev, me)
        last = np.where(nxt >= 0, nxt, me)
        dt = ts[last] - ts[first]
        limit = np.where((prev >= 0) & (nxt >= 0), 3.0, 1.5)
        ok = (first != last) & (dt > 0) & (dt <= limit)
        v = np.full((n, 3), np.nan)
        v[ok] = (self._ann_t[last[ok]] - self._ann_t[first[ok]]) / dt[ok, None]
        return v

    def _pose(self, record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        table = self._cs if "sensor_token" in record else self._ego
        return table.get(record["token"])

    def _record(self, sample_token: str, scene_token: str, index: int) -> FrameRecord:
        sample = self._get("sample", sample_token)
        scene = self._get("scene", scene_token)
        log = self._get("log", scene["log_token"])
        data = self._key_data.get(sample_token, {})
        if "LIDAR_TOP" not in data:
            raise CorruptDataError(
                f"{self.table_dir / 'sample_data.json'}: sample {sample_token!r} has no LIDAR_TOP key frame"
            )
        lidar_sd = data["LIDAR_TOP"]
        lidar_path = self._path(lidar_sd["filename"], "LIDAR_TOP key frame")
        num_points = -1
        if self.check_files:
            size = os.stat(lidar_path).st_size
            if size % _BYTES_PER_POINT or size == 0:
                raise CorruptDataError(
                    f"{lidar_path}: {size} bytes is not a positive multiple of {_BYTES_PER_POINT} (5 float32 "
                    "columns x, y, z, intensity, ring); the file is truncated"
                )
            num_points = size // _BYTES_PER_POINT
        cs = self._get("calibrated_sensor", lidar_sd["calibrated_sensor_token"])
        pose = self._get("ego_pose", lidar_sd["ego_pose_token"])
        r_l2e, t_l2e = self._pose(cs)
        r_e2g, t_e2g = self._pose(pose)
        # global -> lidar
        r_l2g = r_e2g @ r_l2e
        t_l2g = r_e2g @ t_l2e + t_e2g
        r_g2l = r_l2g.T

        def sensor2lidar(sd: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
            cs_s = self._get("calibrated_sensor", sd["calibrated_sensor_token"])
            pose_s = self._get("ego_pose", sd["ego_pose_token"])
            r_s2e, t_s2e = self._pose(cs_s)
            r_e2g_s, t_e2g_s = self._pose(pose_s)
            r_s2g = r_e2g_s @ r_s2e
            t_s2g = r_e2g_s @ t_s2e + t_e2g_s
            return r_g2l @ r_s2g, r_g2l @ (t_s2g - t_l2g)

        sweeps = []
        prev = lidar_sd.get("prev", "")
        while prev and len(sweeps) < self.max_sweeps:
            sd = self._get("sample_data", prev)
            r, t = sensor2lidar(sd)
            sweeps.append({
                "token": sd["token"],
                "path": self._path(sd["filename"], "LIDAR_TOP sweep"),
                "timestamp": sd["timestamp"] / 1e6,
                "sensor2lidar_rotation": r.tolist(),
                "sensor2lidar_translation": t.tolist(),
                "sensor2ego_translation": self._get("calibrated_sensor", sd["calibrated_sensor_token"])["translation"],
                "sensor2ego_rotation": self._get("calibrated_sensor", sd["calibrated_sensor_token"])["rotation"],
                "ego2global_translation": self._get("ego_pose", sd["ego_pose_token"])["translation"],
                "ego2global_rotation": self._get("ego_pose", sd["ego_pose_token"])["rotation"],
            })
            prev = sd.get("prev", "")
        cams = {}
        image_paths = []
        for ch in CAMERA_ORDER:
            sd = data.get(ch)
            if sd is None:
                continue
            cs_c = self._get("calibrated_sensor", sd["calibrated_sensor_token"])
            pose_c = self._get("ego_pose", sd["ego_pose_token"])
            r, t = sensor2lidar(sd)
            path = self._path(sd["filename"], ch)
            image_paths.append(path)
            cams[ch] = {
                "token": sd["token"], "path": path, "timestamp": sd["timestamp"] / 1e6,
                "cam_intrinsic": cs_c.get("camera_intrinsic", []),
                "sensor2ego_translation": cs_c["translation"], "sensor2ego_rotation": cs_c["rotation"],
                "ego2global_translation": pose_c["translation"], "ego2global_rotation": pose_c["rotation"],
                "sensor2lidar_rotation": r.tolist(), "sensor2lidar_translation": t.tolist(),
            }
        boxes: list[Box3D] = []
        box_info: list[dict[str, Any]] = []
        ann_idx = self._anns.get(sample_token, [])
        if ann_idx:
            rows = self._tables["sample_annotation"]
            anns = [rows[i] for i in ann_idx]
            local = (self._ann_t[ann_idx] - t_l2g) @ r_g2l.T
            r_box = np.einsum("ij,njk->nik", r_g2l, self._ann_r[ann_idx])
            yaws = np.arctan2(r_box[:, 1, 0], r_box[:, 0, 0])
            velocities = self._ann_velocity[ann_idx] @ r_g2l.T
            for a, c, yaw, vel in zip(anns, local, yaws.tolist(), velocities):
                w, l, h = (float(v) for v in a["size"])
                level = int(a.get("visibility_token") or 4) if str(a.get("visibility_token", "")).isdigit() else 4
                category = self._category_of_instance.get(a["instance_token"])
                if category is None:
                    raise CorruptDataError(
                        f"{self.table_dir / 'sample_annotation.json'}: annotation {a['token']!r} refers to "
                        f"instance {a['instance_token']!r}, which instance.json does not have"
                    )
                boxes.append(Box3D(
                    type=category, truncated=0.0, occluded=int(min(max(4 - level, 0), 3)), alpha=-10.0,
                    bbox=(-1.0, -1.0, -1.0, -1.0), dimensions=(h, w, l),
                    location=(float(c[0]), float(c[1]), float(c[2] - h / 2.0)), rotation_y=yaw,
                ))
                box_info.append({
                    "token": a["token"], "instance_token": a["instance_token"],
                    "attributes": [self._attribute_name.get(x, x) for x in a.get("attribute_tokens", [])],
                    "num_lidar_pts": int(a.get("num_lidar_pts", -1)),
                    "num_radar_pts": int(a.get("num_radar_pts", 0)),
                    "visibility": level,
                    "velocity": [float(vel[0]), float(vel[1])],
                })
        tod, weather = _description_tags(scene.get("description", ""))
        metadata: dict[str, Any] = {
            "time_of_day": tod,
            "weather": weather,
            "location": log.get("location"),
            "box_frame": "lidar",
            "nuscenes": {
                "version": self.version,
                "dataroot": str(self.root),
                "sample_token": sample_token,
                "scene_token": scene_token,
                "scene_name": scene["name"],
                "scene_description": scene.get("description", ""),
                "log_token": log["token"],
                "lidar_token": lidar_sd["token"],
                "lidar_timestamp": lidar_sd["timestamp"] / 1e6,
                "lidar2ego_translation": cs["translation"],
                "lidar2ego_rotation": cs["rotation"],
                "ego2global_translation": pose["translation"],
                "ego2global_rotation": pose["rotation"],
                "cams": cams,
                "sweeps": sweeps,
                "boxes": box_info,
            },
        }
        return FrameRecord(
            id=self.frame_id(sample_token),
            dataset=self.name,
            split=self._split_of_scene.get(scene["name"], self.version),
            scene=scene["name"],
            frame_index=index,
            timestamp=sample["timestamp"] / 1e6,
            lidar_path=lidar_path,
            image_paths=image_paths,
            calib_path=None,
            label_path=None,
            num_points=num_points,
            metadata=metadata,
            boxes=boxes,
        )
