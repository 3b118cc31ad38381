"""KITTI object-benchmark calibration files (``calib/<id>.txt``).

A calibration file holds one matrix per line, ``NAME: v1 v2 ...``:

``P0`` .. ``P3``
    3x4 projection matrices of the four cameras in *rectified* camera-0 coordinates
    (``P2`` is the left colour camera, the one ``image_2`` comes from).
``R0_rect``
    3x3 rectifying rotation of camera 0.
``Tr_velo_to_cam``
    3x4 rigid transform from Velodyne (x forward, y left, z up) to camera-0 coordinates
    (x right, y down, z forward).
``Tr_imu_to_velo``
    3x4 rigid transform from the IMU to the Velodyne.

A LiDAR point ``p`` maps to rectified camera coordinates as ``R0_rect @ (Tr_velo_to_cam @ [p, 1])``
and to pixels of ``image_2`` as ``P2 @ [p_rect, 1]`` divided by depth.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from curate.errors import CorruptDataError, InvalidInputError, NotFoundError
from curate.sources.base import Box3D

__all__ = ["Calibration", "read_calibration", "format_calibration", "write_calibration"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

# Names used by the object benchmark, with the aliases of the tracking benchmark.
_ALIASES = {
    "P0": "P0",
    "P1": "P1",
    "P2": "P2",
    "P3": "P3",
    "R0_rect": "R0_rect",
    "R_rect": "R0_rect",
    "Tr_velo_to_cam": "Tr_velo_to_cam",
    "Tr_velo_cam": "Tr_velo_to_cam",
    "Tr_imu_to_velo": "Tr_imu_to_velo",
    "Tr_imu_velo": "Tr_imu_to_velo",
}
_SHAPES = {
    "P0": (3, 4),
    "P1": (3, 4),
    "P2": (3, 4),
    "P3": (3, 4),
    "R0_rect": (3, 3),
    "Tr_velo_to_cam": (3, 4),
    "Tr_imu_to_velo": (3, 4),
}
_REQUIRED = ("P2", "R0_rect", "Tr_velo_to_cam")


def _as_points(points: np.ndarray, where: str) -> np.ndarray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise InvalidInputError(f"{where}: points must have shape (N, 3) or (N, >=3), got {arr.shape}")
    return arr[:, :3]


def _affine(xyz: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``xyz @ m[:3, :3].T + m[:3, 3]`` column by column.

    For ``(N, 3)`` inputs this is an order of magnitude faster than a BLAS matmul with a 3-wide
    inner dimension, and bitwise reproducible.
    """
    x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    out = np.empty((xyz.shape[0], 3), dtype=np.float64)
    for r in range(3):
        out[:, r] = x * m[r, 0] + y * m[r, 1] + z * m[r, 2] + (m[r, 3] if m.shape[1] > 3 else 0.0)
    return out


