"""mmdet3d v2 info pickles in the nuScenes layout, written from a workspace.

The dict is what mmdet3d's ``NuScenesDataset`` reads (the layout of its
``update_infos_to_v2.update_nuscenes_infos``): per sample ``token``, ``timestamp`` (s),
``ego2global``, ``lidar_points`` (``lidar_path``, ``num_pts_feats = 5``, ``lidar2ego``),
``lidar_sweeps`` (each with ``timestamp``, ``ego2global``, ``lidar_points.lidar2ego`` and
``lidar2sensor``, ``sample_data_token``), ``images`` for the six cameras (``img_path``,
``cam2img``, ``cam2ego``, ``lidar2cam``, ``sample_data_token``, ``timestamp``) and ``instances``
(``bbox_3d`` = LiDAR-frame gravity centre ``x, y, z``, ``l, w, h``, ``yaw``; ``bbox_label`` in
:data:`~curate.sources.nuscenes.DETECTION_CLASSES` or ``-1``; ``velocity``; ``attr_label``;
``num_lidar_pts``; ``bbox_3d_isvalid``).

Paths are absolute. mmdet3d re-roots sweep paths with ``data_prefix['pts']`` / ``['sweeps']``, so
``metainfo`` records the ``data_root`` and the ``data_prefix`` to give the dataset
(:func:`dataset_kwargs`).

Complexity: O(frames * (sweeps + cameras) + boxes) time and memory; no point cloud is read.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any, Iterable, Optional

import numpy as np

from curate.errors import InvalidInputError, NotFoundError
from curate.labels_import import boxes_by_frame
from curate.local_workspace import LocalWorkspace
from curate.sources.nuscenes import CAMERA_ORDER, DETECTION_CLASSES, detection_name, quaternion_to_matrix

__all__ = ["ATTRIBUTES", "is_nuscenes_frame", "build_nuscenes_infos", "dataset_kwargs"]

logger = logging.getLogger(__name__)

#: mmdet3d's nuScenes attribute label order.
ATTRIBUTES: tuple[str, ...] = (
    "cycle.with_rider", "cycle.without_rider", "pedestrian.moving", "pedestrian.standing",
    "pedestrian.sitting_lying_down", "vehicle.moving", "vehicle.parked", "vehicle.stopped", "None",
)
_DEFAULT_ATTRIBUTE = {
    "car": "vehicle.parked", "pedestrian": "pedestrian.moving", "trailer": "vehicle.parked",
    "truck": "vehicle.parked", "bus": "vehicle.moving", "motorcycle": "cycle.without_rider",
    "construction_vehicle": "vehicle.parked", "bicycle": "cycle.without_rider",
    "barrier": "None", "traffic_cone": "None",
}


def _mat4(rotation: Any, translation: Any) -> list[list[float]]:
    m = np.eye(4)
    m[:3, :3] = quaternion_to_matrix(rotation)
    m[:3, 3] = np.asarray(translation, dtype=np.float64)
    return m.tolist()


def _inverse_rt(r: Any, t: Any) -> list[list[float]]:
    """4x4 of the inverse of ``p -> R p + t``."""
    r = np.asarray(r, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = r.T
    m[:3, 3] = -r.T @ t
    return m.tolist()


def is_nuscenes_frame(extra: Optional[str]) -> bool:
    """Whether a ``samples.extra`` value comes from :class:`~curate.sources.nuscenes.NuScenesSource`."""
    if not extra:
        return False
    try:
        meta = json.loads(extra)
    except json.JSONDecodeError:
        return False
    return isinstance(meta, dict) and isinstance(meta.get("nuscenes"), dict)


def dataset_kwargs(data_root: str) -> dict[str, Any]:
    """``data_root`` / ``data_prefix`` for mmdet3d's ``NuScenesDataset`` reading these infos."""
    prefix = {"pts": "samples/LIDAR_TOP", "sweeps": "sweeps/LIDAR_TOP", "img": ""}
    prefix.update({ch: f"samples/{ch}" for ch in CAMERA_ORDER})
    return {"data_root": str(data_root), "data_prefix": prefix}


