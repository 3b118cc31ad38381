"""Vectorised LiDAR ray casting against a ground model and oriented composite boxes.

Coordinates are the sensor (Velodyne) frame: x forward, y left, z up, origin at the sensor.

A scan is a regular grid of rays: ``B`` beam elevations times ``A`` azimuth steps. The scene is

* a :class:`GroundModel`: a road plane ``z = -height + slope * x`` whose part with
  ``|lateral| > road_half`` is raised by ``curb_height`` (sidewalk / verge) with a vertical curb
  face, where ``lateral = offset + sin(yaw) * x + cos(yaw) * y``; it is intersected analytically
  for every ray;
* :class:`Shapes`: objects made of one or more boxes ("parts") that share the object's yaw around
  z. Each shape is intersected only with the rays inside its angular footprint (azimuth interval
  of its bounding box, elevation interval from the nearest / farthest horizontal distance), which
  is what makes full-size scans cheap. :func:`cast_rays_reference` does the same computation ray
  by ray in plain Python with no culling; tests compare the two.

Cost of :func:`cast_rays`: ``O(B * A)`` for the ground plus, per shape, ``O(parts * rays in its
footprint)``; memory ``O(B * A)``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "LidarPattern",
    "GroundModel",
    "Shapes",
    "CastResult",
    "cast_rays",
    "cast_rays_reference",
    "SURFACE_NONE",
    "SURFACE_ROAD",
    "SURFACE_RAISED",
    "SURFACE_CURB",
    "SURFACE_SHAPE",
]

logger = logging.getLogger(__name__)

SURFACE_NONE = 0
SURFACE_ROAD = 1
SURFACE_RAISED = 2
SURFACE_CURB = 3
SURFACE_SHAPE = 4


@dataclass(frozen=True, eq=False)
class LidarPattern:
    """A spinning LiDAR's ray grid.

    Attributes
    ----------
    elevations : numpy.ndarray
        ``(B,)`` beam elevation angles in radians, strictly increasing.
    n_azimuth : int
        Azimuth steps per revolution; step ``k`` points at ``-pi + (k + 0.5) * 2 pi / n_azimuth``.
    max_range, min_range : float
        Returns farther / nearer than these (metres) are discarded.
    """

    elevations: np.ndarray
    n_azimuth: int
    max_range: float = 120.0
    min_range: float = 1.0
    dx: np.ndarray = field(init=False, repr=False)
    dy: np.ndarray = field(init=False, repr=False)
    dz: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        el = np.asarray(self.elevations, dtype=np.float64)
        if el.ndim != 1 or el.size == 0 or np.any(np.diff(el) <= 0):
            raise ValueError("elevations must be a non-empty strictly increasing 1-D array")
        if self.n_azimuth < 4:
            raise ValueError("n_azimuth must be at least 4")
        object.__setattr__(self, "elevations", el)
        az = self.azimuths
        ce = np.cos(el)[:, None]
        object.__setattr__(self, "dx", np.ascontiguousarray(ce * np.cos(az)[None, :]))
        object.__setattr__(self, "dy", np.ascontiguousarray(ce * np.sin(az)[None, :]))
        object.__setattr__(
            self, "dz", np.ascontiguousarray(np.repeat(np.sin(el)[:, None], self.n_azimuth, axis=1))
        )

    @property
    def azimuth_step(self) -> float:
        return 2.0 * math.pi / self.n_azimuth

    @property
    def azimuths(self) -> np.ndarray:
        return -math.pi + (np.arange(self.n_azimuth) + 0.5) * self.azimuth_step

    @property
    def shape(self) -> tuple[int, int]:
        return (self.elevations.size, self.n_azimuth)


@dataclass(frozen=True)
class GroundModel:
    """Road plane with raised sides (see module docstring). Lengths in metres, angles radians."""

    height: float = 1.73
    slope: float = 0.0
    lateral_offset: float = 0.0
    yaw: float = 0.0
    road_half: float = 5.0
    curb_height: float = 0.12


@dataclass(eq=False)
class Shapes:
    """Composite boxes in the sensor frame.

    Attributes
    ----------
    centers : numpy.ndarray
        ``(S, 3)`` reference point of each shape (its parts are offset from it).
    yaws : numpy.ndarray
        ``(S,)`` rotation of each shape around z.
    part_shape : numpy.ndarray
        ``(P,)`` owning shape of each part (parts of a shape are contiguous, shapes in order).
    part_offsets : numpy.ndarray
        ``(P, 3)`` part centre in the shape's local frame (x along the yaw direction).
    part_half : numpy.ndarray
        ``(P, 3)`` half extents of each part along local x, y, z.
    """

    centers: np.ndarray
    yaws: np.ndarray
    part_shape: np.ndarray
    part_offsets: np.ndarray
    part_half: np.ndarray

    def __post_init__(self) -> None:
        self.centers = np.asarray(self.centers, dtype=np.float64).reshape(-1, 3)
        self.yaws = np.asarray(self.yaws, dtype=np.float64).reshape(-1)
        self.part_shape = np.asarray(self.part_shape, dtype=np.int64).reshape(-1)
        self.part_offsets = np.asarray(self.part_offsets, dtype=np.float64).reshape(-1, 3)
        self.part_half = np.asarray(self.part_half, dtype=np.float64).reshape(-1, 3)
        n = self.centers.shape[0]
        if self.yaws.shape[0] != n:
            raise ValueError("centers and yaws disagree on the number of shapes")
        if self.part_shape.size and (
            np.any(np.diff(self.part_shape) < 0) or self.part_shape.min() < 0 or self.part_shape.max() >= n
        ):
            raise ValueError("part_shape must be sorted shape indices in [0, S)")
        if np.any(self.part_half <= 0):
            raise ValueError("part half extents must be positive")
        starts = np.searchsorted(self.part_shape, np.arange(n), side="left")
        stops = np.searchsorted(self.part_shape, np.arange(n), side="right")
        self.part_start = starts
        self.part_stop = stops

    @property
    def n_shapes(self) -> int:
        return int(self.centers.shape[0])

    def bounds_local(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        """Local-frame (min, max) corners of shape ``s``'s bounding box."""
        a, b = self.part_start[s], self.part_stop[s]
        lo = (self.part_offsets[a:b] - self.part_half[a:b]).min(axis=0)
        hi = (self.part_offsets[a:b] + self.part_half[a:b]).max(axis=0)
        return lo, hi


