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
Construction reads the JSON tables once (the garbage collector paused meanwhile) and turns them
into hash indexes and arrays in ``O(rows)``: every sample_data's sensor->global pose, the
annotations' poses, velocities and fixed fields. A record then costs a few small numpy products
(sweeps, cameras and boxes of the sample at once) and the file checks: one ``lstat`` per file
(each folder resolved once; a sweep shared by several key frames stat-ed once). Files are never
read (``num_points`` comes from the size). ``benchmarks/nuscenes_ingest.py`` measures 10k key
frames against the devkit.

Errors
------
A missing, unreadable or inconsistent table raises :class:`~curate.errors.NotFoundError` /
:class:`~curate.errors.CorruptDataError` naming the file at construction, before anything is
written. A missing key-frame, sweep or camera file (``NotFoundError``) or a truncated key frame
(``CorruptDataError``) names the file too: :meth:`NuScenesSource.records` with
``on_error="skip"`` (what ``Workspace.ingest`` uses by default) yields a
:class:`~curate.sources.base.BadFrame` for that key frame and goes on, the workspace listing it
under ``problems``; with ``on_error="fail"`` (and plain iteration) it raises and the workspace
rolls the ingest back. A file name or a symlink leading out of the dataroot always raises
:class:`~curate.confine.PathOutsideRootError`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import stat
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from curate.confine import PathOutsideRootError, inside
from curate.errors import CorruptDataError, CurateError, InvalidInputError, NotFoundError
from curate.sources.base import BadFrame, Box3D, FrameRecord
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
#: Key frames built per chunk by :meth:`NuScenesSource.records` (memory O(chunk)).
_CHUNK = 256
#: Tables looked up by token (the others are indexed into arrays).
_LOOKUP_TABLES = ("scene", "sample", "log", "sensor", "category")


