"""mmdet3d v2 info pickles (KITTI layout) written from a workspace.

An info pkl is what mmdet3d's ``KittiDataset`` reads: ``{"metainfo": ..., "data_list": [...]}``
with one dict per frame holding the LiDAR path, the camera matrices and the instances
(camera-frame ``bbox_3d`` = bottom centre ``x, y, z``, ``l, h, w``, ``rotation_y``; label indices of
:data:`KITTI_CATEGORIES`, ``-1`` for ``DontCare``; ``num_lidar_pts``; KITTI ``difficulty``).
Paths are absolute, so the pkl works with any ``data_root``.

:func:`write_info_pkl` is used by the detector loop (training set of a round, validation split,
unlabeled pool) and by the export module (``curate export --format mmdet3d``).

Complexity: O(frames + boxes) memory; reading every selected point cloud once when
``count_points`` is set (O(points * boxes) per frame).
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np

from curate.errors import InvalidInputError, NotFoundError
from curate.local_workspace import LocalWorkspace
from curate.sources.calib import Calibration, read_calibration
from curate.labels_import import boxes_by_frame
from curate.sources.pointcloud import read_points
from curate.store_queries import require_samples

__all__ = [
    "KITTI_CATEGORIES",
    "kitti_difficulty",
    "count_points_in_boxes",
    "build_infos",
    "write_info_pkl",
    "read_info_pkl",
]

logger = logging.getLogger(__name__)

#: Label indices of the official mmdet3d KITTI infos (``update_infos_to_v2``).
KITTI_CATEGORIES: dict[str, int] = {
    "Pedestrian": 0, "Cyclist": 1, "Car": 2, "Van": 3, "Truck": 4, "Person_sitting": 5, "Tram": 6, "Misc": 7,
}


def kitti_difficulty(height: np.ndarray, occluded: np.ndarray, truncated: np.ndarray) -> np.ndarray:
    """KITTI difficulty per box: 0 easy, 1 moderate, 2 hard, -1 none (as mmdet3d's converter).

    A box is easy when its 2-D height is > 40 px, fully visible and truncated <= 0.15; moderate
    at > 25 px, occlusion <= 1, truncation <= 0.30; hard at > 25 px, occlusion <= 2, truncation
    <= 0.50.
    """
    h = np.asarray(height, dtype=np.float64)
    o = np.asarray(occluded, dtype=np.float64)
    t = np.asarray(truncated, dtype=np.float64)
    ok = [
        (o <= mo) & (h > mh) & (t <= mt)
        for mh, mo, mt in zip((40, 25, 25), (0, 1, 2), (0.15, 0.3, 0.5))
    ]
    out = np.full(h.shape, -1, dtype=np.int64)
    out[ok[2]] = 2
    out[ok[1]] = 1
    out[ok[0]] = 0
    return out


def count_points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Number of points inside each LiDAR-frame box ``(x, y, z, l, w, h, yaw)`` (``z`` = centre).

    O(points * boxes) time, O(points) memory per box.
    """
    pts = np.asarray(points, dtype=np.float64)[:, :3]
    out = np.zeros(len(boxes), dtype=np.int64)
    for k, (x, y, z, length, width, height, yaw) in enumerate(np.asarray(boxes, dtype=np.float64)):
        d = pts - (x, y, z)
        c, s = np.cos(yaw), np.sin(yaw)
        u = d[:, 0] * c + d[:, 1] * s
        v = -d[:, 0] * s + d[:, 1] * c
        inside = (np.abs(u) <= length / 2) & (np.abs(v) <= width / 2) & (np.abs(d[:, 2]) <= height / 2)
        out[k] = int(inside.sum())
    return out


def _mat4(m: Optional[np.ndarray]) -> list[list[float]]:
    out = np.eye(4)
    if m is not None:
        m = np.asarray(m, dtype=np.float64)
        out[: m.shape[0], : m.shape[1]] = m
    return out.tolist()


def _image_size(paths: Sequence[str]) -> tuple[int, int]:
    if paths:
        try:
            from PIL import Image

            with Image.open(paths[0]) as im:
                return int(im.height), int(im.width)
        except (OSError, ValueError):
            logger.warning("could not read image size of %s; assuming KITTI 375x1242", paths[0])
    return 375, 1242


def _instances(boxes: list[dict[str, Any]], calib: Calibration, points: Optional[np.ndarray]) -> list[dict[str, Any]]:
    if not boxes:
        return []
    from curate.sources.base import Box3D

    objs = [
        Box3D(
            type=b["type"], truncated=b["truncated"], occluded=b["occluded"], alpha=b["alpha"],
            bbox=tuple(b["bbox"]), dimensions=tuple(b["dimensions"]), location=tuple(b["location"]),
            rotation_y=b["rotation_y"],
        )
        for b in boxes
    ]
    bbox = np.array([o.bbox for o in objs], dtype=np.float64)
    diff = kitti_difficulty(bbox[:, 3] - bbox[:, 1], [o.occluded for o in objs], [o.truncated for o in objs])
    n_pts = np.full(len(objs), -1, dtype=np.int64)
    if points is not None:
        n_pts = count_points_in_boxes(points, calib.boxes_to_lidar(objs))
    out = []
    for k, o in enumerate(objs):
        h, w, length = o.dimensions
        loc = np.asarray(o.location, dtype=np.float64)
        label = KITTI_CATEGORIES.get(o.type, -1)
        centre = loc - np.array([0.0, h / 2.0, 0.0])
        uv = calib.project_to_image(centre[None, :])[0] if loc[2] > 0 else np.array([-1.0, -1.0])
        dontcare = o.type == "DontCare"
        out.append(
            {
                "bbox": [float(v) for v in o.bbox],
                "bbox_label": label,
                "bbox_3d": [float(loc[0]), float(loc[1]), float(loc[2]), float(length), float(h), float(w), float(o.rotation_y)],
                "bbox_label_3d": label,
                "depth": float(loc[2]),
                "center_2d": [float(uv[0]), float(uv[1])],
                "num_lidar_pts": -1 if dontcare else int(n_pts[k]),
                "difficulty": -1 if dontcare else int(diff[k]),
                "truncated": float(o.truncated),
                "occluded": int(o.occluded),
                "alpha": float(o.alpha),
                "score": 0.0,
                "index": k,
                "group_id": k,
            }
        )
    return out


def build_infos(
    workspace: LocalWorkspace,
    ids: Iterable[str],
    *,
    with_labels: bool = True,
    labeled_only: bool = True,
    count_points: bool = True,
) -> dict[str, Any]:
    """The info dict (``metainfo`` + ``data_list``) of the frames ``ids``, in the given order.

    Parameters
    ----------
    workspace : curate.Workspace
        Where the frames and their boxes are stored.
    ids : iterable of str
        Frame ids; unknown ids raise :class:`~curate.errors.NotFoundError`.
    with_labels : bool
        Write ``instances`` (an empty list per frame otherwise, e.g. for the unlabeled pool).
    labeled_only : bool
        Take boxes only of frames marked labeled (training); ``False`` uses every stored
        ground-truth box (a held-out validation split).
    count_points : bool
        Fill ``num_lidar_pts`` by reading each point cloud (``-1`` otherwise).

    Returns
    -------
    dict
        ``{"metainfo": {...}, "data_list": [...]}``; each frame dict also carries
        ``curate_id`` (the frame id) and ``image_size`` ``(height, width)``.
    """
    wanted = list(dict.fromkeys(str(i) for i in ids))
    if not wanted:
        raise InvalidInputError("build_infos: no frame ids given")
    require_samples(workspace.store)
    from curate.loop.infos_nuscenes import build_nuscenes_infos, is_nuscenes_frame

    first = workspace.store.read("samples", columns=["extra"], ids=wanted[:1], missing="ignore").to_pylist()
    if first and is_nuscenes_frame(first[0]["extra"]):  # nuScenes-format pool: nuScenes infos
        return build_nuscenes_infos(workspace, wanted, with_labels=with_labels, labeled_only=labeled_only)
    rows = workspace.store.read(
        "samples", columns=["id", "lidar_path", "calib_path", "image_paths", "num_points"],
        ids=wanted, missing="ignore",
    ).to_pylist()
    by_id = {r["id"]: r for r in rows}
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise NotFoundError(
            f"{len(missing)} of {len(wanted)} ids are not frames of {workspace.path} "
            f"(first: {', '.join(missing[:5])}); no info pkl written"
        )
    boxes = boxes_by_frame(workspace.boxes(wanted, labeled_only=labeled_only)) if with_labels else {}
    data_list = []
    for idx, fid in enumerate(wanted):
        r = by_id[fid]
        if not r["calib_path"]:
            raise InvalidInputError(
                f"frame {fid} has no calibration file; mmdet3d KITTI infos need one "
                "(ingest the frames with a KITTI source)"
            )
        calib = read_calibration(r["calib_path"])
        lidar2cam = np.asarray(_mat4(calib.velo_to_rect_matrix()))
        cam2img = np.asarray(_mat4(calib.P2))
        images = {}
        for cam in range(4):
            p = getattr(calib, f"P{cam}")
            if p is None:
                continue
            c2i = np.asarray(_mat4(p))
            images[f"CAM{cam}"] = {"cam2img": c2i.tolist(), "lidar2cam": lidar2cam.tolist(), "lidar2img": (c2i @ lidar2cam).tolist()}
        height, width = _image_size(r["image_paths"] or [])
        if r["image_paths"]:
            images.setdefault("CAM2", {"cam2img": cam2img.tolist(), "lidar2cam": lidar2cam.tolist()})
            images["CAM2"].update({"img_path": r["image_paths"][0], "height": height, "width": width})
        images["R0_rect"] = _mat4(calib.R0_rect)
        frame_boxes = boxes.get(fid, [])
        points = read_points(r["lidar_path"]) if (count_points and frame_boxes) else None
        data_list.append(
            {
                "sample_idx": idx,
                "curate_id": fid,
                "image_size": [height, width],
                "images": images,
                "lidar_points": {
                    "num_pts_feats": 4,
                    "lidar_path": r["lidar_path"],
                    "Tr_velo_to_cam": _mat4(calib.Tr_velo_to_cam),
                    "Tr_imu_to_velo": _mat4(calib.Tr_imu_to_velo),
                },
                "instances": _instances(frame_boxes, calib, points),
            }
        )
    return {
        "metainfo": {"categories": dict(KITTI_CATEGORIES), "dataset": "kitti", "info_version": "1.1"},
        "data_list": data_list,
    }


def write_info_pkl(
    workspace: LocalWorkspace,
    ids: Iterable[str],
    out: Union[str, Path],
    **options: Any,
) -> Path:
    """Write :func:`build_infos` of ``ids`` to ``out`` atomically (temp file + rename).

    ``options`` are those of :func:`build_infos`. Returns the path written.
    """
    infos = build_infos(workspace, ids, **options)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name, suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(infos, fh, protocol=4)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote %d frames to %s", len(infos["data_list"]), out)
    return out


def read_info_pkl(path: Union[str, Path]) -> dict[str, Any]:
    """Load an info pkl written by :func:`write_info_pkl` (or mmdet3d's converters)."""
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"info pkl {p} does not exist")
    with p.open("rb") as fh:
        data = pickle.load(fh)
    if not isinstance(data, dict) or "data_list" not in data or "metainfo" not in data:
        raise InvalidInputError(f"{p} is not an mmdet3d v2 info pkl (no metainfo / data_list)")
    return data