@dataclass(eq=False)
class CastResult:
    """Per-ray result of a scan, arrays of shape ``(B, A)`` unless noted.

    Attributes
    ----------
    t : numpy.ndarray
        Range along the ray of the first hit (``inf`` when nothing within range).
    surface : numpy.ndarray
        int8 surface code: ``SURFACE_NONE``, ``_ROAD``, ``_RAISED``, ``_CURB`` or ``_SHAPE``.
    shape_id : numpy.ndarray
        int32 index of the hit shape (``-1`` if not a shape).
    part_id : numpy.ndarray
        int32 index of the hit part (``-1`` if not a shape).
    lateral : numpy.ndarray
        Lateral road coordinate of the hit point (ground hits; ``nan`` elsewhere).
    cos_incidence : numpy.ndarray
        ``|cos|`` of the angle between the ray and the surface normal (0 where no hit).
    shape_rays : numpy.ndarray
        ``(S,)`` number of rays that intersect each shape within range, occluded or not.
    """

    t: np.ndarray
    surface: np.ndarray
    shape_id: np.ndarray
    part_id: np.ndarray
    lateral: np.ndarray
    cos_incidence: np.ndarray
    shape_rays: np.ndarray


def _intersect_ground(pattern: LidarPattern, ground: GroundModel):
    dx, dy, dz = pattern.dx, pattern.dy, pattern.dz
    sin_y, cos_y = math.sin(ground.yaw), math.cos(ground.yaw)
    denom = dz - ground.slope * dx
    du = sin_y * dx + cos_y * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        down = denom < 0
        t_lo = np.where(down, -ground.height / np.where(down, denom, -1.0), np.inf)
        t_hi = np.where(down, (ground.curb_height - ground.height) / np.where(down, denom, -1.0), np.inf)
    e = ground.lateral_offset
    u_hi = e + t_hi * du
    u_lo = e + t_lo * du
    raised = down & (np.abs(u_hi) > ground.road_half)
    road = down & ~raised & (np.abs(u_lo) <= ground.road_half)
    curb = down & ~raised & ~road
    t = np.full(pattern.shape, np.inf)
    surface = np.zeros(pattern.shape, dtype=np.int8)
    lateral = np.full(pattern.shape, np.nan)
    t[raised] = t_hi[raised]
    surface[raised] = SURFACE_RAISED
    lateral[raised] = u_hi[raised]
    t[road] = t_lo[road]
    surface[road] = SURFACE_ROAD
    lateral[road] = u_lo[road]
    if curb.any():
        side = np.sign(u_lo[curb])
        t_c = (side * ground.road_half - e) / du[curb]
        t[curb] = t_c
        surface[curb] = SURFACE_CURB
        lateral[curb] = side * ground.road_half
    cos_inc = np.abs(denom) / math.sqrt(1.0 + ground.slope**2)
    cos_inc = np.where(surface == SURFACE_CURB, np.abs(du), cos_inc)
    return t, surface, lateral, cos_inc


