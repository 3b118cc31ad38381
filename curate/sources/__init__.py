"""Data sources: readers that enumerate LiDAR frames, and the synthetic KITTI generator.

* :class:`KittiSource`: a KITTI-format object dataset (``training/velodyne/*.bin`` ...).
* :class:`NuScenesSource`: a nuScenes v1.0 dataset, one frame per sample (``curate.sources.nuscenes``;
  ``curate.sources.synthetic_nuscenes`` writes the ray-cast scenes in that layout).
* :class:`FolderSource`: any folder tree of ``.bin`` / ``.npy`` / ``.pcd`` / ``.ply`` files.
* :func:`read_points` and friends: point-cloud file I/O.
* :func:`generate`: writes a labelled synthetic KITTI-format dataset (``curate.sources.synthetic``).
"""

from __future__ import annotations

import logging

from curate.sources.base import METADATA_FIELDS, Box3D, FrameRecord, Source
from curate.sources.calib import Calibration, format_calibration, read_calibration, write_calibration
from curate.sources.folder import FolderSource
from curate.sources.nuscenes import NuScenesSource
from curate.sources.kitti import (
    KittiSource,
    format_label_line,
    parse_label_file,
    parse_label_line,
    write_label_file,
)
from curate.sources.pointcloud import (
    SUPPORTED_EXTENSIONS,
    count_points,
    read_points,
    validate_point_file,
    write_points,
    write_points_bin,
    write_points_npy,
    write_points_pcd,
    write_points_ply,
)
from curate.sources.synthetic import SyntheticSummary, generate

__all__ = [
    "METADATA_FIELDS",
    "Box3D",
    "FrameRecord",
    "Source",
    "Calibration",
    "read_calibration",
    "format_calibration",
    "write_calibration",
    "KittiSource",
    "FolderSource",
    "NuScenesSource",
    "parse_label_line",
    "parse_label_file",
    "format_label_line",
    "write_label_file",
    "SUPPORTED_EXTENSIONS",
    "read_points",
    "count_points",
    "validate_point_file",
    "write_points",
    "write_points_bin",
    "write_points_npy",
    "write_points_pcd",
    "write_points_ply",
    "generate",
    "SyntheticSummary",
]

logger = logging.getLogger(__name__)
