"""A simple camera image for synthetic frames.

The picture is a projection of the scene into ``P2``: a sky / ground background split at the
horizon, every LiDAR return splatted in its surface colour with a depth test, then the labelled
objects painted far to near as shaded, back-face-culled box faces. Time of day and weather change
the tones (dark at night, warm at dusk, washed out in fog, dim in rain). It is not photorealistic;
it gives image encoders colour, layout and object blobs that agree with the point cloud.

Cost: ``O(points * splat area + faces)`` per image, memory ``O(width * height)``.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from curate.sources.calib import Calibration

__all__ = ["render_image", "box_corners"]

logger = logging.getLogger(__name__)

_SKY = {
    "day": ((110, 160, 225), (190, 215, 240)),
    "dusk": ((70, 60, 120), (240, 150, 90)),
    "night": ((5, 8, 20), (25, 30, 45)),
}
_GROUND = {"day": (95, 95, 95), "dusk": (80, 75, 75), "night": (20, 20, 22)}
_FOG_RGB = np.array([185.0, 185.0, 190.0])
# faces of a box whose corners are ordered as in :func:`box_corners`, with their local outward
# normal axis / sign and a shade (top faces lit, fronts / backs brighter than the sides)
_FACES = (
    ((4, 5, 6, 7), 2, 1.0, 1.0),
    ((3, 0, 4, 7), 0, 1.0, 0.8),
    ((1, 2, 6, 5), 0, -1.0, 0.8),
    ((0, 1, 5, 4), 1, 1.0, 0.62),
    ((2, 3, 7, 6), 1, -1.0, 0.62),
)


def box_corners(center: np.ndarray, half: np.ndarray, yaw: float) -> np.ndarray:
    """8 corners ``(8, 3)`` of a z-aligned box: bottom 4 counter-clockwise, then top 4."""
    sx = np.array([1, -1, -1, 1, 1, -1, -1, 1], dtype=np.float64) * half[0]
    sy = np.array([1, 1, -1, -1, 1, 1, -1, -1], dtype=np.float64) * half[1]
    sz = np.array([-1, -1, -1, -1, 1, 1, 1, 1], dtype=np.float64) * half[2]
    c, s = math.cos(yaw), math.sin(yaw)
    return np.column_stack([center[0] + c * sx - s * sy, center[1] + s * sx + c * sy, center[2] + sz])


def _visible_faces(
    centers: np.ndarray, halves: np.ndarray, yaw: float, camera: np.ndarray
) -> tuple[list[np.ndarray], list[float], list[float]]:
    """Corners ``(4, 3)``, shade and distance of every part face that faces the camera."""
    c, s = math.cos(yaw), math.sin(yaw)
    axes = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    quads: list[np.ndarray] = []
    shades: list[float] = []
    dists: list[float] = []
    for center, half in zip(centers, halves):
        corners = box_corners(center, half, yaw)
        for face, axis, sign, shade in _FACES:
            normal = sign * axes[axis]
            face_center = center + normal * half[axis]
            if float(np.dot(face_center - camera, normal)) >= 0.0:
                continue  # back face
            quads.append(corners[list(face)])
            shades.append(shade)
            dists.append(float(np.linalg.norm(face_center - camera)))
    return quads, shades, dists


def _tone(rgb: np.ndarray, time_of_day: str, weather: str) -> np.ndarray:
    out = rgb.astype(np.float64)
    if time_of_day == "night":
        out = out * 0.32 + np.array([0.0, 2.0, 8.0])
    elif time_of_day == "dusk":
        out = out * np.array([1.0, 0.85, 0.72])
    if weather == "rain":
        grey = out.mean(axis=-1, keepdims=True)
        out = 0.8 * (0.6 * out + 0.4 * grey)
    return out


def render_image(
    calib: Calibration,
    width: int,
    height: int,
    points: np.ndarray,
    colors: np.ndarray,
    objects: Sequence[tuple[np.ndarray, np.ndarray, float, np.ndarray]],
    *,
    time_of_day: str,
    weather: str,
    fog_visibility: float,
    splat: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Render an ``(height, width, 3)`` uint8 image.

    Parameters
    ----------
    calib : Calibration
        Frame calibration (``P2`` must match ``width`` / ``height``).
    points : numpy.ndarray
        ``(N, 3)`` LiDAR-frame points.
    colors : numpy.ndarray
        ``(N, 3)`` surface colour of each point (0-255).
    objects : sequence of (centers, halves, yaw, rgb)
        For each labelled object, its parts' ``(P, 3)`` LiDAR-frame centres and ``(P, 3)`` half
        extents, its yaw around z and its colour.
    fog_visibility : float
        Metres; ``inf`` for no fog.
    splat : (int, int)
        Width and height in pixels of the square drawn for each point.
    rng : numpy.random.Generator
        Source of the sensor noise.
    """
    img = np.zeros((height, width, 3), dtype=np.float64)
    horizon_cam = calib.lidar_to_camera(np.array([[1000.0, 0.0, -1.73]]))
    v_h = float(calib.project_to_image(horizon_cam)[0, 1])
    v_h = min(max(v_h, 0.0), float(height))
    top, bottom = (np.array(c, dtype=np.float64) for c in _SKY[time_of_day])
    rows = np.arange(height, dtype=np.float64)[:, None]
    frac = np.clip(rows / max(v_h, 1.0), 0.0, 1.0)
    img[:] = (top * (1 - frac) + bottom * frac)[:, None, :]
    ground_rows = rows[:, 0] >= v_h
    img[ground_rows] = np.array(_GROUND[time_of_day], dtype=np.float64)

    cam = calib.lidar_to_camera(points)
    depth = cam[:, 2]
    front = depth > 0.5
    uv = calib.project_to_image(cam[front])
    d = depth[front]
    rgb = colors[front].astype(np.float64)
    if math.isfinite(fog_visibility):
        f = np.exp(-d / fog_visibility)[:, None]
        rgb = rgb * f + _FOG_RGB * (1 - f)
    # points are splatted at a reduced resolution for large images, then upsampled
    k = 2 if width >= 600 else 1
    lw, lh = -(-width // k), -(-height // k)
    u = np.floor(uv[:, 0] / k).astype(np.int64)
    v = np.floor(uv[:, 1] / k).astype(np.int64)
    sw, sh = max(1, -(-splat[0] // k)), max(1, -(-splat[1] // k))
    inside = (u >= -sw) & (u < lw + sw) & (v >= -sh) & (v < lh + sh)
    order = np.argsort(-d[inside], kind="stable")  # far first: among equal pixels the nearest wins
    u, v, d, rgb = u[inside][order], v[inside][order], d[inside][order], rgb[inside][order]
    zbuf = np.full(lh * lw, np.inf)
    owner = np.full(lh * lw, -1, dtype=np.int64)
    index = np.arange(u.size)
    for oy in range(-(sh // 2), sh - sh // 2):
        vv = v + oy
        ok_v = (vv >= 0) & (vv < lh)
        for ox in range(-(sw // 2), sw - sw // 2):
            uu = u + ox
            ok = ok_v & (uu >= 0) & (uu < lw)
            pix = vv[ok] * lw + uu[ok]
            dd = d[ok]
            nearer = dd < zbuf[pix]
            pix = pix[nearer]
            zbuf[pix] = dd[nearer]
            owner[pix] = index[ok][nearer]
    covered = owner >= 0
    layer = np.zeros((lh * lw, 3))
    layer[covered] = rgb[owner[covered]]
    layer = layer.reshape(lh, lw, 3)
    mask = covered.reshape(lh, lw)
    if k > 1:
        layer = np.repeat(np.repeat(layer, k, axis=0), k, axis=1)[:height, :width]
        mask = np.repeat(np.repeat(mask, k, axis=0), k, axis=1)[:height, :width]
    img[mask] = layer[mask]

    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(pil)
    camera_lidar = calib.camera_to_lidar(np.zeros((1, 3)))[0]
    drawn: list[tuple[float, np.ndarray, tuple[int, int, int]]] = []
    for centers, halves, yaw, color in objects:
        quads, shades, dists = _visible_faces(centers, halves, yaw, camera_lidar)
        if not quads:
            continue
        quad_arr = np.concatenate(quads)  # (4 * faces, 3)
        quad_cam = calib.lidar_to_camera(quad_arr)
        if np.any(quad_cam[:, 2] < 0.5):
            continue  # partly behind the camera: leave it to the points
        uvq = calib.project_to_image(quad_cam).reshape(-1, 4, 2)
        base = np.asarray(color, dtype=np.float64)
        for k in range(uvq.shape[0]):
            c = base * shades[k]
            if math.isfinite(fog_visibility):
                f = math.exp(-dists[k] / fog_visibility)
                c = c * f + _FOG_RGB * (1 - f)
            drawn.append((dists[k], uvq[k], tuple(int(x) for x in np.clip(c, 0, 255))))
    for _, uvq, c in sorted(drawn, key=lambda item: -item[0]):
        draw.polygon([(float(a), float(b)) for a, b in uvq], fill=c)
    out = _tone(np.asarray(pil, dtype=np.float64), time_of_day, weather)
    out += rng.integers(-3, 4, size=out.shape, dtype=np.int16)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