def _footprint(
    pattern: LidarPattern, center: np.ndarray, yaw: float, lo: np.ndarray, hi: np.ndarray
) -> tuple[int, int, list[tuple[int, int]]] | None:
    """Beam range and azimuth column ranges that can hit the box ``[lo, hi]`` (local frame)."""
    c, s = math.cos(yaw), math.sin(yaw)
    # sensor position in the shape's local frame
    ox = -(c * center[0] + s * center[1])
    oy = -(-s * center[0] + c * center[1])
    ddx = max(lo[0] - ox, 0.0, ox - hi[0])
    ddy = max(lo[1] - oy, 0.0, oy - hi[1])
    dmin = math.hypot(ddx, ddy)
    if dmin > pattern.max_range:
        return None
    xs = np.array([lo[0], hi[0], hi[0], lo[0]])
    ys = np.array([lo[1], lo[1], hi[1], hi[1]])
    cx = center[0] + c * xs - s * ys
    cy = center[1] + s * xs + c * ys
    dmax = float(np.hypot(cx, cy).max())
    z_bot = center[2] + lo[2]
    z_top = center[2] + hi[2]
    el_hi = math.atan2(z_top, dmin if z_top > 0 else dmax)
    el_lo = math.atan2(z_bot, dmax if z_bot > 0 else dmin)
    b0 = int(np.searchsorted(pattern.elevations, el_lo, side="left"))
    b1 = int(np.searchsorted(pattern.elevations, el_hi, side="right"))
    if b0 >= b1:
        return None
    a_n = pattern.n_azimuth
    if dmin == 0.0:
        return b0, b1, [(0, a_n)]
    az_c = math.atan2(center[1] + s * 0.5 * (lo[0] + hi[0]) + c * 0.5 * (lo[1] + hi[1]),
                      center[0] + c * 0.5 * (lo[0] + hi[0]) - s * 0.5 * (lo[1] + hi[1]))
    rel = np.arctan2(np.sin(np.arctan2(cy, cx) - az_c), np.cos(np.arctan2(cy, cx) - az_c))
    a_lo = az_c + float(rel.min())
    a_hi = az_c + float(rel.max())
    step = pattern.azimuth_step
    k0 = int(math.floor((a_lo + math.pi) / step - 0.5)) - 1
    k1 = int(math.ceil((a_hi + math.pi) / step - 0.5)) + 2
    if k1 - k0 >= a_n:
        return b0, b1, [(0, a_n)]
    k0m = k0 % a_n
    k1m = k0m + (k1 - k0)
    if k1m <= a_n:
        return b0, b1, [(k0m, k1m)]
    return b0, b1, [(k0m, a_n), (0, k1m - a_n)]


