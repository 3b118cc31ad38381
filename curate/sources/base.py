"""Shared record types for data sources.

A source (KITTI directory, folder of point clouds, ...) yields one :class:`FrameRecord` per LiDAR
frame. Records hold paths and metadata only; point clouds are read on demand with
:func:`curate.sources.pointcloud.read_points` so that ingesting a million frames stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional, Protocol

__all__ = ["Box3D", "FrameRecord", "BadFrame", "Source", "METADATA_FIELDS"]

#: Metadata keys stored as their own filterable string columns of the ``samples`` table.
#: Anything else a source knows goes into the free-form ``extra`` JSON column.
METADATA_FIELDS: tuple[str, ...] = ("time_of_day", "weather", "location")


@dataclass(frozen=True)
class Box3D:
    """One object annotation with the fields of a KITTI ``label_2`` line.

    Attributes
    ----------
    type : str
        Class name (``Car``, ``Pedestrian``, ``Cyclist``, ``Van``, ``DontCare``, ...).
    truncated : float
        0 (fully visible in the image) to 1 (leaving the image).
    occluded : int
        0 fully visible, 1 partly occluded, 2 largely occluded, 3 unknown.
    alpha : float
        Observation angle in radians, ``[-pi, pi]``.
    bbox : tuple of float
        2-D box in the left colour image: left, top, right, bottom (pixels).
    dimensions : tuple of float
        Height, width, length in metres (KITTI order).
    location : tuple of float
        x, y, z of the bottom centre in camera coordinates (metres).
    rotation_y : float
        Yaw around the camera Y axis, ``[-pi, pi]``.
    score : float, optional
        Detection confidence (only for predictions).
    """

    type: str
    truncated: float
    occluded: int
    alpha: float
    bbox: tuple[float, float, float, float]
    dimensions: tuple[float, float, float]
    location: tuple[float, float, float]
    rotation_y: float
    score: Optional[float] = None


@dataclass
class FrameRecord:
    """One LiDAR frame as a source describes it.

    Attributes
    ----------
    id : str
        Stable frame id, unique within the workspace (KITTI: the 6-digit frame id, optionally
        prefixed by the source).
    dataset : str
        Name of the dataset or source root it came from.
    split : str
        ``training`` / ``testing`` or the name of the folder.
    scene : str
        Drive or scene the frame belongs to (frames of one scene are consecutive and redundant).
    frame_index : int
        Position of the frame within its scene.
    timestamp : float
        Seconds; ``0.0`` when unknown.
    lidar_path : str
        Absolute path to the point cloud file.
    image_paths : list of str
        Absolute paths of camera images (possibly empty).
    calib_path : str or None
        Absolute path of the calibration file.
    label_path : str or None
        Absolute path of the ground-truth label file, if the source has one.
    num_points : int
        Number of points, derived from the file size where the format allows (``-1`` if unknown).
    metadata : dict
        Keys of :data:`METADATA_FIELDS` plus anything else the source knows.
    boxes : list of Box3D
        Ground-truth boxes (empty when the source has none).
    """

    id: str
    dataset: str
    split: str
    scene: str
    frame_index: int
    timestamp: float
    lidar_path: str
    image_paths: list[str] = field(default_factory=list)
    calib_path: Optional[str] = None
    label_path: Optional[str] = None
    num_points: int = -1
    metadata: dict = field(default_factory=dict)
    boxes: list[Box3D] = field(default_factory=list)


@dataclass(frozen=True)
class BadFrame:
    """A frame a source could not read, yielded instead of raising by ``records(on_error="skip")``.

    Attributes
    ----------
    id : str
        The frame id it would have had.
    file : str or None
        The file at fault.
    reason : str
        The error message (what, where, what to do).
    kind : str
        The exception class name (``CorruptDataError``, ``NotFoundError``, ...).
    """

    id: str
    file: Optional[str]
    reason: str
    kind: str


class Source(Protocol):
    """Anything that can enumerate frames for ingestion."""

    name: str

    def __iter__(self) -> Iterator[FrameRecord]:
        """Yield the frames in a deterministic order."""
        ...

    def __len__(self) -> int:
        """Number of frames the iterator yields."""
        ...
