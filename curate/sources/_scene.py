"""World model of one synthetic drive: road layout, static clutter and moving actors.

World frame: the road runs along +x with its centre line at ``y = 0``; heights are relative to the
local road surface. Vehicles drive on the right (lanes in the +x direction have ``y < 0``).

Everything a drive contains is sampled once from the drive's own random generator
(:func:`build_drive`), so a drive is reproducible on its own and drives can be generated in any
order or in parallel. :meth:`DriveWorld.shapes_at` gives the shapes of one frame in the sensor
frame for :func:`curate.sources._raycast.cast_rays`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from curate.sources._raycast import GroundModel, Shapes

__all__ = [
    "AREA_OF_LOCATION",
    "CLASS_SIZES",
    "LABEL_CLASSES",
    "MATERIALS",
    "DriveConfig",
    "DriveWorld",
    "sample_drive_config",
    "build_drive",
]

logger = logging.getLogger(__name__)

FRAME_PERIOD_S = 0.1
SENSOR_HEIGHT_M = 1.73
PLACEMENT_MARGIN_M = 140.0

#: Location name -> area type; the area type drives layout and class mix.
AREA_OF_LOCATION: dict[str, str] = {
    "downtown": "urban",
    "old_town": "urban",
    "suburbs": "residential",
    "campus": "residential",
    "autobahn": "highway",
}
_LOCATION_P = {"downtown": 0.25, "old_town": 0.15, "suburbs": 0.25, "campus": 0.1, "autobahn": 0.25}
_TIME_OF_DAY_P = {"day": 0.6, "dusk": 0.2, "night": 0.2}
_WEATHER_P = {"clear": 0.7, "rain": 0.2, "fog": 0.1}
_HOURS = {"day": (8.0, 16.5), "dusk": (17.5, 19.5), "night": (21.0, 23.5)}

#: KITTI label classes the generator produces.
LABEL_CLASSES: tuple[str, ...] = ("Car", "Van", "Truck", "Pedestrian", "Cyclist", "Tram")

#: Mean and standard deviation of (h, w, l) per class, close to the KITTI training statistics.
CLASS_SIZES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "Car": ((1.53, 1.63, 3.88), (0.12, 0.09, 0.35)),
    "Van": ((2.21, 1.90, 5.08), (0.25, 0.12, 0.45)),
    "Truck": ((3.25, 2.55, 10.1), (0.30, 0.12, 1.80)),
    "Pedestrian": ((1.76, 0.66, 0.84), (0.10, 0.10, 0.15)),
    "Cyclist": ((1.74, 0.60, 1.76), (0.08, 0.08, 0.12)),
    "Tram": ((3.53, 2.54, 16.1), (0.08, 0.06, 2.50)),
}
_SIZE_LIMITS = {
    "Car": ((1.3, 1.4, 3.2), (1.9, 1.95, 4.9)),
    "Van": ((1.8, 1.7, 4.3), (2.7, 2.2, 6.2)),
    "Truck": ((2.6, 2.3, 6.5), (4.0, 2.8, 16.5)),
    "Pedestrian": ((1.45, 0.45, 0.5), (2.0, 0.9, 1.2)),
    "Cyclist": ((1.5, 0.45, 1.5), (1.95, 0.8, 2.0)),
    "Tram": ((3.3, 2.4, 12.0), (3.7, 2.7, 22.0)),
}

# material code -> (name, base reflectivity, range noise sigma, extra dropout probability)
MATERIALS: dict[int, tuple[str, float, float, float]] = {
    0: ("road", 0.12, 0.015, 0.0),
    1: ("lane_marking", 0.75, 0.015, 0.0),
    2: ("sidewalk", 0.28, 0.015, 0.0),
    3: ("terrain", 0.35, 0.03, 0.02),
    4: ("curb", 0.30, 0.015, 0.0),
    5: ("building", 0.30, 0.02, 0.0),
    6: ("pole", 0.50, 0.015, 0.0),
    7: ("trunk", 0.30, 0.02, 0.0),
    8: ("foliage", 0.30, 0.08, 0.25),
    9: ("barrier", 0.50, 0.015, 0.0),
    10: ("vehicle", 0.30, 0.015, 0.0),
    11: ("person", 0.25, 0.02, 0.0),
    12: ("clutter", 0.02, 0.05, 0.0),
}
MAT_ROAD, MAT_MARK, MAT_SIDEWALK, MAT_TERRAIN, MAT_CURB = 0, 1, 2, 3, 4
MAT_BUILDING, MAT_POLE, MAT_TRUNK, MAT_FOLIAGE, MAT_BARRIER = 5, 6, 7, 8, 9
MAT_VEHICLE, MAT_PERSON, MAT_CLUTTER = 10, 11, 12

_VEHICLE_COLORS = np.array(
    [[200, 200, 205], [30, 30, 35], [120, 125, 130], [160, 20, 25], [20, 50, 120], [235, 235, 230],
     [60, 90, 60], [180, 150, 60], [90, 40, 30], [40, 110, 170]],
    dtype=np.float64,
)
_VEHICLE_REFL = np.array([0.45, 0.06, 0.25, 0.3, 0.15, 0.55, 0.18, 0.35, 0.12, 0.3])


def _choice(rng: np.random.Generator, table: dict[str, float]) -> str:
    names = list(table)
    p = np.array([table[n] for n in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


@dataclass(frozen=True)
class DriveConfig:
    """Drive-level parameters (also written to the frames' metadata)."""

    index: int
    name: str
    n_frames: int
    first_frame: int
    location: str
    area: str
    time_of_day: str
    weather: str
    start_timestamp: float
    ego_speed: float


def sample_drive_config(
    rng: np.random.Generator, index: int, n_frames: int, first_frame: int
) -> DriveConfig:
    """Draw location, time of day, weather, start time and ego speed of one drive."""
    location = _choice(rng, _LOCATION_P)
    area = AREA_OF_LOCATION[location]
    tod = _choice(rng, _TIME_OF_DAY_P)
    weather = _choice(rng, _WEATHER_P)
    day = int(rng.integers(0, 365))
    hour = float(rng.uniform(*_HOURS[tod]))
    start = 1_704_067_200.0 + day * 86_400.0 + round(hour * 3600.0, 3)  # days after 2024-01-01
    if area == "highway":
        speed = float(rng.uniform(18.0, 30.0))
    else:
        stopped = rng.random() < (0.15 if area == "urban" else 0.1)
        speed = 0.0 if stopped else float(rng.uniform(4.0, 12.0 if area == "urban" else 9.0))
    return DriveConfig(
        index=index,
        name=f"drive_{index:04d}",
        n_frames=n_frames,
        first_frame=first_frame,
        location=location,
        area=area,
        time_of_day=tod,
        weather=weather,
        start_timestamp=start,
        ego_speed=round(speed, 3),
    )


@dataclass
class _Bank:
    """Append-only lists of shapes; finalised into arrays by :class:`DriveWorld`."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)
    yaw: list[float] = field(default_factory=list)
    vx: list[float] = field(default_factory=list)
    vy: list[float] = field(default_factory=list)
    material: list[int] = field(default_factory=list)
    refl: list[float] = field(default_factory=list)
    color: list[tuple[float, float, float]] = field(default_factory=list)
    label: list[str] = field(default_factory=list)
    dims: list[tuple[float, float, float]] = field(default_factory=list)  # l, w, h
    part_shape: list[int] = field(default_factory=list)
    part_offset: list[tuple[float, float, float]] = field(default_factory=list)
    part_half: list[tuple[float, float, float]] = field(default_factory=list)

    def add(
        self,
        x: float,
        y: float,
        base: float,
        yaw: float,
        parts: list[tuple[float, float, float, float, float, float]],
        *,
        material: int,
        refl: float,
        color: tuple[float, float, float],
        label: str = "",
        speed: float = 0.0,
        dims: Optional[tuple[float, float, float]] = None,
    ) -> None:
        """Add a shape; ``parts`` are ``(cx, cy, z0, l, w, h)`` boxes (``z0`` = bottom height)."""
        s = len(self.x)
        self.x.append(x)
        self.y.append(y)
        self.base.append(base)
        self.yaw.append(yaw)
        self.vx.append(speed * math.cos(yaw))
        self.vy.append(speed * math.sin(yaw))
        self.material.append(material)
        self.refl.append(refl)
        self.color.append(color)
        self.label.append(label)
        for cx, cy, z0, l, w, h in parts:
            self.part_shape.append(s)
            self.part_offset.append((cx, cy, z0 + h / 2.0))
            self.part_half.append((l / 2.0, w / 2.0, h / 2.0))
        if dims is None:
            dims = (
                max(abs(p[0]) + p[3] / 2 for p in parts) * 2,
                max(abs(p[1]) + p[4] / 2 for p in parts) * 2,
                max(p[2] + p[5] for p in parts),
            )
        self.dims.append(dims)


def _object_parts(cls: str, h: float, w: float, l: float) -> list[tuple[float, float, float, float, float, float]]:
    """Composite boxes ``(cx, cy, z0, l, w, h)`` whose bounding box is exactly ``l x w x h``."""
    if cls == "Car":
        return [(0.0, 0.0, 0.12 * h, l, w, 0.46 * h), (-0.05 * l, 0.0, 0.58 * h, 0.55 * l, 0.88 * w, 0.42 * h)]
    if cls == "Van":
        return [(0.0, 0.0, 0.1 * h, l, w, 0.45 * h), (-0.08 * l, 0.0, 0.55 * h, 0.84 * l, 0.96 * w, 0.45 * h)]
    if cls == "Truck":
        return [
            (0.39 * l, 0.0, 0.15 * h, 0.22 * l, w, 0.65 * h),
            (-0.125 * l, 0.0, 0.25 * h, 0.75 * l, w, 0.75 * h),
            (0.0, 0.0, 0.08 * h, l, 0.8 * w, 0.17 * h),
        ]
    if cls == "Tram":
        return [(0.0, 0.0, 0.1 * h, l, w, 0.78 * h), (0.0, 0.0, 0.88 * h, 0.08 * l, 0.4 * w, 0.12 * h)]
    if cls == "Pedestrian":
        return [(0.0, 0.0, 0.0, l, 0.55 * w, 0.5 * h), (0.0, 0.0, 0.5 * h, 0.45 * l, w, 0.5 * h)]
    if cls == "Cyclist":
        return [(0.0, 0.0, 0.0, l, 0.3 * w, 0.58 * h), (-0.1 * l, 0.0, 0.45 * h, 0.4 * l, w, 0.55 * h)]
    raise ValueError(f"unknown class {cls!r}")


def _sample_size(rng: np.random.Generator, cls: str) -> tuple[float, float, float]:
    mean, std = CLASS_SIZES[cls]
    lo, hi = _SIZE_LIMITS[cls]
    h, w, l = (float(np.clip(rng.normal(m, s), a, b)) for m, s, a, b in zip(mean, std, lo, hi))
    return round(h, 2), round(w, 2), round(l, 2)


@dataclass
class DriveWorld:
    """A sampled drive: static scene, actors, ego trajectory and road geometry."""

    config: DriveConfig
    road_half: float
    curb_height: float
    sidewalk_width: float
    lane_width: float
    lane_lines: np.ndarray  # lateral positions of dashed lane separators
    edge_lines: np.ndarray  # lateral positions of solid edge lines
    slope: float
    ego_lane: float
    ego_wobble: tuple[float, float, float]  # amplitude (m), period (s), phase
    raised_material_far: int
    # shape arrays
    x: np.ndarray
    y: np.ndarray
    base: np.ndarray
    yaw: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    material: np.ndarray
    refl: np.ndarray
    color: np.ndarray
    label: list[str]
    dims: np.ndarray
    radius: np.ndarray
    part_shape: np.ndarray
    part_offset: np.ndarray
    part_half: np.ndarray
    part_start: np.ndarray = field(init=False)
    part_stop: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        n = self.x.size
        self.part_start = np.searchsorted(self.part_shape, np.arange(n), side="left")
        self.part_stop = np.searchsorted(self.part_shape, np.arange(n), side="right")

    @property
    def is_actor(self) -> np.ndarray:
        return np.array([bool(lbl) for lbl in self.label])

    def ego_pose(self, frame_index: int) -> tuple[float, float, float]:
        """Ego ``(x, y, yaw)`` in the world frame at a frame of the drive."""
        t = frame_index * FRAME_PERIOD_S
        amp, period, phase = self.ego_wobble
        x = self.config.ego_speed * t
        y = self.ego_lane + amp * math.sin(2 * math.pi * t / period + phase)
        dydt = amp * 2 * math.pi / period * math.cos(2 * math.pi * t / period + phase)
        yaw = math.atan2(dydt, max(self.config.ego_speed, 1.0)) if self.config.ego_speed > 0 else 0.0
        return x, y, yaw

    def ground_at(self, frame_index: int) -> GroundModel:
        _, ey, eyaw = self.ego_pose(frame_index)
        return GroundModel(
            height=SENSOR_HEIGHT_M,
            slope=self.slope,
            lateral_offset=ey,
            yaw=eyaw,
            road_half=self.road_half,
            curb_height=self.curb_height,
        )

    def shapes_at(self, frame_index: int, max_range: float) -> tuple[Shapes, np.ndarray]:
        """Shapes within ``max_range`` in the sensor frame, and their indices in this world.

        ``O(shapes + parts)``.
        """
        t = frame_index * FRAME_PERIOD_S
        ex, ey, eyaw = self.ego_pose(frame_index)
        wx = self.x + self.vx * t - ex
        wy = self.y + self.vy * t - ey
        c, s = math.cos(eyaw), math.sin(eyaw)
        xe = c * wx + s * wy
        ye = -s * wx + c * wy
        keep = np.flatnonzero(np.hypot(xe, ye) - self.radius < max_range + 1.0)
        z = -SENSOR_HEIGHT_M + self.slope * xe[keep] + self.base[keep]
        centers = np.column_stack([xe[keep], ye[keep], z])
        yaws = self.yaw[keep] - eyaw
        counts = self.part_stop[keep] - self.part_start[keep]
        part_idx = np.concatenate(
            [np.arange(a, b) for a, b in zip(self.part_start[keep], self.part_stop[keep])]
        ) if keep.size else np.zeros(0, dtype=np.int64)
        part_shape = np.repeat(np.arange(keep.size), counts)
        shapes = Shapes(centers, yaws, part_shape, self.part_offset[part_idx], self.part_half[part_idx])
        return shapes, keep


def _finalize(
    bank: _Bank, config: DriveConfig, **road: object
) -> DriveWorld:
    part_shape = np.asarray(bank.part_shape, dtype=np.int64)
    part_offset = np.asarray(bank.part_offset, dtype=np.float64).reshape(-1, 3)
    part_half = np.asarray(bank.part_half, dtype=np.float64).reshape(-1, 3)
    n = len(bank.x)
    radius = np.zeros(n)
    reach = np.hypot(np.abs(part_offset[:, 0]) + part_half[:, 0], np.abs(part_offset[:, 1]) + part_half[:, 1])
    np.maximum.at(radius, part_shape, reach)
    return DriveWorld(
        config=config,
        x=np.asarray(bank.x, dtype=np.float64),
        y=np.asarray(bank.y, dtype=np.float64),
        base=np.asarray(bank.base, dtype=np.float64),
        yaw=np.asarray(bank.yaw, dtype=np.float64),
        vx=np.asarray(bank.vx, dtype=np.float64),
        vy=np.asarray(bank.vy, dtype=np.float64),
        material=np.asarray(bank.material, dtype=np.int16),
        refl=np.asarray(bank.refl, dtype=np.float64),
        color=np.asarray(bank.color, dtype=np.float64).reshape(-1, 3),
        label=list(bank.label),
        dims=np.asarray(bank.dims, dtype=np.float64).reshape(-1, 3),
        radius=radius,
        part_shape=part_shape,
        part_offset=part_offset,
        part_half=part_half,
        **road,  # type: ignore[arg-type]
    )


# ----------------------------------------------------------------------------------------------
# layout
# ----------------------------------------------------------------------------------------------


def _row(rng: np.random.Generator, x_lo: float, x_hi: float, gap_fn, length_fn):
    """Yield ``(centre_x, item)`` along ``[x_lo, x_hi]`` with gaps from ``gap_fn``."""
    x = x_lo + gap_fn()
    while x < x_hi:
        length, item = length_fn()
        yield x + length / 2.0, item
        x += length + gap_fn()


def _sized(length: float, depth: float, height: float) -> tuple[float, tuple[float, float, float]]:
    return length, (length, depth, height)


def _vehicle_class(rng: np.random.Generator, mix: dict[str, float]) -> str:
    return _choice(rng, mix)


def _add_actor(bank: _Bank, rng: np.random.Generator, cls: str, size, x: float, y: float, base: float,
               yaw: float, speed: float) -> None:
    h, w, l = size
    if cls in ("Car", "Van", "Truck"):
        k = int(rng.integers(0, len(_VEHICLE_COLORS)))
        color = tuple(float(v) for v in _VEHICLE_COLORS[k])
        refl = float(np.clip(_VEHICLE_REFL[k] + rng.normal(0, 0.03), 0.03, 0.8))
        material = MAT_VEHICLE
    elif cls == "Tram":
        color = (210.0, 40.0, 35.0) if rng.random() < 0.5 else (230.0, 200.0, 40.0)
        refl, material = 0.45, MAT_VEHICLE
    else:
        color = tuple(float(v) for v in rng.integers(30, 220, size=3))
        refl = float(rng.uniform(0.18, 0.35))
        material = MAT_PERSON
    bank.add(x, y, base, yaw, _object_parts(cls, h, w, l), material=material, refl=refl, color=color,
             label=cls, speed=speed, dims=(l, w, h))


def build_drive(config: DriveConfig, rng: np.random.Generator) -> DriveWorld:
    """Sample the full world of one drive (static scene, actors, ego path) from ``rng``."""
    area = config.area
    bank = _Bank()
    duration = config.n_frames * FRAME_PERIOD_S
    travel = config.ego_speed * duration
    x_lo, x_hi = -PLACEMENT_MARGIN_M, travel + PLACEMENT_MARGIN_M

    # --- road cross-section --------------------------------------------------------------
    if area == "highway":
        lanes = int(rng.integers(2, 4))
        lane_w = 3.6
        median = 1.2
        parking = False
        shoulder = 2.5
        curb_h = 0.0
        sidewalk_w = 0.0
    else:
        lanes = 1
        lane_w = float(rng.uniform(3.1, 3.5))
        median = 0.0
        parking = bool(rng.random() < (0.8 if area == "urban" else 0.6))
        shoulder = 2.2 if parking else 0.4
        curb_h = 0.14 if area == "urban" else 0.12
        sidewalk_w = float(rng.uniform(3.0, 5.0) if area == "urban" else rng.uniform(2.8, 3.5))
    road_half = median / 2 + lanes * lane_w + shoulder
    fwd_lanes = [-(median / 2 + (k + 0.5) * lane_w) for k in range(lanes)]
    back_lanes = [median / 2 + (k + 0.5) * lane_w for k in range(lanes)]
    lane_lines = [-(median / 2 + k * lane_w) for k in range(1, lanes)] + [
        median / 2 + k * lane_w for k in range(1, lanes)
    ]
    if median == 0.0:
        lane_lines.append(0.0)
    edge_lines = [-(median / 2 + lanes * lane_w), median / 2 + lanes * lane_w]
    ego_lane = fwd_lanes[int(rng.integers(0, lanes))] if area == "highway" else fwd_lanes[0]

    night = config.time_of_day == "night"
    people_factor = {"day": 1.0, "dusk": 0.7, "night": 0.25}[config.time_of_day]
    people_factor *= {"clear": 1.0, "rain": 0.5, "fog": 0.8}[config.weather]
    traffic_factor = 0.5 if night else 1.0

    # --- static scene ---------------------------------------------------------------------
    outer = road_half + sidewalk_w
    for side in (-1.0, 1.0):
        if area == "urban":
            for cx, (length, depth, height) in _row(
                rng, x_lo, x_hi,
                lambda: float(rng.uniform(0.0, 0.4) if rng.random() < 0.7 else rng.uniform(4, 12)),
                lambda: _sized(float(rng.uniform(10, 35)), float(rng.uniform(10, 20)), float(rng.uniform(8, 25))),
            ):
                setback = float(rng.uniform(0.0, 1.0))
                tone = float(rng.uniform(110, 200))
                bank.add(cx, side * (outer + setback + depth / 2), curb_h - 0.5, float(rng.normal(0, 0.01)),
                         [(0.0, 0.0, 0.0, length, depth, height + 0.5)],
                         material=MAT_BUILDING, refl=float(rng.uniform(0.15, 0.45)),
                         color=(tone, tone * float(rng.uniform(0.85, 1.0)), tone * float(rng.uniform(0.7, 0.95))))
        elif area == "residential":
            for cx, (length, depth, height) in _row(
                rng, x_lo, x_hi, lambda: float(rng.uniform(6, 20)),
                lambda: _sized(float(rng.uniform(8, 15)), float(rng.uniform(8, 12)), float(rng.uniform(5, 9))),
            ):
                setback = float(rng.uniform(4, 10))
                tone = float(rng.uniform(140, 230))
                bank.add(cx, side * (outer + setback + depth / 2), curb_h - 0.5, float(rng.normal(0, 0.12)),
                         [(0.0, 0.0, 0.0, length, depth, height + 0.5)], material=MAT_BUILDING,
                         refl=float(rng.uniform(0.2, 0.5)), color=(tone, tone * 0.9, tone * 0.8))
                if rng.random() < 0.5:  # hedge in the front yard
                    hl = float(rng.uniform(4, 12))
                    bank.add(cx + float(rng.uniform(-3, 3)), side * (outer + max(setback - 1.5, 0.6)), curb_h, 0.0,
                             [(0.0, 0.0, 0.0, hl, 0.8, float(rng.uniform(0.8, 1.6)))], material=MAT_FOLIAGE,
                             refl=float(rng.uniform(0.2, 0.45)), color=(50.0, float(rng.uniform(90, 140)), 45.0))
        else:  # highway: guard rail segments, optional noise wall, vegetation on the verge
            x = x_lo
            while x < x_hi:
                bank.add(x + 20.0, side * (road_half + 0.6), 0.0, 0.0, [(0.0, 0.0, 0.45, 40.0, 0.2, 0.35)],
                         material=MAT_BARRIER, refl=0.55, color=(175.0, 175.0, 180.0))
                x += 40.0
            if rng.random() < 0.4:
                dist = float(rng.uniform(6, 10))
                x = x_lo
                while x < x_hi:
                    bank.add(x + 20.0, side * (road_half + dist), -0.3, 0.0, [(0.0, 0.0, 0.0, 40.0, 0.3, 4.3)],
                             material=MAT_BUILDING, refl=0.35, color=(150.0, 140.0, 120.0))
                    x += 40.0
        # poles / street lights along the outer edge of the sidewalk (or the verge)
        pole_u = side * (outer - 0.4) if sidewalk_w > 0 else side * (road_half + 1.5)
        x = x_lo + float(rng.uniform(0, 30))
        while x < x_hi:
            height = float(rng.uniform(5, 8))
            bank.add(x, pole_u, curb_h, 0.0, [(0.0, 0.0, 0.0, 0.25, 0.25, height)], material=MAT_POLE,
                     refl=0.5, color=(120.0, 120.0, 130.0))
            x += float(rng.uniform(20, 35) if area != "highway" else rng.uniform(45, 70))
        # trees
        tree_spacing = {"urban": 30.0, "residential": 12.0, "highway": 9.0}[area]
        x = x_lo + float(rng.exponential(tree_spacing))
        while x < x_hi:
            if area == "urban":
                u = side * (outer - 0.4)
            elif area == "residential":
                u = side * (outer + float(rng.uniform(0.8, 3.0)))
            else:
                u = side * (road_half + float(rng.uniform(4, 25)))
            trunk_h = float(rng.uniform(2.2, 3.2))
            crown = float(rng.uniform(2.5, 5.0))
            bank.add(x, u, curb_h, float(rng.uniform(-0.5, 0.5)),
                     [(0.0, 0.0, 0.0, 0.35, 0.35, trunk_h + 0.2)], material=MAT_TRUNK, refl=0.3,
                     color=(90.0, 70.0, 50.0))
            bank.add(x, u, curb_h + trunk_h, float(rng.uniform(-0.5, 0.5)),
                     [(0.0, 0.0, 0.0, crown, crown * float(rng.uniform(0.8, 1.0)), crown * float(rng.uniform(0.8, 1.2)))],
                     material=MAT_FOLIAGE, refl=float(rng.uniform(0.2, 0.45)),
                     color=(40.0, float(rng.uniform(90, 150)), 40.0))
            x += float(rng.exponential(tree_spacing)) + 3.0
        # small unlabeled clutter on the sidewalk (bins, boxes, hydrants)
        if sidewalk_w > 0:
            x = x_lo + float(rng.exponential(20.0))
            while x < x_hi:
                size = float(rng.uniform(0.4, 0.9))
                bank.add(x, side * (outer - float(rng.uniform(0.5, 1.0))), curb_h, float(rng.uniform(-1, 1)),
                         [(0.0, 0.0, 0.0, size, size, float(rng.uniform(0.6, 1.2)))], material=MAT_BARRIER,
                         refl=float(rng.uniform(0.1, 0.5)), color=(float(rng.uniform(40, 120)),) * 3)
                x += float(rng.exponential(20.0)) + 2.0
    if median > 0:
        x = x_lo
        while x < x_hi:
            bank.add(x + 20.0, 0.0, 0.0, 0.0, [(0.0, 0.0, 0.0, 40.0, 0.5, 0.85)], material=MAT_BARRIER,
                     refl=0.45, color=(190.0, 190.0, 185.0))
            x += 40.0

    # --- actors ---------------------------------------------------------------------------
    has_tram = area == "urban" and rng.random() < 0.5
    if area == "urban":
        parked_mix = {"Car": 0.9, "Van": 0.08, "Truck": 0.02}
        moving_mix = {"Car": 0.9, "Van": 0.07, "Truck": 0.03}
        moving_gap = 22.0 / traffic_factor
    elif area == "residential":
        parked_mix = {"Car": 0.9, "Van": 0.08, "Truck": 0.02}
        moving_mix = {"Car": 0.9, "Van": 0.08, "Truck": 0.02}
        moving_gap = 60.0 / traffic_factor
    else:
        parked_mix = {"Car": 1.0}
        moving_mix = {"Car": 0.83, "Van": 0.07, "Truck": 0.1}
        moving_gap = 35.0 / traffic_factor

    if parking:
        park_gap = 2.0 if area == "urban" else 7.0
        for side in (-1.0, 1.0):
            u = side * (road_half - 1.1)

            def gap() -> float:
                if rng.random() < 0.12:
                    return float(rng.uniform(8.0, 30.0))
                return 0.6 + float(rng.exponential(park_gap))

            def item():
                cls = _vehicle_class(rng, parked_mix)
                size = _sample_size(rng, cls)
                return size[2], (cls, size)

            for cx, (cls, size) in _row(rng, x_lo, x_hi, gap, item):
                yaw = (0.0 if side < 0 else math.pi) + float(rng.normal(0, 0.03))
                _add_actor(bank, rng, cls, size, cx, u + float(rng.normal(0, 0.1)), 0.0, yaw, 0.0)

    lanes_all = [(u, 1.0) for u in fwd_lanes] + [(u, -1.0) for u in back_lanes]
    tram_lane = int(rng.integers(0, len(lanes_all))) if has_tram else -1
    for k, (u, direction) in enumerate(lanes_all):
        is_ego_lane = u == ego_lane
        if is_ego_lane:
            speed = config.ego_speed
        elif area == "highway":
            speed = float(rng.uniform(20.0, 32.0))
        else:
            speed = 0.0 if config.ego_speed == 0.0 and direction > 0 else float(rng.uniform(5.0, 13.0))
        span = speed * duration + 5.0
        lo, hi = x_lo - span, x_hi + span
        # a tram (rare class) is placed ahead of the ego vehicle so that the camera sees it
        tram_x = (travel * float(rng.uniform(0.2, 0.8)) + float(rng.uniform(15.0, 60.0))
                  + (speed * duration * 0.5 if direction < 0 else 0.0)) if k == tram_lane else math.inf
        x = lo + 4.0 + float(rng.exponential(moving_gap))
        while x < hi:
            if x >= tram_x:
                cls, tram_x = "Tram", math.inf
            else:
                cls = _vehicle_class(rng, moving_mix)
            size = _sample_size(rng, cls)
            cx = x + size[2] / 2.0
            x += size[2] + 4.0 + float(rng.exponential(moving_gap))
            if is_ego_lane and abs(cx) < 9.0 + size[2] / 2:
                continue  # keep the ego vehicle's own spot free
            yaw = (0.0 if direction > 0 else math.pi) + float(rng.normal(0, 0.01))
            _add_actor(bank, rng, cls, size, cx, u + float(rng.normal(0, 0.15)), 0.0, yaw, speed)

    if sidewalk_w > 0:
        ped_spacing = (26.0 if area == "urban" else 90.0) / people_factor
        cyc_spacing = (120.0 if area == "urban" else 200.0) / (people_factor * (0.6 if config.weather == "rain" else 1.0))
        for side in (-1.0, 1.0):
            band = (road_half + 1.4, road_half + sidewalk_w - 1.2)
            x = x_lo + float(rng.exponential(ped_spacing))
            while x < x_hi:
                group = 1 if rng.random() < 0.8 else int(rng.integers(2, 5))
                standing = rng.random() < 0.3
                heading = 0.0 if rng.random() < 0.5 else math.pi
                speed = 0.0 if standing else float(rng.uniform(0.8, 1.6))
                u0 = float(rng.uniform(*band))
                for g in range(group):
                    size = _sample_size(rng, "Pedestrian")
                    u = float(np.clip(u0 + rng.normal(0, 0.3), *band))
                    yaw = float(rng.uniform(-math.pi, math.pi)) if standing else heading + float(rng.normal(0, 0.03))
                    _add_actor(bank, rng, "Pedestrian", size, x + g * 1.1, side * u, curb_h, yaw, speed)
                x += float(rng.exponential(ped_spacing)) + 1.5 * group
            speed = float(rng.uniform(3.0, 6.0))
            heading = 0.0 if side < 0 else math.pi
            span = speed * duration
            x = x_lo - span + float(rng.exponential(cyc_spacing))
            while x < x_hi + span:
                size = _sample_size(rng, "Cyclist")
                u = side * (road_half + float(rng.uniform(0.45, 0.8)))
                _add_actor(bank, rng, "Cyclist", size, x, u, curb_h, heading + float(rng.normal(0, 0.02)), speed)
                x += float(rng.exponential(cyc_spacing)) + 4.0

    raised_far = MAT_SIDEWALK if area == "urban" else MAT_TERRAIN
    return _finalize(
        bank,
        config,
        road_half=road_half,
        curb_height=curb_h,
        sidewalk_width=sidewalk_w,
        lane_width=lane_w,
        lane_lines=np.asarray(lane_lines, dtype=np.float64),
        edge_lines=np.asarray(edge_lines, dtype=np.float64),
        slope=float(rng.uniform(-0.01, 0.01)),
        ego_lane=ego_lane,
        ego_wobble=(float(rng.uniform(0.0, 0.15)), float(rng.uniform(4.0, 10.0)), float(rng.uniform(0, 2 * math.pi))),
        raised_material_far=raised_far,
    )