def cast_rays(pattern: LidarPattern, ground: GroundModel, shapes: Shapes) -> CastResult:
    """Cast every ray of ``pattern`` against ``ground`` and ``shapes`` (culled, vectorised).

    Returns
    -------
    CastResult
        First hits; see :class:`CastResult`. A sensor inside a box does not see that box.
    """
    t, surface, lateral, cos_inc = _intersect_ground(pattern, ground)
    shape_id = np.full(pattern.shape, -1, dtype=np.int32)
    part_id = np.full(pattern.shape, -1, dtype=np.int32)
    shape_rays = np.zeros(shapes.n_shapes, dtype=np.int64)
    max_range = pattern.max_range
    for s in range(shapes.n_shapes):
        lo, hi = shapes.bounds_local(s)
        center = shapes.centers[s]
        yaw = float(shapes.yaws[s])
        fp = _footprint(pattern, center, yaw, lo, hi)
        if fp is None:
            continue
        b0, b1, columns = fp
        c, sn = math.cos(yaw), math.sin(yaw)
        ox = -(c * center[0] + sn * center[1])
        oy = -(-sn * center[0] + c * center[1])
        oz = -center[2]
        for a0, a1 in columns:
            dx = pattern.dx[b0:b1, a0:a1]
            dy = pattern.dy[b0:b1, a0:a1]
            dz = pattern.dz[b0:b1, a0:a1]
            lx = c * dx + sn * dy
            ly = -sn * dx + c * dy
            with np.errstate(divide="ignore", invalid="ignore"):
                ix = 1.0 / lx
                iy = 1.0 / ly
                iz = 1.0 / dz
                best = np.full(dx.shape, np.inf)
                best_part = np.full(dx.shape, -1, dtype=np.int32)
                for p in range(shapes.part_start[s], shapes.part_stop[s]):
                    off = shapes.part_offsets[p]
                    h = shapes.part_half[p]
                    px, py, pz = ox - off[0], oy - off[1], oz - off[2]
                    t1 = (-h[0] - px) * ix
                    t2 = (h[0] - px) * ix
                    tnear = np.minimum(t1, t2)
                    tfar = np.maximum(t1, t2)
                    t1 = (-h[1] - py) * iy
                    t2 = (h[1] - py) * iy
                    np.maximum(tnear, np.minimum(t1, t2), out=tnear)
                    np.minimum(tfar, np.maximum(t1, t2), out=tfar)
                    t1 = (-h[2] - pz) * iz
                    t2 = (h[2] - pz) * iz
                    np.maximum(tnear, np.minimum(t1, t2), out=tnear)
                    np.minimum(tfar, np.maximum(t1, t2), out=tfar)
                    hit = (tnear <= tfar) & (tnear > 0.0) & (tnear < best)
                    best[hit] = tnear[hit]
                    best_part[hit] = p
            within = best < max_range
            shape_rays[s] += int(np.count_nonzero(within))
            t_view = t[b0:b1, a0:a1]
            closer = within & (best < t_view)
            if closer.any():
                t_view[closer] = best[closer]
                surface[b0:b1, a0:a1][closer] = SURFACE_SHAPE
                shape_id[b0:b1, a0:a1][closer] = s
                part_id[b0:b1, a0:a1][closer] = best_part[closer]
                lateral[b0:b1, a0:a1][closer] = np.nan
    hit_shape = surface == SURFACE_SHAPE
    if hit_shape.any():
        cos_inc[hit_shape] = _shape_incidence(pattern, shapes, hit_shape, t, part_id)
    far = ~(t < max_range)
    t[far] = np.inf
    surface[far] = SURFACE_NONE
    shape_id[far] = -1
    part_id[far] = -1
    lateral[far] = np.nan
    cos_inc = np.where(far, 0.0, cos_inc)
    return CastResult(t, surface, shape_id, part_id, lateral, cos_inc, shape_rays)


def _shape_incidence(
    pattern: LidarPattern, shapes: Shapes, mask: np.ndarray, t: np.ndarray, part_id: np.ndarray
) -> np.ndarray:
    """``|cos|`` incidence for shape hits: the face is the local axis where the hit is extreme."""
    parts = part_id[mask]
    owner = shapes.part_shape[parts]
    yaw = shapes.yaws[owner]
    c, s = np.cos(yaw), np.sin(yaw)
    dx, dy, dz = pattern.dx[mask], pattern.dy[mask], pattern.dz[mask]
    tt = t[mask]
    rel_x = tt * dx - shapes.centers[owner, 0]
    rel_y = tt * dy - shapes.centers[owner, 1]
    rel_z = tt * dz - shapes.centers[owner, 2]
    qx = c * rel_x + s * rel_y - shapes.part_offsets[parts, 0]
    qy = -s * rel_x + c * rel_y - shapes.part_offsets[parts, 1]
    qz = rel_z - shapes.part_offsets[parts, 2]
    ratios = np.stack(
        [np.abs(qx) / shapes.part_half[parts, 0], np.abs(qy) / shapes.part_half[parts, 1],
         np.abs(qz) / shapes.part_half[parts, 2]]
    )
    axis = np.argmax(ratios, axis=0)
    local = np.stack([c * dx + s * dy, -s * dx + c * dy, dz])
    return np.abs(np.take_along_axis(local, axis[None, :], axis=0)[0])


