"""Detector evaluation: KITTI-style AP (2-D, BEV, 3-D) on CPU and annotation-cost metrics."""

from __future__ import annotations

from curate.evaluation.cost import AnnotationCost, annotation_cost
from curate.evaluation.kitti import (
    DIFFICULTIES,
    KITTI_CLASSES,
    METRICS,
    KittiResult,
    annotations_from_boxes,
    empty_annotation,
    kitti_eval,
)
from curate.evaluation.rotated_iou import iou3d_camera, rotated_iou_bev

__all__ = [
    "AnnotationCost",
    "annotation_cost",
    "DIFFICULTIES",
    "KITTI_CLASSES",
    "METRICS",
    "KittiResult",
    "annotations_from_boxes",
    "empty_annotation",
    "kitti_eval",
    "iou3d_camera",
    "rotated_iou_bev",
]
