"""Evaluate detector predictions of workspace frames against their stored ground truth (KITTI AP).

Predicted LiDAR boxes are converted to KITTI camera annotations with each frame's calibration:
bottom centre to the rectified camera frame, yaw to ``rotation_y``, and the 2-D box as the
image-clipped projection of the 8 corners (as mmdet3d's KITTI metric does); boxes whose 2-D box
misses the image are dropped. With reduced-size images (the synthetic ``small`` set) the 2-D
height thresholds of the difficulty levels scale with the image height (375 px = KITTI).

Optionally (``region``, ``min_points``) ground-truth boxes the detector cannot see, outside its
BEV range or with fewer LiDAR points than a minimum, are ignored at every difficulty level (their
occlusion becomes KITTI's 3, "unknown", above every level's limit): a miss of one is no false
negative and a detection on one no false positive, as for KITTI's boxes of another difficulty
(nuScenes drops boxes without points; Waymo's levels count points). A ``DontCare`` box would
not do: KITTI's BEV and 3-D metrics do not discount detections on DontCare areas. Off by
default, so the plain KITTI protocol is unchanged.

Note on small validation sets: KITTI's AP40 samples recall at 40 points through the scores of
matched detections, so with ``n < 41`` valid boxes of a class even a perfect detector scores
``(n - 1) / 40``; keep each evaluated class above a few dozen moderate boxes.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Optional, Sequence

import numpy as np

from curate.evaluation.kitti import KITTI_CLASSES, KittiResult, annotations_from_boxes, empty_annotation, kitti_eval
from curate.labels_import import boxes_by_frame
from curate.local_workspace import LocalWorkspace
from curate.errors import InvalidInputError
from curate.scores_table import FramePrediction
from curate.sources.base import Box3D
from curate.sources.calib import Calibration, read_calibration

__all__ = ["prediction_annotation", "ground_truth_annotations", "evaluate_predictions"]

logger = logging.getLogger(__name__)

KITTI_IMAGE_HEIGHT = 375.0
#: occlusion given to boxes the detector cannot see: above every difficulty's limit (0 / 1 / 2)
HIDDEN_OCCLUSION = 3


def _corners_lidar(boxes: np.ndarray) -> np.ndarray:
    """``(n, 8, 3)`` corners of LiDAR boxes ``x, y, z_bottom, l, w, h, yaw``."""
    x, y, z, length, width, height, yaw = (boxes[:, k] for k in range(7))
    dx = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * 0.5
    dy = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * 0.5
    dz = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=np.float64)
    lx = dx[None] * length[:, None]
    ly = dy[None] * width[:, None]
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    px = x[:, None] + c * lx - s * ly
    py = y[:, None] + s * lx + c * ly
    pz = z[:, None] + dz[None] * height[:, None]
    return np.stack([px, py, pz], axis=-1)


def prediction_annotation(
    pred: FramePrediction, calib: Calibration, image_size: tuple[int, int]
) -> dict[str, np.ndarray]:
    """KITTI camera-frame annotation dict (with ``score``) of one frame's predictions."""
    n = len(pred.labels)
    if n == 0:
        return empty_annotation(with_score=True)
    boxes = np.asarray(pred.boxes, dtype=np.float64).reshape(n, 7)
    height, width = image_size
    corners = _corners_lidar(boxes).reshape(-1, 3)
    cam = calib.lidar_to_camera(corners)
    uv, depth = calib.project_to_image(cam, return_depth=True)
    uv = uv.reshape(n, 8, 2)
    depth = depth.reshape(n, 8)
    front = (depth > 0).all(axis=1)
    uv = np.where(np.isfinite(uv), uv, 0.0)
    x1 = np.clip(uv[..., 0].min(axis=1), 0, width)
    y1 = np.clip(uv[..., 1].min(axis=1), 0, height)
    x2 = np.clip(uv[..., 0].max(axis=1), 0, width)
    y2 = np.clip(uv[..., 1].max(axis=1), 0, height)
    valid = front & (x1 < width) & (y1 < height) & (x2 > 0) & (y2 > 0) & (x2 > x1) & (y2 > y1)
    bottom = calib.lidar_to_camera(boxes[:, :3])
    ry = calib.lidar_heading_to_rotation_y(boxes[:, 6])
    out = empty_annotation(with_score=True)
    keep = np.flatnonzero(valid)
    out["name"] = np.array([pred.classes[int(c)] for c in pred.labels[keep]], dtype=object)
    out["truncated"] = np.zeros(keep.size)
    out["occluded"] = np.zeros(keep.size, dtype=np.int64)
    out["alpha"] = np.full(keep.size, -10.0)
    out["bbox"] = np.stack([x1, y1, x2, y2], axis=1)[keep]
    out["dimensions"] = boxes[keep][:, [3, 5, 4]]  # l, h, w
    out["location"] = bottom[keep]
    out["rotation_y"] = ry[keep]
    out["score"] = np.asarray(pred.scores, dtype=np.float64)[keep]
    return out