def _instances(boxes: list[dict[str, Any]], info: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for k, b in enumerate(boxes):
        h, w, length = (float(v) for v in b["dimensions"])
        x, y, z = (float(v) for v in b["location"])
        extra = info[b["box_index"]] if b.get("origin", "source") == "source" and b["box_index"] < len(info) else {}
        name = detection_name(b["type"]) or (b["type"] if b["type"] in DETECTION_CLASSES else None)
        label = DETECTION_CLASSES.index(name) if name is not None else -1
        velocity = extra.get("velocity", [math.nan, math.nan])
        attrs = extra.get("attributes") or []
        attr = attrs[0] if attrs else _DEFAULT_ATTRIBUTE.get(name or "", "None")
        n_lidar = int(extra.get("num_lidar_pts", -1))
        n_radar = int(extra.get("num_radar_pts", 0))
        out.append({
            "bbox_3d": [x, y, z + h / 2.0, length, w, h, float(b["rotation_y"])],
            "bbox_label": label,
            "bbox_label_3d": label,
            "velocity": [float(velocity[0]), float(velocity[1])],
            "attr_label": ATTRIBUTES.index(attr) if attr in ATTRIBUTES else ATTRIBUTES.index("None"),
            "num_lidar_pts": n_lidar,
            "num_radar_pts": n_radar,
            "bbox_3d_isvalid": bool(n_lidar + n_radar > 0) if n_lidar >= 0 else True,
            "index": k,
        })
    return out


def build_nuscenes_infos(
    workspace: LocalWorkspace,
    ids: Iterable[str],
    *,
    with_labels: bool = True,
    labeled_only: bool = True,
    max_sweeps: int = 10,
) -> dict[str, Any]:
    """The nuScenes-layout info dict (``metainfo`` + ``data_list``) of ``ids``, in the given order.

    Parameters
    ----------
    workspace : curate.Workspace
        Where the frames (ingested with :class:`~curate.sources.nuscenes.NuScenesSource`) are.
    ids : iterable of str
        Frame ids.
    with_labels, labeled_only : bool
        As in :func:`curate.loop.infos.build_infos`.
    max_sweeps : int
        Sweeps written per frame (at most those the source recorded).

    Raises
    ------
    NotFoundError
        An id is not a frame of the workspace.
    InvalidInputError
        A frame was not ingested from a nuScenes source.
    """
    wanted = list(dict.fromkeys(str(i) for i in ids))
    if not wanted:
        raise InvalidInputError("build_nuscenes_infos: no frame ids given")
    rows = workspace.store.read(
        "samples", columns=["id", "lidar_path", "timestamp", "extra"], ids=wanted, missing="ignore",
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
    data_root = None
    version = None
    for idx, fid in enumerate(wanted):
        r = by_id[fid]
        meta = json.loads(r["extra"] or "{}")
        nusc = meta.get("nuscenes")
        if not isinstance(nusc, dict):
            raise InvalidInputError(
                f"frame {fid} was not ingested from a nuScenes source; nuScenes infos need its "
                "calibration and sweeps (curate ingest nuscenes DIR)"
            )
        data_root = data_root or nusc.get("dataroot")
        version = version or nusc.get("version")
        lidar_ts = float(nusc.get("lidar_timestamp", r["timestamp"]))
        sweeps = []
        for s in (nusc.get("sweeps") or [])[:max_sweeps]:
            sweeps.append({
                "timestamp": float(s["timestamp"]),
                "sample_data_token": s["token"],
                "lidar_points": {
                    "lidar_path": s["path"],
                    "lidar2ego": _mat4(s["sensor2ego_rotation"], s["sensor2ego_translation"]),
                    "lidar2sensor": _inverse_rt(s["sensor2lidar_rotation"], s["sensor2lidar_translation"]),
                },
                "ego2global": _mat4(s["ego2global_rotation"], s["ego2global_translation"]),
            })
        images = {}
        for ch in CAMERA_ORDER:
            cam = (nusc.get("cams") or {}).get(ch)
            if cam is None:
                continue
            k = np.asarray(cam["cam_intrinsic"], dtype=np.float64)
            lidar2cam = np.asarray(_inverse_rt(cam["sensor2lidar_rotation"], cam["sensor2lidar_translation"]))
            cam2img = np.eye(4)
            if k.shape == (3, 3):
                cam2img[:3, :3] = k
            images[ch] = {
                "img_path": cam["path"],
                "cam2img": k.tolist(),
                "cam2ego": _mat4(cam["sensor2ego_rotation"], cam["sensor2ego_translation"]),
                "lidar2cam": lidar2cam.tolist(),
                "lidar2img": (cam2img @ lidar2cam).tolist(),
                "sample_data_token": cam["token"],
                "timestamp": float(cam["timestamp"]),
            }
        data_list.append({
            "sample_idx": idx,
            "token": nusc["sample_token"],
            "curate_id": fid,
            "scene_token": nusc.get("scene_token"),
            "timestamp": lidar_ts,
            "ego2global": _mat4(nusc["ego2global_rotation"], nusc["ego2global_translation"]),
            "lidar_points": {
                "num_pts_feats": 5,
                "lidar_path": r["lidar_path"],
                "lidar2ego": _mat4(nusc["lidar2ego_rotation"], nusc["lidar2ego_translation"]),
            },
            "lidar_sweeps": sweeps,
            "images": images,
            "instances": _instances(boxes.get(fid, []), nusc.get("boxes") or []),
        })
    return {
        "metainfo": {
            "categories": {name: i for i, name in enumerate(DETECTION_CLASSES)},
            "dataset": "nuscenes",
            "version": version,
            "info_version": "1.1",
            **({"curate_dataset_kwargs": dataset_kwargs(data_root)} if data_root else {}),
        },
        "data_list": data_list,
    }