def cast_rays_reference(pattern: LidarPattern, ground: GroundModel, shapes: Shapes) -> CastResult:
    """Brute-force reference of :func:`cast_rays`: every ray against every part, in plain Python.

    ``O(B * A * P)`` Python operations; use only on tiny patterns (tests).
    """
    n_b, n_a = pattern.shape
    t_g, surf_g, lat_g, cos_g = _ground_reference(pattern, ground)
    t = t_g.copy()
    surface = surf_g.copy()
    lateral = lat_g.copy()
    cos_inc = cos_g.copy()
    shape_id = np.full(pattern.shape, -1, dtype=np.int32)
    part_id = np.full(pattern.shape, -1, dtype=np.int32)
    shape_rays = np.zeros(shapes.n_shapes, dtype=np.int64)
    for b in range(n_b):
        for a in range(n_a):
            d = (float(pattern.dx[b, a]), float(pattern.dy[b, a]), float(pattern.dz[b, a]))
            per_shape_best: dict[int, tuple[float, int, float]] = {}
            for p in range(shapes.part_shape.size):
                s = int(shapes.part_shape[p])
                hit = _slab(d, shapes, s, p)
                if hit is None:
                    continue
                tn, cos_p = hit
                if s not in per_shape_best or tn < per_shape_best[s][0]:
                    per_shape_best[s] = (tn, p, cos_p)
            for s, (tn, p, cos_p) in per_shape_best.items():
                if tn < pattern.max_range:
                    shape_rays[s] += 1
                    if tn < t[b, a]:
                        t[b, a] = tn
                        surface[b, a] = SURFACE_SHAPE
                        shape_id[b, a] = s
                        part_id[b, a] = p
                        lateral[b, a] = np.nan
                        cos_inc[b, a] = cos_p
            if not t[b, a] < pattern.max_range:
                t[b, a] = np.inf
                surface[b, a] = SURFACE_NONE
                shape_id[b, a] = -1
                part_id[b, a] = -1
                lateral[b, a] = np.nan
                cos_inc[b, a] = 0.0
    return CastResult(t, surface, shape_id, part_id, lateral, cos_inc, shape_rays)


def _slab(d: tuple[float, float, float], shapes: Shapes, s: int, p: int) -> tuple[float, float] | None:
    cx, cy, cz = (float(v) for v in shapes.centers[s])
    yaw = float(shapes.yaws[s])
    c, sn = math.cos(yaw), math.sin(yaw)
    local_d = (c * d[0] + sn * d[1], -sn * d[0] + c * d[1], d[2])
    origin = (-(c * cx + sn * cy), -(-sn * cx + c * cy), -cz)
    tnear, tfar, axis = -math.inf, math.inf, -1
    for k in range(3):
        o = origin[k] - float(shapes.part_offsets[p, k])
        h = float(shapes.part_half[p, k])
        if local_d[k] == 0.0:
            if abs(o) > h:
                return None
            continue
        t1 = (-h - o) / local_d[k]
        t2 = (h - o) / local_d[k]
        lo, hi = min(t1, t2), max(t1, t2)
        if lo > tnear:
            tnear, axis = lo, k
        tfar = min(tfar, hi)
    if tnear > tfar or tnear <= 0.0:
        return None
    return tnear, abs(local_d[axis])


def _ground_reference(pattern: LidarPattern, ground: GroundModel):
    """Ground intersection ray by ray (plain Python), mirroring :func:`_intersect_ground`."""
    n_b, n_a = pattern.shape
    t = np.full(pattern.shape, np.inf)
    surface = np.zeros(pattern.shape, dtype=np.int8)
    lateral = np.full(pattern.shape, np.nan)
    cos_inc = np.zeros(pattern.shape)
    sy, cy = math.sin(ground.yaw), math.cos(ground.yaw)
    norm = math.sqrt(1.0 + ground.slope**2)
    for b in range(n_b):
        for a in range(n_a):
            dx, dy, dz = float(pattern.dx[b, a]), float(pattern.dy[b, a]), float(pattern.dz[b, a])
            denom = dz - ground.slope * dx
            if denom >= 0:
                continue
            du = sy * dx + cy * dy
            # march the two planes: the raised surface is met first on a descending ray
            t_hi = (ground.curb_height - ground.height) / denom
            u_hi = ground.lateral_offset + t_hi * du
            if abs(u_hi) > ground.road_half:
                t[b, a], surface[b, a], lateral[b, a] = t_hi, SURFACE_RAISED, u_hi
                cos_inc[b, a] = abs(denom) / norm
                continue
            t_lo = -ground.height / denom
            u_lo = ground.lateral_offset + t_lo * du
            if abs(u_lo) <= ground.road_half:
                t[b, a], surface[b, a], lateral[b, a] = t_lo, SURFACE_ROAD, u_lo
                cos_inc[b, a] = abs(denom) / norm
                continue
            side = 1.0 if u_lo > 0 else -1.0
            t[b, a] = (side * ground.road_half - ground.lateral_offset) / du
            surface[b, a], lateral[b, a], cos_inc[b, a] = SURFACE_CURB, side * ground.road_half, abs(du)
    return t, surface, lateral, cos_inc