def _unseen(objs: Sequence[Box3D], calib: Calibration, lidar_path: str,
            region: Optional[Sequence[float]], min_points: int) -> np.ndarray:
    """Mask of the boxes outside ``region`` (``x0, y0, x1, y1`` of the LiDAR frame, the box centre
    decides) or with fewer than ``min_points`` points. O(points * boxes) when ``min_points``."""
    lidar = calib.boxes_to_lidar(objs)
    out = np.zeros(len(objs), dtype=bool)
    if region is not None:
        x0, y0, x1, y1 = (float(v) for v in region)
        out |= ~((lidar[:, 0] >= x0) & (lidar[:, 0] < x1) & (lidar[:, 1] >= y0) & (lidar[:, 1] < y1))
    if min_points > 0:
        from curate.loop.infos import count_points_in_boxes
        from curate.sources.pointcloud import read_points

        out |= count_points_in_boxes(read_points(lidar_path, nonfinite="drop"), lidar) < int(min_points)
    return out


def ground_truth_annotations(
    workspace: LocalWorkspace, ids: Sequence[str], *, region: Optional[Sequence[float]] = None, min_points: int = 0,
) -> list[dict[str, np.ndarray]]:
    """Annotation dicts of the stored ground truth (any label state) of ``ids``, in order.

    ``region`` (``x0, y0, x1, y1``, LiDAR frame) and ``min_points`` mark the boxes whose centre
    lies outside the region, or that hold fewer points, ignored at every difficulty (occlusion
    3; see the module docstring); default: every box as stored.
    """
    if region is not None and len(region) != 4:
        raise InvalidInputError(f"region must be (x0, y0, x1, y1) in the LiDAR frame; got {region!r}")
    boxes = boxes_by_frame(workspace.boxes(list(ids), labeled_only=False))
    paths = {}
    if region is not None or min_points > 0:
        rows = workspace.frames(ids=list(ids), columns=["id", "calib_path", "lidar_path"]).to_pylist()
        paths = {r["id"]: r for r in rows}
    out = []
    for fid in ids:
        objs = [
            Box3D(
                type=b["type"], truncated=b["truncated"], occluded=b["occluded"], alpha=b["alpha"],
                bbox=tuple(b["bbox"]), dimensions=tuple(b["dimensions"]),
                location=tuple(b["location"]), rotation_y=b["rotation_y"],
            )
            for b in boxes.get(fid, [])
        ]
        if paths and objs:
            real = [k for k, o in enumerate(objs) if o.type != "DontCare"]
            if real:
                row = paths[fid]
                hide = _unseen([objs[k] for k in real], read_calibration(row["calib_path"]), row["lidar_path"],
                               region, min_points)
                for k, h in zip(real, hide):
                    if h:
                        objs[k] = replace(objs[k], occluded=HIDDEN_OCCLUSION)
        out.append(annotations_from_boxes(objs))
    return out


def evaluate_predictions(
    workspace: LocalWorkspace,
    predictions: Sequence[FramePrediction],
    *,
    classes: Sequence[str] = KITTI_CLASSES,
    region: Optional[Sequence[float]] = None,
    min_points: int = 0,
) -> KittiResult:
    """KITTI AP (2-D, BEV, 3-D) of ``predictions`` against the workspace's ground truth.

    Frames of a nuScenes-format pool get the nuScenes metric instead
    (:func:`curate.evaluation.nuscenes.nuscenes_eval`: mAP and NDS over the predictions' own
    classes; ``classes`` is not used), a :class:`~curate.evaluation.nuscenes.NuScenesResult` whose
    ``mean_ap`` is the nuScenes mAP in percent.

    ``region`` (``x0, y0, x1, y1`` in the LiDAR frame, e.g. the detector's point-cloud range) and
    ``min_points`` make the ground-truth boxes outside it, or with fewer LiDAR points, ignored at
    every difficulty (KITTI format only); default: the plain protocol.
    """
    ids = [p.frame_id for p in predictions]
    if ids:
        from curate.loop.infos_nuscenes import build_nuscenes_infos, is_nuscenes_frame

        first = workspace.frames(ids=ids[:1], columns=["id", "extra"]).to_pylist()
        if first and is_nuscenes_frame(first[0]["extra"]):
            from curate.evaluation.nuscenes import nuscenes_eval

            infos = build_nuscenes_infos(workspace, ids, with_labels=False)
            return nuscenes_eval(infos, predictions, list(predictions[0].classes))  # type: ignore[return-value]
    rows = workspace.frames(ids=ids, columns=["id", "calib_path", "image_paths"]).to_pylist()
    from curate.loop.infos import _image_size

    dts = []
    scale = 1.0
    for p, r in zip(predictions, rows):
        size = _image_size(r["image_paths"] or [])
        scale = size[0] / KITTI_IMAGE_HEIGHT
        dts.append(prediction_annotation(p, read_calibration(r["calib_path"]), size))
    gts = ground_truth_annotations(workspace, ids, region=region, min_points=min_points)
    return kitti_eval(gts, dts, classes=classes, min_height_scale=scale)