@dataclass(frozen=True, eq=False)
class Calibration:
    """Calibration of one KITTI frame.

    Attributes
    ----------
    P0, P1, P2, P3 : numpy.ndarray or None
        3x4 camera projection matrices (rectified coordinates). ``P2`` is always present.
    R0_rect : numpy.ndarray
        3x3 rectifying rotation.
    Tr_velo_to_cam : numpy.ndarray
        3x4 Velodyne-to-camera rigid transform.
    Tr_imu_to_velo : numpy.ndarray or None
        3x4 IMU-to-Velodyne rigid transform.
    path : str or None
        File the calibration was read from.

    Notes
    -----
    All transforms are ``O(N)`` in the number of points.
    """

    P2: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray
    P0: Optional[np.ndarray] = None
    P1: Optional[np.ndarray] = None
    P3: Optional[np.ndarray] = None
    Tr_imu_to_velo: Optional[np.ndarray] = None
    path: Optional[str] = None

    def __post_init__(self) -> None:
        for name, shape in _SHAPES.items():
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape != shape:
                raise InvalidInputError(f"Calibration.{name} must have shape {shape}, got {arr.shape}")
            object.__setattr__(self, name, arr)
        tr = np.eye(4)
        tr[:3, :4] = self.Tr_velo_to_cam
        r0 = np.eye(4)
        r0[:3, :3] = self.R0_rect
        m = r0 @ tr
        object.__setattr__(self, "_velo_to_rect", m)
        object.__setattr__(self, "_rect_to_velo", np.linalg.inv(m))

    # -- transforms --------------------------------------------------------------------------

    def velo_to_rect_matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix mapping LiDAR points to rectified camera coordinates."""
        return self._velo_to_rect.copy()

    def lidar_to_camera(self, points: np.ndarray) -> np.ndarray:
        """Map ``(N, >=3)`` LiDAR points to ``(N, 3)`` rectified camera coordinates."""
        xyz = _as_points(points, "Calibration.lidar_to_camera")
        return _affine(xyz, self._velo_to_rect)

    def camera_to_lidar(self, points_cam: np.ndarray) -> np.ndarray:
        """Map ``(N, 3)`` rectified camera coordinates back to LiDAR coordinates."""
        xyz = _as_points(points_cam, "Calibration.camera_to_lidar")
        return _affine(xyz, self._rect_to_velo)

    def projection(self, camera: int = 2) -> np.ndarray:
        """The 3x4 projection matrix of camera ``camera`` (0-3)."""
        matrix = {0: self.P0, 1: self.P1, 2: self.P2, 3: self.P3}.get(camera)
        if matrix is None:
            raise InvalidInputError(
                f"{self.path or 'calibration'}: has no projection matrix P{camera}; "
                "use camera=2 or a calibration file with all four P lines"
            )
        return matrix

    def project_to_image(
        self, points_cam: np.ndarray, camera: int = 2, *, return_depth: bool = False
    ) -> Union[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Project rectified camera points to pixel coordinates ``(u, v)``.

        Parameters
        ----------
        points_cam : numpy.ndarray
            ``(N, 3)`` points in rectified camera coordinates.
        camera : int
            Which projection matrix to use (2 = left colour camera).
        return_depth : bool
            Also return the depth (camera z) of each point.

        Returns
        -------
        uv : numpy.ndarray
            ``(N, 2)`` pixel coordinates. Points with depth ``<= 0`` lie behind the camera and get
            ``nan``; filter them with the returned depth.
        depth : numpy.ndarray, optional
            ``(N,)`` depth, when ``return_depth`` is true.
        """
        xyz = _as_points(points_cam, "Calibration.project_to_image")
        proj = self.projection(camera)
        hom = _affine(xyz, proj)
        depth = hom[:, 2]
        uv = np.full((xyz.shape[0], 2), np.nan)
        front = depth > 0
        uv[front] = hom[front, :2] / depth[front, None]
        if return_depth:
            return uv, xyz[:, 2].copy()
        return uv

    def boxes_to_lidar(self, boxes: Sequence[Box3D]) -> np.ndarray:
        """Convert label boxes to LiDAR-frame boxes.

        Returns
        -------
        numpy.ndarray
            ``(M, 7)`` float64 rows ``x, y, z, l, w, h, yaw``: the box centre (not the bottom) in
            LiDAR coordinates, the length along the heading, the width, the height and the heading
            angle around the LiDAR z axis. The exact calibration rotation is used (not the usual
            ``-ry - pi/2`` shortcut), so slightly rotated calibrations stay consistent.
        """
        if len(boxes) == 0:
            return np.zeros((0, 7))
        loc = np.array([b.location for b in boxes], dtype=np.float64)
        dims = np.array([b.dimensions for b in boxes], dtype=np.float64)  # h, w, l
        ry = np.array([b.rotation_y for b in boxes], dtype=np.float64)
        centre_cam = loc.copy()
        centre_cam[:, 1] -= dims[:, 0] / 2.0  # camera y points down; the centre is above the bottom
        centre = self.camera_to_lidar(centre_cam)
        inv = self._rect_to_velo
        heading_cam = np.stack([np.cos(ry), np.zeros_like(ry), -np.sin(ry)], axis=1)
        heading = _affine(heading_cam, inv[:3, :3])
        yaw = np.arctan2(heading[:, 1], heading[:, 0])
        return np.column_stack([centre, dims[:, 2], dims[:, 1], dims[:, 0], yaw])

    def lidar_heading_to_rotation_y(self, yaw: np.ndarray) -> np.ndarray:
        """Convert LiDAR-frame headings (radians around z) to KITTI ``rotation_y``."""
        yaw = np.asarray(yaw, dtype=np.float64)
        heading = np.stack([np.cos(yaw), np.sin(yaw), np.zeros_like(yaw)], axis=-1)
        flat = heading.reshape(-1, 3)
        cam = _affine(flat, self._velo_to_rect[:3, :3]).reshape(heading.shape)
        return np.arctan2(-cam[..., 2], cam[..., 0])

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: PathLike) -> "Calibration":
        """Read a KITTI calibration file (see :func:`read_calibration`)."""
        return read_calibration(path)


