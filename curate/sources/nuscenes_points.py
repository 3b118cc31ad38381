"""Multi-sweep LiDAR clouds of nuScenes key frames, in the key frame's coordinates.

:func:`aggregate_sweeps` is the frame reader the embedding job (``sweeps=N``) and the tests use:
it reads the key frame and its ``N`` preceding sweeps (as :class:`~curate.sources.nuscenes.
NuScenesSource` recorded them: path, timestamp, ``sensor2lidar`` rotation / translation), moves
every sweep into the key frame's LiDAR frame, drops the sweep points within ``remove_close``
metres of their sensor (the ego car's roof, as mmdet3d's ``LoadPointsFromMultiSweeps`` does) and
returns ``(M, 5)`` float32 ``x, y, z, intensity, time_lag`` (seconds, 0 for the key frame), the
layout of mmdet3d's nuScenes point pipelines. Embedders get the arrays only.

Cost: ``O(total points)`` time and memory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from curate.errors import CorruptDataError, NotFoundError

__all__ = ["read_nuscenes_points", "aggregate_sweeps", "frame_sweeps"]

logger = logging.getLogger(__name__)

_RECORD = 20


def read_nuscenes_points(path: Union[str, Path]) -> np.ndarray:
    """``(N, 5)`` float32 ``x, y, z, intensity, ring`` of a nuScenes ``.pcd.bin`` file.

    Raises
    ------
    NotFoundError
        The file does not exist.
    CorruptDataError
        Its size is not a positive multiple of 20 bytes.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"{p}: LiDAR file does not exist")
    size = p.stat().st_size
    if size == 0 or size % _RECORD:
        raise CorruptDataError(
            f"{p}: {size} bytes is not a positive multiple of {_RECORD} (float32 x, y, z, intensity, ring)"
        )
    return np.fromfile(p, dtype="<f4").reshape(-1, 5)


def frame_sweeps(extra: Optional[Union[str, Mapping[str, Any]]]) -> tuple[list[dict[str, Any]], Optional[float]]:
    """The recorded sweeps and the key-frame LiDAR timestamp of a ``samples.extra`` value.

    Frames of sources without sweeps (KITTI, folders) give ``([], None)``.
    """
    if extra is None:
        return [], None
    meta = json.loads(extra) if isinstance(extra, str) else dict(extra)
    nusc = meta.get("nuscenes") if isinstance(meta, dict) else None
    if not isinstance(nusc, dict):
        return [], None
    return list(nusc.get("sweeps") or []), nusc.get("lidar_timestamp")


def aggregate_sweeps(
    lidar_path: Union[str, Path],
    sweeps: Sequence[Mapping[str, Any]],
    key_timestamp: Optional[float],
    n: int,
    *,
    remove_close: float = 1.0,
) -> np.ndarray:
    """The key frame plus its ``n`` preceding sweeps in the key frame's LiDAR frame.

    Parameters
    ----------
    lidar_path : str or Path
        Key-frame ``.pcd.bin`` (or any file :func:`curate.sources.pointcloud.read_points` reads).
    sweeps : sequence of mapping
        Newest first, each with ``path``, ``timestamp`` (s), ``sensor2lidar_rotation`` (3x3) and
        ``sensor2lidar_translation`` (3).
    key_timestamp : float or None
        Key-frame timestamp in seconds (``None``: time lags are 0).
    n : int
        Sweeps to add (fewer when the scene has fewer before this frame).
    remove_close : float
        Sweep points with ``|x| < remove_close`` and ``|y| < remove_close`` in their own sensor
        frame are dropped (the square of mmdet3d's and the devkit's ``remove_close``).

    Returns
    -------
    numpy.ndarray
        ``(M, 5)`` float32 ``x, y, z, intensity, time_lag``.

    Raises
    ------
    NotFoundError, CorruptDataError
        A key-frame or sweep file is missing or truncated (the message names it).
    """
    path = Path(lidar_path)
    if path.name.lower().endswith(".pcd.bin"):
        key = read_nuscenes_points(path)[:, :4]
    else:
        from curate.sources.pointcloud import read_points

        key = read_points(path)
    parts = [np.column_stack([key, np.zeros(len(key), dtype=np.float32)])]
    for sweep in list(sweeps)[: max(int(n), 0)]:
        pts = read_nuscenes_points(sweep["path"])
        if remove_close > 0:
            close = (np.abs(pts[:, 0]) < remove_close) & (np.abs(pts[:, 1]) < remove_close)
            pts = pts[~close]
        r = np.asarray(sweep["sensor2lidar_rotation"], dtype=np.float64)
        t = np.asarray(sweep["sensor2lidar_translation"], dtype=np.float64)
        xyz = pts[:, :3].astype(np.float64) @ r.T + t
        lag = 0.0 if key_timestamp is None else float(key_timestamp) - float(sweep["timestamp"])
        out = np.empty((len(pts), 5), dtype=np.float32)
        out[:, :3] = xyz
        out[:, 3] = pts[:, 3]
        out[:, 4] = lag
        parts.append(out)
    return np.ascontiguousarray(np.concatenate(parts, axis=0))