def _frame_error(cls: type, path: str, message: str) -> CurateError:
    """``cls(f"{path}: {message}")`` carrying the file at fault as ``.file`` (for ``BadFrame``)."""
    exc = cls(f"{path}: {message}")
    exc.file = path
    return exc


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
    """Rotation matrices, ``[w, x, y, z]`` quaternions (as given) and translations of a table of
    poses, indexed by token (vectorised)."""

    def __init__(self, rows: list[dict[str, Any]], where: Path) -> None:
        self.index = {r["token"]: i for i, r in enumerate(rows)}
        try:
            self.q = np.array([r["rotation"] for r in rows], dtype=np.float64).reshape(-1, 4)
            self.r = quaternions_to_matrices(self.q)
            self.t = np.array([r["translation"] for r in rows], dtype=np.float64).reshape(-1, 3)
        except (KeyError, ValueError, TypeError) as exc:
            raise CorruptDataError(f"{where}: every record needs a 4-value 'rotation' and a 3-value "
                                   f"'translation' ({exc})") from exc

    def get(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        i = self.index[token]
        return self.r[i], self.t[i]


def _load_table(folder: Path, name: str, root: Path) -> list[dict[str, Any]]:
    path = folder / f"{name}.json"
    if not path.is_file():
        raise NotFoundError(
            f"{path}: nuScenes table {name!r} is missing; a nuScenes version folder holds "
            f"{', '.join(t + '.json' for t in REQUIRED_TABLES)}"
        )
    inside(path, root, f"nuScenes table {name!r}")
    try:
        with open(path, "rb") as fh:
            rows = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptDataError(f"{path}: not valid JSON ({exc}); re-download or re-extract the table") from exc
    if not isinstance(rows, list) or any(not isinstance(r, dict) or "token" not in r for r in rows):
        raise CorruptDataError(f"{path}: expected a JSON list of records that each have a 'token'")
    return rows


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while tables are parsed and indexed (JSON tables hold
    no reference cycles; each full collection would walk every row parsed so far)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
        Stat the key-frame, sweep and camera files while iterating (default: one ``lstat`` each,
        never a read; a missing one makes the key frame bad, see :meth:`records`); ``False``
        trusts the tables (``num_points`` is then ``-1``).

    Raises
    ------
    NotFoundError
        ``root`` or ``root/version`` or a required table does not exist.
    CorruptDataError
        A table is not valid JSON or misses a record another one points to.
    PathOutsideRootError
        A table file is a symlink leading out of ``root``.

    Notes
    -----
    Construction: time and memory O(table rows). Iteration: O(1) per key frame plus its sweeps,
    cameras and boxes; memory O(chunk of 256 records).
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
        with _gc_paused():  # millions of small objects: the collector would re-walk them many times
            t = {name: _load_table(self.table_dir, name, self.root) for name in REQUIRED_TABLES}
            self._tables = t
            self._construct()
        logger.info("nuScenes source %s: %d samples in %d scenes", self.name, len(self._order), len(t["scene"]))

    def _construct(self) -> None:
        t = self._tables
        self._index = {name: {r["token"]: r for r in t[name]} for name in _LOOKUP_TABLES}
        self._folder_inside: dict[str, bool] = {}  # folder -> resolves inside the root (cache)
        self._checked: set[int] = set()  # sample_data rows whose file was found (sweeps are shared)
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
        # annotations and ego poses live on as arrays and per-annotation fields (see _build): drop
        # their rows (the bulk of the tables)
        t["sample_annotation"] = []
        t["ego_pose"] = []

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
        """Indexes and per-row arrays, all O(rows): every sample_data's sensor->global pose,
        the key frames per (sample, channel), the annotations per sample with their static
        fields, and the samples in scene order."""
        sensor_channel = {s["token"]: s["channel"] for s in self._tables["sensor"]}
        cs_rows = self._tables["calibrated_sensor"]
        for cs in cs_rows:
            if cs["sensor_token"] not in sensor_channel:
                self._get("sensor", cs["sensor_token"])  # raises, naming sensor.json
        self._ego = _Poses(self._tables["ego_pose"], self.table_dir / "ego_pose.json")
        self._cs = _Poses(cs_rows, self.table_dir / "calibrated_sensor.json")
        channel_of_cs = [sensor_channel[cs["sensor_token"]] for cs in cs_rows]
        sds = self._tables["sample_data"]
        self._sd_index = {sd["token"]: i for i, sd in enumerate(sds)}
        try:
            cs_i = np.fromiter((self._cs.index[sd["calibrated_sensor_token"]] for sd in sds), dtype=np.int64,
                               count=len(sds))
            ego_i = np.fromiter((self._ego.index[sd["ego_pose_token"]] for sd in sds), dtype=np.int64, count=len(sds))
        except KeyError as exc:
            raise CorruptDataError(
                f"{self.table_dir / 'sample_data.json'}: a record refers to calibrated sensor or ego pose {exc}, "
                "which calibrated_sensor.json / ego_pose.json does not have"
            ) from None
        self._sd_cs, self._sd_ego = cs_i, ego_i
        # sensor -> global of every sample_data: R = R_e2g R_s2e, t = R_e2g t_s2e + t_e2g (vectorised)
        r_e2g = self._ego.r[ego_i]
        self._sd_r = np.matmul(r_e2g, self._cs.r[cs_i])
        self._sd_t = np.einsum("nij,nj->ni", r_e2g, self._cs.t[cs_i]) + self._ego.t[ego_i]
        # key-frame sample_data per (sample, channel)
        self._key_data: dict[str, dict[str, int]] = {}
        for i, sd in enumerate(sds):
            if sd.get("is_key_frame"):
                self._key_data.setdefault(sd["sample_token"], {})[channel_of_cs[cs_i[i]]] = i
        anns = self._tables["sample_annotation"]
        self._anns: dict[str, list[int]] = {}
        for i, ann in enumerate(anns):
            self._anns.setdefault(ann["sample_token"], []).append(i)
        ann_poses = _Poses(anns, self.table_dir / "sample_annotation.json")
        self._ann_r, self._ann_t = ann_poses.r, ann_poses.t
        self._ann_velocity = self._velocities(anns, ann_poses.index)
        category_name = {c["token"]: c["name"] for c in self._tables["category"]}
        category_of_instance = {}
        for inst in self._tables["instance"]:
            if inst["category_token"] not in category_name:
                self._get("category", inst["category_token"])  # raises, naming category.json
            category_of_instance[inst["token"]] = category_name[inst["category_token"]]
        attribute_name = {a["token"]: a["name"] for a in self._tables["attribute"]}
        # static per-annotation fields, computed once, as flat tuples of atoms (the collector soon
        # stops tracking them): category, h, w, l, visibility level, token, instance token,
        # attribute names, num_lidar_pts, num_radar_pts
        self._ann_static: list[tuple] = []
        where = self.table_dir / "sample_annotation.json"
        for a in anns:
            category = category_of_instance.get(a["instance_token"])
            if category is None:
                raise CorruptDataError(
                    f"{where}: annotation {a['token']!r} refers to instance {a['instance_token']!r}, which "
                    "instance.json does not have"
                )
            try:
                w, l, h = (float(v) for v in a["size"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CorruptDataError(f"{where}: annotation {a['token']!r} needs a 3-value 'size' ({exc})") from None
            vis = str(a.get("visibility_token", ""))
            level = int(vis) if vis.isdigit() else 4
            self._ann_static.append((
                category, h, w, l, level, a["token"], a["instance_token"],
                tuple(attribute_name.get(x, x) for x in a.get("attribute_tokens", [])),
                int(a.get("num_lidar_pts", -1)), int(a.get("num_radar_pts", 0)),
            ))
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
        """Yield every key frame; the first bad one raises (see :meth:`records`)."""
        return self.records(on_error="fail")  # type: ignore[return-value]

    def records(self, on_error: str = "fail") -> Iterator[Union[FrameRecord, BadFrame]]:
        """Yield every key frame in scene order.

        With ``on_error="skip"`` a key frame whose LiDAR file, sweep or camera image is missing
        or truncated (or whose sample_data rows are inconsistent) yields a :class:`BadFrame`
        naming the file instead of raising; the workspace lists it under ``problems``. A file
        name or symlink leading out of the dataroot always raises
        :class:`~curate.confine.PathOutsideRootError`; corrupt tables raise at construction.
        """
        if on_error not in ("skip", "fail"):
            raise InvalidInputError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
        order = self._order
        for start in range(0, len(order), _CHUNK):
            # records are built a chunk at a time with the collector paused (never across a yield):
            # they hold no cycles, and a collection per few hundred allocations would re-walk
            # every record the consumer still holds
            items: list[Any] = []
            with _gc_paused():
                for sample_token, scene_token, index in order[start:start + _CHUNK]:
                    try:
                        items.append(self._record(sample_token, scene_token, index))
                    except CurateError as exc:
                        if on_error != "skip" or isinstance(exc, PathOutsideRootError):
                            items.append(exc)  # raised after the frames before it are yielded
                            break  # a path leading out of the root is refused, never skipped
                        items.append(self._bad_frame(sample_token, exc))
            for item in items:
                if isinstance(item, CurateError):
                    raise item
                yield item

    def _bad_frame(self, sample_token: str, exc: CurateError) -> BadFrame:
        message = str(exc)
        file = getattr(exc, "file", None)
        if file is None and message.startswith("/"):
            file = message.split(": ", 1)[0]
        return BadFrame(id=self.frame_id(sample_token), file=file, reason=message, kind=type(exc).__name__)

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
        if rel[:1] in ("/", "\\") or os.path.isabs(rel) or (
                ".." in rel and ".." in rel.replace("\\", "/").split("/")):
            raise PathOutsideRootError(
                f"{self.table_dir / 'sample_data.json'}: the {what} file name {rel!r} leads out of {self.root}"
            )
        return f"{self._root_str}{os.sep}{rel}"

    def _check_file(self, path: str, what: str) -> os.stat_result:
        """Stat a file named in the tables: it must exist, be a regular file and resolve inside the
        dataroot (a symlink leading out raises :class:`~curate.confine.PathOutsideRootError`).

        One ``lstat`` per file; each folder is resolved once (cached), a symlinked file once more.
        """
        folder = os.path.dirname(path)
        ok = self._folder_inside.get(folder)
        if ok is None:
            real = os.path.realpath(folder)
            ok = real == self._root_str or real.startswith(self._root_str + os.sep)
            self._folder_inside[folder] = ok
        if not ok:
            inside(path, self.root, f"nuScenes {what}")  # raises, naming where it leads
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):  # a symlink: it must stay in the root
                inside(path, self.root, f"nuScenes {what}")
                st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise _frame_error(NotFoundError, path, f"{what} file is missing (listed in "
                                                    f"{self.table_dir / 'sample_data.json'})") from None
        except OSError as exc:
            raise _frame_error(CorruptDataError, path, f"{what} file cannot be read ({exc.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise _frame_error(NotFoundError, path, f"{what} is not a regular file (listed in "
                                                    f"{self.table_dir / 'sample_data.json'})")
        return st

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

    def _sd(self, token: str) -> int:
        try:
            return self._sd_index[token]
        except KeyError:
            raise CorruptDataError(
                f"{self.table_dir / 'sample_data.json'}: no record with token {token!r} (referred to by "
                "another sample_data's 'prev')"
            ) from None

    def _record(self, sample_token: str, scene_token: str, index: int) -> FrameRecord:
        sample = self._get("sample", sample_token)
        scene = self._get("scene", scene_token)
        log = self._get("log", scene["log_token"])
        data = self._key_data.get(sample_token, {})
        if "LIDAR_TOP" not in data:
            raise CorruptDataError(
                f"{self.table_dir / 'sample_data.json'}: sample {sample_token!r} has no LIDAR_TOP key frame"
            )
        sds = self._tables["sample_data"]
        li = data["LIDAR_TOP"]
        lidar_sd = sds[li]
        lidar_path = self._path(lidar_sd["filename"], "LIDAR_TOP key frame")
        num_points = -1
        if self.check_files:
            size = self._check_file(lidar_path, "LIDAR_TOP key frame").st_size
            if size % _BYTES_PER_POINT or size == 0:
                raise _frame_error(
                    CorruptDataError, lidar_path,
                    f"{size} bytes is not a positive multiple of {_BYTES_PER_POINT} (5 float32 columns x, y, z, "
                    "intensity, ring); the file is truncated",
                )
            num_points = size // _BYTES_PER_POINT
            self._checked.add(li)
        cs = self._tables["calibrated_sensor"][self._sd_cs[li]]
        # global -> lidar
        r_g2l = self._sd_r[li].T
        t_l2g = self._sd_t[li]
        sweep_idx: list[int] = []
        prev = lidar_sd.get("prev", "")
        while prev and len(sweep_idx) < self.max_sweeps:
            i = self._sd(prev)
            sweep_idx.append(i)
            prev = sds[i].get("prev", "")
        cam_channels = [ch for ch in CAMERA_ORDER if ch in data]
        idx = sweep_idx + [data[ch] for ch in cam_channels]
        # sensor -> lidar of the sweeps and cameras at once: R = R_g2l R_s2g, t = R_g2l (t_s2g - t_l2g)
        rot = np.matmul(r_g2l, self._sd_r[idx]).tolist()
        trans = ((self._sd_t[idx] - t_l2g) @ r_g2l.T).tolist()
        cs_rows = self._tables["calibrated_sensor"]
        # ego poses of the key frame, then the sweeps and cameras, as lists (one conversion)
        ego = self._sd_ego[[li] + idx]
        ego_q, ego_t = self._ego.q[ego].tolist(), self._ego.t[ego].tolist()
        sweeps = []
        for k, i in enumerate(sweep_idx):
            sd = sds[i]
            path = self._path(sd["filename"], "LIDAR_TOP sweep")
            if self.check_files and i not in self._checked:  # a sweep serves several key frames
                self._check_file(path, "LIDAR_TOP sweep")
                self._checked.add(i)
            cs_s = cs_rows[self._sd_cs[i]]
            sweeps.append({
                "token": sd["token"],
                "path": path,
                "timestamp": sd["timestamp"] / 1e6,
                "sensor2lidar_rotation": rot[k],
                "sensor2lidar_translation": trans[k],
                "sensor2ego_translation": cs_s["translation"],
                "sensor2ego_rotation": cs_s["rotation"],
                "ego2global_translation": ego_t[k + 1],
                "ego2global_rotation": ego_q[k + 1],
            })
        cams = {}
        image_paths = []
        for k, ch in enumerate(cam_channels, start=len(sweep_idx)):
            i = idx[k]
            sd = sds[i]
            cs_c = cs_rows[self._sd_cs[i]]
            path = self._path(sd["filename"], ch)
            if self.check_files:
                self._check_file(path, ch)
            image_paths.append(path)
            cams[ch] = {
                "token": sd["token"], "path": path, "timestamp": sd["timestamp"] / 1e6,
                "cam_intrinsic": cs_c.get("camera_intrinsic", []),
                "sensor2ego_translation": cs_c["translation"], "sensor2ego_rotation": cs_c["rotation"],
                "ego2global_translation": ego_t[k + 1], "ego2global_rotation": ego_q[k + 1],
                "sensor2lidar_rotation": rot[k], "sensor2lidar_translation": trans[k],
            }
        boxes: list[Box3D] = []
        box_info: list[dict[str, Any]] = []
        ann_idx = self._anns.get(sample_token, [])
        if ann_idx:
            local = ((self._ann_t[ann_idx] - t_l2g) @ r_g2l.T).tolist()
            r_box = np.matmul(r_g2l, self._ann_r[ann_idx])
            yaws = np.arctan2(r_box[:, 1, 0], r_box[:, 0, 0]).tolist()
            velocities = (self._ann_velocity[ann_idx] @ r_g2l[:2].T).tolist()  # (vx, vy) in the LiDAR frame
            for i, c, yaw, vel in zip(ann_idx, local, yaws, velocities):
                category, h, w, l, level, token, instance, attributes, n_lidar, n_radar = self._ann_static[i]
                boxes.append(Box3D(
                    type=category, truncated=0.0, occluded=min(max(4 - level, 0), 3), alpha=-10.0,
                    bbox=(-1.0, -1.0, -1.0, -1.0), dimensions=(h, w, l),
                    location=(c[0], c[1], c[2] - h / 2.0), rotation_y=yaw,
                ))
                box_info.append({
                    "token": token, "instance_token": instance, "attributes": list(attributes),
                    "num_lidar_pts": n_lidar, "num_radar_pts": n_radar, "visibility": level, "velocity": vel,
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
                "ego2global_translation": ego_t[0],
                "ego2global_rotation": ego_q[0],
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