def read_calibration(path: PathLike) -> Calibration:
    """Parse a KITTI object-benchmark calibration file.

    Accepts the object-benchmark names (``R0_rect``, ``Tr_velo_to_cam``, ``Tr_imu_to_velo``) and
    the tracking-benchmark aliases (``R_rect``, ``Tr_velo_cam``, ``Tr_imu_velo``). ``P2``,
    ``R0_rect`` and ``Tr_velo_to_cam`` are required.

    Raises
    ------
    NotFoundError
        The file does not exist.
    CorruptDataError
        A line is malformed (message names the file and the line number) or a required matrix is
        missing.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{p}: calibration file does not exist")
    matrices: dict[str, np.ndarray] = {}
    with open(p, "r", encoding="utf-8", errors="replace") as fh:
        for line_number, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            if ":" not in line:
                raise CorruptDataError(
                    f"{p}:{line_number}: expected 'NAME: values', got {line[:60]!r}"
                )
            name, _, rest = line.partition(":")
            name = name.strip()
            key = _ALIASES.get(name)
            if key is None:
                logger.debug("%s:%d: ignoring unknown calibration entry %r", p, line_number, name)
                continue
            try:
                values = np.array([float(v) for v in rest.split()], dtype=np.float64)
            except ValueError as exc:
                raise CorruptDataError(
                    f"{p}:{line_number}: {name} holds a non-numeric value"
                ) from exc
            shape = _SHAPES[key]
            if values.size != shape[0] * shape[1]:
                raise CorruptDataError(
                    f"{p}:{line_number}: {name} has {values.size} values, expected "
                    f"{shape[0] * shape[1]} ({shape[0]}x{shape[1]})"
                )
            if not np.isfinite(values).all():
                raise CorruptDataError(f"{p}:{line_number}: {name} holds NaN or inf")
            matrices[key] = values.reshape(shape)
    missing = [k for k in _REQUIRED if k not in matrices]
    if missing:
        raise CorruptDataError(
            f"{p}: calibration is missing {', '.join(missing)}; a KITTI calib file needs P2, "
            "R0_rect and Tr_velo_to_cam"
        )
    return Calibration(
        P2=matrices["P2"],
        R0_rect=matrices["R0_rect"],
        Tr_velo_to_cam=matrices["Tr_velo_to_cam"],
        P0=matrices.get("P0"),
        P1=matrices.get("P1"),
        P3=matrices.get("P3"),
        Tr_imu_to_velo=matrices.get("Tr_imu_to_velo"),
        path=str(p),
    )


def format_calibration(calib: Calibration) -> str:
    """Format a calibration as the text of a KITTI ``calib/<id>.txt`` file.

    Missing optional matrices are written as zeros (``P0``, ``P1``, ``P3``) or the identity
    transform (``Tr_imu_to_velo``) so that every KITTI tool can read the file.
    """
    zero34 = np.zeros((3, 4))
    eye34 = np.eye(3, 4)
    rows = [
        ("P0", calib.P0 if calib.P0 is not None else zero34),
        ("P1", calib.P1 if calib.P1 is not None else zero34),
        ("P2", calib.P2),
        ("P3", calib.P3 if calib.P3 is not None else zero34),
        ("R0_rect", calib.R0_rect),
        ("Tr_velo_to_cam", calib.Tr_velo_to_cam),
        ("Tr_imu_to_velo", calib.Tr_imu_to_velo if calib.Tr_imu_to_velo is not None else eye34),
    ]
    return "".join(
        f"{name}: " + " ".join(f"{v:.12e}" for v in np.asarray(m, dtype=np.float64).ravel()) + "\n"
        for name, m in rows
    )


def write_calibration(path: PathLike, calib: Calibration) -> Path:
    """Write ``calib`` to ``path`` in KITTI format (parent folders are created)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(format_calibration(calib), encoding="ascii")
    return p
